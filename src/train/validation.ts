/**
 * Validation during a fit, inside the training layer. The validation set is checked (by
 * the fit) and standardised once, when the fit starts; after each epoch it is measured by
 * the session's own inference engine: the predict path's forward pass and routing plan,
 * in the session's memory, on its kernels and its live parameters (no copy, no memory or
 * kernel instance per call). The numbers are those `Mixture.evaluate` gives on the same
 * parameters, bit for bit: the same engine code, kernel set, provider, float mode and
 * metric functions.
 */
import type { Dataset } from '../data/dataset.js';
import { unstandardize } from '../data/standardize.js';
import { checkOutputs } from '../engine/check-outputs.js';
import type { TrainingData } from '../engine/step.js';
import { accuracyScore } from '../metrics/classification.js';
import { meanSquaredError } from '../metrics/regression.js';
import type { ModelState } from '../model/state.js';
import { trainingData } from './data.js';
import type { TrainingSession } from './session.js';

/** An epoch's validation metrics (EpochInfo's valLoss, valAccuracy, valMse). */
export interface ValidationMetrics {
  /** Mean loss under the model's error function (standardised units). */
  loss: number;
  /** Classification: fraction correct. */
  accuracy?: number;
  /** Regression: mean squared error in original units, averaged over outputs. */
  mse?: number;
}

/** A fit's validation set, standardised once, and its measurement on a session. */
export class Validation {
  /** The set in model space (standardised inputs, model-space targets). */
  private readonly data: TrainingData;

  /** `raw`: the validation rows, already checked against the model; the scalers must be fitted. */
  constructor(
    private readonly state: ModelState,
    private readonly raw: Dataset,
  ) {
    this.data = trainingData(state, raw);
  }

  /** Rows of the set (the session's engine is sized for them). */
  get rows(): number {
    return this.raw.n;
  }

  /**
   * The metrics of the session's parameters as they are now. Call it at a step boundary
   * (every shard idle, every expert in the session's memory), outside the float mode: the
   * forward pass runs inside it. A non-finite output is the error `Mixture.evaluate` gives.
   */
  measure(session: TrainingSession): ValidationMetrics {
    const s = this.state, c = s.config, K = c.outputs, n = this.raw.n, engine = session.inference!;
    const d = this.data;
    const f = session.step.fm.run(() => engine.forward(d.x, n, { t: d.t, labels: d.labels }));
    const output = f.mixture;
    if (c.task === 'regression') unstandardize(s.targetScaler!, output, n);
    const p = session.params;
    checkOutputs(output, {
      outputs: K,
      x: this.raw.x,
      inputs: c.inputs,
      inputScaler: s.inputScaler!,
      featureNames: s.featureNames,
      params: { gateParams: p.gateParams, expertParams: p.expertParams, routerBias: p.routerBias },
      probabilities: c.task === 'classification',
    });
    const m: ValidationMetrics = { loss: f.loss! };
    if (c.task === 'classification') {
      const labels = new Int32Array(n);
      for (let r = 0; r < n; r++) {
        let best = 0;
        for (let j = 1; j < K; j++) if (output[r * K + j]! > output[r * K + best]!) best = j;
        labels[r] = best;
      }
      m.accuracy = accuracyScore(this.raw.labels!, labels);
    } else {
      m.mse = output.every(Number.isFinite) ? meanSquaredError(this.raw.y!, output, { outputs: K }) : NaN;
    }
    return m;
  }
}
