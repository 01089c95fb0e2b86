/**
 * The JavaScript mirror of the WebAssembly kernels (assembly/kernels.ts): the same float32
 * operations in the same order, each rounded with Math.fround, so that both sets give
 * bit-identical results (see types.ts for the operation order). Row reductions keep 4 lane
 * accumulators and combine them as the SIMD code does.
 *
 * Rounding argument: for float32 inputs, a float64 `+ − · /` or sqrt followed by one
 * Math.fround is the correctly rounded float32 result (float64 has more than 2·24 + 2 bits),
 * so each `fr(a op b)` below equals the WebAssembly f32 instruction's result.
 */
import type { Activation } from '../model/mlp.js';
import { checkedKernels } from './check.js';
import type { KernelOptions, Kernels } from './types.js';
import type { WasmMemory } from './wasm-api.js';

const fr = Math.fround;

// Bit reinterpretation float32 ↔ int32.
const F32 = new Float32Array(1);
const I32 = new Int32Array(F32.buffer);

function bitsOf(x: number): number {
  F32[0] = x;
  return I32[0]!;
}

function floatOf(bits: number): number {
  I32[0] = bits;
  return F32[0]!;
}

// exp (Cephes expf) — constants as in assembly/kernels.ts, rounded to float32.
const EXP_HI = fr(89.0);
const EXP_LO = fr(-104.0);
const LOG2E = fr(1.44269504088896341);
const MAGIC = fr(12582912.0);
const MAGIC_BITS = 0x4b400000;
const LN2_HI = fr(0.693359375);
const LN2_LO = fr(-2.1219444e-4);
const EP0 = fr(1.98756915e-4);
const EP1 = fr(1.3981999507e-3);
const EP2 = fr(8.3334519073e-3);
const EP3 = fr(4.1665795894e-2);
const EP4 = fr(1.6666665459e-1);
const EP5 = fr(5.0000001201e-1);

/** exp(x) in float32, bit-identical to the WebAssembly kernels' exp (see types.ts). `x` must be a float32 value. */
export function expF32(x: number): number {
  let xc = EXP_HI < x ? EXP_HI : x;
  xc = xc < EXP_LO ? EXP_LO : xc;
  const tm = fr(fr(xc * LOG2E) + MAGIC);
  const nf = fr(tm - MAGIC);
  const n = bitsOf(tm) - MAGIC_BITS;
  let r = fr(xc - fr(nf * LN2_HI));
  r = fr(r - fr(nf * LN2_LO));
  const z = fr(r * r);
  let y = fr(fr(EP0 * r) + EP1);
  y = fr(fr(y * r) + EP2);
  y = fr(fr(y * r) + EP3);
  y = fr(fr(y * r) + EP4);
  y = fr(fr(y * r) + EP5);
  y = fr(fr(fr(y * z) + r) + 1);
  const n1 = n >> 1;
  const n2 = n - n1;
  const s1 = floatOf((n1 + 127) << 23);
  const s2 = floatOf((n2 + 127) << 23);
  return fr(fr(y * s1) * s2);
}

// log (Cephes logf).
const SQRTHF = fr(0.707106781186547524);
const LP0 = fr(7.0376836292e-2);
const LP1 = fr(-1.151461031e-1);
const LP2 = fr(1.167699874e-1);
const LP3 = fr(-1.2420140846e-1);
const LP4 = fr(1.4249322787e-1);
const LP5 = fr(-1.6668057665e-1);
const LP6 = fr(2.0000714765e-1);
const LP7 = fr(-2.4999993993e-1);
const LP8 = fr(3.3333331174e-1);

