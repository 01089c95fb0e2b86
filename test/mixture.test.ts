/**
 * The mixture end to end, in-process on the default provider: it finds the regimes of a
 * piecewise-linear function, learns the paper's vowel task, is deterministic, refuses bad
 * input with typed errors (never NaN weights or a hang), honours every fit option, and
 * predicts in the caller's units.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { loadVowels } from '../src/data/vowels.js';
import { DataError, MoeError, OptionError, type MoeErrorCode } from '../src/errors.js';
import { Mixture, type CreateOptions } from '../src/mixture.js';
import { stepDecay } from '../src/optim/config.js';
import type { FitOptions } from '../src/train/options.js';
import { testRandom } from './helpers/backends.js';

/** n points of y = 2x (x < 0), y = −x + 3 (x ≥ 0), x uniform in [−2, 2), noise σ = 0.1. */
function twoRegimes(n: number, seed: number): Dataset {
  const rnd = testRandom(seed);
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const x = 4 * rnd.uniform() - 2;
    xs.push([x]);
    ys.push([(x < 0 ? 2 * x : -x + 3) + 0.1 * rnd.normal()]);
  }
  return datasetFromArrays('regression', xs, ys);
}

let vowels: Awaited<ReturnType<typeof loadVowels>>;
beforeAll(async () => {
  vowels = await loadVowels({ seed: 1 });
});

const VOWEL_MODEL: CreateOptions = { task: 'classification', inputs: 2, outputs: 4, experts: 4, lr: 0.01, seed: 1 };

/** Every parameter and optimiser float, as one copy. */
function snapshot(m: Mixture): Float32Array[] {
  return [m.params.gateParams.slice(), m.params.expertParams.slice(), m.params.gateOpt.slice(), m.params.expertOpt.slice()];
}

const bitsEqual = (a: Float32Array, b: Float32Array): boolean => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

const allFinite = (m: Mixture): boolean => snapshot(m).every((a) => a.every(Number.isFinite));

/** Await `p` and return what it rejected with (fails if it resolved). */
async function rejection(p: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, got a result');
}

async function expectTyped(p: Promise<unknown> | (() => unknown), cls: new (...a: never[]) => MoeError, code: MoeErrorCode, text?: string): Promise<MoeError> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(cls);
  const e = err as MoeError;
  expect(e.code).toBe(code);
  if (text !== undefined) expect(e.message).toContain(text);
  return e;
}

describe('two linear regimes (gaussian NLL, 2 linear experts, linear gate)', () => {
  const train = twoRegimes(400, 1), test = twoRegimes(200, 2);

  it('each regime is owned by one expert and the mixture beats one linear model', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 1, outputs: 1, experts: 2, loss: 'gaussian', lr: 0.05, seed: 1 });
    const r = await m.fit(train, { epochs: 60, batchSize: 32 });
    expect(r.stopReason).toBe('epochs');
    const p = m.predict(test.x);
    // Mean gate probability of each expert on each regime's test points.
    const share = [[0, 0], [0, 0]], count = [0, 0];
    for (let j = 0; j < test.n; j++) {
      const regime = test.x[j]! < 0 ? 0 : 1;
      count[regime]!++;
      for (let i = 0; i < 2; i++) share[regime]![i]! += p.gate[j * 2 + i]!;
    }
    const mean = share.map((s, k) => s.map((v) => v / count[k]!));
    const owner = mean.map((s) => (s[0]! > s[1]! ? 0 : 1));
    expect(owner[0]).not.toBe(owner[1]);
    expect(mean[0]![owner[0]!]).toBeGreaterThan(0.9);
    expect(mean[1]![owner[1]!]).toBeGreaterThan(0.9);

    // One expert through the same machinery is ordinary linear regression.
    const single = await Mixture.create({ task: 'regression', inputs: 1, outputs: 1, experts: 1, loss: 'gaussian', lr: 0.05, seed: 1 });
    await single.fit(train, { epochs: 60, batchSize: 32 });
    const mixMse = m.evaluate(test).mse!, lineMse = single.evaluate(test).mse!;
    // Measured: 0.086 against 1.43 (the line cannot bend at x = 0).
    expect(mixMse).toBeLessThan(lineMse / 3);
    expect(mixMse).toBeLessThan(0.3);
  });
});

