/**
 * What every `moe` command shares: exit codes, one-line error messages, option parsers
 * that name the flag in their errors, output-path checks and the data loaders that
 * follow a trained model's column names.
 */
import { realpath } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parse as parseCsvSync } from 'csv-parse/sync';
import { lastProviderFallback } from '../compute/load.js';
import { BACKENDS, type BackendRequest } from '../compute/provider.js';
import { ColumnNotFoundError, loadCsv, parseNumber, type CsvOptions } from '../data/csv.js';
import { splitRows, subset, type Dataset } from '../data/dataset.js';
import { cutValue, DataError, listValues, MoeError, OptionError, quoteValue, type MoeErrorCode } from '../errors.js';
import { checkWritable, checkWritableDir, readOnlyReason, type OutputTarget } from '../io/atomic.js';
import { columnList } from './lists.js';
import { EX_IOERR, OutputStreamError } from './streams.js';
import type { MixtureConfig } from '../model/config.js';
import { parseNetSpec } from '../model/config.js';

/** Process exit codes of `moe`; {@link EXIT_CODES_HELP} documents them in `--help`. */
export const EXIT = {
  OK: 0,
  /** Bad data or model file: missing, empty, ragged, non-numeric, corrupt, wrong version or shape. */
  DATA: 1,
  /** Bad command line: unknown, invalid, missing or conflicting options. */
  USAGE: 2,
  /** The requested compute backend (or shared memory for workers) is not available. */
  BACKEND: 3,
  /** Training failed: a worker thread crashed, or the loss diverged. */
  TRAINING: 4,
  /** A bug: an error the program did not expect. */
  INTERNAL: 70,
  /** stdout or stderr could not be written (a full disk, an I/O error, a closed stdout): EX_IOERR. */
  IO: EX_IOERR,
  /** Interrupted by Ctrl-C (SIGINT); 143 for SIGTERM. */
  INTERRUPTED: 130,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    bad data or model file (missing, empty, ragged, non-numeric or non-finite
       cell, unseen label, wrong feature count, truncated/corrupt/newer model file)
  2    bad command line (unknown, invalid, missing or conflicting option or column;
       an output path that cannot be written, or is read-only without --force)
  3    compute backend or shared memory not available
  4    training failed (a worker thread crashed, the loss diverged)
  70   internal error (a bug: please report it with the --verbose output)
  74   stdout or stderr could not be written (full disk, I/O error, stdout
       closed with >&-): the rest of the run goes on without that stream, and
       files such as --save are still written; one line on stderr where it works.
       A reader that stops early (| head) is not an error
  130  interrupted by Ctrl-C (143 for SIGTERM); a checkpoint is written first
       when --save was given`;

/** {@link EXIT_CODES_HELP} for the commands that write no model (bench, reproduce): no checkpoint on Ctrl-C. */
export const EXIT_CODES_HELP_NO_SAVE = EXIT_CODES_HELP.replace(/; a checkpoint is written first\n\s+when --save was given/, '').replace('files such as --save are still written', 'its output files are still written');

const CODE_EXIT: Record<MoeErrorCode, number> = {
  INVALID_OPTION: EXIT.USAGE,
  INVALID_DATA: EXIT.DATA,
  DATA_SHAPE: EXIT.DATA,
  FILE_NOT_FOUND: EXIT.DATA,
  CSV_PARSE: EXIT.DATA,
  MODEL_FORMAT: EXIT.DATA,
  MODEL_VERSION: EXIT.DATA,
  BACKEND_UNAVAILABLE: EXIT.BACKEND,
  SHARED_MEMORY_UNAVAILABLE: EXIT.BACKEND,
  SHARD_CRASHED: EXIT.TRAINING,
  SHARD_STALLED: EXIT.TRAINING,
  FIT_IN_PROGRESS: EXIT.USAGE,
  DIVERGED: EXIT.TRAINING,
  ABORTED: EXIT.INTERRUPTED,
  MPI_UNAVAILABLE: EXIT.BACKEND,
  MPI_MISMATCH: EXIT.TRAINING,
  MPI_FAILED: EXIT.TRAINING,
  INTERNAL: EXIT.INTERNAL,
};

/** The exit code for a thrown value. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  if (err instanceof MoeError) return CODE_EXIT[err.code] ?? EXIT.INTERNAL;
  if (err instanceof OutputStreamError) return EXIT.IO;
  // Operating-system errors on files the user named (permissions, a directory given as a file).
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return EXIT.DATA;
  return EXIT.INTERNAL;
}

/**
 * Library option names as the command line spells them, so that a library OptionError
 * (`workers: …`) reads as the flag the user typed (`--workers: …`).
 */
const FLAG_OF: Record<string, string> = {
  workers: '--workers',
  epochs: '--epochs',
  batchSize: '--batch-size',
  validationSplit: '--val-split',
  expert: '--expert',
  gate: '--gate',
  loss: '--loss',
  experts: '--experts',
  seed: '--seed',
  lr: '--lr',
  optimizer: '--optimizer',
  backend: '--backend',
  target: '--target',
  features: '--features',
  classes: '--target',
  task: '--task',
  routing: '--routing',
  noise: '--noise',
  balanceLoss: '--balance-loss',
  zLoss: '--z-loss',
  balanceBias: '--balance-bias',
  blockRows: '--block-rows',
  stallTimeout: '--stall-timeout',
  splitExperts: '--no-split',
  denormals: '--denormals',
};

/** One line for stderr (the stack as well with `verbose`). */
export function formatError(err: unknown, verbose: boolean): string {
  let message: string;
  if (err instanceof CommanderError) {
    message = err.message.replace(/^error:\s*/, '');
  } else if (err instanceof OptionError && FLAG_OF[err.option] !== undefined && err.message.startsWith(`${err.option}:`)) {
    message = `${FLAG_OF[err.option]}${err.message.slice(err.option.length)}`;
  } else if (err instanceof Error) {
    message = err.message;
    if (!(err instanceof MoeError) && exitCodeOf(err) === EXIT.INTERNAL) {
      message = `internal error: ${message}${verbose ? '' : ' (run with --verbose for the stack trace)'}`;
    }
  } else {
    message = `internal error: ${String(err)}`;
  }
  const line = `moe: error: ${message.replace(/\s*\n\s*/g, ' ').trim()}`;
  if (verbose && err instanceof Error && err.stack && !(err instanceof CommanderError)) return `${line}\n${err.stack}`;
  return line;
}

let verboseWarnings = false;
const warned = new Set<string>();

/** With `--verbose`, warnings carry their details (every library a provider fall-back tried). */
export function setVerbose(verbose: boolean): void {
  verboseWarnings = verbose;
}

/**
 * Run `f` (a prediction or an evaluation of the rows of `file`); a DataError it throws
 * about a row names the file too. `file` undefined (a built-in dataset) leaves it as is.
 */
export function locate<T>(f: () => T, file: string | undefined): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof DataError && file !== undefined) throw err.inFile(file);
    throw err;
  }
}

/**
 * A one-line warning on stderr, each distinct message once per process (a provider's
 * fall-back notice reaches the CLI from every mixture a command creates). With
 * `--verbose`, a provider fall-back also lists every library and backend it tried.
 */
export function warn(message: string): void {
  const line = message.replace(/^local-experts:\s*/, '').replace(/\s*\n\s*/g, ' ');
  if (warned.has(line)) return;
  warned.add(line);
  process.stderr.write(`moe: warning: ${line}\n`);
  const fallback = lastProviderFallback();
  if (verboseWarnings && fallback && fallback.notice === line) {
    for (const d of fallback.details) process.stderr.write(`moe:   tried ${d}\n`);
  }
}

/**
 * A worker count above the cores here is allowed (threads then share cores, each slower);
 * say so in one line. Call after every check of the command line has passed.
 */
export function noteWorkers(option: string, workers: number): void {
  const cores = availableParallelism();
  if (workers > cores) warn(`${option} ${workers} is more than the ${cores} cores here: worker threads will share cores`);
}

export { writeStdout } from './streams.js';

// ---------------------------------------------------------------------------------------
// Option parsers: they throw InvalidArgumentError, which commander reports as
// "option '--flag <x>' argument 'v' is invalid. <reason>".

/** An integer ≥ min. */
export function intArg(min: number): (value: string) => number {
  return (value) => {
    const v = parseNumber(value.trim());
    if (!Number.isInteger(v) || v < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}.`);
    // Counts beyond 2⁵³ − 1 lose their units digit (and a model file holds none).
    if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`expected an integer ≥ ${min}, at most ${Number.MAX_SAFE_INTEGER}.`);
    return v;
  };
}

