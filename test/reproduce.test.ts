// `moe reproduce jacobs1991`: the criterion, the statistics, the verdicts, the decision
// lines, and one tiny end-to-end run through the piscina workers (needs `npm run build`).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { reproduceCommand } from '../src/cli/reproduce-command.js';
import { errorFromWire, OptionError } from '../src/errors.js';
import type { Activation } from '../src/model/mlp.js';
import { affineScores, argmaxBoundaries, type Affine2 } from '../src/reproduce/geometry.js';
import { reproduceJacobs1991, runSeeds, type Jacobs1991Report } from '../src/reproduce/jacobs1991.js';
import { bootstrapRatio, pairSplit, summarise, verdicts, type SystemSummary } from '../src/reproduce/report.js';
import { runOne, runOneReply, type RunResult, type TrainSettings } from '../src/reproduce/run.js';
import { CriterionTracker, epochsToCriterion, mean, median, sd } from '../src/reproduce/stats.js';
import { jacobs1991Systems } from '../src/reproduce/systems.js';

describe('criterion', () => {
  it('is the first epoch whose training accuracy reaches the threshold', () => {
    expect(epochsToCriterion([0.5, 0.8, 0.9, 0.95, 0.85], 0.9, 10)).toEqual({ reached: true, epochs: 3 });
    expect(epochsToCriterion([0.91], 0.9, 10)).toEqual({ reached: true, epochs: 1 });
  });

  it('counts a run that never reaches it with the cap, not as missing', () => {
    expect(epochsToCriterion([0.5, 0.6, 0.89, 0.899], 0.9, 4)).toEqual({ reached: false, epochs: 4 });
    // Reaching it only after the cap does not count either.
    expect(epochsToCriterion([0.5, 0.6, 0.7, 0.95], 0.9, 3)).toEqual({ reached: false, epochs: 3 });
  });

  it('reports the hit once, on the epoch it happens', () => {
    const t = new CriterionTracker(0.9, 100);
    expect([0.7, 0.92, 0.95, 0.5].map((a) => t.observe(a))).toEqual([false, true, false, false]);
    expect(t.outcome()).toEqual({ reached: true, epochs: 2 });
    expect(() => new CriterionTracker(0, 10)).toThrow(/criterion/);
    expect(() => new CriterionTracker(0.9, 0)).toThrow(/cap/);
  });
});

describe('summary statistics', () => {
  it('mean, sample sd and median on known numbers', () => {
    const v = [2, 4, 4, 4, 5, 5, 7, 9];
    expect(mean(v)).toBe(5);
    expect(sd(v)).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect(median(v)).toBe(4.5);
    expect(median([3, 1, 2])).toBe(2);
    expect(sd([7])).toBe(0);
    expect(mean([])).toBeNaN();
  });

  const run = (epochs: number, reached: boolean, train: number, test: number): RunResult => ({
    key: 'bp6',
    run: 0,
    seed: 1,
    reachedCriterion: reached,
    epochs,
    trainAccuracy: train,
    testAccuracy: test,
    trainAccuracyFinal: train,
    testAccuracyFinal: test,
    curve: { trainAccuracy: [], loss: [] },
    backend: 'test',
    seconds: 0.5,
  });

  it('summarises runs, counting the capped one with the cap', () => {
    const bp6 = jacobs1991Systems().find((s) => s.key === 'bp6')!;
    const s = summarise(bp6, [run(10, true, 0.9, 0.92), run(20, true, 0.92, 0.94), run(300, false, 0.86, 0.9)]);
    expect(s.runs).toBe(3);
    expect(s.reachedCriterion).toBe(2);
    expect(s.epochsMean).toBeCloseTo(110, 12);
    expect(s.epochsSd).toBeCloseTo(Math.sqrt(((10 - 110) ** 2 + (20 - 110) ** 2 + (300 - 110) ** 2) / 2), 9);
    expect(s.trainAccuracy).toBeCloseTo(0.8933333333, 9);
    expect(s.testAccuracySd).toBeCloseTo(0.02, 9);
  });
});

