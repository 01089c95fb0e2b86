/**
 * Finite-difference checks of every analytic gradient in the library against the float64
 * reference in helpers/reference.ts (written from the formulas, not from src/):
 *   1. the error functions' expert-output gradients ∂E/∂o_i (∂E/∂z_i for categorical) and
 *      gate-logit gradients ∂E/∂u, from the same functions the trainer calls;
 *   2. every parameter of the gate and of every expert, read from the gradient regions
 *      after one real training step of an in-process training session,
 * for every error function × task × expert net × gate net, on the blas and wasm providers.
 *
 * Tolerance (float32 analytic against float64 central differences, ε = 1e-4):
 *   |analytic − numeric| ≤ 1e-3·|numeric| + 1e-5
 * Measured here: the worst |analytic − numeric| over the whole matrix is 3e-6, at a
 * gradient of 11 (float32 rounding through a few layers), and the worst entry uses 6.5% of
 * its tolerance; the central-difference error at ε = 1e-4 in float64 is ~1e-8. The
 * absolute term is small because an expert the gate barely routes to has gradients of
 * only ~1e-2, which a looser bound would let through unchecked. Each check also proves
 * it can fail: the same gradient scaled by 1.05 must violate the tolerance, and the
 * gradients must not all be tiny.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ComputeProvider } from '../src/compute/provider.js';
import { kernelSetFromEnv } from '../src/kernels/index.js';
import { expertShape, gateShape, resolveMixtureConfig, type LossName, type MixtureConfig, type Task } from '../src/model/config.js';
import { mlpParamCount } from '../src/model/mlp.js';
import { allocateParams, type ModelState } from '../src/model/state.js';
import { resolveOptimizer } from '../src/optim/config.js';
import { TrainingSession } from '../src/train/session.js';
import { backendSuite, provider, testRandom, TEST_BACKENDS } from './helpers/backends.js';
import { runLossPipeline } from './helpers/loss-pipeline.js';
import { numericGradient, refBatchLoss, refCase, refNets, refParamCount } from './helpers/reference.js';

const EPS = 1e-4;
const REL = 1e-3;
const ABS = 1e-5;

/** Largest |a − n| / (REL·|n| + ABS) over the entries, and where. ≤ 1 passes. */
function worst(analytic: ArrayLike<number>, numeric: ArrayLike<number>): { ratio: number; at: number; a: number; n: number } {
  let w = { ratio: 0, at: -1, a: 0, n: 0 };
  for (let j = 0; j < numeric.length; j++) {
    const a = analytic[j]!, n = numeric[j]!;
    const ratio = Math.abs(a - n) / (REL * Math.abs(n) + ABS);
    if (!(ratio <= w.ratio)) w = { ratio, at: j, a, n };
  }
  return w;
}

/** Assert analytic ≈ numeric within the tolerance, and that the check is not vacuous. */
function expectGradient(label: string, analytic: ArrayLike<number>, numeric: ArrayLike<number>): void {
  expect(analytic.length, `${label}: length`).toBe(numeric.length);
  const w = worst(analytic, numeric);
  expect(w.ratio, `${label}: entry ${w.at} analytic ${w.a} numeric ${w.n}`).toBeLessThanOrEqual(1);
  let big = 0;
  for (let j = 0; j < numeric.length; j++) big = Math.max(big, Math.abs(numeric[j]!));
  expect(big, `${label}: every numeric gradient is tiny, the check would prove nothing`).toBeGreaterThan(1e-3);
  const scaled = Array.from(analytic, (a) => a * 1.05);
  expect(worst(scaled, numeric).ratio, `${label}: a 5% error passes the tolerance`).toBeGreaterThan(1);
}

/** The error function × task pairs: the 1991 squared errors on regression and on one-hot classes, the NLLs. */
const LOSS_TASKS: { loss: LossName; task: Task }[] = [
  { loss: 'cooperative', task: 'regression' },
  { loss: 'competitive', task: 'regression' },
  { loss: 'gaussian', task: 'regression' },
  { loss: 'categorical', task: 'classification' },
  { loss: 'cooperative', task: 'classification' },
  { loss: 'competitive', task: 'classification' },
  { loss: 'gaussian', task: 'classification' },
];

