/**
 * The model file: one versioned JSON document holding the configuration, parameters,
 * optimiser state, standardisation, names and training state (step, epoch, RNG), so a
 * file is both a model and a checkpoint. Arrays are little-endian float32 in base64 with
 * a SHA-256 over them, so truncation and corruption are detected, not loaded.
 *
 * Versions: a reader loads every version up to {@link MODEL_FORMAT_VERSION}; a file from
 * a newer version is refused with a message saying so.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { loadProvider } from '../compute/load.js';
import type { BackendRequest } from '../compute/provider.js';
import type { Standardizer } from '../data/standardize.js';
import { DataError, ModelFormatError } from '../errors.js';
import { resolveMixtureConfig, type MixtureConfig } from '../model/config.js';
import { resolveOptimizer, type OptimizerConfig } from '../optim/optimizers.js';
import { Mixture, type MixtureParams, type TrainingState } from '../mixture.js';
import { writeFileAtomic } from './atomic.js';

/** The `format` marker every model file carries. */
export const MODEL_FORMAT = 'local-experts-model';
/** The newest format version this library writes and reads. */
export const MODEL_FORMAT_VERSION = 1;

const ARRAYS = ['gateParams', 'expertParams', 'gateOpt', 'expertOpt'] as const;

/** The JSON document (version 1). */
export interface ModelDocument {
  /** Always {@link MODEL_FORMAT}. */
  format: typeof MODEL_FORMAT;
  /** Format version, 1..{@link MODEL_FORMAT_VERSION}. */
  version: number;
  /** Program that wrote the file (`local-experts`). */
  writer: string;
  /** The mixture's resolved configuration. */
  config: MixtureConfig;
  /** Optimiser and hyper-parameters, defaults filled in. */
  optimizer: Required<OptimizerConfig>;
  /** Input standardisation (D columns); absent before the first fit. */
  inputScaler?: Standardizer;
  /** Target standardisation (K columns); absent before the first fit. */
  targetScaler?: Standardizer;
  /** Input column names (D), if known. */
  featureNames?: string[];
  /** Regression target column names (K), if known. */
  targetNames?: string[];
  /** Classification: class names indexed by label, if known. */
  classNames?: string[];
  /** Step, epoch and RNG state, so a fit can resume from the file. */
  training: TrainingState;
  /** Provider the model was trained on (informational: any provider can load it). */
  backend: string;
  /** The {@link MixtureParams} arrays, each little-endian float32 bytes in base64. */
  params: Record<'gateParams' | 'expertParams' | 'gateOpt' | 'expertOpt', string>;
  /** SHA-256 (hex) of the four arrays' bytes, in the order gateParams, expertParams, gateOpt, expertOpt. */
  checksum: string;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function checksum(arrays: Float32Array[]): string {
  const h = createHash('sha256');
  for (const a of arrays) h.update(bytesOf(a));
  return h.digest('hex');
}

/** Serialise a mixture (parameters copied at this moment). */
export function toModelDocument(m: Mixture): ModelDocument {
  const arrays = ARRAYS.map((k) => m.params[k].slice());
  const doc: ModelDocument = {
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    writer: 'local-experts',
    config: m.config,
    optimizer: m.optimizer,
    training: { ...m.training, rng: [...m.training.rng] },
    backend: m.backend,
    params: Object.fromEntries(ARRAYS.map((k, i) => [k, bytesOf(arrays[i]!).toString('base64')])) as ModelDocument['params'],
    checksum: checksum(arrays),
  };
  if (m.inputScaler) doc.inputScaler = m.inputScaler;
  if (m.targetScaler) doc.targetScaler = m.targetScaler;
  if (m.featureNames) doc.featureNames = m.featureNames;
  if (m.targetNames) doc.targetNames = m.targetNames;
  if (m.classNames) doc.classNames = m.classNames;
  return doc;
}

/** Write a model file atomically (temporary file, fsync, rename). */
export async function saveModel(m: Mixture, path: string): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(toModelDocument(m)));
}

