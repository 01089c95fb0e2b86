/**
 * Inference in chunks whose rows shrink with the model: a dense model of 10⁶ experts needs
 * ~50 MB of scratch a row, so chunks of 1,024 rows asked for 50 GiB, and `moe train
 * --experts 1000000` trained an epoch, then could not evaluate and exited without saving.
 */
import { describe, expect, it } from 'vitest';
import { chunkRows, INFERENCE_CHUNK } from '../src/engine/inference.js';
import { Mixture } from '../src/mixture.js';
import { datasetFromArrays } from '../src/data/dataset.js';
import { resolveMixtureConfig } from '../src/model/config.js';

describe('inference chunks', () => {
  it('1,024 rows for models of usual size, fewer past 256 MiB of scratch a chunk, at least 1', () => {
    const cfg = (experts: number, expert = 'mlp:512', io = 256) => resolveMixtureConfig({ task: 'regression', inputs: io, outputs: io, experts, expert });
    expect(chunkRows(cfg(8))).toBe(INFERENCE_CHUNK);
    expect(chunkRows(cfg(8, 'mlp:1024', 1024))).toBe(INFERENCE_CHUNK);
    const million = chunkRows(cfg(1_000_000, 'linear', 3));
    expect(million).toBeGreaterThanOrEqual(1);
    expect(million).toBeLessThan(16);
    expect(chunkRows(cfg(100_000, 'linear', 3))).toBeLessThan(INFERENCE_CHUNK);
  });

  it('a model of 100,000 experts evaluates in chunks of fewer rows, each row as it does alone', async () => {
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 100_000, seed: 5 });
    const n = 150, x: number[][] = [], y: number[][] = [];
    for (let i = 0; i < n; i++) {
      x.push([Math.sin(i), Math.cos(i * 0.7)]);
      y.push([Math.sin(i) - Math.cos(i * 0.7)]);
    }
    await m.fit(datasetFromArrays('regression', x, y), { epochs: 0 }); // fits the scalers only
    expect(chunkRows(m.config)).toBeLessThan(n);
    const all = m.predict(x).output;
    for (const i of [0, 1, chunkRows(m.config), n - 1]) expect(m.predict([x[i]!]).output[0]).toBe(all[i]);
    await m.close();
  }, 60_000);
});