/** Any integer. */
export function anyIntArg(value: string): number {
  const v = parseNumber(value.trim());
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError('expected an integer.');
  return v;
}

/** Largest seed: the generator takes 32 bits (src/rng.ts, `seed >>> 0`), so a larger one would wrap. */
export const MAX_SEED = 2 ** 32 - 1;

/** A seed: an integer in [0, 2³²−1], all the generator takes, so no two seeds silently mean the same. */
export function seedArg(value: string): number {
  const v = parseNumber(value.trim());
  if (!(Number.isInteger(v) && v >= 0 && v <= MAX_SEED)) throw new InvalidArgumentError(`expected an integer in [0, ${MAX_SEED}].`);
  return v;
}

/** A finite number > 0. */
export function positiveArg(value: string): number {
  const v = parseNumber(value.trim());
  if (!(Number.isFinite(v) && v > 0)) throw new InvalidArgumentError('expected a number > 0.');
  return v;
}

/** A finite number ≥ 0 (loss weights). */
export function nonNegativeArg(value: string): number {
  const v = parseNumber(value.trim());
  if (!(Number.isFinite(v) && v >= 0)) throw new InvalidArgumentError('expected a number ≥ 0.');
  return v;
}

/** `dense`, `topk:K`, `switch` or `expert-choice:C` (checked against the experts later). */
export function routingArg(value: string): string {
  const v = value.trim();
  const m = /^(dense|switch|topk|expert-choice)(?::(.*))?$/s.exec(v);
  if (!m) throw new InvalidArgumentError('expected dense, topk:K, switch or expert-choice:C.');
  const [, kind, param] = m;
  if (kind === 'topk' && !(param !== undefined && /^\d+$/.test(param) && Number(param) >= 1)) {
    throw new InvalidArgumentError(`topk:K needs a whole number K ≥ 1 of experts per row (e.g. topk:2), got ${quoteValue(v)}.`);
  }
  if (kind === 'expert-choice' && !(param !== undefined && /^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(param) && Number(param) > 0 && Number.isFinite(Number(param)))) {
    throw new InvalidArgumentError(`expert-choice:C needs a capacity factor C > 0, a decimal number such as 1, 0.5 or 1e-3, got ${quoteValue(v)}.`);
  }
  if ((kind === 'dense' || kind === 'switch') && param !== undefined) throw new InvalidArgumentError(`${kind} takes no parameter, got ${quoteValue(v)}.`);
  return v;
}

