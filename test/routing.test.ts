/**
 * Sparse routing, end to end: the same seed gives the same parameters bit for bit on any
 * worker count, with and without splitting a hot expert's blocks (and the splitting test
 * proves an expert's blocks really ran on two workers); topk:E agrees with dense; every
 * sparse routing learns a two-region problem; balancing evens a skewed load; checkpoints
 * resume on another worker count exactly; a step allocates (almost) nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { OptionError } from '../src/errors.js';
import { kernelSetFromEnv } from '../src/kernels/index.js';
import { Mixture, type CreateOptions } from '../src/mixture.js';
import { CTRL } from '../src/memory/layout.js';
import { trainingData } from '../src/train/data.js';
import { TrainingSession } from '../src/train/session.js';
import { fitStandardizer } from '../src/data/standardize.js';
import { copyParams, expectIdentical } from './helpers/params.js';

/** 240 rows, 3 inputs, 2 outputs, four regimes by the sign of two inputs. */
function regimes(n = 240, seed = 1): Dataset {
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.37 + seed) * 3, b = Math.cos(i * 0.71 + seed) * 2, c = Math.sin(i * 0.29 + 1);
    xs.push([a, b, c]);
    ys.push(a > 0 ? (b > 0 ? [2 * a - b, c] : [a * b, -c]) : b > 0 ? [-a + 3 * c, b] : [b - c, a]);
  }
  return datasetFromArrays('regression', xs, ys);
}

