/**
 * Predictions are checked, not only inputs. A finite float32 input far outside the
 * training range (3e38) standardises to a finite value and overflows inside the first
 * layer; a model whose parameters are not finite predicts NaN for every row. Either way
 * no prediction path may hand back NaN as an answer: the first row whose output (a
 * regression prediction, or a class probability) is not finite is a DataError naming
 * the row and, where one input stands out, its column; parameters that are not finite
 * are a MoeError DIVERGED. Nothing is clamped.
 */
import type { Standardizer } from '../data/standardize.js';
import { DataError, MoeError } from '../errors.js';

/** An input this many standard deviations from its training mean is named as the likely cause. */
const FAR_OUT = 1e4;

/** What the check needs to know of the model and the rows. */
export interface OutputCheck {
  /** Output width K per row. */
  outputs: number;
  /** Raw inputs n×D, row-major, in the data's units. */
  x: Float32Array;
  /** Input width D. */
  inputs: number;
  /** The model's input standardisation. */
  inputScaler: Standardizer;
  /** Input names for the message (`#j` where unknown). */
  featureNames?: readonly string[] | undefined;
  /** The parameters the outputs were computed from (their name and values). */
  params: Readonly<Record<string, Float32Array>>;
  /** Classification: the outputs are class probabilities. */
  probabilities: boolean;
}

/** The first value of `a` that is not finite, or -1. */
function firstNonFinite(a: Float32Array, from = 0, to = a.length): number {
  for (let j = from; j < to; j++) if (!Number.isFinite(a[j]!)) return j;
  return -1;
}

/**
 * Throw unless every value of `output` (n×K) is finite: MoeError DIVERGED where the model's
 * parameters are not finite, else a DataError naming the first bad row (1-based) and the
 * input that lies farthest from the training data where it lies far out.
 */
export function checkOutputs(output: Float32Array, c: OutputCheck): void {
  const bad = firstNonFinite(output);
  if (bad < 0) return;
  for (const [name, a] of Object.entries(c.params)) {
    const j = firstNonFinite(a);
    if (j >= 0) throw new MoeError('DIVERGED', `the model's parameters are not finite (${name}[${j}] is ${a[j]}): it diverged in training, and cannot predict; retrain it (lower the learning rate) or use an earlier checkpoint`);
  }
  const row = Math.floor(bad / c.outputs);
  const D = c.inputs;
  let far = -1, farZ = 0;
  for (let j = 0; j < D; j++) {
    const z = Math.abs((c.x[row * D + j]! - c.inputScaler.mean[j]!) / c.inputScaler.std[j]!);
    if (z > farZ) {
      farZ = z;
      far = j;
    }
  }
  const what = c.probabilities ? 'a class probability' : 'the prediction';
  const value = output[bad]!;
  if (far >= 0 && farZ >= FAR_OUT) {
    const column = c.featureNames?.[far] ?? `#${far + 1}`;
    throw new DataError(
      `${what} is ${value}, not a finite number: input ${c.x[row * D + far]} is ${farZ.toPrecision(3)} standard deviations from the training data's mean, and the model overflows float32 on it`,
      { row: row + 1, column },
    );
  }
  throw new DataError(`${what} is ${value}, not a finite number (the model overflows float32 on this row's inputs)`, { row: row + 1 });
}