/** A fraction in [0, 1). */
export function fractionArg(value: string): number {
  const v = parseNumber(value.trim());
  if (!(v >= 0 && v < 1)) throw new InvalidArgumentError('expected a fraction in [0, 1).');
  return v;
}

/** A fraction in (0, 1] (a share that may be all, never none). */
export function shareArg(value: string): number {
  const v = parseNumber(value.trim());
  if (!(v > 0 && v <= 1)) throw new InvalidArgumentError('expected a fraction in (0, 1].');
  return v;
}

/**
 * A comma-separated list of column names, none empty or repeated, read as one CSV record
 * with the data files' own rules: spaces around a name are dropped, and a name that holds
 * a comma (or a quote, or edge spaces) is written in double quotes, `"a,b",c` (a quote
 * inside doubled, `"say ""hi""",c`).
 */
export function listArg(value: string): string[] {
  let records: string[][];
  try {
    records = parseCsvSync(value, { trim: true, relax_column_count: true }) as string[][];
  } catch (err) {
    throw new InvalidArgumentError(`expected comma-separated column names, a name with a comma in double quotes ("a,b",c): ${(err as Error).message}.`);
  }
  if (records.length > 1) throw new InvalidArgumentError('expected comma-separated column names on one line (a line break only inside double quotes).');
  const names = records[0] ?? [''];
  if (names.some((s) => s === '')) throw new InvalidArgumentError('expected comma-separated column names, none empty.');
  if (new Set(names).size !== names.length) throw new InvalidArgumentError('a column is named twice.');
  return names;
}

