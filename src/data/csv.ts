/**
 * Streaming CSV loader. The file is read once through csv-parse and the numbers go
 * straight into Float32Array buffers that double as they fill, so a large file costs about
 * its float32 size (×2 while growing, ×3 for the final trim), never an array of strings.
 */
import { createReadStream } from 'node:fs';
import { parse } from 'csv-parse';
import { DataError, OptionError } from '../errors.js';
import type { Dataset } from './dataset.js';

/** Options of {@link loadCsv}: which columns are targets and inputs, and the task. */
export interface CsvOptions {
  /** Target column(s): one for classification, one or more for regression. */
  target: string[];
  /** Input columns, in this order; default every column that is not a target. */
  features?: string[];
  /** Regression (numeric targets) or classification (target values are class names). */
  task: 'regression' | 'classification';
  /** Fixed label order (e.g. from a trained model); an unseen label is then an error. */
  classNames?: string[];
  /**
   * Default true. With false the target columns may be missing (inputs to predict on):
   * they are never inputs, and they are read only when every one is in the file; the
   * dataset then has no `y` or `labels`, `targetNames` is empty and `target` may be `[]`.
   */
  requireTarget?: boolean;
}

/** One data record of a CSV file: `row` is 1-based (the header is row 0), `line` the file line. */
export interface CsvRecord {
  row: number;
  line: number;
  values: string[];
}

// Ordinary decimal with optional exponent; rejects hex, binary, '', ' ', '1_000' that Number() takes.
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE = /^[+-]?(?:nan|inf|infinity)$/i;
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Parse one numeric cell: plain decimal or exponent notation (`-1.5`, `.5`, `2e-3`), no
 * surrounding whitespace. Returns NaN for anything else, including '' and hex.
 */
export function parseNumber(text: string): number {
  return NUMBER.test(text) ? Number(text) : NaN;
}

/**
 * Stream a CSV file: the header (trimmed names, BOM removed), then its data records.
 * Blank lines are skipped; every error is a {@link DataError} naming the file and row.
 */
export async function openCsv(path: string): Promise<{ header: string[]; records: AsyncGenerator<CsvRecord> }> {
  const input = createReadStream(path);
  // Field counts are checked here, not by csv-parse: its check fires for a whole chunk before
  // earlier records are consumed, so errors would not come in row order, and it lacks the row.
  const parser = parse({ bom: true, trim: true, skip_empty_lines: true, info: true, relax_column_count: true });
  // pipe() does not forward errors; without this a missing file would leave the loop waiting.
  input.on('error', (err) => parser.destroy(err));
  input.pipe(parser);
  const it = records(path, input, parser);
  try {
    const first = await it.next();
    if (first.done) {
      throw new DataError('file is empty (a header row is required)', { file: path }, 'DATA_SHAPE');
    }
    const header = first.value.values;
    const seen = new Set<string>();
    for (const name of header) {
      if (name === '') throw new DataError('header has an empty column name', { file: path, row: 0 });
      if (seen.has(name)) throw new DataError(`header names column "${name}" twice`, { file: path, row: 0 });
      seen.add(name);
    }
    return { header, records: it };
  } catch (err) {
    await it.return(undefined);
    throw err;
  }
}

async function* records(
  file: string,
  input: ReturnType<typeof createReadStream>,
  parser: ReturnType<typeof parse>,
): AsyncGenerator<CsvRecord> {
  let row = 0;
  let width = 0;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (row === 0) width = record.length;
      else if (record.length !== width) {
        throw new DataError(`has ${record.length} fields, the header has ${width} (line ${info.lines})`, { file, row }, 'CSV_PARSE');
      }
      yield { row: row++, line: info.lines, values: record };
    }
  } catch (err) {
    throw csvError(file, err);
  } finally {
    // The caller may stop early (throw on a bad cell); release the file descriptor then too.
    input.destroy();
    parser.destroy();
  }
}

function csvError(file: string, err: unknown): Error {
  if (err instanceof DataError || err instanceof OptionError) return err;
  const e = err as { code?: string; message?: string; records?: number };
  if (e.code === 'ENOENT') return new DataError('file not found', { file }, 'FILE_NOT_FOUND');
  if ((typeof e.code === 'string' && e.code.startsWith('CSV_')) || e.code === 'INVALID_OPENING_QUOTE') {
    // Quoting errors. csv-parse counts the header among its records, so `records` is the
    // failing data row; its message already gives the line.
    const row = e.records !== undefined && e.records > 0 ? e.records : undefined;
    return new DataError(e.message ?? e.code, row !== undefined ? { file, row } : { file }, 'CSV_PARSE');
  }
  return new DataError(`cannot read: ${e.message ?? String(err)}`, { file }, 'INVALID_DATA');
}

/**
 * One numeric cell, checked as a finite float32: the value, or a DataError naming the
 * file, row and column (empty, not a number, non-finite, beyond the float32 range).
 */
export function numberCell(text: string, file: string, row: number, column: string): number {
  if (text === '') throw new DataError('empty cell', { file, row, column });
  const v = parseNumber(text);
  if (Number.isNaN(v)) {
    if (NON_FINITE.test(text)) throw new DataError(`"${text}" is not finite`, { file, row, column });
    throw new DataError(`"${text}" is not a number`, { file, row, column });
  }
  // Float32 is the storage type; 1e39 would silently become Infinity there.
  if (!(Math.abs(v) <= FLOAT32_MAX)) throw new DataError(`"${text}" is not finite as a 32-bit float`, { file, row, column });
  return v;
}

