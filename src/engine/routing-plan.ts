/**
 * The routing plan: which experts compute which rows of a batch, with which combination
 * weights ĝ, cut into blocks and scheduled onto shards. The one definition that training
 * (fit), predict and evaluate all run; the ONNX builder (src/io/onnx/export.ts) and the
 * PyTorch example (examples/pytorch/local_experts.py) spell the same choice in their own
 * operators, and test/routing-plan.test.ts checks that the three choose the same experts.
 *
 * Split as MegaBlocks splits it, each step writing preallocated buffers (nothing is
 * allocated per batch):
 *
 *   1. choice     each row's experts, as a rows×E mask, from the gate's scores (a rule);
 *   2. binning    each expert's rows (MegaBlocks' indices_and_bins): expert i's entries are
 *                 [expertStart[i], expertStart[i] + expertLoad[i]), rows ascending; each
 *                 row's entries rowEntries[rowStart[q] .. rowStart[q+1]), experts
 *                 ascending; the rows no expert took (dropped);
 *      weights    ĝ and log ĝ of every entry;
 *   3. blocks     each expert's entries cut into blocks of at most R rows, each with a
 *                 gradient slot (the expert's own for its first block);
 *   4. schedule   each block's shard: longest first to the least loaded shard (split), or
 *                 its expert's owner. Only this depends on the number of shards, so
 *                 results are the same for every worker count.
 *
 * The rules (the score each ranks by is one definition everywhere):
 *
 *   dense             every expert takes every row; ĝ = p = softmax(u)
 *   topk:K            the K largest biased scores fround(h + b) (ties to the lower index);
 *                     ĝ = softmax of h over the kept (K ≥ 2), or p of the kept (topk:1)
 *   switch            topk:1
 *   expert-choice:C   training: expert i keeps the ⌈C·B/E⌉ rows of largest log p_{r,i}
 *                     (ties to the lower row; a row no expert kept is dropped); predict:
 *                     each row goes to its ⌈C⌉ experts of largest log p (ties to the lower
 *                     index), so a prediction does not depend on the other rows; ĝ = p
 *
 * with u the gate's logits, h = u (or, in training with noisy top-k, u + ε·softplus(·)),
 * p = softmax(u), b the balancing bias (length E, or empty for none), and
 * fround(h + b) the float32 sum (what ONNX's Add and PyTorch's float32 `+` compute).
 *
 * Adding a rule: a {@link RoutingRule} here (its choice, its weights, its most entries per
 * batch), its spelling in the ONNX builder and in the PyTorch example.
 */
import type { RoutingConfig } from '../model/routing.js';
import { NO_PAUSES, perRange, RANGE_WORK, type Slicer, type Slices } from './slices.js';

/** A shard's own experts [first, first + count) (the shard that runs their UPDATE). */
interface OwnedRange {
  first: number;
  count: number;
}

/** Training (a batch to choose from; expert-choice ranks rows) or predict (each row alone). */
export type RoutingMode = 'training' | 'predict';

/** How a rule weighs a row's chosen experts. */
export type RoutingWeights =
  /** ĝ = softmax of h over the row's chosen experts (they sum to 1). */
  | 'kept-softmax'
  /** ĝ = p, the gate's softmax over all E experts, at the chosen. */
  | 'probability';

/** The gate's scores for `rows` rows, each rows×E row-major (only the first rows·E read). */
export interface GateScores {
  /** Rows in the batch. */
  rows: number;
  /** Experts E. */
  experts: number;
  /** h: the logits experts are chosen and renormalised by (u, or u with noise in training). */
  logits: Float32Array;
  /** log p = log softmax(u). */
  logProb: Float32Array;
  /** p = softmax(u). */
  prob: Float32Array;
  /** The balancing bias b, length E (empty: no bias). */
  bias: Float32Array;
}

