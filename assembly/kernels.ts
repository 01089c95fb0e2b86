/**
 * Element-wise kernels of a training step, in AssemblyScript compiled to WebAssembly with
 * 128-bit SIMD (f32x4, f64x2). Built by `npm run build:kernels` into dist/kernels/kernels.wasm.
 *
 * Constraints (checked by test/kernels.test.ts):
 * - the memory is IMPORTED (`env.memory`, shared, up to 65536 pages) and owned by the caller:
 *   the module has no data segment, no static data and no globals in linear memory; it only
 *   touches the bytes its pointer arguments name;
 * - no allocation (`--runtime stub`, nothing allocates), no strings, no abort;
 * - plain SIMD only, no relaxed SIMD (no fused multiply-add): every result is the same on
 *   every machine, and src/kernels/js.ts reproduces it bit for bit;
 * - pointers are byte offsets into the memory; counts are in elements.
 *
 * Operation order is part of the contract: src/kernels/js.ts mirrors every operation below
 * in the same order (one float32 rounding per operation), and each kernel's entry in
 * src/kernels/signatures.ts documents it (the conventions, exp and log: src/kernels/types.ts).
 * Change one, change all three. Numeric constants come from src/kernels/constants.ts.
 *
 * Reductions over a row run in 4 lanes: lane j (j = 0…3) sums the terms k ≡ j (mod 4) for
 * k < K − K mod 4, in increasing k, starting from +0; the lanes combine as
 * (l0 + l2) + (l1 + l3); then the remaining K mod 4 terms are added one by one in increasing k.
 */

import * as K from '../src/kernels/constants';

// ---------------------------------------------------------------------------------------
// Helpers

/** Byte address of element i of a float32/int32 array at byte offset p. */
// @ts-ignore: decorator
@inline function at(p: usize, i: i32): usize {
  return p + (<usize>i << 2);
}

/** (l0 + l2) + (l1 + l3) of a float32x4. */
// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  const t = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1);
}

/** max of the lanes as pmax((l0 pmax l2), (l1 pmax l3)), where a pmax b = a < b ? b : a. */
// @ts-ignore: decorator
@inline function hmax(v: v128): f32 {
  const t = f32x4.pmax(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  const a = f32x4.extract_lane(t, 0), b = f32x4.extract_lane(t, 1);
  return a < b ? b : a;
}

// ---------------------------------------------------------------------------------------
// exp and log in float32

// exp: Cephes expf. x is clamped to [EXP_LO, EXP_HI] (exp(EXP_LO) rounds to +0, exp(EXP_HI)
// overflows to +inf), n = round-to-nearest-even(x·log2 e) by adding and subtracting 1.5·2^23,
// r = (x − n·C1) − n·C2 (Cody–Waite), exp(r) by a degree-7 polynomial, and 2^n applied as two
// exact power-of-two factors 2^(n>>1)·2^(n−(n>>1)) so that results down to subnormals round once.
const EXP_HI: f32 = <f32>K.EXP_HI;
const EXP_LO: f32 = <f32>K.EXP_LO;
const LOG2E: f32 = <f32>K.LOG2E;
const MAGIC: f32 = <f32>K.MAGIC;
const MAGIC_BITS: i32 = K.MAGIC_BITS;
const LN2_HI: f32 = <f32>K.LN2_HI;
const LN2_LO: f32 = <f32>K.LN2_LO;
const EP0: f32 = <f32>K.EP0;
const EP1: f32 = <f32>K.EP1;
const EP2: f32 = <f32>K.EP2;
const EP3: f32 = <f32>K.EP3;
const EP4: f32 = <f32>K.EP4;
const EP5: f32 = <f32>K.EP5;

// @ts-ignore: decorator
@inline function exp1(x: f32): f32 {
  let xc: f32 = EXP_HI < x ? EXP_HI : x;
  xc = xc < EXP_LO ? EXP_LO : xc;
  const tm: f32 = xc * LOG2E + MAGIC;
  const nf: f32 = tm - MAGIC;
  const n: i32 = reinterpret<i32>(tm) - MAGIC_BITS;
  let r: f32 = xc - nf * LN2_HI;
  r = r - nf * LN2_LO;
  const z: f32 = r * r;
  let y: f32 = EP0 * r + EP1;
  y = y * r + EP2;
  y = y * r + EP3;
  y = y * r + EP4;
  y = y * r + EP5;
  y = y * z + r + 1.0;
  const n1: i32 = n >> 1;
  const n2: i32 = n - n1;
  return y * reinterpret<f32>((n1 + 127) << 23) * reinterpret<f32>((n2 + 127) << 23);
}

// @ts-ignore: decorator
@inline function exp4(x: v128): v128 {
  let xc = f32x4.pmin(x, f32x4.splat(EXP_HI)); // EXP_HI < x ? EXP_HI : x
  xc = f32x4.pmax(xc, f32x4.splat(EXP_LO)); // xc < EXP_LO ? EXP_LO : xc
  const tm = f32x4.add(f32x4.mul(xc, f32x4.splat(LOG2E)), f32x4.splat(MAGIC));
  const nf = f32x4.sub(tm, f32x4.splat(MAGIC));
  const n = i32x4.sub(tm, i32x4.splat(MAGIC_BITS));
  let r = f32x4.sub(xc, f32x4.mul(nf, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(nf, f32x4.splat(LN2_LO)));
  const z = f32x4.mul(r, r);
  let y = f32x4.add(f32x4.mul(f32x4.splat(EP0), r), f32x4.splat(EP1));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(EP2));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(EP3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(EP4));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(EP5));
  y = f32x4.add(f32x4.add(f32x4.mul(y, z), r), f32x4.splat(1.0));
  const n1 = i32x4.shr_s(n, 1);
  const n2 = i32x4.sub(n, n1);
  const s1 = i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(n2, i32x4.splat(127)), 23);
  return f32x4.mul(f32x4.mul(y, s1), s2);
}

