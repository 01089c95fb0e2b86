/**
 * The kernel set: every per-element loop of a training step, as one interface. Two sets
 * implement it over the same memory — WebAssembly SIMD (`wasm`, the default) and a JS
 * mirror (`js`) — and a float64 reference (`f64`) keeps the loops of 0.1.0 for tests and
 * bounds. Every array is a view into the kernel memory (the mixture's shared
 * WebAssembly.Memory); lengths are in elements; row-major matrices.
 */
import type { Activation } from '../model/mlp.js';

/** Which kernel set runs the element-wise loops. */
export type KernelSetName = 'wasm' | 'js' | 'f64';

/** Every element-wise loop of a step (see each method for its formula and order). */
export interface Kernels {
  /** Which set this is. */
  readonly name: KernelSetName;

  /** Every row of z (rows×cols) ← bias (cols). */
  biasRows(z: Float32Array, bias: Float32Array, rows: number, cols: number): void;
  /** In place over n elements: tanh (rational minimax, |err| ≤ 3e-7), relu (`!(a > 0) → 0`), sigmoid 1/(1+e^−a). */
  activate(act: Activation, a: Float32Array, n: number): void;
  /** delta ← delta ⊙ act′, from the activation value a: tanh 1−a², relu [a > 0], sigmoid a(1−a). */
  activateBackward(act: Activation, delta: Float32Array, a: Float32Array, n: number): void;
  /** out[c] = Σ_r m[r·cols + c], r in increasing order (bias gradients). */
  colSums(m: Float32Array, rows: number, cols: number, out: Float32Array): void;

  /** dst row r ← src row idx[r], rows of `width` floats. */
  gatherRows(src: Float32Array, width: number, idx: Int32Array, rows: number, dst: Float32Array): void;
  /** dst[r] ← src[idx[r]]. */
  gatherRowsI32(src: Int32Array, idx: Int32Array, rows: number, dst: Int32Array): void;

  /** p ← p − lr·(g + wd·p). */
  sgd(p: Float32Array, g: Float32Array, n: number, lr: number, wd: number): void;
  /** v ← mu·v + (g + wd·p); p ← p − lr·v. */
  momentum(p: Float32Array, g: Float32Array, vel: Float32Array, n: number, lr: number, mu: number, wd: number): void;
  /**
   * gj = g + wd·p; m ← b1·m + (1−b1)·gj; v ← b2·v + (1−b2)·gj²; p ← p − stepSize·m/(√(v·invC2) + eps),
   * with stepSize = lr/(1−b1^t) and invC2 = 1/(1−b2^t) from the caller. Planar state: m and v apart.
   */
  adam(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number, stepSize: number, invC2: number, b1: number, b2: number, eps: number, wd: number): void;

  /** Per row of u (rows×E): lse = max + log Σ exp(u − max); logG = u − lse; g = exp(logG). */
  logSoftmaxRows(u: Float32Array, rows: number, E: number, logG: Float32Array, g: Float32Array): void;
  /** out[r·outStride + outOffset] = Σ_k (d[r,k] − o[r,k])². */
  sqErrRows(o: Float32Array, d: Float32Array, rows: number, K: number, out: Float32Array, outStride: number, outOffset: number): void;
  /** lse[r] = logsumexp(z[r,·]); out[r·outStride + outOffset] = z[r, label_r] − lse[r]. */
  logSoftmaxPickRows(z: Float32Array, labels: Int32Array, rows: number, K: number, out: Float32Array, outStride: number, outOffset: number, lse: Float32Array): void;
  /** gradOut[r,k] = w[r·wStride + wOffset]·(ref[r,k] − d[r,k]). */
  weightedDiffRows(ref: Float32Array, d: Float32Array, w: Float32Array, wStride: number, wOffset: number, rows: number, K: number, gradOut: Float32Array): void;
  /** gradOut[r,k] = w_r·(exp(z[r,k] − lse[r]) − [k = label_r]). */
  softmaxMinusOnehotRows(z: Float32Array, lse: Float32Array, labels: Int32Array, w: Float32Array, wStride: number, wOffset: number, rows: number, K: number, gradOut: Float32Array): void;
  /** out[r·outStride + outOffset] = Σ_k (d − ȳ)[r,k]·(o − ȳ)[r,k]. */
  dotDiffRows(d: Float32Array, ybar: Float32Array, o: Float32Array, rows: number, K: number, out: Float32Array, outStride: number, outOffset: number): void;
  /** ȳ[r,k] += g[r·gStride + gOffset]·o[r,k]. */
  mixAccumulate(ybar: Float32Array, o: Float32Array, g: Float32Array, gStride: number, gOffset: number, rows: number, K: number): void;

  /** dst ← dst + src, element by element. */
  addInto(dst: Float32Array, src: Float32Array, n: number): void;
  /** dst[0..n) ← value. */
  fill(dst: Float32Array, n: number, value: number): void;
  /** dst[0..n) ← src[0..n). */
  copy(dst: Float32Array, src: Float32Array, n: number): void;
}
