/**
 * Classification metrics, named and defined as scikit-learn's `sklearn.metrics`:
 * {@link accuracyScore} (`accuracy_score`), {@link logLoss} (`log_loss`),
 * {@link confusionMatrix} (`confusion_matrix`), {@link precisionScore} and
 * {@link recallScore} (`precision_score`, `recall_score`). Labels are integers (the
 * library's class indices 0..K−1; the model's `classNames` name them).
 */
import { DataError, OptionError } from '../errors.js';
import { checkFinite, checkLabelPair, checkLabels, type Values } from './check.js';

/** Fraction of rows whose predicted label equals the true one, in [0, 1] (`sklearn.metrics.accuracy_score`). */
export function accuracyScore(yTrue: Values, yPred: Values): number {
  const n = checkLabelPair(yTrue, yPred);
  let ok = 0;
  for (let r = 0; r < n; r++) if (yTrue[r] === yPred[r]) ok++;
  return ok / n;
}

/** The labels a metric indexes by: the caller's, or the sorted union of the values in both arrays (scikit-learn's default). */
function labelSet(yTrue: Values, yPred: Values, labels: readonly number[] | undefined): number[] {
  if (labels !== undefined) {
    if (!Array.isArray(labels) || labels.length === 0) throw new OptionError('labels', 'give at least one label');
    checkLabels(labels, 'labels');
    if (new Set(labels).size !== labels.length) throw new OptionError('labels', `has a label twice: ${JSON.stringify(labels).slice(0, 80)}`);
    return [...labels];
  }
  const seen = new Set<number>();
  for (let r = 0; r < yTrue.length; r++) seen.add(yTrue[r]!).add(yPred[r]!);
  return [...seen].sort((a, b) => a - b);
}

/** Options of {@link confusionMatrix}. */
export interface ConfusionMatrixOptions {
  /**
   * The labels that index the matrix, in order (e.g. 0..K−1 to include classes absent
   * from the data). Default: every label in `yTrue` or `yPred`, sorted. Rows whose true or
   * predicted label is not listed are left out, as scikit-learn does.
   */
  labels?: readonly number[];
}

/**
 * The confusion matrix C (L×L counts, L labels): C[i][j] is the number of rows whose true
 * label is labels[i] and predicted label labels[j] (`sklearn.metrics.confusion_matrix`:
 * rows true, columns predicted). The diagonal holds the correct predictions.
 */
export function confusionMatrix(yTrue: Values, yPred: Values, o?: ConfusionMatrixOptions): number[][] {
  const n = checkLabelPair(yTrue, yPred);
  const labels = labelSet(yTrue, yPred, o?.labels);
  if (o?.labels !== undefined && !labels.some((l) => Array.prototype.includes.call(yTrue, l))) {
    throw new OptionError('labels', 'at least one label must occur in yTrue (as scikit-learn requires)');
  }
  const index = new Map(labels.map((l, i) => [l, i]));
  const cm = labels.map(() => new Array<number>(labels.length).fill(0));
  for (let r = 0; r < n; r++) {
    const i = index.get(yTrue[r]!), j = index.get(yPred[r]!);
    if (i !== undefined && j !== undefined) cm[i]![j]!++;
  }
  return cm;
}

/** How per-label precision or recall is averaged, as scikit-learn's `average` (`null`: none, one score per label). */
export type Average = null | 'macro' | 'micro' | 'weighted';

/** Options of {@link precisionScore} and {@link recallScore}. */
export interface PrecisionRecallOptions {
  /** The labels to score, in order. Default: every label in `yTrue` or `yPred`, sorted. */
  labels?: readonly number[];
  /**
   * `null` (default here): one score per label. `macro`: their unweighted mean. `micro`:
   * from the counts summed over labels (equals accuracy when every row's labels are
   * listed). `weighted`: their mean weighted by each label's support (true count).
   * scikit-learn's default is `binary` (the positive class of a two-class problem); this
   * library's classes are many, so it returns every label's score unless asked.
   */
  average?: Average;
  /**
   * The score of a label whose denominator is 0 — precision of a label never predicted,
   * recall of a label absent from `yTrue` — as scikit-learn's `zero_division`: 0 (the
   * default: scikit-learn's default `"warn"` also gives 0, with a warning), 1, or NaN
   * (then left out of `macro` and `weighted` means).
   */
  zeroDivision?: 0 | 1 | number;
}

/** Per label: true positives, predicted count, true count. */
function counts(yTrue: Values, yPred: Values, labels: number[]): { tp: number[]; predicted: number[]; actual: number[] } {
  const n = yTrue.length;
  const index = new Map(labels.map((l, i) => [l, i]));
  const tp = labels.map(() => 0), predicted = labels.map(() => 0), actual = labels.map(() => 0);
  for (let r = 0; r < n; r++) {
    const i = index.get(yTrue[r]!), j = index.get(yPred[r]!);
    if (i !== undefined) actual[i]!++;
    if (j !== undefined) predicted[j]!++;
    if (i !== undefined && yTrue[r] === yPred[r]) tp[i]!++;
  }
  return { tp, predicted, actual };
}

function zeroDivisionOf(o: PrecisionRecallOptions | undefined): number {
  const z = o?.zeroDivision ?? 0;
  if (!(z === 0 || z === 1 || Number.isNaN(z))) throw new OptionError('zeroDivision', `expected 0, 1 or NaN, got ${String(z)}`);
  return z;
}

