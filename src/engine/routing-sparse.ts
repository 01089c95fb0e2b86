/**
 * Sparse routing on a session's views: each row goes to a few experts, each expert
 * computes only its rows, cut into blocks of R rows that any shard may compute.
 *
 *   topk:K           kept = the K largest of h + b (ties to the lower index), h = u or,
 *                    with noise, u + ε·softplus(x·Wn + bn); ĝ = softmax of h over the kept;
 *                    ∂E/∂h_i = ∂E/∂log ĝ_i − ĝ_i Σ_j ∂E/∂log ĝ_j (kept i; 0 otherwise)
 *   switch, topk:1   kept = the largest of u + b (h + b); ĝ = p_kept = softmax(u) over all E;
 *   expert-choice:C  expert i keeps the ⌈C·B/E⌉ rows of largest p_{r,i} (ties to the lower
 *                    row); ĝ = p; a row no expert kept is dropped (contributes nothing);
 *                    for both: ∂E/∂u_m = Σ_j ∂E/∂log ĝ_j (δ_{m,e_j} − p_m)
 *
 * with b the balancing bias (choosing only; DeepSeek-V3: after each step b_i += γ·sign(mean
 * load − load_i)). An expert's entries are its rows in increasing order; each row's
 * entries are in increasing expert order; blocks are in expert order, then row order; a
 * block's shard is chosen to balance the shards' rows (longest first, to the least
 * loaded), or is its expert's owner without splitting. Nothing here depends on the
 * number of shards but that last choice, so results are the same for every worker count.
 */
import type { Sgemm } from '../compute/provider.js';
import type { Kernels } from '../kernels/types.js';
import { CTRL, type MixtureViews } from '../memory/layout.js';
import type { MixtureConfig } from '../model/config.js';
import { renormalises } from '../model/routing.js';
import type { Rng } from '../rng.js';
import { addBalanceGradients, balanceLossValue, RoutingStats } from './balance.js';
import { expertCapacity, ownerOf, type ExpertRange } from './plan.js';
import type { Router } from './routing.js';

/** What a sparse router works with. */
export interface SparseRouterSpec {
  config: MixtureConfig;
  maxBatch: number;
  /** Rows per block (R). */
  blockRows: number;
  /** Each shard's own experts (the shard that runs their UPDATE). */
  groups: readonly ExpertRange[];
  /** Shard index of this process's first shard (MPI ranks; split must then be off): others' blocks get indices outside [0, W). */
  shardOffset?: number;
  /** Share an expert's blocks among shards to balance their rows (default), or keep them with its owner. */
  split: boolean;
  /** The noise generator (noisy top-k in training), else undefined. */
  noiseRng: Rng | undefined;
  gemm: Sgemm;
  kernels: Kernels;
}

/** softplus(x) = log(1 + eᵡ), without overflow. */
function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

export class SparseRouter implements Router {
  readonly normalized: boolean;
  readonly routesBeforeGate = false;
  readonly stats: RoutingStats;
  private readonly E: number;
  private readonly W: number;
  /** B×E: whether row r goes to expert i. */
  private readonly chosen: Uint8Array;
  private readonly rowCount: Int32Array;
  private readonly cursor: Int32Array;
  private readonly order: Int32Array;
  private readonly blockOrder: Int32Array;
  private readonly workerRows: Float64Array;
  private dropped = 0;

  constructor(
    private readonly v: MixtureViews,
    private readonly s: SparseRouterSpec,
  ) {
    const E = (this.E = s.config.experts), B = s.maxBatch;
    this.W = s.groups.length;
    this.normalized = renormalises(s.config.routing);
    this.stats = new RoutingStats(E);
    this.chosen = new Uint8Array(B * E);
    this.rowCount = new Int32Array(B + 1);
    this.cursor = new Int32Array(Math.max(B, E) + 1);
    this.order = new Int32Array(B);
    this.blockOrder = new Int32Array(v.blockExpert.length);
    this.workerRows = new Float64Array(this.W);
  }

