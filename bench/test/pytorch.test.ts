/**
 * The PyTorch peer: the shipped script (python/torch_peer.py) and the runner that starts
 * it once per thread configuration (finding the interpreter is the library's, tested in
 * test/find-torch.test.ts).
 * Tests that need torch are skipped, with the reason printed, where no interpreter here
 * imports it. Functional checks only: no timing is asserted.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  bestPytorchRows,
  CPU_PER_WALL_TOLERANCE,
  medianPytorchRows,
  parseTorchPeerOutput,
  PYTORCH_CONFIGS,
  pytorchEnv,
  runPytorchPeer,
  torchPeerScript,
  withinCores,
  configCores,
  type PytorchRow,
} from '../peers/pytorch.js';
import { OptionError } from '../../src/index.js';
import { torchFixture } from '../../test/helpers/torch-fixture.js';

const fx = torchFixture('moe-torch-test-');
const { torchOrSkip } = fx;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

describe('torch_peer.py', () => {
  it('trains the same mixture in both expert forms: loss and gradients match a float64 reference and each other', async (ctx) => {
    const t = torchOrSkip(ctx);
    for (const extra of [['--size', 'small'], ['--size', 'medium', '--batch', '8'], ['--size', 'small', '--hidden', '6,5', '--activation', 'relu']]) {
      const r = await run(t.python, [torchPeerScript(), ...extra, '--self-test']);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim()) as { ok: boolean; lossBmm: number; lossReference: number; gradRelDiff: Record<string, number> };
      expect(out.ok).toBe(true);
      expect(Math.abs(out.lossBmm - out.lossReference)).toBeLessThan(1e-4 * Math.max(1, Math.abs(out.lossReference)));
      expect(Object.keys(out.gradRelDiff).length).toBeGreaterThanOrEqual(4);
    }
  });

  it('rejects bad options with one line and exit status 2', async (ctx) => {
    const t = torchOrSkip(ctx);
    for (const [args, msg] of [
      [['--size', 'small', '--steps', '0'], '--steps must be a positive integer'],
      [['--size', 'small', '--steps', '2', '--time', '1'], 'give --time or --steps, not both'],
      [['--inputs', '3'], 'missing: --outputs, --hidden, --experts, --batch'],
    ] as const) {
      const r = await run(t.python, [torchPeerScript(), ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(msg);
      expect(r.stdout).toBe('');
    }
  });

  it('prints one JSON line with the measured window', async (ctx) => {
    const t = torchOrSkip(ctx);
    const r = await run(t.python, [torchPeerScript(), '--size', 'small', '--steps', '3', '--warmup', '1', '--impl', 'linear', '--torch-threads', '1'], pytorchEnv({ threads: 1, blasThreads: 1 }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const out = parseTorchPeerOutput(r.stdout);
    expect(out).toMatchObject({ torch: t.torch, threads: 1, impl: 'linear', steps: 3, batch: 32 });
    expect(out.samplesPerSecond).toBeCloseTo((3 * 32) / out.wallSeconds, 6);
    expect(out.cpuPerWall).toBeCloseTo(out.cpuSeconds / out.wallSeconds, 6);
    expect(out.env).toEqual({ OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' });
  });

  it('flushes subnormals before import torch with --flush-denormal, and not without', async (ctx) => {
    const t = torchOrSkip(ctx);
    const args = [torchPeerScript(), '--size', 'small', '--steps', '12', '--warmup', '0', '--torch-threads', '1'];
    const as = parseTorchPeerOutput((await run(t.python, args, pytorchEnv({ threads: 1, blasThreads: 1 }))).stdout);
    expect(as).toMatchObject({ flushDenormal: false, flushes: false, mxcsr: null });
    const flushed = parseTorchPeerOutput((await run(t.python, [...args, '--flush-denormal'], pytorchEnv({ threads: 1, blasThreads: 1 }))).stdout);
    expect(flushed.flushDenormal).toBe(true);
    expect(flushed.flushes).toBe(true);
    // MXCSR through glibc where this is x86-64 glibc (set), else the reason.
    if (process.arch === 'x64' && process.platform === 'linux') expect(flushed.mxcsr).toBe('set');
    expect(flushed.stepSeconds).toHaveLength(12);
    expect(flushed.losses).toHaveLength(10);
  });
});

describe('runPytorchPeer', () => {
  it('runs every configuration in its own process and returns well-formed rows', async (ctx) => {
    const t = torchOrSkip(ctx);
    const lines: string[] = [];
    const r = await runPytorchPeer('small', { steps: 2, warmupSteps: 1, onProgress: (m) => lines.push(m) });
    expect(r.skipped).toBeUndefined();
    expect('python' in r && r.python).toBe(t.python);
    expect(r.rows.map((x) => x.config)).toEqual(PYTORCH_CONFIGS.map((c) => c.config));
    expect(lines).toHaveLength(PYTORCH_CONFIGS.length);
    for (const row of r.rows) {
      const c = PYTORCH_CONFIGS.find((x) => x.config === row.config)!;
      expect(row).toMatchObject({ size: 'small', system: 'pytorch', threads: c.threads, blasThreads: c.blasThreads, processes: c.processes, cores: configCores(c), steps: 2, batch: 32, impl: 'bmm', torch: t.torch });
      expect(row.samplesPerSecond).toBeGreaterThan(0);
      expect(row.samplesPerSecond).toBeCloseTo((2 * 32) / row.wallSeconds, 6);
      expect(row.cpuPerWall).toBeCloseTo(row.cpuSeconds / row.wallSeconds, 6);
      expect(row.valid).toBe(withinCores(row.cpuPerWall, row.cores));
      expect(Number.isFinite(row.loss)).toBe(true);
      expect(row.flushDenormal).toBe(false);
    }
  }, 240_000);

  it('trains data-parallel in 2 processes over gloo (DDP) the same steps as one process', async (ctx) => {
    torchOrSkip(ctx);
    const r = await runPytorchPeer('small', { steps: 3, warmupSteps: 1, configs: ['torch1-blas1', 'ddp2-gloo'], flushDenormal: true });
    const [one, ddp] = r.rows;
    expect(ddp).toMatchObject({ config: 'ddp2-gloo', processes: 2, threads: 1, cores: 2, steps: 3, batch: 32, flushDenormal: true, flushes: true });
    expect(ddp!.losses).toHaveLength(4);
    // Each rank its half of every batch, gradients averaged: the batch's loss, step for step.
    for (const [i, v] of ddp!.losses.entries()) expect(Math.abs(v! - one!.losses[i]!)).toBeLessThanOrEqual(1e-5 * Math.abs(one!.losses[i]!));
  }, 120_000);

  it('passes the expert form and the configurations asked for', async (ctx) => {
    torchOrSkip(ctx);
    const r = await runPytorchPeer('small', { steps: 1, warmupSteps: 0, impl: 'linear', configs: ['torch1-blas2'] });
    expect(r.rows).toHaveLength(1);
    expect(r.rows[0]).toMatchObject({ config: 'torch1-blas2', threads: 1, blasThreads: 2, impl: 'linear' });
  });

  it('resolves to a skipped reason, not an error, where no interpreter imports torch', async () => {
    const r = await runPytorchPeer('small', { steps: 1, env: fx.noTorchEnv });
    expect(r.rows).toEqual([]);
    expect(r.skipped).toContain('ImportError: torch blocked by the test');
  });

  it('rejects bad options with an OptionError naming the option', async () => {
    await expect(runPytorchPeer('huge' as 'small')).rejects.toThrow(OptionError);
    await expect(runPytorchPeer('small', { steps: 0 })).rejects.toThrow(/steps/);
    await expect(runPytorchPeer('small', { configs: ['torch3-blas1' as 'torch1-blas1'] })).rejects.toThrow(/configs: unknown configuration torch3-blas1/);
    await expect(runPytorchPeer('small', { timeSeconds: -1 })).rejects.toThrow(/timeSeconds/);
  });
});

describe('classifying rows', () => {
  const row = (config: PytorchRow['config'], samplesPerSecond: number, cpuPerWall: number, size: PytorchRow['size'] = 'medium'): PytorchRow => {
    const c = PYTORCH_CONFIGS.find((x) => x.config === config)!;
    const cores = configCores(c);
    return {
      size, system: 'pytorch', config, threads: c.threads, blasThreads: c.blasThreads, processes: c.processes, cores, samplesPerSecond, cpuPerWall,
      valid: withinCores(cpuPerWall, cores), steps: 10, wallSeconds: 1, cpuSeconds: cpuPerWall, batch: 512, impl: 'bmm', torch: '1.13', python: 'python3', loss: 1, flushDenormal: false, flushes: false, losses: [], stepSeconds: [],
    };
  };

  it('flags a run that used more cores than its configuration (by more than the tolerance) as invalid', () => {
    expect(CPU_PER_WALL_TOLERANCE).toBe(0.2);
    expect(withinCores(1.0, 1)).toBe(true);
    expect(withinCores(1.19, 1)).toBe(true);
    expect(withinCores(1.21, 1)).toBe(false);
    expect(withinCores(1.7, 1)).toBe(false);
    expect(withinCores(1.7, 2)).toBe(true);
    expect(withinCores(2.25, 2)).toBe(false);
    expect(withinCores(Number.NaN, 2)).toBe(false);
    expect(withinCores(Number.POSITIVE_INFINITY, 2)).toBe(false);
    expect(row('torch1-blas1', 1, 1.7).valid).toBe(false);
    expect(row('torch1-blas2', 1, 1.7).valid).toBe(true);
  });

  it('picks the best valid row per core count and never an invalid one', () => {
    const rows = [row('torch1-blas1', 6000, 1.0), row('torch1-blas1', 9000, 1.8), row('torch2-blas1', 8000, 1.6), row('torch1-blas2', 9500, 1.9), row('torch2-blas2', 12000, 2.6)];
    const best = bestPytorchRows(rows);
    expect(best.oneCore?.samplesPerSecond).toBe(6000);
    expect(best.twoCore?.config).toBe('torch1-blas2');
    expect(bestPytorchRows([row('torch2-blas2', 1, 3)])).toEqual({ oneCore: undefined, twoCore: undefined });
    expect(() => bestPytorchRows([row('torch1-blas1', 1, 1), row('torch1-blas1', 1, 1, 'large')])).toThrow(OptionError);
  });

  it('takes medians over rounds of the valid rows of each configuration', () => {
    const rounds = [row('torch1-blas1', 6000, 1.0), row('torch1-blas1', 6400, 1.0), row('torch1-blas1', 9000, 1.5), row('torch1-blas1', 6200, 0.99), row('torch2-blas2', 10000, 2.5)];
    const m = medianPytorchRows(rounds);
    expect(m).toHaveLength(2);
    expect(m[0]).toMatchObject({ config: 'torch1-blas1', samplesPerSecond: 6200, cpuPerWall: 1.0, valid: true, rounds: 4, invalidRounds: 1, steps: 30 });
    expect(m[1]).toMatchObject({ config: 'torch2-blas2', valid: false, rounds: 1, invalidRounds: 1 });
    // The invalid two-core row never counts; the best on at most two cores is then the one-core row.
    expect(bestPytorchRows(m).twoCore?.config).toBe('torch1-blas1');
  });

  it('sets the thread variables of a configuration on top of the base environment', () => {
    expect(pytorchEnv({ threads: 2, blasThreads: 1 }, { PATH: '/bin', OPENBLAS_NUM_THREADS: '8' })).toEqual({ PATH: '/bin', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1', OMP_NUM_THREADS: '2' });
  });
});
