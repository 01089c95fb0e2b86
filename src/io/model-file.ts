/**
 * The model file: one versioned JSON document holding the configuration, parameters,
 * optimiser state, standardisation, names and training state, so a file is both a model
 * and a checkpoint. Arrays are little-endian float32 in base64.
 *
 * Reading trusts nothing: the whole document is checked against a schema first
 * (src/io/model-schema.ts: types, ranges, names and scalers against the configuration),
 * then the array lengths against the configuration, then a SHA-256 over the whole
 * document in a canonical form (keys sorted, no spaces, without the checksum itself), then
 * that every parameter is finite. Any failure is one ModelFormatError naming the field.
 *
 * Versions: 1 (0.1.0: interleaved optimiser state, checksum over the arrays only) and 2
 * (planar optimiser state, whole-document checksum). A newer version is refused.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { DataError, ModelFormatError, OptionError } from '../errors.js';
import { PARAM_ARRAYS, type MixtureParams, type ModelState } from '../model/state.js';
import { optimizerStateSize, type OptimizerConfig, type OptimizerName } from '../optim/config.js';
import { writeFileAtomic } from './atomic.js';
import { MAX_SAFETENSORS_FILE_BYTES, startsLikeSafetensors } from './safetensors.js';
import { firstIssue, modelDocumentSchema, type ModelDocumentData } from './model-schema.js';
import { tooDeep, tooDeepMessage } from './json-depth.js';
import { checkLoadable } from './loadable.js';
import { checkFinite, configOf, impliedCounts, paramsFor, stateFromFields } from './state-fields.js';

/** The `format` marker every model file carries. */
export const MODEL_FORMAT = 'local-experts-model';
/** The newest format version this library writes and reads. */
export const MODEL_FORMAT_VERSION = 2;
/** Largest JSON model file read or written: the document is one string, and V8 caps strings at 2²⁹ − 24 characters. */
export const MAX_MODEL_FILE_BYTES = 2 ** 29 - 24;
export { MAX_SAFETENSORS_FILE_BYTES } from './safetensors.js';

/**
 * The JSON document, as written: the {@link ModelState}'s fields (configuration,
 * optimiser, standardisation, names, training position) with its arrays as base64, and
 * the format's own fields.
 */
export interface ModelDocument extends Omit<ModelState, 'params'> {
  /** Always {@link MODEL_FORMAT}. */
  format: typeof MODEL_FORMAT;
  /** Format version, 1..{@link MODEL_FORMAT_VERSION}. */
  version: number;
  /** Program that wrote the file. */
  writer: string;
  /** Provider the model was trained on (informational). */
  backend: string;
  /** Kernel set the model was trained with (informational). */
  kernels?: string;
  /** The {@link MixtureParams} arrays, each little-endian float32 bytes in base64 (optimiser state planar). */
  params: Record<(typeof PARAM_ARRAYS)[number], string>;
  /** SHA-256 (hex) of the canonical form of every other field. */
  checksum: string;
}

