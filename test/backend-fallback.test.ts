// A provider that loads on the main thread but not in the worker threads (as tfjs-node is
// known to do) must move a parallel fit to the next provider, and say so; or, where the
// provider is required, fail with a BackendError and leave the model untouched. The
// subject is the fall-back, not OpenBLAS: the main thread's provider is wasm's products
// under the name blas with a library no worker can load, so this runs on every machine.
import { afterEach, describe, expect, it } from 'vitest';
import { datasetFromArrays } from '../src/data/dataset.js';
import { BackendError } from '../src/errors.js';
import { Mixture } from '../src/mixture.js';

const data = datasetFromArrays(
  'regression',
  Array.from({ length: 64 }, (_, i) => [i / 16 - 2, Math.sin(i)]),
  Array.from({ length: 64 }, (_, i) => [i % 2 === 0 ? i / 8 : 3 - i / 16]),
);

// A "blas" provider on the main thread (wasm's products under that name) whose library
// path no worker can load.
async function mixtureWhoseWorkersCannotLoadBlas(warnings: string[]): Promise<Mixture> {
  const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 8, backend: 'wasm', onWarning: (w) => warnings.push(w) });
  m.provider = { ...m.provider, name: 'blas', detail: '/nonexistent/libopenblas.so.0' };
  expect(m.backend).toBe('blas');
  return m;
}

const required = process.env.MOE_REQUIRE_BACKEND;
afterEach(() => {
  if (required === undefined) delete process.env.MOE_REQUIRE_BACKEND;
  else process.env.MOE_REQUIRE_BACKEND = required;
});

describe('a provider that does not load in the workers', () => {
  it('moves the fit to the next provider that does, says so, and trains as that provider does in-process', async () => {
    delete process.env.MOE_REQUIRE_BACKEND;
    const warnings: string[] = [];
    const m = await mixtureWhoseWorkersCannotLoadBlas(warnings);
    const r = await m.fit(data, { epochs: 3, batchSize: 16, workers: 2 });
    expect(r.backend).toBe('wasm');
    expect(m.backend).toBe('wasm');
    expect(warnings.some((w) => /shard \d: backend blas did not load/.test(w) && /next backend/.test(w))).toBe(true);

    const ref = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 8, backend: 'wasm' });
    await ref.fit(data, { epochs: 3, batchSize: 16, workers: 0 });
    expect(Array.from(m.params.expertParams)).toEqual(Array.from(ref.params.expertParams));
    expect(Array.from(m.params.gateParams)).toEqual(Array.from(ref.params.gateParams));
  });

  it('fails with a BackendError naming the shard where the provider is required, and leaves the model untouched', async () => {
    process.env.MOE_REQUIRE_BACKEND = 'blas';
    const m = await mixtureWhoseWorkersCannotLoadBlas([]);
    const before = m.params.expertParams.slice();
    const err = await m.fit(data, { epochs: 1, workers: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).message).toMatch(/shard \d: backend blas did not load/);
    expect(Array.from(m.params.expertParams)).toEqual(Array.from(before));
    expect(m.inputScaler).toBeUndefined();
    expect(m.training.step).toBe(0);
  });

  it('is reported as a BackendError even when the main thread is busy while the workers start', async () => {
    // piscina can report a shard's task ending before comlink delivers init's reply; the
    // task's result carries the error too, so the cause is not lost to that race.
    process.env.MOE_REQUIRE_BACKEND = 'blas';
    const busy = setInterval(() => {
      const until = performance.now() + 3;
      while (performance.now() < until) {
        // keep the event loop busy
      }
    }, 1);
    try {
      for (let i = 0; i < 8; i++) {
        const m = await mixtureWhoseWorkersCannotLoadBlas([]);
        const err = await m.fit(data, { epochs: 1, workers: 2 }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BackendError);
      }
    } finally {
      clearInterval(busy);
    }
  });
});
