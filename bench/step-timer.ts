/**
 * The benchmarks' one timing wrapper: timers around the provider's sgemm, every kernel and
 * the shard runner's phases of one training session, pass-through while off (one branch
 * per call). The scaling benchmark reads each phase's synchronisation from it, the
 * breakdown (bench/breakdown.ts) every part of the step.
 *
 * Synchronisation of a phase with workers: its wall time on the main thread (signal to
 * resumed after the wait) minus the longer of the slowest shard's compute in that phase
 * (the shards' busy counters in shared memory) and the main thread's own overlapping work.
 */
import type { Sgemm } from '../src/index.js';
import { BUSY_SLOTS, CMD, type ShardRunner, type Kernels } from '../src/internal.js';

/** Kernels counted as the optimiser; every other kernel is element-wise. */
export const OPTIMISER_KERNELS: ReadonlySet<string> = new Set(['sgd', 'momentum', 'adam']);

/** The phases of a step, as CMD indexes them. */
export const PHASES = [CMD.FORWARD, CMD.BACKWARD, CMD.UPDATE] as const;
/** Accumulator slots: index 0 is "outside the expert phases" (the main thread's own work). */
const SLOTS = 8;

/** One recorded sgemm call (its buffers are views of the session's memory). */
export interface GemmCall {
  args: Parameters<Sgemm>;
}

/**
 * Timing wrappers for one session: sgemm, the kernels and the runner, all of them pass-through
 * while `on` is false (one branch per call), and the step's main-thread segments.
 */
export class StepTimer {
  /** Time the calls. */
  on = false;
  /** Record sgemm calls (for the replay) while set. */
  recording: GemmCall[] | undefined;
  /** The expert phase running on this thread (in-process), 0 outside. */
  phase = 0;
  /** ms per slot (0 = main thread outside the phases, else CMD): sgemm, optimiser kernels, other kernels. */
  readonly gemm = new Float64Array(SLOTS);
  readonly opt = new Float64Array(SLOTS);
  readonly kern = new Float64Array(SLOTS);
  /** ms per CMD: the experts' phase on this thread (in-process). */
  readonly phaseMs = new Float64Array(SLOTS);
  /** Workers, ms per CMD: slowest shard's compute, sync, main's work beyond the compute. */
  readonly shardMs = new Float64Array(SLOTS);
  readonly syncMs = new Float64Array(SLOTS);
  readonly excessMs = new Float64Array(SLOTS);
  /** Workers, per CMD: phases timed. */
  readonly phases = new Float64Array(SLOTS);
  /** Kernel names, and ms per kernel inside the expert phases. */
  readonly kernelNames: string[] = [];
  readonly byKernel = new Float64Array(64);
  /** ms: the main thread's own work outside the phases. */
  outsideMs = 0;
  /** ms: the steps' wall time (stepBegin to stepEnd). */
  stepMs = 0;
  steps = 0;
  private mark = 0;
  private stepStart = 0;

  reset(): void {
    for (const a of [this.gemm, this.opt, this.kern, this.phaseMs, this.shardMs, this.syncMs, this.excessMs, this.phases, this.byKernel]) a.fill(0);
    this.outsideMs = 0;
    this.stepMs = 0;
    this.steps = 0;
  }

  stepBegin(): void {
    this.stepStart = this.mark = performance.now();
  }

  stepEnd(): void {
    const now = performance.now();
    this.outsideMs += now - this.mark;
    this.stepMs += now - this.stepStart;
    this.steps++;
  }

  /** The main thread's segment outside the phases ends now (a phase begins). */
  leaveMain(now: number): void {
    this.outsideMs += now - this.mark;
  }

  /** A segment of the main thread's own work begins now (a phase has ended, or begun in-process). */
  enterMain(now: number): void {
    this.mark = now;
  }

  sgemm(inner: Sgemm): Sgemm {
    return (transA, transB, M, N, K, alpha, A, B, beta, C) => {
      if (this.recording) this.recording.push({ args: [transA, transB, M, N, K, alpha, A, B, beta, C] });
      if (!this.on) return inner(transA, transB, M, N, K, alpha, A, B, beta, C);
      const t0 = performance.now();
      inner(transA, transB, M, N, K, alpha, A, B, beta, C);
      this.gemm[this.phase] = this.gemm[this.phase]! + (performance.now() - t0);
    };
  }