describe('the vowel task (Peterson & Barney F1/F2 in Hz, speaker-disjoint split)', () => {
  it('a 4-expert linear mixture reaches ≥ 85% test accuracy from raw Hz', async () => {
    const m = await Mixture.create(VOWEL_MODEL);
    const r = await m.fit(vowels.train, { epochs: 60, batchSize: 32 });
    expect(r.history).toHaveLength(60);
    expect(r.history.at(-1)!.loss).toBeLessThan(r.history[0]!.loss);
    const ev = m.evaluate(vowels.test);
    // Measured: 93.4% after 40 epochs, 93.8% after 100.
    expect(ev.accuracy).toBeGreaterThanOrEqual(0.85);
    expect(ev.gateShare.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it('the backprop baseline (one mlp:6 expert) trains too', async () => {
    const m = await Mixture.create({ ...VOWEL_MODEL, experts: 1, expert: 'mlp:6' });
    await m.fit(vowels.train, { epochs: 40, batchSize: 32 });
    // Measured: 92.8% after 40 epochs.
    expect(m.evaluate(vowels.test).accuracy).toBeGreaterThanOrEqual(0.85);
  });
});

describe('determinism', () => {
  const train = async (seed: number): Promise<Mixture> => {
    const m = await Mixture.create({ ...VOWEL_MODEL, expert: 'mlp:3', seed });
    await m.fit(vowels.train, { epochs: 3, batchSize: 16 });
    return m;
  };

  it('the same seed gives bit-identical parameters; another seed does not', async () => {
    const [a, b, c] = [await train(7), await train(7), await train(8)];
    const [sa, sb, sc] = [snapshot(a), snapshot(b), snapshot(c)];
    sa.forEach((arr, k) => expect(bitsEqual(arr, sb[k]!), `region ${k}`).toBe(true));
    expect(a.training).toEqual(b.training);
    expect(bitsEqual(sa[0]!, sc[0]!)).toBe(false);
    expect(bitsEqual(sa[1]!, sc[1]!)).toBe(false);
  });
});

describe('bad input: typed errors, parameters untouched', () => {
  let m: Mixture;
  let before: Float32Array[];
  beforeAll(async () => {
    m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 3 });
    before = snapshot(m);
  });
  const reg = (x: number[], y: number[], inputs = 2): Dataset => ({
    task: 'regression',
    n: y.length,
    inputs,
    x: Float32Array.from(x),
    outputs: 1,
    y: Float32Array.from(y),
  });
  const cls = (labels: number[]): Dataset => ({
    task: 'classification',
    n: labels.length,
    inputs: 2,
    x: new Float32Array(labels.length * 2).map((_, j) => j),
    outputs: 4,
    labels: Int32Array.from(labels),
  });

  it.each<[string, () => Dataset, MoeErrorCode, string]>([
    ['wrong input width', () => reg([1, 2, 3, 4, 5, 6], [1, 2], 3), 'DATA_SHAPE', 'expects 2'],
    ['NaN in the inputs', () => reg([1, 2, NaN, 4], [1, 2]), 'INVALID_DATA', 'row 2'],
    ['Infinity in the targets', () => reg([1, 2, 3, 4], [1, Infinity]), 'INVALID_DATA', 'row 2'],
    ['no rows', () => reg([], []), 'DATA_SHAPE', 'no rows'],
    ['a classification set for a regression model', () => cls([0, 1]), 'DATA_SHAPE', 'task'],
  ])('fit: %s → DataError', async (_, data, code, text) => {
    await expectTyped(m.fit(data(), { epochs: 1 }), DataError, code, text);
    snapshot(m).forEach((a, k) => expect(bitsEqual(a, before[k]!)).toBe(true));
    expect(m.training.step).toBe(0);
  });

  it.each([[[0, 1, 4]], [[0, -1, 2]]])('fit: labels %j out of range → DataError', async (labels) => {
    const c = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 2 });
    const keep = snapshot(c);
    await expectTyped(c.fit(cls(labels), { epochs: 1 }), DataError, 'INVALID_DATA', 'out of range');
    snapshot(c).forEach((a, k) => expect(bitsEqual(a, keep[k]!)).toBe(true));
  });

  it.each<[string, Partial<CreateOptions>, string]>([
    ['zero experts', { experts: 0 }, 'experts'],
    ['negative experts', { experts: -2 }, 'experts'],
    ['fractional experts', { experts: 1.5 }, 'experts'],
    ['an unknown loss', { loss: 'hinge' as never }, 'loss'],
    ['categorical loss on regression', { loss: 'categorical' }, 'loss'],
    ['an unknown expert net', { expert: 'transformer' }, 'expert'],
    ['an unknown activation', { expert: 'mlp:4:gelu' }, 'expert'],
    ['an unknown gate net', { gate: 'mlp:0' }, 'gate'],
    ['an unknown optimizer', { optimizer: 'lbfgs' as never }, 'optimizer'],
    ['a negative learning rate', { lr: -1 }, 'lr'],
    ['an unknown backend', { backend: 'cuda' as never }, 'backend'],
  ])('create: %s → OptionError', async (_, bad, option) => {
    const e = await expectTyped(Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, ...bad }), OptionError, 'INVALID_OPTION');
    expect((e as OptionError).option).toBe(option);
  });

  it.each<[string, FitOptions, string]>([
    ['batchSize 0', { batchSize: 0 }, 'batchSize'],
    ['negative epochs', { epochs: -1 }, 'epochs'],
    ['validationSplit 1', { validationSplit: 1 }, 'validationSplit'],
    ['more workers than experts', { workers: 3 }, 'workers'],
    ['earlyStopping without patience', { earlyStopping: { patience: 0 } }, 'earlyStopping.patience'],
  ])('fit: %s → OptionError', async (_, opts, option) => {
    const e = await expectTyped(m.fit(reg([1, 2, 3, 4, 5, 6], [1, 2, 3]), opts), OptionError, 'INVALID_OPTION');
    expect((e as OptionError).option).toBe(option);
    snapshot(m).forEach((a, k) => expect(bitsEqual(a, before[k]!)).toBe(true));
  });

  it('a fit refused for its options leaves the model untrained', async () => {
    const t = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2 });
    // workers is checked after the data: the standardisation must not be fitted by then.
    await expectTyped(t.fit(reg([1, 2, 3, 4, 5, 6], [1, 2, 3]), { workers: 3 }), OptionError, 'INVALID_OPTION');
    await expectTyped(() => t.predict([[1, 2]]), OptionError, 'INVALID_OPTION', 'not been trained');
  });

  it('predict before training, with NaN or the wrong width → typed errors', async () => {
    const t = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2 });
    await expectTyped(() => t.predict([[1, 2]]), OptionError, 'INVALID_OPTION', 'not been trained');
    await t.fit(reg([1, 2, 3, 5, 5, 7], [1, 2, 3]), { epochs: 2, batchSize: 2 });
    await expectTyped(() => t.predict([[1, 2, 3]]), DataError, 'DATA_SHAPE');
    await expectTyped(() => t.predict(Float32Array.of(1, 2, 3)), DataError, 'DATA_SHAPE');
    await expectTyped(() => t.predict([[1, NaN]]), DataError, 'INVALID_DATA', 'row 1');
    // A hole in the array of rows (forEach would skip it and predict zeros for it).
    // eslint-disable-next-line no-sparse-arrays
    await expectTyped(() => t.predict([[1, 2], , [3, 4]] as number[][]), DataError, 'DATA_SHAPE', 'row 2');
    // eslint-disable-next-line no-sparse-arrays
    await expectTyped(() => t.predict([[1, , 3].slice(0, 2)] as number[][]), DataError, 'INVALID_DATA', 'row 1');
    expect(allFinite(t)).toBe(true);
  });

  it.each<[string, () => unknown, string]>([
    ['null in an input row', () => datasetFromArrays('regression', [[1, null as never]], [[1]]), 'input null is not a number'],
    ['true in an input row', () => datasetFromArrays('regression', [[1, true as never]], [[1]]), 'input true is not a number'],
    ['a string in a target row', () => datasetFromArrays('regression', [[1, 2]], [['3' as never]]), 'target "3" is not a number'],
    ['flat targets for regression', () => datasetFromArrays('regression', [[1, 2]], [3]), 'targets must be arrays'],
    ['a hole in the rows', () => datasetFromArrays('regression', [[1, 2], , [3, 4]] as number[][], [[1], [2], [3]]), 'row 2'],
    ['ys not an array', () => datasetFromArrays('classification', [[1, 2]], 'a' as never), 'must be an array'],
    ['a label null', () => datasetFromArrays('classification', [[1, 2]], [null as never]), 'label null'],
  ])('datasetFromArrays: %s → DataError', (_, make, text) => {
    expect(make).toThrow(DataError);
    expect(make).toThrow(text);
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'expected linear'],
    ['a linear net with an unknown activation', { kind: 'linear', activation: 'gelu' }, 'unknown activation "gelu"'],
    ['a linear net with hidden layers', { kind: 'linear', hidden: [3] }, 'no hidden layers'],
    ['an unknown kind', { kind: 'conv', hidden: [3] }, 'kind must be linear or mlp'],
    ['an mlp object without widths', { kind: 'mlp' }, 'positive integer hidden widths'],
  ])('create: expert %s → OptionError naming expert', async (_, expert, text) => {
    const e = await expectTyped(Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, expert: expert as never }), OptionError, 'INVALID_OPTION', text);
    expect((e as OptionError).option).toBe('expert');
  });

  it('create: an expert spec without kind is an mlp when it names hidden widths, else linear', async () => {
    const a = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, expert: { hidden: [3] } as never });
    expect(a.config.expert).toEqual({ kind: 'mlp', hidden: [3], activation: 'tanh' });
    const b = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, expert: { activation: 'relu' } as never });
    expect(b.config.expert.kind).toBe('linear');
  });

  it('raw inputs at 1e6 scale still train to finite weights (standardised inside)', async () => {
    const t = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, lr: 0.05 });
    const x: number[] = [], y: number[] = [];
    for (let i = 0; i < 50; i++) x.push(1e6 + i * 1e3, -5e5 + i), y.push(3e6 + 2e3 * i);
    await t.fit(reg(x, y), { epochs: 20, batchSize: 10 });
    expect(allFinite(t)).toBe(true);
    expect(Number.isFinite(t.evaluate(reg(x, y)).mse)).toBe(true);
  });
});

