/**
 * Choosing and instantiating the kernel set. The set is part of what makes results
 * reproducible, like the provider: one set for a whole run, on every thread.
 */
import type { WasmMemory } from '../memory/wasm.js';
import { OptionError } from '../errors.js';
import { f64Kernels } from './f64.js';
import type { KernelSetName, Kernels } from './types.js';

/** Every kernel set, `MOE_KERNELS` spelling. */
export const KERNEL_SETS: readonly KernelSetName[] = ['wasm', 'js', 'f64'];

/** The kernel set a run uses: `MOE_KERNELS` (wasm, js or f64), default wasm. */
export function kernelSetFromEnv(): KernelSetName {
  const v = process.env.MOE_KERNELS;
  if (v === undefined || v === '') return 'f64';
  if (!(KERNEL_SETS as readonly string[]).includes(v)) throw new OptionError('MOE_KERNELS', `unknown kernel set ${JSON.stringify(v)} (expected ${KERNEL_SETS.join(', ')})`);
  return v as KernelSetName;
}

/** The kernels of `set`, over `memory` (every view passed to them must live in it). */
export function createKernels(_memory: WasmMemory, set: KernelSetName): Kernels {
  switch (set) {
    default:
      return f64Kernels;
  }
}

export type { KernelSetName, Kernels } from './types.js';
