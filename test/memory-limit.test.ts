/**
 * The 4 GiB limit of a 32-bit WebAssembly memory, exercised with a lowered threshold: a
 * dataset larger than the limit still trains (it lives outside the kernel memory and each
 * batch is gathered into it), while a session whose model and scratch exceed the limit is
 * refused up front with an OptionError that says what to lower; and a model whose
 * parameters alone exceed what any session can hold is refused when it is created.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { datasetFromArrays } from '../src/data/dataset.js';
import { OptionError } from '../src/errors.js';
import { memoryLimit, setMemoryLimitForTests } from '../src/memory/memory.js';
import { Mixture } from '../src/mixture.js';

afterEach(() => setMemoryLimitForTests(undefined));

function rows(n: number): ReturnType<typeof datasetFromArrays> {
  const xs = Array.from({ length: n }, (_, i) => [Math.sin(i), Math.cos(i * 0.3), Math.sin(i * 0.7), (i % 7) / 7]);
  return datasetFromArrays('regression', xs, xs.map(([a, b]) => [a! * b!]));
}

describe('the kernel memory limit (lowered for the test)', () => {
  it('a dataset larger than the limit trains: only the batch is in the kernel memory', async () => {
    const data = rows(20_000); // 320 KB of inputs and targets
    const m = await Mixture.create({ task: 'regression', inputs: 4, outputs: 1, experts: 2 });
    setMemoryLimitForTests(256 * 1024);
    expect(memoryLimit()).toBeLessThan(data.x.byteLength + data.y!.byteLength);
    const r = await m.fit(data, { epochs: 1, batchSize: 64, workers: 2 });
    expect(r.epochs).toBe(1);
    expect(Number.isFinite(r.finalLoss)).toBe(true);
  });

  it('a session over the limit is refused before training, naming batchSize, and the model is unchanged', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 4, outputs: 1, experts: 4, expert: 'mlp:64,64' });
    const before = m.params.expertParams.slice();
    setMemoryLimitForTests(192 * 1024);
    const err = await m.fit(rows(600), { epochs: 1, batchSize: 512 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('batchSize');
    expect((err as OptionError).message).toMatch(/GiB of kernel memory; one WebAssembly memory holds at most/);
    expect(m.training.step).toBe(0);
    expect(m.inputScaler).toBeUndefined();
    expect(Array.from(m.params.expertParams)).toEqual(Array.from(before));
    // With a smaller batch the same model fits.
    setMemoryLimitForTests(undefined);
    await m.fit(rows(600), { epochs: 1, batchSize: 32 });
    expect(m.training.step).toBeGreaterThan(0);
  });

  it('a model whose parameters, gradients and optimiser state exceed 3.5 GiB is refused at creation', async () => {
    const err = await Mixture.create({ task: 'regression', inputs: 1000, outputs: 1000, experts: 300, expert: 'mlp:1000' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('experts');
    expect((err as Error).message).toMatch(/GiB of parameters, gradients and optimiser state; the limit is 3\.5 GiB/);
  });
});