// log: Cephes logf. x = m·2^e with m in [0.5, 1) (subnormals scaled by 2^25 first); if
// m < √½ then e −= 1, m = (m + m) − 1 else m = m − 1; then
// log x = ((m + ((P(m)·m)·z + e·C2 − 0.5·z)) + e·C1) with z = m².
const SQRTHF: f32 = <f32>K.SQRTHF;
const LP0: f32 = <f32>K.LP0;
const LP1: f32 = <f32>K.LP1;
const LP2: f32 = <f32>K.LP2;
const LP3: f32 = <f32>K.LP3;
const LP4: f32 = <f32>K.LP4;
const LP5: f32 = <f32>K.LP5;
const LP6: f32 = <f32>K.LP6;
const LP7: f32 = <f32>K.LP7;
const LP8: f32 = <f32>K.LP8;

// @ts-ignore: decorator
@inline function log1(x: f32): f32 {
  if (!(x > 0)) return x == 0 ? -Infinity : NaN;
  if (x == Infinity) return x;
  let ix = reinterpret<i32>(x);
  let e: i32 = 0;
  if (ix < 0x00800000) {
    x = x * 33554432.0; // 2^25
    ix = reinterpret<i32>(x);
    e = -25;
  }
  e += (ix >> 23) - 126;
  let m = reinterpret<f32>((ix & 0x007fffff) | 0x3f000000);
  if (m < SQRTHF) {
    e -= 1;
    m = m + m - 1.0;
  } else {
    m = m - 1.0;
  }
  const fe = <f32>e;
  const z: f32 = m * m;
  let y: f32 = LP0 * m + LP1;
  y = y * m + LP2;
  y = y * m + LP3;
  y = y * m + LP4;
  y = y * m + LP5;
  y = y * m + LP6;
  y = y * m + LP7;
  y = y * m + LP8;
  y = y * m * z;
  y = y + fe * LN2_LO;
  y = y - 0.5 * z;
  const r: f32 = m + y;
  return r + fe * LN2_HI;
}

/** exp(x) in float32 (Cephes expf; see exp1). For tests and scalar callers. */
export function expF32(x: f32): f32 {
  return exp1(x);
}

/** log(x) in float32 (Cephes logf; see log1). For tests and scalar callers. */
export function logF32(x: f32): f32 {
  return log1(x);
}

// ---------------------------------------------------------------------------------------
// tanh in float32 through expm1 (constants K.TANH_*, K.TQ*; the contract: `activate` in
// src/kernels/signatures.ts).
// With g the sign bit of x and z = |x| clamped to TANH_CLAMP (NaN passes):
//   n = round(−2z·log2 e) by the MAGIC trick (n in [−26, 0]), s = 2^n built from n's bits;
//   ρ = z + n·(ln2/2), exact by Sterbenz, so that r = −2ρ = −2z − n·ln2 is the reduced argument;
//   e = expm1(r) = r·(1 + r·Q(r)) with Q of degree 3, evaluated as ρ·(ρ·Q4(ρ) − 2) where
//   Q4(ρ) = 4·Q(−2ρ): the same roundings scaled by powers of two, one multiply fewer;
//   m = expm1(−2z) = s·e − (1 − s); tanh z = m / (−2 − m); the result gets x's sign bit by XOR.
// Every step keeps the sign of zero (m = −0 at z = 0), so tanh(±0) = ±0 and tanh is exactly odd.
const TANH_CLAMP: f32 = <f32>K.TANH_CLAMP;
const TANH_M2LOG2E: f32 = <f32>(-2.0 * K.LOG2E);
const TANH_HALF_LN2: f32 = <f32>(0.5 * K.TANH_LN2);
const TQ40: f32 = <f32>(4.0 * K.TQ0);
const TQ41: f32 = <f32>(-8.0 * K.TQ1);
const TQ42: f32 = <f32>(16.0 * K.TQ2);
const TQ43: f32 = <f32>(-32.0 * K.TQ3);
const SIGN_BIT: i32 = 0x80000000;
const EXP_BIAS_SHIFT: i32 = 127 - K.MAGIC_BITS; // bits(tm) + this = n + 127

