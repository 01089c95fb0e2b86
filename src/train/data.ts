/** A dataset as a session trains on it: standardised inputs and model-space targets. */
import type { Dataset } from '../data/dataset.js';
import { standardize } from '../data/standardize.js';
import type { TrainingData } from '../engine/step.js';
import type { ModelState } from '../model/state.js';

/** Model-space targets: standardised targets (regression) or one-hot rows (classification), n×K. */
export function targetMatrix(state: ModelState, data: Dataset): Float32Array {
  const K = state.config.outputs;
  if (state.config.task === 'regression') return standardize(state.targetScaler!, data.y!, data.n);
  const t = new Float32Array(data.n * K);
  for (let r = 0; r < data.n; r++) t[r * K + data.labels![r]!] = 1;
  return t;
}

/** The session's copy of a dataset under the model's (fitted) standardisation. */
export function trainingData(state: ModelState, train: Dataset): TrainingData {
  return {
    x: standardize(state.inputScaler!, train.x, train.n),
    t: targetMatrix(state, train),
    labels: train.labels ?? new Int32Array(train.n),
  };
}
