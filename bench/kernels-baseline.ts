/**
 * The element-wise loops of local-experts 0.1.0, frozen as the kernel benchmark's baseline
 * (`js-old`): copied verbatim from src/model/mlp.ts (fillBiasRows, fastTanh, activate,
 * activateBackward — private there), src/optim/optimizers.ts (optimizerStep, interleaved
 * optimiser state), src/losses/losses.ts (rowLogSumExp, expertScores, expertOutputGrad,
 * cooperativeDots) and src/losses/gate-side.ts (gateSoftmax, mixOutputs) as of commit
 * 3115313. Copies, not imports: those modules are being replaced by the kernels, and the
 * baseline must stay what 0.1.0 ran. Float64 arithmetic on float32 storage.
 */
import type { Activation } from '../src/index.js';

/** Every row of z (rows×cols) ← bias (doubling copies). */
export function fillBiasRows(z: Float32Array, bias: Float32Array, rows: number, cols: number): void {
  if (rows === 0) return;
  z.set(bias, 0);
  for (let filled = 1; filled < rows; filled *= 2) z.copyWithin(filled * cols, 0, Math.min(filled, rows - filled) * cols);
}

const T1 = 4.89352455891786e-3, T3 = 6.37261928875436e-4, T5 = 1.48572235717979e-5, T7 = 5.12229709037114e-8;
const T9 = -8.60467152213735e-11, T11 = 2.00018790482477e-13, T13 = -2.76076847742355e-16;
const U0 = 4.89352518554385e-3, U2 = 2.268434632439e-3, U4 = 1.18534705686654e-4, U6 = 1.19825839466702e-6;
const TANH_CLAMP = 7.90531110763549805;

/** tanh(x) as the rational minimax fit, in float64. */
export function fastTanh(v: number): number {
  const x = v > TANH_CLAMP ? TANH_CLAMP : v < -TANH_CLAMP ? -TANH_CLAMP : v;
  const x2 = x * x;
  const p = x * (T1 + x2 * (T3 + x2 * (T5 + x2 * (T7 + x2 * (T9 + x2 * (T11 + x2 * T13))))));
  return p / (U0 + x2 * (U2 + x2 * (U4 + x2 * U6)));
}