/** An integer ≥ min, or `auto`. */
export function intOrAutoArg(min: number): (value: string) => number | 'auto' {
  return (value) => {
    if (value.trim() === 'auto') return 'auto';
    const v = parseNumber(value.trim());
    if (!Number.isInteger(v) || v < min) throw new InvalidArgumentError(`expected an integer ≥ ${min} or auto.`);
    return v;
  };
}

/** `--workers`: `N` (≥ 0, 0 for in-process) or `auto`. */
export const workersArg = intOrAutoArg(0);

/** `linear` or `mlp:H1,H2[:activation]`, checked now so the error names the flag. */
export function netSpecArg(value: string): string {
  try {
    parseNetSpec(value, 'net');
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message.replace(/^net:\s*/, '')}.`);
  }
  return value;
}

/** `--backend`, shared by every command. */
export function backendOption(): Option {
  return new Option('--backend <name>', 'compute provider').choices(['auto', ...BACKENDS]).default('auto');
}

/** `--verbose`, shared by every command (stack traces on errors). */
export function verboseOption(): Option {
  return new Option('--verbose', 'print stack traces on errors');
}

/**
 * `--target` and `--features` of the commands that read data for a trained model (eval,
 * predict, inspect): they name the columns where the model does not.
 */
export function columnOptions(): Option[] {
  return [
    new Option('--target <cols>', 'target column(s), where the model does not name them; a name with a comma in double quotes: \'"a,b",c\'').argParser(listArg),
    new Option(
      '--features <cols>',
      "feature columns, where the model does not name them (positionally: the i-th feeds the model's i-th input); the model's own names in another order are matched by name, with a notice",
    ).argParser(listArg),
    new Option('--delimiter <char>', "the CSV's field delimiter (default ,; e.g. ';')"),
  ];
}

/** The column choice that {@link columnOptions} parsed. */
export function columnsOf(o: ColumnChoice): ColumnChoice {
  return { ...(o.target ? { target: o.target } : {}), ...(o.features ? { features: o.features } : {}), ...(o.delimiter !== undefined ? { delimiter: o.delimiter } : {}) };
}

/**
 * Apply the CLI's error handling to a command tree: commander throws instead of exiting,
 * and prints nothing itself (main prints one line and chooses the exit code).
 */
export function configureTree(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({ outputError: () => {} });
  cmd.showSuggestionAfterError(true);
  for (const sub of cmd.commands) configureTree(sub);
}

/** Whether the user gave `name` (a camelCase option key) on the command line. */
export function given(cmd: Command, name: string): boolean {
  return cmd.getOptionValueSource(name) === 'cli';
}

// ---------------------------------------------------------------------------------------
// Files

/**
 * Check that `path` can be written later, before any work starts, so a long run does not
 * fail at its end and a failing command writes nothing: its directory exists and a file
 * can be created there (tried: permission bits do not stop root, a read-only mount or
 * an immutable directory do), and it is a regular file or absent, through symbolic links
 * (a device, FIFO, socket, directory or link to one is refused). Resolves to the file
 * that will be written (the end of its symbolic links). An existing file that is
 * read-only (no write bit, or not writable by this user) is refused unless `force`
 * (`--force`): an atomic write would replace it silently, as root or not.
 */
export async function checkOutputPath(option: string, path: string, force = false): Promise<string> {
  const t = await checkWritable(path, { option });
  if (!force) await refuseReadOnly(option, path, t);
  return t.target;
}

/** An OptionError naming `option` where `t` is an existing read-only file. */
async function refuseReadOnly(option: string, path: string, t: OutputTarget): Promise<void> {
  const reason = t.existing ? await readOnlyReason(t.target, t.existing) : undefined;
  if (reason !== undefined) throw new OptionError(option, `will not replace ${path}: ${reason}; give --force to replace it`);
}

/** `--force`, for every command that writes files. */
export function forceOption(): Option {
  return new Option('--force', 'replace output files that are read-only (they are refused otherwise)');
}

/**
 * {@link checkOutputPath} for a directory that receives `files` (created later where it
 * does not exist: its nearest existing ancestor must then be writable).
 */
export async function checkOutputDir(option: string, dir: string, files: readonly string[], force = false): Promise<void> {
  const targets = await checkWritableDir(dir, files, { option });
  if (force) return;
  for (const [i, t] of targets.entries()) await refuseReadOnly(option, `${dir.replace(/\/+$/, '')}/${files[i]}`, t);
}

/** The file a path names, symbolic links resolved (itself where it does not exist). */
export async function realFile(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

/** Column choices for data read against a trained model; flags override the model's names. */
export interface ColumnChoice {
  target?: string[];
  features?: string[];
  /** The CSV's field delimiter (default `,`). */
  delimiter?: string;
}

/** What the data checks need of a model: a Mixture, or a model file read without a provider. */
export interface ModelView {
  config: MixtureConfig;
  featureNames?: string[] | undefined;
  targetNames?: string[] | undefined;
  classNames?: string[] | undefined;
}

function modelTarget(m: ModelView, cols: ColumnChoice): string[] {
  const t = cols.target ?? m.targetNames;
  if (!t) throw new OptionError('--target', 'the model does not name its target column(s); give --target');
  return t;
}

/**
 * The columns to read as the model's inputs, in the model's order. `--features` where the
 * model names its features: the same names in another order are matched by name (one
 * notice line says so); other names stand in for the model's positionally (the data
 * names a column differently), but a name the model has may only stand at its own
 * position, never feed another input.
 */
function modelFeatures(m: ModelView, cols: ColumnChoice): string[] | undefined {
  const f = cols.features ?? m.featureNames;
  if (f && f.length !== m.config.inputs) {
    throw new OptionError('--features', `${f.length} columns given, the model takes ${m.config.inputs} inputs`);
  }
  const named = m.featureNames;
  if (cols.features === undefined || named === undefined || named.length !== f!.length) return f;
  const given = cols.features;
  if (given.every((g, i) => g === named[i])) return given;
  const position = new Map(named.map((n, i) => [n, i]));
  if (given.every((g) => position.has(g))) {
    warn(`--features ${columnList(given)}: the model takes its inputs in the order ${columnList(named)}; the columns are matched by name`);
    return named;
  }
  given.forEach((g, i) => {
    const at = position.get(g);
    if (at !== undefined && at !== i) {
      throw new OptionError(
        '--features',
        `${quoteValue(g)} is the model's input ${at + 1} (of ${columnList(named)}), given as input ${i + 1}: give the model's feature names in any order (matched by name), or other names in the model's order (matched by position)`,
      );
    }
  });
  return given;
}

