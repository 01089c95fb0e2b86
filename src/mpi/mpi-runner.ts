/**
 * The shard runner of one MPI rank: its share of the experts computed by a local runner
 * (in-process or worker threads), and after each phase an exchange that gives every rank
 * what the main side needs from the entries the others computed. Every rank runs the
 * main side (data, gate, routing, loss, the gate's update) on identical inputs, so every
 * rank computes the same numbers; experts' gradients and optimiser state stay on their
 * rank during training, and {@link MpiRunner.gather} makes the whole model whole on every
 * rank (before validation, a snapshot, and at the end).
 *
 * Exchanges, in a fixed order (rank r's entries are those of its experts, contiguous):
 * - after FORWARD: each entry's score (enough for the Gaussian NLL, the competitive error
 *   and the categorical NLL), and the outputs where the error function mixes them (the
 *   cooperative error's ȳ: switch and topk:1 use it);
 * - after BACKWARD: the cooperative error's per-entry dot products, and one allreduce of
 *   two integers: blocks whose gradient failed the finite-step check, and whether any
 *   rank was asked to stop (a signal, close(), an abort) — so that every rank stops at
 *   the same step boundary.
 * Nothing here reduces floats: parameters are bit-identical for any ranks × workers.
 */
import type { ShardRunner } from '../engine/runner.js';
import type { ExpertRange } from '../engine/plan.js';
import { MoeError } from '../errors.js';
import { CTRL, type MixtureViews } from '../memory/layout.js';
import type { MixtureConfig } from '../model/config.js';
import type { Communicator, RankSlices } from './communicator.js';

/** What the error function needs exchanged (its flags). */
export interface ExchangeNeeds {
  /** The main thread mixes the experts' outputs (cooperative). */
  mixesOutputs: boolean;
  /** The gate's gradient needs the experts' per-entry dots after BACKWARD (cooperative). */
  gateGradAfterBackward: boolean;
}

/** Slots of the per-step integer allreduce. */
const AGREE = { BAD_GRADS: 0, STOP: 1 } as const;

export class MpiRunner implements ShardRunner {
  readonly workers: number;
  /** Set by the trainer: whether this rank was asked to stop (checked once a step). */
  stopRequested: () => boolean = () => false;
  /** Whether the step now in flight was stopped by agreement (no UPDATE follows). */
  stopped = false;
  private readonly entrySlices: RankSlices;
  private readonly outSlices: RankSlices;
  private readonly agree = new Int32Array(2);

  constructor(
    private readonly inner: ShardRunner,
    readonly comm: Communicator,
    private readonly v: MixtureViews,
    private readonly config: MixtureConfig,
    /** The experts of each rank. */
    readonly rankExperts: readonly ExpertRange[],
    private readonly needs: ExchangeNeeds,
  ) {
    this.workers = inner.workers;
    const R = comm.size;
    this.entrySlices = { counts: new Int32Array(R), displs: new Int32Array(R) };
    this.outSlices = { counts: new Int32Array(R), displs: new Int32Array(R) };
  }

  /** Each rank's entries from the step's routing (expertStart), in entries and in output floats. */
  private slices(): void {
    const K = this.config.outputs, es = this.v.expertStart;
    this.rankExperts.forEach((g, r) => {
      const a = es[g.first]!, b = es[g.first + g.count]!;
      this.entrySlices.displs[r] = a;
      this.entrySlices.counts[r] = b - a;
      this.outSlices.displs[r] = a * K;
      this.outSlices.counts[r] = (b - a) * K;
    });
  }

  beginForward(rows: number, step: number): void {
    this.slices();
    this.inner.beginForward(rows, step);
  }

  async finishForward(): Promise<void> {
    await this.inner.finishForward();
    await this.comm.allgatherv(this.v.entryScore, this.entrySlices, 'the scores after FORWARD');
    if (this.needs.mixesOutputs) await this.comm.allgatherv(this.v.entryOut, this.outSlices, 'the outputs after FORWARD');
  }

  beginBackward(rows: number, step: number): void {
    this.inner.beginBackward(rows, step);
  }

  async finishBackward(): Promise<void> {
    await this.inner.finishBackward();
    if (this.needs.gateGradAfterBackward) await this.comm.allgatherv(this.v.entryDot, this.entrySlices, 'the dot products after BACKWARD');
    this.agree[AGREE.BAD_GRADS] = Atomics.load(this.v.control, CTRL.BAD_GRADS);
    this.agree[AGREE.STOP] = this.stopRequested() ? 1 : 0;
    await this.comm.allreduceInts(this.agree, 'sum', 'the step agreement after BACKWARD');
    // Every rank sees the same sums: the same blocks failed, the same decision to stop.
    Atomics.store(this.v.control, CTRL.BAD_GRADS, this.agree[AGREE.BAD_GRADS]!);
    this.stopped = this.agree[AGREE.STOP]! > 0;
    // Every rank throws here, at the same step: nothing of this step is applied.
    if (this.stopped) throw new MoeError('ABORTED', 'training stopped on every rank at a step boundary (a rank was signalled, closed or aborted)');
  }

  beginUpdate(lr: number, step: number): void {
    this.inner.beginUpdate(lr, step);
  }

  finishUpdate(): Promise<void> | void {
    return this.inner.finishUpdate();
  }

  /**
   * Make every expert's parameters and optimiser state whole on every rank (each rank
   * holds its own experts' current values; the others' are stale): an allgatherv of the
   * ranks' ranges of each per-expert region. Collective: every rank calls it at the same
   * point (epoch ends, the agreed stop, the end of the fit).
   */
  async gather(): Promise<void> {
    const P = this.v.expertParams.length / this.config.experts;
    const R = this.comm.size, slices: RankSlices = { counts: new Int32Array(R), displs: new Int32Array(R) };
    this.rankExperts.forEach((g, r) => {
      slices.displs[r] = g.first * P;
      slices.counts[r] = g.count * P;
    });
    await this.comm.allgatherv(this.v.expertParams, slices, "the experts' parameters");
    // Optimiser state is planar: one plane of E·P floats per state variable.
    const planeSize = this.v.expertParams.length, planes = this.v.expertOpt.length / Math.max(1, planeSize);
    for (let s = 0; s < planes; s++) {
      await this.comm.allgatherv(this.v.expertOpt.subarray(s * planeSize, (s + 1) * planeSize), slices, "the experts' optimiser state");
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Refuse a split that leaves a shard without an expert. */
export function checkRankShards(ranks: number, shardsPerRank: number, experts: number): void {
  if (ranks * shardsPerRank > experts) {
    throw new MoeError('INVALID_OPTION', `mpi: ${ranks} ranks × ${shardsPerRank} worker${shardsPerRank > 1 ? 's' : ''} need at least ${ranks * shardsPerRank} experts, the model has ${experts}`);
  }
}
