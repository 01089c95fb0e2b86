import { describe, expect, it } from 'vitest';
import { Mixture } from '../src/mixture.js';
import { Rng } from '../src/rng.js';
import type { Dataset } from '../src/data/dataset.js';

// One batch per epoch (n = batchSize), so `epochs` counts steps exactly, and experts big
// enough that a step's phases last milliseconds: a timer fires inside them.
function data(): Dataset {
  const rng = new Rng(3);
  const n = 256, D = 64;
  const x = new Float32Array(n * D).map(() => rng.normal());
  const y = new Float32Array(n * 4).map(() => rng.normal());
  return { task: 'regression', n, inputs: D, x, outputs: 4, y };
}
const create = () => Mixture.create({ task: 'regression', inputs: 64, outputs: 4, experts: 4, expert: 'mlp:256', seed: 4, lr: 1e-3 });

describe('closing a mixture while a parallel fit runs', () => {
  it.each([5, 23, 61])('close() after %i ms rejects the fit with ABORTED, leaves every expert at one step, and no thread behind', async (ms) => {
    const ds = data();
    const m = await create();
    const t0 = performance.now();
    // Settled into a value at once: the fit may reject while close() is still running.
    const outcome = m.fit(ds, { epochs: 10_000, batchSize: 256, workers: 2 }).then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await new Promise((r) => setTimeout(r, ms));
    await m.close();
    expect(await outcome).toMatchObject({ code: 'ABORTED' });
    expect(performance.now() - t0).toBeLessThan(5000);
    const steps = m.training.step;
    // The same number of steps in-process: bit-identical parameters and optimiser state,
    // so no shard was left half-way through an update.
    const ref = await create();
    if (steps > 0) await ref.fit(ds, { epochs: steps, batchSize: 256, workers: 0 });
    expect(Array.from(m.params.expertParams)).toEqual(Array.from(ref.params.expertParams));
    expect(Array.from(m.params.expertOpt)).toEqual(Array.from(ref.params.expertOpt));
    expect(Array.from(m.params.gateParams)).toEqual(Array.from(ref.params.gateParams));
  });
});
