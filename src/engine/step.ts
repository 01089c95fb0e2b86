/**
 * One training step, main thread's side. The experts run behind an {@link ShardRunner}; the
 * main thread gathers the batch, runs the gate and the routing, combines the experts'
 * per-entry scores into the loss and the weights of their output gradients, and steps the
 * gate. Three phases (FORWARD, BACKWARD, UPDATE) so parameters change only in UPDATE. The
 * step branches on no loss name: the error function's object says what it needs. The main
 * thread's own loops over rows × experts run in slices (src/engine/slices.ts): a step over
 * a million experts pauses between them, and a stop asked for meanwhile ends it before UPDATE.
 */
import { committable } from './finite.js';
import { CTRL } from '../memory/layout.js';
import { FloatMode } from '../compute/float-mode.js';
import type { Sgemm } from '../compute/provider.js';
import { MoeError } from '../errors.js';
import type { Kernels } from '../kernels/types.js';
import { errorFunction, type ErrorFunction, type MainLossViews } from '../losses/index.js';
import { NO_PAUSES, perRange, StepSlicer, type Slices } from './slices.js';
import type { MixtureViews } from '../memory/layout.js';
import { gateShape, type MixtureConfig } from '../model/config.js';
import { layerViews } from '../model/mlp.js';
import type { OptimizerConfig } from '../optim/config.js';
import { optimizerStep, optimizerViews, type OptimizerViews } from '../optim/step.js';
import { mlpBackward, mlpForward, type MlpPass } from '../nn/mlp.js';
import { PHASE_SLICE_MS, type ShardRunner } from './runner.js';
import type { Router } from './routing.js';

/** The dataset a session trains on: standardised, in the session's own (unshared) memory. */
export interface TrainingData {
  /** Standardised inputs, n×D. */
  x: Float32Array;
  /** Model-space targets, n×K (standardised, or one-hot rows). */
  t: Float32Array;
  /** Labels (classification), n. */
  labels: Int32Array;
}

/** Row widths the gather needs. */
interface Widths {
  D: number;
  K: number;
}

/** Parameters per range of a sliced optimiser step (a multiple of 4: the kernels' SIMD lanes fall as in one call). */
const OPTIMIZER_RANGE = 1 << 20;
/** The gate forward's ranges are this many times the usual range's work (each is one sgemm call). */
const GATE_RANGE_SCALE = 16;

/** Rows of `width` floats below which a plain loop copies faster than a view and a memcpy. */
const NARROW_ROW = 16;

/** dst row r ← src row batch[r], r < rows. */
function copyRows(src: Float32Array, dst: Float32Array, width: number, batch: ArrayLike<number>, rows: number): void {
  if (width < NARROW_ROW) {
    for (let r = 0; r < rows; r++) {
      const from = batch[r]! * width, to = r * width;
      for (let c = 0; c < width; c++) dst[to + c] = src[from + c]!;
    }
    return;
  }
  for (let r = 0; r < rows; r++) dst.set(src.subarray(batch[r]! * width, (batch[r]! + 1) * width), r * width);
}

/** The main thread's side of every step of a session. */
export class MixtureStep {
  private readonly ef: ErrorFunction;
  private readonly gate: MlpPass;
  private readonly main: MainLossViews;
  private gateUpdate: OptimizerViews;
  private noiseUpdate: OptimizerViews;
  private readonly w: Widths;
  /** The main thread's float of the finite-step check (after the shards'). */
  private readonly mainNorm: Float32Array;
  /** Slices of the main thread's long loops; the fit sets its `interrupted`. */
  readonly slices = new StepSlicer();

