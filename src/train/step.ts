/**
 * One training step, main thread's side. The experts run behind an {@link ExpertPool}:
 * in-process (the reference) or sharded over worker threads; the main thread runs the
 * gate, combines the B×E scores into the loss, posteriors and per-row weights, and steps
 * the gate. Three phases (FORWARD, BACKWARD, UPDATE) so parameters change only in UPDATE.
 */
import type { Sgemm } from '../compute/provider.js';
import { MoeError } from '../errors.js';
import { combineScores, cooperativeGateGrad, cooperativeLoss, gateSoftmax, mixOutputs } from '../losses/gate-side.js';
import type { MixtureViews } from '../memory/layout.js';
import { gateShape, type MixtureConfig } from '../model/config.js';
import { MlpWorkspace, mlpBackward, mlpForward, type MlpShape } from '../model/mlp.js';
import { optimizerStep, type OptimizerConfig } from '../optim/optimizers.js';

/**
 * Where the experts run. `begin*` starts a phase (in-process: runs it), `finish*` waits
 * for it; between the two the main thread does its own overlapping work.
 */
export interface ExpertPool {
  /** Worker threads the experts run on (0 = in-process). */
  readonly workers: number;
  /** Start the experts' forward pass on the first `rows` of `batchRows` (outputs and scores) for 1-based `step`. */
  beginForward(rows: number, step: number): void;
  /** Wait until the forward pass has finished. */
  finishForward(): Promise<void> | void;
  /** Start the experts' backward pass (gradients from the main thread's per-row weights) on `rows` rows. */
  beginBackward(rows: number, step: number): void;
  /** Wait until the backward pass has finished. */
  finishBackward(): Promise<void> | void;
  /** Start the experts' optimiser step with learning rate `lr` as 1-based step `step`. */
  beginUpdate(lr: number, step: number): void;
  /** Wait until the update has finished. */
  finishUpdate(): Promise<void> | void;
}

/** The main thread's per-step state: the gate's scratch memory and the step counter. */
export class MixtureStep {
  private readonly shape: MlpShape;
  private readonly ws: MlpWorkspace;
  private readonly xg: Float32Array;
  private readonly dg: Float32Array;
  private readonly u: Float32Array;
  private readonly logG: Float32Array;
  private readonly g: Float32Array;
  private readonly gateGrad: Float32Array;

  constructor(
    private readonly gemm: Sgemm,
    private readonly config: MixtureConfig,
    private readonly optimizer: Required<OptimizerConfig>,
    private readonly v: MixtureViews,
    private readonly maxBatch: number,
    private readonly pool: ExpertPool,
  ) {
    this.shape = gateShape(config);
    this.ws = new MlpWorkspace(this.shape, maxBatch);
    const { inputs: D, outputs: K, experts: E } = config;
    this.xg = new Float32Array(maxBatch * D);
    this.dg = new Float32Array(maxBatch * K);
    this.u = new Float32Array(maxBatch * E);
    this.logG = new Float32Array(maxBatch * E);
    this.g = new Float32Array(maxBatch * E);
    this.gateGrad = new Float32Array(maxBatch * E);
  }

  /**
   * Train on the rows `batch` (indices into the dataset regions) with learning rate `lr`
   * as optimisation step `step` (1-based). Returns the batch's mean loss. Throws
   * MoeError('DIVERGED') before any parameter changes when the loss is not finite.
   */
  async run(batch: ArrayLike<number>, lr: number, step: number): Promise<number> {
    const rows = batch.length;
    const { inputs: D, outputs: K, experts: E, loss } = this.config;
    const v = this.v;
    for (let r = 0; r < rows; r++) v.batchRows[r] = batch[r]!;
    this.pool.beginForward(rows, step);

    // Gate forward overlaps the experts' forward.
    for (let r = 0; r < rows; r++) {
      const src = v.batchRows[r]!;
      this.xg.set(v.x.subarray(src * D, src * D + D), r * D);
    }
    mlpForward(this.gemm, this.shape, v.gateParams, this.xg, rows, this.u, this.ws);
    gateSoftmax(this.u, rows, E, this.logG, this.g);
    if (loss === 'cooperative') {
      for (let r = 0; r < rows; r++) {
        const src = v.batchRows[r]!;
        this.dg.set(v.t.subarray(src * K, src * K + K), r * K);
      }
    }
    await this.pool.finishForward();

    let value: number;
    if (loss === 'cooperative') {
      mixOutputs(this.g, v.outs, this.maxBatch * K, rows, E, K, v.ybar);
      value = cooperativeLoss(v.ybar, this.dg, this.g, rows, K, E, v.weights);
    } else {
      value = combineScores(loss, this.logG, this.g, v.scores, rows, E, v.weights, this.gateGrad);
    }
    if (!Number.isFinite(value)) {
      throw new MoeError(
        'DIVERGED',
        `loss is ${value} at step ${step}; parameters are left at step ${step - 1} (lower the learning rate, or check the data's scale)`,
      );
    }

    this.pool.beginBackward(rows, step);
    // The gate's backward overlaps the experts' (cooperative needs their dots first).
    if (loss !== 'cooperative') mlpBackward(this.gemm, this.shape, v.gateParams, this.xg, rows, this.gateGrad, v.gateGrads, this.ws);
    await this.pool.finishBackward();
    if (loss === 'cooperative') {
      cooperativeGateGrad(this.g, v.scores, rows, E, this.gateGrad);
      mlpBackward(this.gemm, this.shape, v.gateParams, this.xg, rows, this.gateGrad, v.gateGrads, this.ws);
    }

    this.pool.beginUpdate(lr, step);
    optimizerStep(this.optimizer, v.gateParams, v.gateGrads, v.gateOpt, v.gateParams.length, lr, step);
    await this.pool.finishUpdate();
    return value;
  }
}
