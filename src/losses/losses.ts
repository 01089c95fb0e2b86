/**
 * The error functions of Jacobs, Jordan, Nowlan & Hinton (1991), split by where their
 * work runs. For one case with target d, gate probabilities g = softmax(u), expert
 * outputs o_i, ȳ = Σ_j g_j o_j and e_i = ‖d − o_i‖²:
 *
 *   cooperative  E = ½‖d − ȳ‖²                 ∂E/∂o_i = −g_i (d − ȳ)      ∂E/∂u_i = −g_i (d − ȳ)·(o_i − ȳ)
 *   competitive  E = Σ_i g_i e_i                ∂E/∂o_i = −2 g_i (d − o_i)  ∂E/∂u_i = g_i (e_i − Σ_j g_j e_j)
 *   gaussian     E = −log Σ_i g_i exp(−½ e_i)   ∂E/∂o_i = −h_i (d − o_i)    ∂E/∂u_i = g_i − h_i
 *   categorical  E = −log Σ_i g_i P_i(y|x)      ∂E/∂z_i = h_i (softmax(z_i) − onehot(y))   ∂E/∂u_i = g_i − h_i
 *
 * with the posterior h_i = g_i s_i / Σ_j g_j s_j, s_i = exp(−½ e_i) or P_i(y|x), computed
 * in log space. The batch loss is the mean over cases, so every gradient carries 1/B.
 *
 * Expert side ("where the expert lives", a shard worker or the in-process trainer):
 * per-row scores in FORWARD and output gradients in BACKWARD, one expert at a time.
 * Main side: O(batch × experts) scalars; see gate-side.ts.
 *
 * Every output gradient has the form  ∂E/∂o_i[r] = w[r,i] · (ref_i[r] − d[r])  where the
 * main thread supplies the per-row weight w (g/B, 2g/B or h/B) and ref is ȳ
 * (cooperative), o_i (competitive, gaussian) or softmax(z_i) (categorical).
 */

/** An error function's name; `nll` is an alias resolved by {@link resolveLoss}. */
export type LossName = 'cooperative' | 'competitive' | 'gaussian' | 'categorical';
/** Every {@link LossName} (without the `nll` alias). */
export const LOSSES: readonly LossName[] = ['cooperative', 'competitive', 'gaussian', 'categorical'];

/** log Σ_k exp(a[off + k]) over k < n, shifted by the maximum so that it never overflows. */
export function rowLogSumExp(a: ArrayLike<number>, off: number, n: number): number {
  let m = -Infinity;
  for (let k = 0; k < n; k++) if (a[off + k]! > m) m = a[off + k]!;
  if (m === -Infinity) return m;
  let s = 0;
  for (let k = 0; k < n; k++) s += Math.exp(a[off + k]! - m);
  return m + Math.log(s);
}

/** Per-row expert score written in FORWARD: e_i for squared errors, log P_i(y|x) for categorical. */
export function expertScores(
  loss: LossName,
  o: Float32Array,
  d: Float32Array,
  labels: Int32Array,
  rows: number,
  K: number,
  scores: Float32Array,
  E: number,
  i: number,
  lse?: Float64Array,
): void {
  if (loss === 'cooperative') return;
  if (loss === 'categorical') {
    for (let r = 0; r < rows; r++) {
      const z = rowLogSumExp(o, r * K, K);
      // Kept for BACKWARD, which needs softmax(z) = exp(z − logsumexp(z)) again.
      if (lse) lse[r] = z;
      // log P(y) = z_y − logsumexp(z)
      scores[r * E + i] = o[r * K + labels[r]!]! - z;
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    const off = r * K;
    let e = 0;
    for (let k = 0; k < K; k++) {
      const diff = d[off + k]! - o[off + k]!;
      e += diff * diff;
    }
    scores[r * E + i] = e;
  }
}

/**
 * ∂E/∂o_i (or ∂E/∂z_i for categorical) for one expert, rows×K, into `gradOut`:
 * gradOut[r] = w[r,i] · (ref[r] − d[r]). Categorical may pass the per-row logsumexp
 * that {@link expertScores} kept in FORWARD.
 */
export function expertOutputGrad(
  loss: LossName,
  o: Float32Array,
  d: Float32Array,
  labels: Int32Array,
  ybar: Float32Array,
  weights: Float32Array,
  rows: number,
  K: number,
  E: number,
  i: number,
  gradOut: Float32Array,
  lse?: Float64Array,
): void {
  for (let r = 0; r < rows; r++) {
    const w = weights[r * E + i]!;
    const off = r * K;
    if (loss === 'categorical') {
      const z = lse ? lse[r]! : rowLogSumExp(o, off, K);
      const y = labels[r]!;
      for (let k = 0; k < K; k++) gradOut[off + k] = w * (Math.exp(o[off + k]! - z) - (k === y ? 1 : 0));
    } else {
      const ref = loss === 'cooperative' ? ybar : o;
      for (let k = 0; k < K; k++) gradOut[off + k] = w * (ref[off + k]! - d[off + k]!);
    }
  }
}

/** Cooperative only: c_i[r] = (d − ȳ)·(o_i − ȳ), the per-row dot of ∂E/∂u_i, into scores. */
export function cooperativeDots(
  o: Float32Array,
  d: Float32Array,
  ybar: Float32Array,
  rows: number,
  K: number,
  scores: Float32Array,
  E: number,
  i: number,
): void {
  for (let r = 0; r < rows; r++) {
    const off = r * K;
    let c = 0;
    for (let k = 0; k < K; k++) c += (d[off + k]! - ybar[off + k]!) * (o[off + k]! - ybar[off + k]!);
    scores[r * E + i] = c;
  }
}
