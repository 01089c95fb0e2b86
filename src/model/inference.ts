/**
 * Inference on the calling thread, reading the parameters wherever they live (shared
 * memory included): gate probabilities, each expert's output and the mixture's output
 * for standardised inputs, in chunks so scratch memory stays bounded.
 */
import type { Sgemm } from '../compute/provider.js';
import { expertScores, rowLogSumExp } from '../losses/losses.js';
import { combineScores, cooperativeLoss, gateSoftmax } from '../losses/gate-side.js';
import { expertShape, gateShape, type MixtureConfig } from './config.js';
import { MlpWorkspace, mlpForward, mlpParamCount } from './mlp.js';

/** What a forward pass gives for n rows. */
export interface MixtureForward {
  /** Number of rows. */
  n: number;
  /** Gate probabilities g, n×E. */
  gate: Float32Array;
  /** log g, n×E, from the logits (finite where g underflows to 0). */
  logGate: Float32Array;
  /** Expert outputs, E blocks of n×K (expert i at i·n·K); logits for categorical. */
  experts: Float32Array;
  /**
   * The mixture's output, n×K: Σ g_i o_i, or for categorical the class probabilities
   * Σ g_i softmax(z_i). Standardised units for regression.
   */
  mixture: Float32Array;
}

const CHUNK = 1024;

/**
 * Forward pass for n rows of standardised inputs `x` (n×D, row-major): the gate, every
 * expert and the mixture, computed with `gemm` on the parameters as they are now.
 */
export function mixtureForward(
  gemm: Sgemm,
  c: MixtureConfig,
  gateParams: Float32Array,
  expertParams: Float32Array,
  x: Float32Array,
  n: number,
): MixtureForward {
  const { inputs: D, outputs: K, experts: E } = c;
  const eShape = expertShape(c), gShape = gateShape(c);
  const P = mlpParamCount(eShape);
  const rowsMax = Math.min(CHUNK, Math.max(1, n));
  const eWs = new MlpWorkspace(eShape, rowsMax), gWs = new MlpWorkspace(gShape, rowsMax);
  const u = new Float32Array(rowsMax * E);
  const o = new Float32Array(rowsMax * K);
  const gate = new Float32Array(n * E), logGate = new Float32Array(n * E), experts = new Float32Array(E * n * K), mixture = new Float32Array(n * K);
  for (let start = 0; start < n; start += rowsMax) {
    const rows = Math.min(rowsMax, n - start);
    const xc = x.subarray(start * D, (start + rows) * D);
    mlpForward(gemm, gShape, gateParams, xc, rows, u, gWs);
    const g = gate.subarray(start * E, (start + rows) * E);
    gateSoftmax(u, rows, E, logGate.subarray(start * E, (start + rows) * E), g);
    for (let i = 0; i < E; i++) {
      mlpForward(gemm, eShape, expertParams.subarray(i * P, (i + 1) * P), xc, rows, o, eWs);
      experts.set(o.subarray(0, rows * K), i * n * K + start * K);
      for (let r = 0; r < rows; r++) {
        const gi = g[r * E + i]!;
        const off = r * K;
        if (c.loss === 'categorical') {
          const lse = rowLogSumExp(o, off, K);
          for (let k = 0; k < K; k++) mixture[(start + r) * K + k]! += gi * Math.exp(o[off + k]! - lse);
        } else {
          for (let k = 0; k < K; k++) mixture[(start + r) * K + k]! += gi * o[off + k]!;
        }
      }
    }
  }
  return { n, gate, logGate, experts, mixture };
}

/**
 * Mean loss of the whole set under the model's error function, with the same functions
 * the trainer uses. `t` are standardised targets (one-hot for classification), n×K.
 */
export function mixtureLoss(c: MixtureConfig, f: MixtureForward, t: Float32Array, labels: Int32Array): number {
  const { outputs: K, experts: E } = c;
  const n = f.n;
  const w = new Float32Array(n * E);
  // The forward pass's mixture output is ȳ, summed in the same expert order as training.
  if (c.loss === 'cooperative') return cooperativeLoss(f.mixture, t, f.gate, n, K, E, w);
  const scores = new Float32Array(n * E), gg = new Float32Array(n * E);
  for (let i = 0; i < E; i++) expertScores(c.loss, f.experts.subarray(i * n * K, (i + 1) * n * K), t, labels, n, K, scores, E, i);
  return combineScores(c.loss, f.logGate, f.gate, scores, n, E, w, gg);
}
