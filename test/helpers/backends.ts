/**
 * Compute providers for tests. tfjs's wasm and cpu backends are one global per process
 * (tf.setBackend), so each test file loads a provider once and shares it; vitest's
 * `forks` pool gives every file its own process.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_BLAS_LIBRARIES, loadBlas } from '../../src/compute/blas.js';
import { loadExactProvider } from '../../src/compute/load.js';
import type { ComputeProvider, Sgemm } from '../../src/compute/provider.js';

declare module 'vitest' {
  interface TaskMeta {
    /** Why the test is skipped on this machine; the skip-summary reporter counts these. */
    skipReason?: string;
  }
}

/** The providers every correctness test runs on: OpenBLAS through koffi, and tfjs wasm. */
export const TEST_BACKENDS = ['blas', 'wasm'] as const;
export type TestBackend = (typeof TEST_BACKENDS)[number];

let blasLoaded: boolean | undefined;

/** Whether OpenBLAS (the default CBLAS libraries) loads in this process; tried once. */
export function blasLoads(): boolean {
  if (blasLoaded === undefined) {
    try {
      loadBlas();
      blasLoaded = true;
    } catch {
      blasLoaded = false;
    }
  }
  return blasLoaded;
}

/** The reason printed (with the count) at the end of a run whose blas tests were skipped. */
export const BLAS_SKIP_REASON = 'OpenBLAS not found; apt-get install libopenblas0';

/**
 * Options for a `describe` whose subject is the provider `name`: where that is blas and
 * OpenBLAS does not load here, its tests are skipped with {@link BLAS_SKIP_REASON} (the
 * run ends with one line counting them). With MOE_REQUIRE_BACKEND=blas (as CI sets) they
 * run, and fail. Only tests about the blas provider itself use this; everything else runs
 * on whichever provider loads.
 */
export function backendSuite(name: TestBackend): { skip?: boolean; meta?: { skipReason: string } } {
  if (name !== 'blas' || blasLoads() || process.env.MOE_REQUIRE_BACKEND === 'blas') return {};
  return { skip: true, meta: { skipReason: BLAS_SKIP_REASON } };
}

/**
 * Environment for a subprocess in which OpenBLAS does not load: LD_LIBRARY_PATH names a
 * folder of empty files with the default libraries' names, which the dynamic loader finds
 * first (and cannot load); MOE_REQUIRE_BACKEND is cleared so that the fall-back happens
 * even under CI's setting. Linux only (undefined elsewhere).
 */
export function hiddenBlasEnv(dir: string): { LD_LIBRARY_PATH: string; MOE_REQUIRE_BACKEND: string } | undefined {
  if (process.platform !== 'linux') return undefined;
  mkdirSync(dir, { recursive: true });
  for (const lib of DEFAULT_BLAS_LIBRARIES) writeFileSync(join(dir, lib), '');
  return { LD_LIBRARY_PATH: dir, MOE_REQUIRE_BACKEND: '' };
}

const cache = new Map<TestBackend, Promise<ComputeProvider>>();

/** The provider `name`, loaded once per process (throws BackendError when it cannot load). */
export function provider(name: TestBackend): Promise<ComputeProvider> {
  let p = cache.get(name);
  if (!p) {
    p = loadExactProvider(name);
    cache.set(name, p);
  }
  return p;
}

/**
 * `C ← alpha·op(A)·op(B) + beta·C` by a float64 triple loop, with the layouts of the
 * {@link Sgemm} contract: row-major, A stored K×M when transA, B stored N×K when transB.
 */
export const naiveSgemm: Sgemm = (transA, transB, M, N, K, alpha, A, B, beta, C) => {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const a = transA ? A[k * M + i]! : A[i * K + k]!;
        const b = transB ? B[j * K + k]! : B[k * N + j]!;
        s += a * b;
      }
      C[i * N + j] = beta === 0 ? alpha * s : alpha * s + beta * C[i * N + j]!;
    }
  }
};

/** Deterministic pseudo-random numbers for test data (mulberry32), independent of src/rng. */
export function testRandom(seed: number): { uniform: () => number; normal: () => number } {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}