describe('verdicts against the paper', () => {
  const sys = (testAccuracy: number, epochsMean: number, reached = 25): SystemSummary => ({
    label: 'x', kind: 'mixture', form: 'gaussian', runs: 25, reachedCriterion: reached,
    trainAccuracy: 0.9, trainAccuracySd: 0, testAccuracy, testAccuracySd: 0.01, epochsMean, epochsSd: 3, epochsMedian: epochsMean,
    trainAccuracyFinal: 0.92, trainAccuracyFinalSd: 0, testAccuracyFinal: testAccuracy, testAccuracyFinalSd: 0, secondsMean: 0.1,
  });
  const cmp = { name: 'test', mixtures: ['a', 'b'] as [string, string], backprop: ['c', 'd'] as [string, string] };

  it('says "reproduces" for equal accuracy and half the epochs, with the numbers in the text', () => {
    const [gen, speed] = verdicts({ a: sys(0.93, 20), b: sys(0.94, 22), c: sys(0.935, 40), d: sys(0.93, 44) }, cmp);
    expect(gen!.verdict).toBe('reproduces');
    expect(speed!.verdict).toBe('reproduces');
    expect(speed!.text).toContain('0.50');
    expect(speed!.text).toContain('a 20.0 ± 3.0');
  });

  it('says "does not reproduce" for equal epochs or a generalisation gap, and names capped runs', () => {
    const [gen, speed] = verdicts({ a: sys(0.95, 40), b: sys(0.95, 40), c: sys(0.9, 40, 20), d: sys(0.9, 41) }, cmp);
    expect(gen!.verdict).toBe('does not reproduce');
    expect(gen!.text).toContain('mixtures generalise better');
    expect(speed!.verdict).toBe('does not reproduce');
    expect(speed!.text).toContain('c 5 of 25');
    const [, partly] = verdicts({ a: sys(0.93, 30), b: sys(0.93, 30), c: sys(0.93, 40), d: sys(0.93, 40) }, cmp);
    expect(partly!.verdict).toBe('partly');
  });

  it('puts a bootstrap interval on the epoch ratio and flags one that spans a cut-off', () => {
    expect(bootstrapRatio([[10, 10], [20, 20]], [[30, 30], [30, 30]])).toEqual([0.5, 0.5]);
    const [lo, hi] = bootstrapRatio([[10, 30, 20, 25], [15, 20]], [[40, 45, 60], [50, 30]]);
    expect(lo).toBeLessThan(20 / 45);
    expect(hi).toBeGreaterThan(20 / 45);
    const [, speed] = verdicts({ a: sys(0.93, 30), b: sys(0.93, 30), c: sys(0.93, 46), d: sys(0.93, 46) }, cmp, {
      a: [20, 40, 25, 35], b: [30, 30, 20, 40], c: [30, 60, 40, 54], d: [46, 46, 30, 62],
    });
    expect(speed!.text).toMatch(/95% bootstrap interval over runs [0-9.]+–[0-9.]+, which spans the 0.65/);
  });

  it("detects the paper's split of the vowel pairs from gate shares", () => {
    // [vowel][expert], vowels iy, ih, aa, ah.
    expect(pairSplit([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]])).toEqual({ separated: true, together: true });
    expect(pairSplit([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7]])).toEqual({ separated: true, together: false });
    expect(pairSplit([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]]).separated).toBe(false);
  });
});

