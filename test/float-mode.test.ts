/**
 * The float mode (flush-to-zero + denormals-are-zero by default): the compute of every
 * thread runs in the mode asked for, the user's code never does (callbacks, and after
 * fit, predict and evaluate), bit-identity across worker counts holds in each mode on a
 * fixture that provably makes subnormals, the mode is recorded and resumed, and flushing
 * changes nothing that matters (standardisation of tiny inputs). Workers start from dist/.
 *
 * The mode is read through a probe value loaded from an array: V8 folds constant
 * expressions on background threads, which run IEEE whatever this thread's mode is.
 */
import { describe, expect, it } from 'vitest';
import { FloatMode, flushSupported, setThreadMode, threadFlushes } from '../src/compute/float-mode.js';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import type { ShardRunner } from '../src/engine/runner.js';
import { OptionError } from '../src/errors.js';
import { expF32, logF32, tanhF32 } from '../src/kernels/js.js';
import { wasmApi } from '../src/kernels/wasm-api.js';
import { wasmScalarMath } from '../src/kernels/wasm.js';
import type { MixtureViews } from '../src/memory/layout.js';
import { Mixture } from '../src/mixture.js';
import { WRAP_RUNNER, type InternalFitOptions } from '../src/train/internal.js';
import type { FitOptions } from '../src/train/options.js';
import { readModel } from '../src/io/read-model.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PROBE = new Float64Array([2.2250738585072014e-308]); // the smallest normal float64
/** Whether this thread flushes now, by arithmetic: half the smallest normal is 0 only then. */
function flushesNow(): boolean {
  return PROBE[0]! / 2 === 0;
}

const SMALLEST_NORMAL_F32 = 2 ** -126;
function isSubnormal(v: number): boolean {
  return v !== 0 && Math.abs(v) < SMALLEST_NORMAL_F32;
}

const supported = flushSupported();
const suite = supported ? describe : describe.skip;

/** 160 rows of a 2-input regression with regimes. */
function regression(n = 160): Dataset {
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.37) * 3, b = Math.cos(i * 0.71) * 2;
    xs.push([a, b]);
    ys.push([a > 0 ? 2 * a - b : b - a]);
  }
  return datasetFromArrays('regression', xs, ys);
}

/**
 * A mixture whose gate starts with logits ~±100 apart, so that the losing experts' gate
 * probabilities e^(−87…−103) are float32 subnormals: the fixture makes subnormals by
 * construction (and the test asserts that it did).
 */
async function steepGate(): Promise<Mixture> {
  const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 4, loss: 'gaussian', seed: 3 });
  const g = m.gateParameters();
  for (let i = 0; i < g.length; i++) g[i] = ((i * 37) % 11) * 9 - 45;
  return m;
}

/** Counts the subnormal gate probabilities and entry weights the main thread formed, each step, before BACKWARD. */
function subnormalCounter(): { wrap: (runner: ShardRunner, v: MixtureViews) => ShardRunner; count: () => number } {
  let n = 0;
  const wrap = (inner: ShardRunner, v: MixtureViews): ShardRunner => ({
    get workers() {
      return inner.workers;
    },
    beginForward: (rows, step) => inner.beginForward(rows, step),
    finishForward: () => inner.finishForward(),
    beginBackward: (rows, step) => {
      for (const a of [v.gateProb, v.entryWeight]) for (let i = 0; i < a.length; i++) if (isSubnormal(a[i]!)) n++;
      inner.beginBackward(rows, step);
    },
    finishBackward: () => inner.finishBackward(),
    beginUpdate: (lr, step) => inner.beginUpdate(lr, step),
    finishUpdate: () => inner.finishUpdate(),
    close: () => inner.close(),
  });
  return { wrap, count: () => n };
}

