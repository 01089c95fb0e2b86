/**
 * The routing plan (src/engine/routing-plan.ts) is the one definition of routing:
 *  - the ONNX graph and the PyTorch example choose the same experts as the plan, on
 *    10,000 rows with exact ties and a non-zero bias (scores exact in every runtime);
 *  - its stages keep their contracts (entries expert-major with rows ascending, each
 *    row's entries in expert order, blocks of at most R rows, every block scheduled);
 *  - a rule that exists only in this file gets training's bit-identity across worker
 *    counts and predict's routed-only computation without touching anything else;
 *  - predict computes only the routed experts (Prediction.routed), allExperts the rest.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { fitStandardizer } from '../src/data/standardize.js';
import { InferenceEngine } from '../src/engine/inference.js';
import { RoutingPlan, routingRule, type GateScores, type PlanBlocks, type PlanEntries, type RoutingRule } from '../src/engine/routing-plan.js';
import { mixtureToOnnx, type OnnxChoice } from '../src/io/onnx/export.js';
import { stateToSafetensors } from '../src/io/safetensors-state.js';
import { createKernels, kernelSetFromEnv } from '../src/kernels/index.js';
import { Mixture, type CreateOptions } from '../src/mixture.js';
import { cloneState } from '../src/model/state.js';
import { findTorchPython } from '../src/python/find-torch.js';
import { Rng } from '../src/rng.js';
import { trainingData } from '../src/train/data.js';
import { TrainingSession } from '../src/train/session.js';
import { expectSame } from './helpers/params.js';
import { drain, RANGE_WORK, WHOLE } from '../src/engine/slices.js';

const EXAMPLE_DIR = fileURLToPath(new URL('../examples/pytorch/', import.meta.url));
const torch = await findTorchPython();
const dir = await mkdtemp(join(tmpdir(), 'moe-plan-'));
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- exact scores

const E = 8, ROWS = 10_000;

/**
 * A mixture whose gate logits are its inputs exactly: E inputs, a linear gate of identity
 * weights and zero bias, identity standardisation. Inputs are multiples of 1/2 in [−1, 1]
 * and the bias multiples of 1/4, so u and fround(u + b) are exact in float32 and float64,
 * in every runtime, and equal scores (ties) are frequent.
 */
async function exactMixture(routing: string, loss: CreateOptions['loss'], bias: boolean): Promise<Mixture> {
  const m = await Mixture.create({ task: 'regression', inputs: E, outputs: 1, experts: E, expert: 'linear', gate: 'linear', routing, loss, seed: 1 });
  const g = m.params.gateParams;
  g.fill(0);
  for (let d = 0; d < E; d++) g[d * E + d] = 1;
  if (bias) m.params.routerBias.set([0.25, -0.5, 0, 0.5, -0.25, 0.75, 0, -1]);
  m.state.inputScaler = { mean: new Array<number>(E).fill(0), std: new Array<number>(E).fill(1) };
  m.state.targetScaler = { mean: [0], std: [1] };
  return m;
}

/** ROWS×E inputs from {−1, −½, 0, ½, 1}; every 7th row repeats an earlier one. */
function exactInputs(seed = 1): Float32Array {
  const rng = new Rng(seed), x = new Float32Array(ROWS * E);
  for (let r = 0; r < ROWS; r++) {
    if (r % 7 === 6) x.copyWithin(r * E, (r - 3) * E, (r - 2) * E);
    else for (let i = 0; i < E; i++) x[r * E + i] = (Math.floor(rng.next() * 5) - 2) / 2;
  }
  return x;
}

/** A rows×E 0/1 mask as one string per row. */
function maskRows(mask: ArrayLike<number | boolean>, rows: number): string[] {
  const out: string[] = [];
  for (let r = 0; r < rows; r++) {
    let s = '';
    for (let i = 0; i < E; i++) s += mask[r * E + i] ? '1' : '0';
    out.push(s);
  }
  return out;
}

