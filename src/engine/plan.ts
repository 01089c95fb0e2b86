/**
 * How a training session lays out its memory and shares the experts among shards: the
 * sizes of every region for a model, a batch size and a worker count, and the contiguous
 * expert groups each shard owns (it runs their UPDATE).
 */
import { OptionError } from '../errors.js';
import { expertShape, gateShape, type MixtureConfig } from '../model/config.js';
import { hiddenWidthSum, mlpParamCount, widestHidden } from '../model/mlp.js';
import { optimizerStateSize, type OptimizerConfig } from '../optim/config.js';
import type { MixtureSizes } from '../memory/layout.js';
import { noiseParamCount, routerBiasCount } from '../model/state.js';
import { routingRule, type RoutingRule } from './routing-plan.js';

/** Throw OptionError('workers') unless 1 ≤ workers ≤ experts (every worker needs an expert). */
export function checkWorkerCount(workers: number, experts: number): void {
  if (!Number.isInteger(workers) || workers < 1) throw new OptionError('workers', `must be a positive integer, got ${workers}`);
  if (workers > experts) throw new OptionError('workers', `${workers} workers for ${experts} experts: each worker needs at least one expert`);
}

/** An expert range [first, first + count). */
export interface ExpertRange {
  /** Index of the first expert. */
  first: number;
  /** Number of experts. */
  count: number;
}

/** Contiguous expert groups: the first E mod W shards get one more expert. */
export function shardExperts(experts: number, shards: number): ExpertRange[] {
  checkWorkerCount(shards, experts);
  const base = Math.floor(experts / shards), extra = experts % shards;
  const out: ExpertRange[] = [];
  let first = 0;
  for (let shard = 0; shard < shards; shard++) {
    const count = base + (shard < extra ? 1 : 0);
    out.push({ first, count });
    first += count;
  }
  return out;
}

/** Region sizes of a dense session: one block of the whole batch per expert. */
export function denseSizes(config: MixtureConfig, optimizer: Required<OptimizerConfig>, maxBatch: number, shards: number): MixtureSizes {
  const es = expertShape(config), gs = gateShape(config);
  return {
    inputs: config.inputs,
    outputs: config.outputs,
    experts: config.experts,
    maxBatch,
    expertParams: mlpParamCount(es),
    gateParams: mlpParamCount(gs),
    optState: optimizerStateSize(optimizer.name),
    shards: Math.max(1, shards),
    expertHidden: hiddenWidthSum(es),
    expertWidest: widestHidden(es),
    gateHidden: hiddenWidthSum(gs),
    gateWidest: widestHidden(gs),
    maxEntries: config.experts * maxBatch,
    maxBlocks: config.experts,
    maxBlockRows: maxBatch,
    extraGradSlots: 0,
    gathers: false,
    noiseParams: noiseParamCount(config),
    routerBias: routerBiasCount(config),
  };
}

/**
 * Region sizes of a sparse session (entries: the rule's most for a batch): blocks of at most R rows, each expert's first block
 * in its own gradient, the others in partial-gradient slots (an expert holds at most B
 * rows, so at most ⌈B/R⌉ − 1 of them). What the slots cost: extraGradSlots × P floats.
 */
export function sparseSizes(config: MixtureConfig, optimizer: Required<OptimizerConfig>, maxBatch: number, shards: number, rule: RoutingRule = routingRule(config.routing)): MixtureSizes {
  const dense = denseSizes(config, optimizer, maxBatch, shards);
  const E = config.experts, R = Math.min(config.routing.blockRows, maxBatch);
  const N = rule.maxEntries(maxBatch, E, 'training');
  const extra = Math.min(Math.floor(N / R), E * (Math.ceil(maxBatch / R) - 1));
  return { ...dense, maxEntries: N, maxBlocks: E + extra, maxBlockRows: R, extraGradSlots: extra, gathers: true };
}