/**
 * loadCsv with a model's columns and classes. A column the model (not the user) asks for
 * and the file lacks means the file does not fit the model: a DataError naming the
 * column, not an OptionError blaming a flag the user never gave.
 */
async function loadForModel(m: ModelView, path: string, cols: ColumnChoice, requireTarget: boolean): Promise<Dataset> {
  const features = modelFeatures(m, cols);
  const target = requireTarget ? modelTarget(m, cols) : (cols.target ?? m.targetNames ?? []);
  const opts: CsvOptions = {
    target,
    task: m.config.task,
    requireTarget,
    ...(features ? { features } : {}),
    ...(cols.delimiter !== undefined ? { delimiter: cols.delimiter } : {}),
    ...(m.config.task === 'classification' && m.classNames ? { classNames: m.classNames } : {}),
  };
  let ds: Dataset;
  try {
    ds = await loadCsv(path, opts);
  } catch (err) {
    const fromModel = err instanceof OptionError && ((err.option === 'target' && !cols.target) || (err.option === 'features' && !cols.features));
    if (!fromModel) throw err;
    const missing = err instanceof ColumnNotFoundError ? err.column : undefined;
    const wants = err.option === 'target' ? `the model's target is ${listValues(target)}` : `the model expects ${m.config.inputs} features: ${listValues(features ?? [])}`;
    throw new DataError(
      `does not fit the model: ${err.message.slice(err.option.length + 2).replace(` in ${path}`, '')} (${wants})`,
      { file: path, ...(missing !== undefined ? { column: cutValue(missing) } : {}) },
      'DATA_SHAPE',
    );
  }
  if (ds.inputs !== m.config.inputs) {
    throw new DataError(`has ${ds.inputs} feature columns (${listValues(ds.featureNames ?? [])}), the model expects ${m.config.inputs}`, { file: path }, 'DATA_SHAPE');
  }
  return ds;
}

