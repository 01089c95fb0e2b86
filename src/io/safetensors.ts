/**
 * The safetensors container (the format of Hugging Face's `safetensors` library), F32 only:
 *
 *   [ u64 little-endian N ][ N bytes of JSON header ][ tensor data ]
 *
 * The header maps each tensor's name to `{ dtype, shape, data_offsets: [begin, end] }`,
 * offsets relative to the start of the data, and may hold `__metadata__`, an object of
 * strings. Tensors are row-major little-endian and fill the data exactly: no gaps, no
 * overlaps, nothing after the last one. This writer pads the header with spaces so that
 * the data starts 8-byte aligned. What the tensors mean is src/io/safetensors-state.ts's job.
 */
import { ModelFormatError } from '../errors.js';
import { tooDeep } from './json-depth.js';

/** Largest header this reader accepts, bytes (the safetensors library's own limit); the writer keeps to it too. */
export const MAX_HEADER_BYTES = 100_000_000;
/** Largest safetensors file read or written (one Buffer: Node caps them at 4 GiB). */
export const MAX_SAFETENSORS_FILE_BYTES = 2 ** 32 - 1;

/** One F32 tensor: shape (row-major) and values. */
export interface F32Tensor {
  /** Dimensions, outermost first; the values hold their product. */
  shape: number[];
  /** Row-major values. */
  data: Float32Array;
}

/** A decoded file: tensors by name (in data order) and the `__metadata__` strings. */
export interface SafetensorsContent {
  /** Every tensor, by name, in the order of their data. */
  tensors: Map<string, F32Tensor>;
  /** `__metadata__` (empty when the file has none). */
  metadata: Record<string, string>;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Write `values` as little-endian float32 at `offset` of `out`. */
function writeF32(out: Uint8Array, offset: number, values: Float32Array): void {
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), offset);
    return;
  }
  const dv = new DataView(out.buffer, out.byteOffset + offset, values.byteLength);
  for (let i = 0; i < values.length; i++) dv.setFloat32(4 * i, values[i]!, true);
}

/** Read n little-endian float32 at `offset` of `bytes` into a new array (any alignment). */
function readF32(bytes: Uint8Array, offset: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + 4 * n));
    return out;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, 4 * n);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

/** A file {@link encodeSafetensors} refuses to make because no reader would load it; the message says why. */
export class SafetensorsLimitError extends ModelFormatError {}

/**
 * Encode tensors (written in the order given, contiguously) and metadata strings into
 * one safetensors file. Names must be unique and not `__metadata__`.
 */
export function encodeSafetensors(tensors: readonly (readonly [string, F32Tensor])[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new TypeError(`safetensors metadata ${k} must be a string`);
  }
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__' || Object.hasOwn(header, name)) throw new TypeError(`safetensors tensor name ${name} is reserved or repeated`);
    if (t.data.length !== product(t.shape)) throw new RangeError(`tensor ${name}: shape [${t.shape.join(', ')}] needs ${product(t.shape)} values, got ${t.data.length}`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * t.data.length] };
    offset += 4 * t.data.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  // The writer refuses what the reader would refuse (this reader's and safetensors' own limits).
  if (json.length + pad > MAX_HEADER_BYTES) {
    throw new SafetensorsLimitError(
      `its safetensors header would be ${(json.length + pad).toLocaleString('en-US')} bytes (${tensors.length.toLocaleString('en-US')} tensors), over the ${MAX_HEADER_BYTES.toLocaleString('en-US')} bytes safetensors readers accept`,
    );
  }
  if (8 + json.length + pad + offset > MAX_SAFETENSORS_FILE_BYTES) {
    throw new SafetensorsLimitError(`it would be a ${((8 + json.length + pad + offset) / 2 ** 30).toFixed(2)} GiB safetensors file, over the 4 GiB this library reads`);
  }
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const [, t] of tensors) {
    writeF32(out, at, t.data);
    at += 4 * t.data.length;
  }
  return out;
}

/**
 * Starts with a little-endian header length whose high bytes are 0, as every safetensors
 * file does (its header is under 100 MB); NUL bytes never occur in JSON text. Weaker than
 * {@link isSafetensors}: true for a truncated or damaged safetensors file too, which the
 * safetensors reader then refuses with a precise error.
 */
