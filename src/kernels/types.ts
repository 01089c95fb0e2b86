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
import type { Activation } from '../model/mlp.js';

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

/** The element-wise kernels of a training step; see the module comment for conventions. */
export interface Kernels {
  /** Which implementation this is. */
  readonly name: KernelSetName;

  /**
   * Every row of `z` (rows×cols) ← `bias` (cols), bit for bit, so that a following sgemm
   * with beta = 1 adds x·W on top.
   */
  biasRows(z: Float32Array, bias: Float32Array, rows: number, cols: number): void;

  /**
   * In place, n elements: a ← f(a).
   * - `tanh`: in float32 through expm1 (constants in constants.ts): g = sign bit of a;
   *   z = |a|, z = (C < z ? C : z) with C = 9; tm = z·(−2·log2e) + 1.5·2²³; nf = tm − 1.5·2²³;
   *   s = 2^n from the bits of tm (n = nf in [−26, 0]); ρ = z + nf·(ln2/2);
   *   q = ((Q43·ρ + Q42)·ρ + Q41)·ρ + Q40 with Q4k = 4·(−2)^k·TQk; e = ρ·((ρ·q) − 2);
   *   m = (s·e) − (1 − s); y = m / (−2 − m); a = y with g XOR-ed onto its sign bit. So tanh is
   *   exactly odd, tanh(±0) = ±0, ±∞ → ±1, NaN → NaN. Absolute error ≤ 3e-7 against Math.tanh
   *   over every float32 (1.49e-7 measured, exhaustively; test/kernels.test.ts).
   * - `relu`: a = (a > 0 ? a : +0); NaN → +0 (the old behaviour).
   * - `sigmoid`: a = 1 / (1 + exp(−a)) with the float32 exp: relative error ≤ 4·2⁻²⁴ (2.3·2⁻²⁴
   *   measured) down to 2⁻¹²⁶; below a ≈ −88.7, exp(−a) overflows and the result is +0
   *   (absolute error < 2⁻¹²⁶). NaN → NaN.
   */
  activate(act: Activation, a: Float32Array, n: number): void;

  /**
   * In place, every row r of `z` (rows×cols): z[r,c] ← f(z[r,c] + bias[c]), the sum rounded to
   * float32 and then the activation exactly as {@link Kernels.activate}: the same result as
   * adding the bias and then calling activate, in one pass over z.
   */
  biasActivate(act: Activation, z: Float32Array, bias: Float32Array, rows: number, cols: number): void;

  /**
   * In place, n elements: delta ← delta ⊙ f'(z), written through the activation a = f(z):
   * - `tanh`: delta = delta · (1 − a·a);
   * - `relu`: delta = (a > 0 ? delta : +0);
   * - `sigmoid`: delta = (delta · a) · (1 − a).
   */
  activateBackward(act: Activation, delta: Float32Array, a: Float32Array, n: number): void;

  /**
   * Bias gradient: out[c] = (((+0 + m[0,c]) + m[1,c]) + …) + m[rows−1,c] for c < cols, summed
   * over r in increasing order (m is rows×cols). rows = 0 gives +0. out must not overlap m.
   */
  colSums(m: Float32Array, rows: number, cols: number, out: Float32Array): void;

  /** dst row r ← src row idx[r] for r < rows (rows of `width` floats; bits copied unchanged). */
  gatherRows(src: Float32Array, width: number, idx: Int32Array, rows: number, dst: Float32Array): void;

  /** dst[r] ← src[idx[r]] for r < rows (labels). */
  gatherRowsI32(src: Int32Array, idx: Int32Array, rows: number, dst: Int32Array): void;

  /** SGD, n parameters: p ← p − lr·(g + wd·p), i.e. t = g + (wd·p); p = p − (lr·t). */
  sgd(p: Float32Array, g: Float32Array, n: number, lr: number, wd: number): void;

  /**
   * Momentum, n parameters: gj = g + (wd·p); v = (mu·v) + gj; p = p − (lr·v).
   * `vel` is the velocity (n floats).
   */
  momentum(p: Float32Array, g: Float32Array, vel: Float32Array, n: number, lr: number, mu: number, wd: number): void;