  /** The logits experts are chosen by (before the bias): u, or u + ε·softplus(x·Wn + bn) with noise. */
  private choiceLogits(rows: number): Float32Array {
    const v = this.v, E = this.E, rng = this.s.noiseRng;
    if (!this.s.config.routing.noise || !rng) return v.gateLogits;
    const D = this.s.config.inputs;
    const W = v.noiseParams.subarray(0, D * E), b = v.noiseParams.subarray(D * E);
    this.s.kernels.biasRows(v.noiseLogits, b, rows, E);
    this.s.gemm(false, false, rows, E, D, 1, v.batchX, W, 1, v.noiseLogits);
    for (let j = 0; j < rows * E; j++) {
      const eps = rng.normal();
      v.gateNoise[j] = eps;
      v.noisyLogits[j] = v.gateLogits[j]! + eps * softplus(v.noiseLogits[j]!);
    }
    return v.noisyLogits;
  }

  route(rows: number): void {
    const v = this.v, E = this.E, r = this.s.config.routing;
    const chosen = this.chosen;
    chosen.fill(0, 0, rows * E);
    const h = this.choiceLogits(rows);
    if (r.kind === 'expert-choice') {
      const cap = expertCapacity(r.k, rows, E), order = this.order.subarray(0, rows);
      for (let i = 0; i < E; i++) {
        for (let q = 0; q < rows; q++) order[q] = q;
        // Largest score first, ties to the lower row (the comparator makes the order total).
        order.sort((a, b) => v.gateProb[b * E + i]! - v.gateProb[a * E + i]! || a - b);
        for (let j = 0; j < cap; j++) chosen[order[j]! * E + i] = 1;
      }
    } else {
      const K = r.k, bias = v.routerBias;
      for (let q = 0; q < rows; q++) {
        for (let j = 0; j < K; j++) {
          let best = -1, bestScore = -Infinity;
          for (let i = 0; i < E; i++) {
            if (chosen[q * E + i]) continue;
            const score = h[q * E + i]! + (bias.length > 0 ? bias[i]! : 0);
            // Strictly greater: among equal scores the lower index wins (NaN never does).
            if (best < 0 || score > bestScore) {
              best = i;
              bestScore = score;
            }
          }
          chosen[q * E + best] = 1;
        }
      }
    }
    this.entries(rows, h);
    this.blocks();
  }

  /** Entries in expert-major order (rows ascending), each row's CSR in expert order, and ĝ. */
  private entries(rows: number, h: Float32Array): void {
    const v = this.v, E = this.E, chosen = this.chosen;
    let n = 0;
    for (let i = 0; i < E; i++) {
      v.expertStart[i] = n;
      let load = 0;
      for (let q = 0; q < rows; q++) {
        if (!chosen[q * E + i]) continue;
        v.entryRow[n] = q;
        v.entryExpert[n] = i;
        n++;
        load++;
      }
      v.expertLoad[i] = load;
    }
    v.expertStart[E] = n;
    // Row CSR: count, prefix, fill in entry order (so each row's entries are in expert order).
    const count = this.rowCount;
    count.fill(0, 0, rows + 1);
    for (let e = 0; e < n; e++) count[v.entryRow[e]! + 1] = count[v.entryRow[e]! + 1]! + 1;
    this.dropped = 0;
    for (let q = 0; q < rows; q++) {
      if (count[q + 1] === 0) this.dropped++;
      count[q + 1] = count[q + 1]! + count[q]!;
    }
    v.rowStart.set(count.subarray(0, rows + 1));
    const cur = this.cursor;
    cur.set(count.subarray(0, rows));
    for (let e = 0; e < n; e++) {
      const q = v.entryRow[e]!;
      v.rowEntries[cur[q]!] = e;
      cur[q] = cur[q]! + 1;
    }
    // ĝ: softmax of h over the kept (topk), or the full softmax's p (switch, expert-choice).
    for (let q = 0; q < rows; q++) {
      const a = v.rowStart[q]!, b = v.rowStart[q + 1]!;
      if (this.normalized) {
        let m = -Infinity;
        for (let j = a; j < b; j++) m = Math.max(m, h[q * E + v.entryExpert[v.rowEntries[j]!]!]!);
        let sum = 0;
        for (let j = a; j < b; j++) sum += Math.exp(h[q * E + v.entryExpert[v.rowEntries[j]!]!]! - m);
        const lse = m + Math.log(sum);
        for (let j = a; j < b; j++) {
          const e = v.rowEntries[j]!;
          const lw = h[q * E + v.entryExpert[e]!]! - lse;
          v.entryLogWeight[e] = lw;
          v.entryGateWeight[e] = Math.exp(lw);
        }
      } else {
        for (let j = a; j < b; j++) {
          const e = v.rowEntries[j]!, i = v.entryExpert[e]!;
          v.entryLogWeight[e] = v.gateLogProb[q * E + i]!;
          v.entryGateWeight[e] = v.gateProb[q * E + i]!;
        }
      }
    }
  }

