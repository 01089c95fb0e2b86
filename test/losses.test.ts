/**
 * The four error functions against values worked out by hand on a two-case, two-expert
 * example, then their numerics at huge logits. The same hand values also check the
 * float64 reference (helpers/reference.ts) that the gradient tests trust.
 *
 * The example (B = 2 cases, E = 2 experts; gradients carry the batch mean's 1/B = ½):
 *   case 1: u = [0, 0]     → g = [½, ½]
 *   case 2: u = [ln 3, 0]  → g = [¾, ¼]
 * Regression, K = 1:
 *   case 1: o = [1, 3], d = 2      (e = [1, 1])
 *   case 2: o = [0, 2], d = 0      (e = [0, 4])
 * Categorical, K = 2 classes, expert logits z (softmax(ln 3, 0) = [¾, ¼]):
 *   case 1: label 0, z_1 = [ln 3, 0] → P_1 = [¾, ¼];  z_2 = [0, 0] → P_2 = [½, ½]
 *   case 2: label 1, z_1 = [0, 0]    → P_1 = [½, ½];  z_2 = [0, ln 3] → P_2 = [¼, ¾]
 */
import { describe, expect, it } from 'vitest';
import { createKernels, kernelSetFromEnv } from '../src/kernels/index.js';
import { InferenceEngine } from '../src/engine/inference.js';
import { resolveMixtureConfig, type LossName, type MixtureConfig } from '../src/model/config.js';
import { runLossPipeline, type LossPipelineResult } from './helpers/loss-pipeline.js';
import { refCase } from './helpers/reference.js';

const LN3 = Math.log(3);
const B = 2, E = 2;
const U = Float32Array.of(0, 0, LN3, 0);

const REG = {
  K: 1,
  // expert 1's block (cases 1, 2), then expert 2's
  outs: Float32Array.of(1, 0, 3, 2),
  d: Float32Array.of(2, 0),
  labels: Int32Array.of(0, 0),
};
const CAT = {
  K: 2,
  outs: Float32Array.of(LN3, 0, 0, 0, /* expert 2 */ 0, 0, 0, LN3),
  d: Float32Array.of(1, 0, 0, 1),
  labels: Int32Array.of(0, 1),
};

interface Hand {
  loss: number;
  h: number[];
  /** ∂E/∂o in the outs layout. */
  outGrad: number[];
  gateGrad: number[];
}

// Gaussian, case 2: Σ g_i exp(−½e_i) = ¾·1 + ¼·e^{−2}; h_2 = ¼e^{−2} / (¾ + ¼e^{−2}).
const S2 = 0.75 + 0.25 * Math.exp(-2);
const H1 = 0.75 / S2, H2 = (0.25 * Math.exp(-2)) / S2;

