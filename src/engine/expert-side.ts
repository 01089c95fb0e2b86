/**
 * The expert side of a training step, for one shard: it computes the blocks the step's
 * block list assigns to it (FORWARD: outputs and per-row scores; BACKWARD: output
 * gradients and backprop into the block's gradient slot) and, in UPDATE, sums each of its
 * own experts' block gradients in block order and takes the optimiser step on them. What
 * a shard worker runs, and what the in-process trainer runs as the only shard. Every block
 * is computed on its own rows and parameters alone, so its numbers do not depend on which
 * shard computed it: that is what makes every worker count bit-identical.
 */
import { committableWithin } from './finite.js';
import type { Sgemm } from '../compute/provider.js';
import type { Kernels } from '../kernels/types.js';
import { errorFunction, type ErrorFunction, type ExpertLossBlock } from '../losses/index.js';
import { CTRL, type GroupRegions, type MixtureLayout } from '../memory/layout.js';
import { expertShape, type MixtureConfig } from '../model/config.js';
import { layerViews, type LayerViews, type MlpShape } from '../model/mlp.js';
import type { OptimizerConfig } from '../optim/config.js';
import { optimizerStep, optimizerViews, type OptimizerViews } from '../optim/step.js';
import { mlpBackward, mlpForward, type MlpPass } from '../nn/mlp.js';
import type { ExpertRange } from './plan.js';

/**
 * What the expert side reads and writes: the batch, the plan's entries and blocks, its
 * own regions, the loss's per-entry weights and mixture, the optimiser state and the
 * control block; never the gate's.
 */
export type ExpertViews = GroupRegions<'control' | 'batch' | 'plan' | 'experts' | 'loss' | 'optimiser'>;

/** What one shard's expert side is built from. */
export interface ExpertSideSpec {
  config: MixtureConfig;
  optimizer: Required<OptimizerConfig>;
  layout: MixtureLayout;
  /** This shard's index. */
  shard: number;
  /** The experts this shard owns (runs UPDATE for). */
  owns: ExpertRange;
}

/** Views of one block, made when its entry range changes. */
interface BlockViews {
  start: number;
  rows: number;
  expert: number;
  x: Float32Array;
  pass: MlpPass;
  loss: ExpertLossBlock;
}

export class ExpertSide {
  private readonly shape: MlpShape;
  private readonly ef: ErrorFunction;
  private readonly P: number;
  /**
   * Views of each expert's parameters and gradients, and of each gradient slot, made when
   * first used (not all at once when the session starts: at a million experts that took
   * seconds on the main thread, in-process, before the first step could yield).
   */
  private readonly params: (LayerViews | undefined)[] = [];
  private readonly ownGrads: (LayerViews | undefined)[] = [];
  private readonly slotGrads: (LayerViews | undefined)[] = [];
  private readonly hiddenOffsets: number[];
  private readonly deltaA: Float32Array;
  private readonly deltaB: Float32Array;
  private readonly gradOut: Float32Array;
  private readonly shardMix: Float32Array;
  /** This shard's float of the finite-step check. */
  private readonly norm: Float32Array;
  /** Views per block index, reused while the block's range stays the same (always, for dense). */
  private readonly cache: (BlockViews | undefined)[] = [];
  private readonly owned: OptimizerViews;
  /** UPDATE's scratch: whether an owned expert had a block this step. */
  private readonly seen: Uint8Array;
  private optimizer: Required<OptimizerConfig>;

