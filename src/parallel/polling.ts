/**
 * How threads wait for each other between phases, and nothing else: when to spin on the
 * control block and when to park in Atomics.waitAsync. A thread parked through a phase of
 * milliseconds takes 100–500 µs to wake on this kind of VM, so a thread that has a core
 * of its own polls where the other side is about to answer: a shard for the next command,
 * the main thread over a phase's expected end. Heuristics only: whether a shard is alive
 * is src/parallel/liveness.ts's job. A wait here is timed only where it polls; an untimed
 * one is ended by the shards' notify, a death's, close()'s or the liveness watchdog's.
 */
import { availableParallelism } from 'node:os';
import { CTRL } from '../memory/layout.js';

/**
 * How long a shard polls for the next command before parking, where it has a core of its
 * own (cores > workers): long enough to cover the main thread's work between phases.
 */
const POLL_MICROS = 300;

/** The window (ms) before a phase's expected end in which the main thread polls. */
const MAIN_POLL_MS = 0.5;

/** Whether W shards and the main thread each have a core (polling then takes no one's CPU). */
function coreEach(shards: number): boolean {
  return availableParallelism() > shards;
}

/** Microseconds a shard of W polls for the next command before parking (0: never polls). */
export function shardPollMicros(shards: number): number {
  return coreEach(shards) ? POLL_MICROS : 0;
}

/** Shard side: poll CTRL.SEQ for up to `micros`; true once it differs from `seen`. */
export function pollFor(ctrl: Int32Array, seen: number, micros: number): boolean {
  if (micros <= 0) return false;
  const until = performance.now() + micros / 1000;
  do {
    if (Atomics.load(ctrl, CTRL.SEQ) !== seen) return true;
  } while (performance.now() < until);
  return false;
}

/** Main-thread side: each command's typical duration, and the poll-then-park of a phase's wait. */
export class MainPolling {
  /** Each command's typical duration (ms), a running mean. */
  private readonly typicalMs = new Float64Array(8);
  /** The main thread polls near a phase's end only where it has a core of its own. */
  private readonly polls: boolean;

  constructor(
    private readonly ctrl: Int32Array,
    private readonly workers: number,
  ) {
    this.polls = coreEach(workers);
  }

  /**
   * Command `cmd` took `ms`: a running mean that follows the phase's duration up and down
   * (short last batches of an epoch pull it down only a little).
   */
  phaseEnded(cmd: number, ms: number): void {
    const typical = this.typicalMs[cmd]!;
    this.typicalMs[cmd] = typical === 0 ? ms : typical + 0.2 * (ms - typical);
  }

  /** Milliseconds until command `cmd`'s expected end, for a phase that started at `start`. */
  remainingMs(cmd: number, start: number): number {
    return this.typicalMs[cmd]! - (performance.now() - start);
  }

  /**
   * Near the expected end (`remaining` below the window), spin a bounded while on DONE;
   * true once every shard is done. A death reported meanwhile waits for the spin to end.
   */
  spin(cmd: number, remaining: number): boolean {
    if (!(this.polls && this.typicalMs[cmd]! > 0 && remaining < MAIN_POLL_MS)) return false;
    const until = performance.now() + 3 * MAIN_POLL_MS;
    while (Atomics.load(this.ctrl, CTRL.DONE) < this.workers && performance.now() < until) {
      // poll
    }
    return Atomics.load(this.ctrl, CTRL.DONE) >= this.workers;
  }

  /**
   * Park until DONE moves from `done`, a shard's death is notified, or the liveness
   * watchdog wakes it (src/parallel/liveness.ts). Where this thread polls, the wait is
   * timed to end the poll window before the phase's expected end (at most `capMs`, the
   * caller's bound: the stall limit, 1 s); such a timeout is about a phase long. Otherwise
   * it has no timeout: a timed wait leaves a delayed task in Node's platform until its
   * timeout passes, even once notified, and at 1 s timeouts thousands of them piled up.
   */
  async park(done: number, remaining: number, capMs: number): Promise<void> {
    // Why this wait: waitAsync, never Atomics.wait, because a worker's death reaches this
    // thread as its piscina task rejecting, on this event loop; a blocking wait would hang
    // instead of failing. A death's notify on DONE wakes it at once.
    const w = this.polls && remaining > MAIN_POLL_MS ? Atomics.waitAsync(this.ctrl, CTRL.DONE, done, Math.min(remaining - MAIN_POLL_MS, capMs)) : Atomics.waitAsync(this.ctrl, CTRL.DONE, done);
    if (w.async) await w.value;
  }
}
