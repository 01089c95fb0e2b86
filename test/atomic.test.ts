/**
 * writeFileAtomic and the up-front checks: a write goes through symbolic links to their
 * target (atomically, in the target's directory), never replaces a device, FIFO, socket
 * or directory, keeps an existing file's mode (and owner), and leaves nothing behind when
 * it refuses.
 */
import { lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OptionError } from '../src/errors.js';
import { checkWritable, checkWritableDir, resolveOutputPath, writeFileAtomic } from '../src/io/atomic.js';
import { isRoot, makeCharDevice, makeFifo, makeUnwritableDir, unwritableDirWorks } from './helpers/files.js';
import { rejection } from './helpers/rejection.js';

let dir: string;
let n = 0;
/** A fresh empty directory for one case. */
async function fresh(): Promise<string> {
  const d = join(dir, `case${n++}`);
  await mkdir(d);
  return d;
}

// Capabilities of this system, known at collection time (for skipIf).
const probeDir = mkdtempSync(join(tmpdir(), 'moe-atomic-probe-'));
const canMknod = makeCharDevice(join(probeDir, 'null'));
const canMkfifo = makeFifo(join(probeDir, 'fifo'));
const canLockDir = await unwritableDirWorks(join(probeDir, 'locked'));
rmSync(probeDir, { recursive: true, force: true });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-atomic-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Refused with one line: an OptionError naming the option and the path. */
function expectRefusal(err: Error, option: string, path: string, says: RegExp): void {
  expect(err).toBeInstanceOf(OptionError);
  expect((err as OptionError).option).toBe(option);
  expect(err.message.startsWith(`${option}: cannot write ${path}`), err.message).toBe(true);
  expect(err.message).toMatch(says);
  expect(err.message).not.toContain('\n');
}

describe('writeFileAtomic', () => {
  it('creates a file, replaces it, and leaves no temporary file', async () => {
    const d = await fresh();
    const f = join(d, 'out.txt');
    await writeFileAtomic(f, 'one');
    await writeFileAtomic(f, 'two');
    expect(await readFile(f, 'utf8')).toBe('two');
    expect(await readdir(d)).toEqual(['out.txt']);
  });

  it('writes through a symbolic link: the target is replaced, the link is kept', async () => {
    const d = await fresh();
    const target = join(d, 'real.moe');
    const link = join(d, 'link.moe');
    await writeFile(target, 'old');
    await symlink('real.moe', link);
    await writeFileAtomic(link, 'new', { option: '--save' });
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe('real.moe');
    expect(await readFile(target, 'utf8')).toBe('new');
    expect((await readdir(d)).sort()).toEqual(['link.moe', 'real.moe']);
  });

  it('follows a chain of links across directories and writes in the final target\'s directory', async () => {
    const d = await fresh();
    await mkdir(join(d, 'a'));
    await mkdir(join(d, 'b'));
    await writeFile(join(d, 'b', 'file'), 'old');
    await symlink('../b/file', join(d, 'a', 'second'));
    await symlink(join(d, 'a', 'second'), join(d, 'first'));
    await writeFileAtomic(join(d, 'first'), 'new');
    expect(await readFile(join(d, 'b', 'file'), 'utf8')).toBe('new');
    expect((await lstat(join(d, 'first'))).isSymbolicLink()).toBe(true);
    expect((await lstat(join(d, 'a', 'second'))).isSymbolicLink()).toBe(true);
    expect(await readdir(join(d, 'b'))).toEqual(['file']);
  });

  it('a dangling link: creates its target and keeps the link', async () => {
    const d = await fresh();
    await symlink('made.txt', join(d, 'dangling'));
    await writeFileAtomic(join(d, 'dangling'), 'hello', { option: '--out' });
    expect(await readFile(join(d, 'made.txt'), 'utf8')).toBe('hello');
    expect((await lstat(join(d, 'dangling'))).isSymbolicLink()).toBe(true);
  });

  it('a dangling link into a missing directory, and a link loop, are refused', async () => {
    const d = await fresh();
    await symlink('nowhere/x.txt', join(d, 'lost'));
    expectRefusal(await rejection(writeFileAtomic(join(d, 'lost'), 'x', { option: '--out' })), '--out', join(d, 'lost'), /does not exist/);
    await symlink('loop-b', join(d, 'loop-a'));
    await symlink('loop-a', join(d, 'loop-b'));
    expectRefusal(await rejection(writeFileAtomic(join(d, 'loop-a'), 'x', { option: '--save' })), '--save', join(d, 'loop-a'), /symbolic link loop/);
    expect((await readdir(d)).sort()).toEqual(['loop-a', 'loop-b', 'lost']);
  });

  it('a link to a directory, and a directory, are refused; nothing is written', async () => {
    const d = await fresh();
    await mkdir(join(d, 'sub'));
    await symlink('sub', join(d, 'to-dir'));
    expectRefusal(await rejection(writeFileAtomic(join(d, 'to-dir'), 'x', { option: '--plot' })), '--plot', join(d, 'to-dir'), /symbolic link to a directory/);
    expectRefusal(await rejection(writeFileAtomic(join(d, 'sub'), 'x', { option: '--plot' })), '--plot', join(d, 'sub'), /it is a directory/);
    expect((await readdir(d)).sort()).toEqual(['sub', 'to-dir']);
    expect(await readdir(join(d, 'sub'))).toEqual([]);
  });

  it.skipIf(!canMknod)('a character device is refused and left as it was (mknod, root)', async () => {
    const d = await fresh();
    const dev = join(d, 'null');
    expect(makeCharDevice(dev)).toBe(true);
    expectRefusal(await rejection(writeFileAtomic(dev, 'x', { option: '--save' })), '--save', dev, /it is a character device/);
    expect((await lstat(dev)).isCharacterDevice()).toBe(true);
    // And through a link to it.
    await symlink('null', join(d, 'link'));
    expectRefusal(await rejection(writeFileAtomic(join(d, 'link'), 'x', { option: '--save' })), '--save', join(d, 'link'), /symbolic link to a character device/);
    expect((await readdir(d)).sort()).toEqual(['link', 'null']);
  });

  it.skipIf(!canMkfifo)('a FIFO is refused and left as it was', async () => {
    const d = await fresh();
    const fifo = join(d, 'pipe');
    expect(makeFifo(fifo)).toBe(true);
    expectRefusal(await rejection(writeFileAtomic(fifo, 'x', { option: '--out' })), '--out', fifo, /named pipe/);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(await readdir(d)).toEqual(['pipe']);
  });

  it('keeps an existing file\'s mode (0600, 0640)', async () => {
    const d = await fresh();
    for (const mode of [0o600, 0o640]) {
      const f = join(d, `m${mode.toString(8)}`);
      await writeFile(f, 'old');
      await chmod(f, mode);
      await writeFileAtomic(f, 'new');
      expect((await stat(f)).mode & 0o777).toBe(mode);
      expect(await readFile(f, 'utf8')).toBe('new');
    }
  });

  it.skipIf(!isRoot)('keeps an existing file\'s owner (root can chown)', async () => {
    const d = await fresh();
    const f = join(d, 'owned');
    await writeFile(f, 'old');
    await chown(f, 65534, 65534);
    await writeFileAtomic(f, 'new');
    const st = await stat(f);
    expect([st.uid, st.gid]).toEqual([65534, 65534]);
  });

  it.skipIf(!canLockDir)('a directory that cannot be written: OptionError naming the option and the path, nothing left', async () => {
    const d = await fresh();
    const locked = join(d, 'locked');
    const undo = (await makeUnwritableDir(locked))!;
    try {
      const f = join(locked, 'out.moe');
      const err = await rejection(writeFileAtomic(f, 'x', { option: '--save' }));
      expectRefusal(err, '--save', f, /permission denied/);
      expect(err.message).not.toContain('.tmp');
      expect(await readdir(locked)).toEqual([]);
    } finally {
      await undo();
    }
  });
});

