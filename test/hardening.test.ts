/**
 * Defects found by a hostile review of 0.1.0's core, one test each (each failed before
 * its fix): torn checkpoints from save() during a parallel fit, two fits at once, a shard
 * that hangs while staying alive, absurd sizes, null cells and seeds beyond 32 bits.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { DataError, MoeError, OptionError, ShardStallError } from '../src/errors.js';
import { Mixture, type CreateOptions } from '../src/mixture.js';
import { withFault } from './helpers/faults.js';
import { copyParams, expectIdentical } from './helpers/params.js';

function regressionData(n: number): Dataset {
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.37) * 3, b = Math.cos(i * 0.71) * 2;
    xs.push([a, b]);
    ys.push(a > 0 ? [2 * a - b, a * b] : [a * b - 1, b]);
  }
  return datasetFromArrays('regression', xs, ys);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-hardening-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('save() during a parallel fit', () => {
  it('writes consistent snapshots taken at step boundaries: ≥ 100 saves, each resumed to its epoch end matches the uninterrupted run bit for bit', async () => {
    const data = regressionData(200);
    const opts: CreateOptions = { task: 'regression', inputs: 2, outputs: 2, experts: 4, expert: 'mlp:16', seed: 21 };
    const fitOpts = { batchSize: 40, epochs: 40 } as const; // 5 steps an epoch, 200 steps
    // The reference: in-process, with the parameters at every epoch's end.
    const ref = await Mixture.create(opts);
    const atEpoch = [copyParams(ref.params)];
    await ref.fit(data, { ...fitOpts, workers: 0, onEpoch: () => void atEpoch.push(copyParams(ref.params)) });

    const m = await Mixture.create(opts);
    const saves: Promise<string>[] = [];
    let n = 0;
    const timer = setInterval(() => {
      const path = join(dir, `during-${n++}.moe`);
      saves.push(m.save(path).then(() => path));
    }, 1);
    try {
      await m.fit(data, { ...fitOpts, workers: 2 });
    } finally {
      clearInterval(timer);
    }
    const files = await Promise.all(saves);
    expect(files.length).toBeGreaterThanOrEqual(100);
    expectIdentical(m.params, atEpoch.at(-1)!);

    let midEpoch = 0;
    for (const file of files) {
      const loaded = await Mixture.load(file);
      const { step, epoch, batch } = loaded.training;
      // A snapshot after an epoch's last step is that epoch's end, never "5 of 5 batches".
      expect(batch ?? 0, file).toBeLessThan(5);
      if (batch) midEpoch++;
      // Finish the epoch the snapshot was taken in (a mid-epoch checkpoint resumes exactly).
      if (batch) await loaded.fit(data, { batchSize: 40, epochs: 1, workers: 0 });
      expect(loaded.training.step, file).toBe(Math.ceil(step / 5) * 5);
      expectIdentical(loaded.params, atEpoch[batch ? epoch + 1 : epoch]!);
    }
    // The timer fired inside epochs, not only at their ends.
    expect(midEpoch).toBeGreaterThan(10);
  }, 120_000);
});

describe('calls at the wrong time', () => {
  it('a second fit() while one runs rejects at once with FIT_IN_PROGRESS, and the first is unharmed', async () => {
    const data = regressionData(100);
    const opts: CreateOptions = { task: 'regression', inputs: 2, outputs: 2, experts: 2, seed: 3 };
    const m = await Mixture.create(opts);
    const first = m.fit(data, { epochs: 5, batchSize: 20, workers: 2 });
    const t0 = performance.now();
    const err = await m.fit(data, { epochs: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err).toBeInstanceOf(MoeError);
    expect((err as MoeError).code).toBe('FIT_IN_PROGRESS');
    await first;
    const ref = await Mixture.create(opts);
    await ref.fit(data, { epochs: 5, batchSize: 20, workers: 0 });
    expectIdentical(m.params, ref.params);
    expect(m.training.step).toBe(25);
    // Once it has finished, fit may be called again.
    await m.fit(data, { epochs: 1, batchSize: 20 });
    expect(m.training.step).toBe(30);
  });
});

describe('a shard that hangs but stays alive', () => {
  it('is given up on after the stall timeout: ShardStallError naming the shard and phase, state at the last completed step, threads terminated', async () => {
    const data = regressionData(100);
    const opts: CreateOptions = { task: 'regression', inputs: 2, outputs: 2, experts: 4, expert: 'mlp:4', seed: 8 };
    const m = await Mixture.create(opts);
    const t0 = performance.now();
    // 100 rows in batches of 20: step 6 opens epoch 2, so the last completed step is one epoch.
    const err = await m.fit(data, withFault({ shard: 1, phase: 'backward', kind: 'hang', atStep: 6 }, { epochs: 5, batchSize: 20, workers: 2, stallTimeout: 1500 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(ShardStallError);
    const e = err as ShardStallError;
    expect(e.code).toBe('SHARD_STALLED');
    expect(e.shards).toEqual([1]);
    expect(e.phase).toBe('backward');
    expect(e.lastCompletedStep).toBe(5);
    expect(e.message).toContain('shard 1 did not finish the backward phase');
    expect(e.message).toContain('step 5');
    expect(ms).toBeGreaterThan(1500);
    expect(ms).toBeLessThan(10_000);
    expect(m.training.step).toBe(5);
    const ref = await Mixture.create(opts);
    await ref.fit(data, { epochs: 1, batchSize: 20, workers: 0 });
    expectIdentical(m.params, ref.params);
    // The hung thread is gone: no worker or port is left in this process.
    const ports = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort' || r === 'Worker').length;
    await vi.waitFor(() => expect(ports()).toBe(0), { timeout: 5000, interval: 50 });
  }, 30_000);

  it('stallTimeout must be a positive number of milliseconds', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 2, experts: 2 });
    for (const bad of [0, -1, Number.NaN, Infinity, '5' as unknown as number]) {
      await expect(m.fit(regressionData(20), { epochs: 1, workers: 2, stallTimeout: bad })).rejects.toThrow(OptionError);
    }
  });
});

describe('absurd sizes, nulls and seeds', () => {
  it('a billion experts, or hidden layers of 10⁵ × 10⁵, is an OptionError naming the option, not a RangeError', async () => {
    const e1 = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 1e9 }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(OptionError);
    expect((e1 as OptionError).option).toBe('experts');
    expect((e1 as OptionError).message).toMatch(/GiB/);
    const e2 = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, expert: 'mlp:100000,100000' }).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(OptionError);
  });

  it('a null, string or missing cell in predict() is a DataError naming row and column, not read as 0', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 2, experts: 2, featureNames: ['a', 'b'] });
    await m.fit(regressionData(50), { epochs: 1 });
    for (const [rows, where] of [
      [[[1, 2], [3, null]], /row 2, column b/],
      [[[1, '2']], /row 1, column b/],
      [[[Number.NaN, 2]], /row 1, column a/],
    ] as const) {
      const err = (() => {
        try {
          m.predict(rows as unknown as number[][]);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(DataError);
      expect((err as DataError).message).toMatch(where);
    }
  });

  it.each([2 ** 32, -1, 1.5, 2 ** 53])('seed %d is an OptionError (no silent wrap to 32 bits)', async (seed) => {
    const err = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('seed');
  });

  it('seed 2³² − 1 is accepted and differs from seed 0 (no wrap)', async () => {
    const a = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 2 ** 32 - 1 });
    const b = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 0 });
    expect(a.params.expertParams).not.toEqual(b.params.expertParams);
  });
});
