/**
 * A mixture of local experts: configuration, parameters, optimiser state, the
 * standardisation fitted on its training data, and the provider its math runs on.
 * Training runs in-process or with the experts sharded over worker threads (same math,
 * same numbers); predict/evaluate run on the calling thread.
 */
import { loadProvider } from './compute/load.js';
import type { BackendName, BackendRequest, ComputeProvider } from './compute/provider.js';
import { validateDataset, type Dataset } from './data/dataset.js';
import { standardize, unstandardize, type Standardizer } from './data/standardize.js';
import { DataError, OptionError } from './errors.js';
import { expertShape, gateShape, resolveMixtureConfig, type MixtureConfig, type MixtureOptions } from './model/config.js';
import { mixtureForward, mixtureLoss, type MixtureForward } from './model/inference.js';
import { mlpInit, mlpParamCount } from './model/mlp.js';
import { optimizerStateSize, resolveOptimizer, type OptimizerConfig, type OptimizerName } from './optim/optimizers.js';
import { Rng } from './rng.js';
import { runFit } from './train/fit.js';
import { loadModel, saveModel, type LoadOptions } from './io/model-file.js';
import type { FitOptions, FitResult } from './train/options.js';
import type { ParallelPool } from './parallel/pool.js';

/** @internal A fit in progress, as close() sees it. */
export interface FitRun {
  closed: boolean;
  pool?: ParallelPool;
}

/** Options of {@link Mixture.create}. */
export interface CreateOptions extends MixtureOptions {
  /** Optimiser name or full config (default adam, lr 0.01). */
  optimizer?: OptimizerName | (Partial<OptimizerConfig> & {
    /** Optimiser kind (default adam). */
    name?: OptimizerName;
  });
  /** Learning rate (overrides optimizer.lr). */
  lr?: number;
  /** Seed of initialisation, validation split and shuffles (default 1). */
  seed?: number;
  /** Compute provider; `auto` (default) takes the first of blas, tensorflow, wasm, cpu that loads. */
  backend?: BackendRequest;
  /** CBLAS library for `blas` (default: the system's OpenBLAS). */
  blasLibrary?: string;
  /** One-line warnings (a provider that fell back). Default console.warn. */
  onWarning?: (message: string) => void;
  /** Input column names (D), for messages and model files. */
  featureNames?: string[];
  /** Regression: target column names (K), for messages and model files. */
  targetNames?: string[];
  /** Classification: class names (K), indexed by label. */
  classNames?: string[];
}

/** Parameters and optimiser state, as views that may point into shared memory. */
export interface MixtureParams {
  /** Gate weights and biases, {@link mlpParamCount} of the gate's shape. */
  gateParams: Float32Array;
  /** All experts' parameters: E consecutive blocks of one expert's {@link mlpParamCount}. */
  expertParams: Float32Array;
  /** Gate optimiser state, {@link optimizerStateSize} floats per gate parameter (empty for sgd). */
  gateOpt: Float32Array;
  /** Experts' optimiser state, {@link optimizerStateSize} floats per expert parameter (empty for sgd). */
  expertOpt: Float32Array;
}

/** Training progress that a checkpoint restores. */
export interface TrainingState {
  /** Seed the mixture was created with (initialisation, split, shuffles). */
  seed: number;
  /** Optimisation steps taken. */
  step: number;
  /** Epochs completed. */
  epoch: number;
  /** Shuffle generator state at the start of the epoch in progress (or the next). */
  rng: number[];
  /**
   * Batches done in the epoch in progress: > 0 only in a checkpoint taken mid-epoch
   * (Ctrl-C, abort); fit then redraws that epoch's order and continues after them.
   */
  batch?: number;
  /** Batch size of the last fit (a mid-epoch resume must use the same). */
  batchSize?: number;
}

/** What {@link Mixture.predict} returns for n rows. */
export interface Prediction {
  /** Number of rows predicted. */
  n: number;
  /** Mixture output n×K in original units (regression) or class probabilities (classification). */
  output: Float32Array;
  /** Gate probabilities n×E. */
  gate: Float32Array;
  /** Expert outputs, E blocks of n×K (original units for regression; logits or outputs for classification). */
  experts: Float32Array;
  /** Classification: the predicted label per row. */
  labels?: Int32Array;
  /** The expert with the largest gate probability per row. */
  winner: Int32Array;
}

/** Metrics on a dataset. */
export interface Evaluation {
  /** Number of rows evaluated. */
  n: number;
  /** Mean loss under the model's error function (standardised units). */
  loss: number;
  /** Classification: fraction correct. */
  accuracy?: number;
  /** Regression: mean squared error in original units, averaged over outputs. */
  mse?: number;
  /** Mean gate probability of each expert over the rows. */
  gateShare: number[];
}

/**
 * A mixture of local experts: E experts and a softmax gate over D inputs and K outputs.
 * Create one with {@link Mixture.create} or {@link Mixture.load}; train it with
 * {@link Mixture.fit} (in-process, or with the experts in worker threads); use it with
 * {@link Mixture.predict} and {@link Mixture.evaluate}; keep it with {@link Mixture.save}.
 */
