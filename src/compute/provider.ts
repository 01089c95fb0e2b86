/**
 * One interface for every matrix product in the library, shaped like `cblas_sgemm` on
 * packed row-major operands, and the providers that implement it. All other math
 * (bias, activations, softmax, losses, optimizers) is plain loops over the same views.
 */

/** Names of the compute providers, in the order `auto` tries them. */
export const BACKENDS = ['blas', 'tensorflow', 'wasm', 'cpu'] as const;
/** A compute provider's name. */
export type BackendName = (typeof BACKENDS)[number];
/** A provider to force, or `auto` for the first that loads. */
export type BackendRequest = BackendName | 'auto';

/**
 * `C ← alpha·op(A)·op(B) + beta·C`, row-major and packed: op(A) is M×K, op(B) is K×N,
 * C is M×N; `transA` means A is stored K×M, `transB` that B is stored N×K. The views may
 * be longer than needed (only the leading elements are read) and may be SharedArrayBuffer
 * views; with beta = 0 the old contents of C are ignored, NaN included.
 */
export type Sgemm = (
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: Float32Array,
  B: Float32Array,
  beta: number,
  C: Float32Array,
) => void;

/** A loaded compute provider. */
export interface ComputeProvider {
  /** Which backend this is. */
  readonly name: BackendName;
  /** Human-readable detail: library path or tfjs backend version. */
  readonly detail: string;
  /** Single-precision matrix product on row-major Float32Arrays (see {@link Sgemm}). */
  readonly sgemm: Sgemm;
}

/** Options for choosing a provider. */
export interface ProviderOptions {
  /** Path or soname of a CBLAS library for `blas` (default: the system's OpenBLAS). */
  blasLibrary?: string;
  /** Called once per provider that failed to load (one line). Default: console.warn. */
  onWarning?: (message: string) => void;
}
