/**
 * The element-wise kernels of a training step: every loop between two matrix products,
 * on views of one kernel memory. Two implementations produce BIT-IDENTICAL results: the
 * WebAssembly SIMD module (src/kernels/wasm.ts, source assembly/kernels.ts) and its float32
 * mirror in JavaScript (src/kernels/js.ts). "Bit-identical" means equal float32 bit patterns,
 * except that a NaN result may be any NaN (WebAssembly leaves NaN payloads unspecified).
 *
 * Conventions for every kernel:
 * - Arrays are views (Float32Array, Int32Array) into the kernel memory; sizes are in
 *   elements; matrices are row-major and packed (row r of an R×C matrix starts at r·C).
 * - Arithmetic is float32: every `+ − · / sqrt` below rounds once to float32
 *   (round-to-nearest-even); no fused multiply-add. Expressions are evaluated left to right
 *   as written, with the parentheses shown: the written order IS the order of operations.
 * - Scalars (`lr`, `value`, …) are rounded to float32 on entry.
 * - Output views must not overlap input views unless a kernel says it works in place.
 * - Indices (`idx`, `labels`) are not range-checked on the hot path (a kernel set created with
 *   `check: true` checks them); an out-of-range label is handled as documented per kernel.
 *
 * Lane-order sums. A row reduction Σ_k t_k over k < K is computed in 4 lanes, as the SIMD code
 * does it: with K4 = K − (K mod 4), lane j (j = 0…3) is (((+0 + t_j) + t_{j+4}) + …) over the
 * k < K4 with k ≡ j (mod 4); s = (lane0 + lane2) + (lane1 + lane3); then s = s + t_k for
 * k = K4 … K−1 in increasing order. For K < 4 this is ((+0 + t_0) + t_1) + …
 *
 * Lane-order maxima. max_k u_k: lane j starts at −∞ and takes m ← (m < u_k ? u_k : m) for
 * k < K4, k ≡ j (mod 4); the lanes combine as a = pmax(lane0, lane2), b = pmax(lane1, lane3),
 * m = (a < b ? b : a) with pmax(x, y) = x < y ? y : x; then m ← (m < u_k ? u_k : m) for the
 * tail. NaN entries are therefore skipped, as in the old rowLogSumExp.
 *
 * exp (float32, Cephes expf): xc = clamp(x, −104, 89) written as xc = (89 < x ? 89 : x),
 * xc = (xc < −104 ? −104 : xc) (NaN passes through); tm = xc·log2e + 1.5·2²³;
 * nf = tm − 1.5·2²³ (round-to-nearest-even of xc·log2e); n = bits(tm) − bits(1.5·2²³);
 * r = (xc − nf·0.693359375) − nf·(−2.12194440e-4); z = r·r;
 * y = ((((P0·r + P1)·r + P2)·r + P3)·r + P4)·r + P5 (P0…P5 = 1.9875691500e-4,
 * 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1);
 * y = ((y·z) + r) + 1; result = (y·2^(n>>1))·2^(n − (n>>1)) with both powers of two exact
 * float32 numbers (so a subnormal result rounds once). exp(−∞) = +0, exp(+∞) = +∞, NaN → NaN.
 * Error against float64 Math.exp (test/kernels.test.ts): ≤ 1 ulp for normal results (0.98
 * measured), ≤ one step of 2⁻¹⁴⁹ for subnormal ones.
 *
 * log (float32, Cephes logf), used once per row: NaN or x < 0 → NaN, ±0 → −∞, +∞ → +∞;
 * x = m·2^e with m in [0.5, 1) (a subnormal x is scaled by 2²⁵ first); if m < √½ then
 * e = e − 1, m = (m + m) − 1 else m = m − 1; z = m·m;
 * y = (((((((L0·m + L1)·m + L2)·m + L3)·m + L4)·m + L5)·m + L6)·m + L7)·m + L8 (Cephes
 * coefficients); y = (y·m)·z; y = y + e·(−2.12194440e-4); y = y − 0.5·z;
 * result = (m + y) + e·0.693359375. Error against Math.log: ≤ 1 ulp (0.82 measured).
 *
 * lse (logsumexp of a row of K): m = lane-order max; if m = −∞ then lse = −∞; otherwise
 * lse = m + log(Σ_k exp(u_k − m)) with the sum in lane order.
 */
import type { Kernel, KernelName, KERNEL_TABLE } from './signatures.js';

/** Which implementation: the WebAssembly SIMD module or its JavaScript float32 mirror. */
export type KernelSetName = 'wasm' | 'js';

/** Every {@link KernelSetName}, default first. */
export const KERNEL_SETS: readonly KernelSetName[] = ['wasm', 'js'];

/** Options of `wasmKernels` and `jsKernels`. */
export interface KernelOptions {
  /**
   * Check every call's counts, view sizes, indices and that every view is a view of the
   * memory's buffer (default: MOE_KERNELS_CHECK=1 in the environment). For tests: it costs
   * a few checks per call and scans index arrays.
   */
  check?: boolean;
}

/** The signature of a table entry's method. */
type SignatureOf<E> = E extends Kernel<infer F> ? F : never;

/**
 * The element-wise kernels of a training step; see the module comment for conventions. The
 * methods, their signatures and their documentation are the entries of KERNEL_TABLE
 * (signatures.ts).
 */
export type Kernels = {
  /** Which implementation this is. */
  readonly name: KernelSetName;
} & { readonly [K in KernelName]: SignatureOf<(typeof KERNEL_TABLE)[K]> };
