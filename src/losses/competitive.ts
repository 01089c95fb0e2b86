/**
 * Competitive error (the paper's second form): E = Σ_j ĝ_j ‖d − o_j‖².
 * Expert side: score e_j = ‖d − o_j‖²; ∂E/∂o_j = 2ĝ_j (o_j − d)/B.
 * Main side: E_row = Σ_j ĝ_j e_j, weight 2ĝ_j/B, ∂E/∂log ĝ_j = ĝ_j e_j/B (so under the
 * dense softmax ∂E/∂u_i = g_i (e_i − Σ_j g_j e_j)/B).
 */
import { squaredErrorExpertSide, type ErrorFunction } from './error-function.js';

export const competitive: ErrorFunction = {
  name: 'competitive',
  formula: 'E = Σ_j ĝ_j ‖d − o_j‖²',
  ...squaredErrorExpertSide,
  mixesOutputs: false,
  gateGradAfterBackward: false,
  combine(v, from, until, total) {
    const inv = 1 / v.rows;
    for (let r = from; r < until; r++) {
      for (let j = v.rowStart[r]!; j < v.rowStart[r + 1]!; j++) {
        const e = v.rowEntries[j]!;
        const g = v.gateWeight[e]!, s = v.score[e]!;
        total += g * s;
        v.weight[e] = 2 * g * inv;
        v.dLogWeight[e] = g * s * inv;
      }
    }
    return total;
  },
};
