/**
 * "Commit only finite steps": a step's gradients are checked before its UPDATE, so that
 * a diverging run stops with its parameters and optimiser state at the last finite step
 * (and the model that is saved then loads).
 *
 * The check is one number per gradient vector g: its squared norm Σ g_i², formed by the
 * `sqNorm` kernel (float32 SIMD accumulation, into one float of the kernel memory; an
 * sgemm of g as a 1×P row by its transpose took 0.48 ms for a medium expert's 262,912
 * parameters, a quarter of a sparse step). NaN and ±∞
 * propagate into it, and it overflows to +∞ long before any g_i² could. The bound is
 * {@link MAX_GRAD_SQNORM} = 1e30 (‖g‖ ≤ 1e15), so that the sum of up to 10⁴ such vectors
 * (an expert's blocks in UPDATE) still has finite squares: Adam's second moment
 * v = β₂v + (1 − β₂)g² then stays finite. A gradient past it is a diverged run (the
 * losses are standardised).
 */
import { squaredNorm } from '../kernels/index.js';
import type { Kernels } from '../kernels/types.js';

/** Largest squared gradient norm a step may commit. */
export const MAX_GRAD_SQNORM = 1e30;

/** Whether the first `n` values of `g` may be committed by an optimiser step. */
export function committable(kernels: Kernels, g: Float32Array, n: number, out: Float32Array): boolean {
  return squaredNorm(kernels, g, n, out) <= MAX_GRAD_SQNORM;
}

/**
 * Whether a gradient may be committed, given an upper bound on its squared norm (from
 * `mlpBackward`'s `normOut`): at most half the limit commits at once (the bound holds for
 * the exact value, and float32 rounding of a sum of squares is far under a factor of 2, so
 * the exact check would agree); anything else, NaN and +∞ included, is decided by the
 * exact check of `g`. The decision is {@link committable}'s; only its cost changes.
 */
export function committableWithin(bound: number, kernels: Kernels, g: Float32Array, n: number, out: Float32Array): boolean {
  return bound <= MAX_GRAD_SQNORM / 2 || committable(kernels, g, n, out);
}
