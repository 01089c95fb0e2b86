/**
 * Balancing terms on the gate's logits u (B×E), with p = softmax(u) over all E:
 *
 *   Switch loss   L = w·E·Σ_i f_i·P_i,  f_i = (row, choice) pairs routed to i ÷ all pairs
 *                 (sums to 1; not differentiated), P_i = mean_r p_{r,i};
 *                 ∂L/∂u_{r,m} = (w·E/B)·p_{r,m}·(f_m − Σ_i f_i p_{r,i})
 *   router z-loss L = w·mean_r (logsumexp u_r)²;  ∂L/∂u_{r,m} = (2w/B)·lse_r·p_{r,m}
 *
 * and per-epoch routing statistics. Loss values are float64 sums; gradients are added to
 * the gate's ∂E/∂u in place. The loops over B×E run in ranges of a {@link Slicer} (a
 * training step pauses between them), sums carried from range to range in the same order.
 */
import type { GroupRegions } from '../memory/layout.js';
import type { RoutingConfig } from '../model/routing.js';
import { drain, NO_PAUSES, perRange, WHOLE, type Slicer, type Slices } from './slices.js';

/** What the balancing terms and the routing statistics read and write: the gate's probabilities and logit gradient, the plan's loads and entries. */
export type BalanceViews = GroupRegions<'gate' | 'plan'>;

/** The balancing losses' value for a step of `rows` rows (0 when both are off). */
export function balanceLossValue(v: BalanceViews, r: RoutingConfig, rows: number, E: number): number {
  const s = balanceLossSlices(v, r, rows, E, WHOLE);
  for (let x = s.next(); ; x = s.next()) if (x.done) return x.value;
}

/** Whether a routing configuration has balancing terms (else their value is 0 and their gradient nothing). */
export function hasBalanceTerms(r: RoutingConfig): boolean {
  return r.balanceLoss > 0 || r.zLoss > 0;
}

/** {@link balanceLossValue}, its loop over the experts in ranges of `slicer`. */
export function* balanceLossSlices(v: BalanceViews, r: RoutingConfig, rows: number, E: number, slicer: Slicer): Generator<Promise<void>, number, void> {
  let total = 0;
  if (r.balanceLoss > 0) {
    const pairs = loadTotal(v, E);
    let s = 0;
    yield* slicer.ranges(E, perRange(rows), (from, until) => {
      for (let i = from; i < until; i++) {
        let P = 0;
        for (let q = 0; q < rows; q++) P += v.gateProb[q * E + i]!;
        s += (v.expertLoad[i]! / pairs) * (P / rows);
      }
    });
    total += r.balanceLoss * E * s;
  }
  if (r.zLoss > 0) {
    let s = 0;
    for (let q = 0; q < rows; q++) {
      const lse = v.gateLogits[q * E]! - v.gateLogProb[q * E]!;
      s += lse * lse;
    }
    total += (r.zLoss * s) / rows;
  }
  return total;
}

/** Add the balancing losses' ∂L/∂u to v.gateLogitGrad (rows×E). */
export function addBalanceGradients(v: BalanceViews, r: RoutingConfig, rows: number, E: number): void {
  drain(balanceGradientSlices(v, r, rows, E, WHOLE));
}

/** {@link addBalanceGradients}, its rows in ranges of `slicer`. */
export function balanceGradientSlices(v: BalanceViews, r: RoutingConfig, rows: number, E: number, slicer: Slicer): Slices {
  return hasBalanceTerms(r) ? balanceGradients(v, r, rows, E, slicer) : NO_PAUSES;
}

