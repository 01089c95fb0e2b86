/**
 * Standardisation does not depend on the units of the data: a column is constant only
 * relative to its own magnitude, so data scaled by 1e-13 or 1e-30 trains exactly as the
 * same data in ordinary units (through the public API: Mixture.create(...).fit(...),
 * which fits the standardiser on the training rows).
 */
import { describe, expect, it } from 'vitest';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { CONSTANT_RELATIVE_RANGE, constantColumns, fitStandardizer, standardize } from '../src/data/standardize.js';
import { loadVowels } from '../src/data/vowels.js';
import { Mixture } from '../src/mixture.js';
import { testRandom } from './helpers/backends.js';

/** The same rows with x (and y, for regression) multiplied by `s`. */
function scaled(d: Dataset, sx: number, sy = 1): Dataset {
  return { ...d, x: d.x.map((v) => v * sx), ...(d.y ? { y: d.y.map((v) => v * sy) } : {}) };
}

function variance(v: Float32Array): number {
  let m = 0;
  for (const x of v) m += x / v.length;
  let s = 0;
  for (const x of v) s += (x - m) ** 2 / v.length;
  return s;
}

/** A piecewise regression task two linear experts can split: y = 2x₀ + 1 for x₀ < 0, −3x₀ + x₁ otherwise. */
function piecewise(n: number): Dataset {
  const rnd = testRandom(11);
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const a = 2 * rnd.uniform() - 1, b = 2 * rnd.uniform() - 1;
    xs.push([a, b]);
    ys.push([a < 0 ? 2 * a + 1 : -3 * a + b]);
  }
  return datasetFromArrays('regression', xs, ys);
}

const quiet = { onWarning: (): void => {} };

describe('training is independent of the units of the data', () => {
  it('regression scaled by 1e-13 (inputs and target) reaches the same relative MSE', async () => {
    const data = piecewise(400);
    const relMse = async (d: Dataset): Promise<number> => {
      const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 5, lr: 0.02, ...quiet });
      await m.fit(d, { epochs: 30, batchSize: 32 });
      const ev = m.evaluate(d);
      await m.close();
      return ev.mse! / variance(d.y!);
    };
    const plain = await relMse(data);
    const tiny = await relMse(scaled(data, 1e-13, 1e-13));
    console.log(`relative train MSE: unscaled ${plain.toExponential(3)}, scaled by 1e-13 ${tiny.toExponential(3)}`);
    // The task is learnable: well below the variance of the target.
    expect(plain).toBeLessThan(0.2);
    // Standardised, both runs see the same numbers up to float32 rounding of the inputs.
    expect(Math.abs(tiny - plain)).toBeLessThanOrEqual(0.05 * plain + 1e-4);
  });

  it('vowel classification with the features scaled by 1e-30 reaches the same accuracy', async () => {
    const { train, test } = await loadVowels({ seed: 1 });
    const accuracy = async (tr: Dataset, te: Dataset): Promise<number> => {
      const m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 4, seed: 3, lr: 0.02, ...quiet });
      await m.fit(tr, { epochs: 20, batchSize: 32 });
      const acc = m.evaluate(te).accuracy!;
      await m.close();
      return acc;
    };
    const plain = await accuracy(train, test);
    const tiny = await accuracy(scaled(train, 1e-30), scaled(test, 1e-30));
    console.log(`vowel test accuracy: unscaled ${plain.toFixed(3)}, features scaled by 1e-30 ${tiny.toFixed(3)}`);
    expect(plain).toBeGreaterThan(0.8);
    expect(Math.abs(tiny - plain)).toBeLessThanOrEqual(0.01);
  });
});

