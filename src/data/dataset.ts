/**
 * A dataset in memory: row-major Float32Array inputs in their original units, and either
 * real targets (regression) or integer labels (classification). Checked once by
 * {@link validateDataset} so that nothing downstream sees NaN, Inf or a label out of range.
 */
import { DataError, OptionError, quoteValue } from '../errors.js';
import { Rng } from '../rng.js';
import type { Task } from '../model/config.js';

/** A dataset in memory: n rows of D float inputs and K regression targets or class labels. */
export interface Dataset {
  /** Regression (`y` set) or classification (`labels` set). */
  task: Task;
  /** Rows n ≥ 1. */
  n: number;
  /** Input width D. */
  inputs: number;
  /** n×D inputs, row-major, original units. */
  x: Float32Array;
  /** Regression: target width K; classification: number of classes. */
  outputs: number;
  /** Regression targets n×K (row-major, original units). */
  y?: Float32Array;
  /** Classification labels, each in 0..outputs−1. */
  labels?: Int32Array;
  /** Column names of the inputs (for messages and model files). */
  featureNames?: string[];
  /** Target column names (regression) or the target column (classification). */
  targetNames?: string[];
  /** Class names in label order (classification). */
  classNames?: string[];
  /** Where it came from, for messages. */
  source?: string;
}

/** Throw a DataError naming the first problem: empty, wrong width, non-finite, bad label. */
export function validateDataset(ds: Dataset, expect?: { inputs?: number; outputs?: number; task?: string }): void {
  const file = ds.source;
  const col = (names: string[] | undefined, j: number): string => names?.[j] ?? `#${j + 1}`;
  if (!(ds.n >= 1)) throw new DataError('no rows', { file }, 'DATA_SHAPE');
  if (expect?.task !== undefined && expect.task !== ds.task) {
    throw new DataError(`task is ${ds.task}, the model's is ${expect.task}`, { file }, 'DATA_SHAPE');
  }
  if (expect?.inputs !== undefined && ds.inputs !== expect.inputs) {
    throw new DataError(`has ${ds.inputs} input features, the model expects ${expect.inputs}`, { file }, 'DATA_SHAPE');
  }
  if (ds.x.length !== ds.n * ds.inputs) {
    throw new DataError(`inputs hold ${ds.x.length} values, expected n×D = ${ds.n}×${ds.inputs}`, { file }, 'DATA_SHAPE');
  }
  for (let i = 0; i < ds.x.length; i++) {
    const v = ds.x[i]!;
    if (!Number.isFinite(v)) {
      const r = Math.floor(i / ds.inputs);
      throw new DataError(`input is ${v}`, { file, row: r + 1, column: col(ds.featureNames, i % ds.inputs) });
    }
  }
  if (ds.task === 'regression') {
    if (!ds.y) throw new DataError('regression data needs targets y', { file }, 'DATA_SHAPE');
    if (expect?.outputs !== undefined && ds.outputs !== expect.outputs) {
      throw new DataError(`has ${ds.outputs} targets, the model expects ${expect.outputs}`, { file }, 'DATA_SHAPE');
    }
    if (ds.y.length !== ds.n * ds.outputs) {
      throw new DataError(`targets hold ${ds.y.length} values, expected n×K = ${ds.n}×${ds.outputs}`, { file }, 'DATA_SHAPE');
    }
    for (let i = 0; i < ds.y.length; i++) {
      const v = ds.y[i]!;
      if (!Number.isFinite(v)) {
        const r = Math.floor(i / ds.outputs);
        throw new DataError(`target is ${v}`, { file, row: r + 1, column: col(ds.targetNames, i % ds.outputs) });
      }
    }
  } else {
    if (!ds.labels) throw new DataError('classification data needs labels', { file }, 'DATA_SHAPE');
    if (ds.labels.length !== ds.n) throw new DataError(`${ds.labels.length} labels for ${ds.n} rows`, { file }, 'DATA_SHAPE');
    const classes = expect?.outputs ?? ds.outputs;
    for (let r = 0; r < ds.n; r++) {
      const l = ds.labels[r]!;
      if (!(Number.isInteger(l) && l >= 0 && l < classes)) {
        throw new DataError(`label ${l} is out of range 0..${classes - 1}`, { file, row: r + 1, column: ds.targetNames?.[0] });
      }
    }
  }
}

/** The rows `idx` of a dataset, copied. */
export function subset(ds: Dataset, idx: ArrayLike<number>): Dataset {
  const n = idx.length, D = ds.inputs, K = ds.outputs;
  const x = new Float32Array(n * D);
  const y = ds.y ? new Float32Array(n * K) : undefined;
  const labels = ds.labels ? new Int32Array(n) : undefined;
  for (let r = 0; r < n; r++) {
    const s = idx[r]!;
    x.set(ds.x.subarray(s * D, s * D + D), r * D);
    if (y) y.set(ds.y!.subarray(s * K, s * K + K), r * K);
    if (labels) labels[r] = ds.labels![s]!;
  }
  return { ...ds, n, x, ...(y ? { y } : {}), ...(labels ? { labels } : {}) };
}

