/**
 * The parallel trainer against the in-process reference: same seed, data and provider
 * must give bit-identical parameters and optimiser state after every step, whatever the
 * error function, expert network or sharding. Also worker-count choice, bad configuration,
 * a runtime without SharedArrayBuffer, and reading parameters from the main thread while
 * the shards train. Workers start from dist/: run `npm run build` first.
 */
import { describe, expect, it, vi } from 'vitest';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { loadVowels } from '../src/data/vowels.js';
import { MoeError, OptionError } from '../src/errors.js';
import { Mixture, type CreateOptions } from '../src/mixture.js';
import type { MixtureParams } from '../src/model/state.js';
import { stepDecay, type OptimizerName } from '../src/optim/config.js';
import { shardExperts } from '../src/engine/plan.js';
import { mapViews, planLayout } from '../src/memory/layout.js';
import { denseSizes } from '../src/engine/plan.js';
import { ThreadRunner } from '../src/parallel/thread-runner.js';
import { chooseWorkers } from '../src/train/fit.js';
import { trainingData } from '../src/train/data.js';
import { kernelSetFromEnv } from '../src/kernels/index.js';
import { wasmApi } from '../src/kernels/wasm-api.js';
import type { FitOptions } from '../src/train/options.js';
import { TrainingSession } from '../src/train/session.js';
import { fitStandardizer, identityStandardizer } from '../src/data/standardize.js';
import { REGIONS, copyParams, firstDifference, expectIdentical } from './helpers/params.js';

/** 200 rows of a smooth 3-input, 2-output regression with regimes the experts can split. */
function regressionData(n = 200): Dataset {
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.37) * 3, b = Math.cos(i * 0.71) * 2, c = Math.sin(i * 0.29 + 1);
    xs.push([a, b, c]);
    ys.push(a > 0 ? [2 * a - b + 0.1 * c, a * b] : [-a + 3 * c, b - c]);
  }
  return datasetFromArrays('regression', xs, ys);
}

/** 200 rows, 2 inputs, 3 classes by angular sector with a few labels flipped. */
function classificationData(n = 200): Dataset {
  const xs: number[][] = [], labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = Math.sin(i * 2.13) * 4 + 1, y = Math.cos(i * 1.07) * 3;
    const angle = Math.atan2(y, x) + Math.PI;
    let label = Math.min(2, Math.floor((angle / (2 * Math.PI)) * 3));
    if (i % 17 === 0) label = (label + 1) % 3;
    xs.push([x, y]);
    labels.push(label);
  }
  return datasetFromArrays('classification', xs, labels, 3);
}


interface ParityCase {
  name: string;
  create: Omit<CreateOptions, 'inputs' | 'outputs'>;
  workers: number;
  batchSize: number;
  epochs: number;
  schedule?: FitOptions['schedule'];
}

/** Train two identical mixtures, one in-process and one on worker threads; both models and results. */
async function trainBoth(c: ParityCase, data: Dataset) {
  const opts: CreateOptions = { inputs: data.inputs, outputs: data.outputs, seed: 7, ...c.create } as CreateOptions;
  const ref = await Mixture.create(opts);
  const par = await Mixture.create(opts);
  const initial = copyParams(par.params);
  const fitOpts: FitOptions = { epochs: c.epochs, batchSize: c.batchSize, ...(c.schedule ? { schedule: c.schedule } : {}) };
  const refResult = await ref.fit(data, { ...fitOpts, workers: 0 });
  const parResult = await par.fit(data, { ...fitOpts, workers: c.workers });
  return { ref, par, initial, refResult, parResult };
}

