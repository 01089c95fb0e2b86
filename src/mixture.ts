/**
 * A mixture of local experts, the public face of the library: it holds a model's state
 * (configuration, parameters, standardisation, training state: what the model file holds)
 * and the compute provider its math runs on, and starts the sessions that use them —
 * training sessions (in-process, or with the experts sharded over worker threads; same
 * math, same numbers) and inference on the calling thread.
 */
import { effectiveMode, FloatMode } from './compute/float-mode.js';
import { loadProvider } from './compute/load.js';
import type { BackendName, BackendRequest, ComputeProvider } from './compute/provider.js';
import { validateDataset, type Dataset } from './data/dataset.js';
import { standardize, unstandardize } from './data/standardize.js';
import { checkOutputs } from './engine/check-outputs.js';
import { InferenceEngine, lazy, type MixtureForward } from './engine/inference.js';
import { DataError, MoeError, OptionError } from './errors.js';
import { writeFileAtomic } from './io/atomic.js';
import { checkCreatable, checkCreatedState, checkLoadable } from './io/loadable.js';
import { writeModelFile } from './io/model-file.js';
import { readModel, weightsOnlyNotice } from './io/read-model.js';
import { stateToSafetensors } from './io/safetensors-state.js';
import { createKernels, kernelSetFromEnv } from './kernels/index.js';
import { expertShape, resolveMixtureConfig, type MixtureConfig, type MixtureOptions } from './model/config.js';
import { mlpParamCount } from './model/mlp.js';
import { initialState, type MixtureParams, type ModelState, type TrainingState } from './model/state.js';
import { resolveOptimizer, type OptimizerConfig, type OptimizerName } from './optim/config.js';
import { accuracyScore, confusionMatrix, logLoss, precisionScore, recallScore } from './metrics/classification.js';
import { meanBaselineScores, regressionScores, type RegressionScores } from './metrics/regression.js';
import { weightsSumToOne } from './model/routing.js';
import { trainingData } from './train/data.js';
import { FitRun, type FitHost } from './train/fit.js';
import { guardedFitOptions, type FitOptions, type FitResult } from './train/options.js';

