/**
 * A cost model of the parallel trainer, for machines with more cores than the one measured:
 * the step time at W workers predicted from a `moe bench scaling` report of 1 and 2 workers.
 *
 *   T(W) = M + Σ_p κ_p · C_p · ⌈E/W⌉ / E + Σ_p S_p(W)        (κ_p = 1 at W = 1)
 *
 * - C_p: the experts' compute in phase p (forward, backward, update) at 1 worker, the only
 *   shard's busy time (shardComputeMicrosByPhase); a shard of ⌈E/W⌉ experts does that share;
 * - κ_p: how much slower a core computes when the others compute too (shared caches and
 *   memory bandwidth; on a VM, vCPUs that share a physical core): the slowest shard's
 *   compute at 2 workers ÷ half the 1-worker compute, measured, and held at that value for
 *   every W ≥ 2 (optimistic where contention grows with the cores busy);
 * - S_p(W): the synchronisation of phase p: measured at 1 and 2 workers; beyond 2, either
 *   held at its 2-worker value (`constant`: every shard is woken at once and the slowest
 *   wake-up counts) or grown in proportion to W (`linear`: as if each extra shard added its
 *   own wake-up), the two ends of what the measurement allows;
 * - M: the rest of the 1-worker step, T(1) − Σ_p (C_p + S_p(1)): the main thread's own work
 *   outside the phases (gather, gate, loss), the same at every W.
 *
 * For E′ experts instead of the measured E (the scaling benchmark uses 16 on machines with
 * more than 8 cores) the compute scales by E′/E; M is kept (the gate's share grows with E′
 * but is under 2% of a medium or large step). Efficiency is T(1) ÷ (W · T(W)), as the
 * scaling benchmark defines it with W ≤ cores. What the model leaves out: memory bandwidth
 * shared by W cores (the update phase streams every parameter and Adam moment), a shared
 * last-level cache, and frequency changes with more active cores: all make it optimistic.
 */
import { OptionError } from '../src/index.js';
import { checkPositiveInt } from './harness.js';
import type { PhaseMicros, ScalingReport, ScalingSize } from './scaling.js';

const PHASES = ['forward', 'backward', 'update'] as const;

/** The measured inputs of the model for one size, µs. */
export interface CostModelInputs {
  /** Problem size. */
  size: ScalingSize;
  /** Experts E of the measured mixture. */
  experts: number;
  /** Step time at 1 worker, µs. */
  step1Micros: number;
  /** Step time at 2 workers, µs (to check the model against). */
  step2Micros: number;
  /** Compute per phase at 1 worker (the only shard), µs. */
  compute1: PhaseMicros;
  /** The slowest shard's compute per phase at 2 workers, µs. */
  compute2: PhaseMicros;
  /** κ per phase: compute2 ÷ (compute1 · ⌈E/2⌉/E), the per-core slow-down with 2 cores busy. */
  contention: PhaseMicros;
  /** Synchronisation per phase at 1 and 2 workers, µs. */
  sync1: PhaseMicros;
  sync2: PhaseMicros;
  /** The main thread's own work per step, µs: step1 − Σ (compute1 + sync1). */
  mainMicros: number;
}

/** How synchronisation grows beyond the measured 2 workers. */
export type SyncGrowth = 'constant' | 'linear';

/** One prediction. */
export interface ScalingPrediction {
  /** Problem size. */
  size: ScalingSize;
  /** Experts E′. */
  experts: number;
  /** Workers W. */
  workers: number;
  /** Synchronisation beyond 2 workers. */
  sync: SyncGrowth;
  /** Predicted step at 1 worker with E′ experts, µs. */
  step1Micros: number;
  /** Predicted step at W workers, µs. */
  stepMicros: number;
  /** T(1) ÷ T(W). */
  speedup: number;
  /** T(1) ÷ (W · T(W)). */
  efficiency: number;
}

/** The model's inputs for one size of a scaling report (it needs its 1- and 2-worker rows). */
export function costModelInputs(report: ScalingReport, size: ScalingSize): CostModelInputs {
  const row = (w: number) => report.rows.find((r) => r.size === size && r.workers === w);
  const one = row(1), two = row(2);
  if (!one || !two) throw new OptionError('report', `the scaling report has no ${!one ? 1 : 2}-worker row of ${size}: run moe bench scaling --workers 1,2`);
  const c = one.shardComputeMicrosByPhase, s = one.syncMicrosByPhase;
  const main = one.stepMicros - PHASES.reduce((a, p) => a + c[p] + s[p], 0);
  const c2 = two.shardComputeMicrosByPhase, half = Math.ceil(report.experts / 2) / report.experts;
  const kappa = (p: (typeof PHASES)[number]): number => (c[p] > 0 ? c2[p] / (c[p] * half) : 1);
  return {
    size,
    experts: report.experts,
    step1Micros: one.stepMicros,
    step2Micros: two.stepMicros,
    compute1: { ...c },
    compute2: { ...c2 },
    contention: { forward: kappa('forward'), backward: kappa('backward'), update: kappa('update') },
    sync1: { ...s },
    sync2: { ...two.syncMicrosByPhase },
    mainMicros: main,
  };
}

/** Synchronisation of one phase at W workers. */
function syncAt(m: CostModelInputs, p: (typeof PHASES)[number], workers: number, growth: SyncGrowth): number {
  if (workers === 1) return m.sync1[p];
  return growth === 'constant' || workers <= 2 ? m.sync2[p] : (m.sync2[p] * workers) / 2;
}

/** The step time at W workers with E′ experts (see the module comment), µs. */
export function predictStepMicros(m: CostModelInputs, workers: number, experts: number, growth: SyncGrowth): number {
  checkPositiveInt(workers, 'workers');
  checkPositiveInt(experts, 'experts');
  if (workers > experts) throw new OptionError('workers', `${workers} workers for ${experts} experts: each worker needs at least one expert`);
  const scale = experts / m.experts;
  const share = Math.ceil(experts / workers) / experts;
  let t = m.mainMicros;
  for (const p of PHASES) t += m.compute1[p] * (workers > 1 ? m.contention[p] : 1) * scale * share + syncAt(m, p, workers, growth);
  return t;
}

/** The predicted speed-up and efficiency at W workers with E′ experts. */
export function predictScaling(m: CostModelInputs, workers: number, experts: number, growth: SyncGrowth): ScalingPrediction {
  const t1 = predictStepMicros(m, 1, experts, growth);
  const tw = predictStepMicros(m, workers, experts, growth);
  return { size: m.size, experts, workers, sync: growth, step1Micros: t1, stepMicros: tw, speedup: t1 / tw, efficiency: t1 / (workers * tw) };
}