describe('fit options', () => {
  it('validationSplit reports valLoss and valAccuracy every epoch', async () => {
    const m = await Mixture.create(VOWEL_MODEL);
    const r = await m.fit(vowels.train, { epochs: 3, validationSplit: 0.2 });
    expect(r.history).toHaveLength(3);
    for (const h of r.history) {
      expect(Number.isFinite(h.valLoss)).toBe(true);
      expect(h.valAccuracy).toBeGreaterThanOrEqual(0);
      expect(h.valAccuracy).toBeLessThanOrEqual(1);
    }
  });

  it('validationData on regression reports valLoss and valMse', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 1, outputs: 1, experts: 2, seed: 2 });
    const r = await m.fit(twoRegimes(100, 3), { epochs: 2, validationData: twoRegimes(50, 4) });
    for (const h of r.history) {
      expect(Number.isFinite(h.valLoss)).toBe(true);
      expect(h.valMse).toBeGreaterThan(0);
    }
  });

  it('stopAtLoss stops at the first epoch at or below it, with stopReason criterion', async () => {
    const full = await (await Mixture.create(VOWEL_MODEL)).fit(vowels.train, { epochs: 8 });
    const target = full.history[4]!.loss;
    const firstBelow = full.history.findIndex((h) => h.loss <= target);
    const m = await Mixture.create(VOWEL_MODEL);
    const r = await m.fit(vowels.train, { epochs: 8, stopAtLoss: target });
    expect(r.stopReason).toBe('criterion');
    expect(r.epochs).toBe(firstBelow + 1);
    expect(r.finalLoss).toBeLessThanOrEqual(target);
  });

  it('earlyStopping with restoreBest restores the best epoch’s parameters', async () => {
    const m = await Mixture.create(VOWEL_MODEL);
    const seen = new Map<number, Float32Array[]>();
    // minDelta so large that no epoch after the first counts as better: best is epoch 1.
    const r = await m.fit(vowels.train, {
      epochs: 20,
      validationSplit: 0.25,
      earlyStopping: { patience: 3, minDelta: 1e9, restoreBest: true },
      onEpoch: (e) => void seen.set(e.epoch, snapshot(m)),
    });
    expect(r.stopReason).toBe('early-stopping');
    expect(r.epochs).toBe(4);
    expect(r.bestEpoch).toBe(1);
    const best = seen.get(1)!, last = seen.get(4)!;
    expect(bitsEqual(best[1]!, last[1]!)).toBe(false); // training moved on after epoch 1
    const now = snapshot(m);
    now.forEach((a, k) => expect(bitsEqual(a, best[k]!), `region ${k}`).toBe(true));
  });

  it('earlyStopping with restoreBest false keeps the last parameters', async () => {
    const m = await Mixture.create(VOWEL_MODEL);
    let last: Float32Array[] = [];
    const r = await m.fit(vowels.train, {
      epochs: 20,
      earlyStopping: { patience: 2, minDelta: 1e9, restoreBest: false },
      onEpoch: () => void (last = snapshot(m)),
    });
    expect(r.stopReason).toBe('early-stopping');
    expect(r.epochs).toBe(3);
    snapshot(m).forEach((a, k) => expect(bitsEqual(a, last[k]!)).toBe(true));
  });

  it('onEpoch returning false stops after that epoch', async () => {
    const m = await Mixture.create(VOWEL_MODEL);
    const r = await m.fit(vowels.train, { epochs: 10, onEpoch: (e) => e.epoch < 3 });
    expect(r.stopReason).toBe('callback');
    expect(r.epochs).toBe(3);
    expect(m.training.epoch).toBe(3);
  });

  it('an AbortSignal aborts with code ABORTED, parameters finite and at a step boundary', async () => {
    const m = await Mixture.create(VOWEL_MODEL);
    const ac = new AbortController();
    const err = await expectTyped(
      m.fit(vowels.train, { epochs: 10, signal: ac.signal, onEpoch: (e) => void (e.epoch === 2 && ac.abort()) }),
      MoeError,
      'ABORTED',
    );
    expect(err.message).toContain(`step ${m.training.step}`);
    expect(m.training.epoch).toBe(2);
    expect(allFinite(m)).toBe(true);
  });

  it('an already-aborted signal rejects with ABORTED before any step', async () => {
    const m = await Mixture.create(VOWEL_MODEL);
    const before = snapshot(m);
    await expectTyped(m.fit(vowels.train, { epochs: 1, signal: AbortSignal.abort() }), MoeError, 'ABORTED');
    expect(m.training.step).toBe(0);
    snapshot(m).forEach((a, k) => expect(bitsEqual(a, before[k]!)).toBe(true));
  });

  it('a schedule sets the learning rate (history lr)', async () => {
    const m = await Mixture.create(VOWEL_MODEL);
    const r = await m.fit(vowels.train, { epochs: 5, schedule: stepDecay(2, 0.5) });
    expect(r.history.map((h) => h.lr)).toEqual([0.01, 0.01, 0.005, 0.005, 0.0025]);
    const flat = await (await Mixture.create(VOWEL_MODEL)).fit(vowels.train, { epochs: 5 });
    expect(flat.history.map((h) => h.lr)).toEqual([0.01, 0.01, 0.01, 0.01, 0.01]);
    expect(flat.history.at(-1)!.loss).not.toBe(r.history.at(-1)!.loss);
  });

  it('a second fit continues from the saved step, epoch and shuffle state', async () => {
    const a = await Mixture.create(VOWEL_MODEL);
    await a.fit(vowels.train, { epochs: 2 });
    await a.fit(vowels.train, { epochs: 2 });
    const b = await Mixture.create(VOWEL_MODEL);
    await b.fit(vowels.train, { epochs: 4 });
    expect(a.training).toEqual(b.training);
    snapshot(a).forEach((arr, k) => expect(bitsEqual(arr, snapshot(b)[k]!)).toBe(true));
  });
});

