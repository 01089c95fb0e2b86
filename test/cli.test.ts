/**
 * The `moe` CLI's normal paths, run as a subprocess from dist/ (npm run build first):
 * train (vowels, CSV, workers, JSON, summary, plot), eval/predict/inspect on a saved
 * model, resume equal to an uninterrupted run, Ctrl-C and SIGKILL around checkpoints.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadVowels } from '../src/data/vowels.js';
import { Mixture } from '../src/mixture.js';
import { FIXTURES, finish, lastJson, moe, requireBuild, start, waitForStderr } from './fixtures/cli/harness.js';

const CLASSES = join(FIXTURES, 'classes.csv');
const REGRESSION = join(FIXTURES, 'regression.csv');

let dir: string;
beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const num = (v: unknown): number => {
  expect(typeof v).toBe('number');
  return v as number;
};

describe('help', () => {
  it.each([[[]], [['train']], [['eval']], [['predict']], [['inspect']], [['export']]])('moe %j --help shows examples and exit codes', async (cmd) => {
    const r = await moe([...cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('Exit codes:');
    expect(r.stdout).toMatch(/130\s+interrupted/);
  });
});

describe('moe train', () => {
  it('vowels --json: the last stdout line is the report; progress lines go to stderr', async () => {
    const r = await moe(['train', '--dataset', 'vowels', '--epochs', '6', '--log-every', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    const j = lastJson(r.stdout);
    expect(j.epochs).toBe(6);
    expect(j.experts).toBe(4);
    expect(j.workers).toBe(0);
    expect(j.loss).toBe('categorical');
    expect(typeof j.backend).toBe('string');
    expect(num(j.trainAccuracy)).toBeGreaterThan(0.4);
    expect(num(j.testAccuracy)).toBeGreaterThan(0.4);
    expect(num(j.finalLoss)).toBeGreaterThan(0);
    expect(num(j.seconds)).toBeGreaterThan(0);
    const share = j.gateShare as number[];
    expect(share).toHaveLength(4);
    expect(share.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    // The speaker-disjoint split: as many test rows as training rows (half the speakers each).
    expect(j.rows).toEqual({ train: 304, test: 304 });
    // Epoch 1 (the first), then every 2nd, and the last.
    expect(r.stderr.match(/^epoch +\d+\/6 .*samples\/s$/gm)?.map((l) => Number(/epoch +(\d+)/.exec(l)![1]))).toEqual([1, 2, 4, 6]);
  });

  it('the vowel test accuracy equals the library evaluating the saved model on the same split', async () => {
    const save = join(dir, 'vowels.moe');
    const r = await moe(['train', '--dataset', 'vowels', '--epochs', '5', '--seed', '4', '--save', save, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const m = await Mixture.load(save);
    const { test } = await loadVowels({ seed: 4 });
    expect(m.evaluate(test).accuracy).toBe(lastJson(r.stdout).testAccuracy);
  });

  it('with worker threads', async () => {
    const r = await moe(['train', '--dataset', 'vowels', '--epochs', '3', '--workers', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.workers).toBe(2);
    expect(j.epochs).toBe(3);
  });

  it('regression CSV: MSE on training, validation and test rows, readable summary', async () => {
    const r = await moe([
      'train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--experts', '2', '--expert', 'mlp:8',
      '--epochs', '8', '--val-split', '0.25', '--test-data', REGRESSION,
    ]);
    expect(r.code, r.stderr).toBe(0);
    for (const s of ['backend', 'workers 0', 'epochs 8', 'mse', 'train', 'validation', 'test', 'gate weight', 'expert 0', 'expert 1', ' s']) {
      expect(r.stdout).toContain(s);
    }
    const j = lastJson((await moe([
      'train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--experts', '2', '--expert', 'mlp:8',
      '--epochs', '8', '--val-split', '0.25', '--test-data', REGRESSION, '--json',
    ])).stdout);
    expect(j.rows).toEqual({ train: 60, val: 20, test: 80 });
    for (const k of ['trainMse', 'valMse', 'testMse', 'valLoss']) expect(num(j[k])).toBeGreaterThan(0);
    expect(j.trainAccuracy).toBeUndefined();
  });

  it('--plot writes an SVG with learning curves and expert utilisation', async () => {
    const plot = join(dir, 'curves.svg');
    const r = await moe(['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--experts', '3', '--epochs', '6', '--val-split', '0.2', '--plot', plot]);
    expect(r.code, r.stderr).toBe(0);
    const svg = await readFile(plot, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    for (const s of ['Learning curves', 'Expert utilisation', 'validation', 'expert 0', 'expert 2', 'epoch']) expect(svg).toContain(s);
    // One line per loss series, one per accuracy series (the task's units), and one stacked area per expert.
    expect(svg.match(/mark-area role-mark/g)?.length).toBe(3);
    expect(svg.match(/mark-line role-mark/g)?.length).toBe(4);
  });
});

describe('a saved model: eval, predict, inspect', () => {
  let model: string;
  let trained: Record<string, unknown>;
  beforeAll(async () => {
    model = join(dir, 'classes.moe');
    const r = await moe(['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--experts', '3', '--epochs', '25', '--save', model, '--json']);
    expect(r.code, r.stderr).toBe(0);
    trained = lastJson(r.stdout);
  });

  it('eval on the training file reproduces the training accuracy and gate shares', async () => {
    const r = await moe(['eval', '--model', model, '--data', CLASSES, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.accuracy).toBe(trained.trainAccuracy);
    expect(j.n).toBe(90);
    (j.gateShare as number[]).forEach((s, i) => expect(s).toBeCloseTo((trained.gateShare as number[])[i]!, 6));
    const text = await moe(['eval', '--model', model, '--data', CLASSES]);
    expect(text.stdout).toMatch(/accuracy\s+\d+\.\d%/);
  });

  it('predict: label, gate probabilities and winning expert per row; --out equals stdout', async () => {
    const out = join(dir, 'pred.csv');
    const [toFile, toStdout] = await Promise.all([
      moe(['predict', '--model', model, '--data', CLASSES, '--out', out]),
      moe(['predict', '--model', model, '--data', CLASSES]),
    ]);
    expect(toFile.code, toFile.stderr).toBe(0);
    expect(toFile.stdout).toBe('');
    const csv = await readFile(out, 'utf8');
    expect(toStdout.stdout).toBe(csv);
    const [header, ...rows] = csv.trimEnd().split('\n');
    expect(header).toBe('label,prob_low,prob_mid,prob_high,gate_0,gate_1,gate_2,expert');
    expect(rows).toHaveLength(90);
    const truth = (await readFile(CLASSES, 'utf8')).trimEnd().split('\n').slice(1).map((l) => l.split(',')[2]);
    let right = 0;
    rows.forEach((row, r) => {
      const [label, ...cells] = row.split(',');
      // The class probabilities sum to 1 and the label is the most probable class.
      const probs = cells.slice(0, 3).map(Number);
      expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(['low', 'mid', 'high'][probs.indexOf(Math.max(...probs))]).toBe(label);
      const rest = cells.slice(3);
      const gates = rest.slice(0, 3).map(Number);
      const winner = Number(rest[3]);
      expect(['low', 'mid', 'high']).toContain(label);
      expect(gates.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(gates[winner]).toBe(Math.max(...gates));
      if (label === truth[r]) right++;
    });
    expect(right / 90).toBe(trained.trainAccuracy);
  });

  it('predict on a regression model writes one column per target', async () => {
    const reg = join(dir, 'reg.moe');
    expect((await moe(['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--experts', '2', '--epochs', '3', '--save', reg])).code).toBe(0);
    const r = await moe(['predict', '--model', reg, '--data', REGRESSION]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('y,gate_0,gate_1,expert');
    expect(lines).toHaveLength(81);
    expect(Number.isFinite(Number(lines[1]!.split(',')[0]))).toBe(true);
  });

  it('inspect: architecture, parameter counts, training state, utilisation on data', async () => {
    const r = await moe(['inspect', model, '--data', CLASSES, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    // Linear gate 2→3 and three linear experts 2→3: (2+1)·3 parameters each.
    expect(j.parameters).toEqual({ gate: 9, perExpert: 9, total: 36, optimizerState: 72 });
    expect(j.training).toEqual({ epoch: 25, step: 75, seed: 1 });
    expect(j.classNames).toEqual(['low', 'mid', 'high']);
    const u = j.utilisation as { rows: number; gateShare: number[]; winShare: number[] };
    expect(u.rows).toBe(90);
    expect(u.winShare.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    u.gateShare.forEach((s, i) => expect(s).toBeCloseTo((trained.gateShare as number[])[i]!, 6));
    const text = await moe(['inspect', model]);
    expect(text.stdout).toContain('3 experts linear');
    expect(text.stdout).toContain('25 epochs, 75 steps');
  });
});

describe('resume', () => {
  const paramsOf = async (path: string): Promise<unknown> => (JSON.parse(await readFile(path, 'utf8')) as { params: unknown }).params;

  it.each([['without validation', []], ['with --val-split', ['--val-split', '0.25']]])(
    '10 epochs + --resume to 20 equals 20 epochs (%s)',
    async (_name, extra) => {
      const base = ['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--experts', '3', '--seed', '5', '--batch-size', '16', ...extra];
      const whole = join(dir, `whole${extra.length}.moe`), part = join(dir, `part${extra.length}.moe`);
      const [a, b] = await Promise.all([
        moe([...base, '--epochs', '20', '--save', whole, '--json']),
        moe([...base, '--epochs', '10', '--save', part, '--checkpoint-every', '5', '--json']),
      ]);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      expect(lastJson(b.stdout).epochs).toBe(10);
      // Architecture flags may be repeated when they agree with the model.
      const c = await moe([
        'train', '--data', CLASSES, '--resume', part, '--epochs', '20', '--experts', '3', '--batch-size', '16', '--save', part, '--json', ...extra,
      ]);
      expect(c.code, c.stderr).toBe(0);
      const ja = lastJson(a.stdout), jc = lastJson(c.stdout);
      expect(jc.epochs).toBe(20);
      expect(jc.epochsRun).toBe(10);
      expect(jc.resumedAtEpoch).toBe(10);
      expect(Math.abs(num(jc.finalLoss) - num(ja.finalLoss))).toBeLessThan(1e-6);
      if (extra.length > 0) expect(Math.abs(num(jc.valLoss) - num(ja.valLoss))).toBeLessThan(1e-6);
      expect(await paramsOf(part)).toEqual(await paramsOf(whole));
    },
  );

  it('the library API resumes the same way: fit, save, load, fit', async () => {
    const { train } = await loadVowels({ seed: 2 });
    const opts = { task: 'classification' as const, inputs: 2, outputs: 4, experts: 3, seed: 2 };
    const whole = await Mixture.create(opts);
    const rWhole = await whole.fit(train, { epochs: 8, batchSize: 16, validationSplit: 0.2 });
    const first = await Mixture.create(opts);
    await first.fit(train, { epochs: 4, batchSize: 16, validationSplit: 0.2 });
    const path = join(dir, 'api.moe');
    await first.save(path);
    const resumed = await Mixture.load(path);
    expect(resumed.training.epoch).toBe(4);
    const rResumed = await resumed.fit(train, { epochs: 4, batchSize: 16, validationSplit: 0.2 });
    expect(rResumed.history.map((h) => h.epoch)).toEqual([5, 6, 7, 8]);
    expect(rResumed.finalLoss).toBeCloseTo(rWhole.finalLoss, 6);
    expect(Array.from(resumed.params.expertParams)).toEqual(Array.from(whole.params.expertParams));
  });
});

describe('signals', () => {
  const LONG = ['train', '--dataset', 'vowels', '--epochs', '1000000', '--log-every', '1'];

  it.each([[0], [2]])('Ctrl-C (SIGINT) with %i workers: exit 130, loadable checkpoint, resumable', async (workers) => {
    const save = join(dir, `sigint${workers}.moe`);
    const child = start([...LONG, '--workers', String(workers), '--save', save, '--json']);
    const done = finish(child);
    await waitForStderr(child, /^epoch +1\/1000000 /m);
    child.kill('SIGINT');
    const r = await done;
    expect(r.code).toBe(130);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/interrupted by SIGINT at epoch \d+, step \d+; checkpoint written to/);
    const m = await Mixture.load(save);
    expect(m.training.epoch).toBeGreaterThanOrEqual(1);
    expect(m.training.step).toBeGreaterThanOrEqual(m.training.epoch * 10);
    const resumed = await moe(['train', '--dataset', 'vowels', '--resume', save, '--epochs', String(m.training.epoch + 2), '--save', save, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(lastJson(resumed.stdout).epochs).toBe(m.training.epoch + 2);
  });

  it('SIGKILL during and after checkpoint writes never leaves a partial model file', async () => {
    const save = join(dir, 'killed.moe');
    // A bigger model so each checkpoint takes a while to write; one every epoch.
    const args = ['train', '--dataset', 'vowels', '--experts', '6', '--expert', 'mlp:48,48', '--save', save, '--log-every', '1'];
    expect((await moe([...args, '--epochs', '1'])).code).toBe(0);
    const before = await readFile(save, 'utf8');
    // The kills land at several delays after an epoch's line, when its checkpoint is being
    // written; the last waits for the next epoch's line, so that (whatever the machine's
    // load) at least one checkpoint has been written whole before its kill.
    for (const delayMs of [0, 3, 11, 29, 61, -1]) {
      const child = start([...args, '--resume', save, '--epochs', '1000000', '--checkpoint-every', '1']);
      const done = finish(child);
      await waitForStderr(child, delayMs < 0 ? /^epoch +\d+\/1000000 [^]*^epoch +\d+\/1000000 /m : /^epoch +\d+\/1000000 /m);
      await new Promise((r) => setTimeout(r, Math.max(0, delayMs)));
      child.kill('SIGKILL');
      const r = await done;
      expect(r.signal).toBe('SIGKILL');
      const m = await Mixture.load(save); // whole and checksummed, old or new
      expect(m.training.epoch).toBeGreaterThanOrEqual(1);
    }
    expect(await readFile(save, 'utf8')).not.toBe(before);
    // Temporary files of killed writers may remain beside it, never under the model's name.
    const names = await readdir(dir);
    for (const n of names.filter((x) => x.includes('killed.moe') && x !== 'killed.moe')) expect(n).toMatch(/^\.killed\.moe\..*\.tmp$/);
  });

  it('a failing command leaves an existing model file untouched', async () => {
    const save = join(dir, 'keep.moe');
    await writeFile(save, 'previous contents');
    const r = await moe(['train', '--data', join(FIXTURES, 'nope.csv'), '--target', 'label', '--task', 'classification', '--save', save]);
    expect(r.code).toBe(1);
    expect(existsSync(save)).toBe(true);
    expect(await readFile(save, 'utf8')).toBe('previous contents');
  });
});
