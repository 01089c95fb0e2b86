/**
 * Finite-difference checks through every sparse routing and balancing loss: one real
 * training step of an in-process session computes ∂E/∂θ for the gate, every expert and
 * the noise network; the float64 reference (helpers/reference.ts, written from the
 * formulas) recomputes the loss with the step's routing decision and noise sample held
 * fixed, and central differences of it must match. Same tolerance as the dense checks
 * (test/gradients.test.ts): |analytic − numeric| ≤ 1e-3·|numeric| + 1e-5, and each check
 * proves it can fail (a 5% error must not pass).
 */
import { describe, expect, it } from 'vitest';
import { loadExactProvider } from '../src/compute/load.js';
import { kernelSetFromEnv } from '../src/kernels/index.js';
import { expertShape, gateShape, resolveMixtureConfig, type LossName, type Task } from '../src/model/config.js';
import { mlpParamCount } from '../src/model/mlp.js';
import { allocateParams, noiseSeed, type ModelState } from '../src/model/state.js';
import { resolveOptimizer } from '../src/optim/config.js';
import { Rng } from '../src/rng.js';
import { TrainingSession } from '../src/train/session.js';
import { testRandom } from './helpers/backends.js';
import { numericGradient, refRoutedBatchLoss, type RefFrozenRouting } from './helpers/reference.js';

const EPS = 1e-4, REL = 1e-3, ABS = 1e-5;

function expectGradient(label: string, analytic: ArrayLike<number>, numeric: ArrayLike<number>): void {
  expect(analytic.length, `${label}: length`).toBe(numeric.length);
  const ratio = (a: ArrayLike<number>): { r: number; at: number } => {
    let w = { r: 0, at: -1 };
    for (let j = 0; j < numeric.length; j++) {
      const r = Math.abs(a[j]! - numeric[j]!) / (REL * Math.abs(numeric[j]!) + ABS);
      if (!(r <= w.r)) w = { r, at: j };
    }
    return w;
  };
  const w = ratio(analytic);
  expect(w.r, `${label}: entry ${w.at} analytic ${analytic[w.at]} numeric ${numeric[w.at]}`).toBeLessThanOrEqual(1);
  let big = 0;
  for (let j = 0; j < numeric.length; j++) big = Math.max(big, Math.abs(numeric[j]!));
  expect(big, `${label}: every numeric gradient is tiny, the check would prove nothing`).toBeGreaterThan(1e-3);
  expect(ratio(Array.from(analytic, (a) => a * 1.05)).r, `${label}: a 5% error passes`).toBeGreaterThan(1);
}

interface Case {
  routing: string;
  loss: LossName;
  task: Task;
  noise?: boolean;
  balanceLoss?: number;
  zLoss?: number;
  expert?: string;
  gate?: string;
}

const CASES: Case[] = [
  { routing: 'topk:2', loss: 'gaussian', task: 'regression', expert: 'mlp:4', gate: 'mlp:3' },
  { routing: 'topk:2', loss: 'competitive', task: 'regression' },
  { routing: 'topk:2', loss: 'cooperative', task: 'regression', expert: 'mlp:3:relu' },
  { routing: 'topk:3', loss: 'categorical', task: 'classification', expert: 'mlp:4' },
  { routing: 'topk:2', loss: 'gaussian', task: 'regression', noise: true, expert: 'mlp:4' },
  { routing: 'topk:1', loss: 'cooperative', task: 'regression', expert: 'mlp:4' },
  { routing: 'switch', loss: 'cooperative', task: 'regression', expert: 'mlp:4', gate: 'mlp:3:sigmoid' },
  { routing: 'expert-choice:1.5', loss: 'gaussian', task: 'regression', expert: 'mlp:4' },
  { routing: 'expert-choice:1', loss: 'categorical', task: 'classification' },
  { routing: 'expert-choice:2', loss: 'cooperative', task: 'regression' },
  { routing: 'topk:2', loss: 'gaussian', task: 'regression', balanceLoss: 0.3, zLoss: 0.05 },
  { routing: 'switch', loss: 'cooperative', task: 'regression', balanceLoss: 0.5, zLoss: 0.1 },
  { routing: 'expert-choice:1', loss: 'competitive', task: 'regression', zLoss: 0.1 },
  { routing: 'topk:2', loss: 'gaussian', task: 'regression', noise: true, zLoss: 0.1, expert: 'mlp:4' },
  { routing: 'topk:3', loss: 'cooperative', task: 'regression', noise: true, balanceLoss: 0.3, zLoss: 0.05 },
];

const D = 3, E = 4, B = 8;

