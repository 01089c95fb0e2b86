/**
 * Checked kernels, for tests and debugging (off on the hot path): before each call, every
 * count must be a non-negative integer, every view must hold the elements the kernel touches,
 * every index must be in range and, when a memory is given, every view must lie in that
 * memory's buffer. The WebAssembly kernels only see byte offsets, so without these checks an
 * undersized view or a view of another buffer is read or overwritten silently. What each
 * kernel's arguments are comes from KERNEL_TABLE (signatures.ts).
 */
import { MoeError } from '../errors.js';
import { KERNEL_ACTIVATIONS, KERNEL_NAMES, KERNEL_TABLE, type Counts, type KernelName, type KernelSpec } from './signatures.js';
import type { Kernels } from './types.js';
import type { WasmMemory } from './wasm-api.js';

type View = Float32Array | Int32Array;

function fail(kernel: string, message: string): never {
  throw new MoeError('INTERNAL', `kernel ${kernel}: ${message}`);
}

/** Wraps `inner` so that every call is checked first; `memory` adds the same-buffer check. */
export function checkedKernels(inner: Kernels, memory?: WasmMemory): Kernels {
  const count = (kernel: string, name: string, v: number): void => {
    if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 31)) fail(kernel, `${name} must be a non-negative integer, got ${v}`);
  };
  const view = (kernel: string, name: string, v: View, elements: number): void => {
    if (memory && v.buffer !== memory.buffer) fail(kernel, `${name} is not a view of the kernel memory's buffer`);
    if (v.length < elements) fail(kernel, `${name} has ${v.length} elements, needs ${elements}`);
  };
  const indices = (kernel: string, name: string, idx: Int32Array, rows: number, limit: number): void => {
    for (let r = 0; r < rows; r++) {
      const i = idx[r]!;
      if (!(i >= 0 && i < limit)) fail(kernel, `${name}[${r}] = ${i} is outside [0, ${limit})`);
    }
  };
  const noOverlap = (kernel: string, a: string, va: View, na: number, b: string, vb: View, nb: number): void => {
    if (va.buffer !== vb.buffer || na === 0 || nb === 0) return;
    const a0 = va.byteOffset, a1 = a0 + 4 * na, b0 = vb.byteOffset, b1 = b0 + 4 * nb;
    if (a0 < b1 && b0 < a1) fail(kernel, `${a} overlaps ${b}`);
  };
  // Element-wise kernels may run in place (the same range) but not on shifted ranges.
  const sameOrDisjoint = (kernel: string, pairs: [string, View][], n: number): void => {
    for (let i = 0; i < pairs.length; i++) {
      for (let j = i + 1; j < pairs.length; j++) {
        const [a, va] = pairs[i]!, [b, vb] = pairs[j]!;
        if (va.buffer === vb.buffer && va.byteOffset === vb.byteOffset) continue;
        noOverlap(kernel, a, va, n, b, vb, n);
      }
    }
  };
  const act = (kernel: string, a: unknown): void => {
    if (!(KERNEL_ACTIVATIONS as readonly unknown[]).includes(a)) fail(kernel, `unknown activation ${JSON.stringify(a)}`);
  };

  /** The checks of one table entry, before each call. */
  const checker = (kernel: KernelName): ((args: unknown[]) => void) => {
    const spec: KernelSpec = KERNEL_TABLE[kernel];
    const at = new Map(spec.args.map((a, i) => [a.name, i]));
    return (args) => {
      const counts: Record<string, number> = {};
      const lengths: Record<string, number> = {};
      spec.args.forEach((a, i) => {
        if (a.kind === 'activation') act(kernel, args[i]);
        else if (a.kind === 'count') count(kernel, a.name, (counts[a.name] = args[i] as number));
      });
      const c = counts as Counts;
      const needed = new Map<string, number>();
      spec.args.forEach((a, i) => {
        if (a.kind !== 'f32' && a.kind !== 'i32') return;
        const v = args[i] as View;
        lengths[a.name] = v.length;
        const n = a.len ? a.len(c) : 0;
        needed.set(a.name, a.len ? n : v.length);
        view(kernel, a.name, v, n);
      });
      for (const a of spec.args) {
        if ((a.kind === 'i32') && a.index?.checked) {
          const limit = a.index.limit(c, lengths);
          if (limit !== undefined) indices(kernel, a.name, args[at.get(a.name)!] as Int32Array, needed.get(a.name)!, limit);
        }
      }
      for (const [x, y] of spec.disjoint ?? []) noOverlap(kernel, x, args[at.get(x)!] as View, needed.get(x)!, y, args[at.get(y)!] as View, needed.get(y)!);
      for (const group of spec.inPlace ?? []) {
        sameOrDisjoint(kernel, group.map((g) => [g, args[at.get(g)!] as View]), needed.get(group[0]!)!);
      }
    };
  };

  const checked: Record<string, unknown> = { name: inner.name };
  for (const k of KERNEL_NAMES) {
    const check = checker(k);
    const call = inner[k] as (...args: unknown[]) => void;
    checked[k] = (...args: unknown[]) => {
      check(args);
      call(...args);
    };
  }
  return checked as unknown as Kernels;
}
