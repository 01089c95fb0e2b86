/**
 * The numeric constants of the element-wise kernels, in ONE place: the AssemblyScript source
 * (assembly/kernels.ts, which imports this file when the WebAssembly module is built) and its
 * JavaScript mirror (src/kernels/js.ts) both read them from here, so the two sets cannot
 * drift apart. Each is the float64 value of its literal; both sets round the float32 ones
 * to float32 once (AssemblyScript `<f32>`, JavaScript `Math.fround`), which gives the same
 * float32 in both.
 *
 * This file must stay valid AssemblyScript: only `export const NAME = <number literal>;`
 * (no imports, no types, no expressions), since the AssemblyScript compiler reads it too.
 */

// exp (Cephes expf): clamp, round-to-nearest by the 1.5·2²³ trick, Cody–Waite reduction, degree-7
// polynomial (see types.ts for the order of operations).
/** Inputs above are clamped: exp(89) overflows float32 to +∞. */
export const EXP_HI = 89.0;
/** Inputs below are clamped: exp(−104) rounds to +0. */
export const EXP_LO = -104.0;
/** log₂ e. */
export const LOG2E = 1.44269504088896341;
/** 1.5·2²³: adding and subtracting it rounds a float32 of magnitude < 2²² to an integer. */
export const MAGIC = 12582912.0;
/** The float32 bit pattern of {@link MAGIC}. */
export const MAGIC_BITS = 0x4b400000;
/** Cody–Waite ln 2 = LN2_HI + LN2_LO, LN2_HI with 9 significant bits (exact times small integers). */
export const LN2_HI = 0.693359375;
export const LN2_LO = -2.1219444e-4;
/** Cephes expf polynomial coefficients P0…P5. */
export const EP0 = 1.98756915e-4;
export const EP1 = 1.3981999507e-3;
export const EP2 = 8.3334519073e-3;
export const EP3 = 4.1665795894e-2;
export const EP4 = 1.6666665459e-1;
export const EP5 = 5.0000001201e-1;

// log (Cephes logf).
/** √½: the mantissa split point. */
export const SQRTHF = 0.707106781186547524;
/** Cephes logf polynomial coefficients L0…L8. */
export const LP0 = 7.0376836292e-2;
export const LP1 = -1.151461031e-1;
export const LP2 = 1.167699874e-1;
export const LP3 = -1.2420140846e-1;
export const LP4 = 1.4249322787e-1;
export const LP5 = -1.6668057665e-1;
export const LP6 = 2.0000714765e-1;
export const LP7 = -2.4999993993e-1;
export const LP8 = 3.3333331174e-1;

// tanh through expm1, all in float32: tanh|x| = −m/(m + 2) with m = expm1(−2|x|), the sign of x
// copied back (see the `activate` entry of signatures.ts).
/** |x| is clamped here: tanh(9) is 1 − 3.0e-8 and the result rounds to 1. */
export const TANH_CLAMP = 9.0;
/** ln 2 rounded to float32, for the one-step reduction r = w − n·ln 2 (exact by Sterbenz). */
export const TANH_LN2 = 0.6931471805599453;
/**
 * expm1(r) = r + r²·(TQ0 + r·(TQ1 + r·(TQ2 + r·TQ3))) on |r| ≤ ln2/2: a minimax fit of the
 * relative error of expm1 (4.3e-7), by scripts/fit-tanh-expm1.py; the values are its float32
 * coefficients.
 */
export const TQ0 = 0.49999406933784485;
export const TQ1 = 0.16666775941848755;
export const TQ2 = 0.04187263548374176;
export const TQ3 = 0.008342879824340343;