/** What was in the file besides the state. */
export interface ModelFileInfo {
  /** Format version of the file. */
  version: number;
  /** Provider it was trained on, as the file says. */
  backend: string | undefined;
  /** Kernel set, as the file says (absent before version 2). */
  kernels: string | undefined;
  /** Program that wrote it. */
  writer: string | undefined;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** JSON with object keys sorted at every level: the canonical form the checksum covers. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function documentChecksum(doc: object): string {
  const { checksum: _omit, ...rest } = doc as { checksum?: string };
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

/** Serialise a model (its parameters as they are at this moment). */
export function toModelDocument(state: ModelState, backend: string, kernels?: string): ModelDocument {
  const doc: Omit<ModelDocument, 'checksum'> & { checksum?: string } = {
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    writer: 'local-experts',
    config: state.config,
    optimizer: state.optimizer,
    training: { ...state.training, rng: [...state.training.rng] },
    backend,
    ...(kernels !== undefined ? { kernels } : {}),
    params: Object.fromEntries(PARAM_ARRAYS.map((k) => [k, bytesOf(state.params[k]).toString('base64')])) as ModelDocument['params'],
  };
  if (state.inputScaler) doc.inputScaler = state.inputScaler;
  if (state.targetScaler) doc.targetScaler = state.targetScaler;
  if (state.featureNames) doc.featureNames = state.featureNames;
  if (state.targetNames) doc.targetNames = state.targetNames;
  if (state.classNames) doc.classNames = state.classNames;
  doc.checksum = documentChecksum(doc);
  return doc as ModelDocument;
}

/**
 * An upper bound of a model's JSON model file size in bytes: base64 holds 4 characters
 * per 3 bytes; the rest of the document is small (64 KiB is ample).
 */
export function jsonModelFileBytes(params: MixtureParams): number {
  let bytes = 64 * 1024;
  for (const k of PARAM_ARRAYS) bytes += Math.ceil((params[k].length * 4) / 3) * 4;
  return bytes;
}

/**
 * Refuse, as an OptionError naming `option` (the path's option), a model too large for
 * a JSON model file; the message points to safetensors.
 */
export function checkJsonModelSize(params: MixtureParams, option: string): void {
  const bytes = jsonModelFileBytes(params);
  if (bytes > MAX_MODEL_FILE_BYTES) {
    throw new OptionError(
      option,
      `this model is ${(bytes / 2 ** 20).toFixed(0)} MiB as a JSON model file, over the ${Math.floor(MAX_MODEL_FILE_BYTES / 2 ** 20)} MiB the format holds; save it as safetensors (a path ending in .safetensors)`,
    );
  }
}

/** Write a model file atomically (temporary file, fsync, rename). */
export async function writeModelFile(path: string, state: ModelState, backend: string, kernels?: string, option = 'path'): Promise<void> {
  // Refuse before building a string V8 cannot hold.
  checkJsonModelSize(state.params, option);
  // Write only what loads: the loader's schema and limits, before a byte is written.
  checkLoadable(state, path);
  await writeFileAtomic(path, JSON.stringify(toModelDocument(state, backend, kernels)), { option });
}

/** Bytes a (schema-checked) base64 string decodes to, without decoding it. */
function base64Bytes(text: string): number {
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return Math.floor(((text.length - pad) * 3) / 4);
}

/** Refuse an array whose text cannot hold what the configuration implies, before anything is allocated. */
function checkArrayText(text: string, expected: number, name: string, where: string): void {
  const bytes = base64Bytes(text);
  if (bytes !== expected * 4) {
    throw new ModelFormatError(`${where}: params.${name} holds ${Math.floor(bytes / 4)} values, the configuration needs ${expected}`);
  }
}

function decodeArray(text: string, expected: number, name: string, where: string): Float32Array {
  const buf = Buffer.from(text, 'base64');
  if (buf.byteLength !== expected * 4) {
    throw new ModelFormatError(`${where}: params.${name} holds ${Math.floor(buf.byteLength / 4)} values, the configuration needs ${expected}`);
  }
  const out = new Float32Array(expected);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/** Version 1 interleaved the optimiser's slots per parameter; version 2 keeps them planar. */
function deinterleave(a: Float32Array, slots: number): Float32Array {
  if (slots < 2) return a;
  const n = a.length / slots, out = new Float32Array(a.length);
  for (let j = 0; j < n; j++) for (let s = 0; s < slots; s++) out[s * n + j] = a[j * slots + s]!;
  return out;
}

/** Rebuild a model from a parsed document; `where` names the source in errors. */
export function fromModelDocument(raw: unknown, where: string): { state: ModelState; info: ModelFileInfo } {
  if (typeof raw !== 'object' || raw === null || (raw as { format?: unknown }).format !== MODEL_FORMAT) {
    throw new ModelFormatError(`${where}: not a local-experts model file`);
  }
  // Before any recursive walk (the schema, the checksum's canonical form).
  const deep = tooDeep(raw);
  if (deep !== undefined) throw new ModelFormatError(`${where}: ${tooDeepMessage(deep)}`);
  const version = (raw as { version?: unknown }).version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) throw new ModelFormatError(`${where}: version: model file has no valid version`);
  if (version > MODEL_FORMAT_VERSION) {
    throw new ModelFormatError(`${where}: model file format version ${version} was written by a newer local-experts; this one reads versions up to ${MODEL_FORMAT_VERSION}`, 'MODEL_VERSION');
  }
  const parsed = modelDocumentSchema.safeParse(raw);
  if (!parsed.success) throw new ModelFormatError(`${where}: ${firstIssue(parsed.error)}`);
  const doc: ModelDocumentData = parsed.data;
  const config = configOf(doc);
  const optimizer = doc.optimizer as Required<OptimizerConfig>;
  // The sizes the configuration implies, against the library's limits and the file's own
  // arrays, before anything is allocated: a small file cannot ask for gigabytes.
  const counts = impliedCounts(config, optimizer, where);
  for (const k of PARAM_ARRAYS) checkArrayText(doc.params[k] ?? '', counts[k], k, where);
  const shapes = paramsFor(config, optimizer, where);
  const params = Object.fromEntries(PARAM_ARRAYS.map((k) => [k, decodeArray(doc.params[k] ?? '', shapes[k].length, k, where)])) as unknown as MixtureParams;
  if (version === 1) {
    // 0.1.0's checksum covered its four arrays only, in order.
    const h = createHash('sha256');
    for (const k of ['gateParams', 'expertParams', 'gateOpt', 'expertOpt'] as const) h.update(bytesOf(params[k]));
    if (h.digest('hex') !== doc.checksum) throw new ModelFormatError(`${where}: checksum: mismatch, the parameters are corrupt`);
    const S = optimizerStateSize(optimizer.name as OptimizerName);
    params.gateOpt = deinterleave(params.gateOpt, S);
    params.expertOpt = deinterleave(params.expertOpt, S);
  } else if (documentChecksum(raw) !== doc.checksum) {
    throw new ModelFormatError(`${where}: checksum: mismatch, the file was edited or is corrupt`);
  }
  checkFinite(params, where, optimizer.name as OptimizerName);
  return { state: stateFromFields(doc, params), info: { version, backend: doc.backend, kernels: doc.kernels, writer: doc.writer } };
}

/**
 * Read a file the user named as a model, refusing what is not a regular file or is too
 * large to be one, with one DataError naming the path. The path is checked with stat()
 * before it is opened: opening a FIFO for reading would wait for a writer forever.
 */
export async function readModelBytes(path: string): Promise<Buffer> {
  const opened = (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError('file not found', { file: path }, 'FILE_NOT_FOUND');
    if (code === 'EISDIR') throw new DataError('is a directory, not a model file', { file: path }, 'INVALID_DATA');
    if (code === 'EACCES' || code === 'EPERM') throw new DataError('permission denied', { file: path }, 'INVALID_DATA');
    if (code === 'ELOOP') throw new DataError('symbolic link loop', { file: path }, 'INVALID_DATA');
    throw new DataError(`cannot open: ${(err as Error).message}`, { file: path }, 'INVALID_DATA');
  };
  const checkKind = (st: { isDirectory(): boolean; isFile(): boolean }): void => {
    if (st.isDirectory()) throw new DataError('is a directory, not a model file', { file: path }, 'INVALID_DATA');
    if (!st.isFile()) throw new DataError('is not a regular file (a device, pipe or socket cannot be a model file)', { file: path }, 'INVALID_DATA');
  };
  checkKind(await stat(path).catch(opened));
  // O_NONBLOCK: should the path be swapped for a FIFO between stat() and open(), the
  // open returns at once and the fstat below refuses it.
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch(opened);
  try {
    const st = await fh.stat();
    checkKind(st);
    const head = Buffer.alloc(Math.min(16, st.size));
    await fh.read(head, 0, head.length, 0);
    const safetensors = startsLikeSafetensors(head);
    const limit = safetensors ? MAX_SAFETENSORS_FILE_BYTES : MAX_MODEL_FILE_BYTES;
    if (st.size > limit) {
      throw new ModelFormatError(
        `${path}: ${(st.size / 2 ** 20).toFixed(0)} MiB is larger than any ${safetensors ? 'safetensors' : 'JSON model'} file this library reads (${(limit / 2 ** 20).toFixed(0)} MiB)`,
      );
    }
    // Read in chunks into one buffer: readFile() stops at 2 GiB; a file that grows while
    // it is read is cut at the size stat() gave (the checksum or header then refuses it).
    const out = Buffer.allocUnsafe(st.size);
    let at = 0;
    while (at < st.size) {
      const { bytesRead } = await fh.read(out, at, Math.min(st.size - at, 64 * 2 ** 20), at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return at === st.size ? out : out.subarray(0, at);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EISDIR') throw new DataError('is a directory, not a model file', { file: path }, 'INVALID_DATA');
    throw err;
  } finally {
    await fh.close();
  }
}

/** Parse a model file's bytes (JSON). */
export function parseModelBytes(bytes: Buffer, where: string): { state: ModelState; info: ModelFileInfo } {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ModelFormatError(`${where}: not a model file, or truncated (not valid JSON)`);
  }
  return fromModelDocument(raw, where);
}

/** Read and check a model file. Typed errors: missing, not a file, not a model, truncated, corrupt, edited, newer. */
export async function readModelFile(path: string): Promise<{ state: ModelState; info: ModelFileInfo }> {
  return parseModelBytes(await readModelBytes(path), path);
}