/** The PyTorch example's choice (`LocalExperts.chosen`) for `x`, one mask string per row. */
async function torchChosen(m: Mixture, x: Float32Array, batch: boolean): Promise<string[]> {
  const model = join(dir, `m${Math.random().toString(36).slice(2)}.safetensors`), input = model.replace(/safetensors$/, 'f32');
  await writeFile(model, stateToSafetensors(cloneState(m.state)));
  await writeFile(input, x);
  const script = `
import sys, torch
sys.path.insert(0, ${JSON.stringify(EXAMPLE_DIR)})
import local_experts as le
model, _, _ = le.load_model(${JSON.stringify(model)})
x = torch.frombuffer(bytearray(open(${JSON.stringify(input)}, 'rb').read()), dtype=torch.float32).reshape(-1, ${E})
with torch.no_grad():
    u = model.gate(model.standardize(x))
    mask = model.chosen(u, batch=${batch ? 'True' : 'False'})
sys.stdout.write('\\n'.join(''.join('1' if v else '0' for v in row) for row in mask.tolist()))
`;
  const stdout = await new Promise<string>((resolve, reject) => {
    const env = { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };
    execFile(torch.python!, ['-c', script], { env, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 }, (err, out, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(out)));
  });
  return stdout.trim().split('\n');
}

/** The ONNX graph's choice: the experts its `gate` output weighs (every kept weight is > 0 here). */
async function onnxChosen(m: Mixture, x: Float32Array): Promise<string[]> {
  const session = await ort.InferenceSession.create(mixtureToOnnx(cloneState(m.state)));
  try {
    const got = await session.run({ x: new ort.Tensor('float32', x, [x.length / E, E]) });
    const gate = got.gate!.data as Float32Array;
    return maskRows(Array.from(gate, (g) => g > 0), x.length / E);
  } finally {
    await session.release();
  }
}

const EXPORTED = [
  { routing: 'topk:2', loss: 'gaussian', bias: true },
  { routing: 'topk:3', loss: 'competitive', bias: true },
  { routing: 'topk:1', loss: 'cooperative', bias: true },
  { routing: 'switch', loss: 'cooperative', bias: true },
  { routing: 'topk:2', loss: 'gaussian', bias: false },
] as const;

describe('the ONNX graph and the PyTorch example choose what the plan chooses (10,000 rows, ties, bias)', () => {
  it.each(EXPORTED)('$routing (bias $bias)', async ({ routing, loss, bias }) => {
    const m = await exactMixture(routing, loss, bias);
    const x = exactInputs();
    const p = m.predict(x);
    const plan = maskRows(p.routed, ROWS);
    // Ties decide: rows where the K-th and (K+1)-th best biased scores are equal exist.
    const K = routing === 'switch' ? 1 : Number(routing.split(':')[1]);
    let tied = 0;
    for (let r = 0; r < ROWS; r++) {
      const s = Array.from({ length: E }, (_, i) => Math.fround(x[r * E + i]! + (bias ? m.params.routerBias[i]! : 0))).sort((a, b) => b - a);
      if (s[K - 1] === s[K]) tied++;
    }
    expect(tied).toBeGreaterThan(ROWS / 10);
    for (const row of plan) expect(row.replaceAll('0', '').length).toBe(K);
    const onnx = await onnxChosen(m, x);
    expect(onnx.findIndex((row, r) => row !== plan[r]), 'first row where ONNX differs').toBe(-1);
    if (torch.python) {
      const py = await torchChosen(m, x, false);
      expect(py.findIndex((row, r) => row !== plan[r]), 'first row where PyTorch differs').toBe(-1);
    }
  }, 120_000);

  it.skipIf(!torch.python)('expert-choice: predict (each row its ⌈C⌉ best by log p) and training (each expert its ⌈C·B/E⌉ rows) as the example', async () => {
    const m = await exactMixture('expert-choice:2', 'gaussian', false);
    // Rows from 40 patterns whose log p differ by ≥ 1e-3 per expert where they differ, so
    // float32 rounding cannot reorder them in any runtime; equal rows tie exactly.
    const rng = new Rng(5), patterns: number[][] = [];
    const logp = (u: number[]): number[] => {
      const mx = Math.max(...u), lse = mx + Math.log(u.reduce((s, v) => s + Math.exp(v - mx), 0));
      return u.map((v) => v - lse);
    };
    while (patterns.length < 40) {
      const u = Array.from({ length: E }, () => (Math.floor(rng.next() * 5) - 2) / 2);
      const lu = logp(u);
      const apart = patterns.every((p) => {
        const lp = logp(p);
        return lp.every((v, i) => v === lu[i] || Math.abs(v - lu[i]!) >= 1e-3);
      });
      if (apart) patterns.push(u);
    }
    const x = new Float32Array(ROWS * E);
    for (let r = 0; r < ROWS; r++) x.set(patterns[Math.floor(rng.next() * patterns.length)]!, r * E);
    const plan = maskRows(m.predict(x).routed, ROWS);
    expect(await torchChosen(m, x, false)).toEqual(plan);

    // Training's choice over the whole batch: the plan in training mode on the gate's scores.
    const u = x, { lp, p } = logSoftmax(u, ROWS);
    const trainPlan = new RoutingPlan(routingRule(m.config.routing), 'training', E, ROWS, planEntries(ROWS * E, ROWS));
    trainPlan.route({ rows: ROWS, experts: E, logits: u, logProb: lp, prob: p, bias: new Float32Array(0) });
    expect(await torchChosen(m, x, true)).toEqual(maskRows(trainPlan.chosen, ROWS));
  }, 120_000);
});