const HAND: Record<LossName, Hand> = {
  // ȳ: case 1 = ½·1 + ½·3 = 2 → E = 0; case 2 = ¾·0 + ¼·2 = ½ → E = ½(0 − ½)² = ⅛. Mean 1/16.
  // ∂E/∂o_i = −g_i(d − ȳ)/B: case 1 all 0; case 2: −¾(−½)/2 = 3/16, −¼(−½)/2 = 1/16.
  // ∂E/∂u_i = −g_i(d − ȳ)(o_i − ȳ)/B: case 2: −¾(−½)(−½)/2 = −3/32, −¼(−½)(3/2)/2 = 3/32.
  cooperative: { loss: 1 / 16, h: [0.5, 0.5, 0.75, 0.25], outGrad: [0, 3 / 16, 0, 1 / 16], gateGrad: [0, 0, -3 / 32, 3 / 32] },
  // E: case 1 = ½·1 + ½·1 = 1; case 2 = ¾·0 + ¼·4 = 1. Mean 1.
  // ∂E/∂o_i = −2g_i(d − o_i)/B: case 1: −2·½·1/2 = −½, −2·½·(−1)/2 = ½; case 2: 0, −2·¼·(−2)/2 = ½.
  // ∂E/∂u_i = g_i(e_i − Ē)/B: case 1: Ē = 1 → 0, 0; case 2: Ē = 1 → ¾(−1)/2 = −⅜, ¼·3/2 = ⅜.
  competitive: { loss: 1, h: [0.5, 0.5, 0.75, 0.25], outGrad: [-0.5, 0, 0.5, 0.5], gateGrad: [0, 0, -3 / 8, 3 / 8] },
  // E: case 1 = −log(½e^{−½} + ½e^{−½}) = ½, h = [½, ½]; case 2 = −log S2 (0.2435582…).
  // ∂E/∂o_i = −h_i(d − o_i)/B: case 1: −½·1/2 = −¼, −½(−1)/2 = ¼; case 2: 0, −h_2(−2)/2 = h_2.
  // ∂E/∂u_i = (g_i − h_i)/B: case 1: 0, 0; case 2: (¾ − h_1)/2, (¼ − h_2)/2.
  gaussian: { loss: (0.5 - Math.log(S2)) / 2, h: [0.5, 0.5, H1, H2], outGrad: [-0.25, 0, 0.25, H2], gateGrad: [0, 0, (0.75 - H1) / 2, (0.25 - H2) / 2] },
  // Σ g_i P_i(y): case 1 = ½·¾ + ½·½ = ⅝, h = [⅗, ⅖]; case 2 = ¾·½ + ¼·¾ = 9/16, h = [⅔, ⅓].
  // E = (log(8/5) + log(16/9)) / 2.
  // ∂E/∂z_i = h_i(P_i − onehot(y))/B:
  //   case 1: z_1 = ⅗([¾, ¼] − [1, 0])/2 = [−3/40, 3/40];  z_2 = ⅖([½, ½] − [1, 0])/2 = [−1/10, 1/10]
  //   case 2: z_1 = ⅔([½, ½] − [0, 1])/2 = [1/6, −1/6];    z_2 = ⅓([¼, ¾] − [0, 1])/2 = [1/24, −1/24]
  // ∂E/∂u_i = (g_i − h_i)/B: case 1: (½ − ⅗)/2 = −1/20, 1/20; case 2: (¾ − ⅔)/2 = 1/24, −1/24.
  categorical: {
    loss: (Math.log(8 / 5) + Math.log(16 / 9)) / 2,
    h: [3 / 5, 2 / 5, 2 / 3, 1 / 3],
    outGrad: [-3 / 40, 3 / 40, 1 / 6, -1 / 6, -1 / 10, 1 / 10, 1 / 24, -1 / 24],
    gateGrad: [-1 / 20, 1 / 20, 1 / 24, -1 / 24],
  },
};

/** float32 arithmetic on these exact-ish numbers (ln 3 rounds to float32): 6 decimals. */
const close = (actual: ArrayLike<number>, expected: readonly number[], what: string): void => {
  expect(actual.length, what).toBe(expected.length);
  expected.forEach((e, j) => expect(actual[j], `${what}[${j}]`).toBeCloseTo(e, 6));
};

const LOSSES: LossName[] = ['cooperative', 'competitive', 'gaussian', 'categorical'];

/**
 * An inference engine for a one-input mixture of linear experts and a linear gate whose
 * outputs at x = 0 and x = 1 are the example's cases 1 and 2: o = w·x + b, so b = case 1
 * and w = case 2 − case 1 (per expert and output); the gate likewise from `u` (B×E, or one
 * case at x = 0 where it holds one case).
 */
