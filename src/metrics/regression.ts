/**
 * Regression metrics, named and defined as scikit-learn's `sklearn.metrics` (1.4+):
 * {@link r2Score} (`r2_score`), {@link meanSquaredError} (`mean_squared_error`),
 * {@link rootMeanSquaredError} (`root_mean_squared_error`) and {@link meanAbsoluteError}
 * (`mean_absolute_error`). Inputs are n values, or n×K row-major with `outputs: K`;
 * sums run in float64 whatever the input's type. Each computes one score per output
 * column, then (`multioutput: 'uniform_average'`, the default) their plain mean, or
 * (`'raw_values'`) the K scores.
 */
import { OptionError } from '../errors.js';
import { checkFinite, checkPair, type Values } from './check.js';

/** How K per-output scores are combined, as scikit-learn's `multioutput`. */
export type MultiOutput = 'uniform_average' | 'raw_values';

/** Options of the regression metrics. */
export interface RegressionMetricOptions {
  /** Output columns K of the row-major inputs (default 1). */
  outputs?: number;
  /** `uniform_average` (default): the mean of the per-output scores; `raw_values`: the K scores. */
  multioutput?: MultiOutput;
}

/** Options of {@link r2Score}. */
export interface R2Options extends RegressionMetricOptions {
  /**
   * As scikit-learn's `force_finite` (default true): an output whose true values are all
   * equal (zero variance) scores 1 when predicted exactly and 0 otherwise, instead of NaN
   * (0/0) or −Infinity.
   */
  forceFinite?: boolean;
}

function combine(scores: number[], o: RegressionMetricOptions | undefined): number | number[] {
  const how = o?.multioutput ?? 'uniform_average';
  if (how === 'raw_values') return scores;
  if (how !== 'uniform_average') throw new OptionError('multioutput', `expected uniform_average or raw_values, got ${JSON.stringify(how)}`);
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}

/** Per output column k: Σ_r f(yTrue[r,k] − yPred[r,k]) / n. */
function columnMeans(yTrue: Values, yPred: Values, o: RegressionMetricOptions | undefined, f: (d: number) => number): number[] {
  const K = o?.outputs ?? 1;
  const n = checkPair(yTrue, yPred, K);
  const sums = new Array<number>(K).fill(0);
  for (let r = 0; r < n; r++) for (let k = 0; k < K; k++) sums[k]! += f(yTrue[r * K + k]! - yPred[r * K + k]!);
  return sums.map((s) => s / n);
}

/** Mean squared error, Σ(y − ŷ)²/n per output (`sklearn.metrics.mean_squared_error`). Units: the target's, squared. */
export function meanSquaredError(yTrue: Values, yPred: Values, o?: RegressionMetricOptions & { multioutput?: 'uniform_average' }): number;
export function meanSquaredError(yTrue: Values, yPred: Values, o: RegressionMetricOptions & { multioutput: 'raw_values' }): number[];
export function meanSquaredError(yTrue: Values, yPred: Values, o?: RegressionMetricOptions): number | number[] {
  return combine(columnMeans(yTrue, yPred, o, (d) => d * d), o);
}

/**
 * Root mean squared error, √(Σ(y − ŷ)²/n) per output, then averaged over outputs
 * (`sklearn.metrics.root_mean_squared_error`: the mean of the K RMSEs, not the root of
 * the mean MSE). Units: the target's.
 */
export function rootMeanSquaredError(yTrue: Values, yPred: Values, o?: RegressionMetricOptions & { multioutput?: 'uniform_average' }): number;
export function rootMeanSquaredError(yTrue: Values, yPred: Values, o: RegressionMetricOptions & { multioutput: 'raw_values' }): number[];
export function rootMeanSquaredError(yTrue: Values, yPred: Values, o?: RegressionMetricOptions): number | number[] {
  return combine(columnMeans(yTrue, yPred, o, (d) => d * d).map(Math.sqrt), o);
}

