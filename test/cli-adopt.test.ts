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

describe('workers', () => {
  it('--workers auto says what it chose; 2 workers on the vowels are called a demonstration', async () => {
    const [auto, two] = await Promise.all([
      moe(['train', '--dataset', 'vowels', '--epochs', '2', '--workers', 'auto', '--json']),
      moe(['train', '--dataset', 'vowels', '--epochs', '2', '--workers', '2', '--json']),
    ]);
    expect(auto.code, auto.stderr).toBe(0);
    expect(lastJson(auto.stdout).workers).toBe(0);
    expect(lastJson(auto.stdout).workersNote).toMatch(/^auto: in-process/);
    expect(two.code, two.stderr).toBe(0);
    expect(lastJson(two.stdout).workers).toBe(2);
    expect(lastJson(two.stdout).workersNote).toMatch(/a demonstration: .*in-process \(--workers auto\) is faster here/);
  });
});

describe('CSV and summary', () => {
  it('the progress lines carry the elapsed time and an ETA', async () => {
    const r = await moe(['train', '--dataset', 'vowels', '--epochs', '3', '--log-every', '1']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('epoch'));
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l).toMatch(/^epoch \d\/3 {2}\d+:\d\d \(eta \d+:\d\d\) {2}loss .* samples\/s$/);
    expect(lines[2]).toContain('(eta 0:00)');
  });

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

describe('inspect, reproduce, bench', () => {
  it('inspect takes --model as well as the argument; columns stay aligned past expert 10; --data gives each expert\'s region', async () => {
    const save = join(dir, 'e12.moe');
    expect((await moe(['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--experts', '12', '--epochs', '2', '--save', save])).code).toBe(0);
    const r = await moe(['inspect', '--model', save, '--data', REGRESSION]);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^ {4}expert \d+ /.test(l));
    expect(rows).toHaveLength(12);
    expect(new Set(rows.map((l) => l.indexOf('gate weight'))).size).toBe(1);
    const regions = r.stdout.split('\n').filter((l) => /^ +region: /.test(l));
    expect(regions).toHaveLength(12);
    expect(regions.some((l) => /x1 -?[\d.]+ \[-?[\d.]+, -?[\d.]+\], x2 /.test(l))).toBe(true);
    const j = await moe(['inspect', save, '--data', REGRESSION, '--json']);
    const u = lastJson(j.stdout).utilisation as { regions: { rows: number; mean: number[]; min: number[]; max: number[] }[] };
    expect(u.regions.reduce((a, g) => a + g.rows, 0)).toBe(lastJson(j.stdout).utilisation && (u as unknown as { rows: number }).rows);
    for (const g of u.regions.filter((x) => x.rows > 0)) for (let k = 0; k < 2; k++) expect(g.min[k]! <= g.mean[k]! && g.mean[k]! <= g.max[k]!).toBe(true);
    const none = await moe(['inspect']);
    expect(none.code).toBe(2);
    expect(oneLine(none.stderr)).toMatch(/--model/);
  });

  it('reproduce refuses to overwrite its files without --force', async () => {
    const out = join(dir, 'results');
    const args = ['reproduce', 'jacobs1991', '--runs', '1', '--epochs', '1', '--jobs', '1', '--out', out, '--json'];
    expect((await moe(args)).code).toBe(0);
    const md = await readFile(join(out, 'jacobs1991.md'), 'utf8');
    const again = await moe(args);
    expect(again.code).toBe(2);
    expect(oneLine(again.stderr)).toMatch(/--out: .*jacobs1991\.\w+ and 5 more of its files already exist: give --force/);
    expect(await readFile(join(out, 'jacobs1991.md'), 'utf8')).toBe(md);
    const forced = await moe([...args, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
  });

  it('bench help: no checkpoint on Ctrl-C, and peers --workers states its default once', async () => {
    const h = await moe(['bench', 'peers', '--help']);
    expect(h.stdout).toMatch(/130\s+interrupted by Ctrl-C \(143 for SIGTERM\)\n/);
    expect(h.stdout).not.toContain('--save');
    expect(h.stdout.match(/default/g)?.length).toBeGreaterThan(0);
    expect(h.stdout.replace(/\s+/g, ' ')).toMatch(/--workers <n> worker threads of this library's parallel system \(default: min\(cores, 8\): \d+ here\)/);
    const t = await moe(['train', '--help']);
    expect(t.stdout).toContain('when --save was given');
  });
});
