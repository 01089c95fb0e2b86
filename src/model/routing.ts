/**
 * Routing as data: which experts compute which cases, and the balancing that goes with
 * it (what a model file stores; the rules themselves are src/engine/routing-plan.ts).
 *
 *   dense            the paper's softmax over all E experts (every expert computes every case)
 *   topk:K           the K largest gate logits, weights softmax over the kept (Shazeer et al.
 *                    2017, GShard; topk:1 weights its expert by its softmax probability, as
 *                    switch does); optional `noise`: the noisy top-k gate's learned noise
 *   switch           top-1, weighted by its softmax probability over all E (Switch Transformer)
 *   expert-choice:C  each expert takes the ⌈C·B/E⌉ rows of a batch it scores highest (Zhou
 *                    et al. 2022); at prediction each row goes to its ⌈C⌉ best experts
 *
 * Balancing (weights ≥ 0, 0 = off): the Switch loss E·Σ_i f_i·P_i, the router z-loss
 * mean (logsumexp u)², and DeepSeek-V3's auxiliary-loss-free bias (step γ).
 */
import { OptionError, quoteValue } from '../errors.js';
import type { LossName } from './config.js';

/** The routing rules. */
export type RoutingKind = 'dense' | 'topk' | 'switch' | 'expert-choice';

/** A resolved routing configuration. */
export interface RoutingConfig {
  /** The rule. */
  kind: RoutingKind;
  /** topk: experts per row K (1..E); switch: 1; expert-choice: the capacity factor C (> 0); dense: E. */
  k: number;
  /** topk: learned noise on the logits in training (Shazeer et al.'s noisy top-k gate). */
  noise: boolean;
  /** Weight of the Switch load-balancing loss (0 = off). */
  balanceLoss: number;
  /** Weight of the router z-loss (0 = off). */
  zLoss: number;
  /** Step γ of the auxiliary-loss-free bias (0 = off); topk and switch only. */
  balanceBias: number;
  /**
   * Rows per block (R): an expert's rows are cut into blocks of R, each block's partial
   * gradient has a slot of its own and any worker may compute it. Saved with the model,
   * never derived from the worker count, so results do not depend on it.
   */
  blockRows: number;
}

/** Options that choose a routing (strings as the CLI spells them). */
export interface RoutingOptions {
  /** `dense` (default), `topk:K`, `switch` or `expert-choice:C`. */
  routing?: string;
  /** topk only: learned noise on the logits in training (default false). */
  noise?: boolean;
  /** Weight of the Switch balance loss, ≥ 0 (default 0). */
  balanceLoss?: number;
  /** Weight of the router z-loss, ≥ 0 (default 0). */
  zLoss?: number;
  /** Step of the auxiliary-loss-free balancing bias, ≥ 0 (default 0; topk and switch only). */
  balanceBias?: number;
  /** Rows per block of sparse routing (default 64). */
  blockRows?: number;
}

/**
 * Whether the chosen experts' weights are the softmax of the logits over the chosen only
 * (topk with K ≥ 2, each row's weights summing to 1); otherwise they are the softmax
 * probabilities over all E (switch, expert-choice, and topk:1, whose renormalised weight
 * would be 1 and give the gate no gradient: as the Switch Transformer, p of the chosen).
 */
export function renormalises(r: RoutingConfig): boolean {
  return r.kind === 'topk' && r.k > 1;
}

/**
 * Whether each row's combination weights sum to 1 (dense, or topk with K ≥ 2): only then
 * is a categorical mixture's output Σ ĝ_i softmax(z_i) a probability vector.
 */
export function weightsSumToOne(r: RoutingConfig): boolean {
  return r.kind === 'dense' || renormalises(r);
}

/** Default rows per block. */
export const DEFAULT_BLOCK_ROWS = 64;

/** The paper's routing for E experts. */
export function denseRouting(experts: number): RoutingConfig {
  return { kind: 'dense', k: experts, noise: false, balanceLoss: 0, zLoss: 0, balanceBias: 0, blockRows: DEFAULT_BLOCK_ROWS };
}

/** How the routing is spelled (`topk:2`, …). */
export function formatRouting(r: RoutingConfig): string {
  return r.kind === 'topk' || r.kind === 'expert-choice' ? `${r.kind}:${r.k}` : r.kind;
}