// @ts-ignore: decorator
@inline function tanh1(v: f32): f32 {
  const g = reinterpret<i32>(v) & SIGN_BIT;
  let z = reinterpret<f32>(reinterpret<i32>(v) ^ g);
  z = TANH_CLAMP < z ? TANH_CLAMP : z;
  const tm: f32 = z * TANH_M2LOG2E + MAGIC;
  const nf: f32 = tm - MAGIC;
  const s = reinterpret<f32>((reinterpret<i32>(tm) + EXP_BIAS_SHIFT) << 23);
  const rho: f32 = z + nf * TANH_HALF_LN2;
  let q: f32 = TQ43 * rho + TQ42;
  q = q * rho + TQ41;
  q = q * rho + TQ40;
  const e: f32 = rho * (rho * q - <f32>2.0);
  const m: f32 = s * e - (<f32>1.0 - s);
  const y: f32 = m / (<f32>-2.0 - m);
  return reinterpret<f32>(reinterpret<i32>(y) ^ g);
}

// @ts-ignore: decorator
@inline function tanh4(v: v128): v128 {
  const g = v128.and(v, i32x4.splat(SIGN_BIT));
  let z = v128.xor(v, g);
  z = f32x4.pmin(z, f32x4.splat(TANH_CLAMP)); // TANH_CLAMP < z ? TANH_CLAMP : z
  const tm = f32x4.add(f32x4.mul(z, f32x4.splat(TANH_M2LOG2E)), f32x4.splat(MAGIC));
  const nf = f32x4.sub(tm, f32x4.splat(MAGIC));
  const s = i32x4.shl(i32x4.add(tm, i32x4.splat(EXP_BIAS_SHIFT)), 23);
  const rho = f32x4.add(z, f32x4.mul(nf, f32x4.splat(TANH_HALF_LN2)));
  let q = f32x4.add(f32x4.mul(f32x4.splat(TQ43), rho), f32x4.splat(TQ42));
  q = f32x4.add(f32x4.mul(q, rho), f32x4.splat(TQ41));
  q = f32x4.add(f32x4.mul(q, rho), f32x4.splat(TQ40));
  const e = f32x4.mul(rho, f32x4.sub(f32x4.mul(rho, q), f32x4.splat(2.0)));
  const m = f32x4.sub(f32x4.mul(s, e), f32x4.sub(f32x4.splat(1.0), s));
  const y = f32x4.div(m, f32x4.sub(f32x4.splat(-2.0), m));
  return v128.xor(y, g);
}

// ---------------------------------------------------------------------------------------
// Forward: bias and activations

/** Every row of z (rows×cols) ← bias (cols). */
export function biasRows(z: usize, bias: usize, rows: i32, cols: i32): void {
  const bytes = <usize>cols << 2;
  for (let r = 0; r < rows; r++) memory.copy(z + <usize>r * bytes, bias, bytes);
}

// Activations by id (compile-time constants: each exported kernel below inlines one).
const TANH: i32 = 0;
const RELU: i32 = 1;
const SIGMOID: i32 = 2;

/** act(v) on 4 lanes: tanh, relu (v > 0 ? v : +0, NaN → +0) or 1 / (1 + exp(−v)). */
// @ts-ignore: decorator
@inline function act4(act: i32, v: v128): v128 {
  if (act == TANH) return tanh4(v);
  if (act == RELU) return v128.and(v, f32x4.gt(v, f32x4.splat(0)));
  return f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), exp4(f32x4.neg(v))));
}

/** act(x) on one lane, the same operations as act4. */
// @ts-ignore: decorator
@inline function act1(act: i32, x: f32): f32 {
  if (act == TANH) return tanh1(x);
  if (act == RELU) return x > 0 ? x : 0;
  return <f32>1.0 / (<f32>1.0 + exp1(-x));
}

/**
 * a ← act(a), n elements. 32 at a time: tanh and sigmoid are long chains of dependent
 * operations, and eight independent ones in flight keep the SIMD units busy (32 measured
 * 1.5× faster than 8 for tanh).
 */