// ---------------------------------------------------------------- the plan's stages

/** log softmax and softmax of each row (float64, rounded to float32). */
function logSoftmax(u: Float32Array, rows: number): { lp: Float32Array; p: Float32Array } {
  const lp = new Float32Array(rows * E), p = new Float32Array(rows * E);
  for (let r = 0; r < rows; r++) {
    const row = u.subarray(r * E, (r + 1) * E), mx = Math.max(...row);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - mx);
    for (let i = 0; i < E; i++) {
      lp[r * E + i] = row[i]! - mx - Math.log(sum);
      p[r * E + i] = Math.exp(row[i]! - mx) / sum;
    }
  }
  return { lp, p };
}

function planEntries(N: number, rows: number): PlanEntries {
  return {
    expertStart: new Int32Array(E + 1), expertLoad: new Int32Array(E), entryRow: new Int32Array(N), entryExpert: new Int32Array(N),
    rowStart: new Int32Array(rows + 1), rowEntries: new Int32Array(N), entryLogWeight: new Float32Array(N), entryGateWeight: new Float32Array(N),
  };
}

function planBlocks(n: number): PlanBlocks {
  return { blockExpert: new Int32Array(n), blockStart: new Int32Array(n), blockRows: new Int32Array(n), blockSlot: new Int32Array(n), blockWorker: new Int32Array(n) };
}

/** Random gate scores for `rows` rows: logits, log-softmax, softmax, and a bias. */
function randomScores(rows: number, seed: number): GateScores {
  const rng = new Rng(seed), u = new Float32Array(rows * E);
  for (let j = 0; j < u.length; j++) u[j] = Math.round(rng.normal() * 4) / 4;
  const { lp, p } = logSoftmax(u, rows);
  return { rows, experts: E, logits: u, logProb: lp, prob: p, bias: Float32Array.from({ length: E }, (_, i) => (i % 3) * 0.25) };
}

/** Throw `what` unless `cond` (one check per element: expect() would cost seconds here). */
function ok(cond: boolean, what: string): void {
  if (!cond) throw new Error(`plan contract broken: ${what}`);
}

/** Every contract of a plan's entries and blocks. */
function checkPlan(plan: RoutingPlan, o: PlanEntries, b: PlanBlocks, rows: number, R: number, shards: number): void {
  const chosen = plan.chosen;
  let n = 0, dropped = 0;
  for (let i = 0; i < E; i++) {
    ok(o.expertStart[i] === n, 'o.expertStart[i] === n');
    for (let e = o.expertStart[i]!; e < o.expertStart[i]! + o.expertLoad[i]!; e++) {
      ok(o.entryExpert[e] === i, 'o.entryExpert[e] === i');
      if (e > o.expertStart[i]!) ok(o.entryRow[e]! > o.entryRow[e - 1]!, 'o.entryRow[e]! > o.entryRow[e - 1]!');
      ok(chosen[o.entryRow[e]! * E + i] === 1, 'chosen[o.entryRow[e]! * E + i] === 1');
    }
    n += o.expertLoad[i]!;
  }
  ok(plan.entries === n, 'plan.entries === n');
  let sum = 0;
  for (let j = 0; j < rows * E; j++) sum += chosen[j]!;
  ok(sum === n, 'sum === n');
  for (let q = 0; q < rows; q++) {
    if (o.rowStart[q] === o.rowStart[q + 1]) dropped++;
    for (let j = o.rowStart[q]!; j < o.rowStart[q + 1]!; j++) {
      ok(o.entryRow[o.rowEntries[j]!] === q, 'o.entryRow[o.rowEntries[j]!] === q');
      if (j > o.rowStart[q]!) ok(o.entryExpert[o.rowEntries[j]!]! > o.entryExpert[o.rowEntries[j - 1]!]!, 'o.entryExpert[o.rowEntries[j]!]! > o.e');
    }
  }
  ok(plan.dropped === dropped, 'plan.dropped === dropped');
  // Blocks tile each expert's entries in order, at most R rows, the first in the expert's own gradient.
  let covered = 0;
  for (let j = 0; j < plan.blocks; j++) {
    ok(b.blockRows[j]! > 0, 'b.blockRows[j]! > 0');
    ok(b.blockRows[j]! <= R, 'b.blockRows[j]! <= R');
    const first = !(j > 0 && b.blockExpert[j] === b.blockExpert[j - 1]);
    ok(b.blockStart[j] === (first ? o.expertStart[b.blockExpert[j]!] : b.blockStart[j - 1]! + b.blockRows[j - 1]!), `block ${j} starts where the last ended`);
    ok(b.blockSlot[j]! < 0 === first, `block ${j}: only an expert's first block uses its own gradient`);
    ok(b.blockWorker[j]! >= 0, 'b.blockWorker[j]! >= 0');
    ok(b.blockWorker[j]! < shards, 'b.blockWorker[j]! < shards');
    covered += b.blockRows[j]!;
  }
  ok(covered === n, 'covered === n');
}

