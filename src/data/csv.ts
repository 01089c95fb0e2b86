/**
 * Streaming CSV loader. The file is read once through csv-parse and the numbers go
 * straight into Float32Array buffers that double as they fill, so a large file costs about
 * its float32 size (×2 while growing, ×3 for the final trim), never an array of strings.
 */
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { parse } from 'csv-parse';
import { cutValue, DataError, listValues, OptionError, quoteValue } from '../errors.js';
import type { Dataset } from './dataset.js';

/** Options of {@link loadCsv}: which columns are targets and inputs, and the task. */
export interface CsvOptions {
  /** Target column(s): one for classification, one or more for regression; a single name may be a string. */
  target: string | string[];
  /** Input columns, in this order; default every column that is not a target. */
  features?: string[];
  /** Field delimiter, default `,` (e.g. `;` or a tab). */
  delimiter?: string;
  /**
   * Called with one-line warnings about the data (classification: many distinct integer
   * classes relative to the rows, which suggests a continuous target).
   */
  onWarning?: (message: string) => void;
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
  /**
   * Longest record (the characters of its fields) accepted, default
   * `MAX_RECORD_CHARS` (32 Mi). A longer one is a DataError naming the row: it bounds the
   * memory a file without line breaks (or a device like /dev/zero) can take.
   */
  maxRecordChars?: number;
}

/**
 * Default cap on one CSV record, in characters: 32 Mi, room for a million columns of
 * 30-character numbers, and a bound on the memory one unterminated line can take.
 */
export const MAX_RECORD_CHARS = 32 * 2 ** 20;

/** A column named in the options is not in the file's header (an OptionError naming the option and the column). */
export class ColumnNotFoundError extends OptionError {
  /** The column that is missing, as named. */
  readonly column: string;
  /** The file whose header lacks it. */
  readonly file: string;
  constructor(option: string, column: string, header: readonly string[], file: string) {
    super(option, `no column ${quoteValue(column)} in ${file}; available: ${listValues(header)}${delimiterHint(header)}`);
    this.column = column;
    this.file = file;
  }
}

/**
 * Where the whole header is one column that holds another common delimiter, the file is
 * probably not comma-separated: say so (an empty string otherwise).
 */
function delimiterHint(header: readonly string[]): string {
  if (header.length !== 1) return '';
  const found = [';', '\t', '|'].find((d) => header[0]!.includes(d));
  if (found === undefined) return '';
  const shown = found === '\t' ? 'a tab' : `'${found}'`;
  return ` (the header is one column that holds ${shown}: is the file ${found === ';' ? 'semicolon' : found === '|' ? 'pipe' : 'tab'}-separated? give delimiter ${shown}, --delimiter on the command line)`;
}

