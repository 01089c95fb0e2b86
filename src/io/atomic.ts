/**
 * Writing output files safely: atomically (a crash leaves the old file or the new one,
 * never half of one), through symbolic links to their targets, never over anything that
 * is not a regular file (a device, a FIFO, a socket, a directory), keeping an existing
 * file's mode and owner, and checked up front so that a long run does not fail at its end.
 */
import type { Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { access, constants, lstat, open, readlink, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { OptionError, quoteValue } from '../errors.js';

/** Options of {@link writeFileAtomic} and the checks. */
export interface WriteOptions {
  /**
   * The option or argument that named the path (e.g. `--save`), for the errors: a path
   * that cannot be written is an {@link OptionError} naming it. Default `path`.
   */
  option?: string;
}

/** Where a write to a path lands. */
export interface OutputTarget {
  /** The file that is replaced or created: the path itself, or the end of its chain of symbolic links. */
  target: string;
  /** The target's lstat where it exists (always a regular file); undefined where it is created. */
  existing?: Stats;
}

/** Most symbolic links followed from one path (Linux's own limit is 40). */
const MAX_LINKS = 40;

function kindOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function osReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${e.code})`;
    case 'EROFS':
      return 'read-only file system (EROFS)';
    case 'ENOTDIR':
      return 'a component of the path is not a directory (ENOTDIR)';
    case 'ENOSPC':
      return 'no space left on the device (ENOSPC)';
    case 'EDQUOT':
      return 'disk quota exceeded (EDQUOT)';
    default:
      return e.code ?? e.message;
  }
}

/** Errors the user can fix by choosing another path: an OptionError naming the option. */
const PATH_ERRORS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'ENOENT', 'EISDIR', 'ELOOP', 'ENAMETOOLONG']);

/**
 * An OS error while writing `path`, as an error naming `path` (not the temporary file):
 * an OptionError naming the option where another path would do, else an Error that keeps
 * the errno `code` (a full disk, an I/O error).
 */
function writeError(option: string, path: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string' || err instanceof OptionError) return err as Error;
  if (PATH_ERRORS.has(code)) return new OptionError(option, `cannot write ${path}: ${osReason(err)}`);
  return Object.assign(new Error(`${option}: cannot write ${path}: ${osReason(err)}`, { cause: err }), { code });
}

/**
 * Resolve where a write to `path` lands, without writing: follow symbolic links to the
 * end of their chain (a dangling one names the file to create), and refuse anything but
 * a regular file or nothing: a directory (or a link to one), a device, a FIFO, a socket,
 * a link loop, or a missing directory. Throws {@link OptionError} naming `opts.option`.
 */
export async function resolveOutputPath(path: string, opts: WriteOptions = {}): Promise<OutputTarget> {
  const option = opts.option ?? 'path';
  if (typeof path !== 'string' || path.trim() === '') throw new OptionError(option, `needs a file name, got ${typeof path === 'string' ? quoteValue(path) : String(path)}`);
  let p = resolve(path);
  const seen = new Set<string>();
  for (;;) {
    let st: Stats;
    try {
      st = await lstat(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw writeError(option, path, err);
      // Absent: created in its directory, which must exist.
      const dir = dirname(p);
      const d = await stat(dir).catch(() => undefined);
      if (!d) throw new OptionError(option, `cannot write ${path}: directory ${dir} does not exist`);
      if (!d.isDirectory()) throw new OptionError(option, `cannot write ${path}: ${dir} is not a directory`);
      return { target: p };
    }
    if (st.isSymbolicLink()) {
      if (seen.has(p) || seen.size >= MAX_LINKS) throw new OptionError(option, `cannot write ${path}: symbolic link loop (at ${p})`);
      seen.add(p);
      p = resolve(dirname(p), await readlink(p));
      continue;
    }
    if (st.isFile()) return { target: p, existing: st };
    const what = seen.size > 0 ? `it is a symbolic link to ${kindOf(st)} (${p})` : `it is ${kindOf(st)}`;
    throw new OptionError(option, `cannot write ${path}: ${what}; only a regular file is written or replaced`);
  }
}

/**
 * Why an existing regular file `target` (lstat `st`) is read-only for this process, or
 * undefined where it is not: no write permission bit at all (which root ignores, so it is
 * checked from the mode), or write access refused to this user (access(2)). Replacing it
 * atomically would succeed anyway (a rename needs only the directory), so a caller that
 * respects read-only files asks this first.
 */
export async function readOnlyReason(target: string, st: Stats): Promise<string | undefined> {
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  if ((st.mode & 0o222) === 0) return `it is read-only (mode ${mode})`;
  try {
    await access(target, constants.W_OK);
    return undefined;
  } catch (err) {
    return `it is read-only for this user (mode ${mode}, owner uid ${st.uid}: ${osReason(err)})`;
  }
}

/** Create and remove a file in `dir`: the only test of writability that root, ACLs and read-only mounts all answer truly. */
async function probeDirectory(dir: string, path: string, option: string): Promise<void> {
  const probe = join(dir, `.moe-probe.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fh;
  try {
    fh = await open(probe, 'wx');
  } catch (err) {
    throw new OptionError(option, `cannot write ${path}: directory ${dir} is not writable: ${osReason(err)}`);
  }
  await fh.close();
  await unlink(probe);
}