  constructor(
    private readonly gemm: Sgemm,
    private readonly kernels: Kernels,
    private readonly config: MixtureConfig,
    private optimizer: Required<OptimizerConfig>,
    private readonly v: MixtureViews,
    private readonly router: Router,
    private readonly runner: ShardRunner,
    private readonly data: TrainingData,
    /** The session's float mode: set for the step's compute, put back around every await. */
    readonly fm: FloatMode = new FloatMode('ieee'),
  ) {
    this.ef = errorFunction(config.loss);
    const shape = gateShape(config);
    const hidden: Float32Array[] = [];
    this.w = { D: config.inputs, K: config.outputs };
    this.gate = { shape, params: layerViews(shape, v.gateParams), grads: layerViews(shape, v.gateGrads), hidden, deltaA: v.gateDeltaA, deltaB: v.gateDeltaB };
    this.main = {
      rows: 0,
      K: config.outputs,
      rowStart: v.rowStart,
      rowEntries: v.rowEntries,
      logWeight: v.entryLogWeight,
      gateWeight: v.entryGateWeight,
      score: v.entryScore,
      dot: v.entryDot,
      target: v.batchT,
      mix: v.mix,
      rowScratch: v.rowScratch,
      weight: v.entryWeight,
      dLogWeight: v.entryDLogWeight,
      normalized: router.normalized,
    };
    this.mainNorm = v.gradNorms.subarray(v.gradNorms.length - 1);
    this.gateUpdate = optimizerViews(v.gateParams, v.gateGrads, v.gateOpt, v.gateParams.length, 0, v.gateParams.length);
    this.noiseUpdate = optimizerViews(v.noiseParams, v.noiseGrads, v.noiseOpt, v.noiseParams.length, 0, v.noiseParams.length);
    this.gateHiddenFor(0);
    // A row's gate forward: per layer its outputs, each a dot of nin products (32 to a
    // unit: sgemm runs them ~32× faster than a plain loop runs floats), and its softmax's
    // 4 passes over E. Ranges 16× the usual work: each range is an sgemm call, and fewer,
    // larger calls keep BLAS efficient (a batch of the paper's sizes stays one range).
    // Each call reads every weight once: a range has at least as much row work as that
    // read, and at least 2 rows (never a one-row call, which a BLAS may hand to gemv and
    // its other order of sums).
    let rowCost = 4 * config.experts;
    for (let l = 0; l + 1 < shape.sizes.length; l++) rowCost += shape.sizes[l + 1]! * (1 + shape.sizes[l]! / 32);
    this.gateRangeRows = Math.max(2, perRange(rowCost / GATE_RANGE_SCALE), Math.ceil(v.gateParams.length / rowCost));
  }

  /** The fewest rows of a range of the gate's forward pass (see the constructor); a batch of fewer than twice as many runs it in one call. */
  readonly gateRangeRows: number;

  private hiddenRows = -1;
  /** Views of the gate's hidden activations for `rows` rows (layer l at rows·offset_l). */
  private gateHiddenFor(rows: number): void {
    if (rows === this.hiddenRows) return;
    this.hiddenRows = rows;
    const s = this.gate.shape.sizes;
    this.gate.hidden.length = 0;
    let off = 0;
    for (let l = 1; l + 1 < s.length; l++) {
      this.gate.hidden.push(this.v.gateHidden.subarray(rows * off, rows * (off + s[l]!)));
      off += s[l]!;
    }
  }

  /**
   * Gather the batch's rows from the dataset into the session's memory (bits copied
   * unchanged). The dataset may live outside the kernels' memory, so this is JS: a view
   * and a memcpy per row for wide rows, a plain loop for narrow ones (the paper's 2
   * inputs), where the view would cost more than the copy.
   */
  private gather(batch: ArrayLike<number>, rows: number): void {
    const { D, K } = this.w, v = this.v, d = this.data;
    copyRows(d.x, v.batchX, D, batch, rows);
    copyRows(d.t, v.batchT, K, batch, rows);
    if (this.config.task === 'classification') for (let r = 0; r < rows; r++) v.batchLabels[r] = d.labels[batch[r]!]!;
  }