  kernels(k: Kernels): Kernels {
    const out: Record<string, unknown> = {};
    for (let o: object | null = k; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
      for (const key of Object.getOwnPropertyNames(o)) {
        if (key in out || key === 'constructor') continue;
        const v = (k as unknown as Record<string, unknown>)[key];
        if (typeof v !== 'function') {
          out[key] = v;
          continue;
        }
        const fn = v as (...a: unknown[]) => unknown;
        const acc = OPTIMISER_KERNELS.has(key) ? this.opt : this.kern;
        const at = this.kernelNames.push(key) - 1;
        if (at >= this.byKernel.length) throw new Error(`more than ${this.byKernel.length} kernels to time`);
        const byKernel = this.byKernel;
        out[key] = (...a: unknown[]): unknown => {
          if (!this.on) return fn.apply(k, a);
          const t0 = performance.now();
          const r = fn.apply(k, a);
          const dt = performance.now() - t0;
          acc[this.phase] = acc[this.phase]! + dt;
          if (this.phase !== 0) byKernel[at] = byKernel[at]! + dt;
          return r;
        };
      }
    }
    return out as unknown as Kernels;
  }
}

/**
 * The runner wrapper: in-process, each phase runs inside `begin*` on this thread (timed, and
 * marked so the kernels' wrappers file their time under it); with workers, each phase's
 * wall time, the slowest shard's compute (busy counters) and the main thread's overlapping
 * work give its synchronisation, as the scaling benchmark measures it.
 */
export class TimedRunner implements ShardRunner {
  readonly workers: number;
  private readonly last: Float64Array;
  private begun = 0;

  constructor(
    private readonly inner: ShardRunner,
    private readonly busy: Float64Array,
    private readonly t: StepTimer,
  ) {
    this.workers = inner.workers;
    this.last = new Float64Array(busy.length);
    this.last.set(busy);
  }

  private begin(cmd: number, run: () => void): void {
    const t = this.t;
    if (!t.on) return run();
    const t0 = performance.now();
    t.leaveMain(t0);
    if (this.workers === 0) {
      t.phase = cmd;
      try {
        run();
      } finally {
        t.phase = 0;
        const t1 = performance.now();
        t.phaseMs[cmd] = t.phaseMs[cmd]! + (t1 - t0);
        t.enterMain(t1);
      }
      return;
    }
    this.begun = t0;
    run();
  }

  private finish(cmd: number, wait: () => Promise<void> | void): Promise<void> | void {
    const t = this.t;
    if (!t.on || this.workers === 0) return wait();
    const called = performance.now();
    return Promise.resolve(wait()).then(() => {
      const now = performance.now();
      let slowest = 0;
      for (let k = 0; k < this.workers; k++) {
        const i = k * BUSY_SLOTS + cmd;
        const d = this.busy[i]! - this.last[i]!;
        if (d > slowest) slowest = d;
      }
      this.last.set(this.busy);
      const own = called - this.begun;
      t.shardMs[cmd] = t.shardMs[cmd]! + slowest;
      t.syncMs[cmd] = t.syncMs[cmd]! + (now - this.begun - Math.max(slowest, own));
      t.excessMs[cmd] = t.excessMs[cmd]! + Math.max(0, own - slowest);
      t.phases[cmd] = t.phases[cmd]! + 1;
      t.enterMain(now);
    });
  }

  /** Forget the shards' compute so far (the timers are switched on). */
  resync(): void {
    this.last.set(this.busy);
  }

  beginForward(rows: number, step: number): void {
    this.begin(CMD.FORWARD, () => this.inner.beginForward(rows, step));
  }
  finishForward(): Promise<void> | void {
    return this.finish(CMD.FORWARD, () => this.inner.finishForward());
  }
  beginBackward(rows: number, step: number): void {
    this.begin(CMD.BACKWARD, () => this.inner.beginBackward(rows, step));
  }
  finishBackward(): Promise<void> | void {
    return this.finish(CMD.BACKWARD, () => this.inner.finishBackward());
  }
  beginUpdate(lr: number, step: number): void {
    this.begin(CMD.UPDATE, () => this.inner.beginUpdate(lr, step));
  }
  finishUpdate(): Promise<void> | void {
    return this.finish(CMD.UPDATE, () => this.inner.finishUpdate());
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Mean µs per phase of `of` (the timer's shardMs or syncMs) for one command, or over the three phases. */
export function perPhaseMicros(t: StepTimer, of: Float64Array, cmd?: number): number {
  if (cmd !== undefined) return (of[cmd]! * 1000) / t.phases[cmd]!;
  let sum = 0, n = 0;
  for (const c of PHASES) {
    sum += of[c]!;
    n += t.phases[c]!;
  }
  return (sum * 1000) / n;
}