/** A delimiter option: one or more characters, none a quote, a line break or a space. */
export function checkDelimiter(d: unknown, option = 'delimiter'): string {
  if (typeof d !== 'string' || d.length === 0 || d.length > 8 || /["\r\n ]/.test(d)) {
    throw new OptionError(option, `must be 1 to 8 characters, none a quote, space or line break, got ${typeof d === 'string' ? quoteValue(d) : String(d)}`);
  }
  return d;
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
export async function openCsv(path: string, opts: { maxRecordChars?: number; delimiter?: string } = {}): Promise<{ header: string[]; records: AsyncGenerator<CsvRecord> }> {
  const maxRecordChars = opts.maxRecordChars ?? MAX_RECORD_CHARS;
  const delimiter = opts.delimiter === undefined ? ',' : checkDelimiter(opts.delimiter);
  if (!(Number.isInteger(maxRecordChars) && maxRecordChars >= 1)) throw new OptionError('maxRecordChars', `must be an integer ≥ 1, got ${maxRecordChars}`);
  const input = createReadStream(path);
  const text = textOnly(path);
  // Field counts are checked here, not by csv-parse: its check fires for a whole chunk before
  // earlier records are consumed, so errors would not come in row order, and it lacks the row.
  const parser = parse({ delimiter, bom: true, trim: true, skip_empty_lines: true, info: true, relax_column_count: true, max_record_size: maxRecordChars });
  // pipe() does not forward errors; without this a missing file would leave the loop waiting.
  input.on('error', (err) => parser.destroy(err));
  text.on('error', (err) => parser.destroy(err));
  input.pipe(text).pipe(parser);
  const it = records(path, input, parser, maxRecordChars);
  try {
    const first = await it.next();
    if (first.done) {
      throw new DataError('file is empty (a header row is required)', { file: path }, 'DATA_SHAPE');
    }
    const header = first.value.values;
    const seen = new Set<string>();
    for (const name of header) {
      if (name === '') throw new DataError('header has an empty column name', { file: path, row: 0 });
      if (seen.has(name)) throw new DataError(`header names column ${quoteValue(name)} twice`, { file: path, row: 0 });
      seen.add(name);
    }
    return { header, records: it };
  } catch (err) {
    await it.return(undefined);
    throw err;
  }
}

/**
 * A pass-through that fails on the first NUL byte: no text CSV holds one, and a binary
 * file (or /dev/zero, or UTF-16 text) would otherwise be parsed as one endless field.
 */
function textOnly(file: string): Transform {
  let offset = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const at = chunk.indexOf(0);
      if (at >= 0) {
        done(new DataError(`holds a NUL byte at byte ${offset + at + 1}: not a text CSV file (binary data, or UTF-16 text; expected UTF-8)`, { file }, 'CSV_PARSE'));
        return;
      }
      offset += chunk.length;
      done(null, chunk);
    },
  });
}

async function* records(
  file: string,
  input: ReturnType<typeof createReadStream>,
  parser: ReturnType<typeof parse>,
  maxRecordChars: number,
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
    throw csvError(file, err, maxRecordChars);
  } finally {
    // The caller may stop early (throw on a bad cell); release the file descriptor then too.
    input.destroy();
    parser.destroy();
  }
}

function csvError(file: string, err: unknown, maxRecordChars: number): Error {
  if (err instanceof DataError || err instanceof OptionError) return err;
  const e = err as { code?: string; message?: string; records?: number; lines?: number };
  if (e.code === 'ENOENT') return new DataError('file not found', { file }, 'FILE_NOT_FOUND');
  if (e.code === 'EISDIR') return new DataError('is a directory, not a CSV file', { file });
  if (e.code === 'CSV_MAX_RECORD_SIZE') {
    const row = e.records ?? 0;
    const what = row === 0 ? 'the header' : `a record`;
    return new DataError(
      `${what} (line ${e.lines ?? '?'}) is longer than ${maxRecordChars} characters: not a CSV file, or its line breaks are missing`,
      { file, row },
      'CSV_PARSE',
    );
  }
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
  const v = parseNumber(text);
  if (Math.abs(v) <= FLOAT32_MAX) return v;
  // Only a bad cell pays for building its message (names and values cut to one line).
  const at = { file, row, column: cutValue(column) };
  if (text === '') throw new DataError('empty cell', at);
  if (Number.isNaN(v)) {
    if (NON_FINITE.test(text)) throw new DataError(`${quoteValue(text)} is not finite`, at);
    throw new DataError(`${quoteValue(text)} is not a number`, at);
  }
  // Float32 is the storage type; 1e39 would silently become Infinity there.
  throw new DataError(`${quoteValue(text)} is not finite as a 32-bit float`, at);
}

/**
 * Column indices of `names` in `header` (one pass over each: linear in the column
 * count), or a {@link ColumnNotFoundError} naming `option`, the column and (some of) what
 * is available.
 */
export function columnIndices(option: string, names: readonly string[], header: readonly string[], file: string): number[] {
  const index = new Map<string, number>();
  // The first occurrence wins, as indexOf would (openCsv refuses repeated names anyway).
  for (let j = header.length - 1; j >= 0; j--) index.set(header[j]!, j);
  return names.map((name) => {
    const j = index.get(name);
    if (j === undefined) throw new ColumnNotFoundError(option, name, header, file);
    return j;
  });
}

