/**
 * File-system fixtures for the output-path tests: special files (a character device, a
 * FIFO) and a directory this process cannot write to, made the way the system allows.
 */
import { spawnSync } from 'node:child_process';
import { chmod, mkdir } from 'node:fs/promises';

/** Whether this process runs as root (permission bits do not stop root). */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Run a command; true when it exited 0. */
export function tryRun(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

/** Make a character device like /dev/null at `path` (root only: mknod); false where it cannot. */
export function makeCharDevice(path: string): boolean {
  return tryRun('mknod', ['-m', '666', path, 'c', '1', '3']);
}

/** Make a FIFO at `path` (mkfifo); false where it cannot. */
export function makeFifo(path: string): boolean {
  return tryRun('mkfifo', [path]);
}

/**
 * Make `dir` a directory this process cannot create files in, and return the function
 * that undoes it; undefined where neither way works. Not root: mode 0555. Root ignores
 * the mode, so the immutable attribute (`chattr +i`, ext2/3/4, xfs, btrfs) is used.
 */
export async function makeUnwritableDir(dir: string): Promise<(() => Promise<void>) | undefined> {
  await mkdir(dir, { recursive: true });
  if (!isRoot) {
    await chmod(dir, 0o555);
    return () => chmod(dir, 0o755);
  }
  if (!tryRun('chattr', ['+i', dir])) return undefined;
  return async () => {
    tryRun('chattr', ['-i', dir]);
  };
}

/** Whether a file-creating probe shows that `makeUnwritableDir` works here (checked once). */
export async function unwritableDirWorks(scratch: string): Promise<boolean> {
  const undo = await makeUnwritableDir(scratch);
  if (!undo) return false;
  await undo();
  return true;
}
