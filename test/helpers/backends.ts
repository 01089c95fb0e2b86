/**
 * Compute providers for tests. tfjs's wasm and cpu backends are one global per process
 * (tf.setBackend), so each test file loads a provider once and shares it; vitest's
 * `forks` pool gives every file its own process.
 */
import { loadExactProvider } from '../../src/compute/load.js';
import type { ComputeProvider, Sgemm } from '../../src/compute/provider.js';

/** The providers every correctness test runs on: OpenBLAS through koffi, and tfjs wasm. */
export const TEST_BACKENDS = ['blas', 'wasm'] as const;
export type TestBackend = (typeof TEST_BACKENDS)[number];

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