function decodeArray(text: unknown, expected: number, name: string, where: string): Float32Array {
  if (typeof text !== 'string') throw new ModelFormatError(`${where}: params.${name} is missing`);
  const buf = Buffer.from(text, 'base64');
  if (buf.byteLength !== expected * 4) {
    throw new ModelFormatError(`${where}: params.${name} holds ${buf.byteLength / 4} values, the configuration needs ${expected}`);
  }
  const out = new Float32Array(expected);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/** How a model file is loaded: the provider is chosen as in {@link Mixture.create}. */
export interface LoadOptions {
  /** Compute provider; `auto` (default) takes the first that loads. */
  backend?: BackendRequest;
  /** CBLAS library for `blas` (default: the system's OpenBLAS). */
  blasLibrary?: string;
  /** One-line warnings (a provider that fell back). Default console.warn. */
  onWarning?: (message: string) => void;
}

/** Rebuild a mixture from a parsed document; `where` names the source in errors. */
export async function fromModelDocument(raw: unknown, where: string, opts: LoadOptions = {}): Promise<Mixture> {
  if (typeof raw !== 'object' || raw === null || (raw as { format?: unknown }).format !== MODEL_FORMAT) {
    throw new ModelFormatError(`${where}: not a local-experts model file`);
  }
  const doc = raw as Partial<ModelDocument>;
  if (typeof doc.version !== 'number' || !Number.isInteger(doc.version) || doc.version < 1) {
    throw new ModelFormatError(`${where}: model file has no valid version`);
  }
  if (doc.version > MODEL_FORMAT_VERSION) {
    throw new ModelFormatError(
      `${where}: model file format version ${doc.version} was written by a newer local-experts; this one reads versions up to ${MODEL_FORMAT_VERSION}`,
      'MODEL_VERSION',
    );
  }
  let config: MixtureConfig, optimizer: Required<OptimizerConfig>;
  try {
    config = resolveMixtureConfig(doc.config as MixtureConfig);
    optimizer = resolveOptimizer(doc.optimizer ?? {});
  } catch (err) {
    throw new ModelFormatError(`${where}: invalid configuration (${(err as Error).message})`);
  }
  const t = doc.training;
  if (!t || !Number.isInteger(t.step) || !Number.isInteger(t.epoch) || !Array.isArray(t.rng) || t.rng.length !== 4) {
    throw new ModelFormatError(`${where}: training state is missing or invalid`);
  }
  const shapes = Mixture.allocate(config, optimizer);
  const params = Object.fromEntries(
    ARRAYS.map((k) => [k, decodeArray(doc.params?.[k], shapes[k].length, k, where)]),
  ) as unknown as MixtureParams;
  if (checksum(ARRAYS.map((k) => params[k])) !== doc.checksum) {
    throw new ModelFormatError(`${where}: checksum mismatch, the parameters are corrupt`);
  }
  const optionalCount = (v: unknown): boolean => v === undefined || (Number.isInteger(v) && (v as number) >= 0);
  if (!optionalCount(t.batch) || !optionalCount(t.batchSize)) throw new ModelFormatError(`${where}: training state is missing or invalid`);
  const training: TrainingState = { seed: t.seed ?? 1, step: t.step, epoch: t.epoch, rng: t.rng.map(Number) };
  if (t.batch !== undefined) training.batch = t.batch;
  if (t.batchSize !== undefined) training.batchSize = t.batchSize;
  const D = config.inputs, K = config.outputs;
  const scalerOk = (s: Standardizer | undefined, w: number): boolean =>
    s === undefined || (Array.isArray(s.mean) && Array.isArray(s.std) && s.mean.length === w && s.std.length === w && s.std.every((v) => v > 0));
  if (!scalerOk(doc.inputScaler, D) || !scalerOk(doc.targetScaler, K)) throw new ModelFormatError(`${where}: standardisation is invalid`);
  // Only a file that checked out loads a compute provider (and prints its warnings).
  const provider = await loadProvider(opts.backend ?? 'auto', {
    ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}),
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
  });
  const m = Mixture.fromParts(config, optimizer, provider, params, training);
  if (doc.inputScaler) m.inputScaler = doc.inputScaler;
  if (doc.targetScaler) m.targetScaler = doc.targetScaler;
  if (doc.featureNames) m.featureNames = doc.featureNames;
  if (doc.targetNames) m.targetNames = doc.targetNames;
  if (doc.classNames) m.classNames = doc.classNames;
  return m;
}

/** Read a model file. Typed errors: missing file, not a model, truncated, corrupt, newer version. */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<Mixture> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DataError('file not found', { file: path }, 'FILE_NOT_FOUND');
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ModelFormatError(`${path}: not a model file, or truncated (not valid JSON)`);
  }
  return fromModelDocument(raw, path, opts);
}
