/**
 * The expert side of a training step for a contiguous group of experts: what a shard
 * worker runs, and what the in-process trainer runs for all experts at once. It reads the
 * batch's row indices, the dataset and the main thread's per-row weights from the mapped
 * regions and writes outputs, scores, gradients and parameters back to them. Each expert
 * is computed on its own (no cross-expert batching), so an expert's numbers do not depend
 * on which group it is in: that is what makes parallel and in-process runs bit-identical.
 */
import type { Sgemm } from '../compute/provider.js';
import { cooperativeDots, expertOutputGrad, expertScores } from '../losses/losses.js';
import type { MixtureViews } from '../memory/layout.js';
import { optimizerStep, type OptimizerConfig } from '../optim/optimizers.js';
import { expertShape, type MixtureConfig } from './config.js';
import { MlpWorkspace, mlpBackward, mlpForward, mlpParamCount, type MlpShape } from './mlp.js';

export interface ExpertGroupSpec {
  config: MixtureConfig;
  optimizer: Required<OptimizerConfig>;
  /** First expert index and number of experts in this group. */
  first: number;
  count: number;
  maxBatch: number;
}

export class ExpertGroup {
  private readonly shape: MlpShape;
  private readonly P: number;
  private readonly xb: Float32Array;
  private readonly db: Float32Array;
  private readonly lb: Int32Array;
  private readonly gradOut: Float32Array;
  private readonly ws: MlpWorkspace[];

  constructor(
    private readonly gemm: Sgemm,
    readonly spec: ExpertGroupSpec,
    private readonly v: MixtureViews,
  ) {
    const c = spec.config;
    this.shape = expertShape(c);
    this.P = mlpParamCount(this.shape);
    this.xb = new Float32Array(spec.maxBatch * c.inputs);
    this.db = new Float32Array(spec.maxBatch * c.outputs);
    this.lb = new Int32Array(spec.maxBatch);
    this.gradOut = new Float32Array(spec.maxBatch * c.outputs);
    // One workspace per expert: backward needs that expert's own forward activations.
    this.ws = Array.from({ length: spec.count }, () => new MlpWorkspace(this.shape, spec.maxBatch));
  }

  private params(i: number): Float32Array {
    return this.v.expertParams.subarray(i * this.P, (i + 1) * this.P);
  }

  private out(i: number): Float32Array {
    const stride = this.spec.maxBatch * this.spec.config.outputs;
    return this.v.outs.subarray(i * stride, (i + 1) * stride);
  }

  /** Gather the batch's inputs, targets and labels from the dataset regions. */
  private gather(rows: number): void {
    const { inputs: D, outputs: K } = this.spec.config;
    const { x, t, labels, batchRows } = this.v;
    for (let r = 0; r < rows; r++) {
      const src = batchRows[r]!;
      this.xb.set(x.subarray(src * D, src * D + D), r * D);
      this.db.set(t.subarray(src * K, src * K + K), r * K);
      this.lb[r] = labels[src]!;
    }
  }

  /** FORWARD: o_i = f_i(x) into outs, and the per-row scores (e_i or log P_i(y|x)). */
  forward(rows: number): void {
    this.gather(rows);
    const { config: c, first, count } = this.spec;
    for (let j = 0; j < count; j++) {
      const i = first + j;
      const o = this.out(i);
      mlpForward(this.gemm, this.shape, this.params(i), this.xb, rows, o, this.ws[j]!);
      expertScores(c.loss, o, this.db, this.lb, rows, c.outputs, this.v.scores, c.experts, i);
    }
  }

  /**
   * BACKWARD: ∂E/∂o_i from the main thread's per-row weights (and ȳ for cooperative),
   * backpropagated into expertGrads; parameters are not touched. Cooperative also writes
   * the per-row dots (d − ȳ)·(o_i − ȳ) of the gate gradient into scores.
   */
  backward(rows: number): void {
    const { config: c, first, count } = this.spec;
    const K = c.outputs;
    for (let j = 0; j < count; j++) {
      const i = first + j;
      const o = this.out(i);
      expertOutputGrad(c.loss, o, this.db, this.lb, this.v.ybar, this.v.weights, rows, K, c.experts, i, this.gradOut);
      if (c.loss === 'cooperative') cooperativeDots(o, this.db, this.v.ybar, rows, K, this.v.scores, c.experts, i);
      const grads = this.v.expertGrads.subarray(i * this.P, (i + 1) * this.P);
      mlpBackward(this.gemm, this.shape, this.params(i), this.xb, rows, this.gradOut, grads, this.ws[j]!);
    }
  }

  /** UPDATE: one optimiser step on this group's experts. */
  update(lr: number, t: number): void {
    const { first, count, optimizer } = this.spec;
    const S = this.v.expertOpt.length / Math.max(1, this.v.expertParams.length);
    const a = first * this.P, b = (first + count) * this.P;
    optimizerStep(
      optimizer,
      this.v.expertParams.subarray(a, b),
      this.v.expertGrads.subarray(a, b),
      this.v.expertOpt.subarray(a * S, b * S),
      b - a,
      lr,
      t,
    );
  }
}