/** Scratch a rule's choice may use: `order` holds at least max(rows, E) integers, `score` at least E floats. */
export interface ChoiceScratch {
  order: Int32Array;
  score: Float32Array;
}

/** A routing rule: how rows choose experts, and how the chosen are weighed. */
export interface RoutingRule {
  /** The rule as it is spelled (`dense`, `topk:2`, …). */
  readonly name: string;
  /** How the chosen experts are weighed. */
  readonly weights: RoutingWeights;
  /** Whether each row's ĝ sum to 1 (constant terms then cancel in ∂E/∂u). */
  readonly normalized: boolean;
  /** Most (row, expert) entries a batch of `rows` rows can have among E experts. */
  maxEntries(rows: number, experts: number, mode: RoutingMode): number;
  /** Set chosen[q·E + i] = 1 for each row q's experts (the mask comes zeroed). */
  choose(s: GateScores, mode: RoutingMode, chosen: Uint8Array, scratch: ChoiceScratch): void;
  /**
   * Optional: true when the rule always chooses every expert for every row (dense). Its
   * choice and binning then depend on the row count only, and a plan keeps them from one
   * batch to the next of the same size (only the weights change).
   */
  readonly everyExpert?: boolean;
  /**
   * Optional, for a choice over many experts: the choice in parts (rows, or experts), so
   * that a training step can pause between them. `parts` says how many parts the choice
   * of `s` has and the work of one (in floats read); {@link RoutingRule.choosePart} marks
   * those of parts [from, until) only, and over parts that cover them all in order marks
   * exactly what {@link RoutingRule.choose} marks.
   */
  parts?(s: GateScores, mode: RoutingMode): { count: number; cost: number };
  choosePart?(s: GateScores, mode: RoutingMode, chosen: Uint8Array, scratch: ChoiceScratch, from: number, until: number): void;
}

/** The biased score experts are ranked by: the float32 sum of a logit and its expert's bias. */
export function biasedScore(h: number, bias: Float32Array, i: number): number {
  return bias.length > 0 ? Math.fround(h + bias[i]!) : h;
}

/**
 * Mark each row's K largest of `score(q, i)` (ties to the lower index; NaN never beats a
 * number), rows [from, until). A scan per pick for small K, one sort of the row for large K.
 */
function topPerRow(s: GateScores, K: number, chosen: Uint8Array, scratch: ChoiceScratch, byLogProb: boolean, from = 0, until = s.rows): void {
  const E = s.experts, sc = scratch.score;
  for (let q = from; q < until; q++) {
    const base = q * E;
    if (byLogProb) for (let i = 0; i < E; i++) sc[i] = s.logProb[base + i]!;
    else for (let i = 0; i < E; i++) sc[i] = biasedScore(s.logits[base + i]!, s.bias, i); // float32: fround
    if (K >= E) {
      chosen.fill(1, base, base + E);
    } else if (K <= 8) {
      for (let j = 0; j < K; j++) {
        let best = -1, bestScore = -Infinity;
        for (let i = 0; i < E; i++) {
          if (chosen[base + i]) continue;
          // Strictly greater: among equal scores the lower index wins.
          if (best < 0 || sc[i]! > bestScore) {
            best = i;
            bestScore = sc[i]!;
          }
        }
        chosen[base + best] = 1;
      }
    } else {
      const order = scratch.order.subarray(0, E);
      for (let i = 0; i < E; i++) {
        order[i] = i;
        if (Number.isNaN(sc[i])) sc[i] = -Infinity;
      }
      order.sort((a, b) => sc[b]! - sc[a]! || a - b);
      for (let j = 0; j < K; j++) chosen[base + order[j]!] = 1;
    }
  }
}

/** expert-choice: rows each expert takes from a batch of B, ⌈C·B/E⌉ (at most B). */
export function expertCapacity(C: number, B: number, E: number): number {
  return Math.min(B, Math.ceil((C * B) / E));
}