  constructor(
    private readonly gemm: Sgemm,
    private readonly kernels: Kernels,
    readonly spec: ExpertSideSpec,
    private readonly v: ExpertViews,
  ) {
    const c = spec.config, s = spec.layout.sizes;
    this.shape = expertShape(c);
    this.ef = errorFunction(c.loss);
    this.P = s.expertParams;
    this.hiddenOffsets = [];
    let h = 0;
    for (let l = 1; l + 1 < this.shape.sizes.length; l++) {
      this.hiddenOffsets.push(h);
      h += this.shape.sizes[l]!;
    }
    const R = s.maxBlockRows, me = spec.shard;
    this.deltaA = v.shardDeltaA.subarray(me * R * s.expertWidest, (me + 1) * R * s.expertWidest);
    this.deltaB = v.shardDeltaB.subarray(me * R * s.expertWidest, (me + 1) * R * s.expertWidest);
    this.gradOut = v.shardGradOut.subarray(me * R * c.outputs, (me + 1) * R * c.outputs);
    this.shardMix = s.gathers ? v.shardMix.subarray(me * R * c.outputs, (me + 1) * R * c.outputs) : v.mix;
    this.norm = v.gradNorms.subarray(me, me + 1);
    this.optimizer = spec.optimizer;
    this.owned = this.updateViews();
    this.seen = new Uint8Array(spec.owns.count);
  }

  private updateViews(): OptimizerViews {
    const { first, count } = this.spec.owns;
    return optimizerViews(this.v.expertParams, this.v.expertGrads, this.v.expertOpt, this.v.expertParams.length, first * this.P, (first + count) * this.P);
  }

  /** Views of `of` (length n·P) at index i, made at first use and kept in `cache`. */
  private layer(cache: (LayerViews | undefined)[], of: Float32Array, i: number): LayerViews {
    return (cache[i] ??= layerViews(this.shape, of.subarray(i * this.P, (i + 1) * this.P)));
  }

  private views(b: number): BlockViews {
    const v = this.v;
    const start = v.blockStart[b]!, rows = v.blockRows[b]!, expert = v.blockExpert[b]!;
    const hit = this.cache[b];
    if (hit && hit.start === start && hit.rows === rows && hit.expert === expert) return hit;
    const s = this.spec.layout.sizes, K = s.outputs, D = s.inputs, H = s.expertHidden;
    const gathers = s.gathers;
    const hidden = this.hiddenOffsets.map((off, l) => {
      const width = this.shape.sizes[l + 1]!;
      const at = start * H + rows * off;
      return v.entryHidden.subarray(at, at + rows * width);
    });
    const bv: BlockViews = {
      start,
      rows,
      expert,
      x: gathers ? v.entryX.subarray(start * D, (start + rows) * D) : v.batchX,
      pass: { shape: this.shape, params: this.layer(this.params, v.expertParams, expert), hidden, deltaA: this.deltaA, deltaB: this.deltaB },
      loss: {
        rows,
        K,
        out: v.entryOut.subarray(start * K, (start + rows) * K),
        target: gathers ? v.entryT.subarray(start * K, (start + rows) * K) : v.batchT,
        labels: gathers ? v.entryLabels.subarray(start, start + rows) : v.batchLabels,
        score: v.entryScore.subarray(start, start + rows),
        lse: v.entryLse.subarray(start, start + rows),
        weight: v.entryWeight.subarray(start, start + rows),
        mix: this.shardMix,
        dot: v.entryDot.subarray(start, start + rows),
        gradOut: this.gradOut,
      },
    };
    this.cache[b] = bv;
    return bv;
  }

  /**
   * FORWARD: every block assigned to this shard, from block `from`; where `until` (a
   * performance.now() time) passes, it stops between blocks and returns the next block
   * (the in-process runner then yields to the event loop and goes on), else returns −1.
   */
  forward(from = 0, until = Infinity): number {
    const v = this.v, blocks = Atomics.load(v.control, CTRL.BLOCKS), me = this.spec.shard;
    const gathers = this.spec.layout.sizes.gathers;
    for (let b = from; b < blocks; b++) {
      if (pastDeadline(b, from, until)) return b;
      if (v.blockWorker[b] !== me) continue;
      const bv = this.views(b);
      if (gathers) this.gather(bv);
      mlpForward(this.gemm, this.kernels, bv.pass, bv.x, bv.rows, bv.loss.out);
      this.ef.expertScores(this.kernels, bv.loss);
    }
    return -1;
  }

