/**
 * A multilayer perceptron on one flat Float32Array of parameters: the building block of
 * the experts, the gate and the backprop baseline. Forward and backward sit side by side;
 * every matrix product goes through the provider's sgemm, everything else is a loop.
 *
 * Parameter layout, layer l = 0..L−1 mapping n_l → n_{l+1}:
 *   [ W_0 (n_0×n_1, row-major) | b_0 (n_1) | W_1 | b_1 | … ]
 * Hidden layers apply the activation; the last layer is linear (logits or outputs).
 */
import type { Sgemm } from '../compute/provider.js';
import type { Rng } from '../rng.js';

/** Hidden-layer nonlinearity. */
export type Activation = 'tanh' | 'relu' | 'sigmoid';
/** Every {@link Activation}, as `mlp:…:activation` specs accept them. */
export const ACTIVATIONS: readonly Activation[] = ['tanh', 'relu', 'sigmoid'];

/** Layer widths, input first, output last; `[in, out]` is a linear map. */
export interface MlpShape {
  /** Layer widths n_0 … n_L (at least two: input and output). */
  sizes: readonly number[];
  /** Nonlinearity of the hidden layers (the output layer is linear). */
  activation: Activation;
}

/** Number of parameters of an MLP. */
export function mlpParamCount(shape: MlpShape): number {
  let n = 0;
  for (let l = 0; l + 1 < shape.sizes.length; l++) n += shape.sizes[l]! * shape.sizes[l + 1]! + shape.sizes[l + 1]!;
  return n;
}

/** Offsets of W_l and b_l inside the flat parameter vector. */
function layerOffsets(shape: MlpShape): { w: number; b: number }[] {
  const out: { w: number; b: number }[] = [];
  let o = 0;
  for (let l = 0; l + 1 < shape.sizes.length; l++) {
    const nin = shape.sizes[l]!, nout = shape.sizes[l + 1]!;
    out.push({ w: o, b: o + nin * nout });
    o += nin * nout + nout;
  }
  return out;
}

/**
 * Initialise in place: W uniform in ±sqrt(6/(n_in+n_out)) (Glorot), scaled by `scale`;
 * biases zero. Draws from `rng` in layout order, so one seed gives one network.
 */
export function mlpInit(shape: MlpShape, params: Float32Array, rng: Rng, scale = 1): void {
  const offs = layerOffsets(shape);
  for (let l = 0; l < offs.length; l++) {
    const nin = shape.sizes[l]!, nout = shape.sizes[l + 1]!;
    const a = scale * Math.sqrt(6 / (nin + nout));
    const { w, b } = offs[l]!;
    for (let i = 0; i < nin * nout; i++) params[w + i] = (2 * rng.next() - 1) * a;
    params.fill(0, b, b + nout);
  }
}

/**
 * Scratch memory for one MLP at a maximum batch size: the hidden activations kept for
 * backward and two ping-pong buffers for the backpropagated deltas. Private to the thread
 * that runs the network (a shard worker or the main thread), never shared.
 */
export class MlpWorkspace {
  /** Activations of each hidden layer l, maxBatch×n_l row-major, kept for backward. */
  readonly hidden: Float32Array[];
  /** First delta ping-pong buffer, maxBatch × widest hidden layer. */
  readonly deltaA: Float32Array;
  /** Second delta ping-pong buffer, same size as `deltaA`. */
  readonly deltaB: Float32Array;
  /** A row of ones for the bias gradient's column sums. */
  readonly ones: Float32Array;
  private readonly offs: { w: number; b: number }[];
  private paramViews = new LayerViews();
  private gradViews = new LayerViews();
  constructor(
    /** The network this workspace serves. */
    readonly shape: MlpShape,
    /** Largest batch (rows) a forward/backward pass may use with it. */
    readonly maxBatch: number,
  ) {
    const s = shape.sizes;
    this.hidden = [];
    let widest = 0;
    for (let l = 1; l + 1 < s.length; l++) {
      this.hidden.push(new Float32Array(maxBatch * s[l]!));
      widest = Math.max(widest, s[l]!);
    }
    this.deltaA = new Float32Array(maxBatch * widest);
    this.deltaB = new Float32Array(maxBatch * widest);
    this.ones = new Float32Array(maxBatch).fill(1);
    this.offs = layerOffsets(shape);
  }

  /**
   * Per-layer W and b views of a parameter (or gradient) vector, made once per vector:
   * an expert's workspace always sees the same one, so its steps allocate no views.
   */
  layers(params: Float32Array, grads = false): LayerViews {
    const cache = grads ? this.gradViews : this.paramViews;
    if (cache.of === params) return cache;
    const views = new LayerViews(params, this.shape, this.offs);
    if (grads) this.gradViews = views;
    else this.paramViews = views;
    return views;
  }
}

/** W_l and b_l views of one flat parameter (or gradient) vector, as {@link MlpWorkspace.layers} returns them. */
export class LayerViews {
  /** W_l per layer: n_l×n_{l+1} row-major views. */
  readonly w: Float32Array[] = [];
  /** b_l per layer: views of length n_{l+1}. */
  readonly b: Float32Array[] = [];
  constructor(
    /** The vector viewed (undefined for the empty placeholder). */
    readonly of?: Float32Array,
    shape?: MlpShape,
    offs?: { w: number; b: number }[],
  ) {
    if (!of || !shape || !offs) return;
    offs.forEach(({ w, b }, l) => {
      const nin = shape.sizes[l]!, nout = shape.sizes[l + 1]!;
      this.w.push(of.subarray(w, w + nin * nout));
      this.b.push(of.subarray(b, b + nout));
    });
  }
}

