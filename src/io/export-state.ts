/**
 * What a model is when it leaves the library: configuration, optimiser, parameters and
 * optimiser state, standardisation, names and training position, as plain data. The
 * ONNX and safetensors writers read only this; {@link exportStateOf} and
 * {@link mixtureFromExportState} are the one place that touches a {@link Mixture}, and
 * {@link optimizerSlots} / {@link regionSlots} the one place that knows how optimiser
 * state is laid out.
 */
import { loadProvider } from '../compute/load.js';
import type { Standardizer } from '../data/standardize.js';
import { ModelFormatError } from '../errors.js';
import { Mixture, type MixtureParams, type TrainingState } from '../mixture.js';
import { expertShape, gateShape, type MixtureConfig } from '../model/config.js';
import { mlpParamCount } from '../model/mlp.js';
import { optimizerStateSize, type OptimizerConfig, type OptimizerName } from '../optim/optimizers.js';
import type { LoadOptions } from './model-file.js';

/** A model as data: everything needed to rebuild it, and nothing tied to a running process. */
export interface ExportState {
  /** Task, inputs D, outputs K, experts E, expert and gate architectures, error function. */
  config: MixtureConfig;
  /** Optimiser and hyper-parameters, defaults filled in. */
  optimizer: Required<OptimizerConfig>;
  /** Parameters and optimiser state (MLP layout of src/model/mlp.ts; optimiser state per {@link regionSlots}). */
  params: MixtureParams;
  /** Input standardisation (D columns); absent before the first fit. */
  inputScaler?: Standardizer;
  /** Target standardisation (K columns; identity for classification); absent before the first fit. */
  targetScaler?: Standardizer;
  /** Input column names (D). */
  featureNames?: string[];
  /** Regression: target column names (K); classification: the label column. */
  targetNames?: string[];
  /** Classification: class names (K) indexed by label. */
  classNames?: string[];
  /** Seed, step, epoch, shuffle RNG, mid-epoch batch and batch size. */
  training: TrainingState;
}

/**
 * The state of a mixture, copied now (the copy does not change as the mixture trains).
 * The one adapter from {@link Mixture} to {@link ExportState}.
 */
export function exportStateOf(m: Mixture): ExportState {
  const p = m.params;
  const s: ExportState = {
    config: m.config,
    optimizer: { ...m.optimizer },
    params: { gateParams: p.gateParams.slice(), expertParams: p.expertParams.slice(), gateOpt: p.gateOpt.slice(), expertOpt: p.expertOpt.slice() },
    training: { ...m.training, rng: [...m.training.rng] },
  };
  if (m.inputScaler) s.inputScaler = m.inputScaler;
  if (m.targetScaler) s.targetScaler = m.targetScaler;
  if (m.featureNames) s.featureNames = m.featureNames;
  if (m.targetNames) s.targetNames = m.targetNames;
  if (m.classNames) s.classNames = m.classNames;
  return s;
}

/**
 * Build a {@link Mixture} from a state (checked first with {@link checkExportState}); the
 * provider is chosen as in {@link Mixture.load}. The mixture owns the state's arrays.
 * The one adapter from {@link ExportState} to {@link Mixture}.
 */
export async function mixtureFromExportState(state: ExportState, where: string, opts: LoadOptions = {}): Promise<Mixture> {
  checkExportState(state, where);
  const provider = await loadProvider(opts.backend ?? 'auto', {
    ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}),
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
  });
  const m = Mixture.fromParts(state.config, state.optimizer, provider, state.params, state.training);
  if (state.inputScaler) m.inputScaler = state.inputScaler;
  if (state.targetScaler) m.targetScaler = state.targetScaler;
  if (state.featureNames) m.featureNames = state.featureNames;
  if (state.targetNames) m.targetNames = state.targetNames;
  if (state.classNames) m.classNames = state.classNames;
  return m;
}

// ---------------------------------------------------------------------------------------
// Optimiser state layout (planar): the only code that knows it.

/** Name of one optimiser slot, as PyTorch's optimisers call it in their state dicts. */
export type SlotName = 'exp_avg' | 'exp_avg_sq' | 'momentum_buffer';

/** One optimiser slot of a block of parameters: a view of the same length as the block. */
export interface OptimizerSlot {
  /** PyTorch's name for it: Adam `exp_avg` (m), `exp_avg_sq` (v); SGD momentum `momentum_buffer`. */
  name: SlotName;
  /** View into the optimiser state, one value per parameter of the block. */
  values: Float32Array;
}

const SLOT_NAMES: Record<OptimizerName, readonly SlotName[]> = {
  sgd: [],
  momentum: ['momentum_buffer'],
  adam: ['exp_avg', 'exp_avg_sq'],
};

/** The slot names of an optimiser, in storage order. */
export function slotNames(name: OptimizerName): readonly SlotName[] {
  return SLOT_NAMES[name];
}

/**
 * Named views of the optimiser state of a block of n parameters, planar: sgd none;
 * momentum [velocity (n)]; adam [m (n) | v (n)].
 */
export function optimizerSlots(name: OptimizerName, state: Float32Array, n: number): OptimizerSlot[] {
  const names = SLOT_NAMES[name];
  if (state.length !== names.length * n) throw new RangeError(`optimizer state of ${name} for ${n} parameters holds ${names.length * n} values, got ${state.length}`);
  return names.map((slot, k) => ({ name: slot, values: state.subarray(k * n, (k + 1) * n) }));
}

