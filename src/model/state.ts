/**
 * A mixture's state: everything a model file holds and nothing that runs. The training
 * session and the inference engine use it; it imports nothing from train, parallel, io
 * or bench. Parameters live in memory of the model's own (plain ArrayBuffers), never in a
 * session's shared memory: a session copies them in when it starts and back when it ends.
 */
import type { DenormalMode } from '../compute/float-mode.js';
import type { Standardizer } from '../data/standardize.js';
import { OptionError } from '../errors.js';
import { Rng } from '../rng.js';
import { optimizerStateSize, type OptimizerConfig } from '../optim/config.js';
import { expertShape, gateShape, type MixtureConfig } from './config.js';
import { mlpInit, mlpParamCount } from './mlp.js';

/** Parameters and optimiser state (planar; see optimizerStateSize), as flat float32 vectors. */
export interface MixtureParams {
  /** Gate weights and biases, `mlpParamCount` of the gate's shape. */
  gateParams: Float32Array;
  /** All experts' parameters: E consecutive blocks of one expert's `mlpParamCount`. */
  expertParams: Float32Array;
  /** Gate optimiser state: optimizerStateSize slots of gateParams.length floats (empty for sgd). */
  gateOpt: Float32Array;
  /** Experts' optimiser state: optimizerStateSize slots of expertParams.length floats (empty for sgd). */
  expertOpt: Float32Array;
  /**
   * Noisy top-k: the noise network, linear D → E (W D×E row-major, then b), whose softplus
   * scales the Gaussian noise added to the gate's logits in training; empty otherwise.
   */
  noiseParams: Float32Array;
  /** The noise network's optimiser state (planar), empty without noise. */
  noiseOpt: Float32Array;
  /**
   * topk and switch: the per-expert bias added to the logits when choosing experts (never
   * to the weights), moved by the auxiliary-loss-free balancing; E floats, else empty.
   */
  routerBias: Float32Array;
}

/** The names of the {@link MixtureParams} arrays, in file order. */
export const PARAM_ARRAYS = ['gateParams', 'expertParams', 'gateOpt', 'expertOpt', 'noiseParams', 'noiseOpt', 'routerBias'] as const;

/** Parameters of the noise network (linear D → E), 0 without noise. */
export function noiseParamCount(config: MixtureConfig): number {
  return config.routing.noise ? config.inputs * config.experts + config.experts : 0;
}

/** Floats of the router bias: E for routings that choose per row (topk, switch), else 0. */
export function routerBiasCount(config: MixtureConfig): number {
  return config.routing.kind === 'topk' || config.routing.kind === 'switch' ? config.experts : 0;
}

/** Training progress that a checkpoint restores. */
export interface TrainingState {
  /** Seed the mixture was created with (initialisation, split, shuffles), 0 ≤ seed < 2³². */
  seed: number;
  /** Optimisation steps taken. */
  step: number;
  /** Epochs completed. */
  epoch: number;
  /** Shuffle generator state at the start of the epoch in progress (or the next). */
  rng: number[];
  /**
   * Batches done in the epoch in progress: > 0 only in a checkpoint taken mid-epoch
   * (Ctrl-C, abort, a save during a fit); fit then redraws that epoch's order and
   * continues after them.
   */
  batch?: number;
  /** Batch size of the last fit (a mid-epoch resume must use the same). */
  batchSize?: number;
  /** Noisy top-k: the state of the generator of the gate's noise (its own stream, checkpointed). */
  noiseRng?: number[];
  /**
   * The float mode the model was trained in (absent in files before 0.3.0: "flush" is
   * then assumed). A resumed fit, predict and evaluate use it unless told otherwise.
   */
  denormals?: DenormalMode;
  /**
   * The `validationSplit` the model was trained with (a fraction in (0, 1), the rows drawn
   * from `seed`), so that a resumed run holds out the same rows. Absent: none recorded.
   */
  validationSplit?: number;
  /**
   * Early stopping's position, so that a resumed fit continues it: the best monitored loss
   * so far, its epoch, and the epochs since it improved. (The best epoch's weights are not
   * stored: a fit restores them only where that epoch is in the same call.)
   */
  earlyStopping?: EarlyStoppingState;
}