export function startsLikeSafetensors(bytes: Uint8Array): boolean {
  // A NUL byte in the first 8: never JSON text, always a length field (even an absurd one,
  // which the reader then reports as out of range rather than as invalid JSON).
  return bytes.length >= 8 && bytes.subarray(0, 8).includes(0);
}

/**
 * Whether `bytes` start like a safetensors file: a header length that fits the file and
 * the limit, and a header that begins with `{`. Reads the header's first byte only.
 */
export function isSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n < 2n || n > BigInt(MAX_HEADER_BYTES) || n > BigInt(bytes.length - 8)) return false;
  return bytes[8] === 0x7b; // '{'
}

/**
 * What a reader expects of a header, told once the metadata is known and before any
 * tensor entry is checked or any data read: at most `maxTensors` entries, and a name
 * check (an error message for a name the configuration has no tensor of).
 */
export interface HeaderPlan {
  /** Most tensors the file may list. */
  maxTensors: number;
  /** Undefined for a name that may be there; else why it may not (the message after `tensor NAME `). */
  checkName(name: string): string | undefined;
}

/** A value for a one-line message: JSON, cut; a crafted, deeply nested one is not walked. */
function show(v: unknown): string {
  if (tooDeep(v, 4) !== undefined) return '(a value nested too deeply)';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Headers larger than this are counted before they are parsed (1 MiB parses in milliseconds). */
const EARLY_CHECK_BYTES = 1 << 20;

/** The key every tensor entry has; raw in the header text only as a key (inside a string its quotes are escaped). */
const DATA_OFFSETS_KEY = Buffer.from('"data_offsets"');

/** How often `needle` occurs in `hay` (native search, no parsing). */
function occurrences(hay: Buffer, needle: Buffer): number {
  let count = 0;
  for (let at = hay.indexOf(needle); at >= 0; at = hay.indexOf(needle, at + needle.length)) count++;
  return count;
}

/**
 * The `__metadata__` object of a header, found and parsed without parsing the rest: the
 * object after the first `"__metadata__":` up to its closing brace (it holds strings
 * only, so the first brace outside a string closes it). Undefined where there is none
 * or it is not an object of strings (the full parse then reports it).
 */
function metadataBeforeParse(header: Buffer): Record<string, string> | undefined {
  let at = header.indexOf('"__metadata__"');
  if (at < 0) return undefined;
  at += '"__metadata__"'.length;
  const space = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
  while (space(header[at])) at++;
  if (header[at] !== 0x3a) return undefined; // ':'
  at++;
  while (space(header[at])) at++;
  if (header[at] !== 0x7b) return undefined; // '{'
  const start = at;
  let inString = false;
  for (at++; at < header.length; at++) {
    const c = header[at]!;
    if (inString) {
      if (c === 0x5c) at++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      return undefined; // a nested object or array: not an object of strings
    } else if (c === 0x7d) {
      try {
        const value: unknown = JSON.parse(header.subarray(start, at + 1).toString('utf8'));
        if (typeof value !== 'object' || value === null || !Object.values(value).every((v) => typeof v === 'string')) return undefined;
        return value as Record<string, string>;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

interface Entry {
  name: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Decode a safetensors file of F32 tensors. Every problem is one ModelFormatError line
 * that starts with `where` (the file) and names the tensor: truncated file or header,
 * absurd header length, header over {@link MAX_HEADER_BYTES}, invalid JSON, a dtype other
 * than F32, bad shapes or offsets, gaps, overlaps, bytes after the last tensor, and
 * metadata values that are not strings.
 */
export function decodeSafetensors(bytes: Uint8Array, where: string, plan?: (metadata: Record<string, string>, dataBytes: number) => HeaderPlan): SafetensorsContent {
  const fail = (msg: string): never => {
    throw new ModelFormatError(`${where}: ${msg}`);
  };
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, a safetensors file starts with an 8-byte header length`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_SAFETENSORS_FILE_BYTES)) fail(`header length ${n64} is out of range: a header is at most ${MAX_HEADER_BYTES} bytes (not a safetensors file, or corrupt)`);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n64} bytes is over the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`);
  const n = Number(n64);
  if (n < 2) fail(`header length ${n} bytes is too small for a JSON header`);
  if (8 + n > bytes.length) fail(`truncated header: it should be ${n} bytes, the file has ${bytes.length - 8} after the length`);
  const headerBytes = Buffer.from(bytes.buffer, bytes.byteOffset + 8, n);
  if (plan && n > EARLY_CHECK_BYTES) {
    // Excess entries in a large header are refused before it is parsed: parsing 100 MB of
    // a million entries takes gigabytes and seconds. Its metadata and its entry count are
    // read without parsing the rest. (A small header is parsed, and an entry that is not
    // part of the model then named.)
    const early = metadataBeforeParse(headerBytes);
    if (early) {
      const max = plan(early, bytes.length - 8 - n).maxTensors;
      const count = occurrences(headerBytes, DATA_OFFSETS_KEY);
      if (count > max) fail(`the header lists ${count.toLocaleString('en-US')} tensors; this model has at most ${max.toLocaleString('en-US')}`);
    }
  }
  let header: unknown;
  try {
    header = JSON.parse(headerBytes.toString('utf8'));
  } catch {
    fail('the header is not valid JSON (not a safetensors file, or corrupt)');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('the header is not a JSON object');
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  const fields = header as Record<string, unknown>;
  if (Object.hasOwn(fields, '__metadata__')) {
    const value = fields.__metadata__;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('__metadata__ is not an object of strings');
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(`__metadata__.${k.length > 40 ? `${k.slice(0, 37)}...` : k} is not a string`);
      metadata[k] = v as string;
    }
  }
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  // The reader's expectations, before any entry is checked: excess or unknown entries are
  // refused without spending time or memory on them.
  const expected = plan?.(metadata, dataLength);
  const names = Object.keys(fields).filter((k) => k !== '__metadata__');
  const tensorName = (name: string): string => `tensor ${name.length > 80 ? `${name.slice(0, 77)}...` : name}`;
  if (expected) {
    for (const name of names) {
      const unknown = expected.checkName(name);
      if (unknown !== undefined) fail(`${tensorName(name)} ${unknown}`);
    }
    if (names.length > expected.maxTensors) fail(`the header lists ${names.length.toLocaleString('en-US')} tensors; this model has at most ${expected.maxTensors.toLocaleString('en-US')}`);
  }
  for (const name of names) {
    const value = fields[name];
    const t = tensorName(name);
    if (typeof value !== 'object' || value === null) fail(`${t}: entry is not an object`);
    const { dtype, shape, data_offsets: offs } = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (dtype !== 'F32') fail(`${t}: dtype ${show(dtype)} is not supported (only F32)`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`${t}: shape ${show(shape)} is not a list of non-negative integers`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`${t}: data_offsets ${show(offs)} are not two non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(`${t}: data_offsets [${begin}, ${end}] end before they begin`);
    const need = 4 * product(shape as number[]);
    if (end - begin !== need) fail(`${t}: shape [${(shape as number[]).join(', ')}] of F32 needs ${need} bytes, data_offsets [${begin}, ${end}] hold ${end - begin}`);
    entries.push({ name, shape: shape as number[], begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: Entry | undefined;
  for (const e of entries) {
    if (e.begin < at) fail(`tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] overlap tensor ${prev!.name} [${prev!.begin}, ${prev!.end}]`);
    if (e.begin > at) fail(`tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] leave a gap of ${e.begin - at} bytes before it`);
    if (e.end > dataLength) fail(`tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] run past the end of the data (${dataLength} bytes): truncated`);
    at = e.end;
    prev = e;
  }
  if (at !== dataLength) fail(`${dataLength - at} bytes after the last tensor${prev ? ` (${prev.name})` : ''}: not a well-formed safetensors file`);
  const tensors = new Map<string, F32Tensor>();
  for (const e of entries) tensors.set(e.name, { shape: e.shape, data: readF32(bytes, dataStart + e.begin, (e.end - e.begin) / 4) });
  return { tensors, metadata };
}
