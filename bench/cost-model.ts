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
 *
 * Across MPI ranks the model gains the exchange X(R) (bytes per step per error function,
 * a network's bandwidth and latency): see the section at the end of this file.
 */
import { OptionError } from '../src/index.js';
import { checkPositiveInt } from './harness.js';
import type { PhaseMicros, ScalingReport, ScalingRow, ScalingSize } from './scaling.js';

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

/** What the model reads of a 1- or 2-worker row (a scaling row, or a 1-rank row of the MPI benchmark). */
export type CostModelRow = Pick<ScalingRow, 'stepMicros' | 'shardComputeMicrosByPhase' | 'syncMicrosByPhase'>;

/** The model's inputs for one size of a scaling report (it needs its 1- and 2-worker rows). */
export function costModelInputs(report: ScalingReport, size: ScalingSize): CostModelInputs {
  const row = (w: number) => report.rows.find((r) => r.size === size && r.workers === w);
  const one = row(1), two = row(2);
  if (!one || !two) throw new OptionError('report', `the scaling report has no ${!one ? 1 : 2}-worker row of ${size}: run moe bench scaling --workers 1,2`);
  return costModelInputsOf(size, report.experts, one, two);
}

/** The model's inputs from a 1-worker and a 2-worker row of one size, E experts. */
export function costModelInputsOf(size: ScalingSize, experts: number, one: CostModelRow, two: CostModelRow): CostModelInputs {
  const report = { experts };
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

// ---------------------------------------------------------------------------------------
// The exchange between MPI ranks (`moe bench scaling --mpi`, src/mpi/mpi-runner.ts)
//
// Every rank runs the main side and computes its share of the experts; after each phase
// the ranks exchange what the main side needs from the entries the others computed
// (MpiRunner, in this order, every step):
//   1. after FORWARD, an allgatherv of each entry's score (every error function);
//   2. after FORWARD, an allgatherv of each entry's K outputs, where the error function
//      mixes them (cooperative: its ȳ);
//   3. after BACKWARD, an allgatherv of each entry's dot product, where the gate's
//      gradient needs it after BACKWARD (cooperative);
//   4. after BACKWARD, an allreduce of 2 ints (failed blocks, the agreed stop).
// Dense routing computes every row on every expert: B entries per expert per step. Rank r
// holds E_r experts and receives the floats of the E − E_r others':
//
//   received_r = 4 · B · (E − E_r) · f + 8,   f = 1 + [mixes outputs] · K + [dots after BACKWARD]
//   job total  = Σ_r received_r = 4 · B · E · (R − 1) · f + 8 · R      (any split of the experts)
//
// and sends its own entries to each of the R − 1 others: sent_r = 4 · B · E_r · f · (R − 1) + 8.
// Time: each collective costs its latency steps and the bytes the busiest rank receives
// through its link,
//
//   X(R) = Σ_c ( ⌈log2 R⌉ · α + max_r received_{c,r} ÷ β )
//
// (recursive doubling: ⌈log2 R⌉ rounds; whatever the algorithm, a rank's link carries at
// least what it receives). α, β: the network's latency and bandwidth, parameters, or
// measured on one host by the benchmark's probe. The step on R ranks × W workers, E′ experts:
//
//   T(R, W) = M + Σ_p κ_p · C_p · (E′/E) · ⌈E′/(R·W)⌉/E′ + Σ_p S_p(W) + X(R)
//
// with κ_p applied where more than one core of a host computes (R·W on one host, W with
// one rank per host), and the main side M replicated on every rank (not divided). Left
// out: the ranks' skew (a collective waits for the slowest rank: on a busy host, noise
// makes it most of the measured exchange time), and contention of R·W threads for fewer cores.

/** What an error function needs exchanged (its flags, as src/losses declares them). */
export interface ExchangeFlags {
  /** The main side mixes the experts' outputs (cooperative). */
  mixesOutputs: boolean;
  /** The gate's gradient needs per-entry dots after BACKWARD (cooperative). */
  gateGradAfterBackward: boolean;
}

/** The shape of one exchange: a dense mixture on R ranks. */
export interface ExchangeShape {
  /** Rows per step B. */
  batch: number;
  /** Experts E. */
  experts: number;
  /** Outputs K. */
  outputs: number;
  /** Experts held by each rank (E_r; their sum is E). */
  rankExperts: readonly number[];
  /** The error function's needs. */
  flags: ExchangeFlags;
}

/** One collective of a step. */
export interface ExchangeCollective {
  /** What the runner calls it. */
  what: string;
  /** allgatherv or allreduce. */
  kind: 'allgatherv' | 'allreduce';
  /** Payload bytes each rank receives. */
  received: number[];
  /** Payload bytes each rank sends. */
  sent: number[];
}

/** Bytes per step of the exchange (see the section's comment). */
export interface ExchangeBytes {
  /** Floats per entry exchanged: 1 + [mixes outputs]·K + [dots after BACKWARD]. */
  floatsPerEntry: number;
  /** The collectives of one step, in the runner's order. */
  collectives: ExchangeCollective[];
  /** Bytes each rank receives per step. */
  receivedByRank: number[];
  /** Bytes each rank sends per step. */
  sentByRank: number[];
  /** The job's bytes per step: Σ_r received_r = 4·B·E·(R−1)·f + 8·R. */
  total: number;
}

/** Bytes of the step agreement (an allreduce of 2 ints). */
export const AGREEMENT_BYTES = 8;

/** Each rank's experts where R ranks × W workers split E experts (as the trainer does: rank r holds shards r·W … r·W + W − 1). */
export function rankExpertCounts(experts: number, ranks: number, workers: number): number[] {
  checkPositiveInt(ranks, 'ranks');
  checkPositiveInt(workers, 'workers');
  if (ranks * workers > experts) throw new OptionError('workers', `${ranks} ranks × ${workers} workers need at least ${ranks * workers} experts, the model has ${experts}`);
  const shards = ranks * workers, base = Math.floor(experts / shards), extra = experts % shards;
  return Array.from({ length: ranks }, (_, r) => {
    let n = 0;
    for (let s = r * workers; s < (r + 1) * workers; s++) n += base + (s < extra ? 1 : 0);
    return n;
  });
}

/** The exchange's bytes per step on `shape.rankExperts.length` ranks (none on one rank). */
export function exchangeBytesPerStep(shape: ExchangeShape): ExchangeBytes {
  const { batch: B, experts: E, outputs: K, rankExperts, flags } = shape;
  const R = rankExperts.length;
  if (rankExperts.reduce((a, n) => a + n, 0) !== E) throw new OptionError('rankExperts', `the ranks' experts sum to ${rankExperts.reduce((a, n) => a + n, 0)}, not ${E}`);
  const collectives: ExchangeCollective[] = [];
  if (R > 1) {
    const gather = (what: string, perEntry: number): ExchangeCollective => ({
      what,
      kind: 'allgatherv',
      received: rankExperts.map((n) => 4 * B * (E - n) * perEntry),
      sent: rankExperts.map((n) => 4 * B * n * perEntry * (R - 1)),
    });
    collectives.push(gather('the scores after FORWARD', 1));
    if (flags.mixesOutputs) collectives.push(gather('the outputs after FORWARD', K));
    if (flags.gateGradAfterBackward) collectives.push(gather('the dot products after BACKWARD', 1));
    collectives.push({ what: 'the step agreement after BACKWARD', kind: 'allreduce', received: rankExperts.map(() => AGREEMENT_BYTES), sent: rankExperts.map(() => AGREEMENT_BYTES) });
  }
  const sum = (of: 'received' | 'sent', r: number): number => collectives.reduce((a, c) => a + c[of][r]!, 0);
  const receivedByRank = rankExperts.map((_, r) => sum('received', r));
  return {
    floatsPerEntry: 1 + (flags.mixesOutputs ? K : 0) + (flags.gateGradAfterBackward ? 1 : 0),
    collectives,
    receivedByRank,
    sentByRank: rankExperts.map((_, r) => sum('sent', r)),
    total: receivedByRank.reduce((a, n) => a + n, 0),
  };
}

/** A network: bandwidth and latency. */
export interface Network {
  /** Bandwidth β, Gb/s (10⁹ bits per second). */
  gbps: number;
  /** Latency α per message round, µs. */
  latencyMicros: number;
}

/** X(R): the exchange's time per step on `net`, µs (see the section's comment). */
export function exchangeMicros(bytes: ExchangeBytes, ranks: number, net: Network): number {
  if (ranks <= 1) return 0;
  if (!(net.gbps > 0) || !(net.latencyMicros >= 0)) throw new OptionError('network', `bandwidth must be > 0 and latency ≥ 0, got ${net.gbps} Gb/s and ${net.latencyMicros} µs`);
  const rounds = Math.ceil(Math.log2(ranks));
  const bytesPerMicro = (net.gbps * 1e9) / 8 / 1e6;
  return bytes.collectives.reduce((t, c) => t + rounds * net.latencyMicros + Math.max(...c.received) / bytesPerMicro, 0);
}

/** One prediction of R ranks × W workers. */
export interface RankPrediction {
  /** Problem size. */
  size: ScalingSize;
  /** Ranks R. */
  ranks: number;
  /** Workers per rank W. */
  workers: number;
  /** Experts E′. */
  experts: number;
  /** The network. */
  network: Network;
  /** All ranks on one host (κ for R·W busy cores) or one rank per host (κ for W). */
  oneHost: boolean;
  /** Bytes per step (the job's total and the busiest rank's received). */
  bytesPerStep: number;
  /** The busiest rank's received bytes per step. */
  maxRankBytesPerStep: number;
  /** X(R), µs per step. */
  exchangeMicros: number;
  /** T(R, W), µs. */
  stepMicros: number;
  /** Samples per second: B ÷ T. */
  samplesPerSecond: number;
  /** T(1 rank, W) ÷ T(R, W): against one rank with the same workers and experts. */
  speedup: number;
}

/** T(R, W) with E′ experts on `net` (see the section's comment). */
export function predictRanks(m: CostModelInputs, o: { ranks: number; workers: number; experts: number; batch: number; outputs: number; flags: ExchangeFlags; network: Network; oneHost: boolean }): RankPrediction {
  const { ranks: R, workers: W, experts: E } = o;
  const split = rankExpertCounts(E, R, W);
  const bytes = exchangeBytesPerStep({ batch: o.batch, experts: E, outputs: o.outputs, rankExperts: split, flags: o.flags });
  const x = exchangeMicros(bytes, R, o.network);
  const busy = o.oneHost ? R * W : W;
  const local = (shards: number, cores: number): number => {
    const share = Math.ceil(E / shards) / E, scale = E / m.experts;
    let t = m.mainMicros;
    for (const p of PHASES) t += m.compute1[p] * (cores > 1 ? m.contention[p] : 1) * scale * share + (W === 1 ? m.sync1[p] : syncAt(m, p, W, 'constant'));
    return t;
  };
  const t = local(R * W, busy) + x;
  const t1 = local(W, W);
  return {
    size: m.size,
    ranks: R,
    workers: W,
    experts: E,
    network: o.network,
    oneHost: o.oneHost,
    bytesPerStep: bytes.total,
    maxRankBytesPerStep: Math.max(...bytes.receivedByRank),
    exchangeMicros: x,
    stepMicros: t,
    samplesPerSecond: (o.batch * 1e6) / t,
    speedup: t1 / t,
  };
}
