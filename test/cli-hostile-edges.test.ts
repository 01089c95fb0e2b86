/**
 * Hostile round three, the CLI's rough edges: feature columns matched by name, column
 * names with commas, read-only outputs refused without --force (as root and as another
 * user), long class lists abbreviated, and --no-split with dense routing noticed.
 * Needs `npm run build`.
 */
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot } from './helpers/files.js';
import { FIXTURES, MAIN, finish, lastJson, moe, requireBuild, type RunResult } from './fixtures/cli/harness.js';

const REGRESSION = join(FIXTURES, 'regression.csv');
const TRAIN_REG = ['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--experts', '3', '--epochs', '3'];

let dir: string;
let model: string;
beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-edges-'));
  model = join(dir, 'reg.moe');
  const r = await moe([...TRAIN_REG, '--save', model]);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const warnings = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('moe: warning:'));

describe('--features in another order than the model\'s: matched by name', () => {
  it('predict: the same predictions as without --features, and one notice line', async () => {
    const plain = await moe(['predict', '--model', model, '--data', REGRESSION]);
    expect(plain.code, plain.stderr).toBe(0);
    const swapped = await moe(['predict', '--model', model, '--data', REGRESSION, '--features', 'x2,x1']);
    expect(swapped.code, swapped.stderr).toBe(0);
    expect(swapped.stdout).toBe(plain.stdout);
    expect(warnings(swapped.stderr)).toEqual(['moe: warning: --features x2,x1: the model takes its inputs in the order x1,x2; the columns are matched by name']);
  });

  it('eval: the same loss as without --features', async () => {
    const plain = await moe(['eval', '--model', model, '--data', REGRESSION, '--json']);
    const swapped = await moe(['eval', '--model', model, '--data', REGRESSION, '--features', 'x2,x1', '--json']);
    expect(swapped.code, swapped.stderr).toBe(0);
    expect(lastJson(swapped.stdout).loss).toBe(lastJson(plain.stdout).loss);
  });

  it('the model\'s order: no notice', async () => {
    const r = await moe(['predict', '--model', model, '--data', REGRESSION, '--features', 'x1,x2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('other names stand in positionally (the data names a column differently)', async () => {
    const renamed = join(dir, 'renamed.csv');
    const text = await readFile(REGRESSION, 'utf8');
    await writeFile(renamed, text.replace(/^x1,x2,y/, 'p,q,y'));
    const plain = await moe(['predict', '--model', model, '--data', REGRESSION]);
    const r = await moe(['predict', '--model', model, '--data', renamed, '--features', 'p,q']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(plain.stdout);
  });

  it('train --resume: another order is refused (a resumed run keeps the model\'s columns)', async () => {
    const r = await moe(['train', '--data', REGRESSION, '--resume', model, '--features', 'x2,x1', '--epochs', '4', '--save', join(dir, 'resumed.moe')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("moe: error: --features: x2,x1 conflicts with the resumed model's features x1,x2; a resumed run keeps the model's configuration (leave the flag out)");
  });

  it('a model feature name at another position (among other names) is refused, exit 2', async () => {
    const data = join(dir, 'mixed.csv');
    const text = await readFile(REGRESSION, 'utf8');
    await writeFile(data, text.replace(/^x1,x2,y/, 'x1,z,y'));
    const r = await moe(['predict', '--model', model, '--data', data, '--features', 'z,x1']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      "moe: error: --features: \"x1\" is the model's input 1 (of x1,x2), given as input 2: give the model's feature names in any order (matched by name), or other names in the model's order (matched by position)",
    ]);
  });
});

describe('column names with a comma', () => {
  it('are selected in double quotes, as in the CSV header', async () => {
    const data = join(dir, 'comma.csv');
    const text = await readFile(REGRESSION, 'utf8');
    await writeFile(data, text.replace(/^x1,x2,y/, '"size, m",x2,"y,target"'));
    const save = join(dir, 'comma.moe');
    const r = await moe(['train', '--data', data, '--target', '"y,target"', '--features', '"size, m" , x2', '--task', 'regression', '--experts', '2', '--epochs', '1', '--save', save, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const i = await moe(['inspect', save, '--json']);
    expect(lastJson(i.stdout)).toMatchObject({ featureNames: ['size, m', 'x2'], targetNames: ['y,target'] });
    // Named back to the model in its own order, quoted the same way: no notice.
    const p = await moe(['predict', '--model', save, '--data', data, '--features', '"size, m",x2']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toBe('');
    expect(p.stdout.split('\n')[0]).toBe('"y,target",gate_0,gate_1,expert');
    // In another order: matched by name, and the notice quotes the name.
    const q = await moe(['predict', '--model', save, '--data', data, '--features', 'x2,"size, m"']);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout).toBe(p.stdout);
    expect(warnings(q.stderr)).toEqual(['moe: warning: --features x2,"size, m": the model takes its inputs in the order "size, m",x2; the columns are matched by name']);
  });

  it('an unclosed quote is a usage error naming the flag', async () => {
    const r = await moe(['train', '--data', REGRESSION, '--target', 'y', '--features', '"x1,x2', '--task', 'regression']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^moe: error: option '--features <cols>' argument '"x1,x2' is invalid\. expected comma-separated column names, a name with a comma in double quotes/);
  });
});

/** Run the CLI as another user (root only: spawn's uid/gid). */
function moeAs(uid: number, args: readonly string[], cwd: string): Promise<RunResult> {
  return finish(spawn(process.execPath, [MAIN, ...args], { cwd, uid, gid: uid, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } }));
}

describe('a read-only output file is refused unless --force', () => {
  const outputs: [string, (out: string) => string[], string][] = [
    ['train --save', (out) => [...TRAIN_REG, '--save', out], '--save'],
    ['train --plot', (out) => [...TRAIN_REG, '--plot', out], '--plot'],
    ['predict --out', (out) => ['predict', '--model', model, '--data', REGRESSION, '--out', out], '--out'],
    ['export --out', (out) => ['export', '--model', model, '--format', 'onnx', '--out', out], '--out'],
  ];
  it.each(outputs)('%s: exit 2 and the file untouched; with --force replaced (mode kept)', async (name, args, flag) => {
    // An extension the command takes (--plot writes .svg or .png by it).
    const out = join(dir, `ro-${name.replace(/\W+/g, '-')}${flag === '--plot' ? '.svg' : ''}`);
    await writeFile(out, 'keep me');
    await chmod(out, 0o444);
    const r = await moe(args(out));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([`moe: error: ${flag}: will not replace ${out}: it is read-only (mode 0444); give --force to replace it`]);
    expect(await readFile(out, 'utf8')).toBe('keep me');
    const f = await moe([...args(out), '--force']);
    expect(f.code, f.stderr).toBe(0);
    expect(await readFile(out, 'utf8')).not.toBe('keep me');
    expect((await stat(out)).mode & 0o777).toBe(0o444);
  });

  it('bench --out: a read-only report file is refused before measuring', async () => {
    const reports = join(dir, 'reports');
    await mkdir(reports);
    await writeFile(join(reports, 'kernels-box.md'), 'keep me');
    await chmod(join(reports, 'kernels-box.md'), 0o444);
    const r = await moe(['bench', 'kernels', '--machine', 'box', '--out', reports]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--out: will not replace');
    expect(r.stderr).toContain('kernels-box.md: it is read-only (mode 0444); give --force');
  });

  it.skipIf(!isRoot)('as another user: a file that user may not write is refused; --force replaces it', async () => {
    const d = join(dir, 'shared');
    await mkdir(d);
    await chmod(d, 0o777);
    await chmod(dir, 0o755);
    // Owned by root, mode 0644: the other user may not write it, though the directory lets it replace it.
    const theirs = join(d, 'p.csv');
    await writeFile(theirs, 'root\'s');
    await chmod(theirs, 0o644);
    const data = join(d, 'data.csv');
    await writeFile(data, await readFile(REGRESSION));
    const m = join(d, 'm.moe');
    await writeFile(m, await readFile(model));
    await chmod(m, 0o644);
    const nobody = 65534;
    const r = await moeAs(nobody, ['predict', '--model', m, '--data', data, '--out', theirs], d);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^moe: error: --out: will not replace .*p\.csv: it is read-only for this user \(mode 0644, owner uid 0: permission denied \(EACCES\)\); give --force to replace it\n$/);
    expect(await readFile(theirs, 'utf8')).toBe('root\'s');
    // Its own read-only file (mode 0444) likewise.
    const own = join(d, 'own.csv');
    await writeFile(own, 'mine');
    await chown(own, nobody, nobody);
    await chmod(own, 0o444);
    const o = await moeAs(nobody, ['predict', '--model', m, '--data', data, '--out', own], d);
    expect(o.code).toBe(2);
    expect(o.stderr).toContain('it is read-only (mode 0444); give --force');
    const f = await moeAs(nobody, ['predict', '--model', m, '--data', data, '--out', theirs, '--force'], d);
    expect(f.code, f.stderr).toBe(0);
    expect((await readFile(theirs, 'utf8')).split('\n')[0]).toBe('y,gate_0,gate_1,gate_2,expert');
  });
});

describe('long class lists are abbreviated in summary lines', () => {
  it('30 classes: the first 20, then "… (30 in all)"; --json keeps them all', async () => {
    const data = join(dir, 'many.csv');
    const rows = Array.from({ length: 120 }, (_, i) => `${(i % 30) / 10 + (i % 7) / 100},${(i % 11) / 10},class${String(i % 30).padStart(2, '0')}`);
    await writeFile(data, ['a,b,label', ...rows].join('\n') + '\n');
    const save = join(dir, 'many.moe');
    const r = await moe(['train', '--data', data, '--target', 'label', '--task', 'classification', '--experts', '2', '--epochs', '1', '--save', save]);
    expect(r.code, r.stderr).toBe(0);
    const first20 = Array.from({ length: 20 }, (_, i) => `class${String(i).padStart(2, '0')}`).join(', ');
    const rowsLine = r.stdout.split('\n').find((l) => l.startsWith('  rows'))!;
    expect(rowsLine).toContain(`30 classes (${first20}, … (30 in all))`);
    expect(rowsLine).not.toContain('class29');
    const i = await moe(['inspect', save]);
    expect(i.code, i.stderr).toBe(0);
    const task = i.stdout.split('\n').find((l) => l.startsWith('  task'))!;
    expect(task).toContain(`30 classes (${first20}, … (30 in all))`);
    const j = await moe(['inspect', save, '--json']);
    expect((lastJson(j.stdout).classNames as string[]).length).toBe(30);
  });

  it('20 classes or fewer are listed whole', async () => {
    const i = await moe(['inspect', model]);
    expect(i.stdout).toContain('2 inputs (x1, x2) -> 1 targets (y)');
  });
});

describe('--no-split with dense routing', () => {
  it('trains, with one notice line that it has no effect', async () => {
    const r = await moe([...TRAIN_REG, '--workers', '2', '--no-split']);
    expect(r.code, r.stderr).toBe(0);
    expect(warnings(r.stderr)).toEqual(['moe: warning: --no-split has no effect with dense routing: every expert computes every row, on its own worker']);
  });

  it('with sparse routing: no notice', async () => {
    const r = await moe([...TRAIN_REG, '--workers', '2', '--no-split', '--routing', 'topk:2']);
    expect(r.code, r.stderr).toBe(0);
    expect(warnings(r.stderr)).toEqual([]);
  });
});