// 200 rows in batches of 48: four full batches and one of 8 per epoch, 10 epochs = 50 steps.
// Batches of 40 divide 200 evenly, also 50 steps.
const cases: ParityCase[] = [
  { name: 'regression, linear experts, gaussian, 4 experts on 2 workers', create: { task: 'regression', experts: 4, expert: 'linear', loss: 'gaussian' }, workers: 2, batchSize: 48, epochs: 10 },
  { name: 'regression, MLP experts, cooperative, 4 experts on 2 workers', create: { task: 'regression', experts: 4, expert: 'mlp:8', loss: 'cooperative' }, workers: 2, batchSize: 48, epochs: 10 },
  { name: 'regression, linear experts, competitive, 3 experts on 2 workers', create: { task: 'regression', experts: 3, expert: 'linear', loss: 'competitive' }, workers: 2, batchSize: 40, epochs: 10 },
  { name: 'regression, MLP relu experts and MLP gate, gaussian, 3 experts on 2 workers', create: { task: 'regression', experts: 3, expert: 'mlp:6,5:relu', gate: 'mlp:4', loss: 'gaussian' }, workers: 2, batchSize: 48, epochs: 10 },
  { name: 'regression, MLP experts, cooperative, momentum with a step schedule, 3 experts on 2 workers', create: { task: 'regression', experts: 3, expert: 'mlp:5', loss: 'cooperative', optimizer: 'momentum' as OptimizerName, lr: 0.05 }, workers: 2, batchSize: 48, epochs: 10, schedule: stepDecay(3, 0.5) },
  { name: 'regression, linear experts, competitive, plain sgd, 4 experts on 1 worker', create: { task: 'regression', experts: 4, expert: 'linear', loss: 'competitive', optimizer: 'sgd' as OptimizerName, lr: 0.05 }, workers: 1, batchSize: 48, epochs: 10 },
  { name: 'classification, linear experts, categorical, 4 experts on 2 workers', create: { task: 'classification', experts: 4, expert: 'linear', loss: 'categorical' }, workers: 2, batchSize: 48, epochs: 10 },
  { name: 'classification, MLP experts, categorical, 3 experts on 2 workers', create: { task: 'classification', experts: 3, expert: 'mlp:8', loss: 'categorical' }, workers: 2, batchSize: 40, epochs: 10 },
  { name: 'classification (one-hot targets), linear experts, competitive, 4 experts on 2 workers', create: { task: 'classification', experts: 4, expert: 'linear', loss: 'competitive' }, workers: 2, batchSize: 48, epochs: 10 },
  { name: 'classification (one-hot targets), MLP experts, gaussian, 3 experts on 2 workers', create: { task: 'classification', experts: 3, expert: 'mlp:6', loss: 'gaussian' }, workers: 2, batchSize: 48, epochs: 10 },
];

