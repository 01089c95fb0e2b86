/**
 * Validation during a fit runs inside the training layer, on the session's memory, kernels
 * and live parameters: every epoch's valLoss, valAccuracy and valMse equal what
 * `Mixture.evaluate` gives on the same parameters, bit for bit, for every routing and
 * worker count, and a fit makes one kernel memory and one kernel instance however many
 * epochs it validates (no inference engine per validation).
 */
import { describe, expect, it, vi } from 'vitest';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { Mixture, type CreateOptions } from '../src/mixture.js';
import type { EpochInfo } from '../src/train/options.js';
import { testRandom } from './helpers/backends.js';

// The test seam: count kernel memories and kernel instances made on this thread.
const made = vi.hoisted(() => ({ memories: 0, kernels: 0 }));
vi.mock('../src/memory/memory.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../src/memory/memory.js')>();
  return { ...m, allocateMemory: (...a: Parameters<typeof m.allocateMemory>) => (made.memories++, m.allocateMemory(...a)) };
});
vi.mock('../src/kernels/index.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../src/kernels/index.js')>();
  return { ...m, createKernels: (...a: Parameters<typeof m.createKernels>) => (made.kernels++, m.createKernels(...a)) };
});

/** n rows of 3 inputs: a piecewise-linear regression target (2 outputs), or its region as a class. */
function problem(task: 'regression' | 'classification', n: number, seed: number): Dataset {
  const rnd = testRandom(seed);
  const xs: number[][] = [], ys: (number[] | number)[] = [];
  for (let i = 0; i < n; i++) {
    const x = [4 * rnd.uniform() - 2, 4 * rnd.uniform() - 2, rnd.normal()];
    xs.push(x);
    const region = (x[0]! < 0 ? 0 : 1) + (x[1]! < 0 ? 0 : 2);
    ys.push(task === 'regression' ? [(region + 1) * x[0]! - x[2]! + 0.1 * rnd.normal(), x[1]! * (region - 1.5)] : region);
  }
  return task === 'regression' ? datasetFromArrays(task, xs, ys as number[][]) : datasetFromArrays(task, xs, ys as number[]);
}

const CASES: { name: string; task: 'regression' | 'classification'; o: Partial<CreateOptions> }[] = [
  { name: 'dense gaussian', task: 'regression', o: {} },
  { name: 'dense categorical', task: 'classification', o: { loss: 'categorical' } },
  { name: 'topk:2 noisy, balanced', task: 'regression', o: { routing: 'topk:2', noise: true, balanceLoss: 0.1, zLoss: 0.01 } },
  { name: 'topk:1 cooperative, bias', task: 'regression', o: { routing: 'topk:1', loss: 'cooperative', balanceBias: 0.01 } },
  { name: 'switch', task: 'classification', o: { routing: 'switch', loss: 'cooperative', balanceLoss: 0.05 } },
  { name: 'expert-choice', task: 'regression', o: { routing: 'expert-choice:1.5', zLoss: 0.01 } },
];

describe('validation inside the training layer', () => {
  it.each(CASES.flatMap((c) => [0, 2].map((workers) => ({ ...c, workers }))))('$name, $workers workers: every epoch equals evaluate() on the same parameters', async ({ task, o, workers }) => {
    const train = problem(task, 160, 1), val = problem(task, 70, 2);
    const m = await Mixture.create({ task, inputs: 3, outputs: task === 'regression' ? 2 : 4, experts: 4, expert: 'mlp:5', seed: 3, ...(o.routing ? { blockRows: 8 } : {}), ...o } as CreateOptions);
    const seen: { info: EpochInfo; ev: ReturnType<Mixture['evaluate']> }[] = [];
    const r = await m.fit(train, { epochs: 3, batchSize: 32, validationData: val, workers, onEpoch: (info) => void seen.push({ info, ev: m.evaluate(val) }) });
    expect(r.history).toHaveLength(3);
    const after = m.evaluate(val);
    for (const { info, ev } of [...seen, { info: r.history.at(-1)!, ev: after }]) {
      expect(Object.is(info.valLoss, ev.loss)).toBe(true);
      expect(Number.isFinite(info.valLoss)).toBe(true);
      if (task === 'classification') expect(info.valAccuracy).toBe(ev.accuracy);
      else expect(Object.is(info.valMse, ev.mse)).toBe(true);
    }
  }, 60_000);

  it('a fit makes one kernel memory and one kernel instance, however many epochs it validates', async () => {
    const train = problem('regression', 120, 3), val = problem('regression', 2500, 4);
    const count = async (epochs: number, validate: boolean, workers = 0): Promise<[number, number]> => {
      const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, routing: 'topk:2', seed: 1 });
      made.memories = made.kernels = 0;
      await m.fit(train, { epochs, batchSize: 30, workers, ...(validate ? { validationData: val } : {}) });
      return [made.memories, made.kernels];
    };
    expect(await count(1, false)).toEqual([1, 1]);
    // 2,500 rows: three chunks of the engine per validation, five validations.
    expect(await count(5, true)).toEqual([1, 1]);
    expect(await count(3, true, 2)).toEqual([1, 1]);
    // evaluate() outside a fit still makes its engine (once, then reused).
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, seed: 1 });
    await m.fit(train, { epochs: 1 });
    made.memories = 0;
    m.evaluate(val);
    m.evaluate(val);
    expect(made.memories).toBe(1);
  }, 60_000);
});