/**
 * Check before any work that `path` can be written by {@link writeFileAtomic}: it is a
 * regular file or absent (through symbolic links, see {@link resolveOutputPath}), and a
 * file can be created in its target's directory (checked by creating and removing one).
 * Throws {@link OptionError} naming `opts.option`; writes nothing that stays.
 */
export async function checkWritable(path: string, opts: WriteOptions = {}): Promise<OutputTarget> {
  const t = await resolveOutputPath(path, opts);
  await probeDirectory(dirname(t.target), path, opts.option ?? 'path');
  return t;
}

/**
 * Check before any work that the files `names` can be written into directory `dir`,
 * which is created later where it does not exist yet: its nearest existing ancestor must
 * be a writable directory, and where `dir` exists each file must be writable as for
 * {@link checkWritable}. Creates nothing that stays. Resolves to the files' targets
 * where `dir` exists (none where it is created later).
 */
export async function checkWritableDir(dir: string, names: readonly string[], opts: WriteOptions = {}): Promise<OutputTarget[]> {
  const option = opts.option ?? 'path';
  if (typeof dir !== 'string' || dir.trim() === '') throw new OptionError(option, `needs a directory name, got ${typeof dir === 'string' ? quoteValue(dir) : String(dir)}`);
  let d = resolve(dir);
  for (;;) {
    let st: Stats | undefined;
    try {
      st = await stat(d);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new OptionError(option, `cannot write into ${dir}: ${osReason(err)}`);
    }
    if (st) {
      if (!st.isDirectory()) throw new OptionError(option, `cannot write into ${dir}: ${d} is ${kindOf(st)}, not a directory`);
      break;
    }
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  if (d !== resolve(dir)) {
    await probeDirectory(d, dir, option);
    return [];
  }
  const targets: OutputTarget[] = [];
  for (const name of names) targets.push(await checkWritable(join(dir, name), opts));
  if (names.length === 0) await probeDirectory(d, dir, option);
  return targets;
}

/**
 * Replace `path` with `data` atomically: write a temporary file beside the target, fsync
 * it, rename it over the target, fsync the directory. A crash or kill at any point leaves
 * either the old complete file or the new complete file, never a partial one.
 *
 * A symbolic link is written through: its target (at the end of the chain; created where
 * the link dangles) is replaced in the target's directory, and the link stays. An existing
 * file keeps its mode, and its owner where the process may set it. Anything that is not a
 * regular file or absent (a directory or a link to one, a device, a FIFO, a socket) is
 * refused with an {@link OptionError} naming `opts.option`, and so is a path whose
 * directory cannot be written; nothing is left behind on any failure.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: WriteOptions = {}): Promise<void> {
  const option = opts.option ?? 'path';
  const { target, existing } = await resolveOutputPath(path, opts);
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fh;
  try {
    fh = await open(tmp, 'wx', existing ? existing.mode & 0o777 : 0o666);
  } catch (err) {
    throw writeError(option, path, err);
  }
  try {
    try {
      if (existing) {
        // Owner first: chown clears set-id bits, which the chmod then restores. Only root
        // (or the owner, to a group of theirs) may chown; elsewhere the file becomes ours.
        await fh.chown(existing.uid, existing.gid).catch(() => {});
        await fh.chmod(existing.mode & 0o7777);
      }
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw writeError(option, path, err);
  }
  // The rename is durable only once the directory entry is on disk.
  const d = await open(dir, 'r').catch(() => undefined);
  if (d) {
    await d.sync().catch(() => {});
    await d.close();
  }
}