/** Options of {@link Mixture.create}. */
export interface CreateOptions extends MixtureOptions {
  /** Optimiser name or full config (default adam, lr 0.01). */
  optimizer?: OptimizerName | (Partial<OptimizerConfig> & {
    /** Optimiser kind (default adam). */
    name?: OptimizerName;
  });
  /** Learning rate (overrides optimizer.lr). */
  lr?: number;
  /** Seed of initialisation, validation split and shuffles: an integer in [0, 2³² − 1] (default 1). */
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

/** How a model file is loaded: the provider is chosen as in {@link Mixture.create}. */
export interface LoadOptions {
  /** Compute provider; `auto` (default) takes the first that loads. */
  backend?: BackendRequest;
  /** CBLAS library for `blas` (default: the system's OpenBLAS). */
  blasLibrary?: string;
  /** One-line warnings (a provider that fell back). Default console.warn. */
  onWarning?: (message: string) => void;
}

/** What {@link Mixture.predict} returns for n rows. */
export interface Prediction {
  /** Number of rows predicted. */
  n: number;
  /** Mixture output n×K in original units (regression) or class probabilities (classification, categorical loss). */
  output: Float32Array;
  /**
   * The gate's combination weights n×E: its softmax probabilities under dense routing; under
   * sparse routing each row's chosen experts' weights (0 for the others).
   */
  gate: Float32Array;
  /**
   * Whether row r was routed to expert i, n×E (1 or 0): every expert under dense routing;
   * each row's chosen experts under sparse routing (at predict each row is routed alone:
   * topk:K its K best, switch its best, expert-choice:C its ⌈C⌉ best).
   */
  routed: Uint8Array;
  /**
   * Expert outputs, E blocks of n×K (original units for regression; logits or outputs for
   * classification). Only the routed experts are computed: where {@link routed} is 0 the
   * K values are 0 (not an output: read {@link routed}), unless predict was asked for
   * `allExperts`, which computes them all. Under dense routing every expert is routed.
   * Made when first read: a caller that never reads it never pays for its n·E·K floats.
   */
  experts: Float32Array;
  /** Classification: the predicted label per row. */
  labels?: Int32Array;
  /** The expert with the largest combination weight per row. */
  winner: Int32Array;
}

/** Options of {@link Mixture.predict}. */
export interface PredictOptions {
  /**
   * Compute every expert on every row for {@link Prediction.experts} (default false: only
   * the routed ones, 0 elsewhere). The mixture's output and the gate are the same either
   * way; under dense routing every expert is routed anyway.
   */
  allExperts?: boolean;
}

/** Metrics on a dataset. */
export interface Evaluation {
  /** Number of rows evaluated. */
  n: number;
  /** Mean loss under the model's error function (standardised units). */
  loss: number;
  /** Classification: fraction correct, in [0, 1] (scikit-learn's `accuracy_score`). */
  accuracy?: number;
  /** Regression: mean squared error in original units, averaged over outputs (`mean_squared_error`). */
  mse?: number;
  /**
   * Regression: the coefficient of determination R² (`r2_score`), averaged over outputs:
   * 1 perfect, 0 no better than predicting the data's own mean, negative worse (no lower
   * bound). A constant target scores 1 if predicted exactly, else 0; NaN for one row.
   */
  r2?: number;
  /** Regression: root mean squared error in original units (`root_mean_squared_error`: the mean over outputs of each output's RMSE). */
  rmse?: number;
  /** Regression: mean absolute error in original units, averaged over outputs (`mean_absolute_error`). */
  mae?: number;
  /**
   * Regression: the same scores for the baseline that predicts the training targets' mean
   * for every row (scikit-learn's `DummyRegressor(strategy='mean')`); `mean` is that mean
   * per output, the model's target standardisation mean ({@link Mixture.targetScaler}).
   * A model whose scores do not beat these has learned nothing from the inputs.
   */
  baseline?: RegressionScores & {
    /** The training mean predicted, one value per output, original units. */
    mean: number[];
  };
  /**
   * Classification with the categorical loss, where the output is a probability vector
   * (dense routing, or topk with K ≥ 2, whose weights sum to 1): the log-loss of the
   * mixture's class probabilities in nats per row (`log_loss`, probabilities clipped to
   * [2⁻⁵², 1 − 2⁻⁵²]). Undefined for the other losses and for switch, topk:1 and
   * expert-choice routing (their outputs sum to less than 1).
   */
  logLoss?: number;
  /**
   * Classification: the K×K confusion matrix (`confusion_matrix` with labels 0..K−1):
   * entry [i][j] counts the rows of class i predicted as class j (rows true, columns
   * predicted; {@link Mixture.classNames} names them).
   */
  confusionMatrix?: number[][];
  /**
   * Classification: precision per class, K values in [0, 1] (`precision_score` with
   * `average=None`): of the rows predicted as the class, the fraction that are. A class
   * never predicted scores 0 (scikit-learn's `zero_division` default).
   */
  precision?: number[];
  /**
   * Classification: recall per class, K values in [0, 1] (`recall_score` with
   * `average=None`): of the rows of the class, the fraction predicted as it. A class absent
   * from the data scores 0 (scikit-learn's `zero_division` default).
   */
  recall?: number[];
  /**
   * Each expert's mean combination weight over the rows, in [0, 1]: the mean of
   * {@link Prediction.gate}. Dense routing: the mean gate probability (the shares sum to
   * 1). Sparse routing: 0 on the rows an expert did not get; the shares sum to 1 under
   * topk with K ≥ 2 (weights renormalised over the chosen), to less under switch, topk:1
   * and expert-choice (each chosen expert weighted by its probability over all E).
   */
  gateShare: number[];
}

/** Whether a model's output is a vector of class probabilities: categorical loss, weights summing to 1. */
export function outputIsProbability(config: MixtureConfig): boolean {
  return config.task === 'classification' && config.loss === 'categorical' && weightsSumToOne(config.routing);
}

function checkSeed(seed: unknown): number {
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new OptionError('seed', `must be an integer in [0, ${0xffffffff}], got ${String(seed)}`);
  }
  return seed;
}