describe('predict', () => {
  it('regression predictions come back in original units (Hz-scale inputs and targets)', async () => {
    // y = 2x + 1000 with x in [200, 3000] Hz: standardisation must be undone on the way out.
    const rnd = testRandom(5);
    const xs: number[][] = [], ys: number[][] = [];
    for (let i = 0; i < 200; i++) {
      const x = 200 + 2800 * rnd.uniform();
      xs.push([x]);
      ys.push([2 * x + 1000 + 5 * rnd.normal()]);
    }
    const m = await Mixture.create({ task: 'regression', inputs: 1, outputs: 1, experts: 2, lr: 0.05, seed: 4 });
    await m.fit(datasetFromArrays('regression', xs, ys), { epochs: 80, batchSize: 20 });
    const probe = [[300], [1500], [2900]];
    const p = m.predict(probe);
    expect(p.n).toBe(3);
    probe.forEach(([x], r) => expect(Math.abs(p.output[r]! - (2 * x! + 1000))).toBeLessThan(0.02 * (2 * x! + 1000)));
    // Each expert's output is in original units too, and the mixture is their gate-weighted sum.
    for (let r = 0; r < 3; r++) {
      let mix = 0;
      for (let i = 0; i < 2; i++) mix += p.gate[r * 2 + i]! * p.experts[i * 3 + r]!;
      expect(mix).toBeCloseTo(p.output[r]!, 0);
    }
    expect(p.labels).toBeUndefined();
  });

  it('classification predictions are labels, the argmax of class probabilities that sum to 1', async () => {
    const m = await Mixture.create(VOWEL_MODEL);
    await m.fit(vowels.train, { epochs: 20 });
    const p = m.predict(vowels.test.x);
    expect(p.labels).toBeInstanceOf(Int32Array);
    expect(p.labels).toHaveLength(vowels.test.n);
    let agree = 0;
    for (let r = 0; r < p.n; r++) {
      const row = Array.from(p.output.subarray(r * 4, r * 4 + 4));
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(p.labels![r]).toBe(row.indexOf(Math.max(...row)));
      expect(p.winner[r]).toBeGreaterThanOrEqual(0);
      if (p.labels![r] === vowels.test.labels![r]) agree++;
    }
    expect(agree / p.n).toBe(m.evaluate(vowels.test).accuracy);
  });
});