suite('float mode', () => {
  it('FloatMode sets the mode for a section and puts back what the thread had', () => {
    expect(threadFlushes()).toBe(false);
    expect(flushesNow()).toBe(false);
    const fm = new FloatMode('flush');
    const inside = fm.run(() => [threadFlushes(), flushesNow()]);
    expect(inside).toEqual([true, true]);
    expect([threadFlushes(), flushesNow()]).toEqual([false, false]);
    // A thread that flushes on its own keeps flushing after an 'ieee' section.
    setThreadMode('flush');
    try {
      expect(new FloatMode('ieee').run(() => flushesNow())).toBe(false);
      expect(flushesNow()).toBe(true);
    } finally {
      setThreadMode('ieee');
    }
  });

  it('kernel contracts in flush mode: exp of a result below 2⁻¹²⁶ is +0, log of a subnormal is −∞, tanh of a subnormal is 0', () => {
    const sm = wasmScalarMath(new wasmApi.Memory({ initial: 1, maximum: 1, shared: true }));
    // Arguments loaded from an array at run time (a literal could be folded at compile time, IEEE).
    const args = new Float32Array([1e-40, -95, -80, 1e-30]);
    const tiny = args[0]!;
    // IEEE first: the values are subnormal or finite, so the flush clauses are not vacuous.
    expect(isSubnormal(expF32(-95))).toBe(true);
    expect(isSubnormal(sm.expF32(-95))).toBe(true);
    expect(Number.isFinite(logF32(tiny))).toBe(true);
    expect(Number.isFinite(sm.logF32(tiny))).toBe(true);
    const flushed = new FloatMode('flush').run(() => ({
      jsExp: expF32(args[1]!), wasmExp: sm.expF32(args[1]!),
      jsLog: logF32(args[0]!), wasmLog: sm.logF32(args[0]!),
      jsTanh: tanhF32(args[0]!),
      // Normal arguments and results are unchanged.
      jsExpNormal: expF32(args[2]!), wasmExpNormal: sm.expF32(args[2]!), jsLogNormal: logF32(args[3]!),
    }));
    expect(flushed.jsExp).toBe(0);
    expect(flushed.wasmExp).toBe(0);
    expect(flushed.jsLog).toBe(-Infinity);
    expect(flushed.wasmLog).toBe(-Infinity);
    expect(flushed.jsTanh).toBe(0);
    expect(flushed.jsExpNormal).toBe(expF32(-80));
    expect(flushed.wasmExpNormal).toBe(sm.expF32(-80));
    expect(flushed.jsLogNormal).toBe(logF32(1e-30));
  });

  for (const workers of [0, 2]) {
    it(`user code runs IEEE: schedule, stopWhen, onEpoch, warnings, and after fit, predict, evaluate (${workers} workers)`, async () => {
      const seen: [string, boolean][] = [];
      const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 4, seed: 2, onWarning: () => seen.push(['warn', flushesNow()]) });
      const data = regression();
      const r = await m.fit(data, {
        epochs: 2,
        batchSize: 16,
        workers,
        validationSplit: 0.2,
        schedule: ({ baseLr }) => (seen.push(['schedule', flushesNow()]), baseLr),
        stopWhen: () => (seen.push(['stopWhen', flushesNow()]), false),
        onEpoch: async () => {
          seen.push(['onEpoch', flushesNow()]);
          await Promise.resolve();
          seen.push(['onEpoch after await', flushesNow()]);
        },
      });
      seen.push(['after fit', flushesNow()]);
      m.predict([[0.5, 0.25]]);
      seen.push(['after predict', flushesNow()]);
      m.evaluate(data);
      seen.push(['after evaluate', flushesNow()]);
      expect(r.denormals).toBe('flush');
      expect(m.training.denormals).toBe('flush');
      expect(seen.filter(([, f]) => f)).toEqual([]);
      // ('warn' too where a warning was given, e.g. the provider's fall-back without OpenBLAS.)
      expect(new Set(seen.map(([w]) => w).filter((w) => w !== 'warn'))).toEqual(new Set(['schedule', 'stopWhen', 'onEpoch', 'onEpoch after await', 'after fit', 'after predict', 'after evaluate']));
      await m.close();
    });
  }

  it('microtasks queued by the user during an in-process fit run IEEE', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 2 });
    const modes: boolean[] = [];
    let stop = false;
    const spin = (): void => {
      modes.push(flushesNow());
      if (!stop) queueMicrotask(spin);
    };
    const fit = m.fit(regression(), { epochs: 1, batchSize: 8 });
    queueMicrotask(spin);
    await fit;
    stop = true;
    expect(modes.length).toBeGreaterThan(0);
    expect(modes.filter((f) => f)).toEqual([]);
    await m.close();
  });

  for (const mode of ['flush', 'ieee'] as const) {
    it(`bit-identical parameters for 0, 1, 2 and 3 workers in ${mode} mode, on a fixture that makes subnormals`, async () => {
      const data = regression();
      const results: Float32Array[] = [];
      const counts: number[] = [];
      for (const workers of [0, 1, 2, 3]) {
        const m = await steepGate();
        const c = subnormalCounter();
        const o: InternalFitOptions = { epochs: 2, batchSize: 32, workers, denormals: mode, shuffle: true };
        o[WRAP_RUNNER] = c.wrap;
        const r = await m.fit(data, o as FitOptions);
        expect(r.denormals).toBe(mode);
        results.push(Float32Array.from([...m.params.gateParams, ...m.params.expertParams]));
        counts.push(c.count());
        await m.close();
      }
      // IEEE keeps subnormals (the fixture makes them); flush leaves none.
      if (mode === 'ieee') for (const n of counts) expect(n).toBeGreaterThan(0);
      else expect(counts).toEqual([0, 0, 0, 0]);
      for (let w = 1; w < results.length; w++) {
        const a = new Int32Array(results[0]!.buffer), b = new Int32Array(results[w]!.buffer);
        expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer)), `workers ${[0, 1, 2, 3][w]} against in-process`).toBe(true);
      }
    });
  }

  it('the mode is recorded in the model file, and a resumed fit keeps it unless told otherwise', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moe-fm-'));
    try {
      const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 5 });
      await m.fit(regression(), { epochs: 1, denormals: 'ieee' });
      const path = join(dir, 'm.moe');
      await m.save(path);
      await m.close();
      expect((await readModel(path)).state.training.denormals).toBe('ieee');
      const back = await Mixture.load(path);
      const r = await back.fit(regression(), { epochs: 1 });
      expect(r.denormals).toBe('ieee');
      const r2 = await back.fit(regression(), { epochs: 1, denormals: 'flush' });
      expect(r2.denormals).toBe('flush');
      expect(back.training.denormals).toBe('flush');
      await back.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an unknown mode with an OptionError naming the option', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2 });
    await expect(m.fit(regression(), { denormals: 'fast' as never })).rejects.toThrow(OptionError);
    await expect(m.fit(regression(), { denormals: 'fast' as never })).rejects.toThrow(/denormals/);
    await m.close();
  });

  it('flushing changes nothing that matters: tiny (subnormal float32) inputs standardise as in IEEE mode', async () => {
    // A column whose values are all float32 subnormals: standardised outside the flushed
    // section, it carries the same information in both modes.
    const xs: number[][] = [], ys: number[][] = [];
    for (let i = 0; i < 64; i++) {
      const a = ((i % 8) - 3.5) * 1e-40, b = Math.cos(i);
      xs.push([a, b]);
      ys.push([a > 0 ? 1 + b : -1]);
    }
    const data = datasetFromArrays('regression', xs, ys);
    const preds: Float32Array[] = [], stds: number[] = [];
    for (const mode of ['flush', 'ieee'] as const) {
      const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 9 });
      await m.fit(data, { epochs: 20, batchSize: 16, denormals: mode });
      stds.push(m.inputScaler!.std[0]!);
      preds.push(m.predict(data.x).output);
      await m.close();
    }
    expect(stds[0]).toBeGreaterThan(0);
    expect(stds[0]).toBe(stds[1]);
    // The tiny column reaches the model in both modes: the two regimes it marks get
    // different predictions, and the modes agree.
    for (const p of preds) {
      let hi = 0, lo = 0;
      for (let i = 0; i < 64; i++) (xs[i]![0]! > 0 ? (hi += p[i]! / 32) : (lo += p[i]! / 32));
      expect(hi - lo).toBeGreaterThan(0.5);
    }
    for (let i = 0; i < 64; i++) expect(preds[0]![i]!).toBeCloseTo(preds[1]![i]!, 5);
  });
});

describe('float mode where flushing is not supported', () => {
  it.skipIf(supported)('runs IEEE and says so', () => {
    expect(new FloatMode('flush').run(() => flushesNow())).toBe(false);
  });
});
