import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  detectPytorch,
  formatPeersMarkdown,
  peerProblem,
  runPeerBenchmark,
  tfjsBatches,
  tfjsMixtureFor,
  useTfjsBackend,
  type PeerReport,
  type TfjsExpertLayout,
} from '../src/bench/peers.js';
import type { SizeSpec } from '../src/bench/scaling.js';
import { OptionError } from '../src/errors.js';
import { kernelSetFromEnv } from '../src/kernels/index.js';
import { trainingData } from '../src/train/data.js';
import { TrainingSession } from '../src/train/session.js';
import { benchCli, positiveFinite } from './helpers/bench-cli.js';

// Functional checks only: the numbers depend on the machine and its load, never asserted.
const TINY = { steps: 3, warmupSteps: 1 };

afterEach(() => {
  vi.restoreAllMocks();
});

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * The tfjs peer and this library, from the same initial parameters on the same batches:
 * the first step's loss and every gradient, then the loss after one Adam update, must
 * agree (float32 sums in different orders: a relative 1e-4).
 */
async function checkLikeForLike(spec: SizeSpec, layout: TfjsExpertLayout): Promise<void> {
  const p = await peerProblem(spec, { seed: 3 });
  const m = p.mixture;
  try {
    await useTfjsBackend(tf, 'wasm');
    const before = tf.memory().numTensors;
    const peer = tfjsMixtureFor(tf, p, layout);
    const batches = tfjsBatches(tf, p);
    try {
      const session = await TrainingSession.start(m.state, m.provider, trainingData(m.state, p.data), { maxBatch: p.batch, workers: 0, kernels: kernelSetFromEnv() });
      const { views, step } = session;

      const first = peer.gradients(batches[0]!.x, batches[0]!.d);
      const libFirst = await step.run(p.batches[0]!, m.optimizer.lr, 1);
      expect(Number.isFinite(libFirst)).toBe(true);
      expect(Math.abs(first.loss - libFirst) / Math.abs(libFirst)).toBeLessThan(1e-4);
      // After the library's step its gradient regions hold the step-1 gradients.
      expect(maxAbs(views.gateGrads)).toBeGreaterThan(0);
      expect(maxAbsDiff(first.gate, views.gateGrads)).toBeLessThan(1e-4 * maxAbs(views.gateGrads));
      expect(maxAbsDiff(first.experts, views.expertGrads)).toBeLessThan(1e-4 * maxAbs(views.expertGrads));

      // One update each, then the next batch's loss: Adam's step agrees too.
      expect(Math.abs(peer.step(batches[0]!.x, batches[0]!.d) - libFirst) / Math.abs(libFirst)).toBeLessThan(1e-4);
      const second = peer.step(batches[1]!.x, batches[1]!.d);
      const libSecond = await step.run(p.batches[1]!, m.optimizer.lr, 2);
      expect(second).not.toBe(first.loss);
      expect(Math.abs(second - libSecond) / Math.abs(libSecond)).toBeLessThan(1e-4);
    } finally {
      peer.dispose();
      for (const b of batches) {
        b.x.dispose();
        b.d.dispose();
      }
    }
    expect(tf.memory().numTensors).toBe(before);
  } finally {
    await m.close();
  }
}

describe('the tfjs peer computes what this library computes', () => {
  it('small (linear experts), both expert layouts', async () => {
    for (const layout of ['stacked', 'per-expert'] as const) await checkLikeForLike({ inputs: 2, outputs: 4, expert: 'linear', batch: 32, note: 'small' }, layout);
  });

  it('MLP experts with tanh and relu hidden layers, both expert layouts', async () => {
    for (const expert of ['mlp:6', 'mlp:5,3:relu']) {
      for (const layout of ['stacked', 'per-expert'] as const) await checkLikeForLike({ inputs: 3, outputs: 2, expert, batch: 16, note: expert }, layout);
    }
  });
});