/** Early stopping's counters in {@link TrainingState}. */
export interface EarlyStoppingState {
  /** Best monitored loss (validation, else training; standardised units). */
  best: number;
  /** Epoch (in the model's life) that reached it. */
  bestEpoch: number;
  /** Epochs since it improved. */
  sinceBest: number;
}

/** Everything a model is: configuration, parameters, standardisation, names, training state. */
export interface ModelState {
  /** Task, widths D/K/E, gate and expert architectures, loss (fixed at creation). */
  readonly config: MixtureConfig;
  /** Optimiser and its hyper-parameters, defaults filled in. */
  readonly optimizer: Required<OptimizerConfig>;
  /** Parameters and optimiser state, in the model's own memory. */
  params: MixtureParams;
  /** Fitted on the first training set; undefined until then. */
  inputScaler?: Standardizer;
  /** Standardisation of the targets (regression; identity for classification). */
  targetScaler?: Standardizer;
  /** Input column names (D), if known. */
  featureNames?: string[];
  /** Regression: target column names (K), if known. */
  targetNames?: string[];
  /** Classification: class names (K) indexed by label, if known. */
  classNames?: string[];
  /** Steps, epochs and RNG state. */
  training: TrainingState;
}

/**
 * Largest number of floats of parameters, gradients and optimiser state a mixture may
 * have: a training session keeps them in one 32-bit WebAssembly memory (4 GiB) together
 * with its activations, so models beyond ~3.5 GiB of them are refused up front.
 */
export const MAX_MODEL_FLOATS = Math.floor((3.5 * 2 ** 30) / 4);

/** Floats a model's parameters, gradients and optimiser state take in a training session. */
export function modelFloats(config: MixtureConfig, optimizer: Required<OptimizerConfig>): number {
  const P = mlpParamCount(gateShape(config)) + config.experts * mlpParamCount(expertShape(config)) + noiseParamCount(config);
  return P * (2 + optimizerStateSize(optimizer.name)) + routerBiasCount(config);
}

/** Throw OptionError (naming `experts`, or the widest net) when a model cannot be held. */
export function checkModelSize(config: MixtureConfig, optimizer: Required<OptimizerConfig>): void {
  const floats = modelFloats(config, optimizer);
  if (floats > MAX_MODEL_FLOATS) {
    const gib = ((floats * 4) / 2 ** 30).toFixed(1);
    const P = mlpParamCount(expertShape(config));
    const perFloat = 2 + optimizerStateSize(optimizer.name);
    // The gate or one expert alone too large: its architecture is the problem; else their number.
    // The gate's own layers (its output layer grows with the experts, which are then to blame).
    const gate = mlpParamCount(gateShape({ ...config, experts: 1 })) * perFloat > MAX_MODEL_FLOATS / 2;
    const option = gate ? 'gate' : P * perFloat > MAX_MODEL_FLOATS ? 'expert' : 'experts';
    if (gate) {
      throw new OptionError(
        option,
        `a gate of ${mlpParamCount(gateShape(config)).toLocaleString('en-US')} parameters (${gateShape(config).sizes.join('→')}) needs ${gib} GiB of parameters, gradients and optimiser state with the experts; the limit is 3.5 GiB (one WebAssembly memory)`,
      );
    }
    throw new OptionError(
      option,
      `${config.experts} experts of ${P.toLocaleString('en-US')} parameters need ${gib} GiB of parameters, gradients and optimiser state; the limit is 3.5 GiB (one WebAssembly memory)`,
    );
  }
}