/** log(x) in float32, bit-identical to the WebAssembly kernels' log (see types.ts). `x` must be a float32 value. */
export function logF32(x: number): number {
  if (!(x > 0)) return x === 0 ? -Infinity : NaN;
  if (x === Infinity) return x;
  let ix = bitsOf(x);
  let e = 0;
  if (ix < 0x00800000) {
    x = fr(x * 33554432);
    ix = bitsOf(x);
    e = -25;
  }
  e += (ix >> 23) - 126;
  let m = floatOf((ix & 0x007fffff) | 0x3f000000);
  if (m < SQRTHF) {
    e -= 1;
    m = fr(fr(m + m) - 1);
  } else {
    m = fr(m - 1);
  }
  const fe = e; // a small integer: exact in float32
  const z = fr(m * m);
  let y = fr(fr(LP0 * m) + LP1);
  y = fr(fr(y * m) + LP2);
  y = fr(fr(y * m) + LP3);
  y = fr(fr(y * m) + LP4);
  y = fr(fr(y * m) + LP5);
  y = fr(fr(y * m) + LP6);
  y = fr(fr(y * m) + LP7);
  y = fr(fr(y * m) + LP8);
  y = fr(fr(y * m) * z);
  y = fr(y + fr(fe * LN2_LO));
  y = fr(y - fr(0.5 * z));
  const r = fr(m + y);
  return fr(r + fr(fe * LN2_HI));
}

// tanh: the rational fit of the old fastTanh, in float64, one rounding at the end.
const TANH_CLAMP = 7.90531110763549805;
const T1 = 4.89352455891786e-3, T3 = 6.37261928875436e-4, T5 = 1.48572235717979e-5, T7 = 5.12229709037114e-8;
const T9 = -8.60467152213735e-11, T11 = 2.00018790482477e-13, T13 = -2.76076847742355e-16;
const U0 = 4.89352518554385e-3, U2 = 2.268434632439e-3, U4 = 1.18534705686654e-4, U6 = 1.19825839466702e-6;

/** tanh of a float32 value, rounded to float32, bit-identical to the WebAssembly kernel. */
export function tanhF32(v: number): number {
  let x = TANH_CLAMP < v ? TANH_CLAMP : v;
  x = x < -TANH_CLAMP ? -TANH_CLAMP : x;
  const x2 = x * x;
  let p = x2 * T13 + T11;
  p = x2 * p + T9;
  p = x2 * p + T7;
  p = x2 * p + T5;
  p = x2 * p + T3;
  p = x2 * p + T1;
  p = x * p;
  let q = x2 * U6 + U4;
  q = x2 * q + U2;
  q = x2 * q + U0;
  return fr(p / q);
}

/** Lane-order logsumexp of a[off … off+K) (see types.ts). */
function rowLse(a: Float32Array, off: number, K: number): number {
  const K4 = K - (K % 4);
  let m0 = -Infinity, m1 = -Infinity, m2 = -Infinity, m3 = -Infinity;
  for (let k = 0; k < K4; k += 4) {
    const x0 = a[off + k]!, x1 = a[off + k + 1]!, x2 = a[off + k + 2]!, x3 = a[off + k + 3]!;
    m0 = m0 < x0 ? x0 : m0;
    m1 = m1 < x1 ? x1 : m1;
    m2 = m2 < x2 ? x2 : m2;
    m3 = m3 < x3 ? x3 : m3;
  }
  const ma = m0 < m2 ? m2 : m0, mb = m1 < m3 ? m3 : m1;
  let m = ma < mb ? mb : ma;
  for (let k = K4; k < K; k++) {
    const x = a[off + k]!;
    m = m < x ? x : m;
  }
  if (m === -Infinity) return m;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (let k = 0; k < K4; k += 4) {
    s0 = fr(s0 + expF32(fr(a[off + k]! - m)));
    s1 = fr(s1 + expF32(fr(a[off + k + 1]! - m)));
    s2 = fr(s2 + expF32(fr(a[off + k + 2]! - m)));
    s3 = fr(s3 + expF32(fr(a[off + k + 3]! - m)));
  }
  let s = fr(fr(s0 + s2) + fr(s1 + s3));
  for (let k = K4; k < K; k++) s = fr(s + expF32(fr(a[off + k]! - m)));
  return fr(m + logF32(s));
}

function activate(act: Activation, a: Float32Array, n: number): void {
  switch (act) {
    case 'tanh':
      for (let i = 0; i < n; i++) a[i] = tanhF32(a[i]!);
      return;
    case 'relu':
      for (let i = 0; i < n; i++) {
        const x = a[i]!;
        a[i] = x > 0 ? x : 0;
      }
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) a[i] = fr(1 / fr(1 + expF32(-a[i]!)));
      return;
  }
  throw new Error(`unknown activation ${JSON.stringify(act)}`);
}