/**
 * Load a labelled CSV for a trained model: its target and feature columns, its class
 * order (a label it never saw is a DataError naming file, row and column).
 */
export async function loadCsvForModel(m: ModelView, path: string, cols: ColumnChoice = {}): Promise<Dataset> {
  const ds = await loadForModel(m, path, cols, true);
  if (ds.outputs !== m.config.outputs) {
    throw new DataError(`has ${ds.outputs} ${m.config.task === 'classification' ? 'classes' : 'targets'}, the model expects ${m.config.outputs}`, { file: path }, 'DATA_SHAPE');
  }
  return ds;
}

/** Inputs of a CSV for prediction; labels too when the target column is present. */
export interface PredictInput {
  n: number;
  x: Float32Array;
  featureNames: string[];
  /** The file's rows' labels in the model's class order (classification, when the target column is present). */
  labels?: Int32Array;
}

/**
 * Read the model's feature columns from a CSV that may lack the target. Where the model
 * has no feature names, every column that is not a target is an input, and their count
 * must match. A target column that is present is read and checked (a classification
 * label against the trained classes).
 */
export async function loadInputsForModel(m: ModelView, path: string, cols: ColumnChoice = {}): Promise<PredictInput> {
  const ds = await loadForModel(m, path, cols, false);
  const labels = ds.labels && m.classNames ? { labels: ds.labels } : {};
  return { n: ds.n, x: ds.x, featureNames: ds.featureNames!, ...labels };
}

/**
 * Split rows into training and validation with `fit({ validationSplit })`'s own
 * {@link splitRows} (from the seed alone), so a resumed run validates on the same rows and
 * the CLI can report metrics on the training rows proper.
 */
export function splitValidation(data: Dataset, fraction: number, seed: number): { train: Dataset; val?: Dataset } {
  if (!(fraction > 0)) return { train: data };
  const [train, val] = splitRows(data.n, fraction, seed);
  return { train: subset(data, train), val: subset(data, val) };
}

/** A number for people: 4 significant digits, no exponent for ordinary magnitudes. */
export function fmt(v: number | undefined, digits = 4): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-3)) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}

/** A percentage with one decimal. */
export function pct(v: number | undefined): string {
  return v === undefined ? '-' : `${(100 * v).toFixed(1)}%`;
}

/** A float32 value in a CSV: shortest decimal that reads back as the same float32. */
export function csvNumber(v: number): string {
  for (let p = 6; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return String(s);
  }
  return String(v);
}

/** Quote a CSV field where it holds a comma, quote or line break. */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

/** JSON with NaN/Infinity as null (JSON has neither). */
export function jsonLine(o: unknown): string {
  return JSON.stringify(o, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
}

/** Parse `--backend`'s value (commander already checked the choices). */
export function backendOf(value: unknown): BackendRequest {
  return (value ?? 'auto') as BackendRequest;
}