/**
 * The length of every {@link MixtureParams} array a configuration implies, computed
 * without allocating anything (readers compare a file's contents with it first).
 */
export function paramCounts(config: MixtureConfig, optimizer: Required<OptimizerConfig>): Record<keyof MixtureParams, number> {
  const S = optimizerStateSize(optimizer.name);
  const Pg = mlpParamCount(gateShape(config));
  const Pe = mlpParamCount(expertShape(config));
  const Pn = noiseParamCount(config);
  return {
    gateParams: Pg,
    expertParams: config.experts * Pe,
    gateOpt: Pg * S,
    expertOpt: config.experts * Pe * S,
    noiseParams: Pn,
    noiseOpt: Pn * S,
    routerBias: routerBiasCount(config),
  };
}

/** Zeroed parameter and optimiser arrays of the right sizes. */
export function allocateParams(config: MixtureConfig, optimizer: Required<OptimizerConfig>): MixtureParams {
  checkModelSize(config, optimizer);
  const n = paramCounts(config, optimizer);
  return {
    gateParams: new Float32Array(n.gateParams),
    expertParams: new Float32Array(n.expertParams),
    gateOpt: new Float32Array(n.gateOpt),
    expertOpt: new Float32Array(n.expertOpt),
    noiseParams: new Float32Array(n.noiseParams),
    noiseOpt: new Float32Array(n.noiseOpt),
    routerBias: new Float32Array(n.routerBias),
  };
}

/** The seed of the noise generator's stream, derived from the model's seed. */
export function noiseSeed(seed: number): number {
  return (seed ^ 0x6e01_5e5d) >>> 0;
}

/** A fresh, seeded model: the gate first, then the experts in order, from one generator. */
export function initialState(config: MixtureConfig, optimizer: Required<OptimizerConfig>, seed: number): ModelState {
  const params = allocateParams(config, optimizer);
  const rng = new Rng(seed);
  mlpInit(gateShape(config), params.gateParams, rng);
  const P = mlpParamCount(expertShape(config));
  for (let i = 0; i < config.experts; i++) mlpInit(expertShape(config), params.expertParams.subarray(i * P, (i + 1) * P), rng);
  // The noise network starts at zero (Shazeer et al.): noise of scale softplus(0) = ln 2.
  const training: TrainingState = { seed, step: 0, epoch: 0, rng: rng.state() };
  if (config.routing.noise) training.noiseRng = new Rng(noiseSeed(seed)).state();
  return { config, optimizer, params, training };
}

/** A copy of every parameter array. */
export function copyParams(p: MixtureParams): MixtureParams {
  return Object.fromEntries(PARAM_ARRAYS.map((k) => [k, p[k].slice()])) as unknown as MixtureParams;
}

/** Copy every parameter array of `from` into `to` (same sizes). */
export function setParams(to: MixtureParams, from: MixtureParams): void {
  for (const k of PARAM_ARRAYS) to[k].set(from[k]);
}

/** A deep copy of a state (parameters, scalers, names, training state). */
export function cloneState(s: ModelState, params: MixtureParams = copyParams(s.params)): ModelState {
  const training: TrainingState = { ...s.training, rng: [...s.training.rng] };
  if (s.training.noiseRng) training.noiseRng = [...s.training.noiseRng];
  if (s.training.earlyStopping) training.earlyStopping = { ...s.training.earlyStopping };
  const c: ModelState = { config: s.config, optimizer: s.optimizer, params, training };
  if (s.inputScaler) c.inputScaler = { mean: [...s.inputScaler.mean], std: [...s.inputScaler.std] };
  if (s.targetScaler) c.targetScaler = { mean: [...s.targetScaler.mean], std: [...s.targetScaler.std] };
  if (s.featureNames) c.featureNames = [...s.featureNames];
  if (s.targetNames) c.targetNames = [...s.targetNames];
  if (s.classNames) c.classNames = [...s.classNames];
  return c;
}
