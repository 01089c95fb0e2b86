/**
 * Lockstep checks of an MPI run: every rank computes the main side on its own, so every
 * input to it must be the same everywhere. At the start the ranks compare digests of the
 * data, the configuration and seed, the Node version, the BLAS core, the kernel set and
 * the float mode; after every epoch, of the gate's parameters and the last routing plan,
 * together with each rank's wish to stop (so that all stop at the same epoch). A mismatch
 * stops every rank with one line naming the rank and what differs.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { ComputeProvider } from '../compute/provider.js';
import { MoeError } from '../errors.js';
import type { Communicator } from './communicator.js';

/** Two int32 of a SHA-256 of `parts`. */
export function digest(...parts: (ArrayBufferView | string)[]): [number, number] {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? p : new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  const d = h.digest();
  return [d.readInt32LE(0), d.readInt32LE(4)];
}

/** OpenBLAS's core name (the kernels it chose for this CPU), where the provider is OpenBLAS. */
export function blasCore(provider: ComputeProvider): string {
  if (provider.name !== 'blas') return provider.name;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const f = koffi.load(provider.detail).func('const char *openblas_get_corename()') as () => string;
    return `blas ${f()}`;
  } catch {
    return `blas ${provider.detail}`;
  }
}

/** Compare named two-int digests across ranks; throws MPI_MISMATCH naming the first rank and item that differ from rank 0. */
export async function compareAcrossRanks(comm: Communicator, items: readonly (readonly [string, [number, number]])[], what: string): Promise<void> {
  const mine = new Int32Array(items.length * 2);
  items.forEach(([, d], j) => mine.set(d, 2 * j));
  const all = await comm.allgatherInts(mine, what);
  const n = mine.length;
  for (let r = 1; r < comm.size; r++) {
    for (let j = 0; j < items.length; j++) {
      if (all[r * n + 2 * j] !== all[2 * j] || all[r * n + 2 * j + 1] !== all[2 * j + 1]) {
        throw new MoeError('MPI_MISMATCH', `mpi: rank ${r} differs from rank 0 in ${items[j]![0]} (${what}); every rank must run the same data, options, seed and software`);
      }
    }
  }
}

/** Each rank's integer (a stop code): the largest over the ranks. */
export async function maxAcrossRanks(comm: Communicator, value: number, what: string): Promise<number> {
  const v = Int32Array.of(value);
  await comm.allreduceInts(v, 'max', what);
  return v[0]!;
}