/** a ← act(a), n elements. */
export function activate(a: Float32Array, n: number, act: Activation): void {
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

/** delta ← delta ⊙ act'(z), from the activation a. */
export function activateBackward(delta: Float32Array, a: Float32Array, n: number, act: Activation): void {
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

/** One optimiser step (0.1.0): state is n floats (momentum) or 2n interleaved (adam: m, v). */
export function optimizerStep(
  name: 'sgd' | 'momentum' | 'adam',
  cfg: { momentum: number; beta1: number; beta2: number; epsilon: number; weightDecay: number },
  params: Float32Array,
  grads: Float32Array,
  state: Float32Array,
  n: number,
  lr: number,
  t: number,
): void {
  const wd = cfg.weightDecay;
  switch (name) {
    case 'sgd':
      for (let j = 0; j < n; j++) params[j] = params[j]! - lr * (grads[j]! + wd * params[j]!);
      break;
    case 'momentum': {
      const mu = cfg.momentum;
      for (let j = 0; j < n; j++) {
        const v = mu * state[j]! + grads[j]! + wd * params[j]!;
        state[j] = v;
        params[j] = params[j]! - lr * v;
      }
      break;
    }
    case 'adam': {
      const b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.epsilon;
      const step = lr / (1 - Math.pow(b1, t)), invC2 = 1 / (1 - Math.pow(b2, t));
      const a1 = 1 - b1, a2 = 1 - b2;
      for (let j = 0; j < n; j++) {
        const gj = grads[j]! + wd * params[j]!;
        const m = b1 * state[2 * j]! + a1 * gj;
        const v = b2 * state[2 * j + 1]! + a2 * gj * gj;
        state[2 * j] = m;
        state[2 * j + 1] = v;
        params[j] = params[j]! - (step * m) / (Math.sqrt(v * invC2) + eps);
      }
      break;
    }
  }
}

/** log Σ_k exp(a[off + k]) over k < n, shifted by the maximum. */
export function rowLogSumExp(a: ArrayLike<number>, off: number, n: number): number {
  let m = -Infinity;
  for (let k = 0; k < n; k++) if (a[off + k]! > m) m = a[off + k]!;
  if (m === -Infinity) return m;
  let s = 0;
  for (let k = 0; k < n; k++) s += Math.exp(a[off + k]! - m);
  return m + Math.log(s);
}

/** Row-wise log-softmax and softmax of u (rows×E). */
export function gateSoftmax(u: Float32Array, rows: number, E: number, logG: Float32Array, g: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const off = r * E;
    const lse = rowLogSumExp(u, off, E);
    for (let i = 0; i < E; i++) {
      const lg = u[off + i]! - lse;
      logG[off + i] = lg;
      g[off + i] = Math.exp(lg);
    }
  }
}

/** Per-row expert score: e_i = ‖d − o_i‖² (squared errors) or log P_i(y|x) (categorical). */
export function expertScores(
  loss: 'competitive' | 'gaussian' | 'categorical',
  o: Float32Array,
  d: Float32Array,
  labels: Int32Array,
  rows: number,
  K: number,
  scores: Float32Array,
  E: number,
  i: number,
  lse?: Float64Array,
): void {
  if (loss === 'categorical') {
    for (let r = 0; r < rows; r++) {
      const z = rowLogSumExp(o, r * K, K);
      if (lse) lse[r] = z;
      scores[r * E + i] = o[r * K + labels[r]!]! - z;
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    const off = r * K;
    let e = 0;
    for (let k = 0; k < K; k++) {
      const diff = d[off + k]! - o[off + k]!;
      e += diff * diff;
    }
    scores[r * E + i] = e;
  }
}

/** ∂E/∂o_i for one expert: gradOut[r] = w[r,i]·(ref[r] − d[r]) or w·(softmax(z) − onehot). */
export function expertOutputGrad(
  loss: 'cooperative' | 'competitive' | 'gaussian' | 'categorical',
  o: Float32Array,
  d: Float32Array,
  labels: Int32Array,
  ybar: Float32Array,
  weights: Float32Array,
  rows: number,
  K: number,
  E: number,
  i: number,
  gradOut: Float32Array,
  lse?: Float64Array,
): void {
  for (let r = 0; r < rows; r++) {
    const w = weights[r * E + i]!;
    const off = r * K;
    if (loss === 'categorical') {
      const z = lse ? lse[r]! : rowLogSumExp(o, off, K);
      const y = labels[r]!;
      for (let k = 0; k < K; k++) gradOut[off + k] = w * (Math.exp(o[off + k]! - z) - (k === y ? 1 : 0));
    } else {
      const ref = loss === 'cooperative' ? ybar : o;
      for (let k = 0; k < K; k++) gradOut[off + k] = w * (ref[off + k]! - d[off + k]!);
    }
  }
}

/** Cooperative: c_i[r] = (d − ȳ)·(o_i − ȳ) into scores. */
export function cooperativeDots(o: Float32Array, d: Float32Array, ybar: Float32Array, rows: number, K: number, scores: Float32Array, E: number, i: number): void {
  for (let r = 0; r < rows; r++) {
    const off = r * K;
    let c = 0;
    for (let k = 0; k < K; k++) c += (d[off + k]! - ybar[off + k]!) * (o[off + k]! - ybar[off + k]!);
    scores[r * E + i] = c;
  }
}

/** Cooperative mixing: ȳ = Σ_i g_i o_i in expert order (outs holds expert i at i·stride). */
export function mixOutputs(g: Float32Array, outs: Float32Array, stride: number, rows: number, E: number, K: number, ybar: Float32Array): void {
  ybar.fill(0, 0, rows * K);
  for (let i = 0; i < E; i++) {
    const base = i * stride;
    for (let r = 0; r < rows; r++) {
      const gi = g[r * E + i]!;
      const off = r * K;
      for (let k = 0; k < K; k++) ybar[off + k] = ybar[off + k]! + gi * outs[base + off + k]!;
    }
  }
}
