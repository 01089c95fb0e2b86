/**
 * Standardisation z = (v − mean)/std per column, fitted on the training data and stored
 * with the model. Gradients scale with the inputs (∂E/∂W = xᵀδ, formants are ~10³ Hz),
 * so raw units diverge where standardised ones train; predictions are mapped back.
 *
 * The scale of a column never decides whether it is constant: data in units of 1e-13
 * (or 1e-30) standardises exactly as the same data in units of 1. A column is constant
 * only relative to its own magnitude (`CONSTANT_RELATIVE_RANGE` (1e-6)).
 */
export interface Standardizer {
  /** Per-column mean, one per column. */
  mean: number[];
  /** Never 0: a constant column gets std 1 so it maps to (about) 0, not NaN. */
  std: number[];
}

/**
 * A column whose range (max − min) is below this fraction of its largest magnitude
 * (max |v|) is constant: its differences are at the level of float32 rounding (2⁻²⁴ ≈
 * 6e-8 relative) or a little above, noise rather than signal, and dividing by their
 * standard deviation would blow rounding up to unit size.
 */
export const CONSTANT_RELATIVE_RANGE = 1e-6;

/** Per-column minimum, maximum and largest magnitude of an n×w row-major matrix. */
function columnRanges(v: Float32Array, n: number, w: number): { min: Float64Array; max: Float64Array } {
  const min = new Float64Array(w).fill(Infinity);
  const max = new Float64Array(w).fill(-Infinity);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < w; c++) {
      const x = v[r * w + c]!;
      if (x < min[c]!) min[c] = x;
      if (x > max[c]!) max[c] = x;
    }
  }
  return { min, max };
}

function isConstant(min: number, max: number): boolean {
  if (!(max > min)) return true; // all equal (or no rows)
  const magnitude = Math.max(Math.abs(min), Math.abs(max));
  return max - min < CONSTANT_RELATIVE_RANGE * magnitude;
}

/**
 * Indices (0-based) of the constant columns of an n×w row-major matrix: every value
 * equal, or a range below `CONSTANT_RELATIVE_RANGE` (1e-6) of the column's largest
 * magnitude. These are the columns {@link fitStandardizer} gives std 1; a caller can warn
 * about them by name (`names[j]`), since a constant input carries no information.
 */
export function constantColumns(v: Float32Array, n: number, w: number): number[] {
  const { min, max } = columnRanges(v, n, w);
  const out: number[] = [];
  for (let c = 0; c < w; c++) if (isConstant(min[c]!, max[c]!)) out.push(c);
  return out;
}

/**
 * Column means and standard deviations of an n×w row-major matrix (accumulated in
 * float64). A constant column (see {@link constantColumns}) gets std 1; every other
 * column its own std, however small. `constant`: the matrix's constant columns where the
 * caller has them already (one pass over the data fewer).
 */
export function fitStandardizer(v: Float32Array, n: number, w: number, constant: readonly number[] = constantColumns(v, n, w)): Standardizer {
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
  const constantSet = new Set(constant);
  const std = sq.map((s, c) => {
    const sd = Math.sqrt(s / n);
    // sd > 0 holds for every non-constant column (its values differ); the check only
    // guards against a degenerate n (0 rows).
    return constantSet.has(c) || !(sd > 0) ? 1 : sd;
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