const DENSE: RoutingRule = {
  name: 'dense',
  weights: 'probability',
  normalized: true,
  maxEntries: (rows, E) => rows * E,
  choose(s, _mode, chosen) {
    chosen.fill(1, 0, s.rows * s.experts);
  },
  everyExpert: true,
};

function topk(K: number, name: string): RoutingRule {
  return {
    name,
    // One kept expert's renormalised weight would be 1 and give the gate no gradient:
    // as the Switch Transformer, p of the chosen.
    weights: K > 1 ? 'kept-softmax' : 'probability',
    normalized: K > 1,
    maxEntries: (rows, E) => rows * Math.min(K, E),
    choose(s, _mode, chosen, scratch) {
      topPerRow(s, K, chosen, scratch, false);
    },
    parts: (s) => ({ count: s.rows, cost: s.experts * Math.min(K, 8) }),
    choosePart(s, _mode, chosen, scratch, from, until) {
      topPerRow(s, K, chosen, scratch, false, from, until);
    },
  };
}

function expertChoice(C: number): RoutingRule {
  return {
    name: `expert-choice:${C}`,
    weights: 'probability',
    normalized: false,
    maxEntries: (rows, E, mode) => (mode === 'training' ? E * expertCapacity(C, rows, E) : rows * Math.min(E, Math.ceil(C))),
    choose(s, mode, chosen, scratch) {
      this.choosePart!(s, mode, chosen, scratch, 0, this.parts!(s, mode).count);
    },
    // Predict: rows, each its experts; training: experts, each its rows.
    parts: (s, mode) => (mode === 'predict' ? { count: s.rows, cost: s.experts * Math.min(Math.ceil(C), 8) } : { count: s.experts, cost: 8 * s.rows }),
    choosePart(s, mode, chosen, scratch, from, until) {
      const E = s.experts, rows = s.rows;
      if (mode === 'predict') {
        topPerRow(s, Math.min(E, Math.ceil(C)), chosen, scratch, true, from, until);
        return;
      }
      const cap = expertCapacity(C, rows, E), order = scratch.order.subarray(0, rows), lp = s.logProb;
      for (let i = from; i < until; i++) {
        for (let q = 0; q < rows; q++) order[q] = q;
        // Largest log p first, ties to the lower row (the comparator makes the order total).
        order.sort((a, b) => lp[b * E + i]! - lp[a * E + i]! || a - b);
        for (let j = 0; j < cap; j++) chosen[order[j]! * E + i] = 1;
      }
    },
  };
}

/** The rule a routing configuration names. */
export function routingRule(r: RoutingConfig): RoutingRule {
  switch (r.kind) {
    case 'dense':
      return DENSE;
    case 'topk':
      return topk(r.k, `topk:${r.k}`);
    case 'switch':
      return topk(1, 'switch');
    case 'expert-choice':
      return expertChoice(r.k);
  }
}

/** The entry side of a plan: what binning and weighing write. */
export interface PlanEntries {
  /** Expert i's entries start at expertStart[i] (E + 1). */
  expertStart: Int32Array;
  /** Rows routed to each expert (E). */
  expertLoad: Int32Array;
  /** Batch row of each entry. */
  entryRow: Int32Array;
  /** Expert of each entry. */
  entryExpert: Int32Array;
  /** Row q's entries are rowEntries[rowStart[q] .. rowStart[q+1]) (rows + 1). */
  rowStart: Int32Array;
  /** Entry numbers grouped by row, experts ascending. */
  rowEntries: Int32Array;
  /** log ĝ of each entry. */
  entryLogWeight: Float32Array;
  /** ĝ of each entry. */
  entryGateWeight: Float32Array;
}

/** The block side of a plan: what cutting into blocks and scheduling write. */
export interface PlanBlocks {
  blockExpert: Int32Array;
  blockStart: Int32Array;
  blockRows: Int32Array;
  /** −1: the expert's own gradient; else a partial-gradient slot. */
  blockSlot: Int32Array;
  /** Shard that computes each block. */
  blockWorker: Int32Array;
}