function activateBackward(act: Activation, delta: Float32Array, a: Float32Array, n: number): void {
  switch (act) {
    case 'tanh':
      for (let i = 0; i < n; i++) {
        const x = a[i]!;
        delta[i] = fr(delta[i]! * fr(1 - fr(x * x)));
      }
      return;
    case 'relu':
      for (let i = 0; i < n; i++) delta[i] = a[i]! > 0 ? delta[i]! : 0;
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) {
        const x = a[i]!;
        delta[i] = fr(fr(delta[i]! * x) * fr(1 - x));
      }
      return;
  }
  throw new Error(`unknown activation ${JSON.stringify(act)}`);
}

/** (d[k] − ybar[k]) · (o[k] − ybar[k]) in float32. */
function diffProduct(d: Float32Array, ybar: Float32Array, o: Float32Array, k: number): number {
  const y = ybar[k]!;
  return fr(fr(d[k]! - y) * fr(o[k]! - y));
}

const unchecked: Kernels = {
  name: 'js',

  biasRows(z, bias, rows, cols) {
    const b = bias.subarray(0, cols);
    for (let r = 0; r < rows; r++) z.set(b, r * cols);
  },

  activate,
  activateBackward,

  colSums(m, rows, cols, out) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let r = 0; r < rows; r++) s = fr(s + m[r * cols + c]!);
      out[c] = s;
    }
  },

  gatherRows(src, width, idx, rows, dst) {
    // Int32 views copy the bits unchanged (a Float32Array copy may canonicalise a NaN).
    const s = new Int32Array(src.buffer, src.byteOffset, src.length);
    const d = new Int32Array(dst.buffer, dst.byteOffset, dst.length);
    for (let r = 0; r < rows; r++) {
      const from = idx[r]! * width;
      d.set(s.subarray(from, from + width), r * width);
    }
  },

  gatherRowsI32(src, idx, rows, dst) {
    for (let r = 0; r < rows; r++) dst[r] = src[idx[r]!]!;
  },

  sgd(p, g, n, lr, wd) {
    const l = fr(lr), w = fr(wd);
    for (let i = 0; i < n; i++) {
      const pw = p[i]!;
      const gj = fr(g[i]! + fr(w * pw));
      p[i] = fr(pw - fr(l * gj));
    }
  },

  momentum(p, g, vel, n, lr, mu, wd) {
    const l = fr(lr), u = fr(mu), w = fr(wd);
    for (let i = 0; i < n; i++) {
      const pw = p[i]!;
      const gj = fr(g[i]! + fr(w * pw));
      const v = fr(fr(u * vel[i]!) + gj);
      vel[i] = v;
      p[i] = fr(pw - fr(l * v));
    }
  },

  adam(p, g, m, v, n, stepSize, invC2, b1, b2, c1, c2c, eps, wd) {
    const st = fr(stepSize), c2 = fr(invC2), B1 = fr(b1), B2 = fr(b2), ep = fr(eps), w = fr(wd);
    const a1 = fr(c1), a2 = fr(c2c);
    for (let i = 0; i < n; i++) {
      const pw = p[i]!;
      const gj = fr(g[i]! + fr(w * pw));
      const mm = fr(fr(B1 * m[i]!) + fr(a1 * gj));
      const vv = fr(fr(B2 * v[i]!) + fr(a2 * fr(gj * gj)));
      m[i] = mm;
      v[i] = vv;
      const den = fr(fr(Math.sqrt(fr(vv * c2))) + ep);
      p[i] = fr(pw - fr(fr(st * mm) / den));
    }
  },

  logSoftmaxRows(u, rows, E, logG, g) {
    for (let r = 0; r < rows; r++) {
      const off = r * E;
      const lse = rowLse(u, off, E);
      for (let k = 0; k < E; k++) {
        const lg = fr(u[off + k]! - lse);
        logG[off + k] = lg;
        g[off + k] = expF32(lg);
      }
    }
  },

  sqErrRows(o, d, rows, K, out, outStride, outOffset) {
    const K4 = K - (K % 4);
    for (let r = 0; r < rows; r++) {
      const off = r * K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K4; k += 4) {
        const e0 = fr(d[off + k]! - o[off + k]!), e1 = fr(d[off + k + 1]! - o[off + k + 1]!);
        const e2 = fr(d[off + k + 2]! - o[off + k + 2]!), e3 = fr(d[off + k + 3]! - o[off + k + 3]!);
        s0 = fr(s0 + fr(e0 * e0));
        s1 = fr(s1 + fr(e1 * e1));
        s2 = fr(s2 + fr(e2 * e2));
        s3 = fr(s3 + fr(e3 * e3));
      }
      let s = fr(fr(s0 + s2) + fr(s1 + s3));
      for (let k = K4; k < K; k++) {
        const e = fr(d[off + k]! - o[off + k]!);
        s = fr(s + fr(e * e));
      }
      out[r * outStride + outOffset] = s;
    }
  },

  logSoftmaxPickRows(z, labels, rows, K, out, outStride, outOffset, lse) {
    for (let r = 0; r < rows; r++) {
      const off = r * K;
      const l = rowLse(z, off, K);
      lse[r] = l;
      const y = labels[r]!;
      out[r * outStride + outOffset] = y >= 0 && y < K ? fr(z[off + y]! - l) : NaN;
    }
  },

  weightedDiffRows(ref, d, w, wStride, wOffset, rows, K, gradOut) {
    for (let r = 0; r < rows; r++) {
      const off = r * K;
      const wr = w[r * wStride + wOffset]!;
      for (let k = 0; k < K; k++) gradOut[off + k] = fr(wr * fr(ref[off + k]! - d[off + k]!));
    }
  },

  softmaxMinusOnehotRows(z, lse, labels, w, wStride, wOffset, rows, K, gradOut) {
    for (let r = 0; r < rows; r++) {
      const off = r * K;
      const wr = w[r * wStride + wOffset]!;
      const l = lse[r]!;
      const y = labels[r]!;
      for (let k = 0; k < K; k++) {
        const e = expF32(fr(z[off + k]! - l));
        gradOut[off + k] = fr(wr * (k === y ? fr(e - 1) : e));
      }
    }
  },

  dotDiffRows(d, ybar, o, rows, K, out, outStride, outOffset) {
    const K4 = K - (K % 4);
    for (let r = 0; r < rows; r++) {
      const off = r * K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = off; k < off + K4; k += 4) {
        s0 = fr(s0 + diffProduct(d, ybar, o, k));
        s1 = fr(s1 + diffProduct(d, ybar, o, k + 1));
        s2 = fr(s2 + diffProduct(d, ybar, o, k + 2));
        s3 = fr(s3 + diffProduct(d, ybar, o, k + 3));
      }
      let s = fr(fr(s0 + s2) + fr(s1 + s3));
      for (let k = off + K4; k < off + K; k++) s = fr(s + diffProduct(d, ybar, o, k));
      out[r * outStride + outOffset] = s;
    }
  },

  mixAccumulate(ybar, o, g, gStride, gOffset, rows, K) {
    for (let r = 0; r < rows; r++) {
      const off = r * K;
      const gr = g[r * gStride + gOffset]!;
      for (let k = 0; k < K; k++) ybar[off + k] = fr(ybar[off + k]! + fr(gr * o[off + k]!));
    }
  },

  addInto(dst, src, n) {
    for (let i = 0; i < n; i++) dst[i] = fr(dst[i]! + src[i]!);
  },

  fill(dst, n, value) {
    dst.fill(value, 0, n);
  },

  copy(dst, src, n) {
    // Int32 views copy the bits unchanged; set() handles overlapping ranges.
    new Int32Array(dst.buffer, dst.byteOffset, n).set(new Int32Array(src.buffer, src.byteOffset, n));
  },
};

/**
 * The JavaScript kernel set. With `check` (default: MOE_KERNELS_CHECK=1 in the environment)
 * every call first checks its views' sizes and indices, and, when `memory` is given, that every
 * view lies in that memory.
 */
export function jsKernels(memory?: WasmMemory, opts: KernelOptions = {}): Kernels {
  const check = opts.check ?? process.env.MOE_KERNELS_CHECK === '1';
  return check ? checkedKernels(unchecked, memory) : unchecked;
}