/**
 * A mixture of local experts: E experts and a softmax gate over D inputs and K outputs.
 * Create one with {@link Mixture.create} or {@link Mixture.load}; train it with
 * {@link Mixture.fit} (in-process, or with the experts in worker threads); use it with
 * {@link Mixture.predict} and {@link Mixture.evaluate}; keep it with {@link Mixture.save}.
 */
export class Mixture implements FitHost {
  /**
   * The provider this mixture's math runs on, chosen at creation or load. A parallel fit
   * whose workers cannot load it (tfjs-node in a second thread) moves to the next one.
   */
  provider: ComputeProvider;
  readonly #state: ModelState;
  #warn: (message: string) => void;
  #run: FitRun | undefined;
  /** The inference engine for the parameters as they are between fits; dropped when they change. */
  #engine: InferenceEngine | undefined;
  /** A weights-only file's path until the first fit, which restarts its optimiser (and says so). */
  #freshOptimizer: string | undefined;

  private constructor(state: ModelState, provider: ComputeProvider, warn?: (message: string) => void) {
    this.#state = state;
    this.provider = provider;
    this.#warn = warn ?? ((m) => console.warn(m));
  }

  /** Create and initialise a mixture (seeded). Options are checked before any provider loads. */
  static async create(o: CreateOptions): Promise<Mixture> {
    const config = resolveMixtureConfig(o);
    const opt = typeof o.optimizer === 'string' ? { name: o.optimizer } : { ...(o.optimizer ?? {}) };
    const optimizer = resolveOptimizer({ ...opt, ...(o.lr !== undefined ? { lr: o.lr } : {}) });
    const seed = checkSeed(o.seed ?? 1);
    // A configuration the loader would refuse is refused now, with the loader's message.
    checkCreatable(config, optimizer);
    const state = initialState(config, optimizer, seed);
    const names = (v: string[] | undefined, n: number, option: string): void => {
      if (v !== undefined && (!Array.isArray(v) || v.length !== n || v.some((s) => typeof s !== 'string'))) throw new OptionError(option, `expected ${n} names, got ${JSON.stringify(v)?.slice(0, 80)}`);
    };
    names(o.featureNames, config.inputs, 'featureNames');
    names(o.targetNames, config.task === 'regression' ? config.outputs : 1, 'targetNames');
    names(o.classNames, config.outputs, 'classNames');
    if (o.featureNames) state.featureNames = [...o.featureNames];
    if (o.targetNames) state.targetNames = [...o.targetNames];
    if (o.classNames) state.classNames = [...o.classNames];
    checkCreatedState(state);
    const provider = await loadProvider(o.backend ?? 'auto', {
      ...(o.blasLibrary !== undefined ? { blasLibrary: o.blasLibrary } : {}),
      ...(o.onWarning ? { onWarning: o.onWarning } : {}),
    });
    return new Mixture(state, provider, o.onWarning);
  }

  /**
   * Load a model file: the JSON model file {@link Mixture.save} writes (any format version
   * up to the current one), or a safetensors file ({@link Mixture.toSafetensors}, or one
   * written back by PyTorch), recognised by its header. The file is checked in full before
   * a provider loads; `backend` chooses the provider as in create. A safetensors file with
   * weights only (no optimiser tensors) warm-starts: the optimiser restarts from step 0,
   * and `onWarning` is told so by the first fit (not before: nothing restarts unless it trains).
   */
  static async load(path: string, opts: LoadOptions = {}): Promise<Mixture> {
    const read = await readModel(path);
    return Mixture.fromState(read.state, opts, read.weightsOnly ? path : undefined);
  }

