/**
 * Checked kernels, for tests and debugging (off on the hot path): before each call, every
 * count must be a non-negative integer, every view must hold the elements the kernel touches,
 * every index must be in range and, when a memory is given, every view must lie in that
 * memory's buffer. The WebAssembly kernels only see byte offsets, so without these checks an
 * undersized view or a view of another buffer is read or overwritten silently.
 */
import { MoeError } from '../errors.js';
import type { Activation } from '../model/mlp.js';
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
  // Elements a strided per-row access (element r·stride + offset, r < rows) needs.
  const strided = (kernel: string, name: string, v: View, rows: number, stride: number, offset: number): void => {
    count(kernel, `${name}Stride`, stride);
    count(kernel, `${name}Offset`, offset);
    view(kernel, name, v, rows === 0 ? 0 : (rows - 1) * stride + offset + 1);
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
  const act = (kernel: string, a: Activation): void => {
    if (a !== 'tanh' && a !== 'relu' && a !== 'sigmoid') fail(kernel, `unknown activation ${JSON.stringify(a)}`);
  };

  return {
    name: inner.name,
    biasRows(z, bias, rows, cols) {
      count('biasRows', 'rows', rows);
      count('biasRows', 'cols', cols);
      view('biasRows', 'z', z, rows * cols);
      view('biasRows', 'bias', bias, cols);
      noOverlap('biasRows', 'z', z, rows * cols, 'bias', bias, cols);
      inner.biasRows(z, bias, rows, cols);
    },
    activate(a, x, n) {
      act('activate', a);
      count('activate', 'n', n);
      view('activate', 'a', x, n);
      inner.activate(a, x, n);
    },
    biasActivate(a, z, bias, rows, cols) {
      act('biasActivate', a);
      count('biasActivate', 'rows', rows);
      count('biasActivate', 'cols', cols);
      view('biasActivate', 'z', z, rows * cols);
      view('biasActivate', 'bias', bias, cols);
      noOverlap('biasActivate', 'z', z, rows * cols, 'bias', bias, cols);
      inner.biasActivate(a, z, bias, rows, cols);
    },
    activateBackward(a, delta, x, n) {
      act('activateBackward', a);
      count('activateBackward', 'n', n);
      view('activateBackward', 'delta', delta, n);
      view('activateBackward', 'a', x, n);
      sameOrDisjoint('activateBackward', [['delta', delta], ['a', x]], n);
      inner.activateBackward(a, delta, x, n);
    },
    colSums(m, rows, cols, out) {
      count('colSums', 'rows', rows);
      count('colSums', 'cols', cols);
      view('colSums', 'm', m, rows * cols);
      view('colSums', 'out', out, cols);
      noOverlap('colSums', 'out', out, cols, 'm', m, rows * cols);
      inner.colSums(m, rows, cols, out);
    },
    gatherRows(src, width, idx, rows, dst) {
      count('gatherRows', 'width', width);
      count('gatherRows', 'rows', rows);
      view('gatherRows', 'idx', idx, rows);
      view('gatherRows', 'dst', dst, rows * width);
      view('gatherRows', 'src', src, 0);
      if (width > 0) indices('gatherRows', 'idx', idx, rows, Math.floor(src.length / width));
      noOverlap('gatherRows', 'dst', dst, rows * width, 'src', src, src.length);
      inner.gatherRows(src, width, idx, rows, dst);
    },
    gatherRowsI32(src, idx, rows, dst) {
      count('gatherRowsI32', 'rows', rows);
      view('gatherRowsI32', 'idx', idx, rows);
      view('gatherRowsI32', 'dst', dst, rows);
      view('gatherRowsI32', 'src', src, 0);
      indices('gatherRowsI32', 'idx', idx, rows, src.length);
      noOverlap('gatherRowsI32', 'dst', dst, rows, 'src', src, src.length);
      inner.gatherRowsI32(src, idx, rows, dst);
    },
    sgd(p, g, n, lr, wd) {
      count('sgd', 'n', n);
      view('sgd', 'p', p, n);
      view('sgd', 'g', g, n);
      sameOrDisjoint('sgd', [['p', p], ['g', g]], n);
      inner.sgd(p, g, n, lr, wd);
    },
    momentum(p, g, vel, n, lr, mu, wd) {
      count('momentum', 'n', n);
      view('momentum', 'p', p, n);
      view('momentum', 'g', g, n);
      view('momentum', 'vel', vel, n);
      sameOrDisjoint('momentum', [['p', p], ['g', g], ['vel', vel]], n);
      inner.momentum(p, g, vel, n, lr, mu, wd);
    },
    adam(p, g, m, v, n, stepSize, invC2, b1, b2, a1, a2, eps, wd) {
      count('adam', 'n', n);
      view('adam', 'p', p, n);
      view('adam', 'g', g, n);
      view('adam', 'm', m, n);
      view('adam', 'v', v, n);
      noOverlap('adam', 'm', m, n, 'v', v, n);
      noOverlap('adam', 'm', m, n, 'p', p, n);
      noOverlap('adam', 'v', v, n, 'p', p, n);
      sameOrDisjoint('adam', [['p', p], ['g', g]], n);
      inner.adam(p, g, m, v, n, stepSize, invC2, b1, b2, a1, a2, eps, wd);
    },
    logSoftmaxRows(u, rows, E, logG, g) {
      count('logSoftmaxRows', 'rows', rows);
      count('logSoftmaxRows', 'E', E);
      view('logSoftmaxRows', 'u', u, rows * E);
      view('logSoftmaxRows', 'logG', logG, rows * E);
      view('logSoftmaxRows', 'g', g, rows * E);
      sameOrDisjoint('logSoftmaxRows', [['u', u], ['logG', logG], ['g', g]], rows * E);
      inner.logSoftmaxRows(u, rows, E, logG, g);
    },
    sqErrRows(o, d, rows, K, out, outStride, outOffset) {
      count('sqErrRows', 'rows', rows);
      count('sqErrRows', 'K', K);
      view('sqErrRows', 'o', o, rows * K);
      view('sqErrRows', 'd', d, rows * K);
      strided('sqErrRows', 'out', out, rows, outStride, outOffset);
      inner.sqErrRows(o, d, rows, K, out, outStride, outOffset);
    },
    logSoftmaxPickRows(z, labels, rows, K, out, outStride, outOffset, lse) {
      count('logSoftmaxPickRows', 'rows', rows);
      count('logSoftmaxPickRows', 'K', K);
      view('logSoftmaxPickRows', 'z', z, rows * K);
      view('logSoftmaxPickRows', 'labels', labels, rows);
      view('logSoftmaxPickRows', 'lse', lse, rows);
      strided('logSoftmaxPickRows', 'out', out, rows, outStride, outOffset);
      inner.logSoftmaxPickRows(z, labels, rows, K, out, outStride, outOffset, lse);
    },
    weightedDiffRows(ref, d, w, wStride, wOffset, rows, K, gradOut) {
      count('weightedDiffRows', 'rows', rows);
      count('weightedDiffRows', 'K', K);
      view('weightedDiffRows', 'ref', ref, rows * K);
      view('weightedDiffRows', 'd', d, rows * K);
      view('weightedDiffRows', 'gradOut', gradOut, rows * K);
      strided('weightedDiffRows', 'w', w, rows, wStride, wOffset);
      sameOrDisjoint('weightedDiffRows', [['ref', ref], ['d', d], ['gradOut', gradOut]], rows * K);
      inner.weightedDiffRows(ref, d, w, wStride, wOffset, rows, K, gradOut);
    },
    softmaxMinusOnehotRows(z, lse, labels, w, wStride, wOffset, rows, K, gradOut) {
      count('softmaxMinusOnehotRows', 'rows', rows);
      count('softmaxMinusOnehotRows', 'K', K);
      view('softmaxMinusOnehotRows', 'z', z, rows * K);
      view('softmaxMinusOnehotRows', 'lse', lse, rows);
      view('softmaxMinusOnehotRows', 'labels', labels, rows);
      view('softmaxMinusOnehotRows', 'gradOut', gradOut, rows * K);
      strided('softmaxMinusOnehotRows', 'w', w, rows, wStride, wOffset);
      sameOrDisjoint('softmaxMinusOnehotRows', [['z', z], ['gradOut', gradOut]], rows * K);
      inner.softmaxMinusOnehotRows(z, lse, labels, w, wStride, wOffset, rows, K, gradOut);
    },
    dotDiffRows(d, ybar, o, rows, K, out, outStride, outOffset) {
      count('dotDiffRows', 'rows', rows);
      count('dotDiffRows', 'K', K);
      view('dotDiffRows', 'd', d, rows * K);
      view('dotDiffRows', 'ybar', ybar, rows * K);
      view('dotDiffRows', 'o', o, rows * K);
      strided('dotDiffRows', 'out', out, rows, outStride, outOffset);
      inner.dotDiffRows(d, ybar, o, rows, K, out, outStride, outOffset);
    },
    mixAccumulate(ybar, o, g, gStride, gOffset, rows, K) {
      count('mixAccumulate', 'rows', rows);
      count('mixAccumulate', 'K', K);
      view('mixAccumulate', 'ybar', ybar, rows * K);
      view('mixAccumulate', 'o', o, rows * K);
      strided('mixAccumulate', 'g', g, rows, gStride, gOffset);
      sameOrDisjoint('mixAccumulate', [['ybar', ybar], ['o', o]], rows * K);
      inner.mixAccumulate(ybar, o, g, gStride, gOffset, rows, K);
    },
    addInto(dst, src, n) {
      count('addInto', 'n', n);
      view('addInto', 'dst', dst, n);
      view('addInto', 'src', src, n);
      sameOrDisjoint('addInto', [['dst', dst], ['src', src]], n);
      inner.addInto(dst, src, n);
    },
    fill(dst, n, value) {
      count('fill', 'n', n);
      view('fill', 'dst', dst, n);
      inner.fill(dst, n, value);
    },
    copy(dst, src, n) {
      count('copy', 'n', n);
      view('copy', 'dst', dst, n);
      view('copy', 'src', src, n);
      inner.copy(dst, src, n);
    },
  };
}