/**
 * A rule that exists only here: each row takes its best and its worst expert by biased
 * score (ties to the lower index), ĝ a softmax over the two. Its ONNX spelling: TopK of the
 * largest and of the smallest, side by side.
 */
const BEST_AND_WORST: RoutingRule = {
  name: 'best-and-worst',
  weights: 'kept-softmax',
  normalized: true,
  maxEntries: (rows) => 2 * rows,
  choose(s, _mode, chosen) {
    const n = s.experts;
    for (let q = 0; q < s.rows; q++) {
      let best = 0, worst = 0;
      for (let i = 1; i < n; i++) {
        const v = Math.fround(s.logits[q * n + i]! + (s.bias[i] ?? 0));
        if (v > Math.fround(s.logits[q * n + best]! + (s.bias[best] ?? 0))) best = i;
        if (v < Math.fround(s.logits[q * n + worst]! + (s.bias[worst] ?? 0))) worst = i;
      }
      chosen[q * n + best] = 1;
      chosen[q * n + worst] = 1;
    }
  },
};

const BEST_AND_WORST_ONNX: OnnxChoice = (g, scores) =>
  g.node('Concat', [
    g.nodeN('TopK', [scores, g.ints('one', [1])], 2, { axis: 1, largest: 1, sorted: 1 })[1]!,
    g.nodeN('TopK', [scores, g.ints('one', [1])], 2, { axis: 1, largest: 0, sorted: 1 })[1]!,
  ], { axis: 1 });