/**
 * A classification target that is really continuous (scikit-learn's "continuous" target
 * type: numbers, some not integers) is refused; integer classes that exceed about a tenth
 * of the rows get a one-line warning (a count or a measurement read as classes, likely).
 */
function checkClassTarget(classNames: readonly string[], n: number, column: string, file: string, onWarning?: (message: string) => void): void {
  const values = classNames.map(parseNumber);
  if (!values.every(Number.isFinite)) return;
  const fractional = classNames.findIndex((_, i) => !Number.isInteger(values[i]));
  if (fractional >= 0) {
    throw new OptionError(
      'task',
      `classification, but target column ${cutValue(column)} of ${file} holds non-integer numbers (${quoteValue(classNames[fractional]!)}, ${classNames.length} distinct values in ${n} rows): a continuous target; use task regression (--task regression)`,
    );
  }
  if (classNames.length > Math.max(2, 0.1 * n)) {
    onWarning?.(`target column ${cutValue(column)} of ${file} has ${classNames.length} distinct integer classes in ${n} rows (over 10%): is it a continuous target? (task regression, --task regression)`);
  }
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
export async function loadCsv(path: string, options: CsvOptions): Promise<Dataset> {
  const names = (v: unknown, option: string): string[] | undefined => {
    if (v === undefined) return undefined;
    if (typeof v === 'string') return [v];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
      throw new OptionError(option, `must be a column name or an array of column names, got ${typeof v === 'object' ? JSON.stringify(v)?.slice(0, 80) : String(v)}`);
    }
    return v as string[];
  };
  if (options === null || typeof options !== 'object') throw new OptionError('options', 'give { target, task } (the target column and the task)');
  const features = names(options.features, 'features');
  const opts = { ...options, target: names(options.target, 'target') ?? [], ...(features ? { features } : {}) };
  const { task } = opts;
  if (task !== 'regression' && task !== 'classification') throw new OptionError('task', `must be 'regression' or 'classification', got ${String(task)}`);
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
    if (both !== undefined) throw new OptionError('features', `${quoteValue(both)} is also a target`);
  }
  const fixed = opts.classNames;
  if (fixed !== undefined) {
    if (task !== 'classification') throw new OptionError('classNames', 'only for classification');
    if (fixed.length < 2) throw new OptionError('classNames', 'needs at least two classes');
    if (new Set(fixed).size !== fixed.length) throw new OptionError('classNames', 'a class is named twice');
  }

  const { header, records } = await openCsv(path, {
    ...(opts.maxRecordChars !== undefined ? { maxRecordChars: opts.maxRecordChars } : {}),
    ...(opts.delimiter !== undefined ? { delimiter: opts.delimiter } : {}),
  });
  try {
    const headerSet = new Set(header);
    const targetSet = new Set(opts.target);
    const hasTarget = opts.target.length > 0 && (requireTarget || opts.target.every((t) => headerSet.has(t)));
    const ti = hasTarget ? columnIndices('target', opts.target, header, path) : [];
    const featureNames = opts.features ?? header.filter((h) => !targetSet.has(h));
    if (featureNames.length === 0) {
      throw new OptionError('features', `every column of ${path} is a target; available: ${listValues(header)}`);
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
        if (text === '') throw new DataError('empty cell', { file: path, row, column: cutValue(column) });
        let l = classIndex.get(text);
        if (l === undefined) {
          if (fixed) throw new DataError(`label ${quoteValue(text)} is not one of the fixed classes: ${listValues(fixed)}`, { file: path, row, column: cutValue(column) });
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
      throw new DataError(`only one class (${quoteValue(classNames[0]!)}) in column ${cutValue(opts.target[0]!)}; classification needs two or more`, { file: path });
    }
    if (classNames && !fixed) checkClassTarget(classNames, n, opts.target[0]!, path, opts.onWarning);
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
