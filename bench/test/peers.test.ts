import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PEER_SYSTEMS, runPeerBenchmark, type PeerReport } from '../peers.js';
import { formatPeersMarkdown } from '../peers-report.js';
import { OptionError } from '../../src/index.js';
import { findTorchPython } from '../../src/internal.js';
import { benchCli, positiveFinite } from './cli.js';

// Functional checks only: the numbers depend on the machine and its load, never asserted.
const TINY = { steps: 3, warmupSteps: 1, rounds: 1 };

let torch: Awaited<ReturnType<typeof findTorchPython>>;
let dir: string;
/** An environment in which no interpreter imports torch: a torch.py that raises, first on PYTHONPATH. */
let noTorchEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  torch = await findTorchPython();
  dir = await mkdtemp(join(tmpdir(), 'moe-peers-test-'));
  await writeFile(join(dir, 'torch.py'), 'raise ImportError("torch blocked by the test")\n');
  noTorchEnv = { ...process.env, PYTHONPATH: dir, MOE_PYTHON: join(dir, 'no-such-python') };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** The keys the JSON of `moe bench peers` promises. */
const SIZE_KEYS = ['size', 'inputs', 'outputs', 'expert', 'activation', 'experts', 'batch', 'gemmShare', 'gemmGflops'];
const ROW_KEYS = ['size', 'system', 'threads', 'blasThreads', 'samplesPerSecond', 'cpuPerWall', 'slowdown'];