describe('parallel trainer parity with the in-process trainer', () => {
  const regression = regressionData();
  const classification = classificationData();

  it.each(cases)('$name: bit-identical after 50 steps', async (c) => {
    const data = c.create.task === 'regression' ? regression : classification;
    const { ref, par, initial, refResult, parResult } = await trainBoth(c, data);
    expect(refResult.workers).toBe(0);
    expect(parResult.workers).toBe(c.workers);
    expect(parResult.backend).toBe(refResult.backend);
    expect(ref.training.step).toBe(50);
    expect(par.training.step).toBe(50);
    expect(par.training.epoch).toBe(ref.training.epoch);
    expect(par.training.rng).toEqual(ref.training.rng);
    // Training moved every region that has state (sgd keeps none), so equality is not vacuous.
    for (const region of REGIONS) {
      if (initial[region].length > 0) expect(firstDifference(par.params[region], initial[region]), region).not.toBe(-1);
    }
    expectIdentical(par.params, ref.params);
    expect(parResult.history.map((h) => h.loss)).toEqual(refResult.history.map((h) => h.loss));
    expect(parResult.history.every((h) => Number.isFinite(h.loss))).toBe(true);
  });

  it('the vowel task: 2 workers end with the same parameters and test accuracy as in-process', async () => {
    const { train, test } = await loadVowels({ seed: 1 });
    const opts: CreateOptions = { task: 'classification', inputs: 2, outputs: 4, experts: 4, seed: 1 };
    const ref = await Mixture.create(opts);
    const par = await Mixture.create(opts);
    await ref.fit(train, { epochs: 20, batchSize: 32, workers: 0 });
    const r = await par.fit(train, { epochs: 20, batchSize: 32, workers: 2 });
    expect(r.workers).toBe(2);
    expectIdentical(par.params, ref.params);
    const accRef = ref.evaluate(test).accuracy!;
    const accPar = par.evaluate(test).accuracy!;
    expect(accPar).toBe(accRef);
    // Four vowels: chance is 0.25; a trained mixture is far above it.
    expect(accPar).toBeGreaterThan(0.6);
  });

  it('a second fit continues on workers exactly as in-process (resumed state crosses into shared memory)', async () => {
    const opts: CreateOptions = { task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:4', seed: 3 };
    const ref = await Mixture.create(opts);
    const par = await Mixture.create(opts);
    await ref.fit(regression, { epochs: 2, batchSize: 48, workers: 0 });
    await ref.fit(regression, { epochs: 2, batchSize: 48, workers: 0 });
    await par.fit(regression, { epochs: 2, batchSize: 48, workers: 2 });
    await par.fit(regression, { epochs: 2, batchSize: 48, workers: 2 });
    expect(par.training.step).toBe(20);
    expectIdentical(par.params, ref.params);
  });
});

describe('choosing the worker count', () => {
  it("workers: 'auto' stays in-process for paper-sized experts and says why", async () => {
    const { train } = await loadVowels({ seed: 1 });
    const m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 4, seed: 1 });
    const r = await m.fit(train, { epochs: 1, workers: 'auto' });
    expect(r.workers).toBe(0);
    expect(r.workersNote).toMatch(/in-process/);
    expect(r.workersNote).toMatch(/Mflop/);
  });

  it("workers: 'auto' picks min(experts, cores) for large experts", async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 64, outputs: 64, experts: 3, expert: 'mlp:256,256', seed: 1 });
    const [w, note] = chooseWorkers(m.config, 'auto', 256);
    const { availableParallelism } = await import('node:os');
    expect(w).toBe(Math.min(3, availableParallelism()));
    expect(note).toMatch(/workers/);
    expect(chooseWorkers(m.config, undefined, 256)).toEqual([0, undefined]);
    expect(chooseWorkers(m.config, 2, 256)).toEqual([2, undefined]);
  });

  it('shardExperts splits experts into contiguous groups, larger groups first', () => {
    expect(shardExperts(4, 2)).toEqual([{ first: 0, count: 2 }, { first: 2, count: 2 }]);
    expect(shardExperts(3, 2)).toEqual([{ first: 0, count: 2 }, { first: 2, count: 1 }]);
    expect(shardExperts(7, 3)).toEqual([{ first: 0, count: 3 }, { first: 3, count: 2 }, { first: 5, count: 2 }]);
    expect(shardExperts(5, 5)).toEqual([0, 1, 2, 3, 4].map((first) => ({ first, count: 1 })));
    expect(shardExperts(6, 1)).toEqual([{ first: 0, count: 6 }]);
    for (const [E, W] of [[10, 4], [9, 9], [13, 5]] as const) {
      const groups = shardExperts(E, W);
      expect(groups).toHaveLength(W);
      expect(groups.reduce((s, g) => s + g.count, 0)).toBe(E);
      const counts = groups.map((g) => g.count);
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      groups.forEach((g, k) => expect(g.first).toBe(k === 0 ? 0 : groups[k - 1]!.first + groups[k - 1]!.count));
    }
  });

  it.each([
    [3, 2],
    [0, 2],
    [-1, 2],
    [1.5, 2],
  ])('shardExperts(%d shards of %d experts) is an OptionError naming workers', (shards, experts) => {
    const call = () => shardExperts(experts, shards);
    expect(call).toThrow(OptionError);
    try {
      call();
    } catch (e) {
      expect((e as OptionError).option).toBe('workers');
      expect((e as OptionError).code).toBe('INVALID_OPTION');
    }
  });

  it.each([
    { workers: 5, why: /5 workers for 4 experts/ },
    { workers: -1, why: /-1/ },
    { workers: 1.5, why: /1\.5/ },
    { workers: 'two' as unknown as number, why: /two/ },
  ])('fit with workers: $workers rejects with an OptionError naming workers, and the mixture is unchanged', async ({ workers, why }) => {
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, seed: 2 });
    const before = copyParams(m.params);
    const err = await m.fit(regressionData(), { epochs: 1, workers }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('workers');
    expect((err as OptionError).message).toMatch(why);
    expect(m.training.step).toBe(0);
    expectIdentical(m.params, before);
  });
});