describe('checks before any work', () => {
  it('checkWritable accepts a new or regular file and creates nothing', async () => {
    const d = await fresh();
    await writeFile(join(d, 'old'), 'x');
    expect((await checkWritable(join(d, 'new'), { option: '--out' })).existing).toBeUndefined();
    expect((await checkWritable(join(d, 'old'), { option: '--out' })).existing?.isFile()).toBe(true);
    expect(await readdir(d)).toEqual(['old']);
  });

  it('checkWritable refuses what writeFileAtomic refuses: a missing directory, a file as directory, a link to a directory', async () => {
    const d = await fresh();
    await writeFile(join(d, 'file'), 'x');
    await mkdir(join(d, 'sub'));
    await symlink('sub', join(d, 'to-dir'));
    expectRefusal(await rejection(checkWritable(join(d, 'no', 'x'), { option: '--save' })), '--save', join(d, 'no', 'x'), /does not exist/);
    expectRefusal(await rejection(checkWritable(join(d, 'file', 'x'), { option: '--save' })), '--save', join(d, 'file', 'x'), /not a directory/);
    expectRefusal(await rejection(checkWritable(join(d, 'to-dir'), { option: '--save' })), '--save', join(d, 'to-dir'), /symbolic link to a directory/);
    const resolved = await resolveOutputPath(join(d, 'file'));
    expect(resolved.target).toBe(join(d, 'file'));
  });

  it.skipIf(!canLockDir)('checkWritable tries a file in the directory: an unwritable one is refused (root included)', async () => {
    const d = await fresh();
    const locked = join(d, 'locked');
    const undo = (await makeUnwritableDir(locked))!;
    try {
      expectRefusal(await rejection(checkWritable(join(locked, 'p.svg'), { option: '--plot' })), '--plot', join(locked, 'p.svg'), /not writable: permission denied/);
      expect(await readdir(locked)).toEqual([]);
    } finally {
      await undo();
    }
  });

  it('checkWritableDir: a directory still to be made under a writable one passes and is not made; a file in its place is refused', async () => {
    const d = await fresh();
    await checkWritableDir(join(d, 'results', 'deep'), ['a.json'], { option: '--out' });
    expect(await readdir(d)).toEqual([]);
    await writeFile(join(d, 'plain'), 'x');
    const err = await rejection(checkWritableDir(join(d, 'plain', 'sub'), ['a.json'], { option: '--out' }));
    expect(err).toBeInstanceOf(OptionError);
    expect(err.message.startsWith(`--out: cannot write into ${join(d, 'plain', 'sub')}: `), err.message).toBe(true);
    expect(err.message).toMatch(/not a directory/);
  });

  it.skipIf(!canMkfifo)('checkWritableDir: an output file in an existing directory that is a FIFO is refused', async () => {
    const d = await fresh();
    expect(makeFifo(join(d, 'report.md'))).toBe(true);
    const err = await rejection(checkWritableDir(d, ['report.json', 'report.md'], { option: '--out' }));
    expectRefusal(err, '--out', join(d, 'report.md'), /named pipe/);
    expect(await readdir(d)).toEqual(['report.md']);
  });
});
