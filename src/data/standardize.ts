/**
 * Standardisation z = (v − mean)/std per column, fitted on the training data and stored
 * with the model. Gradients scale with the inputs (∂E/∂W = xᵀδ, formants are ~10³ Hz),
 * so raw units diverge where standardised ones train; predictions are mapped back.
 */
export interface Standardizer {
  /** Per-column mean, one per column. */
  mean: number[];
  /** Never 0: a constant column gets std 1 so it maps to 0, not NaN. */
  std: number[];
}

/** Column means and standard deviations of an n×w row-major matrix (accumulated in float64). */
export function fitStandardizer(v: Float32Array, n: number, w: number): Standardizer {
  const mean = new Array<number>(w).fill(0);
  const sq = new Array<number>(w).fill(0);
  for (let r = 0; r < n; r++) for (let c = 0; c < w; c++) mean[c]! += v[r * w + c]!;
  for (let c = 0; c < w; c++) mean[c] = mean[c]! / n;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < w; c++) {
      const d = v[r * w + c]! - mean[c]!;
      sq[c]! += d * d;
    }
  }
  const std = sq.map((s) => {
    const sd = Math.sqrt(s / n);
    return sd > 1e-12 ? sd : 1;
  });
  return { mean, std };
}

/** The identity, for targets that are not standardised (classification). */
export function identityStandardizer(w: number): Standardizer {
  return { mean: new Array<number>(w).fill(0), std: new Array<number>(w).fill(1) };
}

/** z = (v − mean)/std into `out` (may be `v`). */
export function standardize(s: Standardizer, v: Float32Array, n: number, out: Float32Array = new Float32Array(v.length)): Float32Array {
  const w = s.mean.length;
  for (let r = 0; r < n; r++) for (let c = 0; c < w; c++) out[r * w + c] = (v[r * w + c]! - s.mean[c]!) / s.std[c]!;
  return out;
}

/** v = z·std + mean, in place. */
export function unstandardize(s: Standardizer, z: Float32Array, n: number): Float32Array {
  const w = s.mean.length;
  for (let r = 0; r < n; r++) for (let c = 0; c < w; c++) z[r * w + c] = z[r * w + c]! * s.std[c]! + s.mean[c]!;
  return z;
}