/** 240 rows, 3 inputs, 3 classes by the signs of two inputs. */
function classes(): Dataset {
  const xs = Array.from({ length: 240 }, (_, i) => [Math.sin(i * 1.3) * 3, Math.cos(i * 0.7) * 2, Math.sin(i * 0.3)]);
  return datasetFromArrays('classification', xs, xs.map(([a, b]) => (a! > 0 ? (b! > 0 ? 0 : 1) : 2)), 3);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-routing-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ROUTINGS: { routing: string; loss: CreateOptions['loss']; extra?: Partial<CreateOptions> }[] = [
  { routing: 'topk:2', loss: 'gaussian' },
  { routing: 'topk:2', loss: 'competitive', extra: { noise: true, balanceLoss: 0.1, zLoss: 0.01 } },
  { routing: 'topk:1', loss: 'cooperative', extra: { balanceBias: 0.01 } },
  { routing: 'switch', loss: 'cooperative', extra: { balanceLoss: 0.05, balanceBias: 0.001 } },
  { routing: 'expert-choice:1', loss: 'gaussian', extra: { zLoss: 0.01 } },
  { routing: 'topk:3', loss: 'categorical' },
];

describe('bit-identical for any worker count, with and without splitting', () => {
  it.each(ROUTINGS)('$routing ($loss): in-process, 1 and 2 workers, split and not, after 50 steps', async ({ routing, loss, extra }) => {
    const classification = loss === 'categorical';
    const data = classification ? classes() : regimes();
    const opts = { task: data.task, inputs: 3, outputs: data.outputs, experts: 5, expert: 'mlp:6', loss, routing, seed: 9, blockRows: 7, ...extra } as CreateOptions;
    const runs: { workers: number; splitExperts: boolean }[] = [
      { workers: 0, splitExperts: true },
      { workers: 1, splitExperts: true },
      { workers: 2, splitExperts: true },
      { workers: 2, splitExperts: false },
    ];
    const results = [];
    for (const r of runs) {
      const m = await Mixture.create(opts);
      // 240 rows in batches of 48: 5 steps an epoch, 10 epochs = 50 steps.
      await m.fit(data, { epochs: 10, batchSize: 48, ...r });
      expect(m.training.step).toBe(50);
      results.push(copyParams(m.params));
    }
    for (const p of results.slice(1)) expectIdentical(p, results[0]!);
  });

  it('splitting puts one hot expert’s blocks on both workers (and keeps them with the owner without it)', async () => {
    const data = regimes();
    const opts: CreateOptions = { task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:6', loss: 'gaussian', routing: 'topk:2', seed: 3, blockRows: 8 };
    const m = await Mixture.create(opts);
    // A gate that sends every row to experts 0 and 1: expert 0 has all 48 rows, 6 blocks.
    m.params.gateParams.fill(0);
    const E = 4, D = 3;
    m.params.gateParams[D * E + 0] = 10;
    m.params.gateParams[D * E + 1] = 5;
    m.state.inputScaler = fitStandardizer(data.x, data.n, 3);
    m.state.targetScaler = fitStandardizer(data.y!, data.n, 2);
    const workersOf = async (split: boolean): Promise<Set<number>[]> => {
      const s = await TrainingSession.start(m.state, m.provider, trainingData(m.state, data), { maxBatch: 48, workers: 2, kernels: kernelSetFromEnv(), split });
      try {
        await s.step.run(Int32Array.from({ length: 48 }, (_, r) => r), 1e-9, 1);
        const v = s.views, byExpert = Array.from({ length: E }, () => new Set<number>());
        for (let b = 0; b < Atomics.load(v.control, CTRL.BLOCKS); b++) byExpert[v.blockExpert[b]!]!.add(v.blockWorker[b]!);
        expect(v.expertLoad[0]).toBe(48);
        return byExpert;
      } finally {
        await s.close();
      }
    };
    expect([...(await workersOf(true))[0]!].sort()).toEqual([0, 1]);
    expect([...(await workersOf(false))[0]!]).toEqual([0]);
  });
});

describe('topk:E is the dense mixture, up to rounding', () => {
  // Not bit-identical: topk:E sums an expert's gradient over blocks of rows, dense over the
  // whole batch, so the float32 sums round differently. With SGD the difference stays at
  // rounding level; Adam divides by √v, which magnifies it where v is small (measured up to
  // 1.5e-4 relative in 0.2.0).
  it.each([
    { optimizer: 'sgd', lr: 0.05, bound: 1e-5 },
    { optimizer: 'adam', lr: 0.01, bound: 1e-3 },
  ] as const)('$optimizer: parameters within $bound relative (floor 1e-3) of dense after 50 steps', async ({ optimizer, lr, bound }) => {
    const data = regimes();
    const base: CreateOptions = { task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:6', loss: 'gaussian', seed: 5, optimizer, lr };
    const dense = await Mixture.create(base);
    const sparse = await Mixture.create({ ...base, routing: 'topk:4', blockRows: 16 });
    await dense.fit(data, { epochs: 10, batchSize: 48 });
    await sparse.fit(data, { epochs: 10, batchSize: 48, workers: 2 });
    let moved = 0;
    for (const k of ['gateParams', 'expertParams'] as const) {
      const a = dense.params[k], b = sparse.params[k];
      let worst = 0;
      for (let j = 0; j < a.length; j++) {
        worst = Math.max(worst, Math.abs(a[j]! - b[j]!) / Math.max(1e-3, Math.abs(a[j]!)));
        if (a[j] !== b[j]) moved++;
      }
      console.log(`topk:E vs dense, ${optimizer}, ${k}: worst relative difference ${worst.toExponential(2)}`);
      expect(worst, k).toBeLessThan(bound);
    }
    // Not vacuous: the two runs did round differently.
    expect(moved).toBeGreaterThan(0);
  });
});

describe('each sparse routing learns to route', () => {
  /** Two regions (x₀ < 0, x₀ > 0) with unrelated linear targets. */
  function twoRegions(n = 400): Dataset {
    const xs: number[][] = [], ys: number[][] = [];
    for (let i = 0; i < n; i++) {
      const a = ((i * 0.618034) % 1) * 4 - 2, b = Math.sin(i * 2.1);
      xs.push([a, b]);
      ys.push([a < 0 ? 3 * b + 1 : -2 * b - 1]);
    }
    return datasetFromArrays('regression', xs, ys);
  }
  it.each([
    { routing: 'topk:1', loss: 'cooperative' },
    { routing: 'switch', loss: 'cooperative' },
    { routing: 'topk:2', loss: 'gaussian' },
    // Capacity 1.5: some rows go to both experts, which gives the gate a comparison (at
    // capacity 1 most rows have one expert, whose NLL only reinforces the choice).
    { routing: 'expert-choice:1.5', loss: 'gaussian' },
  ] as const)('$routing: each region goes to experts of its own, and the fit beats one linear model', async ({ routing, loss }) => {
    const data = twoRegions();
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, loss, routing, seed: 2, lr: 0.05 });
    await m.fit(data, { epochs: 60, batchSize: 40 });
    const left = m.predict([[-1.5, 0.3], [-1, -0.5], [-0.6, 0.9]]), right = m.predict([[1.5, 0.3], [1, -0.5], [0.6, 0.9]]);
    const lw = Array.from(left.winner), rw = Array.from(right.winner);
    expect(new Set(lw).size, `left ${lw}`).toBe(1);
    expect(new Set(rw).size, `right ${rw}`).toBe(1);
    expect(lw[0]).not.toBe(rw[0]);
    expect(m.evaluate(data).mse!).toBeLessThan(0.5);
  });
});

describe('balancing evens a skewed load', () => {
  /** Most rows in one corner of the input space, where one expert starts out strongest. */
  function skewed(n = 480): Dataset {
    const xs: number[][] = [], ys: number[][] = [];
    for (let i = 0; i < n; i++) {
      const hot = i % 10 !== 0;
      const a = hot ? 2 + 0.3 * Math.sin(i) : -2 + Math.sin(i * 0.3), b = Math.cos(i * 1.7);
      xs.push([a, b]);
      ys.push([a * b]);
    }
    return datasetFromArrays('regression', xs, ys);
  }
  async function cv(extra: Partial<CreateOptions>): Promise<number> {
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 4, loss: 'gaussian', routing: 'topk:2', seed: 4, ...extra } as CreateOptions);
    // A gate that starts out favouring expert 0 on the hot corner.
    m.params.gateParams[0] = 3;
    let last = 0;
    await m.fit(skewed(), { epochs: 30, batchSize: 48, onEpoch: (e) => void (last = e.routing.loadCv) });
    return last;
  }
  it('the balance loss, and the balancing bias, each halve the coefficient of variation of the load', async () => {
    const without = await cv({});
    expect(without).toBeGreaterThan(0.3);
    expect(await cv({ balanceLoss: 1 })).toBeLessThanOrEqual(without / 2);
    expect(await cv({ balanceBias: 0.05 })).toBeLessThanOrEqual(without / 2);
  });
});