/**
 * A routing plan over preallocated buffers for batches of at most `maxRows` rows. Each
 * stage is a method; {@link RoutingPlan.route} runs choice, binning and weights.
 */
export class RoutingPlan {
  /** rows×E: whether row q goes to expert i (the choice). */
  readonly chosen: Uint8Array;
  /** Entries of the last plan. */
  entries = 0;
  /** Rows of the last plan that no expert took. */
  dropped = 0;
  /** Blocks of the last {@link RoutingPlan.cut}. */
  blocks = 0;
  /** Binning: the next row-grouped entry. */
  private nextEntry = 0;
  /** An every-expert rule: the row count whose choice and binning the buffers hold (−1: none). */
  private binnedRows = -1;
  private readonly scratch: ChoiceScratch;
  private readonly cursor: Int32Array;
  private readonly blockOrder: Int32Array;
  private readonly shardRows: Float64Array;

  constructor(
    readonly rule: RoutingRule,
    readonly mode: RoutingMode,
    readonly experts: number,
    maxRows: number,
    private readonly out: PlanEntries,
    maxBlocks = 0,
    shards = 1,
  ) {
    const E = experts;
    this.chosen = new Uint8Array(maxRows * E);
    this.scratch = { order: new Int32Array(Math.max(maxRows, E)), score: new Float32Array(E) };
    this.cursor = new Int32Array(E);
    this.blockOrder = new Int32Array(maxBlocks);
    this.shardRows = new Float64Array(shards);
  }

  /** Choice, binning and weights for `s.rows` rows. Returns the number of entries. */
  route(s: GateScores): number {
    const rows = s.rows;
    if (this.keepsBinning(rows)) {
      this.weigh(s);
      return this.entries;
    }
    this.choose(s);
    this.binLoad(0, rows);
    this.binStarts();
    this.binEntries(0, rows);
    this.binEnd(rows);
    this.weigh(s);
    return this.entries;
  }

  /**
   * {@link RoutingPlan.route} with its long loops in ranges of `slicer` (a training step
   * pauses between them); a small batch at once.
   */
  routeSlices(s: GateScores, slicer: Slicer): Slices {
    if (s.rows * this.experts <= RANGE_WORK) {
      this.route(s);
      return NO_PAUSES;
    }
    return this.routeSliced(s, slicer);
  }

  private *routeSliced(s: GateScores, slicer: Slicer): Slices {
    const rows = s.rows, E = this.experts, rule = this.rule, parts = rule.parts?.(s, this.mode);
    if (this.keepsBinning(rows)) {
      // The choice and binning of the last batch stand (an every-expert rule, the same rows).
    } else if (!parts || !rule.choosePart) {
      this.choose(s);
    } else {
      this.chosen.fill(0, 0, rows * E);
      yield* slicer.ranges(parts.count, perRange(parts.cost), (from, until) => rule.choosePart!(s, this.mode, this.chosen, this.scratch, from, until));
    }
    if (this.binnedRows !== rows) {
      yield* slicer.ranges(rows, perRange(E), (from, until) => this.binLoad(from, until));
      this.binStarts();
      yield* slicer.ranges(rows, perRange(E), (from, until) => this.binEntries(from, until));
      this.binEnd(rows);
    }
    yield* this.weighSliced(s, slicer);
  }

  /**
   * An every-expert rule's choice and binning for `rows` rows without the gate's scores
   * (they read none); false, doing nothing, for any other rule, and where the binning is
   * new and too large to run in one piece (over {@link RANGE_WORK} entries: at 200,000
   * experts it held the main thread for 0.4 s; {@link RoutingPlan.routeSlices} then bins
   * in ranges after the gate, and keeps it for the next batch of as many rows). The
   * weights follow with {@link RoutingPlan.weighSlices} once the gate has run.
   */
  binAhead(rows: number): boolean {
    if (!this.rule.everyExpert) return false;
    if (this.binnedRows !== rows) {
      if (rows * this.experts > RANGE_WORK) return false;
      this.chosen.fill(1, 0, rows * this.experts);
      this.bin(rows);
    }
    return true;
  }

