/**
 * "Commit only finite steps": a step's gradients are checked before its UPDATE, so that
 * a diverging run stops with its parameters and optimiser state at the last finite step
 * (and the model that is saved then loads).
 *
 * The check is one number per gradient vector g: its squared norm Σ g_i², formed by the
 * provider's sgemm (g as a 1×P row times its transpose, float32 accumulation), or for a
 * vector of at most {@link LOOP_MAX} floats by a float64 loop on the calling thread (a
 * foreign call costs more than the loop: the paper's 2→4 experts have 12). NaN and ±∞
 * propagate into it, and it overflows to +∞ long before any g_i² could. The bound is
 * {@link MAX_GRAD_SQNORM} = 1e30 (‖g‖ ≤ 1e15), so that the sum of up to 10⁴ such vectors
 * (an expert's blocks in UPDATE) still has finite squares: Adam's second moment
 * v = β₂v + (1 − β₂)g² then stays finite. A gradient past it is a diverged run (the
 * losses are standardised).
 */
import type { Sgemm } from '../compute/provider.js';

/** Largest squared gradient norm a step may commit. */
export const MAX_GRAD_SQNORM = 1e30;

/** Longest vector whose squared norm is summed by a loop rather than by sgemm. */
export const LOOP_MAX = 1024;

/**
 * Σ g_i² of the first `n` values of `g` (NaN or +∞ where any is not finite). Which way it
 * is summed depends only on `n`, so every worker count takes the same decision.
 */
export function squaredNorm(gemm: Sgemm, g: Float32Array, n: number, out: Float32Array): number {
  if (n === 0) return 0;
  if (n <= LOOP_MAX) {
    let s = 0;
    for (let i = 0; i < n; i++) s += g[i]! * g[i]!;
    return s;
  }
  gemm(false, true, 1, 1, n, 1, g, g, 0, out);
  return out[0]!;
}

/** Whether the first `n` values of `g` may be committed by an optimiser step. */
export function committable(gemm: Sgemm, g: Float32Array, n: number, out: Float32Array): boolean {
  return squaredNorm(gemm, g, n, out) <= MAX_GRAD_SQNORM;
}
