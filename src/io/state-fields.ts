/**
 * What every model file format shares once its fields have passed the schema
 * (src/io/model-schema.ts): arrays sized by the configuration (a size beyond the library's
 * limit is a format error naming the field), finite parameters, and the state rebuilt from
 * the checked fields.
 */
import { ModelFormatError, OptionError } from '../errors.js';
import type { MixtureConfig } from '../model/config.js';
import { allocateParams, checkModelSize, paramCounts, PARAM_ARRAYS, type MixtureParams, type ModelState, type TrainingState } from '../model/state.js';
import type { OptimizerConfig, OptimizerName } from '../optim/config.js';
import { firstIssue, routingOf, stateFieldsSchema, type StateFieldsData } from './model-schema.js';

/** A checked configuration, with the dense routing filled in where the file has none. */
export function configOf(f: { config: StateFieldsData['config'] }): MixtureConfig {
  return { ...(f.config as MixtureConfig), routing: routingOf(f.config as MixtureConfig) };
}

/** Zeroed arrays for a checked configuration; a model too large to hold is a ModelFormatError naming the field. */
export function paramsFor(config: MixtureConfig, optimizer: Required<OptimizerConfig>, where: string): MixtureParams {
  try {
    return allocateParams(config, optimizer);
  } catch (err) {
    if (err instanceof OptionError) throw new ModelFormatError(`${where}: config.${err.option}: ${err.message.slice(err.option.length + 2)}`);
    throw err;
  }
}

/**
 * The array lengths a checked configuration implies, refused against the library's size
 * limit (as a ModelFormatError naming the field) without allocating anything.
 */
export function impliedCounts(config: MixtureConfig, optimizer: Required<OptimizerConfig>, where: string): Record<keyof MixtureParams, number> {
  try {
    checkModelSize(config, optimizer);
  } catch (err) {
    if (err instanceof OptionError) throw new ModelFormatError(`${where}: config.${err.option}: ${err.message.slice(err.option.length + 2)}`);
    throw err;
  }
  return paramCounts(config, optimizer);
}

/** Throw a ModelFormatError naming the first parameter or optimiser value that is not finite. */
export function checkFinite(params: MixtureParams, where: string, optimizer: OptimizerName): void {
  for (const k of PARAM_ARRAYS) {
    const a = params[k];
    for (let j = 0; j < a.length; j++) {
      if (!Number.isFinite(a[j]!)) throw new ModelFormatError(`${where}: params.${k}[${j}]: is ${a[j]}, not a finite number`);
    }
  }
  if (optimizer === 'adam') {
    // Adam's second moment v (the second planar slot) is a running mean of squares: a
    // negative one would make √v NaN at the first step.
    for (const k of ['gateOpt', 'expertOpt', 'noiseOpt'] as const) {
      const a = params[k], half = a.length / 2;
      for (let j = half; j < a.length; j++) {
        if (a[j]! < 0) throw new ModelFormatError(`${where}: params.${k}[${j}]: Adam's second moment is ${a[j]}, it cannot be negative`);
      }
    }
  }
}

/** Check raw state fields (parsed JSON of any format) against the schema; one ModelFormatError naming the field. */
export function parseStateFields(raw: unknown, where: string): StateFieldsData {
  const parsed = stateFieldsSchema.safeParse(raw);
  if (!parsed.success) throw new ModelFormatError(`${where}: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

/** The state from checked fields and its arrays. */
export function stateFromFields(f: StateFieldsData, params: MixtureParams): ModelState {
  const t = f.training;
  const training: TrainingState = { seed: t.seed, step: t.step, epoch: t.epoch, rng: [...t.rng] };
  if (t.batch !== undefined) training.batch = t.batch;
  if (t.batchSize !== undefined) training.batchSize = t.batchSize;
  if (t.noiseRng !== undefined) training.noiseRng = [...t.noiseRng];
  if (t.denormals !== undefined) training.denormals = t.denormals;
  if (t.validationSplit !== undefined) training.validationSplit = t.validationSplit;
  if (t.earlyStopping !== undefined) training.earlyStopping = { ...t.earlyStopping };
  const state: ModelState = { config: configOf(f), optimizer: f.optimizer as Required<OptimizerConfig>, params, training };
  if (f.inputScaler) state.inputScaler = f.inputScaler;
  if (f.targetScaler) state.targetScaler = f.targetScaler;
  if (f.featureNames) state.featureNames = f.featureNames;
  if (f.targetNames) state.targetNames = f.targetNames;
  if (f.classNames) state.classNames = f.classNames;
  return state;
}