/** Mean absolute error, Σ|y − ŷ|/n per output (`sklearn.metrics.mean_absolute_error`). Units: the target's. */
export function meanAbsoluteError(yTrue: Values, yPred: Values, o?: RegressionMetricOptions & { multioutput?: 'uniform_average' }): number;
export function meanAbsoluteError(yTrue: Values, yPred: Values, o: RegressionMetricOptions & { multioutput: 'raw_values' }): number[];
export function meanAbsoluteError(yTrue: Values, yPred: Values, o?: RegressionMetricOptions): number | number[] {
  return combine(columnMeans(yTrue, yPred, o, Math.abs), o);
}

/**
 * The coefficient of determination R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² per output, ȳ the mean
 * of `yTrue` (`sklearn.metrics.r2_score`). 1 is a perfect prediction; 0 is what
 * predicting ȳ for every row scores; it is negative for a model worse than that, without
 * bound. A constant output (Σ(y − ȳ)² = 0) scores 1 if predicted exactly, else 0
 * (`forceFinite`, the default; without it NaN or −Infinity). With fewer than 2 rows R² is
 * not defined: NaN, as scikit-learn (which also warns).
 */
export function r2Score(yTrue: Values, yPred: Values, o?: R2Options & { multioutput?: 'uniform_average' }): number;
export function r2Score(yTrue: Values, yPred: Values, o: R2Options & { multioutput: 'raw_values' }): number[];
export function r2Score(yTrue: Values, yPred: Values, o?: R2Options): number | number[] {
  const K = o?.outputs ?? 1;
  const n = checkPair(yTrue, yPred, K);
  if (n < 2) return combine(new Array<number>(K).fill(NaN), o);
  const forceFinite = o?.forceFinite ?? true;
  const scores: number[] = [];
  for (let k = 0; k < K; k++) {
    let mean = 0;
    for (let r = 0; r < n; r++) mean += yTrue[r * K + k]!;
    mean /= n;
    let num = 0, den = 0;
    for (let r = 0; r < n; r++) {
      const y = yTrue[r * K + k]!;
      num += (y - yPred[r * K + k]!) ** 2;
      den += (y - mean) ** 2;
    }
    if (num === 0) scores.push(forceFinite || den !== 0 ? 1 : NaN);
    else if (den === 0) scores.push(forceFinite ? 0 : -Infinity);
    else scores.push(1 - num / den);
  }
  return combine(scores, o);
}

/** Scores of a regression in the task's units (each the average over outputs, as scikit-learn's defaults). */
export interface RegressionScores {
  /** Coefficient of determination R² ({@link r2Score}): 1 perfect, 0 the mean of the data, negative worse. */
  r2: number;
  /** Mean squared error ({@link meanSquaredError}), target units squared. */
  mse: number;
  /** Root mean squared error ({@link rootMeanSquaredError}), target units. */
  rmse: number;
  /** Mean absolute error ({@link meanAbsoluteError}), target units. */
  mae: number;
}

/** R², MSE, RMSE and MAE of a prediction (n×K row-major). */
export function regressionScores(yTrue: Values, yPred: Values, outputs = 1): RegressionScores {
  const o = { outputs };
  return { r2: r2Score(yTrue, yPred, o), mse: meanSquaredError(yTrue, yPred, o), rmse: rootMeanSquaredError(yTrue, yPred, o), mae: meanAbsoluteError(yTrue, yPred, o) };
}

/**
 * The scores of the baseline that predicts a constant per output, `mean` (K values) —
 * the training targets' mean, as scikit-learn's `DummyRegressor(strategy='mean')` fitted
 * on the training data. A model that does not beat it has learned nothing the mean does
 * not know. Its R² is 0 on data whose mean equals `mean`, and below 0 otherwise.
 */
export function meanBaselineScores(yTrue: Values, mean: readonly number[]): RegressionScores {
  const K = mean.length;
  if (K < 1) throw new OptionError('mean', 'needs one value per output, got none');
  checkFinite(mean, 'mean');
  // One row of `mean` per row of yTrue; regressionScores checks that yTrue is whole rows of K.
  const pred = new Float64Array(yTrue.length);
  for (let i = 0; i < pred.length; i++) pred[i] = mean[i % K]!;
  return regressionScores(yTrue, pred, K);
}