// @ts-ignore: decorator
@inline function activate(act: i32, a: usize, n: i32): void {
  let i = 0;
  for (; i + 32 <= n; i += 32) {
    const p = at(a, i);
    const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
    const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
    v128.store(p, act4(act, v0));
    v128.store(p, act4(act, v1), 16);
    v128.store(p, act4(act, v2), 32);
    v128.store(p, act4(act, v3), 48);
    v128.store(p, act4(act, v4), 64);
    v128.store(p, act4(act, v5), 80);
    v128.store(p, act4(act, v6), 96);
    v128.store(p, act4(act, v7), 112);
  }
  for (; i + 4 <= n; i += 4) {
    const p = at(a, i);
    v128.store(p, act4(act, v128.load(p)));
  }
  for (; i < n; i++) {
    const p = at(a, i);
    store<f32>(p, act1(act, load<f32>(p)));
  }
}

/** Every row r of z (rows×cols): z[r,c] ← act(z[r,c] + bias[c]) (the sum rounded to float32 first). */
// @ts-ignore: decorator
@inline function biasActivate(act: i32, z: usize, bias: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = at(z, r * cols);
    let c = 0;
    for (; c + 32 <= cols; c += 32) {
      const p = at(row, c), b = at(bias, c);
      const v0 = f32x4.add(v128.load(p), v128.load(b)), v1 = f32x4.add(v128.load(p, 16), v128.load(b, 16));
      const v2 = f32x4.add(v128.load(p, 32), v128.load(b, 32)), v3 = f32x4.add(v128.load(p, 48), v128.load(b, 48));
      const v4 = f32x4.add(v128.load(p, 64), v128.load(b, 64)), v5 = f32x4.add(v128.load(p, 80), v128.load(b, 80));
      const v6 = f32x4.add(v128.load(p, 96), v128.load(b, 96)), v7 = f32x4.add(v128.load(p, 112), v128.load(b, 112));
      v128.store(p, act4(act, v0));
      v128.store(p, act4(act, v1), 16);
      v128.store(p, act4(act, v2), 32);
      v128.store(p, act4(act, v3), 48);
      v128.store(p, act4(act, v4), 64);
      v128.store(p, act4(act, v5), 80);
      v128.store(p, act4(act, v6), 96);
      v128.store(p, act4(act, v7), 112);
    }
    for (; c + 4 <= cols; c += 4) {
      const p = at(row, c);
      v128.store(p, act4(act, f32x4.add(v128.load(p), v128.load(at(bias, c)))));
    }
    for (; c < cols; c++) {
      const p = at(row, c);
      store<f32>(p, act1(act, load<f32>(p) + load<f32>(at(bias, c))));
    }
  }
}

/** a ← tanh(a), n elements. */
export function activateTanh(a: usize, n: i32): void {
  activate(TANH, a, n);
}

/** a ← a > 0 ? a : +0 (NaN → +0), n elements. */
export function activateRelu(a: usize, n: i32): void {
  activate(RELU, a, n);
}

/** a ← 1 / (1 + exp(−a)), n elements. */
export function activateSigmoid(a: usize, n: i32): void {
  activate(SIGMOID, a, n);
}

/** z[r,c] ← tanh(z[r,c] + bias[c]). */
export function biasActivateTanh(z: usize, bias: usize, rows: i32, cols: i32): void {
  biasActivate(TANH, z, bias, rows, cols);
}

/** z[r,c] ← relu(z[r,c] + bias[c]). */
export function biasActivateRelu(z: usize, bias: usize, rows: i32, cols: i32): void {
  biasActivate(RELU, z, bias, rows, cols);
}

/** z[r,c] ← sigmoid(z[r,c] + bias[c]). */
export function biasActivateSigmoid(z: usize, bias: usize, rows: i32, cols: i32): void {
  biasActivate(SIGMOID, z, bias, rows, cols);
}

/** tanh(x) in float32 (see tanh1). For tests and scalar callers. */
export function tanhF32(x: f32): f32 {
  return tanh1(x);
}

// ---------------------------------------------------------------------------------------
// Backward: activation derivatives, column sums, gathers

/** delta ← delta · (1 − a·a), n elements. */
export function backwardTanh(delta: usize, a: usize, n: i32): void {
  const one = f32x4.splat(1.0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const pd = at(delta, i), pa = at(a, i);
    const a0 = v128.load(pa), a1 = v128.load(pa, 16);
    const d0 = v128.load(pd), d1 = v128.load(pd, 16);
    v128.store(pd, f32x4.mul(d0, f32x4.sub(one, f32x4.mul(a0, a0))));
    v128.store(pd, f32x4.mul(d1, f32x4.sub(one, f32x4.mul(a1, a1))), 16);
  }
  for (; i + 4 <= n; i += 4) {
    const pd = at(delta, i);
    const av = v128.load(at(a, i));
    v128.store(pd, f32x4.mul(v128.load(pd), f32x4.sub(one, f32x4.mul(av, av))));
  }
  for (; i < n; i++) {
    const pd = at(delta, i);
    const x = load<f32>(at(a, i));
    store<f32>(pd, load<f32>(pd) * (<f32>1.0 - x * x));
  }
}