describe('the plan\'s stages', () => {
  const RULES: RoutingRule[] = [
    routingRule({ kind: 'dense', k: E, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: 64 }),
    routingRule({ kind: 'topk', k: 2, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: 64 }),
    routingRule({ kind: 'switch', k: 1, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: 64 }),
    routingRule({ kind: 'topk', k: 7, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: 64 }),
    routingRule({ kind: 'expert-choice', k: 0.5, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: 64 }),
    BEST_AND_WORST,
  ];
  it.each(RULES.flatMap((rule) => (['training', 'predict'] as const).map((mode) => ({ rule, mode, name: rule.name }))))('$name ($mode): entries, rows, weights, blocks, schedule', ({ rule, mode }) => {
    const rows = 300, R = 16, shards = 3;
    const N = rule.maxEntries(rows, E, mode);
    const o = planEntries(N, rows), b = planBlocks(E + Math.ceil(N / R));
    const plan = new RoutingPlan(rule, mode, E, rows, o, b.blockExpert.length, shards);
    const groups = [{ first: 0, count: 3 }, { first: 3, count: 3 }, { first: 6, count: 2 }];
    for (const seed of [1, 2]) {
      const s = randomScores(rows, seed);
      plan.route(s);
      expect(plan.entries).toBeLessThanOrEqual(N);
      for (const split of [true, false]) {
        plan.cut(b, R);
        plan.schedule(b, groups, split);
        checkPlan(plan, o, b, rows, R, shards);
        if (!split) for (let j = 0; j < plan.blocks; j++) expect(groups[b.blockWorker[j]!]!.first).toBeLessThanOrEqual(b.blockExpert[j]!);
      }
      // Weights: a kept softmax sums to 1 per row; probability weights are p.
      for (let q = 0; q < rows; q++) {
        let sum = 0;
        for (let j = o.rowStart[q]!; j < o.rowStart[q + 1]!; j++) {
          const e = o.rowEntries[j]!;
          sum += o.entryGateWeight[e]!;
          if (rule.weights === 'probability') expect(o.entryGateWeight[e]).toBe(s.prob[q * E + o.entryExpert[e]!]);
        }
        if (rule.weights === 'kept-softmax' && o.rowStart[q + 1]! > o.rowStart[q]!) expect(sum).toBeCloseTo(1, 6);
      }
    }
  });

  it('dense keeps its choice and binning while the row count stays: the regions equal a fresh plan\'s after every batch size, by route() and by binAhead() + weighSlices()', () => {
    const rule = routingRule({ kind: 'dense', k: E, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: 64 });
    expect(rule.everyExpert).toBe(true);
    const maxRows = 40, N = rule.maxEntries(maxRows, E, 'training');
    const kept = planEntries(N, maxRows);
    const plan = new RoutingPlan(rule, 'training', E, maxRows, kept);
    const slicer = WHOLE;
    let seed = 10;
    for (const rows of [40, 40, 13, 40, 13, 13, 1, 40]) {
      const s = randomScores(rows, seed++);
      if (seed % 2) plan.route(s);
      else {
        expect(plan.binAhead(rows)).toBe(true);
        drain(plan.weighSlices(s, slicer));
      }
      const fresh = planEntries(N, maxRows);
      new RoutingPlan(rule, 'training', E, maxRows, fresh).route(s);
      expect(plan.entries).toBe(rows * E);
      for (const k of Object.keys(fresh) as (keyof PlanEntries)[]) {
        const n = k === 'rowStart' ? rows + 1 : k === 'expertStart' ? E + 1 : k === 'expertLoad' ? E : rows * E;
        expect(Array.from(kept[k].subarray(0, n)), `${k} at ${rows} rows`).toEqual(Array.from(fresh[k].subarray(0, n)));
      }
    }
    // Any other rule plans after the gate.
    const topk = new RoutingPlan(routingRule({ kind: 'topk', k: 2, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: 64 }), 'training', E, maxRows, planEntries(N, maxRows));
    expect(topk.binAhead(40)).toBe(false);
  });

  it('dense bins ahead of the gate only a binning it keeps or a small one: a new binning over RANGE_WORK entries waits for the sliced route, which keeps it', () => {
    const rule = routingRule({ kind: 'dense', k: E, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: 64 });
    const big = ROWS, N = rule.maxEntries(big, E, 'training');
    expect(big * E).toBeGreaterThan(RANGE_WORK);
    const kept = planEntries(N, big);
    const plan = new RoutingPlan(rule, 'training', E, big, kept);
    expect(plan.binAhead(big)).toBe(false);
    expect(plan.entries).toBe(0);
    const s = randomScores(big, 3);
    drain(plan.routeSlices(s, WHOLE));
    expect(plan.binAhead(big)).toBe(true);
    drain(plan.weighSlices(s, WHOLE));
    const fresh = planEntries(N, big);
    new RoutingPlan(rule, 'training', E, big, fresh).route(s);
    for (const k of Object.keys(fresh) as (keyof PlanEntries)[]) expect(kept[k].every((x, j) => Object.is(x, fresh[k][j])), k).toBe(true);
    // Another large row count is new again; a small one bins at once.
    expect(plan.binAhead(big - 1)).toBe(false);
    expect(plan.binAhead(40)).toBe(true);
  });

  it('the biased score is the float32 sum: 2⁻²⁴ of bias is lost on a logit of 1, a tie with the next expert stays a tie', () => {
    const s: GateScores = { rows: 1, experts: 2, logits: Float32Array.of(1, 1), logProb: new Float32Array(2), prob: new Float32Array(2), bias: Float32Array.of(0, 2 ** -25) };
    const o: PlanEntries = { expertStart: new Int32Array(3), expertLoad: new Int32Array(2), entryRow: new Int32Array(1), entryExpert: new Int32Array(1), rowStart: new Int32Array(2), rowEntries: new Int32Array(1), entryLogWeight: new Float32Array(1), entryGateWeight: new Float32Array(1) };
    const plan = new RoutingPlan(routingRule({ kind: 'switch', k: 1, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: 64 }), 'predict', 2, 1, o);
    plan.route(s);
    // In float64 1 + 2⁻²⁵ > 1 would pick expert 1; in float32 it is 1, a tie, and the lower index wins.
    expect(o.entryExpert[0]).toBe(0);
  });
});

