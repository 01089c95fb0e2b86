/**
 * The float64 reference kernels: the element-wise loops of 0.1.0, each value computed in
 * float64 and rounded once when stored. Not a production set (5–10 ns an element); the
 * tests measure the `wasm` and `js` sets against it, and it is selectable with
 * `MOE_KERNELS=f64` to reproduce 0.1.0's numbers.
 */
import type { Activation } from '../model/mlp.js';
import type { Kernels } from './types.js';

// tanh as a rational function (the minimax fit Eigen uses for float): absolute error
// ≤ 3e-7 against Math.tanh over the whole line; NaN stays NaN.
const T1 = 4.89352455891786e-3, T3 = 6.37261928875436e-4, T5 = 1.48572235717979e-5, T7 = 5.12229709037114e-8;
const T9 = -8.60467152213735e-11, T11 = 2.00018790482477e-13, T13 = -2.76076847742355e-16;
const U0 = 4.89352518554385e-3, U2 = 2.268434632439e-3, U4 = 1.18534705686654e-4, U6 = 1.19825839466702e-6;
const TANH_CLAMP = 7.90531110763549805;

/** tanh(x) to float32 accuracy (rational minimax in float64). */
export function fastTanh(v: number): number {
  const x = v > TANH_CLAMP ? TANH_CLAMP : v < -TANH_CLAMP ? -TANH_CLAMP : v;
  const x2 = x * x;
  const p = x * (T1 + x2 * (T3 + x2 * (T5 + x2 * (T7 + x2 * (T9 + x2 * (T11 + x2 * T13))))));
  return p / (U0 + x2 * (U2 + x2 * (U4 + x2 * U6)));
}

function lse(a: ArrayLike<number>, off: number, n: number): number {
  let m = -Infinity;
  for (let k = 0; k < n; k++) if (a[off + k]! > m) m = a[off + k]!;
  if (m === -Infinity) return m;
  let s = 0;
  for (let k = 0; k < n; k++) s += Math.exp(a[off + k]! - m);
  return m + Math.log(s);
}

/** The float64 reference set. */
export const f64Kernels: Kernels = {
  name: 'f64',
  biasRows(z, bias, rows, cols) {
    if (rows === 0) return;
    z.set(bias.subarray(0, cols), 0);
    for (let filled = 1; filled < rows; filled *= 2) z.copyWithin(filled * cols, 0, Math.min(filled, rows - filled) * cols);
  },
  activate(act: Activation, a, n) {
    if (act === 'tanh') for (let i = 0; i < n; i++) a[i] = fastTanh(a[i]!);
    else if (act === 'relu') for (let i = 0; i < n; i++) { if (!(a[i]! > 0)) a[i] = 0; }
    else for (let i = 0; i < n; i++) a[i] = 1 / (1 + Math.exp(-a[i]!));
  },
  activateBackward(act: Activation, delta, a, n) {
    if (act === 'tanh') for (let i = 0; i < n; i++) delta[i] = delta[i]! * (1 - a[i]! * a[i]!);
    else if (act === 'relu') for (let i = 0; i < n; i++) { if (!(a[i]! > 0)) delta[i] = 0; }
    else for (let i = 0; i < n; i++) delta[i] = delta[i]! * a[i]! * (1 - a[i]!);
  },
  colSums(m, rows, cols, out) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let r = 0; r < rows; r++) s += m[r * cols + c]!;
      out[c] = s;
    }
  },
  gatherRows(src, width, idx, rows, dst) {
    for (let r = 0; r < rows; r++) {
      const s = idx[r]! * width;
      dst.set(src.subarray(s, s + width), r * width);
    }
  },
  gatherRowsI32(src, idx, rows, dst) {
    for (let r = 0; r < rows; r++) dst[r] = src[idx[r]!]!;
  },
  sgd(p, g, n, lr, wd) {
    for (let j = 0; j < n; j++) p[j] = p[j]! - lr * (g[j]! + wd * p[j]!);
  },
  momentum(p, g, vel, n, lr, mu, wd) {
    for (let j = 0; j < n; j++) {
      const v = mu * vel[j]! + g[j]! + wd * p[j]!;
      vel[j] = v;
      p[j] = p[j]! - lr * v;
    }
  },
  adam(p, g, m, v, n, stepSize, invC2, b1, b2, eps, wd) {
    const a1 = 1 - b1, a2 = 1 - b2;
    for (let j = 0; j < n; j++) {
      const gj = g[j]! + wd * p[j]!;
      const mj = b1 * m[j]! + a1 * gj;
      const vj = b2 * v[j]! + a2 * gj * gj;
      m[j] = mj;
      v[j] = vj;
      p[j] = p[j]! - (stepSize * mj) / (Math.sqrt(vj * invC2) + eps);
    }
  },
  logSoftmaxRows(u, rows, E, logG, g) {
    for (let r = 0; r < rows; r++) {
      const off = r * E;
      const l = lse(u, off, E);
      for (let i = 0; i < E; i++) {
        const lg = u[off + i]! - l;
        logG[off + i] = lg;
        g[off + i] = Math.exp(lg);
      }
    }
  },
  sqErrRows(o, d, rows, K, out, outStride, outOffset) {
    for (let r = 0; r < rows; r++) {
      let e = 0;
      for (let k = 0; k < K; k++) {
        const diff = d[r * K + k]! - o[r * K + k]!;
        e += diff * diff;
      }
      out[r * outStride + outOffset] = e;
    }
  },
  logSoftmaxPickRows(z, labels, rows, K, out, outStride, outOffset, lseOut) {
    for (let r = 0; r < rows; r++) {
      const l = lse(z, r * K, K);
      lseOut[r] = l;
      out[r * outStride + outOffset] = z[r * K + labels[r]!]! - l;
    }
  },
  weightedDiffRows(ref, d, w, wStride, wOffset, rows, K, gradOut) {
    for (let r = 0; r < rows; r++) {
      const wr = w[r * wStride + wOffset]!;
      for (let k = 0; k < K; k++) gradOut[r * K + k] = wr * (ref[r * K + k]! - d[r * K + k]!);
    }
  },
  softmaxMinusOnehotRows(z, lseIn, labels, w, wStride, wOffset, rows, K, gradOut) {
    for (let r = 0; r < rows; r++) {
      const wr = w[r * wStride + wOffset]!, l = lseIn[r]!, y = labels[r]!;
      for (let k = 0; k < K; k++) gradOut[r * K + k] = wr * (Math.exp(z[r * K + k]! - l) - (k === y ? 1 : 0));
    }
  },
  dotDiffRows(d, ybar, o, rows, K, out, outStride, outOffset) {
    for (let r = 0; r < rows; r++) {
      let c = 0;
      for (let k = 0; k < K; k++) c += (d[r * K + k]! - ybar[r * K + k]!) * (o[r * K + k]! - ybar[r * K + k]!);
      out[r * outStride + outOffset] = c;
    }
  },
  mixAccumulate(ybar, o, g, gStride, gOffset, rows, K) {
    for (let r = 0; r < rows; r++) {
      const gr = g[r * gStride + gOffset]!;
      for (let k = 0; k < K; k++) ybar[r * K + k] = ybar[r * K + k]! + gr * o[r * K + k]!;
    }
  },
  addInto(dst, src, n) {
    for (let j = 0; j < n; j++) dst[j] = dst[j]! + src[j]!;
  },
  fill(dst, n, value) {
    dst.fill(value, 0, n);
  },
  copy(dst, src, n) {
    dst.set(src.subarray(0, n));
  },
};