/** delta ← a > 0 ? delta : +0, n elements. */
export function backwardRelu(delta: usize, a: usize, n: i32): void {
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const pd = at(delta, i), pa = at(a, i);
    const a0 = v128.load(pa), a1 = v128.load(pa, 16);
    const d0 = v128.load(pd), d1 = v128.load(pd, 16);
    v128.store(pd, v128.and(d0, f32x4.gt(a0, zero)));
    v128.store(pd, v128.and(d1, f32x4.gt(a1, zero)), 16);
  }
  for (; i + 4 <= n; i += 4) {
    const pd = at(delta, i);
    v128.store(pd, v128.and(v128.load(pd), f32x4.gt(v128.load(at(a, i)), zero)));
  }
  for (; i < n; i++) {
    const pd = at(delta, i);
    store<f32>(pd, load<f32>(at(a, i)) > 0 ? load<f32>(pd) : 0);
  }
}

/** delta ← (delta · a) · (1 − a), n elements. */
export function backwardSigmoid(delta: usize, a: usize, n: i32): void {
  const one = f32x4.splat(1.0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const pd = at(delta, i);
    const av = v128.load(at(a, i));
    v128.store(pd, f32x4.mul(f32x4.mul(v128.load(pd), av), f32x4.sub(one, av)));
  }
  for (; i < n; i++) {
    const pd = at(delta, i);
    const x = load<f32>(at(a, i));
    store<f32>(pd, load<f32>(pd) * x * (<f32>1.0 - x));
  }
}

/**
 * out[c] = (((+0 + m[0,c]) + m[1,c]) + …) + m[rows−1,c], c < cols. Blocks of 16 columns are
 * summed down the rows in registers (the per-column order is the same as row by row).
 */
export function colSums(m: usize, rows: i32, cols: i32, out: usize): void {
  const stride = <usize>cols << 2;
  const zero = f32x4.splat(0);
  let c = 0;
  for (; c + 32 <= cols; c += 32) {
    let a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero, a7 = zero;
    let p = at(m, c);
    for (let r = 0; r < rows; r++) {
      a0 = f32x4.add(a0, v128.load(p));
      a1 = f32x4.add(a1, v128.load(p, 16));
      a2 = f32x4.add(a2, v128.load(p, 32));
      a3 = f32x4.add(a3, v128.load(p, 48));
      a4 = f32x4.add(a4, v128.load(p, 64));
      a5 = f32x4.add(a5, v128.load(p, 80));
      a6 = f32x4.add(a6, v128.load(p, 96));
      a7 = f32x4.add(a7, v128.load(p, 112));
      p += stride;
    }
    const po = at(out, c);
    v128.store(po, a0);
    v128.store(po, a1, 16);
    v128.store(po, a2, 32);
    v128.store(po, a3, 48);
    v128.store(po, a4, 64);
    v128.store(po, a5, 80);
    v128.store(po, a6, 96);
    v128.store(po, a7, 112);
  }
  for (; c + 4 <= cols; c += 4) {
    let a0 = zero;
    let p = at(m, c);
    for (let r = 0; r < rows; r++) {
      a0 = f32x4.add(a0, v128.load(p));
      p += stride;
    }
    v128.store(at(out, c), a0);
  }
  for (; c < cols; c++) {
    let s: f32 = 0;
    let p = at(m, c);
    for (let r = 0; r < rows; r++) {
      s = s + load<f32>(p);
      p += stride;
    }
    store<f32>(at(out, c), s);
  }
}

/** dst row r ← src row idx[r] (rows of `width` float32; the bits are copied unchanged). */
export function gatherRows(src: usize, width: i32, idx: usize, rows: i32, dst: usize): void {
  const bytes = <usize>width << 2;
  if (width >= 16) {
    for (let r = 0; r < rows; r++) memory.copy(dst + <usize>r * bytes, src + <usize>load<i32>(at(idx, r)) * bytes, bytes);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const s = src + <usize>load<i32>(at(idx, r)) * bytes;
    const d = dst + <usize>r * bytes;
    for (let k = 0; k < width; k++) store<i32>(at(d, k), load<i32>(at(s, k)));
  }
}

/** dst[r] ← src[idx[r]] (int32). */
export function gatherRowsI32(src: usize, idx: usize, rows: i32, dst: usize): void {
  for (let r = 0; r < rows; r++) store<i32>(at(dst, r), load<i32>(at(src, load<i32>(at(idx, r)))));
}

// ---------------------------------------------------------------------------------------
// Optimisers (planar state)

