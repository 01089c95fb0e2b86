/**
 * The shard worker threads of this process. A fit's shards are long-running piscina
 * tasks; the threads that run them are kept for the next fit (idle ones for
 * {@link IDLE_MS}, unreferenced, so they never keep the process alive) instead of being
 * started and torn down every fit: a native library loaded in a thread (OpenBLAS through
 * koffi) keeps some memory per thread it has seen, so a process that fitted in fresh
 * threads every time grew without bound (0.1.0: 67 → 201 MiB over 900 fits).
 *
 * A worker entry other than the default (tests substitute one that injects faults) gets a
 * pool of its own per fit, destroyed with it: its behaviour may depend on state read when
 * its threads start.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { workerFile } from './worker-path.js';

/** How long an idle shard thread is kept for the next fit. */
export const IDLE_MS = 30_000;

/** Most shard threads at once (threads start on demand; a fit needs one per shard). */
const MAX_THREADS = Math.max(256, 8 * availableParallelism());

let shared: Piscina | undefined;

function pool(filename: string, idleTimeout: number): Piscina {
  return new Piscina({
    filename,
    minThreads: 0,
    maxThreads: MAX_THREADS,
    concurrentTasksPerWorker: 1,
    idleTimeout,
    // Our tasks never end between steps, so piscina's own Atomics signalling is unused.
    atomics: 'disabled',
  });
}

/** Threads for a fit's shards: the process's shared pool, or a pool of its own for another entry. */
export function shardThreads(entry?: string): { threads: Piscina; shared: boolean } {
  if (entry !== undefined) return { threads: pool(entry, 1000), shared: false };
  shared ??= pool(workerFile('shard'), IDLE_MS);
  return { threads: shared, shared: true };
}

/**
 * Done with a fit's threads. A pool of its own is destroyed; the shared pool is kept,
 * unless `broken` (a shard did not stop: a hung thread can only be terminated by
 * destroying its pool, and the next fit starts a fresh one).
 */
export async function releaseThreads(t: { threads: Piscina; shared: boolean }, broken: boolean): Promise<void> {
  if (t.shared && !broken) return;
  if (t.shared && shared === t.threads) shared = undefined;
  await t.threads.destroy();
}
