/**
 * Routing: which experts compute which rows of a batch, with which combination weights ĝ,
 * and how ∂E/∂log ĝ flows back to the gate's logits u.
 *
 *   dense (the paper): every expert takes every row, ĝ = softmax(u);
 *     ∂E/∂u_i = ∂E/∂log ĝ_i − g_i Σ_j ∂E/∂log ĝ_j.
 *
 * A router writes the step's entries (expertStart, entryRow, entryExpert, the CSR of each
 * row's entries) and blocks; the experts read those, the main side reads the rest.
 */
import { CTRL, type MixtureViews } from '../memory/layout.js';
import type { RoutingConfig } from '../model/routing.js';
import { addBalanceGradients, balanceLossValue, RoutingStats } from './balance.js';
import { ownerOf, type ExpertRange } from './plan.js';

/** A routing rule on a session's views. */
export interface Router {
  /** Whether each row's ĝ sum to 1 (constant terms then cancel in ∂E/∂u). */
  readonly normalized: boolean;
  /** Whether the entries can be written before the gate runs (dense: they do not depend on it). */
  readonly routesBeforeGate: boolean;
  /** Load, drops and gate entropy of the steps since the last reset. */
  readonly stats: RoutingStats;
  /** Write the step's entries and blocks for `rows` batch rows (before FORWARD). */
  route(rows: number): void;
  /** Write ĝ and log ĝ per entry from the gate's softmax (after the gate's forward). */
  weigh(rows: number): void;
  /** The balancing losses' value for the step (added to the error function's). */
  auxLoss(rows: number): number;
  /** ∂E/∂u (rows×E) from ∂E/∂log ĝ per entry, plus the balancing losses'. */
  backward(rows: number): void;
  /** After the step's UPDATE: balancing bias, statistics. */
  afterStep(rows: number): void;
}

/**
 * The paper's dense softmax: expert i's entries are [i·maxBatch, i·maxBatch + rows), one
 * block per expert computed by its owner; row r's entries are r, maxBatch + r, … in
 * expert order (so every sum over experts runs in expert order, whatever the sharding).
 */
export class DenseRouter implements Router {
  readonly normalized = true;
  readonly routesBeforeGate = true;
  readonly stats: RoutingStats;
  private routedRows = -1;

  constructor(
    private readonly v: MixtureViews,
    private readonly E: number,
    private readonly maxBatch: number,
    private readonly groups: readonly ExpertRange[],
    private readonly routing: RoutingConfig,
    /** Shard index of this process's first shard (MPI ranks): blocks of other processes' shards get indices outside [0, W). */
    private readonly shardOffset = 0,
  ) {
    this.stats = new RoutingStats(E);
    const { rowStart, rowEntries, entryExpert } = v;
    for (let r = 0; r < maxBatch; r++) {
      rowStart[r] = r * E;
      for (let i = 0; i < E; i++) rowEntries[r * E + i] = i * maxBatch + r;
    }
    rowStart[maxBatch] = maxBatch * E;
    for (let i = 0; i < E; i++) {
      entryExpert.fill(i, i * maxBatch, (i + 1) * maxBatch);
      for (let r = 0; r < maxBatch; r++) v.entryRow[i * maxBatch + r] = r;
    }
  }

  route(rows: number): void {
    if (rows === this.routedRows) return; // the same every step but an epoch's short last batch
    this.routedRows = rows;
    const { v, E, maxBatch } = this;
    for (let i = 0; i < E; i++) {
      v.expertStart[i] = i * maxBatch;
      v.blockExpert[i] = i;
      v.blockStart[i] = i * maxBatch;
      v.blockRows[i] = rows;
      v.blockSlot[i] = -1;
      v.blockWorker[i] = ownerOf(this.groups, i) - this.shardOffset;
    }
    v.expertStart[E] = E * maxBatch;
    v.expertLoad.fill(rows);
    // rowStart is the same for every row count; only the first `rows` rows are read.
    Atomics.store(v.control, CTRL.BLOCKS, E);
  }

  auxLoss(rows: number): number {
    return balanceLossValue(this.v, this.routing, rows, this.E);
  }

  afterStep(rows: number): void {
    this.stats.add(this.v, rows, 0);
  }

  weigh(rows: number): void {
    const { v, E, maxBatch } = this;
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < E; i++) {
        v.entryLogWeight[i * maxBatch + r] = v.gateLogProb[r * E + i]!;
        v.entryGateWeight[i * maxBatch + r] = v.gateProb[r * E + i]!;
      }
    }
  }

  backward(rows: number): void {
    const { v, E, maxBatch } = this;
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let i = 0; i < E; i++) sum += v.entryDLogWeight[i * maxBatch + r]!;
      for (let i = 0; i < E; i++) v.gateLogitGrad[r * E + i] = v.entryDLogWeight[i * maxBatch + r]! - v.gateProb[r * E + i]! * sum;
    }
    addBalanceGradients(v, this.routing, rows, E);
  }
}
