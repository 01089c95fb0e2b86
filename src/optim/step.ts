/**
 * One optimiser step on a flat range of parameters, through the kernel set. The same call
 * runs on a shard's experts (views of shared memory) and on the gate, so parallel and
 * in-process training update bit for bit alike. State is planar (see optimizerStateSize).
 *   sgd:      θ ← θ − lr·g
 *   momentum: v ← μv + g;  θ ← θ − lr·v
 *   adam:     m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − lr·m̂/(√v̂ + ε)
 * with g = ∂E/∂θ + λθ.
 */
import type { Kernels } from '../kernels/types.js';
import type { OptimizerConfig } from './config.js';

/** The parameters one optimiser step updates: θ, ∂E/∂θ and the state slots, all length n. */
export interface OptimizerViews {
  params: Float32Array;
  grads: Float32Array;
  /** Slot 0 of the state (momentum's velocity, Adam's m); empty for sgd. */
  slot0: Float32Array;
  /** Slot 1 (Adam's v); empty otherwise. */
  slot1: Float32Array;
}

/**
 * Views of the parameters [from, to) of a parameter vector of length n, with their planar
 * state (`state` holds optimizerStateSize slots of n floats each).
 */
export function optimizerViews(params: Float32Array, grads: Float32Array, state: Float32Array, n: number, from: number, to: number): OptimizerViews {
  const empty = state.subarray(0, 0);
  return {
    params: params.subarray(from, to),
    grads: grads.subarray(from, to),
    slot0: state.length >= n ? state.subarray(from, to) : empty,
    slot1: state.length >= 2 * n ? state.subarray(n + from, n + to) : empty,
  };
}

/**
 * One step with learning rate `lr` (after the schedule) as 1-based step `t` (Adam's bias
 * correction, computed in float64 here, once per call).
 */
export function optimizerStep(kernels: Kernels, cfg: Required<OptimizerConfig>, v: OptimizerViews, lr: number, t: number): void {
  const n = v.params.length;
  if (n === 0) return;
  switch (cfg.name) {
    case 'sgd':
      kernels.sgd(v.params, v.grads, n, lr, cfg.weightDecay);
      break;
    case 'momentum':
      kernels.momentum(v.params, v.grads, v.slot0, n, lr, cfg.momentum, cfg.weightDecay);
      break;
    case 'adam': {
      // Bias corrections folded into two constants: m̂/(√v̂ + ε) = (m/c₁)/(√(v/c₂) + ε).
      const stepSize = lr / (1 - Math.pow(cfg.beta1, t)), invC2 = 1 / (1 - Math.pow(cfg.beta2, t));
      kernels.adam(v.params, v.grads, v.slot0, v.slot1, n, stepSize, invC2, cfg.beta1, cfg.beta2, 1 - cfg.beta1, 1 - cfg.beta2, cfg.epsilon, cfg.weightDecay);
      break;
    }
  }
}
