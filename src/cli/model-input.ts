/**
 * A model file for a command, in two steps, so that every check of the user's input runs
 * before a compute provider loads (and prints its fall-back notice): {@link readModelFile}
 * reads and parses the file and takes what the data checks need (configuration, names,
 * training state) without a provider; {@link openModel} then builds the Mixture, which
 * checks the parameters and loads the provider.
 */
import { readFile } from 'node:fs/promises';
import type { BackendRequest } from '../compute/provider.js';
import { DataError, ModelFormatError } from '../errors.js';
import { fromModelDocument, loadModel, MODEL_FORMAT, MODEL_FORMAT_VERSION } from '../io/model-file.js';
import type { Mixture } from '../mixture.js';
import { resolveMixtureConfig, type MixtureConfig } from '../model/config.js';
import { resolveOptimizer, type OptimizerConfig } from '../optim/optimizers.js';

/** What a model file says about itself, read without loading a compute provider. */
export interface ModelInfo {
  config: MixtureConfig;
  optimizer: Required<OptimizerConfig>;
  training: { seed: number; epoch: number; step: number; batch?: number; batchSize?: number };
  featureNames?: string[];
  targetNames?: string[];
  classNames?: string[];
}

/** A model file read and parsed, not yet a Mixture. */
export interface ModelFile {
  path: string;
  /** The parsed document. */
  raw: unknown;
  info: ModelInfo;
  /** Set where the file could only be checked by building the Mixture (provider loaded). */
  mixture?: Mixture;
}

function names(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : undefined;
}

/** The document's self-description, or undefined where it is not a model file this version reads. */
function peek(raw: unknown): ModelInfo | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const doc = raw as Record<string, unknown>;
  if (doc.format !== MODEL_FORMAT || typeof doc.version !== 'number' || !Number.isInteger(doc.version) || doc.version < 1 || doc.version > MODEL_FORMAT_VERSION) {
    return undefined;
  }
  let config: MixtureConfig, optimizer: Required<OptimizerConfig>;
  try {
    config = resolveMixtureConfig(doc.config as MixtureConfig);
    optimizer = resolveOptimizer((doc.optimizer ?? {}) as OptimizerConfig);
  } catch {
    return undefined;
  }
  const t = doc.training as Record<string, unknown> | undefined;
  if (!t || !Number.isInteger(t.epoch) || !Number.isInteger(t.step)) return undefined;
  const count = (v: unknown): number | undefined => (Number.isInteger(v) && (v as number) >= 0 ? (v as number) : undefined);
  const training: ModelInfo['training'] = { seed: typeof t.seed === 'number' ? t.seed : 1, epoch: t.epoch as number, step: t.step as number };
  const batch = count(t.batch), batchSize = count(t.batchSize);
  if (batch !== undefined) training.batch = batch;
  if (batchSize !== undefined) training.batchSize = batchSize;
  const info: ModelInfo = { config, optimizer, training };
  const f = names(doc.featureNames), tn = names(doc.targetNames), c = names(doc.classNames);
  if (f) info.featureNames = f;
  if (tn) info.targetNames = tn;
  if (c) info.classNames = c;
  return info;
}

function infoOf(m: Mixture): ModelInfo {
  const info: ModelInfo = { config: m.config, optimizer: m.optimizer, training: m.training };
  if (m.featureNames) info.featureNames = m.featureNames;
  if (m.targetNames) info.targetNames = m.targetNames;
  if (m.classNames) info.classNames = m.classNames;
  return info;
}

/**
 * Read a model file for a command: a missing file, a directory, an unreadable file, a
 * file that is not a model or is from a newer version fail here with the library's own
 * typed errors, before any compute provider loads. (Only a file this reader cannot take
 * apart falls back to the library's loader, whose checks also run before its provider.)
 */
export async function readModelFile(path: string, opts: { backend: BackendRequest; onWarning: (m: string) => void }): Promise<ModelFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new ModelFormatError(`${path}: is a directory, not a model file`);
    if (code === 'EACCES' || code === 'EPERM') throw new DataError(`cannot read: permission denied (${code})`, { file: path }, 'FILE_NOT_FOUND');
    // Missing and anything else: the library's message.
    const m = await loadModel(path, opts);
    return { path, raw: undefined, info: infoOf(m), mixture: m };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    const m = await loadModel(path, opts); // throws the library's "not a model file, or truncated"
    return { path, raw: undefined, info: infoOf(m), mixture: m };
  }
  const info = peek(raw);
  if (info) return { path, raw, info };
  // Not a model, a newer version, a broken configuration: the library says which.
  const m = await fromModelDocument(raw, path, opts);
  return { path, raw, info: infoOf(m), mixture: m };
}

/**
 * The Mixture of a file read by {@link readModelFile}: its parameters are checked
 * (sizes, checksum) and the compute provider loads now.
 */
export async function openModel(file: ModelFile, opts: { backend: BackendRequest; onWarning: (m: string) => void }): Promise<Mixture> {
  return file.mixture ?? fromModelDocument(file.raw, file.path, opts);
}
