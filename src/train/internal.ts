/**
 * Options of `fit` that are not part of the public API: symbols, so no user passes them by
 * accident and no public type mentions them. Tests use them to substitute a worker entry
 * that wraps the real one (fault injection lives in that fixture, not here).
 */
import type { ShardRunner } from '../engine/runner.js';
import type { MixtureViews } from '../memory/layout.js';
import type { FitOptions } from './options.js';

/** The path of the shard worker entry file to start instead of dist/workers/shard.js. */
export const SHARD_ENTRY: unique symbol = Symbol.for('local-experts.shardEntry') as never;

/** Wraps the session's shard runner (tests observe the step's memory between phases). */
export const WRAP_RUNNER: unique symbol = Symbol.for('local-experts.wrapRunner') as never;

/** FitOptions with the internal ones. */
export interface InternalFitOptions extends FitOptions {
  [SHARD_ENTRY]?: string;
  [WRAP_RUNNER]?: (runner: ShardRunner, views: MixtureViews) => ShardRunner;
}
