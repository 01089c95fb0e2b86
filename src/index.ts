/**
 * local-experts: adaptive mixtures of local experts (Jacobs, Jordan, Nowlan & Hinton
 * 1991), trained in-process or with the experts sharded over worker threads on
 * SharedArrayBuffer. Everything public is exported here.
 *
 * ```ts
 * import { Mixture, loadVowels } from 'local-experts';
 * const { train, test } = await loadVowels({ seed: 1 });
 * await using moe = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 4 });
 * await moe.fit(train, { epochs: 100, workers: 2 });
 * console.log(moe.evaluate(test).accuracy);
 * ```
 */
export { Mixture, targetMatrix } from './mixture.js';
export type { CreateOptions, Evaluation, MixtureParams, Prediction, TrainingState } from './mixture.js';

export type { EpochInfo, FaultInjection, FitOptions, FitResult, StopReason } from './train/options.js';
export { chooseWorkers } from './train/fit.js';

export { resolveMixtureConfig, parseNetSpec, resolveLoss, formatNetSpec, expertShape, gateShape } from './model/config.js';
export type { MixtureConfig, MixtureOptions, NetSpec, Task } from './model/config.js';
export { mlpForward, mlpBackward, mlpInit, mlpParamCount, MlpWorkspace, LayerViews, ACTIVATIONS } from './model/mlp.js';
export type { Activation, MlpShape } from './model/mlp.js';
export { mixtureForward, mixtureLoss } from './model/inference.js';
export type { MixtureForward } from './model/inference.js';

export { LOSSES, expertScores, expertOutputGrad, cooperativeDots } from './losses/losses.js';
export type { LossName } from './losses/losses.js';
export { gateSoftmax, combineScores, mixOutputs, cooperativeLoss, cooperativeGateGrad } from './losses/gate-side.js';

export { OPTIMIZERS, optimizerStep, optimizerStateSize, resolveOptimizer, stepDecay, cosineDecay } from './optim/optimizers.js';
export type { OptimizerConfig, OptimizerName, LrSchedule } from './optim/optimizers.js';

export { BACKENDS } from './compute/provider.js';
export type { BackendName, BackendRequest, ComputeProvider, ProviderOptions, Sgemm } from './compute/provider.js';
export { loadProvider, loadExactProvider, parseBackend } from './compute/load.js';

export { validateDataset, subset, datasetFromArrays, splitRows } from './data/dataset.js';
export type { Dataset } from './data/dataset.js';
export { fitStandardizer, standardize, unstandardize } from './data/standardize.js';
export type { Standardizer } from './data/standardize.js';
export { loadCsv } from './data/csv.js';
export type { CsvOptions } from './data/csv.js';
export { loadVowels, PAPER_VOWELS } from './data/vowels.js';
export type { VowelOptions, VowelSplit } from './data/vowels.js';

export { saveModel, loadModel, toModelDocument, fromModelDocument, MODEL_FORMAT, MODEL_FORMAT_VERSION } from './io/model-file.js';
export type { ModelDocument, LoadOptions } from './io/model-file.js';
export { writeFileAtomic } from './io/atomic.js';

export { ParallelPool, shardExperts, checkWorkerCount } from './parallel/pool.js';
export type { ParallelPoolOptions } from './parallel/pool.js';
export type { ExpertPool } from './train/step.js';
export type { Kind as RegionKind, MixtureLayout, MixtureSizes, MixtureViews } from './memory/layout.js';
export { MixtureStep } from './train/step.js';
export { InProcessPool } from './train/inprocess-pool.js';

export { runScalingBenchmark, SCALING_SIZES, SIZE_SPECS } from './bench/scaling.js';
export type { ScalingOptions, ScalingReport, ScalingRow, ScalingSize, SizeSpec, PhaseMicros } from './bench/scaling.js';
export { formatScalingMarkdown } from './bench/report.js';
export type { CsvParseReport, BenchHeader } from './bench/report.js';
export { runCsvParseBenchmark, writeRandomCsv } from './bench/csv.js';
// The peer benchmark (`moe bench peers`) is not exported: its declarations reference
// tfjs-core's, which do not type-check in a consumer without @types/long.
export type { CsvParseOptions } from './bench/csv.js';
export { Rng } from './rng.js';

export {
  MoeError,
  OptionError,
  DataError,
  ModelFormatError,
  BackendError,
  ShardCrashError,
} from './errors.js';
export type { MoeErrorCode, DataLocation } from './errors.js';
