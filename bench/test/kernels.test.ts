/**
 * The kernel benchmark (`moe bench kernels`): well-formed rows for every (kernel, set), the
 * markdown table and the CLI's JSON and files. Functional checks only: the numbers depend
 * on the machine and its load, never asserted beyond their form.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatKernelMarkdown, KERNEL_BENCH_SETS, runKernelBenchmark } from '../kernels.js';
import { OptionError } from '../../src/index.js';
import { benchCli, positiveFinite } from './cli.js';

describe('runKernelBenchmark', () => {
  it('times the chosen kernels with every set (in the report\'s kernel order) and formats them', async () => {
    const lines: string[] = [];
    const report = await runKernelBenchmark({ timeMs: 2, minCalls: 2, kernels: ['activate tanh', 'adam', 'logSoftmaxRows', 'copy'], onProgress: (l) => lines.push(l) });
    const expected = [
      ...KERNEL_BENCH_SETS.map((s) => ['activate tanh', s]),
      ...KERNEL_BENCH_SETS.map((s) => ['adam', s]),
      ['copy', 'js'],
      ['copy', 'wasm'],
      ...KERNEL_BENCH_SETS.map((s) => ['logSoftmaxRows', s]),
    ];
    expect(report.rows.map((r) => [r.kernel, r.set])).toEqual(expected);
    for (const r of report.rows) {
      expect(positiveFinite(r.nsPerElement), `${r.kernel} ${r.set}: ${r.nsPerElement}`).toBe(true);
      expect(r.minNsPerElement).toBeGreaterThan(0);
      expect(r.minNsPerElement).toBeLessThanOrEqual(r.nsPerElement);
      expect(r.samples).toBeGreaterThanOrEqual(2);
    }
    expect(report.rows.find((r) => r.kernel === 'adam')!.elements).toBe(8 * 262_912);
    expect(report.rows.find((r) => r.kernel === 'activate tanh')!.elements).toBe(512 * 512);
    expect(report.shapes['logSoftmaxRows']).toBe('512×8');
    // One line per measurement, and a warning where the machine was busy.
    expect(lines.filter((l) => !l.startsWith('warning:'))).toHaveLength(report.rows.length);
    expect(lines.filter((l) => l.startsWith('warning:'))).toHaveLength(report.loadAverage.busy ? 1 : 0);
    const md = formatKernelMarkdown(report);
    const t = '[\\d.]+ \\([\\d.]+\\)';
    expect(md).toMatch(new RegExp(`^\\| adam \\| 8×262,912 \\| ${t} \\| ${t} \\| ${t} \\| [\\d.]+× \\|$`, 'm'));
    expect(md).toMatch(new RegExp(`^\\| copy \\| 262,912 \\| – \\| ${t} \\| ${t} \\| – \\|$`, 'm'));
    // No pass/fail verdicts in a shipped report.
    expect(md).not.toMatch(/[✓✗]|target|not met/);
  });

  it('rejects unknown kernels and sets with an OptionError', async () => {
    await expect(runKernelBenchmark({ timeMs: 1, kernels: ['gelu'] })).rejects.toBeInstanceOf(OptionError);
    await expect(runKernelBenchmark({ timeMs: 1, sets: ['simd' as 'js'] })).rejects.toThrow(/unknown set "simd"/);
  });
});

describe('moe bench kernels', () => {
  it('prints one JSON object as the last line and writes <out>/kernels-<machine>.json and .md', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moe-bench-kernels-'));
    try {
      const out = await benchCli(['kernels', '--json', '--time', '1', '--machine', 'test-box', '--out', dir]);
      const j = JSON.parse(out.trimEnd().split('\n').at(-1)!) as { machine: string; command: string; rows: { kernel: string; set: string; nsPerElement: number }[] };
      expect(j.machine).toBe('test-box');
      expect(j.command).toBe(`moe bench kernels --json --time 1 --out ${dir} --machine test-box`);
      const kernels = new Set(j.rows.map((r) => r.kernel));
      for (const k of ['biasRows', 'activate relu', 'backward sigmoid', 'colSums', 'sgd', 'momentum', 'adam', 'softmaxMinusOnehotRows', 'mixAccumulate', 'gatherRows', 'fill']) expect(kernels).toContain(k);
      for (const r of j.rows) expect(positiveFinite(r.nsPerElement), `${r.kernel} ${r.set}`).toBe(true);
      expect(JSON.parse(await readFile(join(dir, 'kernels-test-box.json'), 'utf8'))).toMatchObject({ machine: 'test-box' });
      expect(await readFile(join(dir, 'kernels-test-box.md'), 'utf8')).toContain('# Kernel benchmark: test-box');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects a bad --time naming the option', async () => {
    await expect(benchCli(['kernels', '--time', 'soon'])).rejects.toMatchObject({ code: 'INVALID_OPTION', option: '--time' });
  });
});
