/**
 * Metrics with scikit-learn's names and definitions (camelCase): the regression and
 * classification scores `Mixture.evaluate` reports, for use on any predictions.
 */
export { r2Score, meanSquaredError, rootMeanSquaredError, meanAbsoluteError, regressionScores, meanBaselineScores } from './regression.js';
export type { MultiOutput, R2Options, RegressionMetricOptions, RegressionScores } from './regression.js';
export { accuracyScore, logLoss, confusionMatrix, precisionScore, recallScore, LOG_LOSS_EPS, LOG_LOSS_SUM_TOLERANCE } from './classification.js';
export type { Average, ConfusionMatrixOptions, PrecisionRecallOptions } from './classification.js';
export type { Values } from './check.js';
