/**
 * What the ONNX and safetensors writers share: the optimiser state's layout by name (the
 * one place outside the trainer that knows it), and the checks a model must pass before
 * it leaves the library (arrays of its configuration's sizes, trained, dense routing).
 */
import { ModelFormatError } from '../errors.js';
import { expertShape, gateShape, type MixtureConfig } from '../model/config.js';
import { mlpParamCount } from '../model/mlp.js';
import { noiseParamCount, routerBiasCount, type MixtureParams, type ModelState } from '../model/state.js';
import { optimizerStateSize, type OptimizerName } from '../optim/config.js';

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

/** The optimiser slots of every network of a mixture. */
export interface RegionSlots {
  /** The gate's slots (views of gateOpt, one value per gate parameter each). */
  gate: OptimizerSlot[];
  /** Expert i's slots at index i (views of expertOpt, one value per expert parameter each). */
  experts: OptimizerSlot[][];
  /** The noise network's slots (noisy top-k; views of noiseOpt), empty without noise. */
  noise: OptimizerSlot[];
}

/**
 * The optimiser slots of the gate and of each expert. The state is planar over each
 * region (optimizerStateSize): for N parameters, slot s is [s·N, (s+1)·N); expert i's
 * parameters are [i·P, (i+1)·P) of each slot.
 */
export function regionSlots(config: MixtureConfig, optimizer: OptimizerName, params: MixtureParams): RegionSlots {
  const names = SLOT_NAMES[optimizer];
  const Pg = mlpParamCount(gateShape(config)), P = mlpParamCount(expertShape(config)), N = config.experts * P;
  const gate = names.map((name, s) => ({ name, values: params.gateOpt.subarray(s * Pg, (s + 1) * Pg) }));
  const experts = Array.from({ length: config.experts }, (_, i) => names.map((name, s) => ({ name, values: params.expertOpt.subarray(s * N + i * P, s * N + (i + 1) * P) })));
  const Pn = params.noiseParams.length;
  const noise = Pn > 0 ? names.map((name, s) => ({ name, values: params.noiseOpt.subarray(s * Pn, (s + 1) * Pn) })) : [];
  return { gate, experts, noise };
}

/** Throw a ModelFormatError naming the first array that does not fit the configuration. */
export function checkArrays(state: ModelState, where: string): void {
  const c = state.config;
  const S = optimizerStateSize(state.optimizer.name);
  const Pg = mlpParamCount(gateShape(c)), Pe = mlpParamCount(expertShape(c)), Pn = noiseParamCount(c);
  const sizes = { gateParams: Pg, expertParams: c.experts * Pe, gateOpt: S * Pg, expertOpt: S * c.experts * Pe, noiseParams: Pn, noiseOpt: S * Pn, routerBias: routerBiasCount(c) };
  for (const [k, n] of Object.entries(sizes) as [keyof MixtureParams, number][]) {
    const a = state.params[k];
    if (!(a instanceof Float32Array) || a.length !== n) throw new ModelFormatError(`${where}: ${k} holds ${a?.length ?? 'no'} values, the configuration needs ${n}`);
  }
}
