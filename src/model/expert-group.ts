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
import { optimizerStateSize, optimizerStep, type OptimizerConfig } from '../optim/optimizers.js';
import { expertShape, type MixtureConfig } from './config.js';
import { MlpWorkspace, mlpBackward, mlpForward, mlpParamCount, type MlpShape } from './mlp.js';

export interface ExpertGroupSpec {
  config: MixtureConfig;
  optimizer: Required<OptimizerConfig>;
  /** First expert index and number of experts in this group. */
  first: number;
  count: number;
  /** Largest batch, in rows (the stride of each expert's block of `outs`). */
  maxBatch: number;
}

/** One expert's views of the shared regions, made once: the hot loop allocates nothing. */
interface ExpertViews {
  index: number;
  params: Float32Array;
  grads: Float32Array;
  out: Float32Array;
  ws: MlpWorkspace;
  /** Categorical: each row's logsumexp of the logits, from FORWARD for BACKWARD. */
  lse: Float64Array | undefined;
}

export class ExpertGroup {
  private readonly shape: MlpShape;
  private readonly xb: Float32Array;
  private readonly db: Float32Array;
  private readonly lb: Int32Array;
  private readonly gradOut: Float32Array;
  private readonly experts: ExpertViews[];
  private readonly update_: { params: Float32Array; grads: Float32Array; state: Float32Array };

  constructor(
    private readonly gemm: Sgemm,
    readonly spec: ExpertGroupSpec,
    private readonly v: MixtureViews,
  ) {
    const c = spec.config;
    this.shape = expertShape(c);
    const P = mlpParamCount(this.shape);
    const B = spec.maxBatch, K = c.outputs;
    this.xb = new Float32Array(B * c.inputs);
    this.db = new Float32Array(B * K);
    this.lb = new Int32Array(B);
    this.gradOut = new Float32Array(B * K);
    // One workspace per expert: backward needs that expert's own forward activations.
    this.experts = Array.from({ length: spec.count }, (_, j) => {
      const i = spec.first + j;
      return {
        index: i,
        params: v.expertParams.subarray(i * P, (i + 1) * P),
        grads: v.expertGrads.subarray(i * P, (i + 1) * P),
        out: v.outs.subarray(i * B * K, (i + 1) * B * K),
        ws: new MlpWorkspace(this.shape, B),
        lse: c.loss === 'categorical' ? new Float64Array(B) : undefined,
      };
    });
    const S = optimizerStateSize(spec.optimizer.name);
    const a = spec.first * P, b = (spec.first + spec.count) * P;
    this.update_ = { params: v.expertParams.subarray(a, b), grads: v.expertGrads.subarray(a, b), state: v.expertOpt.subarray(a * S, b * S) };
  }

  /** Gather the batch's inputs, and the targets or labels its loss reads, from the dataset. */
  private gather(rows: number): void {
    const { inputs: D, outputs: K, loss, task } = this.spec.config;
    const { x, t, labels, batchRows } = this.v;
    const targets = loss !== 'categorical';
    const classes = task === 'classification';
    for (let r = 0; r < rows; r++) {
      const src = batchRows[r]!;
      this.xb.set(x.subarray(src * D, src * D + D), r * D);
      if (targets) this.db.set(t.subarray(src * K, src * K + K), r * K);
      if (classes) this.lb[r] = labels[src]!;
    }
  }

  /** FORWARD: o_i = f_i(x) into outs, and the per-row scores (e_i or log P_i(y|x)). */
  forward(rows: number): void {
    this.gather(rows);
    const c = this.spec.config;
    for (const e of this.experts) {
      mlpForward(this.gemm, this.shape, e.params, this.xb, rows, e.out, e.ws);
      expertScores(c.loss, e.out, this.db, this.lb, rows, c.outputs, this.v.scores, c.experts, e.index, e.lse);
    }
  }

  /**
   * BACKWARD: ∂E/∂o_i from the main thread's per-row weights (and ȳ for cooperative),
   * backpropagated into expertGrads; parameters are not touched. Cooperative also writes
   * the per-row dots (d − ȳ)·(o_i − ȳ) of the gate gradient into scores.
   */
  backward(rows: number): void {
    const c = this.spec.config;
    const K = c.outputs;
    for (const e of this.experts) {
      expertOutputGrad(c.loss, e.out, this.db, this.lb, this.v.ybar, this.v.weights, rows, K, c.experts, e.index, this.gradOut, e.lse);
      if (c.loss === 'cooperative') cooperativeDots(e.out, this.db, this.v.ybar, rows, K, this.v.scores, c.experts, e.index);
      mlpBackward(this.gemm, this.shape, e.params, this.xb, rows, this.gradOut, e.grads, e.ws);
    }
  }

  /** UPDATE: one optimiser step on this group's experts (one contiguous range). */
  update(lr: number, t: number): void {
    const u = this.update_;
    optimizerStep(this.spec.optimizer, u.params, u.grads, u.state, u.params.length, lr, t);
  }
}