  /**
   * @internal Wrap a checked state (model files, other formats) with a provider.
   * `weightsOnly`: the path of a weights-only file, whose first fit says that it restarts
   * the optimiser (nothing is said where nothing trains).
   */
  static async fromState(state: ModelState, opts: LoadOptions = {}, weightsOnly?: string): Promise<Mixture> {
    const provider = await loadProvider(opts.backend ?? 'auto', {
      ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}),
      ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
    });
    const m = new Mixture(state, provider, opts.onWarning);
    if (weightsOnly !== undefined && state.optimizer.name !== 'sgd') m.#freshOptimizer = weightsOnly;
    return m;
  }

  /** The model's data: configuration, parameters, scalers, names, training state. Treat as read-only. */
  get state(): ModelState {
    return this.#state;
  }
  /** Task, widths D/K/E, gate and expert architectures, loss (fixed at creation). */
  get config(): MixtureConfig {
    return this.#state.config;
  }
  /** Optimiser and its hyper-parameters, defaults filled in. */
  get optimizer(): Required<OptimizerConfig> {
    return this.#state.optimizer;
  }
  /** Optimisation steps, epochs and RNG state: what a checkpoint restores and fit continues from. */
  get training(): Readonly<TrainingState> {
    return this.#state.training;
  }
  /** Input standardisation, fitted on the first training set; undefined until then. */
  get inputScaler(): ModelState['inputScaler'] {
    return this.#state.inputScaler;
  }
  /** Target standardisation (regression; identity for classification). */
  get targetScaler(): ModelState['targetScaler'] {
    return this.#state.targetScaler;
  }
  /** Input column names (D), if known. */
  get featureNames(): string[] | undefined {
    return this.#state.featureNames;
  }
  /** Regression: target column names (K), if known. */
  get targetNames(): string[] | undefined {
    return this.#state.targetNames;
  }
  /** Classification: class names (K) indexed by label, if known. */
  get classNames(): string[] | undefined {
    return this.#state.classNames;
  }

  /**
   * Parameters and optimiser state. Between fits: the model's own memory. During a fit:
   * the session's live memory (shared with the workers), which changes with every step —
   * read it from `onEpoch` (a step boundary) or take a consistent copy with {@link save}.
   */
  get params(): MixtureParams {
    return this.#run ? this.#run.params : this.#state.params;
  }

  /** The compute provider in use. */
  get backend(): BackendName {
    return this.provider.name;
  }

  /** @internal one-line warnings. */
  warn(message: string): void {
    this.#warn(message);
  }

  /** Parameters of one expert (a view; during a fit it changes as training runs). */
  expertParameters(i: number): Float32Array {
    const P = mlpParamCount(expertShape(this.config));
    if (!(Number.isInteger(i) && i >= 0 && i < this.config.experts)) throw new OptionError('expert', `no expert ${i} (0..${this.config.experts - 1})`);
    return this.params.expertParams.subarray(i * P, (i + 1) * P);
  }

  /** The gate's parameters (a view). */
  gateParameters(): Float32Array {
    return this.params.gateParams;
  }

  /**
   * Train on `data` (see {@link FitOptions}); resolves when training stops. One fit at a
   * time: a second call while one runs rejects at once with MoeError('FIT_IN_PROGRESS').
   */
  fit(data: Dataset, options: FitOptions = {}): Promise<FitResult> {
    if (this.#run) return Promise.reject(new MoeError('FIT_IN_PROGRESS', 'fit() was called while another fit of this mixture is running; await it (or close() it) first'));
    try {
      // Counters a model file cannot hold are refused, and schedule values checked, before use.
      options = guardedFitOptions(options, this.#state.training, data);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#freshOptimizer !== undefined) {
      this.#warn(weightsOnlyNotice(this.#freshOptimizer, this.#state));
      this.#freshOptimizer = undefined;
    }
    const run = new FitRun(this);
    this.#run = run;
    this.#engine = undefined;
    return run.train(data, options).finally(() => {
      if (this.#run === run) this.#run = undefined;
      this.#engine = undefined;
    });
  }

  private requireScalers(): void {
    if (!this.#state.inputScaler) throw new OptionError('model', 'the mixture has not been trained yet (no standardisation fitted)');
  }

  /** The inference engine on the parameters as they are now (a fresh one during a fit). */
  private engine(): InferenceEngine {
    if (this.#engine && !this.#run) return this.#engine;
    const p = this.params, set = kernelSetFromEnv();
    const engine = new InferenceEngine(this.provider.sgemm, (m) => createKernels(m, set), this.config, p.gateParams, p.expertParams, p.routerBias);
    if (!this.#run) this.#engine = engine;
    return engine;
  }

  /**
   * The float mode of predict and evaluate: the one the model was trained in (flush for
   * files from before it was recorded), IEEE where flushing is not supported.
   */
  private floatMode(): FloatMode {
    return new FloatMode(effectiveMode(this.#state.training.denormals ?? 'flush', (m) => this.warn(m)));
  }

  /** Raw inputs as a checked n×D row-major array. */
  private inputMatrix(x: Float32Array | readonly (readonly number[])[]): Float32Array {
    const D = this.config.inputs;
    const column = (j: number): string => this.featureNames?.[j] ?? `#${j + 1}`;
    if (x instanceof Float32Array) {
      if (x.length % D !== 0) throw new DataError(`${x.length} values are not a whole number of rows of ${D} inputs`, {}, 'DATA_SHAPE');
      for (let i = 0; i < x.length; i++) {
        if (!Number.isFinite(x[i]!)) throw new DataError(`input is ${x[i]}`, { row: Math.floor(i / D) + 1, column: column(i % D) });
      }
      return x;
    }
    if (!Array.isArray(x)) throw new DataError('inputs must be a Float32Array or an array of rows', {}, 'DATA_SHAPE');
    const flat = new Float32Array(x.length * D);
    // A plain loop, not forEach: forEach skips the holes of a sparse array, which would
    // leave those rows at 0.
    for (let r = 0; r < x.length; r++) {
      const row: unknown = x[r];
      if (!Array.isArray(row)) throw new DataError('is not an array of numbers', { row: r + 1 }, 'DATA_SHAPE');
      if (row.length !== D) throw new DataError(`has ${row.length} inputs, the model expects ${D}`, { row: r + 1 }, 'DATA_SHAPE');
      for (let j = 0; j < D; j++) {
        const v: unknown = row[j];
        // Float32Array.set would read null as 0 and a string as a number: refuse both.
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new DataError(`input is ${v === null ? 'null' : typeof v === 'number' ? v : JSON.stringify(v)?.slice(0, 40)}`, { row: r + 1, column: column(j) });
        flat[r * D + j] = v;
      }
    }
    return flat;
  }

  /** Turn a forward pass into a prediction in original units (in place: `f` is consumed). */
  private toPrediction(f: MixtureForward, allExperts = false): Prediction {
    const { experts: E, outputs: K } = this.config;
    const n = f.n;
    const winner = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      let best = 0;
      for (let i = 1; i < E; i++) if (f.gate[r * E + i]! > f.gate[r * E + best]!) best = i;
      winner[r] = best;
    }
    const p = { n, output: f.mixture, gate: f.gate, routed: f.routed, winner } as Prediction;
    const scaler = this.config.task === 'regression' ? this.targetScaler! : undefined;
    // The experts' outputs in original units, made when first read (most of a sparse
    // prediction's are not computed): only the computed ones are unstandardised, the rest stay 0.
    lazy(p, 'experts', () => {
      const ex = f.experts;
      if (!scaler) return ex;
      const { mean, std } = scaler;
      for (let i = 0; i < E; i++) {
        for (let r = 0; r < n; r++) {
          if (!allExperts && !f.routed[r * E + i]) continue;
          const o = (i * n + r) * K;
          for (let c = 0; c < K; c++) ex[o + c] = ex[o + c]! * std[c]! + mean[c]!;
        }
      }
      return ex;
    });
    if (scaler) {
      unstandardize(scaler, p.output, n);
    } else {
      const labels = new Int32Array(n);
      for (let r = 0; r < n; r++) {
        let best = 0;
        for (let c = 1; c < K; c++) if (f.mixture[r * K + c]! > f.mixture[r * K + best]!) best = c;
        labels[r] = best;
      }
      p.labels = labels;
    }
    return p;
  }

  /**
   * Predict for n rows of raw inputs (n×D row-major, or an array of rows). Each row is
   * routed as in training (the same routing plan, without noise; expert-choice sends each
   * row to its ⌈C⌉ best experts) and only its routed experts are computed; `allExperts`
   * computes the others too, for {@link Prediction.experts}. Called during a fit, it reads the live parameters, which a parallel fit's workers may be updating
   * mid-step; predict from `onEpoch` (a step boundary) for a consistent answer. A row
   * whose prediction is not finite (an input the model overflows float32 on) is a
   * DataError naming the row and input column; non-finite parameters a MoeError DIVERGED.
   */
  predict(x: Float32Array | readonly (readonly number[])[], options: PredictOptions = {}): Prediction {
    this.requireScalers();
    const allExperts = options.allExperts ?? false;
    if (typeof allExperts !== 'boolean') throw new OptionError('allExperts', `must be true or false, got ${String(allExperts)}`);
    const flat = this.inputMatrix(x);
    const n = flat.length / this.config.inputs;
    // Standardised outside the float mode: a subnormal float32 input keeps its value.
    const xs = standardize(this.inputScaler!, flat, n);
    const p = this.toPrediction(this.floatMode().run(() => this.engine().forward(xs, n, undefined, allExperts)), allExperts);
    this.checkOutputs(p.output, flat);
    return p;
  }

  /** No NaN as an answer: a row whose output is not finite is a DataError (see src/engine/check-outputs.ts). */
  private checkOutputs(output: Float32Array, x: Float32Array): void {
    const p = this.params;
    checkOutputs(output, {
      outputs: this.config.outputs,
      x,
      inputs: this.config.inputs,
      inputScaler: this.inputScaler!,
      featureNames: this.featureNames,
      params: { gateParams: p.gateParams, expertParams: p.expertParams, routerBias: p.routerBias },
      probabilities: this.config.task === 'classification',
    });
  }

  /**
   * Metrics on labelled `data`, as scikit-learn's `sklearn.metrics` define them: the loss
   * and each expert's mean combination weight; for classification accuracy, log-loss
   * (categorical loss), the confusion matrix and per-class precision and recall; for
   * regression MSE, RMSE, MAE and R², and the same for the training-mean baseline. During a fit it reads the live parameters, as
   * {@link predict} does.
   */
  evaluate(data: Dataset): Evaluation {
    validateDataset(data, { inputs: this.config.inputs, outputs: this.config.outputs, task: this.config.task });
    this.requireScalers();
    const { outputs: K, experts: E } = this.config;
    const n = data.n;
    // Model space, as a fit's validation set: standardised inputs, model-space targets.
    const d = trainingData(this.#state, data);
    const f = this.floatMode().run(() => this.engine().forward(d.x, n, { t: d.t, labels: d.labels }));
    const p = this.toPrediction(f);
    this.checkOutputs(p.output, data.x);
    const gateShare = new Array<number>(E).fill(0);
    for (let r = 0; r < n; r++) for (let i = 0; i < E; i++) gateShare[i]! += p.gate[r * E + i]! / n;
    const ev: Evaluation = { n, loss: f.loss!, gateShare };
    // A diverged model's outputs are not finite: its scores are NaN, not a metric's complaint about yPred.
    const finite = p.output.every(Number.isFinite);
    if (this.config.task === 'classification') {
      const classes = Array.from({ length: K }, (_, c) => c);
      ev.accuracy = accuracyScore(data.labels!, p.labels!);
      if (outputIsProbability(this.config)) ev.logLoss = finite ? logLoss(data.labels!, p.output) : NaN;
      ev.confusionMatrix = confusionMatrix(data.labels!, p.labels!, { labels: classes });
      ev.precision = precisionScore(data.labels!, p.labels!, { labels: classes });
      ev.recall = recallScore(data.labels!, p.labels!, { labels: classes });
    } else {
      const { r2, mse, rmse, mae } = finite ? regressionScores(data.y!, p.output, K) : { r2: NaN, mse: NaN, rmse: NaN, mae: NaN };
      Object.assign(ev, { mse, r2, rmse, mae });
      const mean = [...this.targetScaler!.mean];
      ev.baseline = { ...meanBaselineScores(data.y!, mean), mean };
    }
    return ev;
  }

  /**
   * The default score on labelled `data`, as scikit-learn's estimators' `score(X, y)`:
   * R² for regression ({@link Evaluation.r2}: 1 perfect, 0 no better than the data's
   * mean, negative worse), accuracy for classification ({@link Evaluation.accuracy}, in
   * [0, 1]). Higher is better in both.
   */
  score(data: Dataset): number {
    const ev = this.evaluate(data);
    return this.config.task === 'regression' ? ev.r2! : ev.accuracy!;
  }

  /** The model as it is now; during a fit, a consistent copy taken at the next step boundary. */
  private snapshot(): Promise<ModelState> {
    return this.#run ? this.#run.snapshot() : Promise.resolve(this.#state);
  }

  /**
   * Write this mixture (parameters, optimiser and training state, standardisation) to a
   * versioned model file, atomically: the old file stays whole until the new one is.
   * During a fit, the file holds a consistent copy taken at the next step boundary,
   * whatever the worker count. A path ending in `.safetensors` gets the safetensors file
   * {@link toSafetensors} makes (the format for models over the JSON file's 512 MiB);
   * any other path gets the JSON model file. {@link Mixture.load} reads both. Only what
   * loads is written: a state the loader would refuse is a ModelFormatError, one with a
   * NaN or ±Infinity (a diverged fit) a MoeError DIVERGED, and nothing is written.
   */
  async save(path: string): Promise<void> {
    const state = await this.snapshot();
    if (/\.safetensors$/i.test(path)) await writeFileAtomic(path, stateToSafetensors(state, path), { option: 'path' });
    else await writeModelFile(path, state, this.backend, kernelSetFromEnv());
  }

  /**
   * The model as an ONNX file (bytes): input `x` float32 [N, D] in the data's units;
   * outputs `output` [N, K], `gate` [N, E] and `experts` [E, N, K], as {@link predict}
   * returns them. Opset 17, IR version 8, default-domain operators only. Refuses an
   * untrained model and one whose weights exceed one protobuf (2 GiB).
   */
  async toOnnx(): Promise<Uint8Array> {
    const state = await this.snapshot();
    checkLoadable(state, 'onnx export');
    // Loaded on first use: the ONNX schema (protobuf) is a third of the package's load time.
    const { mixtureToOnnx } = await import('./io/onnx/export.js');
    return mixtureToOnnx(state);
  }

  /**
   * The model as a safetensors file (bytes) that PyTorch's `LocalExperts` module
   * (examples/pytorch/local_experts.py) loads as its state dict: `nn.Linear` weights
   * (out × in) and biases, the optimiser state under pinned names, and the configuration,
   * standardisation and training position in `__metadata__`. {@link Mixture.load} reads it
   * back; training resumes from it bit for bit.
   */
  async toSafetensors(): Promise<Uint8Array> {
    return stateToSafetensors(await this.snapshot());
  }

  /**
   * Stop a fit in progress, if any: it rejects with MoeError('ABORTED') after the current
   * step, with every expert and the gate at that step, and its workers are stopped.
   * Idempotent.
   */
  async close(): Promise<void> {
    const run = this.#run;
    if (!run) return;
    run.closed = true;
    await run.session?.close();
  }

  /** `await using m = await Mixture.create(…)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