describe('a runtime without SharedArrayBuffer', () => {
  it('ThreadRunner.start on a memory that is not shared rejects with SHARED_MEMORY_UNAVAILABLE', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, seed: 1 });
    const layout = planLayout(denseSizes(m.config, m.optimizer, 32, 2));
    const memory = new wasmApi.Memory({ initial: Math.ceil(layout.byteLength / 65536) });
    expect(memory.buffer).toBeInstanceOf(ArrayBuffer);
    void mapViews(memory.buffer, layout);
    const err = await ThreadRunner.start({
      memory,
      layout,
      config: m.config,
      optimizer: m.optimizer,
      backend: m.provider.name,
      shards: 2,
      kernels: kernelSetFromEnv(),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MoeError);
    expect((err as MoeError).code).toBe('SHARED_MEMORY_UNAVAILABLE');
    expect((err as MoeError).message).toMatch(/workers: 0/);
  });

  it('fit with workers rejects with SHARED_MEMORY_UNAVAILABLE when the global is missing, leaving the mixture usable', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, seed: 1 });
    const before = copyParams(m.params);
    const data = regressionData();
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'SharedArrayBuffer')!;
    let err: unknown;
    delete (globalThis as { SharedArrayBuffer?: unknown }).SharedArrayBuffer;
    try {
      err = await m.fit(data, { epochs: 1, workers: 2 }).then(
        () => undefined,
        (e: unknown) => e,
      );
    } finally {
      Object.defineProperty(globalThis, 'SharedArrayBuffer', saved);
    }
    expect(typeof SharedArrayBuffer).toBe('function');
    expect(err).toBeInstanceOf(MoeError);
    expect((err as MoeError).code).toBe('SHARED_MEMORY_UNAVAILABLE');
    expect(m.training.step).toBe(0);
    expectIdentical(m.params, before);
    // The in-process trainer needs no shared memory; the same mixture still trains.
    const r = await m.fit(data, { epochs: 1, batchSize: 50, workers: 0 });
    expect(r.workers).toBe(0);
    expect(m.training.step).toBe(4);
  });
});

