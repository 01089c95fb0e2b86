/**
 * The library's error-function pieces run in the order a training step runs them (gate
 * log-softmax, dense routing, expert scores, main-side combine, expert output gradients,
 * cooperative dots, routing backward), on given gate logits and expert outputs, in a
 * kernel memory of the current kernel set, so tests can check each product.
 */
import { createKernels, kernelSetFromEnv } from '../../src/kernels/index.js';
import { errorFunction, meanLoss, type ExpertLossBlock, type MainLossViews } from '../../src/losses/index.js';
import { Arena } from '../../src/memory/arena.js';
import { allocateMemory } from '../../src/memory/memory.js';
import type { LossName } from '../../src/model/config.js';

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
  const ef = errorFunction(loss);
  const a = new Arena();
  const id = {
    u: a.reserve(B * E), logG: a.reserve(B * E), g: a.reserve(B * E), outs: a.reserve(E * B * K), d: a.reserve(B * K),
    labels: a.reserve(B, 'i32'), score: a.reserve(E * B), lse: a.reserve(E * B), weight: a.reserve(E * B), dot: a.reserve(E * B),
    dlw: a.reserve(E * B), logW: a.reserve(E * B), gW: a.reserve(E * B), mix: a.reserve(B * K), rowScratch: a.reserve(B),
    outGrad: a.reserve(E * B * K), rowStart: a.reserve(B + 1, 'i32'), rowEntries: a.reserve(E * B, 'i32'),
  };
  const memory = allocateMemory(a.byteLength, 'a loss pipeline', 'test');
  const buf = memory.buffer;
  const f = (i: number): Float32Array => a.f32(buf, i);
  const k = createKernels(memory, kernelSetFromEnv());
  const U = f(id.u), logG = f(id.logG), g = f(id.g), O = f(id.outs), Dv = f(id.d), L = a.i32(buf, id.labels);
  U.set(u);
  O.set(outs);
  Dv.set(d);
  L.set(labels);
  k.logSoftmaxRows(U, B, E, logG, g);
  // Dense entries: expert i's rows are entries i·B … i·B + B − 1; row r's entries r, B + r, ….
  const rowStart = a.i32(buf, id.rowStart), rowEntries = a.i32(buf, id.rowEntries);
  const logW = f(id.logW), gW = f(id.gW);
  for (let r = 0; r < B; r++) {
    rowStart[r] = r * E;
    for (let i = 0; i < E; i++) {
      rowEntries[r * E + i] = i * B + r;
      logW[i * B + r] = logG[r * E + i]!;
      gW[i * B + r] = g[r * E + i]!;
    }
  }
  rowStart[B] = B * E;
  const score = f(id.score), lse = f(id.lse), weight = f(id.weight), dot = f(id.dot), mix = f(id.mix), outGrad = f(id.outGrad), dlw = f(id.dlw);
  const block = (i: number): ExpertLossBlock => ({
    rows: B, K,
    out: O.subarray(i * B * K, (i + 1) * B * K),
    target: Dv, labels: L,
    score: score.subarray(i * B, (i + 1) * B), lse: lse.subarray(i * B, (i + 1) * B),
    weight: weight.subarray(i * B, (i + 1) * B), mix, dot: dot.subarray(i * B, (i + 1) * B),
    gradOut: outGrad.subarray(i * B * K, (i + 1) * B * K),
  });
  for (let i = 0; i < E; i++) ef.expertScores(k, block(i));
  if (ef.mixesOutputs) {
    k.fill(mix, B * K, 0);
    for (let i = 0; i < E; i++) k.mixAccumulate(mix, O.subarray(i * B * K), gW.subarray(i * B), 1, 0, B, K);
  }
  const main: MainLossViews = { rows: B, K, rowStart, rowEntries, logWeight: logW, gateWeight: gW, score, dot, target: Dv, mix, rowScratch: f(id.rowScratch), weight, dLogWeight: dlw, normalized: true };
  const value = meanLoss(ef, main);
  for (let i = 0; i < E; i++) ef.expertOutputGrad(k, block(i));
  if (ef.gateGradAfterBackward) ef.gateGrad!(main, 0, B);
  // Dense routing backward: ∂E/∂u_i = ∂E/∂log g_i − g_i Σ_j ∂E/∂log g_j.
  const gateGrad = new Float32Array(B * E), weights = new Float32Array(B * E), h = new Float32Array(B * E);
  for (let r = 0; r < B; r++) {
    let sum = 0;
    for (let i = 0; i < E; i++) sum += dlw[i * B + r]!;
    for (let i = 0; i < E; i++) {
      gateGrad[r * E + i] = dlw[i * B + r]! - g[r * E + i]! * sum;
      weights[r * E + i] = weight[i * B + r]!;
      // The NLLs' ∂E/∂log g is −h/B; the squared errors' "posteriors" are the gate's.
      h[r * E + i] = loss === 'gaussian' || loss === 'categorical' ? -dlw[i * B + r]! * B : g[r * E + i]!;
    }
  }
  return { value, g: g.slice(), logG: logG.slice(), h, weights, outGrad: outGrad.slice(), gateGrad, ybar: ef.mixesOutputs ? mix.slice() : new Float32Array(B * K) };
}