/**
 * Build a dataset from plain arrays (rows of numbers), for scripts and tests: `xs` is n
 * rows of D inputs; `ys` is n rows of K targets (regression) or n integer labels
 * (classification; `classes` defaults to the largest label + 1). A row of the wrong
 * width, or a count of `ys` other than n, is a DataError naming the row. Linear in the
 * data (no spread of a large array into arguments).
 */
export function datasetFromArrays(
  task: 'regression' | 'classification',
  xs: readonly (readonly number[])[],
  ys: readonly (readonly number[])[] | readonly number[],
  classes?: number,
): Dataset {
  if (!Array.isArray(xs)) throw new DataError('inputs (xs) must be an array of rows', {}, 'DATA_SHAPE');
  if (!Array.isArray(ys)) throw new DataError(`${task === 'classification' ? 'labels' : 'targets'} (ys) must be an array`, {}, 'DATA_SHAPE');
  const n = xs.length;
  const D = Array.isArray(xs[0]) ? xs[0].length : 0;
  const x = new Float32Array(n * D);
  // Plain loops and a type check per value: forEach would skip the holes of a sparse
  // array, and Float32Array.set would read null as 0, true as 1 and "3" as 3.
  for (let r = 0; r < n; r++) {
    const row: unknown = xs[r];
    if (!Array.isArray(row) || row.length !== D) throw new DataError(`has ${Array.isArray(row) ? row.length : 'no'} inputs, row 1 has ${D}`, { row: r + 1 }, 'DATA_SHAPE');
    copyNumbers(row, x, r * D, r, 'input');
  }
  if (ys.length !== n) throw new DataError(`${ys.length} ${task === 'classification' ? 'labels' : 'target rows'} for ${n} input rows`, {}, 'DATA_SHAPE');
  if (task === 'classification') {
    const labels = new Int32Array(n);
    let top = -1;
    for (let r = 0; r < n; r++) {
      const l: unknown = ys[r];
      if (typeof l !== 'number' || !Number.isInteger(l) || l < 0) {
        throw new DataError(`label ${describe(l)} is not an integer ≥ 0`, { row: r + 1 });
      }
      labels[r] = l;
      if (l > top) top = l;
    }
    return { task, n, inputs: D, x, outputs: classes ?? top + 1, labels };
  }
  const rows = ys as readonly unknown[];
  const K = Array.isArray(rows[0]) ? rows[0].length : 0;
  if (n > 0 && !Array.isArray(rows[0])) throw new DataError(`targets must be arrays of numbers, got ${describe(rows[0])}`, { row: 1 }, 'DATA_SHAPE');
  const y = new Float32Array(n * K);
  for (let r = 0; r < n; r++) {
    const row = rows[r];
    if (!Array.isArray(row) || row.length !== K) {
      throw new DataError(`has ${Array.isArray(row) ? row.length : 'no'} targets, row 1 has ${K}`, { row: r + 1 }, 'DATA_SHAPE');
    }
    copyNumbers(row, y, r * K, r, 'target');
  }
  return { task, n, inputs: D, x, outputs: K, y };
}

/** A value as a message quotes it. */
function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (typeof v === 'string') return quoteValue(v);
  return Array.isArray(v) ? 'an array' : typeof v;
}

/** Copy one row of numbers, refusing anything that is not a number. */
function copyNumbers(row: readonly unknown[], out: Float32Array, at: number, r: number, what: 'input' | 'target'): void {
  for (let j = 0; j < row.length; j++) {
    const v = row[j];
    if (typeof v !== 'number') throw new DataError(`${what} ${describe(v)} is not a number`, { row: r + 1, column: `#${j + 1}` });
    out[at + j] = v;
  }
}

/**
 * Split row indices 0..n−1 into training and validation from the seed alone (not the
 * running shuffle state), so every fit and every resume of one model validates on the
 * same rows. Returns sorted [train, validation] indices.
 */
export function splitRows(n: number, fraction: number, seed: number): [Int32Array, Int32Array] {
  const idx = new Rng(seed ^ 0x5a17).shuffle(Int32Array.from({ length: n }, (_, i) => i));
  const nVal = Math.round(n * fraction);
  if (nVal >= n) throw new OptionError('validationSplit', `${fraction} leaves no training rows out of ${n}`);
  if (nVal === 0) throw new OptionError('validationSplit', `${fraction} of ${n} rows holds out no validation rows`);
  return [idx.subarray(nVal).sort(), idx.subarray(0, nVal).sort()];
}
