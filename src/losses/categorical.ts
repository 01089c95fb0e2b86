/**
 * Classification mixture negative log likelihood, softmax experts with logits z_j:
 *   E = −log Σ_j ĝ_j P_j(y|x),  P_j(y|x) = softmax(z_j)_y.
 * Expert side: score log P_j(y|x) = z_{j,y} − logsumexp(z_j) (the logsumexp is kept for
 * BACKWARD); ∂E/∂z_j = h_j (softmax(z_j) − onehot(y))/B.
 * Main side: as the Gaussian with log s_j = log P_j(y|x): ∂E/∂log ĝ_j = −h_j.
 */
import { combineLogScores, type ErrorFunction } from './error-function.js';

export const categorical: ErrorFunction = {
  name: 'categorical',
  formula: 'E = −log Σ_j ĝ_j P_j(y|x)',
  readsTargets: false,
  mixesOutputs: false,
  gateGradAfterBackward: false,
  expertScores(kernels, b) {
    kernels.logSoftmaxPickRows(b.out, b.labels, b.rows, b.K, b.score, 1, 0, b.lse);
  },
  expertOutputGrad(kernels, b) {
    kernels.softmaxMinusOnehotRows(b.out, b.lse, b.labels, b.weight, 1, 0, b.rows, b.K, b.gradOut);
  },
  combine(v, from, until, total) {
    return combineLogScores(v, (logP) => logP, from, until, total);
  },
};
