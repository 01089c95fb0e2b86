/**
 * Routing in training: the gate's scores (with noisy top-k's learned noise) through the
 * routing plan (src/engine/routing-plan.ts) into the session's entries and blocks, and
 * ∂E/∂log ĝ back to the gate's logits u:
 *
 *   ĝ = softmax of h over the kept:  ∂E/∂h_i = ∂E/∂log ĝ_i − ĝ_i Σ_j ∂E/∂log ĝ_j (kept i; 0 otherwise)
 *   ĝ = p at the kept (dense, switch, topk:1, expert-choice):
 *                                    ∂E/∂u_m = Σ_j ∂E/∂log ĝ_j (δ_{m,e_j} − p_m)
 *
 * (dense: every expert kept, so ∂E/∂u_i = ∂E/∂log ĝ_i − p_i Σ_j ∂E/∂log ĝ_j, the paper's),
 * with the balancing terms added (src/engine/balance.ts), and the balancing bias stepped
 * after each UPDATE (DeepSeek-V3: b_i += γ·sign(mean load − load_i)).
 */
import type { Sgemm } from '../compute/provider.js';
import type { Kernels } from '../kernels/types.js';
import { CTRL, groupViews, type GroupRegions } from '../memory/layout.js';
import type { MixtureConfig } from '../model/config.js';
import type { Rng } from '../rng.js';
import { balanceGradientSlices, balanceLossSlices, hasBalanceTerms, RoutingStats } from './balance.js';
import type { ExpertRange } from './plan.js';
import { RoutingPlan, type GateScores, type RoutingRule } from './routing-plan.js';
import { drain, NO_PAUSES, perRange, RANGE_WORK, WHOLE, type Slicer, type Slices } from './slices.js';

/**
 * What the router reads and writes: the gate's scores, noise and logit gradient, the plan,
 * the loss's ∂E/∂log ĝ per entry, the batch's inputs (the noise network) and the control
 * block's block count.
 */
export type RouterViews = GroupRegions<'control' | 'batch' | 'gate' | 'plan' | 'loss'>;

/** What a session's router works with. */
export interface RouterSpec {
  config: MixtureConfig;
  /** The routing rule (the configuration's, or a test's). */
  rule: RoutingRule;
  maxBatch: number;
  /** Rows per block (R). */
  blockRows: number;
  /** Each shard's own experts (the shard that runs their UPDATE). */
  groups: readonly ExpertRange[];
  /** Share an expert's blocks among shards to balance their rows, or keep them with its owner. */
  split: boolean;
  /**
   * MPI: index of this rank's first shard in `groups` (every rank's shards are listed);
   * blocks of other ranks' shards get indices outside [0, W). `split` must be off.
   */
  shardOffset?: number;
  /** The noise generator (noisy top-k in training), else undefined. */
  noiseRng: Rng | undefined;
  gemm: Sgemm;
  kernels: Kernels;
}

/** softplus(x) = log(1 + eᵡ), without overflow. */
function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** A session's routing: plan the step after the gate's forward, backward into the gate. */
export class Router {
  /** Whether each row's ĝ sum to 1 (constant terms then cancel in ∂E/∂u). */
  readonly normalized: boolean;
  /** Load, drops and gate entropy of the steps since the last reset. */
  readonly stats: RoutingStats;
  private readonly E: number;
  private readonly plan: RoutingPlan;
  private readonly scores: GateScores;
  private readonly noisy: boolean;
  private readonly planViews: GroupRegions<'plan'>;

  constructor(
    private readonly v: RouterViews,
    private readonly s: RouterSpec,
  ) {
    const E = (this.E = s.config.experts);
    this.normalized = s.rule.normalized;
    this.stats = new RoutingStats(E);
    // The plan is handed its own group of regions only (see PHASE_WRITES).
    const planViews = groupViews(v, 'plan');
    this.planViews = planViews;
    this.plan = new RoutingPlan(s.rule, 'training', E, s.maxBatch, planViews, planViews.blockExpert.length, s.groups.length);
    this.noisy = s.config.routing.noise && s.noiseRng !== undefined;
    this.scores = { rows: 0, experts: E, logits: this.noisy ? v.noisyLogits : v.gateLogits, logProb: v.gateLogProb, prob: v.gateProb, bias: v.routerBias };
  }

