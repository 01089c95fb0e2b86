/**
 * The benchmark harness: option checks, the interleaved-rounds runner and its order, the
 * summary of rounds (invalid CPU ÷ wall flagged and left out), formatting. Pure functions
 * and fakes: no timing is asserted.
 */
import { describe, expect, it } from 'vitest';
import {
  checkChoices,
  checkMillis,
  checkNonNegativeInt,
  checkPositiveInt,
  formatJson,
  markdownTable,
  num,
  ratio,
  roundOrder,
  runInterleaved,
  summariseRounds,
  slowdownOf,
  otherLoad,
  isBusy,
  startLoad,
  endLoad,
  headerLines,
  benchHeader,
  timeWindow,
  withinCores,
  type Contender,
  type Window,
} from '../harness.js';
import { machineText } from '../../src/internal.js';
import { addRatios, lossDifference, type PeerRow } from '../peers.js';
import { OptionError } from '../../src/index.js';

describe('interleaved rounds', () => {
  it('runs every contender once per round, reversing the order every other round', () => {
    expect(roundOrder(3, 3)).toEqual([
      [0, 1, 2],
      [2, 1, 0],
      [0, 1, 2],
    ]);
    expect(roundOrder(1, 2)).toEqual([[0], [0]]);
    expect(roundOrder(0, 2)).toEqual([[], []]);
  });

  it('measures one at a time in that order and returns each contender\'s results by round', async () => {
    const log: string[] = [];
    let running = 0;
    const contender = (name: string): Contender<string> => ({
      name,
      measure: async (round) => {
        running++;
        expect(running).toBe(1); // never two at once
        log.push(`${name}${round}`);
        await new Promise((r) => setTimeout(r, 1));
        running--;
        return `${name}@${round}`;
      },
    });
    const seen: string[] = [];
    const out = await runInterleaved([contender('a'), contender('b'), contender('c')], 3, (c, r, res) => seen.push(`${c.name}${r}:${res}`));
    expect(log).toEqual(['a0', 'b0', 'c0', 'c1', 'b1', 'a1', 'a2', 'b2', 'c2']);
    expect(out).toEqual([
      ['a@0', 'a@1', 'a@2'],
      ['b@0', 'b@1', 'b@2'],
      ['c@0', 'c@1', 'c@2'],
    ]);
    expect(seen[3]).toBe('c1:c@1');
    await expect(runInterleaved([contender('a')], 0)).rejects.toBeInstanceOf(OptionError);
  });
});

