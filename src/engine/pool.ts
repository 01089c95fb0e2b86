/**
 * Where the experts of a step run: in-process (the reference) or sharded over worker
 * threads (src/parallel/pool.ts). `begin*` starts a phase (in-process: runs it), `finish*`
 * waits for it; between the two the main thread does its own overlapping work.
 */
import type { Sgemm } from '../compute/provider.js';
import type { Kernels } from '../kernels/types.js';
import { BUSY_SLOTS, CMD, type MixtureLayout, type MixtureViews } from '../memory/layout.js';
import type { MixtureConfig } from '../model/config.js';
import type { OptimizerConfig } from '../optim/config.js';
import { ExpertSide } from './expert-side.js';
import type { ExpertRange } from './plan.js';

/** The expert side of a session, behind one interface for every worker count. */
export interface ExpertPool {
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

/** The reference pool: every expert on the calling thread, as the only shard (busy time in shard 0's slots). */
export class InProcessPool implements ExpertPool {
  readonly workers = 0;
  readonly side: ExpertSide;
  private readonly busy: Float64Array;
  constructor(
    gemm: Sgemm,
    k: Kernels,
    config: MixtureConfig,
    optimizer: Required<OptimizerConfig>,
    layout: MixtureLayout,
    views: MixtureViews,
    /** The experts this process computes (all of them, but for an MPI rank). */
    owns: ExpertRange = { first: 0, count: config.experts },
  ) {
    this.side = new ExpertSide(gemm, k, { config, optimizer, layout, shard: 0, owns }, views);
    this.busy = views.busy.subarray(0, BUSY_SLOTS);
  }
  private timed(cmd: number, run: () => void): void {
    const t0 = performance.now();
    run();
    this.busy[cmd] = this.busy[cmd]! + (performance.now() - t0);
  }
  beginForward(): void {
    this.timed(CMD.FORWARD, () => this.side.forward());
  }
  finishForward(): void {}
  beginBackward(): void {
    this.timed(CMD.BACKWARD, () => this.side.backward());
  }
  finishBackward(): void {}
  beginUpdate(lr: number, step: number): void {
    this.timed(CMD.UPDATE, () => this.side.update(lr, step));
  }
  finishUpdate(): void {}
  async close(): Promise<void> {}
}
