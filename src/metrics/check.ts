/** Shape and value checks shared by the metric functions: one typed error naming the argument. */
import { DataError, OptionError } from '../errors.js';

/** A 1-D array of numbers, or an n×K matrix stored row-major. */
export type Values = ArrayLike<number>;

/** Check that `yTrue` and `yPred` hold the same number of finite values, a whole number of rows of `outputs`; return n. */
export function checkPair(yTrue: Values, yPred: Values, outputs: number): number {
  if (!Number.isInteger(outputs) || outputs < 1) throw new OptionError('outputs', `must be a positive integer, got ${String(outputs)}`);
  if (yTrue.length !== yPred.length) {
    throw new DataError(`yPred has ${yPred.length} values, yTrue ${yTrue.length}: they must have the same shape`, { column: 'yPred' }, 'DATA_SHAPE');
  }
  if (yTrue.length === 0) throw new DataError('no rows: a metric needs at least one', { column: 'yTrue' }, 'DATA_SHAPE');
  if (yTrue.length % outputs !== 0) {
    throw new DataError(`${yTrue.length} values are not a whole number of rows of ${outputs} outputs`, { column: 'yTrue' }, 'DATA_SHAPE');
  }
  checkFinite(yTrue, 'yTrue', outputs);
  checkFinite(yPred, 'yPred', outputs);
  return yTrue.length / outputs;
}

/** Throw a DataError at the first NaN or ±Infinity (scikit-learn refuses them too). */
export function checkFinite(v: Values, name: string, outputs = 1): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new DataError(`value is ${String(v[i])}`, { row: Math.floor(i / outputs) + 1, column: name });
  }
}

/** Check class labels: integers (scikit-learn takes any labels; the library's are the indices 0..K−1). */
export function checkLabels(v: Values, name: string): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isInteger(v[i])) throw new DataError(`label ${String(v[i])} is not an integer`, { row: i + 1, column: name });
  }
}

/** Check a pair of label arrays: same length, at least one, integers; return n. */
export function checkLabelPair(yTrue: Values, yPred: Values): number {
  if (yTrue.length !== yPred.length) {
    throw new DataError(`yPred has ${yPred.length} labels, yTrue ${yTrue.length}: they must have the same length`, { column: 'yPred' }, 'DATA_SHAPE');
  }
  if (yTrue.length === 0) throw new DataError('no rows: a metric needs at least one', { column: 'yTrue' }, 'DATA_SHAPE');
  checkLabels(yTrue, 'yTrue');
  checkLabels(yPred, 'yPred');
  return yTrue.length;
}