  /** {@link RoutingPlan.weigh} with its loop in ranges of `slicer` (a small batch at once). */
  weighSlices(s: GateScores, slicer: Slicer): Slices {
    if (s.rows * this.experts <= RANGE_WORK) {
      this.weigh(s);
      return NO_PAUSES;
    }
    return this.weighSliced(s, slicer);
  }

  private *weighSliced(s: GateScores, slicer: Slicer): Slices {
    const rows = s.rows;
    if (this.rule.weights === 'probability') yield* slicer.ranges(this.entries, perRange(4), (from, until) => this.weighEntries(s, from, until));
    else yield* slicer.ranges(rows, perRange((4 * this.entries) / Math.max(1, rows)), (from, until) => this.weighRows(s, from, until));
  }

  /**
   * Whether the buffers already hold this batch's choice and binning: an every-expert rule
   * binned `rows` rows last time (nothing else writes the plan's entry regions). Binning
   * through {@link RoutingPlan.route} or its slices records the row count for the next call.
   */
  private keepsBinning(rows: number): boolean {
    if (!this.rule.everyExpert) return false;
    return this.binnedRows === rows;
  }

  /** 1. Choice: the rows×E mask. */
  choose(s: GateScores): void {
    this.chosen.fill(0, 0, s.rows * this.experts);
    this.rule.choose(s, this.mode, this.chosen, this.scratch);
  }

  /** 2. Binning: expert-major entries (rows ascending), each row's entries (experts ascending), the dropped rows. */
  bin(rows: number): void {
    this.binLoad(0, rows);
    this.binStarts();
    this.binEntries(0, rows);
    this.binEnd(rows);
  }

  /** Binning, rows [from, until): each expert's load (zeroed at row 0). */
  private binLoad(from: number, until: number): void {
    const E = this.experts, chosen = this.chosen, load = this.out.expertLoad;
    if (from === 0) {
      load.fill(0, 0, E);
      this.binnedRows = -1; // until binEnd: a binning stopped part-way is not kept
    }
    for (let q = from; q < until; q++) {
      const base = q * E;
      for (let i = 0; i < E; i++) if (chosen[base + i]) load[i] = load[i]! + 1;
    }
  }

  /** Binning: where each expert's entries start. */
  private binStarts(): void {
    const o = this.out, E = this.experts, load = o.expertLoad, cur = this.cursor;
    let n = 0;
    for (let i = 0; i < E; i++) {
      o.expertStart[i] = cur[i] = n;
      n += load[i]!;
    }
    o.expertStart[E] = n;
    this.entries = n;
    this.nextEntry = this.dropped = 0;
  }

  /** Binning, rows [from, until): their entries, in row order (after {@link binStarts}). */
  private binEntries(from: number, until: number): void {
    const o = this.out, E = this.experts, chosen = this.chosen, cur = this.cursor;
    let m = this.nextEntry, dropped = this.dropped;
    for (let q = from; q < until; q++) {
      o.rowStart[q] = m;
      const base = q * E;
      for (let i = 0; i < E; i++) {
        if (!chosen[base + i]) continue;
        const e = cur[i]!;
        cur[i] = e + 1;
        o.entryRow[e] = q;
        o.entryExpert[e] = i;
        o.rowEntries[m++] = e;
      }
      if (o.rowStart[q] === m) dropped++;
    }
    this.nextEntry = m;
    this.dropped = dropped;
  }

