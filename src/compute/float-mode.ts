/**
 * The float mode of the threads that run this library's compute: flush-to-zero and
 * denormals-are-zero ("flush", the default, as TensorFlow and JAX run on CPU) or IEEE
 * gradual underflow ("ieee").
 *
 * Why: a mixture's losing posteriors are e⁻⁵⁰ or smaller, and the gradient rows they
 * scale fall below 2⁻¹²⁶. Intel cores take a microcode assist on every subnormal operand
 * or result (a 1024² sgemm on subnormal inputs: 2,647 ms against 15.5 ms), so an unflushed
 * run slows 3–28× as it learns. Flushing changes only values below 2⁻¹²⁶ (float32) and
 * 2⁻¹⁰²² (float64), which are set to ±0.
 *
 * How: x86-64 MXCSR bit 15 (FTZ) and bit 6 (DAZ), set through the C library's
 * `fegetenv`/`fesetenv` (libm.so.6, called with koffi). The environment is read once per
 * thread and modified (read-modify-write; a zeroed `fenv_t` would unmask every exception
 * and the first inexact operation would raise SIGFPE); entering a compute section sets the
 * modified copy, leaving sets the copy read at first use back. One `fesetenv` each way.
 *
 * Where (the contract every caller keeps):
 * - Shard threads run only this library's code: they set the mode at the start of each
 *   task (a pooled thread may serve fits of different modes) and keep it.
 * - The caller's thread (in-process fit, predict, evaluate, the main thread's gate and
 *   routing): {@link FloatMode.enter} on entry to a synchronous compute section and
 *   {@link FloatMode.leave} before every `await`, every user callback, and in `finally`.
 *   No thread is created and no async work is started inside a flushed section (a new
 *   thread inherits the creating thread's mode).
 *
 * Platforms: Linux with glibc on x86-64 ({@link FLUSH_PLATFORMS}). Anywhere else the mode
 * is "ieee", said once per process in one line.
 */
import { createRequire } from 'node:module';

/** `flush`: subnormal floats read and written as zero; `ieee`: gradual underflow. */
export type DenormalMode = 'flush' | 'ieee';

/** The float modes, default first. */
export const DENORMAL_MODES: readonly DenormalMode[] = ['flush', 'ieee'];

/** Where flushing is supported: `os-libc-arch`. */
export const FLUSH_PLATFORMS: readonly string[] = ['linux-glibc-x64'];

/** glibc x86-64 `fenv_t`: 28 bytes of x87 state, then MXCSR (32 bytes in all). */
const FENV_BYTES = 32;
const MXCSR_OFFSET = 28;
/** MXCSR flush-to-zero (15) and denormals-are-zero (6). */
const MXCSR_FTZ_DAZ = (1 << 15) | (1 << 6);

interface Native {
  fegetenv(env: Uint8Array): number;
  fesetenv(env: Uint8Array): number;
}

/** The thread's environment at first use, and that with FTZ and DAZ set. */
interface Envs {
  native: Native;
  ieee: Uint8Array;
  flush: Uint8Array;
}

/** This thread's environments (module state is per thread: each worker has its own). */
let envs: Envs | null | undefined;
/** Why flushing is unavailable here (set when envs is null). */
let unsupportedReason = '';
/** The thread's mode as this module last set it (true: flushing). */
let flushing = false;

function platformKey(): string {
  return `${process.platform}-${process.platform === 'linux' ? 'glibc' : 'libc'}-${process.arch}`;
}

function loadEnvs(): Envs | null {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    unsupportedReason = `flush-to-zero is supported on ${FLUSH_PLATFORMS.join(', ')}, not ${process.platform}-${process.arch}`;
    return null;
  }
  let native: Native;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    // libm.so.6 is glibc's: on musl it does not exist, and the fenv_t layout differs.
    const lib = koffi.load('libm.so.6');
    native = {
      fegetenv: lib.func('int fegetenv(_Out_ uint8_t *env)') as (env: Uint8Array) => number,
      fesetenv: lib.func('int fesetenv(const uint8_t *env)') as (env: Uint8Array) => number,
    };
  } catch (err) {
    unsupportedReason = `flush-to-zero needs glibc's libm.so.6 through koffi (${(err as Error).message.split('\n')[0]})`;
    return null;
  }
  const ieee = new Uint8Array(FENV_BYTES);
  if (native.fegetenv(ieee) !== 0) {
    unsupportedReason = 'fegetenv failed';
    return null;
  }
  const dv = new DataView(ieee.buffer);
  const mxcsr = dv.getUint32(MXCSR_OFFSET, true);
  // The environment read here is the thread's own; if it already flushes (a user's
  // setting), "ieee" means that setting with both bits cleared.
  dv.setUint32(MXCSR_OFFSET, mxcsr & ~MXCSR_FTZ_DAZ, true);
  const flush = ieee.slice();
  new DataView(flush.buffer).setUint32(MXCSR_OFFSET, mxcsr | MXCSR_FTZ_DAZ, true);
  flushing = (mxcsr & MXCSR_FTZ_DAZ) !== 0;
  return { native, ieee, flush };
}