// ---------------------------------------------------------------- a test-only rule, end to end

function regimes(n = 192): Dataset {
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.37) * 3, b = Math.cos(i * 0.71) * 2, c = Math.sin(i * 0.29 + 1);
    xs.push([a, b, c]);
    ys.push(a > 0 ? [2 * a - b, c] : [a * b, -c]);
  }
  return datasetFromArrays('regression', xs, ys);
}

describe('a rule that exists only in this test gets training\'s, predict\'s and export\'s checks', () => {
  it('training: bit-identical in-process and on 2 workers (split and not) after 30 steps', async () => {
    const data = regimes();
    const opts: CreateOptions = { task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:5', loss: 'gaussian', routing: 'topk:2', balanceBias: 0.01, seed: 4, blockRows: 8 };
    const run = async (workers: number, split: boolean): Promise<Float32Array[]> => {
      const m = await Mixture.create(opts);
      m.state.inputScaler = fitStandardizer(data.x, data.n, 3);
      m.state.targetScaler = fitStandardizer(data.y!, data.n, 2);
      const s = await TrainingSession.start(m.state, m.provider, trainingData(m.state, data), { maxBatch: 48, workers, kernels: kernelSetFromEnv(), split, rule: BEST_AND_WORST });
      try {
        const losses: number[] = [];
        for (let t = 1; t <= 30; t++) losses.push(await s.step.run(Int32Array.from({ length: 48 }, (_, r) => (r * 5 + t * 11) % data.n), 1e-2, t));
        expect(losses.every(Number.isFinite)).toBe(true);
        expect(s.router.stats.rows).toBe(30 * 48);
        // The rule really ran: every row went to exactly two experts.
        expect(Atomics.load(s.views.control, 6)).toBeGreaterThan(0);
        expect(s.views.rowStart[48]).toBe(96);
        return [s.views.gateParams.slice(), s.views.expertParams.slice(), s.views.routerBias.slice(), Float32Array.from(losses)];
      } finally {
        await s.close();
      }
    };
    const ref = await run(0, true);
    for (const [w, split] of [[2, true], [2, false], [1, true]] as const) {
      const got = await run(w, split);
      for (let j = 0; j < ref.length; j++) expectSame(`array ${j}, ${w} workers, split ${split}`, got[j]!, ref[j]!);
    }
  }, 60_000);

  it('predict: only the routed experts, and the same mixture as every expert computed and weighed by ĝ', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:5', routing: 'topk:2', seed: 2 });
    const data = regimes(300);
    m.state.inputScaler = { mean: [0, 0, 0], std: [1, 1, 1] };
    m.state.targetScaler = { mean: [0, 0], std: [1, 1] };
    const k = kernelSetFromEnv();
    const engine = new InferenceEngine(m.provider.sgemm, (mem) => createKernels(mem, k), m.config, m.params.gateParams, m.params.expertParams, m.params.routerBias, BEST_AND_WORST);
    const f = engine.forward(data.x, data.n);
    const all = engine.forward(data.x, data.n, undefined, true);
    checkRoutedForward(f, all, 4, 2, (row) => row.filter(Boolean).length === 2 || row.filter(Boolean).length === 1);
  });

  it('export: its ONNX spelling, in the builder, chooses and weighs as the plan (and runs on 0 rows)', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:5', routing: 'topk:2', seed: 2 });
    const data = regimes(300);
    m.state.inputScaler = { mean: [0, 0, 0], std: [1, 1, 1] };
    m.state.targetScaler = { mean: [0, 0], std: [1, 1] };
    m.params.routerBias.set([0.5, 0, -0.25, 0]);
    const k = kernelSetFromEnv();
    const engine = new InferenceEngine(m.provider.sgemm, (mem) => createKernels(mem, k), m.config, m.params.gateParams, m.params.expertParams, m.params.routerBias, BEST_AND_WORST);
    const f = engine.forward(data.x, data.n);
    const session = await ort.InferenceSession.create(mixtureToOnnx(cloneState(m.state), { rule: BEST_AND_WORST, choice: BEST_AND_WORST_ONNX }));
    try {
      const got = await session.run({ x: new ort.Tensor('float32', data.x, [data.n, 3]) });
      const gate = got.gate!.data as Float32Array, output = got.output!.data as Float32Array;
      for (let j = 0; j < gate.length; j++) {
        expect(gate[j]! > 0, `gate[${j}]`).toBe(f.routed[j] === 1);
        expect(Math.abs(gate[j]! - f.gate[j]!)).toBeLessThanOrEqual(1e-6);
      }
      for (let j = 0; j < output.length; j++) expect(Math.abs(output[j]! - f.mixture[j]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(f.mixture[j]!)));
      const empty = await session.run({ x: new ort.Tensor('float32', new Float32Array(0), [0, 3]) });
      expect(empty.gate!.dims).toEqual([0, 4]);
    } finally {
      await session.release();
    }
  });
});

