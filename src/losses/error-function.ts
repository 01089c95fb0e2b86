/**
 * The error functions of Jacobs, Jordan, Nowlan & Hinton (1991), one object each, in one
 * file each (cooperative.ts, competitive.ts, gaussian.ts, categorical.ts). For one case
 * with target d, combination weights ĝ_j over the experts j chosen for it (all E experts,
 * ĝ = softmax(u), under dense routing), expert outputs o_j, ȳ = Σ_j ĝ_j o_j and
 * e_j = ‖d − o_j‖²:
 *
 *   cooperative  E = ½‖d − ȳ‖²                 ∂E/∂o_j = −ĝ_j (d − ȳ)      ∂E/∂log ĝ_j = −ĝ_j (d − ȳ)·o_j
 *   competitive  E = Σ_j ĝ_j e_j                ∂E/∂o_j = −2 ĝ_j (d − o_j)  ∂E/∂log ĝ_j = ĝ_j e_j
 *   gaussian     E = −log Σ_j ĝ_j exp(−½ e_j)   ∂E/∂o_j = −h_j (d − o_j)    ∂E/∂log ĝ_j = −h_j
 *   categorical  E = −log Σ_j ĝ_j P_j(y|x)      ∂E/∂z_j = h_j (softmax(z_j) − onehot(y))   ∂E/∂log ĝ_j = −h_j
 *
 * with the posterior h_j = ĝ_j s_j / Σ_i ĝ_i s_i, s_j = exp(−½ e_j) or P_j(y|x), in log
 * space. The routing (src/engine/routing.ts) turns ∂E/∂log ĝ into ∂E/∂u; for the dense
 * softmax that gives the paper's ∂E/∂u_i = −g_i (d − ȳ)·(o_i − ȳ), g_i (e_i − Σ g_j e_j)
 * and g_i − h_i. The batch loss is the mean over cases, so every gradient carries 1/B.
 *
 * Each error function has an expert side, run where the expert lives (a shard worker or
 * the in-process trainer) on a block of one expert's rows — per-row scores in FORWARD,
 * output gradients in BACKWARD — and a main side, run on the main thread over the chosen
 * (row, expert) entries: loss, per-entry weights for the experts, ∂E/∂log ĝ. Every output
 * gradient has the form ∂E/∂o_j[r] = w_j[r]·(ref_j[r] − d[r]) with the main side's weight
 * w (ĝ/B, 2ĝ/B or h/B) and ref = ȳ (cooperative), o_j (competitive, gaussian) or
 * softmax(z_j) (categorical).
 */
import type { Kernels } from '../kernels/types.js';
import type { LossName } from '../model/config.js';

/** One block of one expert's rows, as its expert side sees it (views, r rows). */
export interface ExpertLossBlock {
  /** Rows in the block. */
  rows: number;
  /** Output width K. */
  K: number;
  /** The expert's outputs (logits for categorical), r×K. */
  out: Float32Array;
  /** Targets d, r×K (model space: standardised, or one-hot rows). */
  target: Float32Array;
  /** Class labels, r (classification). */
  labels: Int32Array;
  /** FORWARD writes each row's score here: e_j, or log P_j(y|x); r. */
  score: Float32Array;
  /** Categorical: each row's logsumexp of the logits, kept from FORWARD for BACKWARD; r. */
  lse: Float32Array;
  /** The main thread's per-row weight of the output gradient; r. */
  weight: Float32Array;
  /** Cooperative: the mixture output ȳ of each row, r×K. */
  mix: Float32Array;
  /** Cooperative: BACKWARD writes (d − ȳ)·(o_j − ȳ) per row here; r. */
  dot: Float32Array;
  /** BACKWARD writes ∂E/∂o (∂E/∂z for categorical) here, r×K. */
  gradOut: Float32Array;
}

/**
 * The main side's view of one step: B rows, and per row the entries (row, expert) chosen
 * for it, as a CSR list. Entry arrays are indexed by entry number.
 */
export interface MainLossViews {
  /** Rows in the batch. */
  rows: number;
  /** Output width K. */
  K: number;
  /** Row r's entries are rowEntries[rowStart[r] .. rowStart[r+1]). */
  rowStart: Int32Array;
  /** Entry numbers, grouped by row, each row's in the routing's order. */
  rowEntries: Int32Array;
  /** log ĝ of each entry (f32). */
  logWeight: Float32Array;
  /** ĝ of each entry. */
  gateWeight: Float32Array;
  /** The experts' per-entry scores (after FORWARD). */
  score: Float32Array;
  /** Cooperative: the experts' per-entry dots (after BACKWARD). */
  dot: Float32Array;
  /** Batch targets, B×K (model space). */
  target: Float32Array;
  /** Cooperative: ȳ, B×K, formed by the step before {@link ErrorFunction.combine}. */
  mix: Float32Array;
  /** Scratch of B floats. */
  rowScratch: Float32Array;
  /** Out: per-entry weight of the expert's output gradient. */
  weight: Float32Array;
  /** Out: ∂E/∂log ĝ per entry. */
  dLogWeight: Float32Array;
  /** Whether each row's ĝ sum to 1 (dense, top-k): then terms constant in the row cancel in ∂E/∂u and are left out. */
  normalized: boolean;
}

