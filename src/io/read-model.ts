/**
 * Reading a model file of either format, fully checked, without loading a compute
 * provider: the JSON model file (src/io/model-file.ts) or a safetensors file
 * (src/io/safetensors-state.ts), recognised by its header, not its name. The CLI reads
 * the model this way before it loads a provider, so that bad input gets one error line.
 */
import type { ModelState } from '../model/state.js';
import { parseModelBytes, readModelBytes } from './model-file.js';
import { isSafetensors, startsLikeSafetensors } from './safetensors.js';
import { stateFromSafetensors } from './safetensors-state.js';

/** A model file, read and checked. */
export interface ReadModel {
  /** The model. */
  state: ModelState;
  /** Which format the file is in. */
  format: 'json' | 'safetensors';
  /** The format's version number in the file. */
  version: number;
  /** Provider the file says the model was trained on (JSON files). */
  backend?: string | undefined;
  /**
   * A safetensors file without optimiser tensors (weights only, e.g. trained on in
   * PyTorch): the optimiser restarts, so its step count is reset to 0.
   */
  weightsOnly: boolean;
}

/** Read and check a model file; typed errors name the path (and the field). */
export async function readModel(path: string): Promise<ReadModel> {
  return readModelFrom(await readModelBytes(path), path);
}

/** Check a model file's bytes (read elsewhere: an MPI rank receives rank 0's); errors name `path`. */
export function readModelFrom(bytes: Buffer, path: string): ReadModel {
  if (isSafetensors(bytes) || startsLikeSafetensors(bytes)) {
    // A file that starts like safetensors is read as one, so that a truncated or damaged
    // one gets the safetensors reader's precise error, not "not valid JSON".
    const { state, hasOptimizerState, version } = stateFromSafetensors(bytes, path);
    const weightsOnly = !hasOptimizerState;
    if (weightsOnly) {
      // Adam's bias correction counts steps from the optimiser's start: zeroed moments
      // with a late step count would take tiny steps. The epochs done are kept.
      state.training.step = 0;
      delete state.training.batch;
    }
    return { state, format: 'safetensors', version, weightsOnly };
  }
  const { state, info } = parseModelBytes(bytes, path);
  return { state, format: 'json', version: info.version, backend: info.backend, weightsOnly: false };
}

/** The one line that says a weights-only file restarts its optimiser. */
export function weightsOnlyNotice(path: string, state: ModelState): string {
  return `local-experts: ${path} holds weights only (no optimiser state): training continues with a fresh ${state.optimizer.name} optimiser from step 0`;
}