describe.each(CASES)('$routing, $loss on $task (noise $noise, balance $balanceLoss, z $zLoss): ∂E/∂θ of one step', (k) => {
  it('matches central differences of the float64 reference with the routing held fixed', async () => {
    const provider = await loadExactProvider('wasm');
    const K = k.task === 'regression' ? 2 : 3;
    const config = resolveMixtureConfig({
      task: k.task, inputs: D, outputs: K, experts: E, loss: k.loss, routing: k.routing, expert: k.expert ?? 'linear', gate: k.gate ?? 'linear',
      ...(k.noise ? { noise: true } : {}), ...(k.balanceLoss ? { balanceLoss: k.balanceLoss } : {}), ...(k.zLoss ? { zLoss: k.zLoss } : {}), blockRows: 3,
    });
    const opt = resolveOptimizer({ name: 'sgd', lr: 0.1 });
    const rnd = testRandom(CASES.indexOf(k) + 300);
    const params = allocateParams(config, opt);
    for (const a of [params.gateParams, params.expertParams, params.noiseParams]) for (let j = 0; j < a.length; j++) a[j] = 0.9 * rnd.normal();
    const state: ModelState = { config, optimizer: opt, params, training: { seed: 1, step: 0, epoch: 0, rng: [1, 2, 3, 4], ...(k.noise ? { noiseRng: new Rng(noiseSeed(5)).state() } : {}) } };
    const x = Float32Array.from({ length: B * D }, () => rnd.normal());
    const t = new Float32Array(B * K), labels = new Int32Array(B);
    for (let r = 0; r < B; r++) {
      if (k.task === 'regression') for (let j = 0; j < K; j++) t[r * K + j] = rnd.normal();
      else {
        labels[r] = r % K;
        t[r * K + labels[r]!] = 1;
      }
    }
    const gate64 = Float64Array.from(params.gateParams), experts64 = Float64Array.from(params.expertParams), noise64 = Float64Array.from(params.noiseParams);
    const session = await TrainingSession.start(state, provider, { x, t, labels }, { maxBatch: B, workers: 0, kernels: kernelSetFromEnv() });
    const v = session.views;
    const value = await session.step.run(Int32Array.from({ length: B }, (_, r) => r), 0.1, 1);
    await session.close();

    // The step's routing decision and noise sample, read back from the session.
    const chosen = Array.from({ length: B }, () => new Array<boolean>(E).fill(false));
    for (let e = 0; e < v.expertStart[E]!; e++) chosen[v.entryRow[e]!]![v.entryExpert[e]!] = true;
    const frozen: RefFrozenRouting = {
      weights: config.routing.kind === 'topk' && config.routing.k > 1 ? 'topk' : 'prob',
      chosen,
      balanceLoss: k.balanceLoss ?? 0,
      zLoss: k.zLoss ?? 0,
      ...(k.noise ? { eps: Array.from({ length: B }, (_, r) => Array.from(v.gateNoise.subarray(r * E, (r + 1) * E))) } : {}),
    };
    if (config.routing.kind === 'expert-choice') expect(chosen.flat().filter(Boolean).length).toBe(E * Math.min(B, Math.ceil((config.routing.k * B) / E)));
    else if (config.routing.kind !== 'dense') expect(chosen.every((row) => row.filter(Boolean).length === config.routing.k)).toBe(true);
    const batch = { n: B, x: Float64Array.from(x), t: Float64Array.from(t), labels };
    const ref = (): number => refRoutedBatchLoss(config, gate64, experts64, noise64, batch, frozen);
    expect(Math.abs(value - ref()), `loss ${value} vs reference ${ref()}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(value)));

    expectGradient('gate', v.gateGrads, numericGradient(ref, gate64, EPS));
    const P = mlpParamCount(expertShape(config));
    const numericExperts = numericGradient(ref, experts64, EPS);
    for (let i = 0; i < E; i++) {
      const analytic = v.expertGrads.subarray(i * P, (i + 1) * P);
      const numeric = numericExperts.subarray(i * P, (i + 1) * P);
      if (chosen.some((row) => row[i])) expectGradient(`expert ${i}`, analytic, numeric);
      // An expert no row reached gets a zero gradient (and the normal optimiser step).
      else expect(Array.from(analytic).every((g) => g === 0), `expert ${i} got no rows: zero gradient`).toBe(true);
    }
    if (k.noise) expectGradient('noise network', v.noiseGrads, numericGradient(ref, noise64, EPS));
    expect(mlpParamCount(gateShape(config))).toBe(gate64.length);
  });
});