/** Largest float32: the trainer computes in float32, where a larger weight is Infinity. */
const FLOAT32_MAX = 3.4028234663852886e38;

function weight(v: unknown, option: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new OptionError(option, `must be a number ≥ 0, got ${String(v)}`);
  if (v > FLOAT32_MAX) throw new OptionError(option, `${v} is over 3.4e38, the largest float32: the training computes in float32, where this weight is Infinity`);
  return v;
}

/** Parse a routing's spelling (`dense`, `topk:K`, `switch`, `expert-choice:C`) for E experts. */
export function parseRoutingSpec(text: unknown, experts: number): { kind: RoutingKind; k: number } {
  if (typeof text !== 'string') throw new OptionError('routing', `expected dense, topk:K, switch or expert-choice:C, got ${String(text)}`);
  const m = /^(dense|switch|topk|expert-choice)(?::(\S+))?$/.exec(text.trim());
  if (!m) throw new OptionError('routing', `expected dense, topk:K, switch or expert-choice:C, got ${quoteValue(text)}`);
  const kind = m[1] as RoutingKind;
  let k: number;
  if (kind === 'topk') {
    k = Number(m[2]);
    if (m[2] === undefined || !Number.isInteger(k) || k < 1 || k > experts) throw new OptionError('routing', `topk:K needs an integer K in 1..${experts} (the experts), got ${quoteValue(text)}`);
  } else if (kind === 'expert-choice') {
    k = Number(m[2]);
    if (m[2] === undefined || !Number.isFinite(k) || k <= 0 || k > experts) throw new OptionError('routing', `expert-choice:C needs a capacity factor C in (0, ${experts}], got ${quoteValue(text)}`);
  } else {
    if (m[2] !== undefined) throw new OptionError('routing', `${kind} takes no parameter, got ${quoteValue(text)}`);
    k = kind === 'switch' ? 1 : experts;
  }
  return { kind, k };
}

/** Validate routing options for E experts and an error function. */
export function resolveRouting(o: RoutingOptions, experts: number, loss: LossName): RoutingConfig {
  const { kind, k } = parseRoutingSpec(o.routing ?? 'dense', experts);
  const noise = o.noise ?? false;
  if (typeof noise !== 'boolean') throw new OptionError('noise', `must be true or false, got ${String(noise)}`);
  if (noise && !(kind === 'topk' && k > 1)) {
    throw new OptionError('noise', `learned noise is part of the noisy top-k gate: use it with topk:K, K ≥ 2 (the weights are a softmax over the kept noisy logits), not ${kind === 'topk' ? 'topk:1' : kind}`);
  }
  const r: RoutingConfig = {
    kind,
    k,
    noise,
    balanceLoss: weight(o.balanceLoss, 'balanceLoss'),
    zLoss: weight(o.zLoss, 'zLoss'),
    balanceBias: weight(o.balanceBias, 'balanceBias'),
    blockRows: o.blockRows ?? DEFAULT_BLOCK_ROWS,
  };
  if (!Number.isInteger(r.blockRows) || r.blockRows < 1 || r.blockRows > 1 << 20) throw new OptionError('blockRows', `must be an integer in 1..${1 << 20}, got ${String(o.blockRows)}`);
  if (r.balanceLoss > 0 && (kind === 'dense' || kind === 'expert-choice')) {
    throw new OptionError('balanceLoss', `under ${kind} routing every expert's load is fixed (${kind === 'dense' ? 'all rows' : 'its capacity'}), so the balance loss would be a constant; use it with topk or switch`);
  }
  if (o.blockRows !== undefined && kind === 'dense') throw new OptionError('blockRows', 'dense routing computes each expert on the whole batch; blocks are for sparse routing');
  if (r.balanceBias > 0 && (kind === 'dense' || kind === 'expert-choice')) {
    throw new OptionError('balanceBias', `the balancing bias changes which experts a row chooses: it needs topk or switch, not ${kind}`);
  }
  // One chosen expert: the NLLs and the competitive error give the gate no signal about
  // the experts' errors (only reinforce the choice); train it as the Switch Transformer does.
  if ((kind === 'switch' || (kind === 'topk' && k === 1)) && loss !== 'cooperative') {
    throw new OptionError('loss', `${formatRouting(r)} chooses one expert per row, which gives the gate no signal under the ${loss} error; use loss cooperative (E = ½‖d − p·o‖², as the Switch Transformer trains)`);
  }
  return r;
}
