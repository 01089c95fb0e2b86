import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Mixture } from '../src/mixture.js';
import { Rng } from '../src/rng.js';
import type { Dataset } from '../src/data/dataset.js';

// 100 rows in batches of 16: 7 batches an epoch, the last one partial.
function data(): Dataset {
  const rng = new Rng(5);
  const n = 100;
  const x = new Float32Array(n * 2), y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[2 * i] = rng.next() * 4 - 2;
    x[2 * i + 1] = rng.next();
    y[i] = x[2 * i]! < 0 ? 2 * x[2 * i]! : 3 - x[2 * i]!;
  }
  return { task: 'regression', n, inputs: 2, x, outputs: 1, y };
}

const create = () => Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 3, seed: 11, lr: 0.02 });
const dir = await mkdtemp(join(tmpdir(), 'moe-resume-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('a checkpoint taken mid-epoch resumes exactly', () => {
  it.each([0, 2])('abort after step 10 (epoch 2, batch 3), save, load, finish: same parameters as uninterrupted (workers %i)', async (workers) => {
    const ds = data();
    const whole = await create();
    await whole.fit(ds, { epochs: 3, batchSize: 16, workers });

    const cut = await create();
    const ac = new AbortController();
    const stopAt = (step: number, baseLr: number): number => {
      if (step === 10) ac.abort();
      return baseLr;
    };
    await expect(
      cut.fit(ds, { epochs: 3, batchSize: 16, workers, signal: ac.signal, schedule: ({ step, baseLr }) => stopAt(step, baseLr) }),
    ).rejects.toMatchObject({ code: 'ABORTED' });
    expect(cut.training).toMatchObject({ step: 10, epoch: 1, batch: 3, batchSize: 16 });
    const file = join(dir, `cut-${workers}.moe`);
    await cut.save(file);

    const resumed = await Mixture.load(file);
    expect(resumed.training.batch).toBe(3);
    await expect(resumed.fit(ds, { epochs: 2, batchSize: 8, workers })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    // Fewer batches than the 3 of 16 already done this epoch: refused, naming the position.
    const short: Dataset = { ...ds, n: 30, x: ds.x.slice(0, 60), y: ds.y!.slice(0, 30) };
    await expect(resumed.fit(short, { epochs: 2, batchSize: 16, workers })).rejects.toMatchObject({
      code: 'DATA_SHAPE',
      message: expect.stringContaining('after 3 batches of 16 (48 rows), but this training set has 30 rows, 2 batches') as unknown,
    });
    const r = await resumed.fit(ds, { epochs: 3 - resumed.training.epoch, batchSize: 16, workers });
    expect(r.epochs).toBe(2);
    expect(resumed.training).toMatchObject({ step: whole.training.step, epoch: 3, batch: 0 });
    expect(Array.from(resumed.params.expertParams)).toEqual(Array.from(whole.params.expertParams));
    expect(Array.from(resumed.params.gateParams)).toEqual(Array.from(whole.params.gateParams));
    expect(Array.from(resumed.params.expertOpt)).toEqual(Array.from(whole.params.expertOpt));
  });
});

describe('a file that recorded every batch of an epoch done, but not the epoch', () => {
  it('finishes that epoch without training and resumes bit for bit, every epoch reported with a finite loss', async () => {
    const ds = data();
    const whole = await create();
    await whole.fit(ds, { epochs: 3, batchSize: 16 });

    const m = await create();
    const startRng = [...m.training.rng];
    await m.fit(ds, { epochs: 1, batchSize: 16 });
    expect(m.training).toMatchObject({ step: 7, epoch: 1, batch: 0 });
    const file = join(dir, 'epoch-end.moe');
    await m.save(file);
    // The same point as 0.2 pre-release snapshots could hold it (a save served at the
    // boundary after an epoch's last step): 7 of 7 batches done, epoch 0, its start's rng.
    const legacy = await Mixture.load(file);
    legacy.state.training.epoch = 0;
    legacy.state.training.batch = 7;
    legacy.state.training.rng = startRng;
    const r = await legacy.fit(ds, { epochs: 2, batchSize: 16 });
    expect(r.history.map((h) => h.epoch)).toEqual([2, 3]);
    expect(r.history.every((h) => Number.isFinite(h.loss) && h.samplesPerSecond > 0)).toBe(true);
    expect(Array.from(legacy.params.expertParams)).toEqual(Array.from(whole.params.expertParams));
    expect(Array.from(legacy.params.gateParams)).toEqual(Array.from(whole.params.gateParams));
  });
});
