/**
 * The WebAssembly SIMD kernels (source assembly/kernels.ts, binary dist/kernels/kernels.wasm)
 * instantiated over a caller's memory. Every thread compiles the module once (or receives the
 * compiled Module by postMessage) and instantiates it over the same shared
 * `WebAssembly.Memory`; the wrappers pass each view's byteOffset as the pointer.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Activation } from '../model/mlp.js';
import { checkedKernels } from './check.js';
import type { KernelOptions, Kernels } from './types.js';
import { wasmApi, type WasmMemory, type WasmModule } from './wasm-api.js';

/** The module's exports: pointers are byte offsets, counts are elements. */
interface KernelExports {
  expF32(x: number): number;
  logF32(x: number): number;
  biasRows(z: number, bias: number, rows: number, cols: number): void;
  activateTanh(a: number, n: number): void;
  activateRelu(a: number, n: number): void;
  activateSigmoid(a: number, n: number): void;
  biasActivateTanh(z: number, bias: number, rows: number, cols: number): void;
  biasActivateRelu(z: number, bias: number, rows: number, cols: number): void;
  biasActivateSigmoid(z: number, bias: number, rows: number, cols: number): void;
  tanhF32(x: number): number;
  backwardTanh(delta: number, a: number, n: number): void;
  backwardRelu(delta: number, a: number, n: number): void;
  backwardSigmoid(delta: number, a: number, n: number): void;
  colSums(m: number, rows: number, cols: number, out: number): void;
  gatherRows(src: number, width: number, idx: number, rows: number, dst: number): void;
  gatherRowsI32(src: number, idx: number, rows: number, dst: number): void;
  sgd(p: number, g: number, n: number, lr: number, wd: number): void;
  momentum(p: number, g: number, vel: number, n: number, lr: number, mu: number, wd: number): void;
  adam(p: number, g: number, m: number, v: number, n: number, stepSize: number, invC2: number, b1: number, b2: number, a1: number, a2: number, eps: number, wd: number): void;
  logSoftmaxRows(u: number, rows: number, E: number, logG: number, g: number): void;
  sqErrRows(o: number, d: number, rows: number, K: number, out: number, outStride: number, outOffset: number): void;
  logSoftmaxPickRows(z: number, labels: number, rows: number, K: number, out: number, outStride: number, outOffset: number, lse: number): void;
  weightedDiffRows(ref: number, d: number, w: number, wStride: number, wOffset: number, rows: number, K: number, gradOut: number): void;
  softmaxMinusOnehotRows(z: number, lse: number, labels: number, w: number, wStride: number, wOffset: number, rows: number, K: number, gradOut: number): void;
  dotDiffRows(d: number, ybar: number, o: number, rows: number, K: number, out: number, outStride: number, outOffset: number): void;
  mixAccumulate(ybar: number, o: number, g: number, gStride: number, gOffset: number, rows: number, K: number): void;
  addInto(dst: number, src: number, n: number): void;
  fill(dst: number, n: number, value: number): void;
  copy(dst: number, src: number, n: number): void;
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
  const x = instance.exports as unknown as KernelExports;
  const kernels: Kernels = {
    name: 'wasm',
    biasRows: (z, bias, rows, cols) => x.biasRows(z.byteOffset, bias.byteOffset, rows, cols),
    activate(act: Activation, a, n) {
      switch (act) {
        case 'tanh':
          return x.activateTanh(a.byteOffset, n);
        case 'relu':
          return x.activateRelu(a.byteOffset, n);
        case 'sigmoid':
          return x.activateSigmoid(a.byteOffset, n);
      }
      throw new Error(`unknown activation ${JSON.stringify(act)}`);
    },
    biasActivate(act: Activation, z, bias, rows, cols) {
      switch (act) {
        case 'tanh':
          return x.biasActivateTanh(z.byteOffset, bias.byteOffset, rows, cols);
        case 'relu':
          return x.biasActivateRelu(z.byteOffset, bias.byteOffset, rows, cols);
        case 'sigmoid':
          return x.biasActivateSigmoid(z.byteOffset, bias.byteOffset, rows, cols);
      }
      throw new Error(`unknown activation ${JSON.stringify(act)}`);
    },
    activateBackward(act: Activation, delta, a, n) {
      switch (act) {
        case 'tanh':
          return x.backwardTanh(delta.byteOffset, a.byteOffset, n);
        case 'relu':
          return x.backwardRelu(delta.byteOffset, a.byteOffset, n);
        case 'sigmoid':
          return x.backwardSigmoid(delta.byteOffset, a.byteOffset, n);
      }
      throw new Error(`unknown activation ${JSON.stringify(act)}`);
    },
    colSums: (m, rows, cols, out) => x.colSums(m.byteOffset, rows, cols, out.byteOffset),
    gatherRows: (src, width, idx, rows, dst) => x.gatherRows(src.byteOffset, width, idx.byteOffset, rows, dst.byteOffset),
    gatherRowsI32: (src, idx, rows, dst) => x.gatherRowsI32(src.byteOffset, idx.byteOffset, rows, dst.byteOffset),
    sgd: (p, g, n, lr, wd) => x.sgd(p.byteOffset, g.byteOffset, n, lr, wd),
    momentum: (p, g, vel, n, lr, mu, wd) => x.momentum(p.byteOffset, g.byteOffset, vel.byteOffset, n, lr, mu, wd),
    adam: (p, g, m, v, n, stepSize, invC2, b1, b2, a1, a2, eps, wd) =>
      x.adam(p.byteOffset, g.byteOffset, m.byteOffset, v.byteOffset, n, stepSize, invC2, b1, b2, a1, a2, eps, wd),
    logSoftmaxRows: (u, rows, E, logG, g) => x.logSoftmaxRows(u.byteOffset, rows, E, logG.byteOffset, g.byteOffset),
    sqErrRows: (o, d, rows, K, out, outStride, outOffset) => x.sqErrRows(o.byteOffset, d.byteOffset, rows, K, out.byteOffset, outStride, outOffset),
    logSoftmaxPickRows: (z, labels, rows, K, out, outStride, outOffset, lse) =>
      x.logSoftmaxPickRows(z.byteOffset, labels.byteOffset, rows, K, out.byteOffset, outStride, outOffset, lse.byteOffset),
    weightedDiffRows: (ref, d, w, wStride, wOffset, rows, K, gradOut) =>
      x.weightedDiffRows(ref.byteOffset, d.byteOffset, w.byteOffset, wStride, wOffset, rows, K, gradOut.byteOffset),
    softmaxMinusOnehotRows: (z, lse, labels, w, wStride, wOffset, rows, K, gradOut) =>
      x.softmaxMinusOnehotRows(z.byteOffset, lse.byteOffset, labels.byteOffset, w.byteOffset, wStride, wOffset, rows, K, gradOut.byteOffset),
    dotDiffRows: (d, ybar, o, rows, K, out, outStride, outOffset) =>
      x.dotDiffRows(d.byteOffset, ybar.byteOffset, o.byteOffset, rows, K, out.byteOffset, outStride, outOffset),
    mixAccumulate: (ybar, o, g, gStride, gOffset, rows, K) => x.mixAccumulate(ybar.byteOffset, o.byteOffset, g.byteOffset, gStride, gOffset, rows, K),
    addInto: (dst, src, n) => x.addInto(dst.byteOffset, src.byteOffset, n),
    fill: (dst, n, value) => x.fill(dst.byteOffset, n, value),
    copy: (dst, src, n) => x.copy(dst.byteOffset, src.byteOffset, n),
  };
  const check = opts.check ?? process.env.MOE_KERNELS_CHECK === '1';
  return check ? checkedKernels(kernels, memory) : kernels;
}

/**
 * The module's scalar exp, log and tanh (float32), for accuracy tests: bit-identical to
 * `expF32`/`logF32`/`tanhF32` of src/kernels/js.ts. Instantiates the module over `memory`.
 */
export function wasmScalarMath(memory: WasmMemory, module: WasmModule = compileKernelModule()): { expF32(x: number): number; logF32(x: number): number; tanhF32(x: number): number } {
  const x = new wasmApi.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
  return { expF32: x.expF32, logF32: x.logF32, tanhF32: x.tanhF32 };
}
