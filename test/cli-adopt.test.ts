/**
 * What a new user meets on their own data (issue 17): --resume without --save refused,
 * the validation split kept by the model, a continuous target refused as classes, plots
 * by extension (PNG) and of the gate's regions, the library's training controls on the
 * command line, --delimiter and the hint for a semicolon file, the summary's labels.
 * Runs the built CLI (npm run build first).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mixture } from '../src/mixture.js';
import { FIXTURES, lastJson, moe, requireBuild } from './fixtures/cli/harness.js';

const REGRESSION = join(FIXTURES, 'regression.csv');
const CLASSES = join(FIXTURES, 'classes.csv');

let dir: string;
beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-adopt-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const oneLine = (stderr: string): string => {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  return lines[0]!;
};

describe('--resume', () => {
  it('without --save is refused in one line that suggests --save, and nothing trains', async () => {
    const save = join(dir, 'r.moe');
    expect((await moe(['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--epochs', '2', '--save', save])).code).toBe(0);
    const before = await readFile(save, 'utf8');
    const r = await moe(['train', '--data', REGRESSION, '--resume', save, '--epochs', '4']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/--resume: .*--save <file>.*--save .*r\.moe continues in place/);
    expect(await readFile(save, 'utf8')).toBe(before);
  });

  it('keeps the validation split the model was trained with, and refuses another', async () => {
    const save = join(dir, 'split.moe');
    const base = ['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--seed', '3'];
    const a = await moe([...base, '--epochs', '2', '--val-split', '0.25', '--save', save, '--json']);
    expect(a.code, a.stderr).toBe(0);
    const rows = lastJson(a.stdout).rows as { train: number; val: number };
    expect(rows.val).toBeGreaterThan(0);
    expect((await Mixture.load(save)).training.validationSplit).toBe(0.25);
    // No --val-split on resume: the model's own, so the held-out rows stay held out.
    const b = await moe(['train', '--data', REGRESSION, '--resume', save, '--epochs', '3', '--save', save, '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(lastJson(b.stdout).rows).toEqual(rows);
    expect(lastJson(b.stdout).valSplit).toBe(0.25);
    const c = await moe(['train', '--data', REGRESSION, '--resume', save, '--epochs', '4', '--save', save, '--val-split', '0.5']);
    expect(c.code).toBe(2);
    expect(oneLine(c.stderr)).toMatch(/--val-split: 0\.5 conflicts with .*validation split 0\.25/);
  });
});

describe('classification targets', () => {
  it('a continuous target is refused, suggesting --task regression', async () => {
    const r = await moe(['train', '--data', REGRESSION, '--target', 'y', '--task', 'classification', '--epochs', '1']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/--task: .*non-integer numbers .*--task regression/);
  });

  it('many integer classes for the rows get a one-line warning, and train', async () => {
    const csv = join(dir, 'ints.csv');
    await writeFile(csv, 'a,b,y\n' + Array.from({ length: 60 }, (_, i) => `${i},${(i * 7) % 11},${i % 20}`).join('\n') + '\n');
    const r = await moe(['train', '--data', csv, '--target', 'y', '--task', 'classification', '--epochs', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('moe: warning:'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/20 distinct integer classes in 60 rows/);
  });
});

describe('plots', () => {
  it('--plot and --plot-gate write PNG for .png and SVG for .svg', async () => {
    const curves = join(dir, 'curves.png'), gate = join(dir, 'gate.svg');
    const r = await moe(['train', '--dataset', 'vowels', '--epochs', '3', '--val-split', '0.2', '--plot', curves, '--plot-gate', gate]);
    expect(r.code, r.stderr).toBe(0);
    const png = await readFile(curves);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const svg = await readFile(gate, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('gate region');
    expect(svg).toContain('F1');
    expect(r.stdout).toContain('gate plot  ');
  });

  it('the curves are also in the task units, and the loss axis says what it is', async () => {
    const svg = join(dir, 'c.svg');
    const r = await moe(['train', '--dataset', 'vowels', '--epochs', '2', '--plot', svg]);
    expect(r.code, r.stderr).toBe(0);
    const text = await readFile(svg, 'utf8');
    expect(text).toContain('Accuracy');
    expect(text).toContain('cross-entropy');
    expect(text).not.toContain('(standardised)');
    const reg = join(dir, 'r.svg');
    expect((await moe(['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--epochs', '2', '--plot', reg])).code).toBe(0);
    expect(await readFile(reg, 'utf8')).toContain('Mean squared error');
  });

  it('an unknown extension, and --plot-gate on more than two inputs, are refused before training', async () => {
    const r = await moe(['train', '--dataset', 'vowels', '--plot', join(dir, 'curves.pdf')]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/--plot: .*\.svg or \.png, not \.pdf/);
    const three = join(dir, 'three.csv');
    await writeFile(three, 'a,b,c,y\n1,2,3,4\n2,3,4,5\n3,1,2,0\n');
    const g = await moe(['train', '--data', three, '--target', 'y', '--task', 'regression', '--plot-gate', join(dir, 'g.png')]);
    expect(g.code).toBe(2);
    expect(oneLine(g.stderr)).toMatch(/--plot-gate: .*two inputs.*has 3.*moe inspect/);
    expect(existsSync(join(dir, 'g.png'))).toBe(false);
  });
});

describe('training controls', () => {
  it('--stop-at-loss stops at the first epoch at or below it', async () => {
    const r = await moe(['train', '--dataset', 'vowels', '--epochs', '50', '--stop-at-loss', '100', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.epochsRun).toBe(1);
    expect(j.stopReason).toBe('criterion');
  });

  it('--early-stopping-patience stops, and its counters are in the checkpoint', async () => {
    const save = join(dir, 'es.moe');
    const r = await moe(['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--epochs', '300', '--lr', '0.05',
      '--val-split', '0.3', '--early-stopping-patience', '2', '--save', save, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.stopReason).toBe('early-stopping');
    expect(j.epochsRun).toBeLessThan(300);
    const es = (await Mixture.load(save)).training.earlyStopping;
    expect(es?.sinceBest).toBe(2);
    expect(es?.bestEpoch).toBe(j.bestEpoch);
  });

  it('--lr-schedule changes the training; a bad rule is refused', async () => {
    const base = ['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--epochs', '4', '--json'];
    const [plain, step] = await Promise.all([moe(base), moe([...base, '--lr-schedule', 'step:1:0.1'])]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(step.code, step.stderr).toBe(0);
    expect(lastJson(step.stdout).finalLoss).not.toBe(lastJson(plain.stdout).finalLoss);
    const bad = await moe([...base, '--lr-schedule', 'linear']);
    expect(bad.code).toBe(2);
    expect(oneLine(bad.stderr)).toMatch(/--lr-schedule.*step:EVERY:FACTOR/);
  });

  it('--weight-decay is saved with the model, explained in --help, and must agree on resume', async () => {
    const save = join(dir, 'wd.moe');
    const r = await moe(['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--epochs', '1', '--weight-decay', '0.001', '--save', save]);
    expect(r.code, r.stderr).toBe(0);
    expect((await Mixture.load(save)).optimizer.weightDecay).toBe(0.001);
    const c = await moe(['train', '--data', REGRESSION, '--resume', save, '--epochs', '2', '--save', save, '--weight-decay', '0.1']);
    expect(c.code).toBe(2);
    expect(oneLine(c.stderr)).toMatch(/--weight-decay: 0\.1 conflicts/);
    const help = await moe(['train', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toMatch(/ADDED TO THE GRADIENT .*not decoupled decay/);
  });
});

describe('CSV and summary', () => {
  it('a semicolon CSV: the error suggests the delimiter; --delimiter reads it', async () => {
    const csv = join(dir, 'semi.csv');
    await writeFile(csv, 'x1;x2;y\n' + Array.from({ length: 30 }, (_, i) => `${i};${i % 7};${(i * 0.3).toFixed(2)}`).join('\n') + '\n');
    const r = await moe(['train', '--data', csv, '--target', 'y', '--task', 'regression', '--epochs', '1']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/semicolon-separated\? .*--delimiter/);
    const ok = await moe(['train', '--data', csv, '--delimiter', ';', '--target', 'y', '--task', 'regression', '--epochs', '1']);
    expect(ok.code, ok.stderr).toBe(0);
    // One target, two inputs: singular and plural right; the two losses labelled.
    expect(ok.stdout).toContain('2 inputs -> 1 target\n');
    expect(ok.stdout).toMatch(/loss {7}gaussian, standardised targets: last epoch's running mean .*; after training: train /);
  });

  it('classification summary says cross-entropy', async () => {
    const r = await moe(['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--epochs', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/loss {7}cross-entropy: /);
  });
});
