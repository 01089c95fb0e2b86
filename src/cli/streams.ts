/**
 * stdout and stderr that fail without taking the run down. A full disk (`> /dev/full`),
 * an I/O error or a closed stdout (`>&-`) is recorded, the stream is not written again,
 * the command carries on (a training run still saves its model) and `moe` then exits
 * {@link EX_IOERR} (74) with one line on stderr, where stderr still works. A reader that
 * stops early (`moe predict … | head`, EPIPE) is not an error.
 */
import { fstatSync, readFileSync, statSync } from 'node:fs';

/** Exit code when stdout or stderr could not be written (EX_IOERR of sysexits.h). */
export const EX_IOERR = 74;

type StreamName = 'stdout' | 'stderr';

/** stdout or stderr failed: the text written to it is lost. */
export class OutputStreamError extends Error {
  /** Which stream failed. */
  readonly stream: StreamName;
  /** The errno code (`ENOSPC`, `EIO`, …), or `EBADF` for a stream that was closed. */
  readonly code: string;
  constructor(stream: StreamName, code: string, reason: string) {
    super(`cannot write to ${stream}: ${reason}`);
    this.name = 'OutputStreamError';
    this.stream = stream;
    this.code = code;
  }
}

interface Guard {
  failure?: OutputStreamError;
  /** The stream was closed when the process started (stdout only, see {@link closedAtStart}). */
  closed: boolean;
}

const guards = new Map<StreamName, Guard>();
let reported = false;

function reasonOf(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOSPC':
      return 'no space left on the device (ENOSPC)';
    case 'EDQUOT':
      return 'disk quota exceeded (EDQUOT)';
    case 'EIO':
      return 'input/output error (EIO)';
    case 'EBADF':
      return 'it is not open for writing (EBADF)';
    case 'EPIPE':
      return 'the reader has closed the pipe (EPIPE)';
    default:
      return err.code ?? err.message;
  }
}

/**
 * Whether file descriptor `fd` was closed when the process started. Node replaces a
 * closed descriptor 0–2 by /dev/null opened read-write; a shell's `>/dev/null` opens it
 * write-only. Linux only (it reads /proc/self/fdinfo); elsewhere false. Node's own
 * `stdio: 'ignore'` and Python's `subprocess.DEVNULL` also open /dev/null read-write,
 * so they read as closed too.
 */
export function closedAtStart(fd: number): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const st = fstatSync(fd);
    if (!st.isCharacterDevice() || st.rdev !== statSync('/dev/null').rdev) return false;
    const flags = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    return flags !== null && (parseInt(flags[1]!, 8) & 3) === 2; // O_ACCMODE === O_RDWR
  } catch {
    return false;
  }
}

function fail(name: StreamName, err: unknown): OutputStreamError {
  const g = guards.get(name)!;
  if (!g.failure) {
    const e = err as NodeJS.ErrnoException;
    g.failure = err instanceof OutputStreamError ? err : new OutputStreamError(name, e.code ?? 'EIO', reasonOf(e));
  }
  return g.failure;
}

type WriteCallback = (err?: Error | null) => void;

/**
 * Guard `process.stdout` and `process.stderr` (once per process): every write goes
 * through a wrapper that records the stream's first failure and drops all later writes
 * (their callbacks are called with the failure), and an `error` event no longer crashes
 * the process. EPIPE on stdout ends the process with exit 0 at once (the reader has all
 * it wanted); EPIPE on stderr only stops the diagnostics.
 */
export function guardStdio(): void {
  for (const name of ['stdout', 'stderr'] as const) {
    if (guards.has(name)) continue;
    const stream = process[name];
    const g: Guard = { closed: name === 'stdout' && closedAtStart(1) };
    guards.set(name, g);
    const original = stream.write.bind(stream) as (chunk: unknown, encoding?: BufferEncoding, cb?: WriteCallback) => boolean;
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' && name === 'stdout') process.exit(0);
      fail(name, err);
    });
    const guarded = (chunk: unknown, encoding?: BufferEncoding | WriteCallback, cb?: WriteCallback): boolean => {
      const callback = typeof encoding === 'function' ? encoding : cb;
      const enc = typeof encoding === 'function' ? undefined : encoding;
      const empty = (typeof chunk === 'string' || chunk instanceof Uint8Array) && chunk.length === 0;
      if (g.closed && !empty && !g.failure) {
        g.failure = new OutputStreamError(name, 'EBADF', 'it is closed (>&-), the output is lost (to discard it, redirect it: >/dev/null)');
      }
      if (g.failure) {
        if (callback) process.nextTick(callback, g.failure);
        return true;
      }
      // Nothing to hand over (a flush): no write(2), which /dev/full would fail even for 0 bytes.
      if (empty && stream.writableLength === 0) {
        if (callback) process.nextTick(callback, null);
        return true;
      }
      try {
        return original(chunk, enc, (err?: Error | null) => {
          if (err && name === 'stdout' && (err as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0);
          callback?.(err ? fail(name, err) : null);
        });
      } catch (err) {
        const f = fail(name, err);
        if (callback) process.nextTick(callback, f);
        return true;
      }
    };
    stream.write = guarded as typeof stream.write;
  }
}

/** The first failure of stdout or of stderr (stdout first), if either failed and it was not a reader going away. */
export function streamFailure(): OutputStreamError | undefined {
  for (const name of ['stdout', 'stderr'] as const) {
    const f = guards.get(name)?.failure;
    if (f && f.code !== 'EPIPE') return f;
  }
  return undefined;
}

/** Mark a failure as already reported (main printed its line). */
export function markReported(): void {
  reported = true;
}

/**
 * The exit code after a command returned `code`: a command that succeeded while stdout
 * or stderr failed exits {@link EX_IOERR}, with one line on stderr where stderr works
 * (printed once). Any other code is kept.
 */
export function settleExitCode(code: number): number {
  const f = streamFailure();
  if (f === undefined || (code !== 0 && code !== EX_IOERR)) return code;
  if (!reported) {
    reported = true;
    if (guards.get('stderr')?.failure === undefined) process.stderr.write(`moe: error: ${f.message}\n`);
  }
  return EX_IOERR;
}

/**
 * Call `done` once everything written to stdout and stderr so far is handed to the OS
 * and any failure on the way is recorded (so that {@link settleExitCode} sees it).
 */
export function flushStdio(done: () => void): void {
  process.stdout.write('', () => process.stderr.write('', () => setImmediate(done)));
}

/**
 * Write to stdout and wait until it is handed to the OS (so process.exit loses nothing).
 * Rejects with {@link OutputStreamError} where stdout has failed or is closed.
 */
export function writeStdout(text: string): Promise<void> {
  return new Promise((res, rej) =>
    process.stdout.write(text, (err) => {
      if (!err) return res();
      rej(err instanceof OutputStreamError ? err : new OutputStreamError('stdout', (err as NodeJS.ErrnoException).code ?? 'EIO', reasonOf(err as NodeJS.ErrnoException)));
    }),
  );
}