export class Mixture {
  /**
   * The provider this mixture's math runs on, chosen at creation or load. A parallel fit
   * whose workers cannot load it (tfjs-node in a second thread) moves to the next one.
   */
  provider: ComputeProvider;
  /** @internal where one-line warnings go. */
  warn: (message: string) => void = (msg) => console.warn(msg);
  /**
   * Parameters and optimiser state (views). During and after a fit they point into the
   * trainer's memory (shared with the workers in a parallel fit), so reading them never
   * needs a worker; treat them as read-only while a fit runs.
   */
  params: MixtureParams;
  /** Fitted on the first training set; undefined until then. */
  inputScaler?: Standardizer;
  /** Standardisation of the targets (regression; identity for classification), fitted with `inputScaler`. */
  targetScaler?: Standardizer;
  /** Input column names (D), if known. */
  featureNames?: string[];
  /** Regression: target column names (K), if known. */
  targetNames?: string[];
  /** Classification: class names (K) indexed by label, if known. */
  classNames?: string[];
  /** Optimisation steps, epochs and RNG state: what a checkpoint restores and fit continues from. */
  training: TrainingState;
  /** @internal the fit in progress, so that close() can stop it. */
  activeRun?: FitRun;

  private constructor(
    /** Task, widths D/K/E, gate and expert architectures, loss (fixed at creation). */
    readonly config: MixtureConfig,
    /** Optimiser and its hyper-parameters, defaults filled in. */
    readonly optimizer: Required<OptimizerConfig>,
    provider: ComputeProvider,
    params: MixtureParams,
    training: TrainingState,
  ) {
    this.provider = provider;
    this.params = params;
    this.training = training;
  }

  /** Create and initialise a mixture (seeded). */
  static async create(o: CreateOptions): Promise<Mixture> {
    const config = resolveMixtureConfig(o);
    const opt = typeof o.optimizer === 'string' ? { name: o.optimizer } : { ...(o.optimizer ?? {}) };
    const optimizer = resolveOptimizer({ ...opt, ...(o.lr !== undefined ? { lr: o.lr } : {}) });
    const seed = o.seed ?? 1;
    if (!Number.isInteger(seed)) throw new OptionError('seed', `must be an integer, got ${seed}`);
    const provider = await loadProvider(o.backend ?? 'auto', {
      ...(o.blasLibrary !== undefined ? { blasLibrary: o.blasLibrary } : {}),
      ...(o.onWarning ? { onWarning: o.onWarning } : {}),
    });
    const params = Mixture.allocate(config, optimizer);
    const rng = new Rng(seed);
    // Gate first, then experts in order: one seed, one network.
    mlpInit(gateShape(config), params.gateParams, rng);
    const P = mlpParamCount(expertShape(config));
    for (let i = 0; i < config.experts; i++) mlpInit(expertShape(config), params.expertParams.subarray(i * P, (i + 1) * P), rng);
    const m = new Mixture(config, optimizer, provider, params, { seed, step: 0, epoch: 0, rng: rng.state() });
    if (o.onWarning) m.warn = o.onWarning;
    if (o.featureNames) m.featureNames = o.featureNames;
    if (o.targetNames) m.targetNames = o.targetNames;
    if (o.classNames) m.classNames = o.classNames;
    return m;
  }

  /** @internal rebuild from stored parts (model files). */
  static fromParts(
    config: MixtureConfig,
    optimizer: Required<OptimizerConfig>,
    provider: ComputeProvider,
    params: MixtureParams,
    training: TrainingState,
  ): Mixture {
    return new Mixture(config, optimizer, provider, params, training);
  }

  /** @internal sizes of the parameter regions. */
  static allocate(config: MixtureConfig, optimizer: Required<OptimizerConfig>): MixtureParams {
    const S = optimizerStateSize(optimizer.name);
    const Pg = mlpParamCount(gateShape(config));
    const Pe = mlpParamCount(expertShape(config));
    return {
      gateParams: new Float32Array(Pg),
      expertParams: new Float32Array(config.experts * Pe),
      gateOpt: new Float32Array(Pg * S),
      expertOpt: new Float32Array(config.experts * Pe * S),
    };
  }

  /** The compute provider in use. */
  get backend(): BackendName {
    return this.provider.name;
  }

  /** Parameters of one expert (a view: it changes as training runs). */
  expertParameters(i: number): Float32Array {
    const P = mlpParamCount(expertShape(this.config));
    if (!(Number.isInteger(i) && i >= 0 && i < this.config.experts)) throw new OptionError('expert', `no expert ${i} (0..${this.config.experts - 1})`);
    return this.params.expertParams.subarray(i * P, (i + 1) * P);
  }

  /** The gate's parameters (a view). */
  gateParameters(): Float32Array {
    return this.params.gateParams;
  }

  /** Train on `data` (see {@link FitOptions}); resolves when training stops. */
  fit(data: Dataset, options: FitOptions = {}): Promise<FitResult> {
    return runFit(this, data, options);
  }

