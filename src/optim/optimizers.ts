/**
 * Optimisers on flat buffers. One step updates θ in place from ∂E/∂θ and a state buffer
 * of {@link optimizerStateSize} floats per parameter; the same function runs on a shard's
 * experts (views of shared memory) and on the gate, so parallel and in-process training
 * update bit for bit alike. Weight decay is L2: it adds λθ to the gradient.
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

/** Floats of optimiser state per parameter. */
export function optimizerStateSize(name: OptimizerName): number {
  return name === 'sgd' ? 0 : name === 'momentum' ? 1 : 2;
}

/** Validate and fill defaults. */
export function resolveOptimizer(cfg: Partial<OptimizerConfig> & { name?: string }): Required<OptimizerConfig> {
  const name = (cfg.name ?? 'adam') as OptimizerName;
  if (!OPTIMIZERS.includes(name)) throw new OptionError('optimizer', `unknown optimizer ${JSON.stringify(cfg.name)} (expected ${OPTIMIZERS.join(', ')})`);
  const lr = cfg.lr ?? (name === 'adam' ? 0.01 : 0.1);
  if (!(lr > 0) || !Number.isFinite(lr)) throw new OptionError('lr', `learning rate must be a positive number, got ${lr}`);
  const wd = cfg.weightDecay ?? 0;
  if (!(wd >= 0)) throw new OptionError('weightDecay', `must be ≥ 0, got ${wd}`);
  const r: Required<OptimizerConfig> = {
    name,
    lr,
    momentum: cfg.momentum ?? 0.9,
    beta1: cfg.beta1 ?? 0.9,
    beta2: cfg.beta2 ?? 0.999,
    epsilon: cfg.epsilon ?? 1e-8,
    weightDecay: wd,
  };
  for (const k of ['momentum', 'beta1', 'beta2'] as const) {
    if (!(r[k] >= 0 && r[k] < 1)) throw new OptionError(k, `must be in [0, 1), got ${r[k]}`);
  }
  return r;
}

/**
 * One optimiser step on n parameters. `lr` is this step's rate (after the schedule);
 * `t` is the 1-based step count (Adam's bias correction).
 *   sgd:      θ ← θ − lr·g
 *   momentum: v ← μv + g;  θ ← θ − lr·v
 *   adam:     m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − lr·m̂/(√v̂ + ε)
 * with g = ∂E/∂θ + λθ.
 */
export function optimizerStep(
  cfg: Required<OptimizerConfig>,
  params: Float32Array,
  grads: Float32Array,
  state: Float32Array,
  n: number,
  lr: number,
  t: number,
): void {
  const wd = cfg.weightDecay;
  switch (cfg.name) {
    case 'sgd':
      for (let j = 0; j < n; j++) params[j] = params[j]! - lr * (grads[j]! + wd * params[j]!);
      break;
    case 'momentum': {
      const mu = cfg.momentum;
      for (let j = 0; j < n; j++) {
        const v = mu * state[j]! + grads[j]! + wd * params[j]!;
        state[j] = v;
        params[j] = params[j]! - lr * v;
      }
      break;
    }
    case 'adam': {
      const b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.epsilon;
      // Bias corrections folded into two constants: m̂/(√v̂ + ε) = (m/c₁)/(√(v/c₂) + ε).
      const step = lr / (1 - Math.pow(b1, t)), invC2 = 1 / (1 - Math.pow(b2, t));
      const a1 = 1 - b1, a2 = 1 - b2;
      for (let j = 0; j < n; j++) {
        const gj = grads[j]! + wd * params[j]!;
        const m = b1 * state[2 * j]! + a1 * gj;
        const v = b2 * state[2 * j + 1]! + a2 * gj * gj;
        state[2 * j] = m;
        state[2 * j + 1] = v;
        params[j] = params[j]! - (step * m) / (Math.sqrt(v * invC2) + eps);
      }
      break;
    }
  }
}

/**
 * A learning-rate schedule: the rate for a 0-based epoch and 1-based global step, given
 * the base rate. Return the base rate to keep it constant.
 */
export type LrSchedule = (info: { epoch: number; step: number; baseLr: number }) => number;

/** Step decay: multiply by `factor` every `every` epochs. */
export function stepDecay(every: number, factor: number): LrSchedule {
  return ({ epoch, baseLr }) => baseLr * Math.pow(factor, Math.floor(epoch / every));
}

/** Cosine decay from the base rate to `floor`·base over `epochs`. */
export function cosineDecay(epochs: number, floor = 0): LrSchedule {
  return ({ epoch, baseLr }) => baseLr * (floor + (1 - floor) * 0.5 * (1 + Math.cos((Math.PI * Math.min(epoch, epochs)) / epochs)));
}
