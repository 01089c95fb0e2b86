/**
 * A model file for a command, in two steps, so that every check of the user's input runs
 * before a compute provider loads (and prints its fall-back notice): {@link readModelFile}
 * reads and checks the whole file (either format) without a provider; {@link openModel}
 * then wraps it in a Mixture, which loads the provider.
 */
import type { BackendRequest } from '../compute/provider.js';
import { readModel, readModelFrom, type ReadModel } from '../io/read-model.js';
import { Mixture } from '../mixture.js';
import type { ModelState } from '../model/state.js';

/** What the data checks need of a model: its state (configuration, names, training state). */
export type ModelInfo = Pick<ModelState, 'config' | 'optimizer' | 'training' | 'featureNames' | 'targetNames' | 'classNames'>;

/** A model file read and checked, not yet a Mixture. */
export interface ModelFile extends ReadModel {
  /** The path the user gave. */
  path: string;
  /** The state, as the data checks read it. */
  info: ModelInfo;
}

/**
 * Read a model file for a command: a missing file, a directory, a device, a file that is
 * not a model, is corrupt, edited or from a newer version fail here with the library's
 * typed errors, before any compute provider loads.
 */
export async function readModelFile(path: string, bytes?: Buffer): Promise<ModelFile> {
  const read = bytes ? readModelFrom(bytes, path) : await readModel(path);
  return { ...read, path, info: read.state };
}

/**
 * The Mixture of a file read by {@link readModelFile}; the compute provider loads now. A
 * weights-only file says that its optimiser restarts when it trains (its first fit), and
 * only then: inspect, eval, predict and export train nothing.
 */
export async function openModel(file: ModelFile, opts: { backend: BackendRequest; onWarning: (m: string) => void }): Promise<Mixture> {
  return Mixture.fromState(file.state, opts, file.weightsOnly ? file.path : undefined);
}