/** Column indices of `names` in `header`, or an OptionError naming `option` and listing what is available. */
export function columnIndices(option: string, names: readonly string[], header: readonly string[], file: string): number[] {
  return names.map((name) => {
    const j = header.indexOf(name);
    if (j < 0) {
      throw new OptionError(option, `no column "${name}" in ${file}; available: ${header.join(', ')}`);
    }
    return j;
  });
}

function grow<T extends Float32Array | Int32Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/**
 * Load a CSV file as a {@link Dataset}: x is n×D float32 (row-major, file units), y n×K
 * (regression) or labels 0..C−1 (classification, in order of first appearance unless
 * `classNames` fixes them); neither where `requireTarget: false` and a target column is
 * missing. Throws DataError (bad file or cell, with file/row/column) or OptionError (bad
 * column choice).
 */
export async function loadCsv(path: string, opts: CsvOptions): Promise<Dataset> {
  const { task } = opts;
  const requireTarget = opts.requireTarget ?? true;
  if (requireTarget && opts.target.length === 0) throw new OptionError('target', 'name at least one target column');
  if (task === 'classification' && opts.target.length > 1) {
    throw new OptionError('target', `classification takes one target column, got ${opts.target.join(', ')}`);
  }
  if (new Set(opts.target).size !== opts.target.length) throw new OptionError('target', 'a column is named twice');
  if (opts.features !== undefined) {
    if (opts.features.length === 0) throw new OptionError('features', 'name at least one feature column');
    if (new Set(opts.features).size !== opts.features.length) throw new OptionError('features', 'a column is named twice');
    const both = opts.features.find((f) => opts.target.includes(f));
    if (both !== undefined) throw new OptionError('features', `"${both}" is also a target`);
  }
  const fixed = opts.classNames;
  if (fixed !== undefined) {
    if (task !== 'classification') throw new OptionError('classNames', 'only for classification');
    if (fixed.length < 2) throw new OptionError('classNames', 'needs at least two classes');
    if (new Set(fixed).size !== fixed.length) throw new OptionError('classNames', 'a class is named twice');
  }

  const { header, records } = await openCsv(path);
  try {
    const hasTarget = opts.target.length > 0 && (requireTarget || opts.target.every((t) => header.includes(t)));
    const ti = hasTarget ? columnIndices('target', opts.target, header, path) : [];
    const featureNames = opts.features ?? header.filter((h) => !opts.target.includes(h));
    if (featureNames.length === 0) {
      throw new OptionError('features', `every column of ${path} is a target; available: ${header.join(', ')}`);
    }
    const fi = columnIndices('features', featureNames, header, path);
    const D = fi.length, K = opts.target.length;

    let x = new Float32Array(1024 * D);
    let y = hasTarget && task === 'regression' ? new Float32Array(1024 * K) : undefined;
    let labels = hasTarget && task === 'classification' ? new Int32Array(1024) : undefined;
    const classIndex = new Map<string, number>((fixed ?? []).map((c, i) => [c, i]));
    let n = 0;

    for await (const { values } of records) {
      const row = n + 1;
      x = grow(x, (n + 1) * D);
      for (let j = 0; j < D; j++) x[n * D + j] = numberCell(values[fi[j]!]!, path, row, featureNames[j]!);
      if (y) {
        y = grow(y, (n + 1) * K);
        for (let k = 0; k < K; k++) y[n * K + k] = numberCell(values[ti[k]!]!, path, row, opts.target[k]!);
      } else if (labels) {
        labels = grow(labels, n + 1);
        const column = opts.target[0]!;
        const text = values[ti[0]!]!;
        if (text === '') throw new DataError('empty cell', { file: path, row, column });
        let l = classIndex.get(text);
        if (l === undefined) {
          if (fixed) throw new DataError(`label "${text}" is not one of the fixed classes: ${fixed.join(', ')}`, { file: path, row, column });
          l = classIndex.size;
          classIndex.set(text, l);
        }
        labels[n] = l;
      }
      n++;
    }

    if (n === 0) throw new DataError('has a header but no data rows', { file: path }, 'DATA_SHAPE');
    const classNames = task === 'classification' && (hasTarget || fixed) ? [...classIndex.keys()] : undefined;
    // A single class cannot be learned; a file read only to predict on may hold one.
    if (classNames && !fixed && requireTarget && classNames.length < 2) {
      throw new DataError(`only one class ("${classNames[0]}") in column ${opts.target[0]}; classification needs two or more`, { file: path });
    }
    // slice() copies into exact-length buffers so the doubling slack is freed.
    return {
      task,
      n,
      inputs: D,
      x: x.slice(0, n * D),
      // Classes never seen (no target column, no fixed classes) are not known: 0.
      outputs: classNames ? classNames.length : task === 'classification' ? 0 : K,
      ...(y ? { y: y.slice(0, n * K) } : {}),
      ...(labels ? { labels: labels.slice(0, n) } : {}),
      featureNames: [...featureNames],
      targetNames: hasTarget ? [...opts.target] : [],
      ...(classNames ? { classNames } : {}),
      source: path,
    };
  } finally {
    await records.return(undefined);
  }
}