  /**
   * Gate forward: logits, log-softmax and softmax of the batch's rows. A gate too large to
   * run at once (a first step at 200,000 experts held the main thread 0.2 s in it) runs in
   * ranges of rows, each range's network and softmax together: every row's products and
   * sums are its own, so a range computes its rows as the whole batch does (the chunked
   * predict relies on the same), and the ranges follow from the shapes alone.
   */
  private gateForward(rows: number): Slices {
    const v = this.v, E = this.config.experts, k = this.kernels;
    this.gateHiddenFor(rows);
    const per = this.gateRangeRows;
    if (rows < 2 * per) {
      mlpForward(this.gemm, k, this.gate, v.batchX, rows, v.gateLogits);
      k.logSoftmaxRows(v.gateLogits, rows, E, v.gateLogProb, v.gateProb);
      return NO_PAUSES;
    }
    // ⌊rows / per⌋ ranges of as even a size as can be: each of per to 2·per − 1 rows.
    const D = this.config.inputs, sizes = this.gate.shape.sizes, ranges = Math.floor(rows / per);
    return this.slices.ranges(ranges, 1, (range) => {
      const from = Math.floor((range * rows) / ranges), until = Math.floor(((range + 1) * rows) / ranges);
      const n = until - from, logits = v.gateLogits.subarray(from * E);
      const part: MlpPass = { ...this.gate, hidden: this.gate.hidden.map((h, l) => h.subarray(from * sizes[l + 1]!)) };
      mlpForward(this.gemm, k, part, v.batchX.subarray(from * D), n, logits);
      k.logSoftmaxRows(logits, n, E, v.gateLogProb.subarray(from * E), v.gateProb.subarray(from * E));
    });
  }

  /**
   * ȳ = Σ_j ĝ_j o_j per row, summed in expert order over each row's entries (the CSR).
   * When every expert has every row (dense), expert i's entries are the batch rows in
   * order, and one kernel call per expert does the same float32 products and sums.
   */
  private *mixOutputs(rows: number): Slices {
    const v = this.v, K = this.config.outputs, E = this.config.experts;
    this.kernels.fill(v.mix, rows * K, 0);
    if (v.expertStart[E] === rows * E) {
      // Experts in ranges (each range adds its experts in order, as one loop would).
      yield* this.slices.ranges(E, perRange(64 + rows * K), (from, until) => {
        for (let i = from; i < until; i++) {
          const a = v.expertStart[i]!;
          this.kernels.mixAccumulate(v.mix, v.entryOut.subarray(a * K), v.entryGateWeight.subarray(a), 1, 0, rows, K);
        }
      });
      return;
    }
    // A few entries of K values per row: a plain loop (the same float32 products and
    // sums as the kernel's) costs less than a kernel call and three views per entry.
    yield* this.slices.ranges(rows, perRange((K * v.expertStart[E]!) / Math.max(1, rows)), (from, until) => mixRows(v, K, from, until));
  }

  /** The error function's main side over the batch's rows, in ranges; the batch's mean loss. */
  private *combine(rows: number): Generator<Promise<void>, number, void> {
    const ef = this.ef, main = this.main;
    let total = 0;
    yield* this.slices.ranges(rows, this.combineRows(rows), (from, until) => (total = ef.combine(main, from, until, total)));
    return total * (1 / rows);
  }

  /** Rows per range of the error function's main side. */
  private combineRows(rows: number): number {
    return perRange((8 * this.v.rowStart[rows]!) / Math.max(1, rows));
  }

  /**
   * One optimiser step on `u` (the gate's or the noise's), in ranges of parameters for a
   * large one: each element's update is on its own, so ranges compute what one call does.
   */
  private optimize(u: OptimizerViews, lr: number, step: number): Slices {
    const n = u.params.length;
    if (n <= OPTIMIZER_RANGE) {
      optimizerStep(this.kernels, this.optimizer, u, lr, step);
      return NO_PAUSES;
    }
    return this.slices.ranges(Math.ceil(n / OPTIMIZER_RANGE), 1, (from) => {
      const a = from * OPTIMIZER_RANGE, b = Math.min(n, a + OPTIMIZER_RANGE);
      const part: OptimizerViews = {
        params: u.params.subarray(a, b),
        grads: u.grads.subarray(a, b),
        slot0: u.slot0.length > 0 ? u.slot0.subarray(a, b) : u.slot0,
        slot1: u.slot1.length > 0 ? u.slot1.subarray(a, b) : u.slot1,
      };
      optimizerStep(this.kernels, this.optimizer, part, lr, step);
    });
  }