describe('checkpoints', () => {
  it('a mid-epoch checkpoint of a noisy, biased topk fit on 2 workers resumes in-process, bit for bit', async () => {
    const data = regimes();
    const opts: CreateOptions = { task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:6', loss: 'gaussian', routing: 'topk:2', noise: true, balanceBias: 0.01, seed: 12, blockRows: 10 };
    const ref = await Mixture.create(opts);
    await ref.fit(data, { epochs: 6, batchSize: 48, workers: 0 });
    // Saves taken at step boundaries while the parallel fit runs: keep one from mid-epoch.
    const m = await Mixture.create(opts);
    const saves: Promise<string>[] = [];
    let n = 0;
    const timer = setInterval(() => {
      const file = join(dir, `mid-${n++}.moe`);
      saves.push(m.save(file).then(() => file));
    }, 1);
    try {
      await m.fit(data, { epochs: 6, batchSize: 48, workers: 2 });
    } finally {
      clearInterval(timer);
    }
    expectIdentical(m.params, ref.params);
    let resumedMidEpoch = 0;
    for (const file of await Promise.all(saves)) {
      const again = await Mixture.load(file);
      if (!again.training.batch || again.training.epoch >= 5) continue;
      expect(again.training.noiseRng).toBeDefined();
      await again.fit(data, { epochs: 6 - again.training.epoch, batchSize: 48, workers: 0 });
      expectIdentical(again.params, ref.params);
      expect(again.training).toEqual(ref.training);
      if (++resumedMidEpoch >= 3) break;
    }
    expect(resumedMidEpoch).toBeGreaterThan(0);
  });
});

describe('options', () => {
  it.each([
    [{ routing: 'topk:0' }, 'routing'],
    [{ routing: 'topk:9' }, 'routing'],
    [{ routing: 'expert-choice:0' }, 'routing'],
    [{ routing: 'switch', loss: 'gaussian' }, 'loss'],
    [{ routing: 'topk:1', loss: 'competitive' }, 'loss'],
    [{ routing: 'dense', balanceBias: 0.1 }, 'balanceBias'],
    [{ routing: 'expert-choice:1', balanceBias: 0.1 }, 'balanceBias'],
    [{ routing: 'switch', loss: 'cooperative', noise: true }, 'noise'],
    [{ routing: 'topk:2', balanceLoss: -1 }, 'balanceLoss'],
    [{ routing: 'banana' }, 'routing'],
    [{ routing: 'topk:1', loss: 'cooperative', noise: true }, 'noise'],
    [{ routing: 'dense', noise: true }, 'noise'],
    [{ routing: 'dense', balanceLoss: 0.1 }, 'balanceLoss'],
    [{ routing: 'expert-choice:1', balanceLoss: 0.1 }, 'balanceLoss'],
    [{ routing: 'dense', blockRows: 8 }, 'blockRows'],
    [{ routing: 7 }, 'routing'],
  ] as const)('%j is an OptionError naming %s', async (extra, option) => {
    const err = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 4, ...extra } as CreateOptions).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe(option);
  });
});

