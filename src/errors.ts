/**
 * Typed errors. Every error the library throws on purpose is a {@link MoeError} with a
 * stable `code`; errors lose their class when they cross a thread boundary, so workers
 * send `{ code, message }` and {@link errorFromWire} rebuilds the class on the main thread.
 */

/** Stable error codes; the CLI and callers switch on these, never on messages. */
export type MoeErrorCode =
  | 'INVALID_OPTION'
  | 'INVALID_DATA'
  | 'DATA_SHAPE'
  | 'FILE_NOT_FOUND'
  | 'CSV_PARSE'
  | 'MODEL_FORMAT'
  | 'MODEL_VERSION'
  | 'BACKEND_UNAVAILABLE'
  | 'SHARED_MEMORY_UNAVAILABLE'
  | 'SHARD_CRASHED'
  | 'SHARD_STALLED'
  | 'FIT_IN_PROGRESS'
  | 'ABORTED'
  | 'DIVERGED'
  | 'MPI_UNAVAILABLE'
  | 'MPI_MISMATCH'
  | 'MPI_FAILED'
  | 'INTERNAL';

/** Base class of every error this library throws on purpose. */
export class MoeError extends Error {
  /** Stable machine-readable code; switch on this, not on the message. */
  readonly code: MoeErrorCode;
  constructor(code: MoeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A user-supplied option is unknown, out of range, or conflicts with another. */
export class OptionError extends MoeError {
  /** The option's name as the caller spelled it (e.g. `experts`, `--batch-size`). */
  readonly option: string;
  constructor(option: string, message: string) {
    super('INVALID_OPTION', `${option}: ${message}`);
    this.option = option;
  }
}

/** Where in the data a problem was found; every field that is known is set. */
export interface DataLocation {
  /** File path (or dataset source) the data came from. */
  file?: string;
  /** 1-based data row (the header is row 0). */
  row?: number;
  /** Column name, or `#j` (1-based) where columns have no names. */
  column?: string;
}

/** Data is empty, non-finite, ragged, of the wrong width or has labels out of range. */
export class DataError extends MoeError {
  /** Where the problem is, as far as known (also prefixed to the message). */
  readonly location: DataLocation;
  /** The message without its location prefix. */
  readonly detail: string;
  constructor(message: string, location: DataLocation = {}, code: MoeErrorCode = 'INVALID_DATA') {
    super(code, `${formatLocation(location)}${message}`);
    this.location = location;
    this.detail = message;
  }

  /** The same error located in `file` (unchanged where it names a file already). */
  inFile(file: string): DataError {
    if (this.location.file !== undefined) return this;
    return new DataError(this.detail, { file, ...this.location }, this.code);
  }
}

/** A model file is truncated, corrupt, not a model, or of an unsupported version. */
export class ModelFormatError extends MoeError {
  constructor(message: string, code: 'MODEL_FORMAT' | 'MODEL_VERSION' = 'MODEL_FORMAT') {
    super(code, message);
  }
}

/** A compute backend was forced but cannot load here. */
export class BackendError extends MoeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BACKEND_UNAVAILABLE', message, options);
  }
}

/**
 * Where in a step a shard failed: before the first step (`start-up`), in one of the three
 * phases, or idle between two of them (`between-steps`; the message says which).
 */
export type StepPhase = 'start-up' | 'forward' | 'backward' | 'update' | 'between-steps';

/** What a failure in `phase` leaves: every parameter at the last completed step, or one shard mid-update. */
function stateAfter(phase: StepPhase, shards: string, lastCompletedStep: number): string {
  if (phase === 'update') return `the gate and the other shards are at step ${lastCompletedStep + 1}; ${shards} may be mid-update`;
  if (lastCompletedStep < 0) return 'no training step ran; every parameter is as it was before the fit';
  return `every expert and the gate are at step ${lastCompletedStep}, the last completed`;
}

/** A shard's worker threw or exited; names the shard, its experts and the phase. */
export class ShardCrashError extends MoeError {
  /** 0-based index of the shard (worker) that failed. */
  readonly shard: number;
  /** Indices of the experts that shard owns. */
  readonly experts: readonly number[];
  /** Phase it failed in. */
  readonly phase: StepPhase;
  /** Last optimisation step that completed on every shard and the gate. */
  readonly lastCompletedStep: number;
  constructor(
    shard: number,
    experts: readonly number[],
    phase: StepPhase,
    lastCompletedStep: number,
    detail: string,
    options?: { cause?: unknown; during?: string },
  ) {
    super(
      'SHARD_CRASHED',
      `shard ${shard} (experts ${experts.join(', ')}) failed during ${options?.during ?? phase}: ${detail}; ${stateAfter(phase, `shard ${shard}'s experts`, lastCompletedStep)}`,
      options,
    );
    this.shard = shard;
    this.experts = experts;
    this.phase = phase;
    this.lastCompletedStep = lastCompletedStep;
  }
}

/**
 * Shards that did not finish a phase within the stall timeout while staying alive: the
 * fit gives up on them, terminates their threads and reports where every parameter is.
 */