/** One error function: its formula, expert side and main side. */
export interface ErrorFunction {
  /** Its name, as options and model files spell it. */
  readonly name: LossName;
  /** E for one case, as printed in docs. */
  readonly formula: string;
  /** Whether the expert side reads the target rows (else only the labels). */
  readonly readsTargets: boolean;
  /** Whether the main thread mixes the experts' outputs into ȳ after FORWARD (cooperative). */
  readonly mixesOutputs: boolean;
  /** Whether ∂E/∂log ĝ needs the experts' BACKWARD first (cooperative's dots). */
  readonly gateGradAfterBackward: boolean;
  /** FORWARD, expert side: per-row scores of one block. */
  expertScores(kernels: Kernels, b: ExpertLossBlock): void;
  /** BACKWARD, expert side: ∂E/∂o of one block from the main thread's weights (and cooperative's dots). */
  expertOutputGrad(kernels: Kernels, b: ExpertLossBlock): void;
  /**
   * Main side after FORWARD, for the batch rows [from, until): the experts' per-entry
   * weights and, unless {@link gateGradAfterBackward}, ∂E/∂log ĝ per entry; returns
   * `total` plus the rows' losses, added in row order (float64). Over ranges that cover
   * the batch in order, from a total of 0, it sums what one call over every row sums: the
   * batch's mean loss is the final total × (1/B) ({@link meanLoss}).
   */
  combine(v: MainLossViews, from: number, until: number, total: number): number;
  /** Main side after BACKWARD, where {@link gateGradAfterBackward}: ∂E/∂log ĝ per entry of the rows [from, until). */
  gateGrad?(v: MainLossViews, from: number, until: number): void;
}

/** The batch's mean loss by `ef`'s main side, every row at once (weights and ∂E/∂log ĝ written as a side effect). */
export function meanLoss(ef: ErrorFunction, v: MainLossViews): number {
  return ef.combine(v, 0, v.rows, 0) * (1 / v.rows);
}

/**
 * The expert side of the squared errors (competitive, gaussian): score e_j = ‖d − o_j‖²,
 * ∂E/∂o_j = w_j (o_j − d) with the main side's weight (2ĝ/B or h/B).
 */
export const squaredErrorExpertSide: Pick<ErrorFunction, 'readsTargets' | 'expertScores' | 'expertOutputGrad'> = {
  readsTargets: true,
  expertScores(kernels, b) {
    kernels.sqErrRows(b.out, b.target, b.rows, b.K, b.score, 1, 0);
  },
  expertOutputGrad(kernels, b) {
    kernels.weightedDiffRows(b.out, b.target, b.weight, 1, 0, b.rows, b.K, b.gradOut);
  },
};

/** One row's a_j (float64), grown to the most entries a row has had; shared by every caller on this thread. */
let rowLogs = new Float64Array(16);

/**
 * The joint log-score NLLs (gaussian, categorical): per row, a_j = log ĝ_j + log s_j,
 * E = −logsumexp_j a_j, h_j = exp(a_j − E'), weight h/B, ∂E/∂log ĝ_j = −h_j/B. Float64.
 * Rows [from, until); returns `total` minus their logsumexps (the sum of their E).
 */
export function combineLogScores(v: MainLossViews, logScore: (score: number) => number, from: number, until: number, total: number): number {
  const inv = 1 / v.rows;
  for (let r = from; r < until; r++) {
    const a = v.rowStart[r]!, b = v.rowStart[r + 1]!;
    if (a === b) continue; // a row no expert took contributes nothing
    // a_j once per entry (the score's callback and the sum are the per-entry cost).
    if (rowLogs.length < b - a) rowLogs = new Float64Array(2 * (b - a));
    let m = -Infinity;
    for (let j = a; j < b; j++) {
      const e = v.rowEntries[j]!;
      const s = v.logWeight[e]! + logScore(v.score[e]!);
      rowLogs[j - a] = s;
      if (s > m) m = s;
    }
    let sum = 0;
    for (let j = a; j < b; j++) sum += Math.exp(rowLogs[j - a]! - m);
    const lse = m + Math.log(sum);
    total -= lse;
    for (let j = a; j < b; j++) {
      const e = v.rowEntries[j]!;
      const h = Math.exp(rowLogs[j - a]! - lse);
      v.weight[e] = h * inv;
      v.dLogWeight[e] = -h * inv;
    }
  }
  return total;
}