  /** Noisy top-k: h = u + ε·softplus(x·Wn + bn) into v.noisyLogits (the draws in row order, range by range). */
  private *addNoise(rows: number, slicer: Slicer): Slices {
    const v = this.v, E = this.E;
    const D = this.s.config.inputs;
    const W = v.noiseParams.subarray(0, D * E), b = v.noiseParams.subarray(D * E);
    this.s.kernels.biasRows(v.noiseLogits, b, rows, E);
    this.s.gemm(false, false, rows, E, D, 1, v.batchX, W, 1, v.noiseLogits);
    yield* slicer.ranges(rows, perRange(4 * E), (from, until) => this.noiseRows(from, until));
  }

  /** The noise of rows [from, until), drawn in order. */
  private noiseRows(from: number, until: number): void {
    const v = this.v, E = this.E, rng = this.s.noiseRng!;
    for (let j = from * E; j < until * E; j++) {
      const eps = rng.normal();
      v.gateNoise[j] = eps;
      v.noisyLogits[j] = v.gateLogits[j]! + eps * softplus(v.noiseLogits[j]!);
    }
  }

  /** Write the step's entries, weights and blocks for `rows` batch rows (after the gate's forward, before FORWARD). */
  route(rows: number): void {
    drain(this.routeSliced(rows, WHOLE));
  }

  /** {@link Router.route}, its long loops in ranges of `slicer` (a small batch at once). */
  routeSlices(rows: number, slicer: Slicer): Slices {
    if (this.noisy || rows * this.E > RANGE_WORK) return this.routeSliced(rows, slicer);
    this.scores.rows = rows;
    this.plan.route(this.scores);
    this.blocks();
    return NO_PAUSES;
  }

  private *routeSliced(rows: number, slicer: Slicer): Slices {
    if (this.noisy) yield* this.addNoise(rows, slicer);
    this.scores.rows = rows;
    yield* this.plan.routeSlices(this.scores, slicer);
    this.blocks();
  }

  /**
   * Plan the step before the gate's forward pass where the rule's choice reads no gate
   * score (every row to every expert): entries, blocks and their shards, all the experts'
   * FORWARD reads, so that it can start at once and overlap the gate. False, doing nothing,
   * under any other rule, and where a large binning is not yet kept (see
   * {@link RoutingPlan.binAhead}): {@link Router.routeSlices} then plans after the gate.
   */
  planAhead(rows: number): boolean {
    if (this.noisy || !this.plan.binAhead(rows)) return false;
    this.blocks();
    return true;
  }

  /** After {@link Router.planAhead} and the gate's forward: the entries' weights. */
  weighSlices(rows: number, slicer: Slicer): Slices {
    this.scores.rows = rows;
    return this.plan.weighSlices(this.scores, slicer);
  }

  /** Cut the plan's entries into blocks and schedule them. */
  private blocks(): void {
    const plan = this.plan, v = this.v;
    plan.cut(this.planViews, this.s.blockRows);
    plan.schedule(this.planViews, this.s.groups, this.s.split, this.s.shardOffset ?? 0);
    Atomics.store(v.control, CTRL.BLOCKS, plan.blocks);
  }

  /** Whether the routing has balancing terms (else {@link Router.auxLoss} is 0). */
  get balanced(): boolean {
    return hasBalanceTerms(this.s.config.routing);
  }

  /** The balancing losses' value for the step (added to the error function's), its loops in ranges of `slicer`. */
  auxLoss(rows: number, slicer: Slicer): Generator<Promise<void>, number, void> {
    return balanceLossSlices(this.v, this.s.config.routing, rows, this.E, slicer);
  }

  /** ∂E/∂u (rows×E) from ∂E/∂log ĝ per entry, plus the balancing losses'. */
  backward(rows: number): void {
    drain(this.backwardSliced(rows, WHOLE));
  }

  /** {@link Router.backward}, its long loops in ranges of `slicer` (a small batch at once). */
  backwardSlices(rows: number, slicer: Slicer): Slices {
    if (this.noisy || this.balanced || rows * this.E > RANGE_WORK) return this.backwardSliced(rows, slicer);
    this.logitGradRows(0, rows, rows);
    return NO_PAUSES;
  }

  private *backwardSliced(rows: number, slicer: Slicer): Slices {
    const v = this.v, E = this.E;
    yield* slicer.ranges(rows, perRange(2 * E), (from, until) => this.logitGradRows(from, until, rows));
    // h = u + noise enters the loss only through ĝ: the noise network's gradient is the
    // loss's ∂E/∂h alone, taken before the balancing terms (functions of u, not h) join.
    if (this.noisy) yield* this.noiseBackward(rows, slicer);
    yield* balanceGradientSlices(v, this.s.config.routing, rows, E, slicer);
  }

