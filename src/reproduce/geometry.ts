/**
 * Decision lines of linear scorers in the original input units: where two of K linear
 * scores tie while both are the largest. Used for the gate (which expert wins) and for
 * each linear expert (which class it votes for), the lines of the paper's Figure 2.
 */
import type { Standardizer } from '../data/standardize.js';

/** A linear score s(x) = a·x + b over 2-D inputs in original units (Hz). */
export interface Affine2 {
  a: [number, number];
  b: number;
}

/** A segment in original units, between score i and score j (both top there). */
export interface TieSegment {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  i: number;
  j: number;
}

/** The plot window: [lo, hi] on each input. */
export interface Box {
  x: [number, number];
  y: [number, number];
}

/**
 * Map a linear layer on standardised inputs (W D×K row-major, then bias K, as the MLP
 * code lays it out, D = 2) to K affine scores on raw inputs:
 * s_k = Σ_d W[d,k]·(x_d − μ_d)/σ_d + b_k.
 */
export function affineScores(params: Float32Array, K: number, scaler: Standardizer): Affine2[] {
  if (scaler.mean.length !== 2) throw new RangeError(`decision lines need 2 inputs, got ${scaler.mean.length}`);
  const out: Affine2[] = [];
  for (let k = 0; k < K; k++) {
    const w0 = params[k]! / scaler.std[0]!;
    const w1 = params[K + k]! / scaler.std[1]!;
    out.push({ a: [w0, w1], b: params[2 * K + k]! - w0 * scaler.mean[0]! - w1 * scaler.mean[1]! });
  }
  return out;
}

/**
 * The boundaries of the argmax regions of `scores` inside `box`: for each pair (i, j), the
 * part of the line s_i = s_j where no other score is larger, clipped to the box. Exact
 * (half-plane clipping on the line's parameter), not sampled.
 */
export function argmaxBoundaries(scores: readonly Affine2[], box: Box, only?: (i: number, j: number) => boolean): TieSegment[] {
  const out: TieSegment[] = [];
  const span = Math.hypot(box.x[1] - box.x[0], box.y[1] - box.y[0]);
  for (let i = 0; i < scores.length; i++) {
    for (let j = i + 1; j < scores.length; j++) {
      if (only && !only(i, j)) continue;
      const si = scores[i]!, sj = scores[j]!;
      const a0 = si.a[0] - sj.a[0], a1 = si.a[1] - sj.a[1], c = si.b - sj.b;
      const norm = Math.hypot(a0, a1);
      if (!(norm > 0)) continue;
      // Points p0 + t·d with d a unit vector along the line: t is in input units.
      const p0x = (-c * a0) / (norm * norm), p0y = (-c * a1) / (norm * norm);
      const dx = -a1 / norm, dy = a0 / norm;
      let lo = -Infinity, hi = Infinity;
      // Each constraint reads A + B·t ≥ 0.
      const keep = (A: number, B: number): void => {
        if (Math.abs(B) < 1e-15) {
          if (A < 0) lo = Infinity;
        } else if (B > 0) lo = Math.max(lo, -A / B);
        else hi = Math.min(hi, -A / B);
      };
      keep(p0x - box.x[0], dx);
      keep(box.x[1] - p0x, -dx);
      keep(p0y - box.y[0], dy);
      keep(box.y[1] - p0y, -dy);
      for (let m = 0; m < scores.length; m++) {
        if (m === i || m === j) continue;
        const sm = scores[m]!;
        // s_i − s_m along the line (s_i = s_j there).
        const e0 = si.a[0] - sm.a[0], e1 = si.a[1] - sm.a[1], eb = si.b - sm.b;
        keep(e0 * p0x + e1 * p0y + eb, e0 * dx + e1 * dy);
      }
      if (hi - lo > 1e-9 * span) {
        out.push({ x1: p0x + lo * dx, y1: p0y + lo * dy, x2: p0x + hi * dx, y2: p0y + hi * dy, i, j });
      }
    }
  }
  return out;
}