  private requireScalers(): Standardizer {
    if (!this.inputScaler) throw new OptionError('model', 'the mixture has not been trained yet (no standardisation fitted)');
    return this.inputScaler;
  }

  /** Standardise raw inputs (checked) and run the forward pass. */
  private forwardRaw(x: Float32Array | readonly (readonly number[])[]): MixtureForward {
    const D = this.config.inputs;
    let flat: Float32Array;
    if (x instanceof Float32Array) flat = x;
    else {
      flat = new Float32Array(x.length * D);
      x.forEach((row, r) => {
        if (row.length !== D) throw new DataError(`has ${row.length} inputs, the model expects ${D}`, { row: r + 1 }, 'DATA_SHAPE');
        flat.set(row, r * D);
      });
    }
    if (flat.length % D !== 0) throw new DataError(`${flat.length} values are not a whole number of rows of ${D} inputs`, {}, 'DATA_SHAPE');
    const n = flat.length / D;
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isFinite(flat[i]!)) throw new DataError(`input is ${flat[i]}`, { row: Math.floor(i / D) + 1, column: this.featureNames?.[i % D] ?? `#${(i % D) + 1}` });
    }
    const z = standardize(this.requireScalers(), flat, n);
    return mixtureForward(this.provider.sgemm, this.config, this.params.gateParams, this.params.expertParams, z, n);
  }

  /** Turn a forward pass into a prediction in original units (in place: `f` is consumed). */
  private toPrediction(f: MixtureForward): Prediction {
    const { experts: E, outputs: K } = this.config;
    const n = f.n;
    const winner = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      let best = 0;
      for (let i = 1; i < E; i++) if (f.gate[r * E + i]! > f.gate[r * E + best]!) best = i;
      winner[r] = best;
    }
    const p: Prediction = { n, output: f.mixture, gate: f.gate, experts: f.experts, winner };
    if (this.config.task === 'regression') {
      unstandardize(this.targetScaler!, p.output, n);
      unstandardize(this.targetScaler!, p.experts, n * E);
    } else {
      const labels = new Int32Array(n);
      for (let r = 0; r < n; r++) {
        let best = 0;
        for (let k = 1; k < K; k++) if (f.mixture[r * K + k]! > f.mixture[r * K + best]!) best = k;
        labels[r] = best;
      }
      p.labels = labels;
    }
    return p;
  }

  /** Predict for n rows of raw inputs (n×D row-major, or an array of rows). */
  predict(x: Float32Array | readonly (readonly number[])[]): Prediction {
    return this.toPrediction(this.forwardRaw(x));
  }

  /** Loss, accuracy (classification) or MSE (regression), and each expert's gate share on `data`. */
  evaluate(data: Dataset): Evaluation {
    validateDataset(data, { inputs: this.config.inputs, outputs: this.config.outputs, task: this.config.task });
    const f = this.forwardRaw(data.x);
    const { outputs: K, experts: E } = this.config;
    const n = data.n;
    // The loss reads the standardised outputs, so it comes before they are converted.
    const loss = mixtureLoss(this.config, f, targetMatrix(this, data), data.labels ?? new Int32Array(n));
    const p = this.toPrediction(f);
    const gateShare = new Array<number>(E).fill(0);
    for (let r = 0; r < n; r++) for (let i = 0; i < E; i++) gateShare[i]! += p.gate[r * E + i]! / n;
    const ev: Evaluation = { n, loss, gateShare };
    if (this.config.task === 'classification') {
      let ok = 0;
      for (let r = 0; r < n; r++) if (p.labels![r] === data.labels![r]) ok++;
      ev.accuracy = ok / n;
    } else {
      let se = 0;
      for (let j = 0; j < n * K; j++) se += (p.output[j]! - data.y![j]!) ** 2;
      ev.mse = se / (n * K);
    }
    return ev;
  }

  /**
   * Write this mixture (parameters, optimiser and training state, standardisation) to a
   * versioned model file, atomically: the old file stays whole until the new one is.
   */
  save(path: string): Promise<void> {
    return saveModel(this, path);
  }

  /** Load a model file written by {@link Mixture.save}; `backend` chooses the provider as in create. */
  static load(path: string, opts: LoadOptions = {}): Promise<Mixture> {
    return loadModel(path, opts);
  }

  /**
   * Stop a fit in progress, if any: it rejects with MoeError('ABORTED') after the current
   * step, with every expert and the gate at that step, and its workers are stopped.
   * Idempotent.
   */
  async close(): Promise<void> {
    const run = this.activeRun;
    this.activeRun = undefined;
    if (!run) return;
    run.closed = true;
    await run.pool?.close();
  }

  /** `await using m = await Mixture.create(…)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The model-space target matrix of a dataset: standardised targets (regression) or
 * one-hot rows (classification), n×K.
 */
export function targetMatrix(m: Mixture, data: Dataset): Float32Array {
  const { outputs: K } = m.config;
  if (m.config.task === 'regression') return standardize(m.targetScaler!, data.y!, data.n);
  const t = new Float32Array(data.n * K);
  for (let r = 0; r < data.n; r++) t[r * K + data.labels![r]!] = 1;
  return t;
}