function* balanceGradients(v: BalanceViews, r: RoutingConfig, rows: number, E: number, slicer: Slicer): Slices {
  if (r.balanceLoss > 0) {
    const pairs = loadTotal(v, E), c = (r.balanceLoss * E) / rows;
    yield* slicer.ranges(rows, perRange(4 * E), (from, until) => {
      for (let q = from; q < until; q++) {
        let fp = 0;
        for (let i = 0; i < E; i++) fp += (v.expertLoad[i]! / pairs) * v.gateProb[q * E + i]!;
        for (let m = 0; m < E; m++) {
          const p = v.gateProb[q * E + m]!;
          v.gateLogitGrad[q * E + m] = v.gateLogitGrad[q * E + m]! + c * p * (v.expertLoad[m]! / pairs - fp);
        }
      }
    });
  }
  if (r.zLoss > 0) {
    const c = (2 * r.zLoss) / rows;
    yield* slicer.ranges(rows, perRange(2 * E), (from, until) => {
      for (let q = from; q < until; q++) {
        const lse = v.gateLogits[q * E]! - v.gateLogProb[q * E]!;
        for (let m = 0; m < E; m++) v.gateLogitGrad[q * E + m] = v.gateLogitGrad[q * E + m]! + c * lse * v.gateProb[q * E + m]!;
      }
    });
  }
}

function loadTotal(v: BalanceViews, E: number): number {
  let n = 0;
  for (let i = 0; i < E; i++) n += v.expertLoad[i]!;
  return Math.max(1, n);
}

/** Routing statistics accumulated over the steps of an epoch. */
export class RoutingStats {
  /** Rows routed to each expert, summed over the epoch's steps. */
  readonly rowsPerExpert: Float64Array;
  /** Rows no expert took (expert-choice). */
  dropped = 0;
  /** Rows seen. */
  rows = 0;
  /** Steps seen. */
  steps = 0;
  private entropySum = 0;

  constructor(readonly experts: number) {
    this.rowsPerExpert = new Float64Array(experts);
  }

  /** Add one step: its load, dropped rows and the gate's entropy (full softmax) per row. */
  add(v: BalanceViews, rows: number, dropped: number): void {
    this.addLoads(v);
    this.addRest(this.entropyRows(v, 0, rows, 0), rows, dropped);
  }

  /** {@link RoutingStats.add}, its rows in ranges of `slicer`. */
  *addSlices(v: BalanceViews, rows: number, dropped: number, slicer: Slicer): Slices {
    this.addLoads(v);
    let h = 0;
    yield* slicer.ranges(rows, perRange(2 * this.experts), (from, until) => (h = this.entropyRows(v, from, until, h)));
    this.addRest(h, rows, dropped);
  }

  private addLoads(v: BalanceViews): void {
    const E = this.experts;
    for (let i = 0; i < E; i++) this.rowsPerExpert[i] = this.rowsPerExpert[i]! + v.expertLoad[i]!;
  }

  /** `h` less Σ p log p over rows [from, until) (float64, in order). */
  private entropyRows(v: BalanceViews, from: number, until: number, h: number): number {
    const E = this.experts;
    for (let q = from; q < until; q++) {
      for (let i = 0; i < E; i++) {
        const p = v.gateProb[q * E + i]!;
        if (p > 0) h -= p * v.gateLogProb[q * E + i]!;
      }
    }
    return h;
  }

  private addRest(h: number, rows: number, dropped: number): void {
    this.entropySum += h;
    this.dropped += dropped;
    this.rows += rows;
    this.steps++;
  }

  /** Mean over rows of −Σ_i p_i log p_i (nats). */
  get entropy(): number {
    return this.rows > 0 ? this.entropySum / this.rows : 0;
  }

  /** Coefficient of variation of the rows per expert (std ÷ mean; 0 for a perfectly even load). */
  get loadCv(): number {
    const E = this.experts;
    let mean = 0;
    for (let i = 0; i < E; i++) mean += this.rowsPerExpert[i]! / E;
    if (mean === 0) return 0;
    let sq = 0;
    for (let i = 0; i < E; i++) sq += (this.rowsPerExpert[i]! - mean) ** 2 / E;
    return Math.sqrt(sq) / mean;
  }

  /** Experts that got no row in the epoch. */
  get unused(): number {
    let n = 0;
    for (let i = 0; i < this.experts; i++) if (this.rowsPerExpert[i] === 0) n++;
    return n;
  }

  /** Start a new epoch. */
  reset(): void {
    this.rowsPerExpert.fill(0);
    this.dropped = this.rows = this.steps = this.entropySum = 0;
  }
}