describe('runPeerBenchmark', () => {
  it('measures every system side by side on the small size, with no tfjs tensor leaked', async () => {
    const lines: string[] = [];
    const report: PeerReport = await runPeerBenchmark({ sizes: ['small'], ...TINY, onProgress: (l) => lines.push(l) });
    expect(report.experts).toBe(8);
    expect(report.workers).toBe(2);
    expect(report.backend).not.toBe('');
    expect(report.machine).toMatch(/^[a-z0-9-]+$/);
    expect(report.tfjsVersion).toBe(tf.version_core);
    expect(report.sizes.map((s) => s.size)).toEqual(['small']);
    expect(report.rows.map((r) => r.system)).toEqual(['in-process', 'workers', 'tfjs-wasm', 'tfjs-cpu']);
    for (const r of report.rows) {
      expect(r.size).toBe('small');
      expect(r.batch).toBe(32);
      expect(r.steps).toBe(TINY.steps);
      for (const key of ['stepMicros', 'samplesPerSecond', 'vsTfjsWasm', 'vsTfjsCpu'] as const) expect(positiveFinite(r[key]), `${r.system} ${key} = ${r[key]}`).toBe(true);
      expect(r.samplesPerSecond).toBeCloseTo((r.batch * 1e6) / r.stepMicros, 6);
      expect(r.compute).not.toBe('');
      expect(r.threads).toBe(r.system === 'workers' ? 2 : 1);
    }
    const wasm = report.rows.find((r) => r.system === 'tfjs-wasm')!;
    const inProcess = report.rows.find((r) => r.system === 'in-process')!;
    expect(wasm.vsTfjsWasm).toBe(1);
    expect(inProcess.vsTfjsWasm).toBeCloseTo(inProcess.samplesPerSecond / wasm.samplesPerSecond, 9);
    for (const r of report.rows) expect(r.tensorsLeaked).toBe(r.system.startsWith('tfjs') ? 0 : undefined);
    // PyTorch is reported either way, never skipped silently.
    const torch = await detectPytorch();
    expect(report.pytorch).toEqual(torch);
    expect(report.skipped.some((s) => s.system === 'pytorch' && (torch.available || s.reason.startsWith('not available')))).toBe(true);
    // One progress line per system; where OpenBLAS did not load, one fall-back notice too.
    const notices = lines.filter((l) => l.startsWith('local-experts:'));
    expect(lines.length - notices.length).toBe(4);
    expect(notices.length).toBe(report.backend === 'blas' ? 0 : 1);

    const md = formatPeersMarkdown(report);
    expect(md).toContain('plain tfjs, wasm backend');
    expect(md).toContain(`PyTorch: ${torch.available ? torch.detail : 'not available'}`);
  });

  it('skips tfjs cpu where a step is too slow for it, saying why', async () => {
    const report = await runPeerBenchmark({ sizes: ['medium'], steps: 1, warmupSteps: 0, tfjsBackends: ['cpu'] });
    expect(report.rows.map((r) => r.system)).toEqual(['in-process', 'workers']);
    expect(report.rows[0]!.vsTfjsWasm).toBeUndefined();
    expect(report.skipped).toContainEqual({ size: 'medium', system: 'tfjs-cpu', reason: expect.stringMatching(/GFLOP/) as unknown as string });
    expect(formatPeersMarkdown(report)).toMatch(/Not run: tfjs-cpu: tfjs cpu runs about/);
  });

  it('rejects unknown sizes and bad step counts', async () => {
    await expect(runPeerBenchmark({ sizes: ['large' as 'small'] })).rejects.toBeInstanceOf(OptionError);
    await expect(runPeerBenchmark({ sizes: ['small'], steps: 0 })).rejects.toThrow(/steps/);
    await expect(runPeerBenchmark({ sizes: ['small'], workers: 9 })).rejects.toBeInstanceOf(OptionError);
  });
});

describe('moe bench peers', () => {
  it('prints one JSON line and writes peers-<machine>.json and .md', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moe-peers-'));
    try {
      const out = await benchCli(['peers', '--sizes', 'small', '--steps', '2', '--json', '--out', dir, '--machine', 'test-box']);
      const last = out.trim().split('\n').pop()!;
      const report = JSON.parse(last) as PeerReport;
      expect(report.machine).toBe('test-box');
      expect(report.command).toBe(`moe bench peers --json --sizes small --steps 2 --out ${dir} --machine test-box`);
      expect(report.rows.length).toBeGreaterThanOrEqual(3);
      const saved = JSON.parse(await readFile(join(dir, 'peers-test-box.json'), 'utf8')) as PeerReport;
      expect(saved.rows).toEqual(report.rows);
      const md = await readFile(join(dir, 'peers-test-box.md'), 'utf8');
      expect(md).toMatch(/^# Peers/);
      expect(md).toContain('| local-experts, in-process |');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects an unknown size and --steps with --time', async () => {
    await expect(benchCli(['peers', '--sizes', 'huge'])).rejects.toThrow(/unknown size "huge"/);
    await expect(benchCli(['peers', '--steps', '2', '--time', '10'])).rejects.toThrow(/cannot be used with/);
  });
});
