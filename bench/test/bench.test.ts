import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { formatScalingMarkdown } from '../report.js';
import { machineSlug } from '../harness.js';
import { defaultWorkerCounts, runScalingBenchmark, type ScalingReport } from '../scaling.js';
import { OptionError } from '../../src/index.js';
import { benchCli, positiveFinite } from './cli.js';

// Functional checks only: the numbers depend on the machine and its load, never asserted.
const TINY = { timeMs: 20, minSteps: 3, warmupSteps: 1, pings: 10 };

afterEach(() => {
  vi.restoreAllMocks();
});

describe('scaling benchmark helpers', () => {
  it('picks powers of two up to min(cores, experts), then the core count', () => {
    expect(defaultWorkerCounts(2, 8)).toEqual([1, 2]);
    expect(defaultWorkerCounts(1, 8)).toEqual([1]);
    expect(defaultWorkerCounts(6, 8)).toEqual([1, 2, 4, 6]);
    expect(defaultWorkerCounts(12, 8)).toEqual([1, 2, 4, 8]);
    expect(defaultWorkerCounts(16, 16)).toEqual([1, 2, 4, 8, 16]);
  });

  it('slugs the machine name to [a-z0-9-]', () => {
    expect(machineSlug('AMD EPYC 7B13', 2)).toBe('amd-epyc-7b13-2c');
    expect(machineSlug('Intel(R) Xeon(R) CPU @ 2.20GHz', 4)).toBe('intel-xeon-cpu-2-20ghz-4c');
    expect(machineSlug('', 8)).toBe('8c');
    expect(machineSlug()).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
  });

  it('rejects worker counts above the expert count and unknown sizes', async () => {
    await expect(runScalingBenchmark({ sizes: ['small'], workers: [3], experts: 2, ...TINY })).rejects.toBeInstanceOf(OptionError);
    await expect(runScalingBenchmark({ sizes: ['huge' as 'small'], ...TINY })).rejects.toThrow(/unknown size "huge"/);
  });
});

describe('runScalingBenchmark', () => {
  it('returns well-formed rows for the small size at 1 and 2 workers', async () => {
    const lines: string[] = [];
    const report: ScalingReport = await runScalingBenchmark({ sizes: ['small'], workers: [2], ...TINY, onProgress: (l) => lines.push(l) });
    expect(report.experts).toBe(8);
    expect(report.cores).toBeGreaterThanOrEqual(1);
    expect(report.machine).toMatch(/^[a-z0-9-]+$/);
    expect(report.backend).not.toBe('');
    // 1 worker is measured even when not asked for: speedups are relative to it.
    expect(report.rows.map((r) => [r.size, r.workers])).toEqual([
      ['small', 1],
      ['small', 2],
    ]);
    for (const r of report.rows) {
      for (const key of ['samplesPerSecond', 'speedup', 'efficiency', 'syncMicros', 'atomicsRoundTripMicros', 'idleRoundTripMicros', 'stepMicros', 'inProcessSamplesPerSecond'] as const) {
        expect(positiveFinite(r[key]), `${key} = ${r[key]}`).toBe(true);
      }
      expect(r.steps).toBeGreaterThanOrEqual(TINY.minSteps);
      expect(r.batch).toBe(32);
      expect(r.samplesPerSecond).toBeCloseTo((r.batch * 1e6) / r.stepMicros, 6);
    }
    const [one, two] = report.rows;
    expect(one!.speedup).toBe(1);
    expect(one!.efficiency).toBe(1);
    expect(two!.speedup).toBeCloseTo(two!.samplesPerSecond / one!.samplesPerSecond, 9);
    expect(two!.efficiency).toBeCloseTo(two!.speedup / Math.min(2, report.cores), 9);
    expect(lines.some((l) => l.startsWith('small 2 workers:'))).toBe(true);

    const md = formatScalingMarkdown(report);
    expect(md).toContain(`# Scaling benchmark: ${report.machine}`);
    // A busy machine marks its rows, it does not fail the test.
    expect(md).toMatch(/^\| small( \(busy\))? \| 2 \| /m);
    for (const r of report.rows) {
      expect(r.suspect).toBe(r.efficiency > 1.1);
      expect(r.busy).toBe(r.otherLoad > 0.25 * report.cores);
    }
    expect(report.loadAverage.otherEnd).toBeCloseTo(Math.max(0, report.loadAverage.end - report.loadAverage.ownThreads), 9);

    // An efficiency of 603% on a busy machine: flagged, not hidden.
    const busy: ScalingReport = {
      ...report,
      loadAverage: { ...report.loadAverage, otherStart: 3, busy: true },
      rows: report.rows.map((r, i) => (i === 1 ? { ...r, efficiency: 6.03, suspect: true, busy: true } : r)),
    };
    const flagged = formatScalingMarkdown(busy);
    expect(flagged).toMatch(/^\| small \(busy\) \| 2 \| [\d,.]+ \| [\d.]+ \| 603% ⚠ suspect \|/m);
    expect(flagged).toContain("- **Warning:** the machine was busy: other processes' load 3.00 at the start");
  });
});