describe('parameters in shared memory', () => {
  it('the main thread reads experts while the shards train, and they change every epoch', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:4', seed: 5 });
    const seen: Float32Array[] = [];
    const buffers: string[] = [];
    const r = await m.fit(regressionData(), {
      epochs: 4,
      batchSize: 48,
      workers: 2,
      onEpoch: () => {
        // Expert 3 lives on shard 1: written only by that worker, read here without asking it.
        const view = m.expertParameters(3);
        buffers.push(view.buffer.constructor.name);
        seen.push(view.slice());
      },
    });
    expect(r.workers).toBe(2);
    expect(buffers).toEqual(['SharedArrayBuffer', 'SharedArrayBuffer', 'SharedArrayBuffer', 'SharedArrayBuffer']);
    for (let e = 1; e < seen.length; e++) expect(firstDifference(seen[e]!, seen[e - 1]!), `epoch ${e + 1} vs ${e}`).not.toBe(-1);
    // The last epoch's reading is what fit leaves behind.
    expect(firstDifference(seen.at(-1)!, m.expertParameters(3))).toBe(-1);
  });

  it('ThreadRunner#snapshot copies a shard’s experts; a step through the runner updates them; close is idempotent', async () => {
    const m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 3, experts: 3, expert: 'mlp:4', seed: 9 });
    const data = classificationData();
    m.state.inputScaler = fitStandardizer(data.x, data.n, 2);
    m.state.targetScaler = identityStandardizer(3);
    const B = 40;
    const session = await TrainingSession.start(m.state, m.provider, trainingData(m.state, data), { maxBatch: B, workers: 2, kernels: kernelSetFromEnv() });
    const runner = session.runner as ThreadRunner;
    const views = session.views;
    try {
      expect(runner.workers).toBe(2);
      expect(runner.shards).toEqual([{ first: 0, count: 2 }, { first: 2, count: 1 }]);
      const P = views.expertParams.length / 3;
      const slices = () => [views.expertParams.slice(0, 2 * P), views.expertParams.slice(2 * P, 3 * P)];
      const before = slices();
      const snap0 = [await runner.snapshot(0), await runner.snapshot(1)];
      expect(snap0[0]!.length).toBe(2 * P);
      expect(snap0[1]!.length).toBe(P);
      snap0.forEach((s, k) => expect(firstDifference(s, before[k]!)).toBe(-1));
      expect(() => runner.snapshot(2)).toThrow(OptionError);

      const loss = await session.step.run(Int32Array.from({ length: B }, (_, i) => i * 5), 0.01, 1);
      expect(Number.isFinite(loss)).toBe(true);
      const after = slices();
      const snap1 = [await runner.snapshot(0), await runner.snapshot(1)];
      snap1.forEach((s, k) => {
        expect(firstDifference(s, after[k]!)).toBe(-1);
        expect(firstDifference(s, before[k]!)).not.toBe(-1);
      });
    } finally {
      await runner.close();
    }
    await runner.close();
    await runner[Symbol.asyncDispose]();
    expect(() => runner.beginForward(1, 2)).toThrow(/closed/);
  });

  it('after fit, no worker port is left open in this process', async () => {
    const ports = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort' || r === 'Worker').length;
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, seed: 1 });
    let during = 0;
    await m.fit(regressionData(), { epochs: 1, batchSize: 50, workers: 2, onEpoch: () => void (during = ports()) });
    expect(during).toBeGreaterThan(0);
    // None at rest under vitest's forks pool; a closed MessagePort leaves the list on a later turn of the event loop.
    await vi.waitFor(() => expect(ports()).toBe(0), { timeout: 2000, interval: 20 });
  });
});

describe('Symbol.asyncDispose', () => {
  it('exists, and disposing a mixture after a parallel fit resolves', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 2, seed: 1 });
    expect(typeof m[Symbol.asyncDispose]).toBe('function');
    await m.fit(regressionData(), { epochs: 1, batchSize: 50, workers: 2 });
    await m[Symbol.asyncDispose]();
    await m[Symbol.asyncDispose]();
    // Disposal stops workers, it does not discard the model.
    expect(m.predict([[0, 0, 0]]).n).toBe(1);
  });

  it('disposing during a parallel fit stops the shards and fit rejects with a MoeError, parameters at a completed step', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, seed: 1 });
    const err = await m
      .fit(regressionData(), {
        epochs: 5,
        batchSize: 40,
        workers: 2,
        onEpoch: async (e) => {
          if (e.epoch === 2) await m[Symbol.asyncDispose]();
        },
      })
      .then(
        () => undefined,
        (x: unknown) => x,
      );
    expect(err).toBeInstanceOf(MoeError);
    expect(m.training.step).toBe(10);
    const ref = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, seed: 1 });
    await ref.fit(regressionData(), { epochs: 2, batchSize: 40, workers: 0 });
    expectIdentical(m.params, ref.params);
  });
});

describe('kernel sets', () => {
  it('the wasm kernels and their JS mirror train bit-identical mixtures, in-process and on 2 workers', async () => {
    const data = regressionData();
    const opts: CreateOptions = { task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:8:sigmoid', gate: 'mlp:4', loss: 'gaussian', seed: 17 };
    const saved = process.env.MOE_KERNELS;
    const params: MixtureParams[] = [];
    try {
      for (const set of ['wasm', 'js', 'wasm'] as const) {
        for (const workers of [0, 2]) {
          process.env.MOE_KERNELS = set;
          const m = await Mixture.create(opts);
          await m.fit(data, { epochs: 5, batchSize: 48, workers });
          params.push(copyParams(m.params));
        }
      }
    } finally {
      if (saved === undefined) delete process.env.MOE_KERNELS;
      else process.env.MOE_KERNELS = saved;
    }
    for (const p of params.slice(1)) expectIdentical(p, params[0]!);
  });
});