describe('summarising rounds', () => {
  const w = (steps: number, wallSeconds: number, cpuSeconds: number): Window => ({ steps, wallSeconds, cpuSeconds, medianStepSeconds: wallSeconds / steps, stepSeconds: [] });

  it('takes the median of the valid rounds and flags a round over its cores', () => {
    // batch 10: 1000, 2000 (invalid: 1.5 cores on 1), 1200 samples/s.
    const s = summariseRounds([w(100, 1, 1), w(200, 1, 1.5), w(120, 1, 0.98)], 10, 1);
    expect(s).toMatchObject({ valid: true, rounds: 3, invalidRounds: 1, steps: 420 });
    expect(s.samplesPerSecond).toBe(1100); // median of 1000 and 1200; the invalid 2000 is left out
    expect(s.cpuPerWall).toBeCloseTo(0.99, 12);
    expect(s.roundSamplesPerSecond).toEqual([1000, 2000, 1200]);
    expect(s.stepMicros).toBeCloseTo((10 * 1e6) / 1100, 9);
  });

  it('marks a system invalid when every round used more than its cores (+0.2), and then uses them all', () => {
    const s = summariseRounds([w(10, 1, 1.3), w(10, 1, 1.5), w(30, 1, 1.25)], 1, 1);
    expect(s.valid).toBe(false);
    expect(s.invalidRounds).toBe(3);
    expect(s.samplesPerSecond).toBe(10);
    expect(summariseRounds([w(10, 1, 2.1)], 1, 2).valid).toBe(true);
    expect(summariseRounds([w(10, 1, 2.21)], 1, 2).valid).toBe(false);
    expect(withinCores(1.2, 1)).toBe(true);
    expect(withinCores(Number.NaN, 1)).toBe(false);
    expect(() => summariseRounds([], 1, 1)).toThrow(OptionError);
  });

  it('leaves invalid rows out of the ratios and out of "PyTorch\'s best"', () => {
    const row = (system: PeerRow['system'], samplesPerSecond: number, valid: boolean, config?: PeerRow['config'], cores = 1): PeerRow => ({
      size: 'medium', system, label: system, threads: 1, blasThreads: 1, cores, compute: '', batch: 512, samplesPerSecond, cpuPerWall: 1, valid,
      rounds: 3, invalidRounds: valid ? 0 : 3, roundSamplesPerSecond: [], steps: 3, stepMicros: 1, slowdown: null, busy: false, ...(config ? { config } : {}),
    });
    const rows = [
      row('in-process', 600, true),
      row('pytorch', 400, true, 'torch1-blas1'),
      row('pytorch', 900, false, 'torch2-blas2', 2), // used more than 2 cores: never "best"
      row('pytorch', 500, true, 'torch1-blas2', 2),
      row('pytorch', 450, true, 'torch2-blas1', 2),
    ];
    const best = addRatios(rows);
    expect(best.bestTwoCore?.config).toBe('torch1-blas2');
    expect(best.oneCore?.config).toBe('torch1-blas1');
    expect(rows[0]).toMatchObject({ vsPytorchOneCore: 1.5, vsPytorchBestTwoCore: 1.2 });
    expect(rows[0]!.vsPytorchOneCoreCeiling).toBeUndefined();
    // "Best on at most two cores" includes the one-core rows, of either denormal mode.
    const flushedOneCore = [row('in-process', 600, true), { ...row('pytorch', 700, true, 'torch1-blas1'), flushDenormal: true }, row('pytorch', 500, true, 'torch1-blas2', 2)];
    expect(addRatios(flushedOneCore).bestTwoCore).toMatchObject({ config: 'torch1-blas1', flushDenormal: true });
    // Ceilings: that PyTorch step ÷ the sgemm-only time (the replay ÷ the row's threads).
    const withCeiling = [row('in-process', 600, true), { ...row('workers', 1000, true), threads: 2 }, { ...row('pytorch', 400, true, 'torch1-blas1'), stepMicros: 1000 }];
    addRatios(withCeiling, 250, 2);
    expect(withCeiling[0]!.vsPytorchOneCoreCeiling).toBe(4);
    expect(withCeiling[1]!.vsPytorchBestTwoCoreCeiling).toBe(8);
    expect(withCeiling[2]!.vsPytorchOneCoreCeiling).toBeUndefined();
    const noValidOneCore = [row('in-process', 600, true), row('pytorch', 400, false, 'torch1-blas1')];
    expect(addRatios(noValidOneCore).oneCore).toBeUndefined();
    expect(noValidOneCore[0]!.vsPytorchOneCore).toBeUndefined();
  });
});

describe('a busy machine', () => {
  it('counts the load less the benchmark\'s own threads, high above 0.25 per core, and marks the rows measured then', () => {
    expect(otherLoad(3.5, 2)).toBe(1.5);
    expect(otherLoad(1, 2)).toBe(0);
    expect(isBusy(0.5, 2)).toBe(false);
    expect(isBusy(0.51, 2)).toBe(true);
    expect(isBusy(1.9, 8)).toBe(false);
    const w = (other?: number): Window => ({ steps: 10, wallSeconds: 1, cpuSeconds: 1, medianStepSeconds: 0.1, stepSeconds: [], ...(other !== undefined ? { otherLoad: other } : {}) });
    expect(summariseRounds([w(0.1), w(0.2)], 1, 1).busy).toBe(false);
    expect(summariseRounds([w(0.1), w(5)], 1, 1).busy).toBe(isBusy(5));
    expect(summariseRounds([w()], 1, 1).busy).toBe(false);
  });

  it('records the run\'s own threads and other processes\' load at its end, and warns once where it was high', () => {
    const l = startLoad();
    const warnings: string[] = [];
    endLoad(l, (line) => warnings.push(line), 1_000_000);
    expect(l.ownThreads).toBeGreaterThanOrEqual(0);
    expect(l.otherEnd).toBe(Math.max(0, l.end - l.ownThreads));
    expect(l.busy).toBe(false); // no load is high for a million cores
    expect(warnings).toEqual([]);
    const m = startLoad();
    m.otherStart = 1e9;
    endLoad(m, (line) => warnings.push(line), 1);
    expect(m.busy).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^warning: the machine was busy: other processes' load/);
    expect(headerLines({ ...benchHeader('x'), loadAverage: m }).join('\n')).toContain('- **Warning:** the machine was busy');
    // The machine line names the CPU, the cores and SMT (Linux's CPU topology; 'SMT unknown' elsewhere).
    expect(headerLines(benchHeader('x'))[0]).toMatch(/^- Machine: x \(.+, \d+ cores, (no SMT|\d+ threads per core \(SMT\)|SMT unknown)\), Node v/);
    expect(machineText({ cpuModel: 'C', cores: 16, threadsPerCore: 2 })).toBe('C, 16 cores, 2 threads per core (SMT)');
  });
});

