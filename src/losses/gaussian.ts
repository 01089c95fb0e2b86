/**
 * Gaussian mixture negative log likelihood, the paper's final choice (unit variance, its
 * constant left out):  E = −log Σ_j ĝ_j exp(−½‖d − o_j‖²).
 * Expert side: score e_j = ‖d − o_j‖²; ∂E/∂o_j = h_j (o_j − d)/B with h the posterior.
 * Main side: a_j = log ĝ_j − ½ e_j, E = −logsumexp a, h_j = exp(a_j + E), ∂E/∂log ĝ_j = −h_j.
 */
import { combineLogScores, squaredErrorExpertSide, type ErrorFunction } from './error-function.js';

export const gaussian: ErrorFunction = {
  name: 'gaussian',
  formula: 'E = −log Σ_j ĝ_j exp(−½‖d − o_j‖²)',
  ...squaredErrorExpertSide,
  mixesOutputs: false,
  gateGradAfterBackward: false,
  combine(v, from, until, total) {
    return combineLogScores(v, (e) => -0.5 * e, from, until, total);
  },
};