function score(yTrue: Values, yPred: Values, o: PrecisionRecallOptions | undefined, which: 'precision' | 'recall'): number | number[] {
  checkLabelPair(yTrue, yPred);
  const zero = zeroDivisionOf(o);
  const average = o?.average ?? null;
  if (![null, 'macro', 'micro', 'weighted'].includes(average)) throw new OptionError('average', `expected null, macro, micro or weighted, got ${JSON.stringify(average)}`);
  const labels = labelSet(yTrue, yPred, o?.labels);
  const { tp, predicted, actual } = counts(yTrue, yPred, labels);
  const denominator = which === 'precision' ? predicted : actual;
  if (average === 'micro') {
    const t = tp.reduce((a, b) => a + b, 0), d = denominator.reduce((a, b) => a + b, 0);
    return d === 0 ? zero : t / d;
  }
  const perLabel = tp.map((t, i) => (denominator[i] === 0 ? zero : t / denominator[i]!));
  if (average === null) return perLabel;
  // NaN scores (zeroDivision NaN) are left out of the means, as scikit-learn's _nanaverage.
  const weights = average === 'weighted' ? actual : labels.map(() => 1);
  let sum = 0, wsum = 0;
  perLabel.forEach((s, i) => {
    if (Number.isNaN(s)) return;
    sum += s * weights[i]!;
    wsum += weights[i]!;
  });
  return wsum === 0 ? zero : sum / wsum;
}

/**
 * Precision tp/(tp + fp) per label: of the rows predicted as the label, the fraction that
 * are (`sklearn.metrics.precision_score`, with `average: null` by default — see
 * {@link PrecisionRecallOptions}). A label never predicted scores `zeroDivision` (0).
 */
export function precisionScore(yTrue: Values, yPred: Values, o?: PrecisionRecallOptions & { average?: null }): number[];
export function precisionScore(yTrue: Values, yPred: Values, o: PrecisionRecallOptions & { average: 'macro' | 'micro' | 'weighted' }): number;
export function precisionScore(yTrue: Values, yPred: Values, o?: PrecisionRecallOptions): number | number[] {
  return score(yTrue, yPred, o, 'precision');
}

/**
 * Recall tp/(tp + fn) per label: of the rows of the label, the fraction predicted as it
 * (`sklearn.metrics.recall_score`, with `average: null` by default — see
 * {@link PrecisionRecallOptions}). A label absent from `yTrue` scores `zeroDivision` (0).
 */
export function recallScore(yTrue: Values, yPred: Values, o?: PrecisionRecallOptions & { average?: null }): number[];
export function recallScore(yTrue: Values, yPred: Values, o: PrecisionRecallOptions & { average: 'macro' | 'micro' | 'weighted' }): number;
export function recallScore(yTrue: Values, yPred: Values, o?: PrecisionRecallOptions): number | number[] {
  return score(yTrue, yPred, o, 'recall');
}

/**
 * Probabilities are clipped to [ε, 1 − ε] before the log, ε = 2⁻⁵² ≈ 2.22e-16, the
 * machine epsilon of float64, as scikit-learn's `log_loss` does for float64 predictions
 * (`np.finfo(y_pred.dtype).eps`).
 */
export const LOG_LOSS_EPS = Number.EPSILON;

/**
 * A probability row may differ from summing to 1, and a probability lie outside [0, 1],
 * by at most this; float32 probabilities (the mixture's) are off by ~1e-7 at most.
 */
export const LOG_LOSS_SUM_TOLERANCE = 1e-4;

/**
 * Log-loss (cross-entropy) of predicted class probabilities, −(1/n) Σ_r log p[r, y_r],
 * natural log, in nats per row (`sklearn.metrics.log_loss`). `yProb` is n×K row-major,
 * column k the probability of label k (labels 0..K−1, K = yProb.length / n ≥ 2). Each
 * probability is clipped to [ε, 1 − ε] ({@link LOG_LOSS_EPS}) and each row then divided
 * by its sum, as scikit-learn ≤ 1.4 did; a row that does not sum to 1 within
 * {@link LOG_LOSS_SUM_TOLERANCE} (not a probability vector) is a DataError, as
 * scikit-learn ≥ 1.5 refuses it. 0 is perfect; predicting 1/K everywhere scores log K.
 */
export function logLoss(yTrue: Values, yProb: Values): number {
  const n = yTrue.length;
  if (n === 0) throw new DataError('no rows: a metric needs at least one', { column: 'yTrue' }, 'DATA_SHAPE');
  if (yProb.length % n !== 0 || yProb.length / n < 2) {
    throw new DataError(`${yProb.length} probabilities are not n×K for ${n} rows and K ≥ 2 classes`, { column: 'yProb' }, 'DATA_SHAPE');
  }
  const K = yProb.length / n;
  checkLabels(yTrue, 'yTrue');
  checkFinite(yProb, 'yProb', K);
  const eps = LOG_LOSS_EPS;
  let total = 0;
  for (let r = 0; r < n; r++) {
    const y = yTrue[r]!;
    if (y < 0 || y >= K) throw new DataError(`label ${y} has no probability column (0..${K - 1})`, { row: r + 1, column: 'yTrue' });
    let raw = 0, sum = 0;
    for (let k = 0; k < K; k++) {
      const p = yProb[r * K + k]!;
      // float32 rounding may put a probability a few ulps outside [0, 1]; the clip takes it back.
      if (p < -LOG_LOSS_SUM_TOLERANCE || p > 1 + LOG_LOSS_SUM_TOLERANCE) throw new DataError(`probability ${p} is outside [0, 1]`, { row: r + 1, column: 'yProb' });
      raw += p;
      sum += Math.min(Math.max(p, eps), 1 - eps);
    }
    if (Math.abs(raw - 1) > LOG_LOSS_SUM_TOLERANCE) throw new DataError(`probabilities sum to ${raw}, not 1`, { row: r + 1, column: 'yProb' });
    total -= Math.log(Math.min(Math.max(yProb[r * K + y]!, eps), 1 - eps) / sum);
  }
  return total / n;
}
