/**
 * A multilayer perceptron as data: its shape and the layout of its flat parameter vector.
 * The math that runs it is in src/nn/mlp.ts.
 *
 * Parameter layout, layer l = 0..L−1 mapping n_l → n_{l+1}:
 *   [ W_0 (n_0×n_1, row-major) | b_0 (n_1) | W_1 | b_1 | … ]
 * Hidden layers apply the activation; the last layer is linear (logits or outputs).
 */
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

/** Sum of the hidden widths (floats of activations kept per row for backward). */
export function hiddenWidthSum(shape: MlpShape): number {
  let h = 0;
  for (let l = 1; l + 1 < shape.sizes.length; l++) h += shape.sizes[l]!;
  return h;
}

/** Widest hidden layer (0 for a linear map): the width of the backward deltas. */
export function widestHidden(shape: MlpShape): number {
  let w = 0;
  for (let l = 1; l + 1 < shape.sizes.length; l++) w = Math.max(w, shape.sizes[l]!);
  return w;
}

/** Offsets of W_l and b_l inside the flat parameter vector. */
export function layerOffsets(shape: MlpShape): { w: number; b: number }[] {
  const out: { w: number; b: number }[] = [];
  let o = 0;
  for (let l = 0; l + 1 < shape.sizes.length; l++) {
    const nin = shape.sizes[l]!, nout = shape.sizes[l + 1]!;
    out.push({ w: o, b: o + nin * nout });
    o += nin * nout + nout;
  }
  return out;
}

/** W_l and b_l views of one flat parameter (or gradient) vector. */
export interface LayerViews {
  /** W_l per layer: n_l×n_{l+1} row-major views. */
  readonly w: Float32Array[];
  /** b_l per layer: views of length n_{l+1}. */
  readonly b: Float32Array[];
}

/** Per-layer views of `flat` (a parameter or gradient vector of `shape`). */
export function layerViews(shape: MlpShape, flat: Float32Array): LayerViews {
  const w: Float32Array[] = [], b: Float32Array[] = [];
  layerOffsets(shape).forEach((o, l) => {
    const nin = shape.sizes[l]!, nout = shape.sizes[l + 1]!;
    w.push(flat.subarray(o.w, o.w + nin * nout));
    b.push(flat.subarray(o.b, o.b + nout));
  });
  return { w, b };
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
