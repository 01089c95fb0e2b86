/**
 * Where the CLI writes: through symbolic links to their targets (the links stay), keeping
 * an existing file's mode; and a `--workers` count above the cores is a one-line notice,
 * not an error. (Refused outputs are in cli-bad-input.test.ts.) Needs `npm run build`.
 */
import { availableParallelism } from 'node:os';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, lastJson, moe, requireBuild } from './fixtures/cli/harness.js';

const CLASSES = join(FIXTURES, 'classes.csv');
const TRAIN = ['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--experts', '3', '--epochs', '2'];

let dir: string;
beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-outputs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('outputs through symbolic links', () => {
  it('--save and --plot write the links\' targets (in the targets\' directory); the links stay', async () => {
    const d = join(dir, 'links');
    await mkdir(join(d, 'store'), { recursive: true });
    await writeFile(join(d, 'store', 'model.moe'), 'old model');
    await symlink('store/model.moe', join(d, 'current.moe'));
    // A dangling link: its target is created.
    await symlink('store/plot.svg', join(d, 'plot.svg'));
    const r = await moe([...TRAIN, '--save', 'current.moe', '--plot', 'plot.svg'], d);
    expect(r.code, r.stderr).toBe(0);
    expect((await lstat(join(d, 'current.moe'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(d, 'current.moe'))).toBe('store/model.moe');
    expect((await lstat(join(d, 'plot.svg'))).isSymbolicLink()).toBe(true);
    const model = JSON.parse(await readFile(join(d, 'store', 'model.moe'), 'utf8')) as { format: string };
    expect(model.format).toBe('local-experts-model');
    expect(await readFile(join(d, 'store', 'plot.svg'), 'utf8')).toMatch(/^<svg/);
    expect((await readdir(d)).sort()).toEqual(['current.moe', 'plot.svg', 'store']);
    expect((await readdir(join(d, 'store'))).sort()).toEqual(['model.moe', 'plot.svg']);

    // predict --out through a link as well.
    await writeFile(join(d, 'store', 'p.csv'), 'old');
    await symlink('store/p.csv', join(d, 'predictions.csv'));
    const p = await moe(['predict', '--model', 'current.moe', '--data', CLASSES, '--out', 'predictions.csv'], d);
    expect(p.code, p.stderr).toBe(0);
    expect((await lstat(join(d, 'predictions.csv'))).isSymbolicLink()).toBe(true);
    expect((await readFile(join(d, 'store', 'p.csv'), 'utf8')).split('\n')[0]).toBe('label,prob_low,prob_mid,prob_high,gate_0,gate_1,gate_2,expert');
  });

  it('--save over an existing file keeps its mode (0600)', async () => {
    const d = join(dir, 'mode');
    await mkdir(d);
    const save = join(d, 'private.moe');
    await writeFile(save, 'old');
    await chmod(save, 0o600);
    const r = await moe([...TRAIN, '--save', save, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout).saved).toBe(save);
    expect((await stat(save)).mode & 0o777).toBe(0o600);
    expect((JSON.parse(await readFile(save, 'utf8')) as { format: string }).format).toBe('local-experts-model');
  });
});

describe('--workers above the core count', () => {
  it('runs, with one notice line that threads will share cores', async () => {
    const workers = availableParallelism() + 1;
    const r = await moe(['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--experts', String(workers), '--workers', String(workers), '--epochs', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const notes = r.stderr.split('\n').filter((l) => l.includes('share cores'));
    expect(notes).toEqual([`moe: warning: --workers ${workers} is more than the ${availableParallelism()} cores here: worker threads will share cores`]);
    expect(lastJson(r.stdout).workers).toBe(workers);
  });
});
