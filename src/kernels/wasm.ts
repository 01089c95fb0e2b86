/**
 * The WebAssembly SIMD kernels (source assembly/kernels.ts, binary dist/kernels/kernels.wasm)
 * instantiated over a caller's memory. Every thread compiles the module once (or receives the
 * compiled Module by postMessage) and instantiates it over the same shared
 * `WebAssembly.Memory`; the wrappers pass each view's byteOffset as the pointer.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkedKernels } from './check.js';
import { KERNEL_ACTIVATIONS, KERNEL_NAMES, KERNEL_TABLE, type KernelSpec } from './signatures.js';
import type { KernelOptions, Kernels } from './types.js';
import { wasmApi, type WasmMemory, type WasmModule } from './wasm-api.js';

/** A wasm export: pointers are byte offsets, counts are elements. */
type Export = (...args: number[]) => number | undefined;

/** The module's scalar exports (the kernels' exports come from KERNEL_TABLE). */
interface ScalarExports {
  expF32(x: number): number;
  logF32(x: number): number;
  tanhF32(x: number): number;
}

/** A view's byte offset (the wasm pointer); a number passes unchanged. */
function ptr(v: unknown): number {
  return typeof v === 'number' ? v : (v as ArrayBufferView).byteOffset;
}

/** A wrapper of `fn` taking `arity` arguments, views passed as their byte offsets (no allocation per call). */
function offsets(fn: Export, arity: number): (...args: unknown[]) => void {
  switch (arity) {
    case 2: return (a, b) => void fn(ptr(a), ptr(b));
    case 3: return (a, b, c) => void fn(ptr(a), ptr(b), ptr(c));
    case 4: return (a, b, c, d) => void fn(ptr(a), ptr(b), ptr(c), ptr(d));
    case 5: return (a, b, c, d, e) => void fn(ptr(a), ptr(b), ptr(c), ptr(d), ptr(e));
    case 6: return (a, b, c, d, e, f) => void fn(ptr(a), ptr(b), ptr(c), ptr(d), ptr(e), ptr(f));
    case 7: return (a, b, c, d, e, f, g) => void fn(ptr(a), ptr(b), ptr(c), ptr(d), ptr(e), ptr(f), ptr(g));
    case 8: return (a, b, c, d, e, f, g, h) => void fn(ptr(a), ptr(b), ptr(c), ptr(d), ptr(e), ptr(f), ptr(g), ptr(h));
    case 9: return (a, b, c, d, e, f, g, h, i) => void fn(ptr(a), ptr(b), ptr(c), ptr(d), ptr(e), ptr(f), ptr(g), ptr(h), ptr(i));
    default: return (...args) => void fn(...args.map(ptr));
  }
}

/** The wrapper of one table entry: an activation argument (first) picks the export `<wasm><Activation>`. */
function wrapper(exports: Record<string, unknown>, spec: KernelSpec): (...args: unknown[]) => void {
  const find = (name: string): Export => {
    const fn = exports[name];
    if (typeof fn !== 'function') throw new Error(`kernel module has no export ${name}: rebuild it (npm run build)`);
    return fn as Export;
  };
  if (spec.args[0]?.kind !== 'activation') return offsets(find(spec.wasm), spec.args.length);
  const acts: readonly unknown[] = KERNEL_ACTIVATIONS;
  const fns = KERNEL_ACTIVATIONS.map((a) => offsets(find(spec.wasm + a[0]!.toUpperCase() + a.slice(1)), spec.args.length - 1));
  const pick = (act: unknown): ((...args: unknown[]) => void) => {
    for (let i = 0; i < acts.length; i++) if (acts[i] === act) return fns[i]!;
    throw new Error(`unknown activation ${JSON.stringify(act)}`);
  };
  return (act, a, b, c, d) => pick(act)(a, b, c, d);
}

/**
 * Absolute path of the built kernel module `dist/kernels/kernels.wasm`, found from this
 * module's own location walking up to the package root (works from dist/ when installed
 * and from src/ under vitest), never from the current directory.
 */
export function kernelWasmFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'dist', 'kernels', 'kernels.wasm');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`kernel module dist/kernels/kernels.wasm not found above ${fileURLToPath(import.meta.url)}: run npm run build`);
    dir = up;
  }
}

let compiled: WasmModule | undefined;

/**
 * The compiled kernel module, compiled synchronously on first use and cached for this thread.
 * A Module can be posted to a worker, which then skips the compilation.
 */
export function compileKernelModule(): WasmModule {
  compiled ??= new wasmApi.Module(readFileSync(kernelWasmFile()));
  return compiled;
}

/**
 * Instantiates the kernel module over `memory` (which must be the memory every view passed
 * to the kernels is a view of, and shared if other threads use it too) and returns the
 * kernels. Views must be made from `memory.buffer` (after a `memory.grow`, from the new buffer).
 */
export function wasmKernels(memory: WasmMemory, module: WasmModule = compileKernelModule(), opts: KernelOptions = {}): Kernels {
  const instance = new wasmApi.Instance(module, { env: { memory } });
  const kernels = Object.fromEntries([['name', 'wasm'], ...KERNEL_NAMES.map((k) => [k, wrapper(instance.exports, KERNEL_TABLE[k])])]) as unknown as Kernels;
  const check = opts.check ?? process.env.MOE_KERNELS_CHECK === '1';
  return check ? checkedKernels(kernels, memory) : kernels;
}

/**
 * The module's scalar exp, log and tanh (float32), for accuracy tests: bit-identical to
 * `expF32`/`logF32`/`tanhF32` of src/kernels/js.ts. Instantiates the module over `memory`.
 */
export function wasmScalarMath(memory: WasmMemory, module: WasmModule = compileKernelModule()): { expF32(x: number): number; logF32(x: number): number; tanhF32(x: number): number } {
  const x = new wasmApi.Instance(module, { env: { memory } }).exports as unknown as ScalarExports;
  return { expF32: x.expF32, logF32: x.logF32, tanhF32: x.tanhF32 };
}