  private binEnd(rows: number): void {
    this.out.rowStart[rows] = this.nextEntry;
    this.binnedRows = this.rule.everyExpert ? rows : -1;
  }

  /** ĝ and log ĝ per entry: softmax of h over each row's kept, or p of the kept. */
  weigh(s: GateScores): void {
    if (this.rule.weights === 'probability') this.weighEntries(s, 0, this.entries);
    else this.weighRows(s, 0, s.rows);
  }

  /** p of the kept, entries [from, until). */
  private weighEntries(s: GateScores, from: number, until: number): void {
    const o = this.out, E = this.experts;
    for (let e = from; e < until; e++) {
      const j = o.entryRow[e]! * E + o.entryExpert[e]!;
      o.entryLogWeight[e] = s.logProb[j]!;
      o.entryGateWeight[e] = s.prob[j]!;
    }
  }

  /** Kept-softmax weights of rows [from, until). */
  private weighRows(s: GateScores, from: number, until: number): void {
    const o = this.out, E = this.experts, h = s.logits;
    for (let q = from; q < until; q++) {
      const a = o.rowStart[q]!, b = o.rowStart[q + 1]!, base = q * E;
      let m = -Infinity;
      for (let j = a; j < b; j++) m = Math.max(m, h[base + o.entryExpert[o.rowEntries[j]!]!]!);
      let sum = 0;
      for (let j = a; j < b; j++) sum += Math.exp(h[base + o.entryExpert[o.rowEntries[j]!]!]! - m);
      const lse = m + Math.log(sum);
      for (let j = a; j < b; j++) {
        const e = o.rowEntries[j]!;
        const lw = h[base + o.entryExpert[e]!]! - lse;
        o.entryLogWeight[e] = lw;
        o.entryGateWeight[e] = Math.exp(lw);
      }
    }
  }

  /** 3. Blocks: each expert's entries in blocks of at most R rows; the first uses the expert's own gradient. */
  cut(b: PlanBlocks, R: number): number {
    const o = this.out, E = this.experts;
    let nb = 0, slot = 0;
    for (let i = 0; i < E; i++) {
      const a = o.expertStart[i]!, end = o.expertStart[i + 1]!;
      for (let s = a; s < end; s += R) {
        b.blockExpert[nb] = i;
        b.blockStart[nb] = s;
        b.blockRows[nb] = Math.min(R, end - s);
        b.blockSlot[nb] = s === a ? -1 : slot++;
        nb++;
      }
    }
    this.blocks = nb;
    return nb;
  }

  /**
   * 4. Schedule: split, the longest block first to the shard with the fewest rows so far
   * (ties: lower index); else each block to its expert's owner.
   */
  schedule(b: PlanBlocks, groups: readonly OwnedRange[], split: boolean, shardOffset = 0): void {
    const nb = this.blocks, W = groups.length;
    if (split && W > 1) {
      const order = this.blockOrder.subarray(0, nb), rowsOf = this.shardRows;
      for (let j = 0; j < nb; j++) order[j] = j;
      order.sort((x, y) => b.blockRows[y]! - b.blockRows[x]! || x - y);
      rowsOf.fill(0);
      for (let j = 0; j < nb; j++) {
        const blk = order[j]!;
        let w = 0;
        for (let s = 1; s < W; s++) if (rowsOf[s]! < rowsOf[w]!) w = s;
        b.blockWorker[blk] = w;
        rowsOf[w] = rowsOf[w]! + b.blockRows[blk]!;
      }
      return;
    }
    // Owners are contiguous ranges in expert order, and so are the blocks: one walk.
    let w = 0;
    for (let j = 0; j < nb; j++) {
      const i = b.blockExpert[j]!;
      while (w + 1 < W && i >= groups[w]!.first + groups[w]!.count) w++;
      // An MPI rank's own shards are numbered from 0; other ranks' come out of [0, W).
      b.blockWorker[j] = w - shardOffset;
    }
  }
}
