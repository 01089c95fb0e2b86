import { createRequire } from 'node:module';
import type { ComputeProvider, Sgemm } from './provider.js';

const CblasRowMajor = 101;
const CblasNoTrans = 111;
const CblasTrans = 112;

/** Sonames tried in order when no library is given. */
export const DEFAULT_BLAS_LIBRARIES: readonly string[] =
  process.platform === 'darwin'
    ? ['/System/Library/Frameworks/Accelerate.framework/Accelerate', 'libopenblas.dylib']
    : process.platform === 'win32'
      ? ['libopenblas.dll']
      : ['libopenblas.so.0', 'libopenblas.so', 'libcblas.so.3'];

/** The variables OpenBLAS (and an OpenMP build's runtime) read for their thread count. */
const BLAS_THREAD_VARIABLES = ['OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS'] as const;

/**
 * Runs `load` (which loads the BLAS library) with one BLAS thread asked for, and leaves the
 * environment as it found it. OpenBLAS reads OPENBLAS_NUM_THREADS (an OpenMP build:
 * OMP_NUM_THREADS) once, when the library is loaded into the process; each shard is one
 * thread of compute, and calling openblas_set_num_threads(1) after loading was measured to
 * serialise two workers' calls. So each variable the user has not set is set to 1 for the
 * load and removed right after (a value the user set is kept, and restored as it was), so
 * that the user's child processes inherit the user's environment, not ours. The library is
 * loaded on the main thread before any shard starts (the session loads its provider first):
 * only the main thread's process.env reaches the C environment the library reads.
 */
function withOneBlasThread<T>(load: () => T): T {
  const before = BLAS_THREAD_VARIABLES.map((name) => [name, process.env[name]] as const);
  for (const [name, value] of before) if (value === undefined) process.env[name] = '1';
  try {
    return load();
  } finally {
    for (const [name, value] of before) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/** One CBLAS library that did not load, and why. */
export interface BlasAttempt {
  /** The path or soname tried. */
  library: string;
  /** Why, shortened (`not found`, `file too short`, `no cblas_sgemm`…). */
  reason: string;
  /** The loader's whole message. */
  detail: string;
  /** The library was not found at all (as opposed to found and broken). */
  missing: boolean;
}

/** No CBLAS library loaded: every library tried, and why each failed. */
export class BlasLoadError extends Error {
  /** Each library tried, in order. */
  readonly attempts: readonly BlasAttempt[];
  /** Whether the caller named the library (else the default sonames were tried). */
  readonly explicit: boolean;
  constructor(attempts: BlasAttempt[], explicit: boolean) {
    super(`no CBLAS library loaded (${attempts.map((a) => `${a.library}: ${a.detail}`).join('; ')})`);
    this.name = 'BlasLoadError';
    this.attempts = attempts;
    this.explicit = explicit;
  }
}

function attempt(library: string, err: unknown): BlasAttempt {
  const detail = (err as Error).message.split('\n')[0]!;
  // koffi: "Failed to load shared library: /abs/path/libopenblas.so.0: file too short"
  let reason = detail.replace(/^Failed to load shared library:\s*/, '').replace(/^\/\S*:\s*/, '');
  const missing = /No such file or directory|cannot open shared object file|image not found|could not be found/i.test(detail);
  if (missing) reason = 'not found';
  return { library, reason, detail, missing };
}

/**
 * Providers loaded in this thread, by requested library: koffi keeps native memory for
 * every library handle and function binding it makes, so each thread binds a library
 * once and reuses it (loading per fit grew a process by ~0.1 MiB a fit).
 */
const loaded = new Map<string, ComputeProvider>();

/**
 * Load a CBLAS library through koffi (once per thread); throws {@link BlasLoadError}
 * (every library tried and why) when none loads, or koffi's own error when koffi itself
 * does not load.
 */
export function loadBlas(library?: string): ComputeProvider {
  const key = library ?? '';
  let p = loaded.get(key);
  if (!p) {
    p = bindBlas(library);
    loaded.set(key, p);
  }
  return p;
}

function bindBlas(library?: string): ComputeProvider {
  return withOneBlasThread(() => bindFirstBlas(library));
}

function bindFirstBlas(library?: string): ComputeProvider {
  const require = createRequire(import.meta.url);
  // koffi is a native addon: load it lazily so a platform without its prebuilt binary
  // still gets the tfjs providers.
  const koffi = require('koffi') as typeof import('koffi');
  const candidates = library !== undefined ? [library] : DEFAULT_BLAS_LIBRARIES;
  const failures: BlasAttempt[] = [];
  for (const path of candidates) {
    let raw: (...args: unknown[]) => void;
    try {
      const lib = koffi.load(path);
      try {
        raw = lib.func(
          'void cblas_sgemm(int, int, int, int, int, int, float, float *, int, float *, int, float, _Inout_ float *, int)',
        ) as (...args: unknown[]) => void;
      } catch (err) {
        failures.push({ ...attempt(path, err), reason: 'no cblas_sgemm in it' });
        continue;
      }
    } catch (err) {
      failures.push(attempt(path, err));
      continue;
    }
    const sgemm: Sgemm = (transA, transB, M, N, K, alpha, A, B, beta, C) => {
      if (M === 0 || N === 0) return;
      raw(
        CblasRowMajor,
        transA ? CblasTrans : CblasNoTrans,
        transB ? CblasTrans : CblasNoTrans,
        M,
        N,
        K,
        alpha,
        A,
        transA ? M : K,
        B,
        transB ? K : N,
        beta,
        C,
        N,
      );
    };
    return { name: 'blas', detail: path, sgemm };
  }
  throw new BlasLoadError(failures, library !== undefined);
}