describe('no step allocates', () => {
  it('heap growth over 1,000 sparse steps stays under 1 MiB (--expose-gc)', () => {
    const code = `
      const { Mixture, datasetFromArrays } = await import(${JSON.stringify(new URL('../dist/src/index.js', import.meta.url).href)});
      const { TrainingSession } = await import(${JSON.stringify(new URL('../dist/src/train/session.js', import.meta.url).href)});
      const { trainingData } = await import(${JSON.stringify(new URL('../dist/src/train/data.js', import.meta.url).href)});
      const { fitStandardizer } = await import(${JSON.stringify(new URL('../dist/src/data/standardize.js', import.meta.url).href)});
      const xs = [], ys = [];
      for (let i = 0; i < 256; i++) { xs.push([Math.sin(i), Math.cos(i * 0.7), Math.sin(i * 0.3)]); ys.push([Math.sin(i) * 2, Math.cos(i)]); }
      const data = datasetFromArrays('regression', xs, ys);
      const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 8, expert: 'mlp:16', routing: 'topk:2', noise: true, balanceLoss: 0.1, seed: 1 });
      m.state.inputScaler = fitStandardizer(data.x, data.n, 3); m.state.targetScaler = fitStandardizer(data.y, data.n, 2);
      const s = await TrainingSession.start(m.state, m.provider, trainingData(m.state, data), { maxBatch: 64, workers: 0, kernels: 'wasm' });
      const batch = Int32Array.from({ length: 64 }, (_, r) => r * 4);
      for (let t = 1; t <= 200; t++) await s.step.run(batch, 1e-3, t);
      gc(); gc();
      const before = process.memoryUsage().heapUsed;
      for (let t = 201; t <= 1200; t++) await s.step.run(batch, 1e-3, t);
      gc(); gc();
      console.log(JSON.stringify({ grew: process.memoryUsage().heapUsed - before }));
      await s.close();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const { grew } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { grew: number };
    expect(grew).toBeLessThan(1 << 20);
  });
});