  /** Cut each expert's entries into blocks of R rows, give each a gradient slot and a shard. */
  private blocks(): void {
    const v = this.v, E = this.E, R = this.s.blockRows;
    let nb = 0, slot = 0;
    for (let i = 0; i < E; i++) {
      const a = v.expertStart[i]!, b = v.expertStart[i + 1]!;
      for (let s = a; s < b; s += R) {
        v.blockExpert[nb] = i;
        v.blockStart[nb] = s;
        v.blockRows[nb] = Math.min(R, b - s);
        v.blockSlot[nb] = s === a ? -1 : slot++;
        nb++;
      }
    }
    if (this.s.split && this.W > 1) {
      // Longest block first, to the shard with the fewest rows so far (ties: lower index).
      const order = this.blockOrder.subarray(0, nb);
      for (let j = 0; j < nb; j++) order[j] = j;
      order.sort((x, y) => v.blockRows[y]! - v.blockRows[x]! || x - y);
      this.workerRows.fill(0);
      for (let j = 0; j < nb; j++) {
        const blk = order[j]!;
        let w = 0;
        for (let k = 1; k < this.W; k++) if (this.workerRows[k]! < this.workerRows[w]!) w = k;
        v.blockWorker[blk] = w;
        this.workerRows[w] = this.workerRows[w]! + v.blockRows[blk]!;
      }
    } else {
      for (let j = 0; j < nb; j++) v.blockWorker[j] = ownerOf(this.s.groups, v.blockExpert[j]!) - (this.s.shardOffset ?? 0);
    }
    Atomics.store(v.control, CTRL.BLOCKS, nb);
  }

  weigh(): void {
    // ĝ were written with the entries (they depend on the choice).
  }

  auxLoss(rows: number): number {
    return balanceLossValue(this.v, this.s.config.routing, rows, this.E);
  }

  backward(rows: number): void {
    const v = this.v, E = this.E, du = v.gateLogitGrad;
    du.fill(0, 0, rows * E);
    for (let q = 0; q < rows; q++) {
      const a = v.rowStart[q]!, b = v.rowStart[q + 1]!;
      let sum = 0;
      for (let j = a; j < b; j++) sum += v.entryDLogWeight[v.rowEntries[j]!]!;
      if (this.normalized) {
        for (let j = a; j < b; j++) {
          const e = v.rowEntries[j]!;
          du[q * E + v.entryExpert[e]!] = v.entryDLogWeight[e]! - v.entryGateWeight[e]! * sum;
        }
      } else {
        if (sum !== 0) for (let m = 0; m < E; m++) du[q * E + m] = -v.gateProb[q * E + m]! * sum;
        for (let j = a; j < b; j++) {
          const e = v.rowEntries[j]!, i = v.entryExpert[e]!;
          du[q * E + i] = du[q * E + i]! + v.entryDLogWeight[e]!;
        }
      }
    }
    // h = u + noise enters the loss only through ĝ: the noise network's gradient is the
    // loss's ∂E/∂h alone, taken before the balancing terms (functions of u, not h) join.
    if (this.s.config.routing.noise && this.s.noiseRng) this.noiseBackward(rows);
    addBalanceGradients(v, this.s.config.routing, rows, E);
  }

  /** ∂E/∂(x·Wn + bn) = ∂E/∂h · ε · sigmoid(x·Wn + bn), then the noise network's gradients. */
  private noiseBackward(rows: number): void {
    const v = this.v, E = this.E, D = this.s.config.inputs;
    const dn = v.noisyLogits; // h is no longer needed: its rows take ∂E/∂(x·Wn + bn)
    for (let j = 0; j < rows * E; j++) dn[j] = v.gateLogitGrad[j]! * v.gateNoise[j]! / (1 + Math.exp(-v.noiseLogits[j]!));
    this.s.gemm(true, false, D, E, rows, 1, v.batchX, dn, 0, v.noiseGrads.subarray(0, D * E));
    this.s.kernels.colSums(dn, rows, E, v.noiseGrads.subarray(D * E));
  }

  afterStep(rows: number): void {
    this.stats.add(this.v, rows, this.dropped);
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