/** p ← p − lr·(g + wd·p). */
export function sgd(p: usize, g: usize, n: i32, lr: f32, wd: f32): void {
  const vlr = f32x4.splat(lr), vwd = f32x4.splat(wd);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const pp = at(p, i), pg = at(g, i);
    const p0 = v128.load(pp), p1 = v128.load(pp, 16);
    const g0 = f32x4.add(v128.load(pg), f32x4.mul(vwd, p0));
    const g1 = f32x4.add(v128.load(pg, 16), f32x4.mul(vwd, p1));
    v128.store(pp, f32x4.sub(p0, f32x4.mul(vlr, g0)));
    v128.store(pp, f32x4.sub(p1, f32x4.mul(vlr, g1)), 16);
  }
  for (; i + 4 <= n; i += 4) {
    const pp = at(p, i);
    const pv = v128.load(pp);
    const gj = f32x4.add(v128.load(at(g, i)), f32x4.mul(vwd, pv));
    v128.store(pp, f32x4.sub(pv, f32x4.mul(vlr, gj)));
  }
  for (; i < n; i++) {
    const pp = at(p, i);
    const pv = load<f32>(pp);
    const gj = load<f32>(at(g, i)) + wd * pv;
    store<f32>(pp, pv - lr * gj);
  }
}

/** v ← mu·v + (g + wd·p); p ← p − lr·v. */
export function momentum(p: usize, g: usize, vel: usize, n: i32, lr: f32, mu: f32, wd: f32): void {
  const vlr = f32x4.splat(lr), vmu = f32x4.splat(mu), vwd = f32x4.splat(wd);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const pp = at(p, i), pv = at(vel, i);
    const pw = v128.load(pp);
    const gj = f32x4.add(v128.load(at(g, i)), f32x4.mul(vwd, pw));
    const v = f32x4.add(f32x4.mul(vmu, v128.load(pv)), gj);
    v128.store(pv, v);
    v128.store(pp, f32x4.sub(pw, f32x4.mul(vlr, v)));
  }
  for (; i < n; i++) {
    const pp = at(p, i), pv = at(vel, i);
    const pw = load<f32>(pp);
    const gj = load<f32>(at(g, i)) + wd * pw;
    const v = mu * load<f32>(pv) + gj;
    store<f32>(pv, v);
    store<f32>(pp, pw - lr * v);
  }
}

/**
 * gj = g + wd·p; m ← b1·m + a1·gj; v ← b2·v + a2·(gj·gj); p ← p − (stepSize·m) / (sqrt(v·invC2) + eps),
 * with a1 = 1 − b1 and a2 = 1 − b2 from the caller (in float64, rounded once, as PyTorch's).
 */
export function adam(p: usize, g: usize, m: usize, v: usize, n: i32, stepSize: f32, invC2: f32, b1: f32, b2: f32, a1: f32, a2: f32, eps: f32, wd: f32): void {
  const vs = f32x4.splat(stepSize), vc = f32x4.splat(invC2), vb1 = f32x4.splat(b1), vb2 = f32x4.splat(b2);
  const va1 = f32x4.splat(a1), va2 = f32x4.splat(a2), veps = f32x4.splat(eps), vwd = f32x4.splat(wd);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const pp = at(p, i), pm = at(m, i), pv = at(v, i);
    const pw = v128.load(pp);
    const gj = f32x4.add(v128.load(at(g, i)), f32x4.mul(vwd, pw));
    const mm = f32x4.add(f32x4.mul(vb1, v128.load(pm)), f32x4.mul(va1, gj));
    const vv = f32x4.add(f32x4.mul(vb2, v128.load(pv)), f32x4.mul(va2, f32x4.mul(gj, gj)));
    v128.store(pm, mm);
    v128.store(pv, vv);
    const den = f32x4.add(f32x4.sqrt(f32x4.mul(vv, vc)), veps);
    v128.store(pp, f32x4.sub(pw, f32x4.div(f32x4.mul(vs, mm), den)));
  }
  for (; i < n; i++) {
    const pp = at(p, i), pm = at(m, i), pv = at(v, i);
    const pw = load<f32>(pp);
    const gj = load<f32>(at(g, i)) + wd * pw;
    const mm = b1 * load<f32>(pm) + a1 * gj;
    const vv = b2 * load<f32>(pv) + a2 * (gj * gj);
    store<f32>(pm, mm);
    store<f32>(pv, vv);
    const den = sqrt<f32>(vv * invC2) + eps;
    store<f32>(pp, pw - (stepSize * mm) / den);
  }
}

// ---------------------------------------------------------------------------------------
// Row kernels of the error functions

