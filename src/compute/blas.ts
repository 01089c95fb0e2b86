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

/**
 * OpenBLAS reads OPENBLAS_NUM_THREADS once, when it is loaded; each worker is one thread
 * of compute, and calling openblas_set_num_threads(1) after loading was measured to
 * serialise two workers' calls. So the main thread sets it before anything loads the
 * library, keeping a value the user set. Worker threads get a copy of process.env, and
 * only the main thread's assignment reaches the C environment, hence "main thread".
 */
export function pinBlasThreads(): void {
  process.env.OPENBLAS_NUM_THREADS ??= '1';
  process.env.OMP_NUM_THREADS ??= '1';
}

/** Load a CBLAS library through koffi; throws when neither koffi nor the library loads. */
export function loadBlas(library?: string): ComputeProvider {
  pinBlasThreads();
  const require = createRequire(import.meta.url);
  // koffi is a native addon: load it lazily so a platform without its prebuilt binary
  // still gets the tfjs providers.
  const koffi = require('koffi') as typeof import('koffi');
  const candidates = library !== undefined ? [library] : DEFAULT_BLAS_LIBRARIES;
  const failures: string[] = [];
  for (const path of candidates) {
    let lib: ReturnType<typeof koffi.load>;
    try {
      lib = koffi.load(path);
    } catch (err) {
      failures.push(`${path}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    const raw = lib.func(
      'void cblas_sgemm(int, int, int, int, int, int, float, float *, int, float *, int, float, _Inout_ float *, int)',
    ) as (...args: unknown[]) => void;
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
  throw new Error(`no CBLAS library loaded (${failures.join('; ')})`);
}
