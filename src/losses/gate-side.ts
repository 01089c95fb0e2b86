/**
 * The main thread's share of each error function: from the gate's logits u and the
 * experts' per-row scores (B×E scalars), the batch loss, the posteriors h, the per-row
 * weights the experts need for their output gradients, and ∂E/∂u for the gate.
 * Formulas: see losses.ts. All in log space: log g = u − logsumexp(u), never log(softmax).
 */
import { rowLogSumExp, type LossName } from './losses.js';

/** Row-wise log-softmax and softmax of u (rows×E): logG = u − logsumexp(u), g = exp(logG). */
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

/** Float64 scratch for one row's joint log-scores (grown on demand, never shrunk). */
let joint = new Float64Array(16);

/**
 * Loss, expert weights and gate gradient for `competitive`, `gaussian` and `categorical`,
 * from logG, g and the experts' scores (all rows×E). Writes weights (rows×E), gateGrad =
 * ∂E/∂u (rows×E) and, where given, the posteriors h (rows×E; g for competitive).
 * Returns the mean loss over the rows.
 */
export function combineScores(
  loss: Exclude<LossName, 'cooperative'>,
  logG: Float32Array,
  g: Float32Array,
  scores: Float32Array,
  rows: number,
  E: number,
  weights: Float32Array,
  gateGrad: Float32Array,
  posteriors?: Float32Array,
): number {
  const inv = 1 / rows;
  let total = 0;
  if (joint.length < E) joint = new Float64Array(E);
  for (let r = 0; r < rows; r++) {
    const off = r * E;
    if (loss === 'competitive') {
      // E = Σ g_i e_i;  ∂E/∂u_i = g_i (e_i − Ē),  Ē = Σ_j g_j e_j
      let mean = 0;
      for (let i = 0; i < E; i++) mean += g[off + i]! * scores[off + i]!;
      total += mean;
      for (let i = 0; i < E; i++) {
        const gi = g[off + i]!;
        weights[off + i] = 2 * gi * inv;
        gateGrad[off + i] = gi * (scores[off + i]! - mean) * inv;
        if (posteriors) posteriors[off + i] = gi;
      }
    } else {
      // log(g_i s_i), with log s_i = −½ e_i (gaussian) or log P_i(y|x) (categorical)
      let m = -Infinity;
      for (let i = 0; i < E; i++) {
        const ls = loss === 'gaussian' ? -0.5 * scores[off + i]! : scores[off + i]!;
        const a = logG[off + i]! + ls;
        joint[i] = a;
        if (a > m) m = a;
      }
      let s = 0;
      for (let i = 0; i < E; i++) s += Math.exp(joint[i]! - m);
      const lse = m + Math.log(s);
      total -= lse; // E = −log Σ g_i s_i
      for (let i = 0; i < E; i++) {
        const h = Math.exp(joint[i]! - lse);
        if (posteriors) posteriors[off + i] = h;
        weights[off + i] = h * inv;
        gateGrad[off + i] = (g[off + i]! - h) * inv; // ∂E/∂u_i = g_i − h_i
      }
    }
  }
  return total * inv;
}

/**
 * Cooperative mixing on the main thread: ȳ = Σ_i g_i o_i, summed in expert order so the
 * result does not depend on how experts are sharded over workers (bit-identical for any
 * worker count). `outs` holds expert i's rows×K block at i·stride.
 */
export function mixOutputs(
  g: Float32Array,
  outs: Float32Array,
  stride: number,
  rows: number,
  E: number,
  K: number,
  ybar: Float32Array,
): void {
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

/** Cooperative: mean of ½‖d − ȳ‖² (rows×K), and the experts' weights g/B (rows×E). */
export function cooperativeLoss(
  ybar: Float32Array,
  d: Float32Array,
  g: Float32Array,
  rows: number,
  K: number,
  E: number,
  weights: Float32Array,
): number {
  const inv = 1 / rows;
  let total = 0;
  for (let r = 0; r < rows * K; r++) {
    const diff = d[r]! - ybar[r]!;
    total += 0.5 * diff * diff;
  }
  for (let j = 0; j < rows * E; j++) weights[j] = g[j]! * inv;
  return total * inv;
}

/** Cooperative: ∂E/∂u_i = −g_i c_i / B with the experts' dots c_i = (d − ȳ)·(o_i − ȳ). */
export function cooperativeGateGrad(g: Float32Array, dots: Float32Array, rows: number, E: number, gateGrad: Float32Array): void {
  const inv = 1 / rows;
  for (let j = 0; j < rows * E; j++) gateGrad[j] = -g[j]! * dots[j]! * inv;
}
