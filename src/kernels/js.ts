/**
 * The JavaScript mirror of the WebAssembly kernels (assembly/kernels.ts): the same float32
 * operations in the same order, each rounded with Math.fround, so that both sets give
 * bit-identical results (see signatures.ts and types.ts for the operation order). Row
 * reductions keep 4 lane accumulators and combine them as the SIMD code does. Numeric
 * constants come from constants.ts, as the AssemblyScript's do.
 *
 * Rounding argument: for float32 inputs, a float64 `+ − · /` or sqrt followed by one
 * Math.fround is the correctly rounded float32 result (float64 has more than 2·24 + 2 bits),
 * so each `fr(a op b)` below equals the WebAssembly f32 instruction's result.
 */
import type { Activation } from '../model/mlp.js';
import { checkedKernels } from './check.js';
import * as K from './constants.js';
import type { KernelOptions, Kernels } from './types.js';
import type { WasmMemory } from './wasm-api.js';

const fr = Math.fround;

/** sqNorm's 16 accumulators (float32 values held in float64). */
const SQ_LANES = new Float64Array(16);

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

// exp (Cephes expf): the constants of src/kernels/constants.ts (shared with assembly/kernels.ts), rounded to float32.
const EXP_HI = fr(K.EXP_HI);
const EXP_LO = fr(K.EXP_LO);
const LOG2E = fr(K.LOG2E);
const MAGIC = fr(K.MAGIC);
const MAGIC_BITS = K.MAGIC_BITS;
const LN2_HI = fr(K.LN2_HI);
const LN2_LO = fr(K.LN2_LO);
const EP0 = fr(K.EP0);
const EP1 = fr(K.EP1);
const EP2 = fr(K.EP2);
const EP3 = fr(K.EP3);
const EP4 = fr(K.EP4);
const EP5 = fr(K.EP5);

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
const SQRTHF = fr(K.SQRTHF);
const LP0 = fr(K.LP0);
const LP1 = fr(K.LP1);
const LP2 = fr(K.LP2);
const LP3 = fr(K.LP3);
const LP4 = fr(K.LP4);
const LP5 = fr(K.LP5);
const LP6 = fr(K.LP6);
const LP7 = fr(K.LP7);
const LP8 = fr(K.LP8);

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

// tanh through expm1, the same float32 operations as assembly/kernels.ts (contract: `activate`
// in signatures.ts).
const TANH_CLAMP = fr(K.TANH_CLAMP);
const TANH_M2LOG2E = fr(-2 * K.LOG2E);
const TANH_HALF_LN2 = fr(0.5 * K.TANH_LN2);
const TQ40 = fr(4 * K.TQ0);
const TQ41 = fr(-8 * K.TQ1);
const TQ42 = fr(16 * K.TQ2);
const TQ43 = fr(-32 * K.TQ3);
/** 2^−k for k = 0…26: s = 2^n for n = nf in [−26, 0], the value the wasm kernel builds from n's bits. */
const POW2_NEG = Float64Array.from({ length: 27 }, (_, k) => 2 ** -k);

/** tanh of a float32 value, rounded to float32, bit-identical to the WebAssembly kernel (`activate` in signatures.ts). */
export function tanhF32(v: number): number {
  let z = Math.abs(v);
  z = TANH_CLAMP < z ? TANH_CLAMP : z;
  const tm = fr(fr(z * TANH_M2LOG2E) + MAGIC);
  const nf = fr(tm - MAGIC);
  if (nf !== nf) return NaN; // v is NaN
  const s = POW2_NEG[-nf]!;
  const rho = fr(z + fr(nf * TANH_HALF_LN2));
  let q = fr(fr(TQ43 * rho) + TQ42);
  q = fr(fr(q * rho) + TQ41);
  q = fr(fr(q * rho) + TQ40);
  const e = fr(rho * fr(fr(rho * q) - 2));
  const m = fr(fr(s * e) - fr(1 - s));
  const y = fr(m / fr(-2 - m));
  // The sign bit of v, XOR-ed onto y (y ≥ +0 here).
  return v < 0 || (v === 0 && 1 / v < 0) ? -y : y;
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

/** act(x) of one float32 value: the operations of the WebAssembly kernels. */
function act1(act: Activation, x: number): number {
  switch (act) {
    case 'tanh':
      return tanhF32(x);
    case 'relu':
      return x > 0 ? x : 0;
    case 'sigmoid':
      return fr(1 / fr(1 + expF32(-x)));
  }
  throw new Error(`unknown activation ${JSON.stringify(act)}`);
}

function biasActivate(act: Activation, z: Float32Array, bias: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    for (let c = 0; c < cols; c++) z[off + c] = act1(act, fr(z[off + c]! + bias[c]!));
  }
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
  biasActivate,
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

  sqNorm(a, n, out) {
    // The wasm kernel's lanes: element l of a block of 16 into acc[l].
    const acc = SQ_LANES;
    acc.fill(0);
    let i = 0;
    for (; i + 16 <= n; i += 16) for (let l = 0; l < 16; l++) acc[l] = fr(acc[l]! + fr(a[i + l]! * a[i + l]!));
    const lane = (j: number): number => fr(fr(acc[j]! + acc[4 + j]!) + fr(acc[8 + j]! + acc[12 + j]!));
    let total = fr(fr(fr(lane(0) + lane(1)) + lane(2)) + lane(3));
    for (; i < n; i++) total = fr(total + fr(a[i]! * a[i]!));
    out[0] = total;
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