/** logsumexp of one row of K float32 at byte offset row (max by lanes, sum by lanes, log). */
// @ts-ignore: decorator
@inline function rowLse(row: usize, K: i32): f32 {
  let mv = f32x4.splat(-Infinity);
  let k = 0;
  for (; k + 4 <= K; k += 4) mv = f32x4.pmax(mv, v128.load(at(row, k)));
  let mx = hmax(mv);
  for (; k < K; k++) {
    const x = load<f32>(at(row, k));
    mx = mx < x ? x : mx;
  }
  if (mx == -Infinity) return mx;
  const vm = f32x4.splat(mx);
  let sv = f32x4.splat(0);
  k = 0;
  for (; k + 4 <= K; k += 4) sv = f32x4.add(sv, exp4(f32x4.sub(v128.load(at(row, k)), vm)));
  let s = hsum(sv);
  for (; k < K; k++) s = s + exp1(load<f32>(at(row, k)) - mx);
  return mx + log1(s);
}

/** Per row of u (rows×E): lse = logsumexp(u_r); logG = u − lse; g = exp(logG). */
export function logSoftmaxRows(u: usize, rows: i32, E: i32, logG: usize, g: usize): void {
  for (let r = 0; r < rows; r++) {
    const o = r * E;
    const row = at(u, o), lrow = at(logG, o), grow = at(g, o);
    const lse = rowLse(row, E);
    const vl = f32x4.splat(lse);
    let k = 0;
    for (; k + 4 <= E; k += 4) {
      const lg = f32x4.sub(v128.load(at(row, k)), vl);
      v128.store(at(lrow, k), lg);
      v128.store(at(grow, k), exp4(lg));
    }
    for (; k < E; k++) {
      const lg = load<f32>(at(row, k)) - lse;
      store<f32>(at(lrow, k), lg);
      store<f32>(at(grow, k), exp1(lg));
    }
  }
}

/** out[r·outStride + outOffset] = Σ_k (d[r,k] − o[r,k])² (lane order). */
export function sqErrRows(o: usize, d: usize, rows: i32, K: i32, out: usize, outStride: i32, outOffset: i32): void {
  for (let r = 0; r < rows; r++) {
    const ro = at(o, r * K), rd = at(d, r * K);
    let acc = f32x4.splat(0);
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const diff = f32x4.sub(v128.load(at(rd, k)), v128.load(at(ro, k)));
      acc = f32x4.add(acc, f32x4.mul(diff, diff));
    }
    let s = hsum(acc);
    for (; k < K; k++) {
      const diff = load<f32>(at(rd, k)) - load<f32>(at(ro, k));
      s = s + diff * diff;
    }
    store<f32>(at(out, r * outStride + outOffset), s);
  }
}

/** lse[r] = logsumexp(z_r); out[r·outStride + outOffset] = z[r, labels[r]] − lse[r] (NaN for a label outside [0, K)). */
export function logSoftmaxPickRows(z: usize, labels: usize, rows: i32, K: i32, out: usize, outStride: i32, outOffset: i32, lse: usize): void {
  for (let r = 0; r < rows; r++) {
    const row = at(z, r * K);
    const l = rowLse(row, K);
    store<f32>(at(lse, r), l);
    const y = load<i32>(at(labels, r));
    store<f32>(at(out, r * outStride + outOffset), <u32>y < <u32>K ? load<f32>(at(row, y)) - l : NaN);
  }
}

/** gradOut[r,k] = w[r·wStride + wOffset] · (ref[r,k] − d[r,k]). */
export function weightedDiffRows(ref: usize, d: usize, w: usize, wStride: i32, wOffset: i32, rows: i32, K: i32, gradOut: usize): void {
  for (let r = 0; r < rows; r++) {
    const o = r * K;
    const rr = at(ref, o), rd = at(d, o), rg = at(gradOut, o);
    const wr = load<f32>(at(w, r * wStride + wOffset));
    const vw = f32x4.splat(wr);
    let k = 0;
    for (; k + 4 <= K; k += 4) v128.store(at(rg, k), f32x4.mul(vw, f32x4.sub(v128.load(at(rr, k)), v128.load(at(rd, k)))));
    for (; k < K; k++) store<f32>(at(rg, k), wr * (load<f32>(at(rr, k)) - load<f32>(at(rd, k))));
  }
}

/** gradOut[r,k] = w_r · (exp(z[r,k] − lse[r]) − [k = labels[r]]), w_r = w[r·wStride + wOffset]. */
export function softmaxMinusOnehotRows(z: usize, lse: usize, labels: usize, w: usize, wStride: i32, wOffset: i32, rows: i32, K: i32, gradOut: usize): void {
  for (let r = 0; r < rows; r++) {
    const o = r * K;
    const rz = at(z, o), rg = at(gradOut, o);
    const wr = load<f32>(at(w, r * wStride + wOffset));
    const l = load<f32>(at(lse, r));
    const vw = f32x4.splat(wr), vl = f32x4.splat(l);
    // The label's logit is read before the row is written: gradOut may be z (in place).
    const y = load<i32>(at(labels, r));
    const hit = <u32>y < <u32>K;
    const zy: f32 = hit ? load<f32>(at(rz, y)) : 0;
    let k = 0;
    // e − 0 = e for every e exp returns, so the non-label terms skip the subtraction.
    for (; k + 4 <= K; k += 4) v128.store(at(rg, k), f32x4.mul(vw, exp4(f32x4.sub(v128.load(at(rz, k)), vl))));
    for (; k < K; k++) store<f32>(at(rg, k), wr * exp1(load<f32>(at(rz, k)) - l));
    if (hit) store<f32>(at(rg, y), wr * (exp1(zy - l) - <f32>1.0));
  }
}