describe('constant columns', () => {
  it('a column with every value equal, and one whose range is within 1e-6 of its magnitude, are constant (std 1)', () => {
    // Columns: all 7; 1000 ± 2e-4 (range 4e-4, 4e-7 of 1000: rounding noise); 1000 ± 1
    // (range 2e-3 of 1000: real); ±1e-30 (tiny but real); all 0.
    const n = 6;
    const rows = [
      [7, 1000, 999, 1e-30, 0],
      [7, 1000.0002, 1001, -1e-30, 0],
      [7, 999.9998, 1000, 2e-30, 0],
      [7, 1000, 999, -2e-30, 0],
      [7, 1000.0002, 1001, 1e-30, 0],
      [7, 999.9998, 1000, 0, 0],
    ];
    const w = rows[0]!.length;
    const v = Float32Array.from(rows.flat());
    expect(constantColumns(v, n, w)).toEqual([0, 1, 4]);
    const s = fitStandardizer(v, n, w);
    expect(s.std[0]).toBe(1);
    expect(s.std[1]).toBe(1);
    expect(s.std[4]).toBe(1);
    expect(s.std[2]).toBeCloseTo(Math.sqrt(2 / 3), 6);
    expect(s.std[3]! / 1e-30).toBeCloseTo(Math.sqrt((1 + 1 + 4 + 4 + 1 + 0) / 6 - (1 / 6) ** 2), 5);
    // A constant column maps to (about) 0, never NaN; the tiny real one to unit scale.
    const z = standardize(s, v, n);
    for (let r = 0; r < n; r++) {
      expect(z[r * w]).toBe(0);
      expect(Math.abs(z[r * w + 1]!)).toBeLessThan(1e-3);
      expect(z[r * w + 4]).toBe(0);
    }
    expect(Math.max(...Array.from({ length: n }, (_, r) => Math.abs(z[r * w + 3]!)))).toBeGreaterThan(1);
  });

  it('the threshold is relative: a range just above 1e-6 of the magnitude is real, just below is constant', () => {
    const base = 1 << 20; // float32 is exact to 1/8 here
    const above = Float32Array.of(base, base + 4); // range 4 ≈ 3.8e-6 of 2^20
    const below = Float32Array.of(base, base + 0.5); // range 0.5 ≈ 4.8e-7 of 2^20
    expect(4 / (base + 4)).toBeGreaterThan(CONSTANT_RELATIVE_RANGE);
    expect(0.5 / (base + 0.5)).toBeLessThan(CONSTANT_RELATIVE_RANGE);
    expect(constantColumns(above, 2, 1)).toEqual([]);
    expect(fitStandardizer(above, 2, 1).std[0]).toBe(2);
    expect(fitStandardizer(below, 2, 1).std[0]).toBe(1);
    expect(constantColumns(below, 2, 1)).toEqual([0]);
    // Scaling the same column by 1e-20 changes nothing.
    expect(constantColumns(above.map((x) => x * 1e-20), 2, 1)).toEqual([]);
    expect(constantColumns(below.map((x) => x * 1e-20), 2, 1)).toEqual([0]);
  });
});

describe('the fit says which input columns are constant', () => {
  it('one warning line naming each constant column; none when no column is', async () => {
    const { Mixture } = await import('../src/mixture.js');
    const { datasetFromArrays } = await import('../src/data/dataset.js');
    const xs = Array.from({ length: 40 }, (_, i) => [Math.sin(i), 7, 1e-9 * i, 3 + 1e-12 * i]);
    const ys = xs.map(([a]) => [2 * a!]);
    const warnings: string[] = [];
    const m = await Mixture.create({ task: 'regression', inputs: 4, outputs: 1, experts: 2, featureNames: ['wave', 'seven', 'tiny', 'almost'], onWarning: (w) => warnings.push(w) });
    await m.fit(datasetFromArrays('regression', xs, ys), { epochs: 1 });
    const lines = warnings.filter((w) => w.includes('constant'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/input columns seven, almost are constant/);
    expect(lines[0]).not.toMatch(/tiny|wave/);
    const quiet: string[] = [];
    const q = await Mixture.create({ task: 'regression', inputs: 4, outputs: 1, experts: 2, onWarning: (w) => quiet.push(w) });
    await q.fit(datasetFromArrays('regression', xs.map(([a, , c], i) => [a!, i, c!, -i]), ys), { epochs: 1 });
    expect(quiet.filter((w) => w.includes('constant'))).toEqual([]);
  });
});