/** Expert × gate networks: every combination of linear and mlp, and relu on both sides. */
const NETS: { expert: string; gate: string }[] = [
  { expert: 'linear', gate: 'linear' },
  { expert: 'linear', gate: 'mlp:3:sigmoid' },
  { expert: 'mlp:4,3', gate: 'linear' },
  { expert: 'mlp:4,3', gate: 'mlp:3:sigmoid' },
  { expert: 'mlp:5:relu', gate: 'mlp:4,3:relu' },
];

const D = 3, E = 3, B = 5;
const widthOf = (task: Task): number => (task === 'regression' ? 2 : 3);

/** Targets for a batch: real values (regression) or labels and their one-hot rows. */
function makeTargets(task: Task, n: number, K: number, rnd: ReturnType<typeof testRandom>): { t: Float32Array; labels: Int32Array } {
  const t = new Float32Array(n * K);
  const labels = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    if (task === 'regression') for (let k = 0; k < K; k++) t[r * K + k] = rnd.normal();
    else {
      labels[r] = r % K; // every class appears
      t[r * K + labels[r]!] = 1;
    }
  }
  return { t, labels };
}

describe.each(LOSS_TASKS)('error function $loss on $task: ∂E/∂o_i and ∂E/∂u', ({ loss, task }) => {
  const K = widthOf(task);
  const rnd = testRandom(17 + LOSS_TASKS.findIndex((l) => l.loss === loss && l.task === task));
  const u = Float32Array.from({ length: B * E }, () => 1.5 * rnd.normal());
  // Expert i's rows×K block at i·B·K, as the trainer's outs region lays them out.
  const outs = Float32Array.from({ length: E * B * K }, () => rnd.normal());
  const { t: d, labels } = makeTargets(task, B, K, rnd);

  /** The reference batch loss as a function of (u, outs) held in float64 arrays. */
  const u64 = Float64Array.from(u), o64 = Float64Array.from(outs);
  const refLoss = (): number => {
    let s = 0;
    for (let r = 0; r < B; r++) {
      const ur = Array.from(u64.subarray(r * E, (r + 1) * E));
      const orow = Array.from({ length: E }, (_, i) => Array.from(o64.subarray(i * B * K + r * K, i * B * K + (r + 1) * K)));
      s += refCase(loss, ur, orow, Array.from(d.subarray(r * K, (r + 1) * K)), labels[r]!).loss;
    }
    return s / B;
  };

  const { value, g, h: post, ybar, outGrad, gateGrad } = runLossPipeline(loss, u, outs, d, labels, B, E, K);

  it('loss and posteriors match the reference', () => {
    expect(Math.abs(value - refLoss())).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(value)));
    for (let r = 0; r < B; r++) {
      const orow = Array.from({ length: E }, (_, i) => Array.from(o64.subarray(i * B * K + r * K, i * B * K + (r + 1) * K)));
      const rc = refCase(loss, Array.from(u64.subarray(r * E, (r + 1) * E)), orow, Array.from(d.subarray(r * K, (r + 1) * K)), labels[r]!);
      for (let i = 0; i < E; i++) {
        expect(g[r * E + i]).toBeCloseTo(rc.g[i]!, 6);
        expect(post[r * E + i]).toBeCloseTo(rc.h[i]!, 5);
      }
      if (loss === 'cooperative') for (let k = 0; k < K; k++) expect(ybar[r * K + k]).toBeCloseTo(rc.ybar[k]!, 5);
    }
  });

  it('expert output gradients match central differences', () => {
    expectGradient(`${loss}/${task} ∂E/∂o`, outGrad, numericGradient(refLoss, o64, EPS));
  });

  it('gate logit gradients match central differences', () => {
    expectGradient(`${loss}/${task} ∂E/∂u`, gateGrad, numericGradient(refLoss, u64, EPS));
  });
});