/** A routed forward against its allExperts twin: same gate, mixture and routed outputs; 0 elsewhere; ȳ = Σ ĝ·o. */
function checkRoutedForward(
  f: { n: number; gate: Float32Array; routed: Uint8Array; experts: Float32Array; mixture: Float32Array },
  all: typeof f,
  nE: number,
  K: number,
  rowOk: (row: boolean[]) => boolean,
): void {
  const n = f.n;
  expectSame('mixture', f.mixture, all.mixture);
  expectSame('gate', f.gate, all.gate);
  expect(f.routed).toEqual(all.routed);
  for (let r = 0; r < n; r++) {
    const row = Array.from({ length: nE }, (_, i) => f.routed[r * nE + i] === 1);
    expect(rowOk(row), `row ${r}: ${row}`).toBe(true);
    for (let c = 0; c < K; c++) {
      let y = 0, scale = 0;
      for (let i = 0; i < nE; i++) {
        const at = (i * n + r) * K + c;
        if (row[i]) expect(f.experts[at]).toBe(all.experts[at]);
        else {
          expect(f.experts[at]).toBe(0);
          expect(f.gate[r * nE + i]).toBe(0);
        }
        y += f.gate[r * nE + i]! * all.experts[at]!;
        scale += Math.abs(all.experts[at]!);
      }
      expect(Math.abs(y - f.mixture[r * K + c]!)).toBeLessThanOrEqual(1e-5 * (1 + scale));
    }
  }
}

describe('sparse predict', () => {
  it.each([
    { routing: 'topk:2', loss: 'gaussian', K: 2 },
    { routing: 'switch', loss: 'cooperative', K: 1 },
    { routing: 'expert-choice:1.5', loss: 'gaussian', K: 2 },
    { routing: 'dense', loss: 'gaussian', K: 5 },
  ] as const)('$routing: Prediction.routed, 0 outside it, allExperts computes the rest; the mixture is the same', async ({ routing, loss, K }) => {
    const data = regimes(400);
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 5, expert: 'mlp:4', routing, loss, seed: 3 });
    await m.fit(data, { epochs: 2, batchSize: 64 });
    const p = m.predict(data.x), all = m.predict(data.x, { allExperts: true });
    expectSame('output', p.output, all.output);
    for (let r = 0; r < data.n; r++) {
      let routed = 0;
      for (let i = 0; i < 5; i++) routed += p.routed[r * 5 + i]!;
      expect(routed).toBe(K);
    }
    for (let i = 0; i < 5; i++) {
      for (let r = 0; r < data.n; r++) {
        for (let c = 0; c < 2; c++) {
          const at = (i * data.n + r) * 2 + c;
          if (p.routed[r * 5 + i]) expect(p.experts[at]).toBe(all.experts[at]);
          else expect(p.experts[at]).toBe(0);
        }
      }
    }
    // evaluate routes the same way: its gate shares are the predictions' mean ĝ.
    const ev = m.evaluate(data);
    for (let i = 0; i < 5; i++) {
      let share = 0;
      for (let r = 0; r < data.n; r++) share += p.gate[r * 5 + i]! / data.n;
      expect(ev.gateShare[i]).toBeCloseTo(share, 12);
    }
  });

  it('predict refuses a non-boolean allExperts', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 2 });
    await m.fit(regimes(64), { epochs: 1 });
    expect(() => m.predict([[1, 2, 3]], { allExperts: 'yes' as unknown as boolean })).toThrow(/allExperts/);
  });
});

