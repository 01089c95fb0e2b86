/**
 * Liveness of a thread runner's shards, and nothing else: whether a shard died or stalled,
 * the first such failure (later ones are its consequences), the stall watchdog's limit, and
 * the ABORT that stops every shard's loop. Deaths arrive as piscina tasks rejecting or
 * ending (the runner reports them here); a stall is a phase that outlives the limit. How
 * the main thread waits for a phase (polling, parking) is src/parallel/polling.ts's job.
 */
import { ShardStallError, type ShardCrashError, type StepPhase } from '../errors.js';
import { CTRL } from '../memory/layout.js';

/** The stall timeout's floor, and its multiple of the longest phase seen. */
const STALL_FLOOR_MS = 60_000;
const STALL_FACTOR = 20;
/** The watchdog's period: at most 1 s, and a quarter of a stall timeout the caller set (at least 5 ms). */
const WATCHDOG_MAX_MS = 1000;
const WATCHDOG_MIN_MS = 5;

/** The failure state and stall watchdog of one runner's shards. */
export class Liveness {
  /** The first failure: what every later wait throws. */
  failure: ShardCrashError | ShardStallError | undefined;
  /** The shard that crashed (-1: none, or a stall). */
  failedShard = -1;
  /** The longest phase so far (ms), for the default stall timeout. */
  private longestMs = 0;
  /** The watchdog's timer while one runs ({@link watch}). */
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctrl: Int32Array,
    private readonly workers: number,
    /** The stall timeout option (undefined: max(60 s, 20 × the longest phase so far)). */
    private readonly stallTimeoutMs: number | undefined,
  ) {}

  /**
   * A shard died: record it (the first failure only) and wake the main thread's wait. The
   * other shards are stopped now, unless `letFinish` (an UPDATE in flight: they must
   * finish the update they were given first; see {@link survivorsFinished}).
   */
  crashed(shard: number, error: ShardCrashError, letFinish: boolean): void {
    if (this.failure) return;
    this.failure = error;
    this.failedShard = shard;
    if (!letFinish) this.abort();
    Atomics.notify(this.ctrl, CTRL.DONE);
  }

  /**
   * Start the stall watchdog: while `inFlight()`, wake the main thread's wait on DONE every
   * period (1 s, or a quarter of the stall timeout option), so that a wait parked with no
   * timeout of its own looks at the clock and finds a stall. Why a timer here and not a
   * timeout on each wait: every timed Atomics.waitAsync leaves a delayed task in Node's
   * platform until its timeout passes (a notify does not cancel it), and Node keeps those
   * in a list that it scans on every expiry; at a 1 s timeout and thousands of phases a
   * second the list held thousands, and its scans took a fifth of the CPU of a small
   * 2-worker fit. The timer is unref'd: it never keeps the process alive.
   */
  watch(inFlight: () => boolean): void {
    if (this.watchdog) return;
    const period = Math.min(WATCHDOG_MAX_MS, Math.max(WATCHDOG_MIN_MS, (this.stallTimeoutMs ?? STALL_FLOOR_MS) / 4));
    this.watchdog = setInterval(() => {
      if (inFlight()) Atomics.notify(this.ctrl, CTRL.DONE);
    }, period);
    this.watchdog.unref();
  }

  /** Stop the watchdog (the runner closes). */
  unwatch(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  /** A phase completed in `ms`: the default stall limit follows the longest. */
  phaseEnded(ms: number): void {
    if (ms > this.longestMs) this.longestMs = ms;
  }

  /** The stall timeout now: the option, or max(60 s, 20 × the longest phase so far). */
  stallLimitMs(): number {
    return this.stallTimeoutMs ?? Math.max(STALL_FLOOR_MS, STALL_FACTOR * this.longestMs);
  }

  /** Shards that have not finished command `seq`. */
  unfinished(seq: number): number[] {
    const out: number[] = [];
    for (let shard = 0; shard < this.workers; shard++) if (Atomics.load(this.ctrl, CTRL.SHARD_DONE_BASE + shard) !== seq) out.push(shard);
    return out;
  }

  /**
   * Shards alive but not done with command `seq` in time: record a ShardStallError naming
   * them and stop every shard's loop. The caller terminates the threads and throws it.
   */
  stalled(seq: number, phase: StepPhase, completed: number): ShardStallError {
    const err = new ShardStallError(this.unfinished(seq), phase, completed, this.stallLimitMs());
    this.failure ??= err;
    this.abort();
    return err;
  }

  /** Stop every shard's loop (a shard died or stalled): ABORT, and a new SEQ to wake them. */
  abort(): void {
    Atomics.store(this.ctrl, CTRL.ABORT, 1);
    Atomics.add(this.ctrl, CTRL.SEQ, 1);
    Atomics.notify(this.ctrl, CTRL.SEQ);
  }

  /** Whether ABORT has been raised. */
  get aborted(): boolean {
    return Atomics.load(this.ctrl, CTRL.ABORT) !== 0;
  }

  /** After a crash in UPDATE: wait (bounded by `graceMs`) until every other shard has finished command `seq`. */
  async survivorsFinished(seq: number, graceMs: number): Promise<boolean> {
    const deadline = performance.now() + graceMs;
    for (;;) {
      let pending = false;
      for (let shard = 0; shard < this.workers; shard++) {
        if (shard !== this.failedShard && Atomics.load(this.ctrl, CTRL.SHARD_DONE_BASE + shard) !== seq) pending = true;
      }
      if (!pending) return true;
      if (performance.now() > deadline) return false;
      const done = Atomics.load(this.ctrl, CTRL.DONE);
      // Why this wait: it is timed (50 ms) because no shard notifies here (a shard notifies
      // only when DONE reaches every shard, which the dead one never adds to), so each
      // survivor's finish is seen within 50 ms; the deadline bounds a survivor that is
      // itself stuck; async so that the event loop keeps running (a second death still
      // reaches the runner).
      const w = Atomics.waitAsync(this.ctrl, CTRL.DONE, done, 50);
      if (w.async) await w.value;
    }
  }
}
