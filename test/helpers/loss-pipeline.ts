/**
 * The library's error-function pieces run in the order MixtureStep runs them (gate
 * softmax, expert scores, main-thread combine, expert output gradients, cooperative
 * dots), on given gate logits and expert outputs, so tests can check each product.
 */
import { combineScores, cooperativeGateGrad, cooperativeLoss, gateSoftmax, mixOutputs } from '../../src/losses/gate-side.js';
import { cooperativeDots, expertOutputGrad, expertScores, type LossName } from '../../src/losses/losses.js';

export interface LossPipelineResult {
  /** Batch-mean loss. */
  value: number;
  /** Gate probabilities and their logs (from the logits), B×E. */
  g: Float32Array;
  logG: Float32Array;
  /** Posteriors h (g for the squared errors), B×E. */
  h: Float32Array;
  /** Per-row expert weights handed to the experts, B×E. */
  weights: Float32Array;
  /** ∂E/∂o_i (∂E/∂z_i for categorical): expert i's B×K block at i·B·K. */
  outGrad: Float32Array;
  /** ∂E/∂u, B×E. */
  gateGrad: Float32Array;
  /** Cooperative: ȳ, B×K (zeros otherwise). */
  ybar: Float32Array;
}

/**
 * @param u gate logits B×E
 * @param outs expert outputs, expert i's B×K block at i·B·K (logits for categorical)
 * @param d targets B×K (one-hot rows for classification)
 * @param labels B labels (classification; ignored for regression)
 */
export function runLossPipeline(
  loss: LossName,
  u: Float32Array,
  outs: Float32Array,
  d: Float32Array,
  labels: Int32Array,
  B: number,
  E: number,
  K: number,
): LossPipelineResult {
  const logG = new Float32Array(B * E), g = new Float32Array(B * E);
  const scores = new Float32Array(B * E), weights = new Float32Array(B * E), gateGrad = new Float32Array(B * E);
  const h = new Float32Array(B * E), ybar = new Float32Array(B * K);
  const outGrad = new Float32Array(E * B * K);
  const block = (a: Float32Array, i: number): Float32Array => a.subarray(i * B * K, (i + 1) * B * K);
  gateSoftmax(u, B, E, logG, g);
  let value: number;
  if (loss === 'cooperative') {
    mixOutputs(g, outs, B * K, B, E, K, ybar);
    value = cooperativeLoss(ybar, d, g, B, K, E, weights);
    h.set(g); // the squared errors' "posteriors" are the gate probabilities
  } else {
    for (let i = 0; i < E; i++) expertScores(loss, block(outs, i), d, labels, B, K, scores, E, i);
    value = combineScores(loss, logG, g, scores, B, E, weights, gateGrad, h);
  }
  for (let i = 0; i < E; i++) {
    expertOutputGrad(loss, block(outs, i), d, labels, ybar, weights, B, K, E, i, block(outGrad, i));
    if (loss === 'cooperative') cooperativeDots(block(outs, i), d, ybar, B, K, scores, E, i);
  }
  if (loss === 'cooperative') cooperativeGateGrad(g, scores, B, E, gateGrad);
  return { value, g, logG, h, weights, outGrad, gateGrad, ybar };
}
