/**
 * Optimiser settings (what a model file stores). The update rules themselves are in
 * src/optim/step.ts. Weight decay is L2: it adds λθ to the gradient.
 */
import { OptionError } from '../errors.js';

/** Optimiser kinds. */
export type OptimizerName = 'sgd' | 'momentum' | 'adam';
/** Every {@link OptimizerName}, in CLI order. */
export const OPTIMIZERS: readonly OptimizerName[] = ['sgd', 'momentum', 'adam'];

/** Optimiser hyper-parameters; `lr` is the base rate a schedule scales. */
export interface OptimizerConfig {
  /** Update rule. */
  name: OptimizerName;
  /** Base learning rate, > 0. */
  lr: number;
  /** Momentum coefficient for `momentum` (default 0.9). */
  momentum?: number;
  /** Adam β₁, first-moment decay in [0, 1) (default 0.9). */
  beta1?: number;
  /** Adam β₂, second-moment decay in [0, 1) (default 0.999). */
  beta2?: number;
  /** Adam ε added to the denominator (default 1e-8). */
  epsilon?: number;
  /** L2 weight decay λ ≥ 0 (default 0). */
  weightDecay?: number;
}

/**
 * Floats of optimiser state per parameter, stored PLANAR: for n parameters the state is
 * `[slot 0 (n) | slot 1 (n)]` — momentum: velocity; adam: first moment m, second moment v.
 */
export function optimizerStateSize(name: OptimizerName): number {
  return name === 'sgd' ? 0 : name === 'momentum' ? 1 : 2;
}

/** Validate and fill defaults. */
export function resolveOptimizer(cfg: Partial<OptimizerConfig> & { name?: string }): Required<OptimizerConfig> {
  const name = (cfg.name ?? 'adam') as OptimizerName;
  if (!OPTIMIZERS.includes(name)) throw new OptionError('optimizer', `unknown optimizer ${JSON.stringify(cfg.name)} (expected ${OPTIMIZERS.join(', ')})`);
  const lr = cfg.lr ?? (name === 'adam' ? 0.01 : 0.1);
  if (typeof lr !== 'number' || !(lr > 0) || !Number.isFinite(lr)) throw new OptionError('lr', `learning rate must be a positive number, got ${lr}`);
  const wd = cfg.weightDecay ?? 0;
  if (typeof wd !== 'number' || !(wd >= 0) || !Number.isFinite(wd)) throw new OptionError('weightDecay', `must be a number ≥ 0, got ${wd}`);
  const eps = cfg.epsilon ?? 1e-8;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) throw new OptionError('epsilon', `must be a number > 0, got ${eps}`);
  const r: Required<OptimizerConfig> = {
    name,
    lr,
    momentum: cfg.momentum ?? 0.9,
    beta1: cfg.beta1 ?? 0.9,
    beta2: cfg.beta2 ?? 0.999,
    epsilon: eps,
    weightDecay: wd,
  };
  for (const k of ['momentum', 'beta1', 'beta2'] as const) {
    if (typeof r[k] !== 'number' || !(r[k] >= 0 && r[k] < 1)) throw new OptionError(k, `must be in [0, 1), got ${r[k]}`);
  }
  return r;
}

/**
 * A learning-rate schedule: the rate for a 0-based epoch and 1-based global step, given
 * the base rate. Return the base rate to keep it constant.
 */
export type LrSchedule = (info: { epoch: number; step: number; baseLr: number }) => number;

/** Step decay: multiply by `factor` every `every` epochs. */
export function stepDecay(every: number, factor: number): LrSchedule {
  if (typeof every !== 'number' || !(every > 0) || !Number.isFinite(every)) throw new OptionError('schedule', `stepDecay needs a positive number of epochs between decays, got ${String(every)}`);
  if (typeof factor !== 'number' || !(factor >= 0) || !Number.isFinite(factor)) throw new OptionError('schedule', `stepDecay needs a finite factor ≥ 0, got ${String(factor)}`);
  return ({ epoch, baseLr }) => baseLr * Math.pow(factor, Math.floor(epoch / every));
}

/** Cosine decay from the base rate to `floor`·base over `epochs`. */
export function cosineDecay(epochs: number, floor = 0): LrSchedule {
  if (typeof epochs !== 'number' || !(epochs > 0) || !Number.isFinite(epochs)) throw new OptionError('schedule', `cosineDecay needs a positive number of epochs, got ${String(epochs)}`);
  if (typeof floor !== 'number' || !(floor >= 0) || !Number.isFinite(floor)) throw new OptionError('schedule', `cosineDecay needs a finite floor ≥ 0, got ${String(floor)}`);
  return ({ epoch, baseLr }) => baseLr * (floor + (1 - floor) * 0.5 * (1 + Math.cos((Math.PI * Math.min(epoch, epochs)) / epochs)));
}