/** Every row of z (rows×cols) ← bias, so that sgemm with beta = 1 adds x·W on top. */
function fillBiasRows(z: Float32Array, bias: Float32Array, rows: number, cols: number): void {
  if (rows === 0) return;
  z.set(bias, 0);
  // Doubling copies: log2(rows) memcpy calls instead of a JS loop over rows×cols.
  for (let filled = 1; filled < rows; filled *= 2) z.copyWithin(filled * cols, 0, Math.min(filled, rows - filled) * cols);
}

// tanh as a rational function (the minimax fit Eigen uses for float): Math.tanh measured
// 4× slower here and dominated the forward pass of tanh MLP experts. Absolute error
// ≤ 3e-7 against Math.tanh over the whole line; NaN stays NaN (so divergence is seen).
const T1 = 4.89352455891786e-3, T3 = 6.37261928875436e-4, T5 = 1.48572235717979e-5, T7 = 5.12229709037114e-8;
const T9 = -8.60467152213735e-11, T11 = 2.00018790482477e-13, T13 = -2.76076847742355e-16;
const U0 = 4.89352518554385e-3, U2 = 2.268434632439e-3, U4 = 1.18534705686654e-4, U6 = 1.19825839466702e-6;
const TANH_CLAMP = 7.90531110763549805;

/** tanh(x) to float32 accuracy, about 4× faster than Math.tanh in V8. */
export function fastTanh(v: number): number {
  const x = v > TANH_CLAMP ? TANH_CLAMP : v < -TANH_CLAMP ? -TANH_CLAMP : v;
  const x2 = x * x;
  const p = x * (T1 + x2 * (T3 + x2 * (T5 + x2 * (T7 + x2 * (T9 + x2 * (T11 + x2 * T13))))));
  return p / (U0 + x2 * (U2 + x2 * (U4 + x2 * U6)));
}

function activate(a: Float32Array, n: number, act: Activation): void {
  switch (act) {
    case 'tanh':
      for (let i = 0; i < n; i++) a[i] = fastTanh(a[i]!);
      break;
    case 'relu':
      for (let i = 0; i < n; i++) if (!(a[i]! > 0)) a[i] = 0;
      break;
    case 'sigmoid':
      for (let i = 0; i < n; i++) a[i] = 1 / (1 + Math.exp(-a[i]!));
      break;
  }
}

/** delta ← delta ⊙ act'(z), with the derivative written in terms of the activation a. */
function activateBackward(delta: Float32Array, a: Float32Array, n: number, act: Activation): void {
  switch (act) {
    case 'tanh':
      for (let i = 0; i < n; i++) delta[i] = delta[i]! * (1 - a[i]! * a[i]!);
      break;
    case 'relu':
      for (let i = 0; i < n; i++) if (!(a[i]! > 0)) delta[i] = 0;
      break;
    case 'sigmoid':
      for (let i = 0; i < n; i++) delta[i] = delta[i]! * a[i]! * (1 - a[i]!);
      break;
  }
}

/**
 * Forward pass: `out (rows×n_L) = f(x (rows×n_0))`. Hidden activations are kept in `ws`
 * for {@link mlpBackward}.
 */
export function mlpForward(
  gemm: Sgemm,
  shape: MlpShape,
  params: Float32Array,
  x: Float32Array,
  rows: number,
  out: Float32Array,
  ws: MlpWorkspace,
): void {
  const s = shape.sizes;
  const p = ws.layers(params);
  const L = p.w.length;
  let input = x;
  for (let l = 0; l < L; l++) {
    const nin = s[l]!, nout = s[l + 1]!;
    const last = l === L - 1;
    const z = last ? out : ws.hidden[l]!;
    // z = b_l (every row), then z += input·W_l: the bias add happens inside sgemm.
    fillBiasRows(z, p.b[l]!, rows, nout);
    gemm(false, false, rows, nout, nin, 1, input, p.w[l]!, 1, z);
    if (!last) activate(z, rows * nout, shape.activation);
    input = z;
  }
}

/**
 * Backward pass for one batch: given `gradOut = ∂E/∂out` (rows×n_L), write ∂E/∂θ into
 * `grads` (same layout as params, overwritten, not accumulated). `x` and `ws` must hold
 * the same batch as the last {@link mlpForward}. `gradOut` is left unchanged.
 *   ∂E/∂W_l = a_lᵀ·δ_l,   ∂E/∂b_l = Σ_rows δ_l,   δ_{l−1} = (δ_l·W_lᵀ) ⊙ act'(a_l)
 */
export function mlpBackward(
  gemm: Sgemm,
  shape: MlpShape,
  params: Float32Array,
  x: Float32Array,
  rows: number,
  gradOut: Float32Array,
  grads: Float32Array,
  ws: MlpWorkspace,
): void {
  const s = shape.sizes;
  const p = ws.layers(params), g = ws.layers(grads, true);
  let delta = gradOut;
  let spare = ws.deltaA;
  for (let l = p.w.length - 1; l >= 0; l--) {
    const nin = s[l]!, nout = s[l + 1]!;
    const input = l === 0 ? x : ws.hidden[l - 1]!;
    gemm(true, false, nin, nout, rows, 1, input, delta, 0, g.w[l]!);
    // ∂E/∂b_l = 1ᵀ·δ_l, a 1×rows by rows×nout product.
    gemm(false, false, 1, nout, rows, 1, ws.ones, delta, 0, g.b[l]!);
    if (l > 0) {
      gemm(false, true, rows, nin, nout, 1, delta, p.w[l]!, 0, spare);
      activateBackward(spare, ws.hidden[l - 1]!, rows * nin, shape.activation);
      delta = spare;
      spare = spare === ws.deltaA ? ws.deltaB : ws.deltaA;
    }
  }
}