  /**
   * Train on the dataset rows `batch` with learning rate `lr` as optimisation step `step`
   * (1-based). Returns the batch's mean loss: at once where the shard runner runs in
   * process (no await, so nothing else runs in between and the float mode can stay set
   * across steps), else as a promise. Throws (or rejects with) MoeError('DIVERGED') before
   * any parameter changes when the loss is not finite.
   */
  run(batch: ArrayLike<number>, lr: number, step: number): number | Promise<number> {
    const fm = this.fm;
    fm.enter();
    let async = false;
    this.slices.step = step;
    this.slices.abortable = true;
    this.slices.restart();
    try {
      const phases = this.phases(batch, lr, step);
      for (let r = phases.next(); ; r = phases.next()) {
        if (r.done) return r.value;
        if (r.value) {
          async = true;
          return this.drive(phases, r.value);
        }
      }
    } finally {
      if (!async) fm.leave();
    }
  }

  /**
   * The rest of a step whose runner runs on threads: each wait outside the float mode (the
   * event loop may run the user's callbacks and timers meanwhile, which must see the mode
   * the user has), each phase of the main thread's work inside it.
   */
  private async drive(phases: Generator<Promise<void> | void, number, void>, first: Promise<void>): Promise<number> {
    const fm = this.fm;
    try {
      let wait: Promise<void> | void = first;
      for (;;) {
        if (wait) {
          const depth = fm.suspend();
          try {
            await wait;
          } finally {
            fm.resume(depth);
          }
          this.slices.restart();
        }
        const r = phases.next();
        if (r.done) return r.value;
        wait = r.value;
      }
    } finally {
      fm.leave();
    }
  }

  /**
   * One step's work in order; yields what each phase of the runner gives to wait for, and
   * the pauses of its own long loops (before UPDATE, a stop asked for ends the step there).
   */
  private *phases(batch: ArrayLike<number>, lr: number, step: number): Generator<Promise<void> | void, number, void> {
    const rows = batch.length;
    const ef = this.ef, router = this.router, runner = this.runner, slices = this.slices;
    this.gather(batch, rows);
    // The experts' FORWARD reads the plan's entries and blocks, not its weights. Which
    // experts compute a row depends on the gate, so the gate runs first and then the plan;
    // where the rule sends every row to every expert (dense) the plan needs no gate, and
    // FORWARD starts before the gate's forward pass and overlaps it (with workers, the
    // gate's work then hides the shards' wake-up).
    const planned = router.planAhead(rows);
    if (planned) runner.beginForward(rows, step);
    yield* this.gateForward(rows);
    yield* planned ? router.weighSlices(rows, slices) : router.routeSlices(rows, slices);
    if (!planned) runner.beginForward(rows, step);
    const forward = runner.finishForward();
    if (forward) yield* this.wait(forward);

    this.main.rows = rows;
    if (ef.mixesOutputs) yield* this.mixOutputs(rows);
    const loss = rows <= this.combineRows(rows) ? ef.combine(this.main, 0, rows, 0) * (1 / rows) : yield* this.combine(rows);
    const value = loss + (router.balanced ? yield* router.auxLoss(rows, slices) : 0);
    if (!Number.isFinite(value)) {
      throw new MoeError('DIVERGED', `loss is ${value} at step ${step}; parameters are left at step ${step - 1} (lower the learning rate, or check the data's scale)`);
    }

    Atomics.store(this.v.control, CTRL.BAD_GRADS, 0);
    runner.beginBackward(rows, step);
    // The gate's backward overlaps the experts' (cooperative needs their dots first).
    // A stop during it waits for the experts' BACKWARD to end (wait), then ends the step.
    let stop: unknown;
    if (!ef.gateGradAfterBackward) {
      try {
        yield* this.gateBackward(rows);
      } catch (err) {
        stop = err;
      }
    }
    const backward = runner.finishBackward();
    if (backward) yield* this.wait(backward);
    if (stop !== undefined) throw stop;
    if (ef.gateGradAfterBackward) {
      yield* slices.ranges(rows, perRange((4 * this.v.rowStart[rows]!) / Math.max(1, rows)), (from, until) => ef.gateGrad!(this.main, from, until));
      yield* this.gateBackward(rows);
    }

    this.checkCommittable(step);
    // From here the step commits: its remaining loops may still pause, but a stop waits for its end.
    slices.abortable = false;
    runner.beginUpdate(lr, step);
    yield* this.optimize(this.gateUpdate, lr, step);
    yield* this.optimize(this.noiseUpdate, lr, step);
    yield runner.finishUpdate();
    yield* router.afterStepSlices(rows, slices);
    return value;
  }