  /** ∂E/∂u of rows [from, until) of a batch of `rows` from ∂E/∂log ĝ (no balancing terms yet). */
  private logitGradRows(from: number, until: number, rows: number): void {
    const v = this.v, E = this.E, du = v.gateLogitGrad, keptSoftmax = this.s.rule.weights === 'kept-softmax';
    if (!keptSoftmax && this.plan.entries === rows * E) {
      // Every row kept every expert: binning laid the entries out expert-major, row q's
      // entry of expert i at i·rows + q. The same sums in the same order, without the
      // plan's indirections (dense routing's every step).
      const dlw = v.entryDLogWeight, p = v.gateProb;
      for (let q = from; q < until; q++) {
        const base = q * E;
        let sum = 0;
        for (let i = 0; i < E; i++) sum += dlw[i * rows + q]!;
        for (let i = 0; i < E; i++) du[base + i] = dlw[i * rows + q]! - p[base + i]! * sum;
      }
      return;
    }
    for (let q = from; q < until; q++) {
      const a = v.rowStart[q]!, b = v.rowStart[q + 1]!, base = q * E;
      let sum = 0;
      for (let j = a; j < b; j++) sum += v.entryDLogWeight[v.rowEntries[j]!]!;
      if (keptSoftmax) {
        du.fill(0, base, base + E);
        for (let j = a; j < b; j++) {
          const e = v.rowEntries[j]!;
          du[base + v.entryExpert[e]!] = v.entryDLogWeight[e]! - v.entryGateWeight[e]! * sum;
        }
      } else {
        // Every expert's −p_m Σ (unless every expert is kept: each is written below).
        if (b - a < E) {
          if (sum !== 0) for (let m = 0; m < E; m++) du[base + m] = -v.gateProb[base + m]! * sum;
          else du.fill(0, base, base + E);
        }
        for (let j = a; j < b; j++) {
          const e = v.rowEntries[j]!, i = v.entryExpert[e]!;
          du[base + i] = v.entryDLogWeight[e]! - v.gateProb[base + i]! * sum;
        }
      }
    }
  }

  /** ∂E/∂(x·Wn + bn) = ∂E/∂h · ε · sigmoid(x·Wn + bn), then the noise network's gradients. */
  private *noiseBackward(rows: number, slicer: Slicer): Slices {
    const v = this.v, E = this.E, D = this.s.config.inputs;
    const dn = v.noisyLogits; // h is no longer needed: its rows take ∂E/∂(x·Wn + bn)
    yield* slicer.ranges(rows, perRange(4 * E), (from, until) => {
      for (let j = from * E; j < until * E; j++) dn[j] = (v.gateLogitGrad[j]! * v.gateNoise[j]!) / (1 + Math.exp(-v.noiseLogits[j]!));
    });
    this.s.gemm(true, false, D, E, rows, 1, v.batchX, dn, 0, v.noiseGrads.subarray(0, D * E));
    this.s.kernels.colSums(dn, rows, E, v.noiseGrads.subarray(D * E));
  }

  /** After the step's UPDATE: statistics, and the balancing bias. */
  afterStep(rows: number): void {
    this.stats.add(this.v, rows, this.plan.dropped);
    this.stepBias();
  }

  /** {@link Router.afterStep}, its long loops in ranges of `slicer` (a small batch at once). */
  afterStepSlices(rows: number, slicer: Slicer): Slices {
    if (rows * this.E > RANGE_WORK) return this.afterStepSliced(rows, slicer);
    this.afterStep(rows);
    return NO_PAUSES;
  }

  private *afterStepSliced(rows: number, slicer: Slicer): Slices {
    yield* this.stats.addSlices(this.v, rows, this.plan.dropped, slicer);
    this.stepBias();
  }

  /** DeepSeek-V3's balancing bias: b_i += γ·sign(mean load − load_i). */
  private stepBias(): void {
    const gamma = this.s.config.routing.balanceBias;
    if (gamma > 0) {
      const v = this.v, E = this.E;
      let total = 0;
      for (let i = 0; i < E; i++) total += v.expertLoad[i]!;
      const mean = total / E;
      for (let i = 0; i < E; i++) v.routerBias[i] = v.routerBias[i]! + gamma * Math.sign(mean - v.expertLoad[i]!);
    }
  }
}
