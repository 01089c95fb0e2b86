/**
 * Where the experts of a step run: in-process (the reference) or sharded over worker
 * threads (src/parallel/thread-runner.ts). `begin*` starts a phase (in-process: runs it), `finish*`
 * waits for it; between the two the main thread does its own overlapping work.
 */
import type { Sgemm } from '../compute/provider.js';
import type { Kernels } from '../kernels/types.js';
import { BUSY_SLOTS, CMD, type MixtureLayout, type MixtureViews } from '../memory/layout.js';
import type { MixtureConfig } from '../model/config.js';
import type { OptimizerConfig } from '../optim/config.js';
import type { FloatMode } from '../compute/float-mode.js';
import { MoeError } from '../errors.js';
import { ExpertSide } from './expert-side.js';
import type { ExpertRange } from './plan.js';

/** The expert side of a session, behind one interface for every worker count. */
export interface ShardRunner {
  /** Worker threads the experts run on (0 = in-process). */
  readonly workers: number;
  /** Start the experts' forward pass for 1-based `step` on `rows` batch rows. */
  beginForward(rows: number, step: number): void;
  /** Wait until the forward pass has finished. */
  finishForward(): Promise<void> | void;
  /** Start the experts' backward pass. */
  beginBackward(rows: number, step: number): void;
  /** Wait until the backward pass has finished. */
  finishBackward(): Promise<void> | void;
  /** Start the experts' optimiser step with learning rate `lr` as 1-based step `step`. */
  beginUpdate(lr: number, step: number): void;
  /** Wait until the update has finished. */
  finishUpdate(): Promise<void> | void;
  /** Stop and release the threads, if any. Idempotent. */
  close(): Promise<void>;
}

/**
 * Longest synchronous slice of an in-process phase (ms): a phase over many experts stops
 * between blocks after this long and yields to the event loop (signal handlers, timers,
 * the user's callbacks run), then goes on; a stop asked for meanwhile ends the step there.
 */
export const PHASE_SLICE_MS = 100;

/** What an in-process phase needs from its session between slices. */
export interface SliceHooks {
  /** The session's float mode: each slice after the first sets it again. */
  floatMode: FloatMode | undefined;
  /** Whether the fit was asked to stop (checked between slices of FORWARD and BACKWARD). */
  interrupted: () => boolean;
}

/** The reference runner: every expert on the calling thread, as the only shard (busy time in shard 0's slots). */
export class InProcessRunner implements ShardRunner {
  readonly workers = 0;
  readonly side: ExpertSide;
  /** Set by the session and the fit. */
  readonly hooks: SliceHooks = { floatMode: undefined, interrupted: () => false };
  private readonly busy: Float64Array;
  /** A phase that ran past its first slice: what remains of it. */
  private pending: { cmd: number; work: (from: number, until: number) => number; next: number; step: number } | undefined;
  private step = 0;
  constructor(
    gemm: Sgemm,
    kernels: Kernels,
    config: MixtureConfig,
    optimizer: Required<OptimizerConfig>,
    layout: MixtureLayout,
    views: MixtureViews,
    /** The experts this process computes (all of them, but for an MPI rank). */
    owns: ExpertRange = { first: 0, count: config.experts },
  ) {
    this.side = new ExpertSide(gemm, kernels, { config, optimizer, layout, shard: 0, owns }, views);
    this.busy = views.busy.subarray(0, BUSY_SLOTS);
  }
  private timed(cmd: number, run: () => void): void {
    const t0 = performance.now();
    run();
    this.busy[cmd] = this.busy[cmd]! + (performance.now() - t0);
  }
  /** Run a phase's first slice now; what remains waits for finish (most phases end in one). */
  private begin(cmd: number, work: (from: number, until: number) => number): void {
    let next = -1;
    this.timed(cmd, () => (next = work(0, performance.now() + PHASE_SLICE_MS)));
    this.pending = next < 0 ? undefined : { cmd, work, next, step: this.step };
  }
  /** Nothing to wait for, or the rest of a long phase in slices between yields. */
  private finish(): Promise<void> | void {
    const p = this.pending;
    this.pending = undefined;
    if (p) return this.rest(p);
  }
  private async rest(p: NonNullable<InProcessRunner['pending']>): Promise<void> {
    const { floatMode, interrupted } = this.hooks;
    for (let next = p.next; next >= 0; ) {
      // Yield: the event loop runs what waited (a signal handler among it).
      await new Promise<void>((r) => setImmediate(r));
      if (interrupted()) {
        throw new MoeError('ABORTED', `training aborted during step ${p.step}; parameters are those of step ${p.step - 1}`);
      }
      floatMode?.enter();
      try {
        this.timed(p.cmd, () => (next = p.work(next, performance.now() + PHASE_SLICE_MS)));
      } finally {
        floatMode?.leave();
      }
    }
  }
  beginForward(_rows: number, step: number): void {
    this.step = step;
    this.begin(CMD.FORWARD, (from, until) => this.side.forward(from, until));
  }
  finishForward(): Promise<void> | void {
    return this.finish();
  }
  beginBackward(): void {
    this.begin(CMD.BACKWARD, (from, until) => this.side.backward(from, until));
  }
  finishBackward(): Promise<void> | void {
    return this.finish();
  }
  beginUpdate(lr: number, step: number): void {
    // One pass over the blocks and one optimiser call: never sliced, and never stopped
    // half-way (a stop waits for the step's end).
    this.timed(CMD.UPDATE, () => this.side.update(lr, step));
  }
  finishUpdate(): void {}
  async close(): Promise<void> {}
}