/** out[r·outStride + outOffset] = Σ_k (d − ybar)[r,k] · (o − ybar)[r,k] (lane order). */
export function dotDiffRows(d: usize, ybar: usize, o: usize, rows: i32, K: i32, out: usize, outStride: i32, outOffset: i32): void {
  for (let r = 0; r < rows; r++) {
    const off = r * K;
    const rd = at(d, off), ry = at(ybar, off), ro = at(o, off);
    let acc = f32x4.splat(0);
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const yv = v128.load(at(ry, k));
      const a = f32x4.sub(v128.load(at(rd, k)), yv);
      const b = f32x4.sub(v128.load(at(ro, k)), yv);
      acc = f32x4.add(acc, f32x4.mul(a, b));
    }
    let s = hsum(acc);
    for (; k < K; k++) {
      const yv = load<f32>(at(ry, k));
      s = s + (load<f32>(at(rd, k)) - yv) * (load<f32>(at(ro, k)) - yv);
    }
    store<f32>(at(out, r * outStride + outOffset), s);
  }
}

/** ybar[r,k] ← ybar[r,k] + g[r·gStride + gOffset] · o[r,k]. */
export function mixAccumulate(ybar: usize, o: usize, g: usize, gStride: i32, gOffset: i32, rows: i32, K: i32): void {
  for (let r = 0; r < rows; r++) {
    const off = r * K;
    const ry = at(ybar, off), ro = at(o, off);
    const gr = load<f32>(at(g, r * gStride + gOffset));
    const vg = f32x4.splat(gr);
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const py = at(ry, k);
      v128.store(py, f32x4.add(v128.load(py), f32x4.mul(vg, v128.load(at(ro, k)))));
    }
    for (; k < K; k++) {
      const py = at(ry, k);
      store<f32>(py, load<f32>(py) + gr * load<f32>(at(ro, k)));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Plain array kernels

/** dst ← dst + src, n elements. */
export function addInto(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const pd = at(dst, i), ps = at(src, i);
    v128.store(pd, f32x4.add(v128.load(pd), v128.load(ps)));
    v128.store(pd, f32x4.add(v128.load(pd, 16), v128.load(ps, 16)), 16);
    v128.store(pd, f32x4.add(v128.load(pd, 32), v128.load(ps, 32)), 32);
    v128.store(pd, f32x4.add(v128.load(pd, 48), v128.load(ps, 48)), 48);
  }
  for (; i + 4 <= n; i += 4) {
    const pd = at(dst, i);
    v128.store(pd, f32x4.add(v128.load(pd), v128.load(at(src, i))));
  }
  for (; i < n; i++) {
    const pd = at(dst, i);
    store<f32>(pd, load<f32>(pd) + load<f32>(at(src, i)));
  }
}

/** out[0] ← Σ a_i² (float32; the order is the signature table's, src/kernels/signatures.ts). */
export function sqNorm(a: usize, n: i32, out: usize): void {
  const zero = f32x4.splat(0);
  let s0 = zero, s1 = zero, s2 = zero, s3 = zero;
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const p = at(a, i);
    const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
    s0 = f32x4.add(s0, f32x4.mul(v0, v0));
    s1 = f32x4.add(s1, f32x4.mul(v1, v1));
    s2 = f32x4.add(s2, f32x4.mul(v2, v2));
    s3 = f32x4.add(s3, f32x4.mul(v3, v3));
  }
  const t = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
  let total: f32 = f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1);
  total += f32x4.extract_lane(t, 2);
  total += f32x4.extract_lane(t, 3);
  for (; i < n; i++) {
    const x = load<f32>(at(a, i));
    total += x * x;
  }
  store<f32>(out, total);
}

/** dst[0..n) ← value. */
export function fill(dst: usize, n: i32, value: f32): void {
  if (reinterpret<i32>(value) == 0) {
    memory.fill(dst, 0, <usize>n << 2);
    return;
  }
  const v = f32x4.splat(value);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(at(dst, i), v);
  for (; i < n; i++) store<f32>(at(dst, i), value);
}

/** dst[0..n) ← src[0..n) (memmove: the ranges may overlap; bits copied unchanged). */
export function copy(dst: usize, src: usize, n: i32): void {
  memory.copy(dst, src, <usize>n << 2);
}
