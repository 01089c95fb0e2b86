import { getEnvironmentData, setEnvironmentData } from 'node:worker_threads';
import { basename } from 'node:path';
import { BackendError, OptionError } from '../errors.js';
import { BlasLoadError, loadBlas } from './blas.js';
import { BACKENDS, type BackendName, type BackendRequest, type ComputeProvider, type ProviderOptions } from './provider.js';
import { loadTfjs } from './tfjs.js';

/** Check a user's backend name at the boundary. */
export function parseBackend(value: unknown, option = 'backend'): BackendRequest {
  if (value === undefined || value === 'auto') return 'auto';
  if (typeof value === 'string' && (BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  throw new OptionError(option, `unknown backend ${JSON.stringify(value)} (expected auto, ${BACKENDS.join(', ')})`);
}

/** Load exactly one provider by name; throws BackendError when it cannot load. */
export async function loadExactProvider(name: BackendName, opts: ProviderOptions = {}): Promise<ComputeProvider> {
  try {
    return name === 'blas' ? loadBlas(opts.blasLibrary) : await loadTfjs(name);
  } catch (err) {
    throw new BackendError(`backend ${name} did not load: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------
// The fall-back notice: one line, once per process.

/** Longest fall-back notice, so that `moe: warning: ` and it fit in about 120 columns. */
export const MAX_NOTICE_CHARS = 106;

/**
 * One flag for the whole process, worker threads included: a SharedArrayBuffer in the
 * worker environment data, which every worker started after this module loaded on the
 * main thread (or on its parent worker) shares. A worker whose parent never loaded this
 * module makes its own (shared with its own workers).
 */
const NOTICE_KEY = 'local-experts:provider-fallback-notice';
const noticeFlag: Int32Array | undefined = (() => {
  if (typeof SharedArrayBuffer !== 'function') return undefined;
  let sab = getEnvironmentData(NOTICE_KEY);
  if (!(sab instanceof SharedArrayBuffer)) {
    sab = new SharedArrayBuffer(4);
    setEnvironmentData(NOTICE_KEY, sab);
  }
  return new Int32Array(sab as SharedArrayBuffer);
})();
let noticeShownHere = false;

/** True the first time it is called in this process (across worker threads). */
function firstNoticeInProcess(): boolean {
  if (noticeFlag) return Atomics.compareExchange(noticeFlag, 0, 0, 1) === 0;
  const first = !noticeShownHere;
  noticeShownHere = true;
  return first;
}

/** The last fall-back in this thread: its notice and every library and backend tried (for `--verbose`). */
export interface ProviderFallback {
  /** The one-line notice (without the `local-experts: ` prefix). */
  notice: string;
  /** One line per thing tried that failed: `blas: libopenblas.so.0: <loader message>`. */
  details: string[];
}
let lastFallback: ProviderFallback | undefined;

/** The last provider fall-back in this thread, or undefined where none happened. */
export function lastProviderFallback(): ProviderFallback | undefined {
  return lastFallback;
}

/** How to get OpenBLAS on this platform. */
function installHint(): string {
  if (process.platform === 'darwin') return 'brew install openblas';
  if (process.platform === 'win32') return 'put libopenblas.dll on PATH';
  return 'apt-get install libopenblas0';
}

interface Failure {
  name: BackendName;
  error: Error;
}

/** What failed, in a few words (`LIB` stands for a library path cut to fit), and a reason that may be cut too. */
function describe(f: Failure): { head: string; lib?: string; reason?: string; blas: boolean; explicit: boolean } {
  const cause = (f.error.cause ?? f.error) as Error;
  if (f.name === 'blas' && cause instanceof BlasLoadError) {
    if (cause.explicit) {
      const a = cause.attempts[0]!;
      return a.missing
        ? { head: 'blas: library LIB not found', lib: a.library, blas: true, explicit: true }
        : { head: 'blas: library LIB did not load', lib: a.library, reason: a.reason, blas: true, explicit: true };
    }
    const broken = cause.attempts.find((a) => !a.missing);
    return broken
      ? { head: 'OpenBLAS did not load', reason: `${basename(broken.library)}: ${broken.reason}`, blas: true, explicit: false }
      : { head: 'OpenBLAS not found', blas: true, explicit: false };
  }
  const reason = cause.message.split('\n')[0]!;
  if (f.name === 'blas') return { head: 'OpenBLAS did not load', reason, blas: true, explicit: false };
  return { head: `backend ${f.name} did not load`, reason, blas: false, explicit: false };
}

/** `s` cut to at most `n` characters with an ellipsis. */
function cut(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, Math.max(0, n - 1))}…`;
}

/**
 * The one-line notice of a fall-back: what did not load, what is used instead and how to
 * get the fast path, in at most {@link MAX_NOTICE_CHARS} characters (a library path is
 * cut to fit, and the reason is cut or left out).
 */
export function fallbackNotice(failures: readonly Failure[], used: BackendName): string {
  const d = describe(failures[0]!);
  const slower = d.blas && (used === 'wasm' || used === 'cpu') ? ', several times slower on large experts' : '';
  const hint = d.blas && !d.explicit ? `: ${installHint()}` : '';
  let tail = `; using ${used}${slower}${hint}`;
  let head = d.head;
  if (d.lib !== undefined) {
    // The library keeps at least 24 characters; the "slower" remark goes first.
    if (head.length - 3 + d.lib.length + tail.length > MAX_NOTICE_CHARS) tail = `; using ${used}${hint}`;
    head = head.replace('LIB', cut(d.lib, Math.max(24, MAX_NOTICE_CHARS - (head.length - 3) - tail.length)));
  }
  const room = MAX_NOTICE_CHARS - head.length - tail.length - 3; // " (" and ")"
  const reason = d.reason !== undefined && room >= 8 ? ` (${cut(d.reason, room)})` : '';
  return `${head}${reason}${tail}`;
}

function detailsOf(failures: readonly Failure[]): string[] {
  return failures.flatMap((f) => {
    const cause = f.error.cause;
    if (cause instanceof BlasLoadError) return cause.attempts.map((a) => `${f.name}: ${a.library}: ${a.detail}`);
    return [`${f.name}: ${f.error.message.split('\n')[0]}`];
  });
}

/**
 * The backend MOE_REQUIRE_BACKEND names, undefined where it is unset or empty; any other
 * value is an OptionError (one line), never ignored.
 */
export function requiredBackend(): BackendName | undefined {
  const value = process.env.MOE_REQUIRE_BACKEND;
  if (value === undefined || value === '') return undefined;
  if ((BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  throw new OptionError('MOE_REQUIRE_BACKEND', `unknown backend ${JSON.stringify(value.slice(0, 40))} (expected ${BACKENDS.join(', ')}, or unset)`);
}

/**
 * Choose the provider for a run: the requested one, or for `auto` the first of
 * blas → tensorflow → wasm → cpu that loads. Where the first choice fails, one notice of
 * one line says what did not load, what is used instead and how to get the fast path
 * (tfjs-node, an optional peer, missing under `auto` is not news). `onWarning` gets it
 * every time; without one it is printed with console.warn once per process, worker
 * threads included. {@link lastProviderFallback} has the full list of what was tried.
 * Setting MOE_REQUIRE_BACKEND=<name> turns a fall-back away from that name into an error
 * (CI uses it so that a missing OpenBLAS fails the suite instead of quietly using wasm),
 * and makes `auto` mean that name; an unknown name is an OptionError.
 */
export async function loadProvider(requested: BackendRequest = 'auto', opts: ProviderOptions = {}): Promise<ComputeProvider> {
  let request = parseBackend(requested);
  const required = requiredBackend();
  // `auto` under a required backend is that backend: auto would otherwise take the first
  // that loads (blas), and MOE_REQUIRE_BACKEND=tensorflow would quietly run on OpenBLAS.
  if (request === 'auto' && required !== undefined) request = required;
  const start = request === 'auto' ? 0 : BACKENDS.indexOf(request);
  const failures: Failure[] = [];
  for (let i = start; i < BACKENDS.length; i++) {
    const name = BACKENDS[i]!;
    let provider: ComputeProvider;
    try {
      provider = await loadExactProvider(name, opts);
    } catch (err) {
      if (required === name) throw err;
      if (!(request === 'auto' && name === 'tensorflow')) failures.push({ name, error: err as Error });
      continue;
    }
    if (failures.length > 0) {
      const notice = fallbackNotice(failures, provider.name);
      lastFallback = { notice, details: detailsOf(failures) };
      const first = firstNoticeInProcess();
      if (opts.onWarning) opts.onWarning(`local-experts: ${notice}`);
      else if (first) console.warn(`local-experts: warning: ${notice}`);
    }
    return provider;
  }
  throw new BackendError(`no compute backend could be loaded (${detailsOf(failures).join('; ')})`);
}
