/**
 * Choosing and creating a kernel set: the WebAssembly SIMD kernels (default) or their
 * bit-identical JavaScript mirror, selected by MOE_KERNELS=wasm|js.
 */
import { OptionError } from '../errors.js';
import { jsKernels } from './js.js';
import { KERNEL_SETS, type KernelOptions, type KernelSetName, type Kernels } from './types.js';
import { wasmKernels } from './wasm.js';
import type { WasmMemory, WasmModule } from './wasm-api.js';

export type { KernelOptions, KernelSetName, Kernels } from './types.js';
export { KERNEL_SETS } from './types.js';
export { compileKernelModule, kernelWasmFile, wasmKernels } from './wasm.js';
export { jsKernels } from './js.js';
export { wasmApi, type WasmMemory, type WasmModule } from './wasm-api.js';

/**
 * The kernel set named by MOE_KERNELS (`wasm` or `js`; unset or empty: `wasm`).
 * Throws an OptionError naming MOE_KERNELS for any other value.
 */
export function kernelSetFromEnv(env: NodeJS.ProcessEnv = process.env): KernelSetName {
  const v = env.MOE_KERNELS;
  if (v === undefined || v === '') return 'wasm';
  if ((KERNEL_SETS as readonly string[]).includes(v)) return v as KernelSetName;
  throw new OptionError('MOE_KERNELS', `unknown kernel set ${JSON.stringify(v)} (expected ${KERNEL_SETS.join(' or ')})`);
}

/**
 * The kernels of `set` over `memory`. The wasm set instantiates the module (compiled once
 * per thread, or `module` when given, e.g. posted from the main thread); the js set only
 * uses `memory` for the checks of `opts.check`.
 */
export function createKernels(memory: WasmMemory, set: KernelSetName = kernelSetFromEnv(), opts: KernelOptions & { module?: WasmModule } = {}): Kernels {
  return set === 'wasm' ? wasmKernels(memory, opts.module, opts) : jsKernels(memory, opts);
}

/**
 * Σ a_i² of a[0..n) by the kernel set's `sqNorm` (NaN or +∞ where a value is not finite),
 * through `out`, one float of the kernel memory; 0 for n = 0.
 */
export function squaredNorm(kernels: Kernels, a: Float32Array, n: number, out: Float32Array): number {
  if (n === 0) return 0;
  kernels.sqNorm(a, n, out);
  return out[0]!;
}