function exampleModel(c: MixtureConfig, outs: Float32Array, K: number, u: Float32Array = U): InferenceEngine {
  const E = c.experts, cases = u.length / E;
  const at = (a: ArrayLike<number>, block: number, stride: number, cse: number, j: number): number => a[block * cases * stride + cse * stride + j]!;
  const experts = new Float32Array(E * 2 * K);
  for (let i = 0; i < E; i++) {
    for (let j = 0; j < K; j++) {
      const c0 = at(outs, i, K, 0, j), c1 = cases > 1 ? at(outs, i, K, 1, j) : c0;
      experts[i * 2 * K + j] = c1 - c0; // W (1×K)
      experts[i * 2 * K + K + j] = c0; // b
    }
  }
  const gate = new Float32Array(2 * E);
  for (let i = 0; i < E; i++) {
    const u0 = u[i]!, u1 = cases > 1 ? u[E + i]! : u0;
    gate[i] = u1 - u0;
    gate[E + i] = u0;
  }
  const set = kernelSetFromEnv();
  return new InferenceEngine(naiveGemm, (m) => createKernels(m, set), c, gate, experts);
}

/** C ← alpha·A·B + beta·C on the small shapes of these examples (row-major, no transposes). */
const naiveGemm = (tA: boolean, tB: boolean, M: number, N: number, Kd: number, alpha: number, A: Float32Array, Bm: Float32Array, beta: number, C: Float32Array): void => {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < Kd; k++) s += (tA ? A[k * M + i]! : A[i * Kd + k]!) * (tB ? Bm[j * Kd + k]! : Bm[k * N + j]!);
      C[i * N + j] = alpha * s + (beta === 0 ? 0 : beta * C[i * N + j]!);
    }
  }
};

describe.each(LOSSES)('%s on the hand-worked example', (loss) => {
  const ex = loss === 'categorical' ? CAT : REG;
  const hand = HAND[loss];
  const r: LossPipelineResult = runLossPipeline(loss, U, ex.outs, ex.d, ex.labels, B, E, ex.K);

  it('loss, gate probabilities and posteriors', () => {
    expect(r.value).toBeCloseTo(hand.loss, 6);
    close(r.g, [0.5, 0.5, 0.75, 0.25], 'g');
    close(r.h, hand.h, 'h');
  });

  it('expert output gradients and gate gradient', () => {
    close(r.outGrad, hand.outGrad, '∂E/∂o');
    close(r.gateGrad, hand.gateGrad, '∂E/∂u');
  });

  it('the weights handed to the experts are g/B, 2g/B or h/B', () => {
    const factor = loss === 'competitive' ? 2 / B : 1 / B;
    const base = loss === 'gaussian' || loss === 'categorical' ? hand.h : [0.5, 0.5, 0.75, 0.25];
    close(r.weights, base.map((v) => v * factor), 'weights');
  });

  it('evaluation (the inference engine on a model that outputs the example) gives the same loss', () => {
    const c = resolveMixtureConfig({ task: loss === 'categorical' ? 'classification' : 'regression', inputs: 1, outputs: ex.K, experts: E, loss });
    const engine = exampleModel(c, ex.outs, ex.K);
    const f = engine.forward(Float32Array.of(0, 1), B, { t: ex.d, labels: ex.labels });
    expect(f.loss).toBeCloseTo(hand.loss, 6);
    close(f.experts, Array.from(ex.outs), 'the model reproduces the example');
  });

  it('the float64 reference gives the hand values', () => {
    let total = 0;
    for (let c = 0; c < B; c++) {
      const o = [0, 1].map((i) => Array.from(ex.outs.subarray(i * B * ex.K + c * ex.K, i * B * ex.K + (c + 1) * ex.K)));
      const rc = refCase(loss, [c === 0 ? 0 : LN3, 0], o, Array.from(ex.d.subarray(c * ex.K, (c + 1) * ex.K)), ex.labels[c]!);
      total += rc.loss / B;
      // ln 3 enters as float32 (the inputs are float32 arrays), so 8 digits, not 15.
      rc.h.forEach((v, i) => expect(v).toBeCloseTo(hand.h[c * E + i]!, 8));
    }
    expect(total).toBeCloseTo(hand.loss, 8);
  });
});