describe('runPeerBenchmark', () => {
  it('measures every system on the small size, interleaved, with the breakdown adding up to the step', async () => {
    const lines: string[] = [];
    const report: PeerReport = await runPeerBenchmark({ sizes: ['small'], ...TINY, timeMs: 50, pytorchConfigs: ['torch1-blas1'], onProgress: (l) => lines.push(l) });
    expect(report).toMatchObject({ experts: 8, rounds: 1, steps: 3 });
    expect(report.workers).toBe(Math.min(availableParallelism(), 8));
    expect(report.backend).not.toBe('');
    expect(report.blasThreads).toBe(1);
    const systems = report.rows.map((r) => r.system);
    expect(report).toMatchObject({ data: 'learnable', denormals: 'flush' });
    const expected = ['in-process', 'workers', ...(torch.python ? ['pytorch', 'pytorch'] : [])];
    expect(systems).toEqual(expected);
    for (const r of report.rows) {
      expect(r).toMatchObject({ size: 'small', batch: 32, rounds: 1, steps: 3 });
      for (const key of ['stepMicros', 'samplesPerSecond', 'cpuPerWall'] as const) expect(positiveFinite(r[key]), `${r.system} ${key} = ${r[key]}`).toBe(true);
      expect(r.samplesPerSecond).toBeCloseTo(r.roundSamplesPerSecond[0]!, 6);
      expect(r.valid).toBe(r.cpuPerWall <= r.cores + 0.2);
      expect(r.compute).not.toBe('');
      expect(r.slowdown === null || r.slowdown >= 1).toBe(true);
    }
    expect(report.rows.find((r) => r.system === 'workers')!.threads).toBe(report.workers);
    if (torch.python) {
      expect(report.pytorch.available).toBe(true);
      // Each configuration twice: as is, and flushed before import.
      expect(report.rows.filter((r) => r.system === 'pytorch').map((r) => [r.config, r.flushDenormal, r.threads, r.blasThreads, r.cores])).toEqual([
        ['torch1-blas1', false, 1, 1, 1],
        ['torch1-blas1', true, 1, 1, 1],
      ]);
      // Same start, same batches: the first losses agree with this library's.
      const check = report.sizes[0]!.lossCheck!;
      expect(check.steps).toBe(4); // warm-up 1 + 3 timed steps
      expect(check.library).toHaveLength(4);
      expect(check.maxRelativeDifference).toBeLessThanOrEqual(1e-3);
      expect(check.agree).toBe(true);
      expect(report.sizes[0]!.pytorchBestOneCore!.config).toBe('torch1-blas1');
      // The best on at most two cores includes the one-core rows.
      const valid = report.rows.filter((r) => r.system === 'pytorch' && r.valid);
      if (valid.length) expect(report.sizes[0]!.pytorchBestTwoCore!.samplesPerSecond).toBe(Math.max(...valid.map((r) => r.samplesPerSecond)));
      // Each of this library's ratios beside its ceiling (the gemm replay was measured).
      const inProcess = report.rows.find((r) => r.system === 'in-process')!;
      if (inProcess.vsPytorchOneCore !== undefined) expect(positiveFinite(inProcess.vsPytorchOneCoreCeiling)).toBe(true);
    } else {
      expect(report.skipped).toContainEqual({ size: 'all', system: 'pytorch', reason: expect.stringContaining('no Python imports torch') as unknown as string });
    }

    // Where the time goes: gemmShare, and a breakdown of each trainer that adds up to its step within 5%.
    const s = report.sizes[0]!;
    expect(s).toMatchObject({ size: 'small', inputs: 2, outputs: 4, expert: 'linear', experts: 8, batch: 32 });
    expect(positiveFinite(s.gemmShare)).toBe(true);
    expect(positiveFinite(s.gemmGflops)).toBe(true);
    expect(s.gemmReplay!.calls).toBeGreaterThanOrEqual(8 * 2 + 2); // every expert forward and backward, and the gate's
    expect(s.breakdown.map((b) => b.system)).toEqual(['in-process', 'workers']);
    for (const b of s.breakdown) {
      const parts = b.gemmMicros + b.elementwiseMicros + b.optimiserMicros + b.gateMicros + b.syncMicros + b.otherMicros;
      expect(b.sumMicros).toBeCloseTo(parts, 6);
      expect(Math.abs(parts / b.stepMicros - 1), `${b.system}: ${parts} µs of parts against a ${b.stepMicros} µs step`).toBeLessThanOrEqual(0.05);
      for (const key of ['gemmMicros', 'elementwiseMicros', 'optimiserMicros', 'gateMicros', 'stepMicros'] as const) expect(positiveFinite(b[key]), `${b.system} ${key}`).toBe(true);
      expect(b.otherMicros).toBeGreaterThanOrEqual(0);
    }
    const [inProc, workers] = s.breakdown;
    expect(inProc!.syncMicros).toBe(0);
    expect(inProc!.apportioned).toBe(false);
    expect(Object.keys(inProc!.kernelMicros!)).toEqual(expect.arrayContaining(['adam', 'biasRows', 'sqErrRows', 'weightedDiffRows', 'colSums']));
    expect(workers!.apportioned).toBe(true);
    expect(workers!.syncMicros).toBeGreaterThan(0);

    const md = formatPeersMarkdown(report);
    expect(md).toMatch(/^\| local-experts, in-process( \(busy\))? \|/m);
    expect(md).toMatch(/gemmShare \d\.\d\d: one in-process step's \d+ sgemm calls/);
    expect(md).toMatch(/^\| in-process \| [\d.,]+ \| /m);
    expect(md).toContain(torch.python ? `PyTorch: torch ${torch.python ? torch.torch : ''}` : 'PyTorch: not available');
    if (torch.python) expect(md).toMatch(/Same start: the first 4 losses agree/);
  }, 240_000);

  it('says PyTorch is not available, without failing, where no interpreter imports torch', async () => {
    const report = await runPeerBenchmark({ sizes: ['small'], ...TINY, breakdown: false, pythonEnv: noTorchEnv });
    expect(report.rows.map((r) => r.system)).toEqual(['in-process', 'workers']);
    expect(report.pytorch.available).toBe(false);
    expect(report.skipped).toContainEqual({ size: 'all', system: 'pytorch', reason: expect.stringContaining('torch blocked by the test') as unknown as string });
    expect(report.sizes[0]).toMatchObject({ gemmShare: null, gemmGflops: null, breakdown: [] });
    expect(formatPeersMarkdown(report)).toMatch(/PyTorch: not available \(no Python imports torch/);
  });

  it('trains on hard data (independent random targets) for at least 50 steps and reports each row\'s slowdown', async () => {
    await expect(runPeerBenchmark({ sizes: ['small'], data: 'hard', steps: 49, pytorch: false })).rejects.toThrow(/steps: must be at least 50 with data hard/);
    const report = await runPeerBenchmark({ sizes: ['small'], data: 'hard', steps: 50, warmupSteps: 0, rounds: 1, breakdown: false, pytorch: false, denormals: 'ieee' });
    expect(report).toMatchObject({ data: 'hard', denormals: 'ieee' });
    for (const r of report.rows) {
      expect(r.steps).toBe(50);
      expect(r.slowdown).toBeGreaterThanOrEqual(1);
    }
    expect(formatPeersMarkdown(report)).toContain('- Data: hard (independent random targets');
  });

  it('rejects unknown sizes, bad step and round counts', async () => {
    await expect(runPeerBenchmark({ sizes: ['huge' as 'small'] })).rejects.toBeInstanceOf(OptionError);
    await expect(runPeerBenchmark({ sizes: ['small'], steps: 0 })).rejects.toThrow(/steps/);
    await expect(runPeerBenchmark({ sizes: ['small'], rounds: 0 })).rejects.toThrow(/rounds/);
    await expect(runPeerBenchmark({ sizes: ['small'], workers: 9 })).rejects.toBeInstanceOf(OptionError);
    await expect(runPeerBenchmark({ sizes: ['small'], pytorchConfigs: ['torch3-blas1' as 'torch1-blas1'] })).rejects.toThrow(/pytorchConfigs: unknown configuration/);
  });
});

describe('moe bench peers', () => {
  it('ends with one JSON object of sizes and rows in the promised shape, and writes peers-<machine>.json and .md', async () => {
    const out = await benchCli(['peers', '--sizes', 'small', '--steps', '2', '--rounds', '1', '--pytorch-configs', 'torch1-blas1', '--json', '--out', dir, '--machine', 'test-box']);
    const last = out.trim().split('\n').pop()!;
    const report = JSON.parse(last) as { machine: string; command: string; data: string; denormals: string; sizes: Record<string, unknown>[]; rows: Record<string, unknown>[] };
    expect(report.machine).toBe('test-box');
    expect(report).toMatchObject({ data: 'learnable', denormals: 'flush' });
    expect(report.command).toBe(`moe bench peers --json --sizes small --rounds 1 --steps 2 --pytorch-configs torch1-blas1 --out ${dir} --machine test-box`);
    expect(Array.isArray(report.sizes)).toBe(true);
    for (const s of report.sizes) {
      expect(Object.keys(s)).toEqual(expect.arrayContaining(SIZE_KEYS));
      expect(s).toMatchObject({ size: 'small', inputs: 2, outputs: 4, expert: 'linear', activation: 'tanh', experts: 8, batch: 32 });
      expect(typeof s.gemmShare).toBe('number');
      expect(typeof s.gemmGflops).toBe('number');
    }
    expect(report.rows.length).toBeGreaterThanOrEqual(2);
    for (const r of report.rows) {
      expect(Object.keys(r)).toEqual(expect.arrayContaining(ROW_KEYS));
      expect(PEER_SYSTEMS).toContain(r.system);
      for (const k of ['threads', 'blasThreads', 'samplesPerSecond', 'cpuPerWall']) expect(positiveFinite(r[k]), `${String(r.system)} ${k}`).toBe(true);
      if (r.system === 'pytorch') expect(typeof r.flushDenormal).toBe('boolean');
      else expect(r.flushDenormal).toBeUndefined();
    }
    expect(report.rows.some((r) => r.system === 'pytorch')).toBe(torch.python !== undefined);
    const saved = JSON.parse(await readFile(join(dir, 'peers-test-box.json'), 'utf8')) as PeerReport;
    expect(saved.rows).toEqual(report.rows);
    const md = await readFile(join(dir, 'peers-test-box.md'), 'utf8');
    expect(md).toMatch(/^# Peers/);
    expect(md).toContain('- Command: `moe bench peers --json --sizes small');
  });

  it('rejects an unknown size, --steps with --time, and an unknown PyTorch configuration', async () => {
    await expect(benchCli(['peers', '--sizes', 'huge'])).rejects.toThrow(/unknown size "huge"/);
    await expect(benchCli(['peers', '--steps', '2', '--time', '10'])).rejects.toThrow(/cannot be used with/);
    await expect(benchCli(['peers', '--pytorch-configs', 'torch9-blas9'])).rejects.toMatchObject({ option: '--pytorch-configs' });
    await expect(benchCli(['peers', '--pytorch-denormals', 'ftz'])).rejects.toMatchObject({ option: '--pytorch-denormals' });
    await expect(benchCli(['peers', '--data', 'easy'])).rejects.toMatchObject({ code: 'commander.invalidArgument', message: expect.stringContaining('--data') });
    await expect(benchCli(['peers', '--denormals', 'ftz'])).rejects.toMatchObject({ code: 'commander.invalidArgument', message: expect.stringContaining('--denormals') });
  });
});