describe('decision lines', () => {
  const box = { x: [-1, 1] as [number, number], y: [-1, 1] as [number, number] };

  it('finds the tie line of two scores, clipped to the box', () => {
    const s: Affine2[] = [{ a: [1, 0], b: 0 }, { a: [-1, 0], b: 0 }];
    const [seg, ...rest] = argmaxBoundaries(s, box);
    expect(rest).toHaveLength(0);
    expect(seg!.x1).toBeCloseTo(0, 12);
    expect(seg!.x2).toBeCloseTo(0, 12);
    expect(Math.abs(seg!.y2 - seg!.y1)).toBeCloseTo(2, 12);
  });

  it('keeps only the part of a tie line where both scores are on top', () => {
    // Three regions meeting at the origin: x > 0 & y > 0 → 0; x < 0 → 1; y < 0 < x → 2.
    const s: Affine2[] = [{ a: [1, 1], b: 0 }, { a: [-1, 1], b: 0 }, { a: [1, -1], b: 0 }];
    const segs = argmaxBoundaries(s, box);
    const s01 = segs.find((g) => g.i === 0 && g.j === 1)!; // x = 0, y > 0
    expect(Math.min(s01.y1, s01.y2)).toBeCloseTo(0, 9);
    expect(Math.max(s01.y1, s01.y2)).toBeCloseTo(1, 9);
    const s02 = segs.find((g) => g.i === 0 && g.j === 2)!; // y = 0, x > 0
    expect(Math.min(s02.x1, s02.x2)).toBeCloseTo(0, 9);
    expect(Math.max(s02.x1, s02.x2)).toBeCloseTo(1, 9);
  });

  it('maps a layer on standardised inputs to raw units', () => {
    // W (2×2) then b (2); the tie w·z = 0 is z0 = z1, i.e. (x0 − 100)/10 = (x1 − 1000)/100.
    const p = Float32Array.from([1, -1, -1, 1, 0, 0]);
    const [s0, s1] = affineScores(p, 2, { mean: [100, 1000], std: [10, 100] });
    for (const [x0, x1] of [[110, 1100], [90, 900]]) expect(s0!.a[0] * x0! + s0!.a[1] * x1! + s0!.b).toBeCloseTo(s1!.a[0] * x0! + s1!.a[1] * x1! + s1!.b, 9);
  });
});

describe('one run', () => {
  it('measures the criterion on the per-epoch training accuracies it returns', async () => {
    const system = jacobs1991Systems().find((s) => s.key === 'moe4')!;
    const settings: TrainSettings = { optimizer: 'adam', lr: 0.01, batchSize: 32, epochs: 12, criterion: 0.6, splitSeed: 1 };
    const r = await runOne({ system, run: 0, seed: 7, settings });
    expect(r.curve.trainAccuracy).toHaveLength(12);
    expect({ reached: r.reachedCriterion, epochs: r.epochs }).toEqual(epochsToCriterion(r.curve.trainAccuracy, 0.6, 12));
    expect(r.gateShareByVowel).toHaveLength(4);
    for (const row of r.gateShareByVowel!) expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it('a worker reply carries a failure as a wire error that rebuilds to its class', async () => {
    const system = { ...jacobs1991Systems().find((s) => s.key === 'bp6')!, expert: 'mlp:6:bogus' };
    const settings: TrainSettings = { optimizer: 'adam', lr: 0.01, batchSize: 32, epochs: 1, criterion: 0.6, splitSeed: 1 };
    const reply = await runOneReply({ system, run: 0, seed: 7, settings });
    if (!('error' in reply)) throw new Error('expected an error reply');
    expect(reply.error).toMatchObject({ code: 'INVALID_OPTION', option: 'expert' });
    const e = errorFromWire(reply.error);
    expect(e).toBeInstanceOf(OptionError);
    expect(e.message).toContain('bogus');
  });

  it('an error in a worker thread reaches the caller with its class and option', async () => {
    // The mixtures train; the first backprop net's activation fails in Mixture.create, in the worker.
    const run = reproduceJacobs1991({ runs: 1, epochs: 1, jobs: 1, bpActivation: 'bogus' as Activation });
    await expect(run).rejects.toBeInstanceOf(OptionError);
    await expect(run).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'expert' });
  });

  it('derives distinct run seeds from the base seed, reproducibly', () => {
    const a = runSeeds(3, 10);
    expect(new Set(a).size).toBe(10);
    expect(runSeeds(3, 10)).toEqual(a);
    expect(runSeeds(4, 10)).not.toEqual(a);
  });
});