export class ShardStallError extends MoeError {
  /** 0-based indices of the shards that had not finished. */
  readonly shards: readonly number[];
  /** The phase they did not finish. */
  readonly phase: StepPhase;
  /** Last optimisation step that completed on every shard and the gate. */
  readonly lastCompletedStep: number;
  /** The timeout that expired, in milliseconds. */
  readonly timeoutMs: number;
  constructor(shards: readonly number[], phase: StepPhase, lastCompletedStep: number, timeoutMs: number) {
    const names = shards.length === 1 ? `shard ${shards[0]}` : `shards ${shards.join(', ')}`;
    super(
      'SHARD_STALLED',
      `${names} did not finish the ${phase} phase within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${(timeoutMs / 1000).toFixed(1)} s`} (stall timeout); their threads were terminated; ${stateAfter(phase, `the experts of ${names}`, lastCompletedStep)}`,
    );
    this.shards = shards;
    this.phase = phase;
    this.lastCompletedStep = lastCompletedStep;
    this.timeoutMs = timeoutMs;
  }
}

function formatLocation(loc: DataLocation): string {
  const parts: string[] = [];
  if (loc.file !== undefined) parts.push(loc.file);
  if (loc.row !== undefined) parts.push(`row ${loc.row}`);
  if (loc.column !== undefined) parts.push(`column ${loc.column}`);
  return parts.length > 0 ? `${parts.join(', ')}: ` : '';
}

/** The plain-object form of an error that crosses a thread boundary. */
export interface WireError {
  code: MoeErrorCode;
  name: string;
  message: string;
  /** The option an {@link OptionError} names. */
  option?: string;
}

/** Serialise any thrown value for postMessage. */
export function errorToWire(err: unknown): WireError {
  if (err instanceof OptionError) return { code: err.code, name: err.name, message: err.message, option: err.option };
  if (err instanceof MoeError) return { code: err.code, name: err.name, message: err.message };
  if (err instanceof Error) return { code: 'INTERNAL', name: err.name, message: err.message };
  return { code: 'INTERNAL', name: 'Error', message: String(err) };
}

/**
 * Rebuild a typed error from its wire form (the class is chosen by `code`). Messages come
 * back unchanged; a DataError's location and a ShardCrashError's fields are only in the
 * message (a crashed shard comes back as a MoeError with code SHARD_CRASHED).
 */
export function errorFromWire(w: WireError): MoeError {
  switch (w.code) {
    case 'INVALID_OPTION': {
      const prefix = `${w.option}: `;
      // The message already starts with the option; the constructor would add it again.
      if (w.option !== undefined && w.message.startsWith(prefix)) return new OptionError(w.option, w.message.slice(prefix.length));
      return new MoeError(w.code, w.message);
    }
    case 'INVALID_DATA':
    case 'DATA_SHAPE':
    case 'FILE_NOT_FOUND':
    case 'CSV_PARSE':
      return new DataError(w.message, {}, w.code);
    case 'MODEL_FORMAT':
    case 'MODEL_VERSION':
      return new ModelFormatError(w.message, w.code);
    case 'BACKEND_UNAVAILABLE':
      return new BackendError(w.message);
    default:
      return new MoeError(w.code, w.message);
  }
}

/** Turn an unknown thrown value into an Error at one boundary. */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Values longer than this many characters are cut where a message quotes them. */
export const MAX_QUOTED_CHARS = 80;

/**
 * A value (a cell, a header name, a label, an option value) quoted for a one-line message:
 * JSON-quoted (control characters escaped, so the message stays one line) and, past
 * `max` characters, cut with its full length: `"abc…" (50000000 chars)`. Every message
 * that quotes user data goes through this, so a 50 MB header cannot make a 50 MB error.
 */
export function quoteValue(value: string, max = MAX_QUOTED_CHARS): string {
  if (value.length <= max) return JSON.stringify(value);
  let head = value.slice(0, max);
  // Do not split a surrogate pair.
  const last = head.charCodeAt(head.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) head = head.slice(0, -1);
  return `${JSON.stringify(head + '…')} (${value.length} chars)`;
}

/**
 * A name for a message, unquoted (a column in a {@link DataLocation}), cut like
 * {@link quoteValue}: `abc…(50000000 chars)`.
 */
export function cutValue(value: string, max = MAX_QUOTED_CHARS): string {
  if (value.length <= max) return value;
  let head = value.slice(0, max);
  const last = head.charCodeAt(head.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) head = head.slice(0, -1);
  return `${head}…(${value.length} chars)`;
}

/**
 * A list of names for a message, comma-separated, each cut by {@link quoteValue}'s rule
 * (unquoted), as many as fit in about `maxChars`, then `… (N in all)`.
 */
export function listValues(values: readonly string[], maxChars = 200): string {
  const parts: string[] = [];
  let used = 0;
  for (const v of values) {
    const s = cutValue(v);
    if (parts.length > 0 && used + s.length + 2 > maxChars) return `${parts.join(', ')}, … (${values.length} in all)`;
    parts.push(s);
    used += s.length + 2;
  }
  return parts.join(', ');
}