  /**
   * Wait for a runner's phase (FORWARD or BACKWARD); after a wait that let the event loop
   * run, a stop asked for meanwhile ends the step (a long step: a step of a few
   * milliseconds goes on to its end, and the fit stops before the next).
   */
  private *wait(w: Promise<void>): Generator<Promise<void>, void, void> {
    const t0 = performance.now();
    yield w;
    if (performance.now() - t0 > PHASE_SLICE_MS) this.slices.stopIfAsked();
  }

  /** Commit only finite steps: refuse the UPDATE when any gradient failed its check (engine/finite.ts). */
  private checkCommittable(step: number): void {
    const v = this.v, bad = Atomics.load(v.control, CTRL.BAD_GRADS);
    const what =
      bad > 0 ? `the gradient of ${bad} expert block${bad > 1 ? 's' : ''}`
      : !committable(this.kernels, v.gateGrads, v.gateGrads.length, this.mainNorm) ? "the gate's gradient"
      : !committable(this.kernels, v.noiseGrads, v.noiseGrads.length, this.mainNorm) ? "the gate noise's gradient"
      : undefined;
    if (what === undefined) return;
    throw new MoeError('DIVERGED', `${what} is not finite (or its norm is over 1e15) at step ${step}; parameters and optimiser state are left at step ${step - 1} (lower the learning rate or the loss weights, or check the data's scale)`);
  }

  /** The router's backward (in ranges), then the gate network's. */
  private gateBackward(rows: number): Slices {
    const routed = this.router.backwardSlices(rows, this.slices);
    if (routed !== NO_PAUSES) return this.gateBackwardAfter(routed, rows);
    mlpBackward(this.gemm, this.kernels, this.gate, this.v.batchX, rows, this.v.gateLogitGrad);
    return NO_PAUSES;
  }

  private *gateBackwardAfter(routed: Slices, rows: number): Slices {
    yield* routed;
    mlpBackward(this.gemm, this.kernels, this.gate, this.v.batchX, rows, this.v.gateLogitGrad);
  }
}

/**
 * ȳ of rows [from, until) from each row's entries (the CSR), in entry order. A function of
 * its own, its arrays in locals: inside the step's range closure the same loop read them
 * from the closure's context on every access, and ran 1.3× slower.
 */
function mixRows(v: Pick<MixtureViews, 'mix' | 'entryOut' | 'entryGateWeight' | 'rowStart' | 'rowEntries'>, K: number, from: number, until: number): void {
  const mix = v.mix, out = v.entryOut, w = v.entryGateWeight, rowStart = v.rowStart, rowEntries = v.rowEntries;
  for (let q = from; q < until; q++) {
    const y = q * K, end = rowStart[q + 1]!;
    for (let j = rowStart[q]!; j < end; j++) {
      const e = rowEntries[j]!, g = w[e]!, o = e * K;
      for (let i = 0; i < K; i++) mix[y + i] = Math.fround(mix[y + i]! + Math.fround(g * out[o + i]!));
    }
  }
}

