// Fault injection for the parallel trainer's tests: a fit option set that starts the
// shards from test/fixtures/faulty-shard.mjs (the real entry, wrapped) with one fault.
import { fileURLToPath } from 'node:url';
import type { FitOptions } from '../../src/train/options.js';
import { SHARD_ENTRY } from '../../src/train/internal.js';

/** One fault: in which shard, phase and 1-based step, and what it does. */
export interface Fault {
  shard: number;
  phase: 'forward' | 'backward' | 'update';
  /** `throw` in the phase, `exit` the worker thread, or `hang` (stay alive, never finish). */
  kind: 'throw' | 'exit' | 'hang';
  atStep: number;
}

/** The path of the wrapping worker entry. */
export const FAULTY_SHARD = fileURLToPath(new URL('../fixtures/faulty-shard.mjs', import.meta.url));

/** `options` with the fault injected into the fit's shard workers. */
export function withFault(fault: Fault, options: FitOptions): FitOptions {
  process.env.MOE_TEST_FAULT = JSON.stringify(fault);
  return { ...options, [SHARD_ENTRY]: FAULTY_SHARD } as FitOptions;
}