function getEnvs(): Envs | null {
  if (envs === undefined) envs = loadEnvs();
  return envs;
}

/** Whether this platform can flush (loads the C library's fenv functions on first call). */
export function flushSupported(): boolean {
  return getEnvs() !== null;
}

/** Why flushing is not supported here ('' where it is). */
export function flushUnsupportedReason(): string {
  getEnvs();
  return unsupportedReason;
}

/**
 * The mode a run gets for a requested one: "flush" only where supported. `onWarning`
 * hears once per process why a requested "flush" runs "ieee".
 */
export function effectiveMode(requested: DenormalMode, onWarning?: (message: string) => void): DenormalMode {
  if (requested === 'ieee' || flushSupported()) return requested;
  if (!warned) {
    warned = true;
    const line = `local-experts: ${unsupportedReason} (${platformKey()}); running with IEEE subnormals (denormals: 'ieee'), which can be several times slower on Intel CPUs`;
    if (onWarning) onWarning(line);
    else console.warn(line);
  }
  return 'ieee';
}
let warned = false;

/** Set this thread's mode now (shard threads, at the start of a task). */
export function setThreadMode(mode: DenormalMode): void {
  const e = getEnvs();
  if (!e) return;
  const on = mode === 'flush';
  if (on === flushing) return;
  e.native.fesetenv(on ? e.flush : e.ieee);
  flushing = on;
}

/** Whether this thread flushes now, read from the hardware (for tests and reports). */
export function threadFlushes(): boolean {
  const e = getEnvs();
  if (!e) return false;
  const env = new Uint8Array(FENV_BYTES);
  e.native.fegetenv(env);
  return (new DataView(env.buffer).getUint32(MXCSR_OFFSET, true) & MXCSR_FTZ_DAZ) === MXCSR_FTZ_DAZ;
}

/**
 * A compute section's float mode on the caller's thread: `enter()` sets it, `leave()`
 * puts back what the thread had (IEEE, unless the thread already flushed on its own).
 * Sections nest: only the outermost pair switches, so a caller may hold the mode across
 * many sections (the in-process fit loop holds it across consecutive steps) and pay one
 * `fesetenv` per switch instead of two per step. `suspend()` puts the thread's mode back
 * whatever the depth, for an await; `resume()` returns to the section.
 */
export class FloatMode {
  private depth = 0;
  private restore = false;
  constructor(readonly mode: DenormalMode) {}

  /** Set the mode for a synchronous compute section (nested calls only count). */
  enter(): void {
    if (this.depth++ > 0) return;
    this.restore = flushing;
    setThreadMode(this.mode);
  }

  /** End a section: the outermost one puts back the thread's mode (before an await, a user callback, and in finally). */
  leave(): void {
    if (this.depth === 0 || --this.depth > 0) return;
    setThreadMode(this.restore ? 'flush' : 'ieee');
  }

  /** Leave every open section (before an await or a user callback); returns what {@link resume} needs. */
  suspend(): number {
    const d = this.depth;
    if (d > 0) {
      this.depth = 1;
      this.leave();
    }
    return d;
  }

  /** Re-open the sections {@link suspend} closed. */
  resume(depth: number): void {
    if (depth <= 0) return;
    this.enter();
    this.depth = depth;
  }

  /** Run `f` in this mode. */
  run<T>(f: () => T): T {
    this.enter();
    try {
      return f();
    } finally {
      this.leave();
    }
  }

  /** Run the user's `f` outside the mode (a callback inside a held section). */
  outside<T>(f: () => T): T {
    const d = this.suspend();
    try {
      return f();
    } finally {
      this.resume(d);
    }
  }
}

/** Check a user's mode at the boundary. */
export function isDenormalMode(v: unknown): v is DenormalMode {
  return v === 'flush' || v === 'ieee';
}