/** The optimiser slots of every network of a mixture, as {@link regionSlots} finds them. */
export interface RegionSlots {
  /** The gate's slots (views of gateOpt, one value per gate parameter each). */
  gate: OptimizerSlot[];
  /** Expert i's slots at index i (views of expertOpt, one value per expert parameter each). */
  experts: OptimizerSlot[][];
}

/**
 * The optimiser slots of the gate and of each expert. Blocks: the gate's state is one
 * block of its P_g parameters; expert i's state is the i-th block of S·P floats of
 * expertOpt (S slots of its P parameters), so that a shard's experts stay one contiguous
 * range of expertOpt. If the trainer's layout differs, this function is the one to change.
 */
export function regionSlots(config: MixtureConfig, optimizer: OptimizerName, params: MixtureParams): RegionSlots {
  const S = optimizerStateSize(optimizer);
  const Pg = mlpParamCount(gateShape(config)), P = mlpParamCount(expertShape(config));
  const experts: OptimizerSlot[][] = [];
  for (let i = 0; i < config.experts; i++) experts.push(optimizerSlots(optimizer, params.expertOpt.subarray(i * S * P, (i + 1) * S * P), P));
  return { gate: optimizerSlots(optimizer, params.gateOpt, Pg), experts };
}

// ---------------------------------------------------------------------------------------
// Checks shared by the writers and readers.

/** A config's routing, for configurations that will carry one (absent today means dense). */
export function routingOf(config: MixtureConfig): unknown {
  return (config as MixtureConfig & { routing?: unknown }).routing;
}

/**
 * Refuse any routing but dense: sparse routings (`topk:K`, `switch`, `expert-choice:C`)
 * are not exported yet. `where` names the model in the message.
 */
export function assertDenseRouting(config: MixtureConfig, where: string, what: string): void {
  const r = routingOf(config);
  if (r === undefined || r === 'dense' || (typeof r === 'object' && r !== null && (r as { kind?: unknown }).kind === 'dense')) return;
  throw new ModelFormatError(`${where}: routing ${JSON.stringify(r)} cannot be ${what} yet; only dense (softmax over every expert) is supported`);
}

/** A standardisation of w columns with finite means and positive finite stds, or undefined. */
export function scalerOk(s: unknown, w: number): boolean {
  if (s === undefined) return true;
  if (typeof s !== 'object' || s === null) return false;
  const { mean, std } = s as Partial<Standardizer>;
  return (
    Array.isArray(mean) && Array.isArray(std) && mean.length === w && std.length === w &&
    mean.every((v) => typeof v === 'number' && Number.isFinite(v)) && std.every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0)
  );
}

/** A training position as a model file stores it, or undefined when it is not one. */
export function parseTraining(t: unknown): TrainingState | undefined {
  if (typeof t !== 'object' || t === null) return undefined;
  const o = t as Partial<TrainingState>;
  const count = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  if (!count(o.step) || !count(o.epoch) || !Array.isArray(o.rng) || o.rng.length !== 4 || !o.rng.every((v) => count(v) && v <= 0xffffffff)) return undefined;
  if (o.seed !== undefined && !Number.isInteger(o.seed)) return undefined;
  if ((o.batch !== undefined && !count(o.batch)) || (o.batchSize !== undefined && !count(o.batchSize))) return undefined;
  const training: TrainingState = { seed: o.seed ?? 1, step: o.step!, epoch: o.epoch!, rng: [...o.rng] };
  if (o.batch !== undefined) training.batch = o.batch;
  if (o.batchSize !== undefined) training.batchSize = o.batchSize;
  return training;
}

/** Throw a ModelFormatError naming the first part of `state` that does not fit its configuration. */
export function checkExportState(state: ExportState, where: string): void {
  const c = state.config;
  assertDenseRouting(c, where, 'exported');
  const S = optimizerStateSize(state.optimizer.name);
  const Pg = mlpParamCount(gateShape(c)), Pe = mlpParamCount(expertShape(c));
  const sizes = { gateParams: Pg, expertParams: c.experts * Pe, gateOpt: S * Pg, expertOpt: S * c.experts * Pe };
  for (const [k, n] of Object.entries(sizes) as [keyof MixtureParams, number][]) {
    const a = state.params[k];
    if (!(a instanceof Float32Array) || a.length !== n) throw new ModelFormatError(`${where}: ${k} holds ${a?.length ?? 'no'} values, the configuration needs ${n}`);
  }
  if (!scalerOk(state.inputScaler, c.inputs)) throw new ModelFormatError(`${where}: the input standardisation does not have ${c.inputs} columns with positive stds`);
  if (!scalerOk(state.targetScaler, c.outputs)) throw new ModelFormatError(`${where}: the target standardisation does not have ${c.outputs} columns with positive stds`);
  if (!parseTraining(state.training)) throw new ModelFormatError(`${where}: the training state is missing or invalid`);
  const names: [string, string[] | undefined, number][] = [
    ['feature names', state.featureNames, c.inputs],
    ['class names', state.classNames, c.outputs],
  ];
  // Regression: one name per target; classification: the label column (any number).
  names.push(['target names', state.targetNames, c.task === 'regression' ? c.outputs : -1]);
  for (const [what, list, n] of names) {
    if (list !== undefined && (!Array.isArray(list) || (n >= 0 && list.length !== n) || !list.every((s) => typeof s === 'string'))) {
      throw new ModelFormatError(`${where}: ${what} must be ${n >= 0 ? n : 'a list of'} strings`);
    }
  }
}