describe('huge logits (u, z ~ ±1000) stay finite', () => {
  // One case, two experts; the gate puts all but e^{−2000} of its mass on expert 1.
  const u = Float32Array.of(1000, -1000);
  const allFinite = (r: LossPipelineResult): void => {
    for (const [name, a] of Object.entries({ g: r.g, h: r.h, weights: r.weights, outGrad: r.outGrad, gateGrad: r.gateGrad })) {
      for (const v of a) expect(Number.isFinite(v), `${name} holds ${v}`).toBe(true);
    }
  };

  it('categorical: expert logits ±1000, the favoured expert wrong', () => {
    // Expert 1: z = [−1000, 1000], label 0 → log P_1 = −2000; expert 2: z = [0, 0] → log P_2 = −ln 2.
    // log g = [0, −2000]: E = −logsumexp(−2000, −2000 − ln 2) = 2000 − ln(3/2), h = [⅔, ⅓].
    const outs = Float32Array.of(-1000, 1000, 0, 0);
    const r = runLossPipeline('categorical', u, outs, Float32Array.of(1, 0), Int32Array.of(0), 1, 2, 2);
    allFinite(r);
    // combineScores keeps the joint log-scores (≈ −2000) in a float32 scratch, whose
    // spacing there is 1.2e-4: h and E are good to ~1e-4 at this scale, not 1e-7.
    expect(r.value).toBeCloseTo(2000 - Math.log(1.5), 3);
    expect(r.h[0]).toBeCloseTo(2 / 3, 4);
    expect(r.h[1]).toBeCloseTo(1 / 3, 4);
    // ∂E/∂z_1 = ⅔([0, 1] − [1, 0]) = [−⅔, ⅔]
    expect(r.outGrad[0]).toBeCloseTo(-2 / 3, 4);
    expect(r.outGrad[1]).toBeCloseTo(2 / 3, 4);
    // Evaluation takes log g from the logits too: log(softmax) would be log 0 = −∞ for
    // expert 2 and lose its ln(3/2) share. A one-input model whose outputs are the case's
    // at x = 0 (biases only).
    const c = resolveMixtureConfig({ task: 'classification', inputs: 1, outputs: 2, experts: 2, loss: 'categorical' });
    const engine = exampleModel(c, outs, 2, u);
    const ev = engine.forward(Float32Array.of(0), 1, { t: Float32Array.of(1, 0), labels: Int32Array.of(0) });
    expect(ev.loss).toBeCloseTo(2000 - Math.log(1.5), 3);
    expect(r.logG[1]).toBe(-2000);
  });

  it('gaussian: outputs 1000 away from the target', () => {
    // e = [10⁶, 0]: log(g_i s_i) = [−5·10⁵, −2000] → E = 2000, h = [0, 1] (e^{−498000} underflows).
    const outs = Float32Array.of(1000, 0);
    const r = runLossPipeline('gaussian', u, outs, Float32Array.of(0), Int32Array.of(0), 1, 2, 1);
    allFinite(r);
    expect(r.value).toBeCloseTo(2000, 3);
    close(r.h, [0, 1], 'h');
    close(r.gateGrad, [1, -1], '∂E/∂u');
  });

  it.each(['competitive', 'cooperative'] as const)('%s: outputs and logits ±1000', (loss) => {
    // g = [1, 0] in float: E is expert 1's error alone, e_1 = 1000² (competitive) or ½·1000².
    const outs = Float32Array.of(1000, -1000);
    const r = runLossPipeline(loss, u, outs, Float32Array.of(0), Int32Array.of(0), 1, 2, 1);
    allFinite(r);
    expect(r.value).toBeCloseTo(loss === 'competitive' ? 1e6 : 5e5, 0);
  });

  it('the reference agrees at huge logits', () => {
    const rc = refCase('categorical', [1000, -1000], [[-1000, 1000], [0, 0]], [1, 0], 0);
    expect(rc.loss).toBeCloseTo(2000 - Math.log(1.5), 9);
  });
});
