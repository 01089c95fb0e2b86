/**
 * local-experts: adaptive mixtures of local experts (Jacobs, Jordan, Nowlan & Hinton
 * 1991), trained in-process or with the experts sharded over worker threads on one shared
 * WebAssembly memory. Everything public is exported here; nothing else is API.
 *
 * ```ts
 * import { Mixture, loadVowels } from 'local-experts';
 * const { train, test } = await loadVowels({ seed: 1 });
 * await using moe = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 4 });
 * await moe.fit(train, { epochs: 100, workers: 2 });
 * console.log(moe.evaluate(test).accuracy);
 * ```
 */
export { Mixture } from './mixture.js';
export type { CreateOptions, Evaluation, LoadOptions, Prediction, PredictOptions } from './mixture.js';
export type { MixtureParams, ModelState, TrainingState } from './model/state.js';
export type { EpochInfo, FitOptions, FitResult, RoutingMetrics, StopReason } from './train/options.js';
export type { RoutingConfig, RoutingKind, RoutingOptions } from './model/routing.js';

// Metrics with scikit-learn's names and definitions (what Mixture.evaluate reports).
export {
  r2Score,
  meanSquaredError,
  rootMeanSquaredError,
  meanAbsoluteError,
  meanBaselineScores,
  regressionScores,
  accuracyScore,
  logLoss,
  confusionMatrix,
  precisionScore,
  recallScore,
  LOG_LOSS_EPS,
  LOG_LOSS_SUM_TOLERANCE,
} from './metrics/index.js';
export type { Average, ConfusionMatrixOptions, MultiOutput, PrecisionRecallOptions, R2Options, RegressionMetricOptions, RegressionScores, Values } from './metrics/index.js';

export { LOSSES } from './model/config.js';
export type { LossName, MixtureConfig, MixtureOptions, NetSpec, Task } from './model/config.js';
export { ACTIVATIONS } from './model/mlp.js';
export type { Activation } from './model/mlp.js';
export { OPTIMIZERS, stepDecay, cosineDecay } from './optim/config.js';
export type { LrSchedule, OptimizerConfig, OptimizerName } from './optim/config.js';

export { BACKENDS } from './compute/provider.js';
export { DENORMAL_MODES, FLUSH_PLATFORMS } from './compute/float-mode.js';
export type { DenormalMode } from './compute/float-mode.js';
export type { BackendName, BackendRequest, ComputeProvider, Sgemm } from './compute/provider.js';

export { datasetFromArrays, splitRows, subset, validateDataset } from './data/dataset.js';
// A seeded generator (sfc32) with a saveable state, for reproducible synthetic data.
export { Rng } from './rng.js';
export type { Dataset } from './data/dataset.js';
export type { Standardizer } from './data/standardize.js';
export { loadCsv } from './data/csv.js';
export type { CsvOptions } from './data/csv.js';
export { loadVowels, PAPER_VOWELS } from './data/vowels.js';
export type { VowelOptions, VowelSplit } from './data/vowels.js';

export { MODEL_FORMAT, MODEL_FORMAT_VERSION } from './io/model-file.js';
export type { ModelDocument } from './io/model-file.js';

// The benchmarks are not API: they live in the top-level bench/ folder and run through
// `moe bench scaling|peers|sparse|kernels`.

export { MoeError, OptionError, DataError, ModelFormatError, BackendError, ShardCrashError, ShardStallError } from './errors.js';
export type { MoeErrorCode, DataLocation, StepPhase } from './errors.js';