  /** Sparse routing: the block's inputs, and what its loss reads, from the batch. */
  private gather(bv: BlockViews): void {
    const v = this.v, s = this.spec.layout.sizes, kernels = this.kernels;
    const idx = v.entryRow.subarray(bv.start, bv.start + bv.rows);
    kernels.gatherRows(v.batchX, s.inputs, idx, bv.rows, bv.x);
    if (this.ef.readsTargets) kernels.gatherRows(v.batchT, s.outputs, idx, bv.rows, bv.loss.target);
    if (this.spec.config.task === 'classification') kernels.gatherRowsI32(v.batchLabels, idx, bv.rows, bv.loss.labels);
  }

  /** BACKWARD: ∂E/∂o from the main thread's weights, backpropagated into each block's slot; `from`, `until` and the result as {@link forward}'s. */
  backward(from = 0, until = Infinity): number {
    const v = this.v, blocks = Atomics.load(v.control, CTRL.BLOCKS), me = this.spec.shard;
    const gathers = this.spec.layout.sizes.gathers;
    for (let b = from; b < blocks; b++) {
      if (pastDeadline(b, from, until)) return b;
      if (v.blockWorker[b] !== me) continue;
      const bv = this.views(b);
      if (gathers && this.ef.mixesOutputs) {
        this.kernels.gatherRows(v.mix, this.spec.config.outputs, v.entryRow.subarray(bv.start, bv.start + bv.rows), bv.rows, this.shardMix);
      }
      this.ef.expertOutputGrad(this.kernels, bv.loss);
      const slot = v.blockSlot[b]!;
      bv.pass.grads = slot < 0 ? this.layer(this.ownGrads, v.expertGrads, bv.expert) : this.layer(this.slotGrads, v.blockGrads, slot);
      const bound = mlpBackward(this.gemm, this.kernels, bv.pass, bv.x, bv.rows, this.gradOut, this.norm);
      const g = slot < 0 ? v.expertGrads.subarray(bv.expert * this.P, (bv.expert + 1) * this.P) : v.blockGrads.subarray(slot * this.P, (slot + 1) * this.P);
      if (!committableWithin(bound, this.kernels, g, this.P, this.norm)) Atomics.add(v.control, CTRL.BAD_GRADS, 1);
    }
    return -1;
  }

  /**
   * UPDATE: each owned expert's gradient is the sum of its blocks in block order (its own
   * slot first; zero if no row reached it), then one optimiser step over the owned range.
   * One pass over the block list (linear in blocks + owned experts, whatever E is): a
   * block's partial gradient is added to its expert's as the pass meets it, which is
   * block order within each expert.
   */
  update(lr: number, t: number): void {
    const v = this.v, blocks = Atomics.load(v.control, CTRL.BLOCKS), P = this.P;
    const { first, count } = this.spec.owns;
    const seen = this.seen;
    seen.fill(0);
    for (let b = 0; b < blocks; b++) {
      const i = v.blockExpert[b]! - first;
      if (i < 0 || i >= count) continue;
      seen[i] = 1;
      const slot = v.blockSlot[b]!;
      if (slot >= 0) this.kernels.addInto(v.expertGrads.subarray((first + i) * P, (first + i + 1) * P), v.blockGrads.subarray(slot * P, (slot + 1) * P), P);
    }
    // Zeros for each run of experts no row reached (one call a run: at a million experts
    // and a sparse routing, a call per expert took a second).
    for (let i = 0; i < count; i++) {
      if (seen[i]) continue;
      let j = i + 1;
      while (j < count && !seen[j]) j++;
      this.kernels.fill(v.expertGrads.subarray((first + i) * P, (first + j) * P), (j - i) * P, 0);
      i = j;
    }
    optimizerStep(this.kernels, this.optimizer, this.owned, lr, t);
  }
}

/** Blocks between two looks at the clock (a look costs ~50 ns; a block at least ~1 µs). */
const CLOCK_EVERY = 64;

/** Whether a phase slice that started at block `from` should stop before block `b`. */
function pastDeadline(b: number, from: number, until: number): boolean {
  return until !== Infinity && b > from && (b - from) % CLOCK_EVERY === 0 && performance.now() > until;
}