/** Every parameter gradient after one training step, per provider and configuration. */
const PARAM_CASES = LOSS_TASKS.flatMap((lt) => NETS.map((n) => ({ ...lt, ...n })));

// On blas only where OpenBLAS loads (or CI requires it): see backendSuite.
for (const backend of TEST_BACKENDS) describe(`parameter gradients of one training step on ${backend}`, backendSuite(backend), () => {
  let p: ComputeProvider;
  beforeAll(async () => {
    p = await provider(backend);
    expect(p.name).toBe(backend);
  });

  it.each(PARAM_CASES)('$loss/$task, expert $expert, gate $gate', async ({ loss, task, expert, gate }) => {
    const K = widthOf(task);
    const c: MixtureConfig = resolveMixtureConfig({ task, inputs: D, outputs: K, experts: E, expert, gate, loss });
    const P = mlpParamCount(expertShape(c)), Pg = mlpParamCount(gateShape(c));
    const nets = refNets(c);
    // The reference counts parameters from its own reading of the layout.
    expect(refParamCount(nets.expert)).toBe(P);
    expect(refParamCount(nets.gate)).toBe(Pg);

    const rows = 7;
    const rnd = testRandom(1000 + PARAM_CASES.findIndex((q) => q.loss === loss && q.task === task && q.expert === expert && q.gate === gate));
    // The dataset (already in model space: standardised inputs, one-hot or real targets).
    const x = Float32Array.from({ length: rows * D }, () => rnd.normal());
    const { t, labels } = makeTargets(task, rows, K, rnd);
    const lr = 0.5;
    const opt = resolveOptimizer({ name: 'sgd', lr });
    const state: ModelState = { config: c, optimizer: opt, params: allocateParams(c, opt), training: { seed: 1, step: 0, epoch: 0, rng: [1, 2, 3, 4] } };
    // Non-zero biases too, so their gradients are checked at a generic point.
    for (let j = 0; j < Pg; j++) state.params.gateParams[j] = 0.8 * rnd.normal();
    for (let j = 0; j < E * P; j++) state.params.expertParams[j] = 0.8 * rnd.normal();
    const session = await TrainingSession.start(state, p, { x, t, labels }, { maxBatch: B, workers: 0, kernels: kernelSetFromEnv() });
    const v = session.views;

    // A batch that is not the first rows in order, so the gathers are exercised too.
    const batch = Int32Array.of(5, 0, 3, 6, 2);
    const bx = new Float64Array(B * D), bt = new Float64Array(B * K), bl = new Int32Array(B);
    batch.forEach((src, r) => {
      bx.set(x.subarray(src * D, (src + 1) * D), r * D);
      bt.set(t.subarray(src * K, (src + 1) * K), r * K);
      bl[r] = labels[src]!;
    });
    const gate64 = Float64Array.from(v.gateParams), experts64 = Float64Array.from(v.expertParams);
    const refLoss = (): number => refBatchLoss(c, gate64, experts64, { n: B, x: bx, t: bt, labels: bl }).loss;
    const expected = refLoss();

    const value = await session.step.run(batch, lr, 1);
    await session.close();
    expect(Math.abs(value - expected), `loss ${value} vs reference ${expected}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(expected)));

    expectGradient('gate parameters', v.gateGrads, numericGradient(refLoss, gate64, EPS));
    const numericExperts = numericGradient(refLoss, experts64, EPS);
    for (let i = 0; i < E; i++) {
      expectGradient(`expert ${i} parameters`, v.expertGrads.subarray(i * P, (i + 1) * P), numericExperts.subarray(i * P, (i + 1) * P));
    }

    // The step applied exactly those gradients: θ ← θ − lr·∇ (sgd, no weight decay).
    for (let j = 0; j < Pg; j++) expect(v.gateParams[j]).toBe(Math.fround(gate64[j]! - lr * v.gateGrads[j]!));
    for (let j = 0; j < E * P; j++) expect(v.expertParams[j]).toBe(Math.fround(experts64[j]! - lr * v.expertGrads[j]!));
  });
});
