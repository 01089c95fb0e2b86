/**
 * Cooperative error (the paper's starting point): E = ½‖d − ȳ‖², ȳ = Σ_j ĝ_j o_j.
 * The main thread forms ȳ after FORWARD (in expert order, so the sum does not depend on
 * how experts are sharded); every expert's output gradient is ∂E/∂o_j = ĝ_j (ȳ − d)/B.
 * Gate: ∂E/∂log ĝ_j = −ĝ_j (d − ȳ)·o_j/B = −ĝ_j (c_j + b)/B with the experts' dots
 * c_j = (d − ȳ)·(o_j − ȳ) (formed in BACKWARD) and b = (d − ȳ)·ȳ. Where each row's ĝ
 * sum to 1, b's terms cancel in ∂E/∂u and are left out: ∂E/∂u_i = −g_i c_i/B (the paper's).
 */
import type { ErrorFunction } from './error-function.js';

export const cooperative: ErrorFunction = {
  name: 'cooperative',
  formula: 'E = ½‖d − Σ_j ĝ_j o_j‖²',
  readsTargets: true,
  mixesOutputs: true,
  gateGradAfterBackward: true,
  expertScores() {},
  expertOutputGrad(kernels, b) {
    kernels.weightedDiffRows(b.mix, b.target, b.weight, 1, 0, b.rows, b.K, b.gradOut);
    kernels.dotDiffRows(b.target, b.mix, b.out, b.rows, b.K, b.dot, 1, 0);
  },
  combine(v, from, until, total) {
    const inv = 1 / v.rows;
    for (let r = from; r < until; r++) {
      let se = 0;
      for (let o = 0; o < v.K; o++) {
        const diff = v.target[r * v.K + o]! - v.mix[r * v.K + o]!;
        se += diff * diff;
      }
      total += 0.5 * se;
      for (let j = v.rowStart[r]!; j < v.rowStart[r + 1]!; j++) {
        const e = v.rowEntries[j]!;
        v.weight[e] = v.gateWeight[e]! * inv;
      }
    }
    return total;
  },
  gateGrad(v, from, until) {
    const inv = 1 / v.rows;
    for (let r = from; r < until; r++) {
      let b = 0;
      if (!v.normalized) {
        for (let o = 0; o < v.K; o++) {
          const y = v.mix[r * v.K + o]!;
          b += (v.target[r * v.K + o]! - y) * y;
        }
      }
      for (let j = v.rowStart[r]!; j < v.rowStart[r + 1]!; j++) {
        const e = v.rowEntries[j]!;
        v.dLogWeight[e] = -v.gateWeight[e]! * (v.dot[e]! + b) * inv;
      }
    }
  },
};