  /**
   * Adam with PLANAR state (m and v are separate arrays of n floats), n parameters:
   * a1 = 1 − b1 and a2 = 1 − b2 come from the caller (computed in float64, rounded once
   * to float32, as torch.optim.Adam's `1 - beta`); gj = g + (wd·p); m = (b1·m) + (a1·gj);
   * v = (b2·v) + (a2·(gj·gj)); p = p − ((stepSize·m) / (sqrt(v·invC2) + eps)).
   * The caller computes stepSize = lr/(1 − b1^t) and invC2 = 1/(1 − b2^t) in float64.
   */
  adam(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    n: number,
    stepSize: number,
    invC2: number,
    b1: number,
    b2: number,
    a1: number,
    a2: number,
    eps: number,
    wd: number,
  ): void;

  /**
   * Gate softmax, per row of u (rows×E): lse = logsumexp(u_r) (see the module comment);
   * logG = u − lse; g = exp(logG). logG and g are rows×E; they may alias u (not each other).
   */
  logSoftmaxRows(u: Float32Array, rows: number, E: number, logG: Float32Array, g: Float32Array): void;

  /** out[r·outStride + outOffset] = Σ_k (d[r,k] − o[r,k])·(d[r,k] − o[r,k]) in lane order (o, d rows×K). */
  sqErrRows(o: Float32Array, d: Float32Array, rows: number, K: number, out: Float32Array, outStride: number, outOffset: number): void;

  /**
   * Categorical score: lse[r] = logsumexp(z_r) (kept for backward); out[r·outStride + outOffset]
   * = z[r, labels[r]] − lse[r], or NaN when labels[r] is outside [0, K). z is rows×K.
   */
  logSoftmaxPickRows(
    z: Float32Array,
    labels: Int32Array,
    rows: number,
    K: number,
    out: Float32Array,
    outStride: number,
    outOffset: number,
    lse: Float32Array,
  ): void;

  /** gradOut[r,k] = w_r · (ref[r,k] − d[r,k]) with w_r = w[r·wStride + wOffset] (all rows×K). */
  weightedDiffRows(
    ref: Float32Array,
    d: Float32Array,
    w: Float32Array,
    wStride: number,
    wOffset: number,
    rows: number,
    K: number,
    gradOut: Float32Array,
  ): void;

  /**
   * Categorical output gradient: gradOut[r,k] = w_r · (exp(z[r,k] − lse[r]) − [k = labels[r]])
   * with w_r = w[r·wStride + wOffset]; for k ≠ label the subtraction of 0 is exact and skipped.
   * A label outside [0, K) subtracts nothing.
   */
  softmaxMinusOnehotRows(
    z: Float32Array,
    lse: Float32Array,
    labels: Int32Array,
    w: Float32Array,
    wStride: number,
    wOffset: number,
    rows: number,
    K: number,
    gradOut: Float32Array,
  ): void;

  /** Cooperative dot: out[r·outStride + outOffset] = Σ_k (d − ybar)[r,k] · (o − ybar)[r,k] in lane order. */
  dotDiffRows(
    d: Float32Array,
    ybar: Float32Array,
    o: Float32Array,
    rows: number,
    K: number,
    out: Float32Array,
    outStride: number,
    outOffset: number,
  ): void;

  /** Cooperative mixing, one expert: ybar[r,k] = ybar[r,k] + (g_r · o[r,k]) with g_r = g[r·gStride + gOffset]. */
  mixAccumulate(ybar: Float32Array, o: Float32Array, g: Float32Array, gStride: number, gOffset: number, rows: number, K: number): void;

  /** dst = dst + src, n elements (sums gradient blocks in a fixed order). */
  addInto(dst: Float32Array, src: Float32Array, n: number): void;

  /** dst[0…n) ← float32(value). */
  fill(dst: Float32Array, n: number, value: number): void;

  /** dst[0…n) ← src[0…n), bits unchanged; the ranges may overlap (memmove). */
  copy(dst: Float32Array, src: Float32Array, n: number): void;
}
