// 0.1.0's tanh, frozen here for the kernel tests (the kernels must stay bit-identical to it
// stored to float32): the rational minimax fit, in float64. The benchmark's js-old baseline
// (bench/kernels-baseline.ts) keeps its own frozen copy; the library's tests take nothing
// from bench/.
const T1 = 4.89352455891786e-3, T3 = 6.37261928875436e-4, T5 = 1.48572235717979e-5, T7 = 5.12229709037114e-8;
const T9 = -8.60467152213735e-11, T11 = 2.00018790482477e-13, T13 = -2.76076847742355e-16;
const U0 = 4.89352518554385e-3, U2 = 2.268434632439e-3, U4 = 1.18534705686654e-4, U6 = 1.19825839466702e-6;
const TANH_CLAMP = 7.90531110763549805;

/** tanh(x) as 0.1.0 computed it: the rational minimax fit, in float64. */
export function fastTanh(v: number): number {
  const x = v > TANH_CLAMP ? TANH_CLAMP : v < -TANH_CLAMP ? -TANH_CLAMP : v;
  const x2 = x * x;
  const p = x * (T1 + x2 * (T3 + x2 * (T5 + x2 * (T7 + x2 * (T9 + x2 * (T11 + x2 * T13))))));
  return p / (U0 + x2 * (U2 + x2 * (U4 + x2 * U6)));
}