describe('slowdown', () => {
  it('divides the slowest 10-step window\'s mean by the fastest\'s, in run order', () => {
    expect(slowdownOf(Array.from({ length: 50 }, () => 1))).toBe(1);
    // Steps 1…50 ms: windows 1–10 (mean 5.5) and 41–50 (mean 45.5).
    expect(slowdownOf(Array.from({ length: 50 }, (_, i) => i + 1))).toBeCloseTo(45.5 / 5.5, 12);
    // One slow step counts once in every window it falls in; sorted order would lose this.
    const spike = Array.from({ length: 30 }, (_, i) => (i === 15 ? 11 : 1));
    expect(slowdownOf(spike)).toBeCloseTo(20 / 10, 12);
    expect(slowdownOf([1, 3])).toBe(3);
    expect(slowdownOf([1])).toBeNaN();
    expect(lossDifference([2, 4], [[2, 4.004], [2.002]])).toBeCloseTo(1e-3, 12);
    expect(lossDifference([2], [[null]])).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('timed windows', () => {
  it('runs exactly `steps` steps, or until the budget is spent and minSteps ran', async () => {
    let n = 0;
    const w = await timeWindow(() => void n++, { steps: 7, timeMs: 1e9, minSteps: 100 });
    expect(w.steps).toBe(7);
    expect(n).toBe(7);
    expect(w.wallSeconds).toBeGreaterThan(0);
    expect(w.cpuSeconds).toBeGreaterThanOrEqual(0);
    expect(w.medianStepSeconds).toBeGreaterThanOrEqual(0);
    expect(w.stepSeconds).toHaveLength(7);
    // A budget: at least minSteps, and on until the steps' time reaches it.
    n = 0;
    const few = await timeWindow(() => void n++, { timeMs: 0, minSteps: 3 });
    expect(few.steps).toBe(3);
    const sleepy = await timeWindow(() => new Promise((r) => setTimeout(r, 2)), { timeMs: 30, minSteps: 1 });
    expect(sleepy.steps).toBeGreaterThan(1);
    expect(sleepy.wallSeconds).toBeGreaterThanOrEqual(0.03);
  });
});

describe('option checks', () => {
  it('throw OptionError naming the option', () => {
    expect(checkPositiveInt(3, 'steps')).toBe(3);
    for (const bad of [0, -1, 1.5, Number.NaN, '3']) expect(() => checkPositiveInt(bad, 'steps')).toThrow(/steps: must be a positive integer/);
    expect(checkNonNegativeInt(0, 'warmupSteps')).toBe(0);
    expect(() => checkNonNegativeInt(-1, 'warmupSteps')).toThrow(OptionError);
    expect(checkMillis(0, 'timeMs')).toBe(0);
    expect(() => checkMillis(Number.POSITIVE_INFINITY, 'timeMs')).toThrow(/timeMs/);
    expect(checkChoices(['small'], ['small', 'medium'] as const, 'sizes', 'size')).toEqual(['small']);
    expect(() => checkChoices(['huge'], ['small'] as const, 'sizes', 'size')).toThrow(/unknown size "huge"/);
    expect(() => checkChoices([], ['small'] as const, 'sizes', 'size')).toThrow(/no size given/);
  });
});

describe('formatting', () => {
  it('formats numbers, ratios, tables and JSON', () => {
    expect(num(1234.5)).toBe('1,235');
    expect(num(123.4)).toBe('123');
    expect(num(1.2345)).toBe('1.23');
    expect(num(undefined)).toBe('–');
    expect(num(Number.NaN)).toBe('–');
    expect(ratio(13.2)).toBe('13×');
    expect(ratio(1.234)).toBe('1.23×');
    expect(ratio(undefined)).toBe('–');
    expect(markdownTable(['a', 'b'], [['1', '2']])).toEqual(['| a | b |', '|---|---:|', '| 1 | 2 |']);
    expect(formatJson({ a: Number.NaN, b: 1 })).toBe('{"a":null,"b":1}');
  });
});