describe('moe bench scaling', () => {
  it('prints one JSON object with the required keys as the last line, and writes <out>/<machine>.json and .md', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moe-bench-test-'));
    try {
      const out = await benchCli(['scaling', '--json', '--sizes', 'small', '--workers', '1,2', '--quick', '--time', '20', '--machine', 'test-box', '--out', dir]);
      const last = out.trimEnd().split('\n').at(-1)!;
      const j = JSON.parse(last) as Record<string, unknown>;
      expect(j).toMatchObject({ machine: 'test-box', experts: 8 });
      expect(typeof j.cores).toBe('number');
      expect(typeof j.backend).toBe('string');
      const rows = j.rows as Record<string, unknown>[];
      expect(rows).toHaveLength(2);
      for (const r of rows) {
        expect(Object.keys(r)).toEqual(expect.arrayContaining(['size', 'workers', 'samplesPerSecond', 'speedup', 'efficiency', 'syncMicros', 'atomicsRoundTripMicros']));
      }
      expect(j.command).toBe(`moe bench scaling --json --sizes small --workers 1,2 --out ${dir} --machine test-box --quick --time 20`);

      const saved = JSON.parse(await readFile(join(dir, 'test-box.json'), 'utf8')) as { machine: string; rows: unknown[] };
      expect(saved.machine).toBe('test-box');
      expect(saved.rows).toHaveLength(2);
      expect(await readFile(join(dir, 'test-box.md'), 'utf8')).toContain('# Scaling benchmark: test-box');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad option values with an OptionError naming the option', async () => {
    await expect(benchCli(['scaling', '--sizes', 'small,huge', '--quick'])).rejects.toMatchObject({ code: 'INVALID_OPTION', option: '--sizes' });
    await expect(benchCli(['scaling', '--workers', '1,x', '--quick'])).rejects.toMatchObject({ option: '--workers' });
    await expect(benchCli(['scaling', '--machine', '../etc', '--quick'])).rejects.toMatchObject({ option: '--machine' });
    // A choice commander checks: its error names the flag, and main exits 2 on it as on an OptionError.
    await expect(benchCli(['scaling', '--backend', 'gpu', '--quick'])).rejects.toMatchObject({ code: 'commander.invalidArgument', message: expect.stringContaining('--backend') });
    await expect(benchCli(['scaling', '--experts', '0'])).rejects.toMatchObject({ code: 'commander.invalidArgument', message: expect.stringContaining('--experts') });
    // `bench csv` left with 0.3.0.
    await expect(benchCli(['csv', '--rows', '10'])).rejects.toMatchObject({ code: 'commander.unknownCommand' });
  });
});