describe('reproduce jacobs1991 end to end (tiny)', () => {
  let dir: string;
  let report: Jacobs1991Report;
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', isArray: (name) => name === 'g' || name === 'path' || name === 'line' });

  /** Every <g> whose class names this mark, anywhere in the parsed SVG. */
  function marks(node: unknown, name: string, found: Record<string, unknown>[] = []): Record<string, unknown>[] {
    if (Array.isArray(node)) for (const n of node) marks(n, name, found);
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (typeof o['@_class'] === 'string' && (o['@_class'] as string).split(' ').includes(name)) found.push(o);
      for (const [k, v] of Object.entries(o)) if (!k.startsWith('@_')) marks(v, name, found);
    }
    return found;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'moe-reproduce-'));
    report = await reproduceJacobs1991({ runs: 1, epochs: 6, jobs: 2, seed: 1, out: dir });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('summarises every system, and the mixtures split the pairs as the figure shows', () => {
    for (const k of ['moe4', 'moe8', 'bp6', 'bp12', 'moe4_categorical', 'moe8_categorical', 'bp6_categorical', 'bp12_categorical']) {
      const s = report.systems[k]!;
      expect(s.runs).toBe(1);
      expect(s.epochsMean).toBeGreaterThanOrEqual(1);
      expect(s.epochsMean).toBeLessThanOrEqual(6);
      if (s.reachedCriterion === 0) expect(s.epochsMean).toBe(6);
      expect(s.testAccuracy).toBeGreaterThanOrEqual(0);
      expect(s.testAccuracy).toBeLessThanOrEqual(1);
    }
    expect(report.verdicts).toHaveLength(6);
    expect(report.figure.shareByVowel).toHaveLength(4);
  });

  it('writes a well-formed Figure-2 SVG with every case, the gate cells and the expert lines', async () => {
    const svg = await readFile(join(dir, 'jacobs1991.svg'), 'utf8');
    const doc = parser.parse(svg) as { svg?: unknown };
    expect(doc.svg).toBeDefined();
    const [cases] = marks(doc, 'cases');
    expect((cases!.path as unknown[]).length).toBe(report.data.trainCases + report.data.testCases);
    const [cells] = marks(doc, 'gate-regions');
    expect((cells!.path as unknown[]).length).toBeGreaterThan(0);
    const lines = marks(doc, 'expert-lines')[0]!.line as unknown[] | undefined;
    expect(lines?.length ?? 0).toBe(report.figure.expertLines.length);
    const curves = parser.parse(await readFile(join(dir, 'jacobs1991-curves.svg'), 'utf8'));
    expect(marks(curves, 'curve')).toHaveLength(jacobs1991Systems().length);
    const md = await readFile(join(dir, 'jacobs1991.md'), 'utf8');
    expect(md).toContain('npx moe reproduce jacobs1991');
    expect(md).toContain('base seed 1');
    const json = JSON.parse(await readFile(join(dir, 'jacobs1991.json'), 'utf8')) as Jacobs1991Report;
    expect(json.systems.moe4!.runs).toBe(1);
  });

  it('the command prints one JSON line last with every system', async () => {
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await reproduceCommand().exitOverride().parseAsync(['node', 'moe', 'jacobs1991', '--runs', '1', '--epochs', '3', '--jobs', '1', '--json', '--out', dir, '--force']);
    } finally {
      write.mockRestore();
      err.mockRestore();
    }
    const last = out.join('').trim().split('\n').at(-1)!;
    const j = JSON.parse(last) as Record<string, Record<string, number>>;
    for (const k of ['moe4', 'moe8', 'bp6', 'bp12', 'moe4_categorical', 'moe8_categorical']) {
      for (const f of ['trainAccuracy', 'trainAccuracySd', 'testAccuracy', 'testAccuracySd', 'epochsMean', 'epochsSd', 'runs', 'reachedCriterion']) {
        expect(typeof j[k]![f], `${k}.${f}`).toBe('number');
      }
    }
  });

  it('rejects a bad option with the option named', async () => {
    await expect(reproduceJacobs1991({ runs: 0 })).rejects.toThrow(/runs/);
    await expect(reproduceCommand().exitOverride().configureOutput({ writeErr: () => {} }).parseAsync(['node', 'moe', 'jacobs1992'])).rejects.toThrow(/jacobs1991/);
  });
});
