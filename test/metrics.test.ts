/**
 * The metrics of src/metrics/ against worked examples (derivations in the comments) and
 * against NumPy references computed from scikit-learn's formulas
 * (test/fixtures/metrics/reference.py → reference.json); and Mixture.evaluate / score
 * reporting exactly those functions on its own predictions, with the training-mean
 * baseline taken from the model's target standardisation.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { DataError, OptionError } from '../src/errors.js';
import {
  LOG_LOSS_EPS,
  accuracyScore,
  confusionMatrix,
  logLoss,
  meanAbsoluteError,
  meanBaselineScores,
  meanSquaredError,
  precisionScore,
  r2Score,
  recallScore,
  rootMeanSquaredError,
} from '../src/metrics/index.js';
import { Mixture } from '../src/mixture.js';
import { testRandom } from './helpers/backends.js';

const FIXTURE = join(import.meta.dirname, 'fixtures/metrics');
interface Reference {
  regression: { y: number[]; p: number[]; outputs: number; trainMean: number[]; scores: Scores; baseline: Scores };
  classification: {
    yTrue: number[]; yProb: number[]; yPred: number[]; classes: number; accuracy: number; logLoss: number; confusionMatrix: number[][];
    precision: number[]; recall: number[]; precisionMacro: number; recallMacro: number; precisionWeighted: number; recallWeighted: number;
    precisionMicro: number; recallMicro: number;
  };
}
interface Scores { r2: number; r2Raw: number[]; mse: number; rmse: number; rmseRaw: number[]; mae: number }
const REF = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as Reference;

describe('regression metrics: worked examples', () => {
  // y = [3, −0.5, 2, 7], ŷ = [2.5, 0, 2, 8] (scikit-learn's documentation example).
  // Errors 0.5, −0.5, 0, −1; squares 0.25, 0.25, 0, 1 (sum 1.5); |e| sum 2.
  // ȳ = 11.5/4 = 2.875; Σ(y − ȳ)² = 0.125² + 3.375² + 0.875² + 4.125² = 29.1875.
  const y = [3, -0.5, 2, 7], p = [2.5, 0, 2, 8];
  it('MSE 1.5/4, RMSE √0.375, MAE 2/4, R² 1 − 1.5/29.1875', () => {
    expect(meanSquaredError(y, p)).toBe(0.375);
    expect(rootMeanSquaredError(y, p)).toBe(Math.sqrt(0.375));
    expect(meanAbsoluteError(y, p)).toBe(0.5);
    expect(r2Score(y, p)).toBeCloseTo(1 - 1.5 / 29.1875, 15);
    expect(r2Score(y, p)).toBeCloseTo(0.9486081370449679, 15);
  });

  it('R² is negative for a model worse than the mean, without bound', () => {
    // y = [1, 2, 3], ŷ = [3, 2, 1]: Σ(y − ŷ)² = 4 + 0 + 4 = 8; ȳ = 2, Σ(y − ȳ)² = 2; R² = 1 − 8/2 = −3.
    expect(r2Score([1, 2, 3], [3, 2, 1])).toBe(-3);
    // ŷ = y + 100: Σ = 3·10⁴, R² = 1 − 30000/2.
    expect(r2Score([1, 2, 3], [101, 102, 103])).toBe(1 - 30000 / 2);
  });

  it('a perfect prediction scores R² = 1 and errors 0', () => {
    expect(r2Score(y, y)).toBe(1);
    expect(meanSquaredError(y, y)).toBe(0);
    expect(meanAbsoluteError(y, y)).toBe(0);
  });

  it('a constant target: R² 1 when predicted exactly, else 0 (force_finite); NaN and −∞ without', () => {
    expect(r2Score([2, 2, 2], [2, 2, 2])).toBe(1);
    expect(r2Score([2, 2, 2], [2, 2, 3])).toBe(0);
    expect(r2Score([2, 2, 2], [2, 2, 2], { forceFinite: false })).toBeNaN();
    expect(r2Score([2, 2, 2], [2, 2, 3], { forceFinite: false })).toBe(-Infinity);
  });

  it('R² of one row is not defined: NaN (as scikit-learn)', () => {
    expect(r2Score([1], [2])).toBeNaN();
  });

  it('several outputs: each output scored, then the plain mean; RMSE is the mean of the RMSEs', () => {
    // Two rows, two outputs: errors (−1, −3) in both rows. Per output MSE 1 and 9, RMSE 1 and 3:
    // RMSE = (1 + 3)/2 = 2, not √((1 + 9)/2) = √5.
    const yt = [0, 0, 0, 0], yp = [1, 3, 1, 3], o = { outputs: 2 };
    expect(rootMeanSquaredError(yt, yp, o)).toBe(2);
    expect(rootMeanSquaredError(yt, yp, { ...o, multioutput: 'raw_values' })).toEqual([1, 3]);
    expect(meanSquaredError(yt, yp, o)).toBe(5);
    expect(meanAbsoluteError(yt, yp, { ...o, multioutput: 'raw_values' })).toEqual([1, 3]);
    // Output 0 constant and mispredicted (0), output 1 y = [1, 3], ŷ = [1, 3] (1): mean 0.5.
    expect(r2Score([0, 1, 0, 3], [1, 1, 1, 3], o)).toBe(0.5);
  });

  it('the training-mean baseline: constant prediction of the given mean', () => {
    // y = [1, 2, 3, 4], mean 2 predicted: errors −1, 0, 1, 2; MSE 6/4, MAE 4/4;
    // ȳ = 2.5, Σ(y − ȳ)² = 5, R² = 1 − 6/5 = −0.2. Predicting the data's own mean 2.5 scores R² 0.
    const b = meanBaselineScores([1, 2, 3, 4], [2]);
    expect(b.mse).toBe(1.5);
    expect(b.rmse).toBe(Math.sqrt(1.5));
    expect(b.mae).toBe(1);
    expect(b.r2).toBeCloseTo(-0.2, 15);
    expect(meanBaselineScores([1, 2, 3, 4], [2.5]).r2).toBe(0);
  });

  it('NumPy reference (scikit-learn formulas), 25 rows × 2 outputs', () => {
    const { y: yt, p: yp, outputs, scores, baseline, trainMean } = REF.regression;
    const o = { outputs };
    expect(r2Score(yt, yp, o)).toBeCloseTo(scores.r2, 12);
    r2Score(yt, yp, { ...o, multioutput: 'raw_values' }).forEach((v, k) => expect(v).toBeCloseTo(scores.r2Raw[k]!, 12));
    expect(meanSquaredError(yt, yp, o)).toBeCloseTo(scores.mse, 12);
    expect(rootMeanSquaredError(yt, yp, o)).toBeCloseTo(scores.rmse, 12);
    rootMeanSquaredError(yt, yp, { ...o, multioutput: 'raw_values' }).forEach((v, k) => expect(v).toBeCloseTo(scores.rmseRaw[k]!, 12));
    expect(meanAbsoluteError(yt, yp, o)).toBeCloseTo(scores.mae, 12);
    const b = meanBaselineScores(yt, trainMean);
    expect(b.r2).toBeCloseTo(baseline.r2, 12);
    expect(b.mse).toBeCloseTo(baseline.mse, 12);
    expect(b.rmse).toBeCloseTo(baseline.rmse, 12);
    expect(b.mae).toBeCloseTo(baseline.mae, 12);
  });

  it('bad input: one typed error naming the argument', () => {
    expect(() => meanSquaredError([1, 2], [1])).toThrow(DataError);
    expect(() => meanSquaredError([1, 2], [1])).toThrow(/yPred has 1 values, yTrue 2/);
    expect(() => r2Score([], [])).toThrow(/no rows/);
    expect(() => meanAbsoluteError([1, NaN], [1, 2])).toThrow(/row 2.*yTrue.*NaN/);
    expect(() => meanAbsoluteError([1, 2, 3], [1, 2, 3], { outputs: 2 })).toThrow(/whole number of rows of 2/);
    expect(() => meanAbsoluteError([1], [1], { outputs: 0 })).toThrow(OptionError);
    expect(() => meanAbsoluteError([1], [1], { multioutput: 'variance_weighted' as never })).toThrow(/multioutput/);
  });
});

describe('classification metrics: worked examples', () => {
  // scikit-learn's confusion_matrix example: y = [2, 0, 2, 2, 0, 1], ŷ = [0, 0, 2, 2, 0, 2].
  // Pairs (true, pred): (2,0) (0,0) (2,2) (2,2) (0,0) (1,2): C = [[2,0,0],[0,0,1],[1,0,2]].
  // Correct: 4 of 6. Column sums (predicted) 3, 0, 3; row sums (true) 2, 1, 3.
  // Precision: 2/3, 0/0 → zero_division, 2/3. Recall: 2/2, 0/1, 2/3.
  const yt = [2, 0, 2, 2, 0, 1], yp = [0, 0, 2, 2, 0, 2];
  it('accuracy 4/6 and the confusion matrix, rows true, columns predicted', () => {
    expect(accuracyScore(yt, yp)).toBe(4 / 6);
    expect(confusionMatrix(yt, yp)).toEqual([[2, 0, 0], [0, 0, 1], [1, 0, 2]]);
    // Labels given: a class absent from both gets its row and column of zeros; order follows labels.
    expect(confusionMatrix(yt, yp, { labels: [0, 1, 2, 3] })).toEqual([[2, 0, 0, 0], [0, 0, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]);
    expect(confusionMatrix(yt, yp, { labels: [2, 0] })).toEqual([[2, 1], [0, 2]]);
  });

  it('precision and recall per class; zero_division 0 (default), 1 or NaN', () => {
    expect(precisionScore(yt, yp)).toEqual([2 / 3, 0, 2 / 3]);
    expect(recallScore(yt, yp)).toEqual([1, 0, 2 / 3]);
    expect(precisionScore(yt, yp, { zeroDivision: 1 })).toEqual([2 / 3, 1, 2 / 3]);
    const nan = precisionScore(yt, yp, { zeroDivision: NaN });
    expect(nan[1]).toBeNaN();
    // Recall of a class absent from yTrue (3): 0/0.
    expect(recallScore(yt, yp, { labels: [0, 1, 2, 3] })).toEqual([1, 0, 2 / 3, 0]);
  });

  it('averages: macro (mean of labels), micro (pooled counts: the accuracy), weighted (by support)', () => {
    expect(precisionScore(yt, yp, { average: 'macro' })).toBeCloseTo(4 / 9, 15);
    expect(precisionScore(yt, yp, { average: 'micro' })).toBe(4 / 6);
    expect(recallScore(yt, yp, { average: 'micro' })).toBe(4 / 6);
    // Recall weighted by support 2, 1, 3: (2·1 + 1·0 + 3·2/3)/6 = 4/6.
    expect(recallScore(yt, yp, { average: 'weighted' })).toBeCloseTo(4 / 6, 15);
    // NaN (zeroDivision NaN) is left out of the mean: (2/3 + 2/3)/2.
    expect(precisionScore(yt, yp, { average: 'macro', zeroDivision: NaN })).toBeCloseTo(2 / 3, 15);
  });

  it('log-loss: scikit-learn\'s example, uniform probabilities, a zero probability clipped to eps', () => {
    // y = [spam, ham, ham, spam] with ham = 0, spam = 1; p(spam) = .9, .1, .2, .65:
    // the true class's probabilities .9, .9, .8, .65; −(ln .9 + ln .9 + ln .8 + ln .65)/4.
    const expected = -(Math.log(0.9) * 2 + Math.log(0.8) + Math.log(0.65)) / 4;
    expect(logLoss([1, 0, 0, 1], [0.1, 0.9, 0.9, 0.1, 0.8, 0.2, 0.35, 0.65])).toBeCloseTo(expected, 15);
    expect(expected).toBeCloseTo(0.21616187468057912, 15);
    // Uniform over K = 4: ln 4 for every row.
    expect(logLoss([0, 3], new Array(8).fill(0.25))).toBeCloseTo(Math.log(4), 15);
    // The true class has probability 0: clipped to ε = 2⁻⁵², −ln ε = 52 ln 2 ≈ 36.04; a perfect row adds 0.
    expect(LOG_LOSS_EPS).toBe(2 ** -52);
    expect(logLoss([0], [0, 1])).toBeCloseTo(52 * Math.LN2, 12);
    expect(logLoss([1, 0], [0, 1, 1, 0])).toBeCloseTo(0, 15);
  });

  it('log-loss takes float32 rounding a few ulps outside [0, 1]', () => {
    // 1 + 2⁻²³ (one float32 ulp above 1) and −1e-7: clipped to 1 − ε and ε, the row then sums to 1.
    expect(logLoss([0], [1 + 2 ** -23, -1e-7])).toBeCloseTo(0, 12);
  });

  it('log-loss refuses what is not a probability vector', () => {
    expect(() => logLoss([0], [0.5, 0.6])).toThrow(/sum to 1.1/);
    expect(() => logLoss([0], [1.5, -0.5])).toThrow(/outside \[0, 1\]/);
    expect(() => logLoss([2], [0.5, 0.5])).toThrow(/label 2 has no probability column/);
    expect(() => logLoss([0, 1], [1, 0, 0])).toThrow(/not n×K/);
  });

  it('NumPy reference (scikit-learn formulas), 40 rows, 4 classes, one never true', () => {
    const c = REF.classification;
    const labels = [0, 1, 2, 3];
    expect(accuracyScore(c.yTrue, c.yPred)).toBeCloseTo(c.accuracy, 15);
    expect(logLoss(c.yTrue, c.yProb)).toBeCloseTo(c.logLoss, 12);
    expect(confusionMatrix(c.yTrue, c.yPred, { labels })).toEqual(c.confusionMatrix);
    precisionScore(c.yTrue, c.yPred, { labels }).forEach((v, k) => expect(v).toBeCloseTo(c.precision[k]!, 15));
    recallScore(c.yTrue, c.yPred, { labels }).forEach((v, k) => expect(v).toBeCloseTo(c.recall[k]!, 15));
    expect(precisionScore(c.yTrue, c.yPred, { labels, average: 'macro' })).toBeCloseTo(c.precisionMacro, 15);
    expect(recallScore(c.yTrue, c.yPred, { labels, average: 'macro' })).toBeCloseTo(c.recallMacro, 15);
    expect(precisionScore(c.yTrue, c.yPred, { labels, average: 'weighted' })).toBeCloseTo(c.precisionWeighted, 15);
    expect(recallScore(c.yTrue, c.yPred, { labels, average: 'weighted' })).toBeCloseTo(c.recallWeighted, 15);
    expect(precisionScore(c.yTrue, c.yPred, { labels, average: 'micro' })).toBeCloseTo(c.precisionMicro, 15);
    expect(recallScore(c.yTrue, c.yPred, { labels, average: 'micro' })).toBeCloseTo(c.recallMicro, 15);
  });

  it('bad input: one typed error', () => {
    expect(() => accuracyScore([0, 1], [0])).toThrow(/yPred has 1 labels, yTrue 2/);
    expect(() => accuracyScore([0.5], [0])).toThrow(/label 0.5 is not an integer/);
    expect(() => confusionMatrix([0], [0], { labels: [] })).toThrow(OptionError);
    expect(() => confusionMatrix([0], [0], { labels: [1, 1] })).toThrow(/twice/);
    expect(() => confusionMatrix([0], [0], { labels: [5] })).toThrow(/must occur in yTrue/);
    expect(() => precisionScore([0], [0], { zeroDivision: 0.5 })).toThrow(/zeroDivision/);
    expect(() => recallScore([0], [0], { average: 'binary' as never })).toThrow(/average/);
  });
});

const hasNumpy = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
describe.skipIf(!hasNumpy)('the reference file', () => {
  it('is what reference.py computes (NumPy present)', () => {
    const out = execFileSync('/usr/bin/python3', [join(FIXTURE, 'reference.py')], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual(REF);
  });
});

/** Two regimes, y = 2x (x < 0) and 3 − x, over 2 outputs (the second 10× the first). */
function regression(n: number, seed: number, shift = 0): Dataset {
  const rnd = testRandom(seed);
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const x = 4 * rnd.uniform() - 2;
    const y = (x < 0 ? 2 * x : 3 - x) + 0.1 * rnd.normal() + shift;
    xs.push([x]);
    ys.push([y, 10 * y]);
  }
  return datasetFromArrays('regression', xs, ys);
}

/** Three classes by the sign pattern of (x0, x1). */
function classes(n: number, seed: number): Dataset {
  const rnd = testRandom(seed);
  const xs: number[][] = [], ys: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = 2 * rnd.uniform() - 1, b = 2 * rnd.uniform() - 1;
    xs.push([a, b]);
    ys.push(a < 0 ? 0 : b < 0 ? 1 : 2);
  }
  return datasetFromArrays('classification', xs, ys, 3);
}

describe('Mixture.evaluate and score', () => {
  it('regression: R², RMSE, MAE, MSE of its predictions; the baseline predicts the training mean', async () => {
    const train = regression(200, 1), test = regression(100, 2);
    await using m = await Mixture.create({ task: 'regression', inputs: 1, outputs: 2, experts: 2, seed: 3, onWarning: () => {} });
    await m.fit(train, { epochs: 30 });
    const ev = m.evaluate(test);
    const out = m.predict(test.x).output, o = { outputs: 2 };
    expect(ev.r2).toBe(r2Score(test.y!, out, o));
    expect(ev.rmse).toBe(rootMeanSquaredError(test.y!, out, o));
    expect(ev.mae).toBe(meanAbsoluteError(test.y!, out, o));
    expect(ev.mse).toBe(meanSquaredError(test.y!, out, o));
    expect(ev.r2).toBeGreaterThan(0.5);
    expect(ev.accuracy).toBeUndefined();
    expect(ev.confusionMatrix).toBeUndefined();
    // The baseline's mean is the training targets' mean (the model's target scaler).
    const mean = [0, 1].map((k) => { let s = 0; for (let r = 0; r < train.n; r++) s += train.y![r * 2 + k]!; return s / train.n; });
    ev.baseline!.mean.forEach((v, k) => expect(v).toBeCloseTo(mean[k]!, 4));
    expect(ev.baseline!.mean).toEqual(m.targetScaler!.mean);
    expect(ev.baseline).toEqual({ ...meanBaselineScores(test.y!, m.targetScaler!.mean), mean: m.targetScaler!.mean });
    expect(ev.baseline!.rmse).toBeGreaterThan(ev.rmse!);
    // On the training rows the baseline is the data's own mean: R² 0 (to rounding).
    expect(m.evaluate(train).baseline!.r2).toBeCloseTo(0, 6);
    // On shifted data the training mean is wrong: the baseline's R² is below 0, and R² can be negative.
    const shifted = m.evaluate(regression(100, 2, 5));
    expect(shifted.baseline!.r2).toBeLessThan(-1);
    expect(shifted.r2).toBeLessThan(0);
    expect(m.score(test)).toBe(ev.r2);
  });

  it('classification: accuracy, log-loss, confusion matrix, per-class precision and recall; score is accuracy', async () => {
    const train = classes(300, 1), test = classes(120, 2);
    await using m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 3, experts: 3, seed: 2, onWarning: () => {} });
    await m.fit(train, { epochs: 30 });
    const ev = m.evaluate(test);
    const p = m.predict(test.x), labels = [0, 1, 2];
    expect(ev.accuracy).toBe(accuracyScore(test.labels!, p.labels!));
    expect(ev.logLoss).toBe(logLoss(test.labels!, p.output));
    expect(ev.confusionMatrix).toEqual(confusionMatrix(test.labels!, p.labels!, { labels }));
    expect(ev.precision).toEqual(precisionScore(test.labels!, p.labels!, { labels }));
    expect(ev.recall).toEqual(recallScore(test.labels!, p.labels!, { labels }));
    expect(ev.confusionMatrix!.flat().reduce((a, b) => a + b, 0)).toBe(120);
    expect(ev.accuracy).toBeGreaterThan(0.8);
    expect(ev.logLoss).toBeLessThan(Math.log(3));
    // For the categorical loss, the model's loss is the log-loss of its probabilities (float32 vs float64).
    expect(ev.logLoss).toBeCloseTo(ev.loss, 4);
    expect(ev.r2).toBeUndefined();
    expect(m.score(test)).toBe(ev.accuracy);
  });

  it('expert-choice routing: the weights sum to less than 1, so no log-loss (and no error)', async () => {
    const train = classes(90, 1);
    await using m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 3, experts: 3, routing: 'expert-choice:1', seed: 2, onWarning: () => {} });
    await m.fit(train, { epochs: 2 });
    const p = m.predict(train.x);
    // Each row goes to its best expert, weighted by its gate probability over all 3: the row sums below 1.
    expect(p.output[0]! + p.output[1]! + p.output[2]!).toBeLessThan(0.999);
    const ev = m.evaluate(train);
    expect(ev.logLoss).toBeUndefined();
    expect(ev.accuracy).toBe(accuracyScore(train.labels!, p.labels!));
    // topk:2 renormalises over the chosen: probabilities again.
    await using t = await Mixture.create({ task: 'classification', inputs: 2, outputs: 3, experts: 3, routing: 'topk:2', seed: 2, onWarning: () => {} });
    await t.fit(train, { epochs: 2 });
    expect(t.evaluate(train).logLoss).toBe(logLoss(train.labels!, t.predict(train.x).output));
  });

  it('a diverged model (non-finite outputs): NaN scores, not an error about yPred', async () => {
    const train = regression(50, 1);
    await using m = await Mixture.create({ task: 'regression', inputs: 1, outputs: 2, experts: 2, seed: 3, onWarning: () => {} });
    await m.fit(train, { epochs: 1 });
    m.expertParameters(0).fill(NaN);
    let ev, err: unknown;
    try {
      ev = m.evaluate(train);
    } catch (e) {
      err = e;
    }
    // Whatever else may refuse non-finite outputs, it is not a metric blaming the caller's yPred.
    if (err !== undefined) expect(String(err)).not.toMatch(/yPred|yProb/);
    else {
      expect(ev!.r2).toBeNaN();
      expect(ev!.rmse).toBeNaN();
      expect(ev!.baseline!.r2).toBeCloseTo(0, 6);
    }
  });

  it('a classifier without the categorical loss has no log-loss (its output is not a probability vector)', async () => {
    const train = classes(90, 1);
    await using m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 3, experts: 2, loss: 'competitive', seed: 2, onWarning: () => {} });
    await m.fit(train, { epochs: 2 });
    const ev = m.evaluate(train);
    expect(ev.logLoss).toBeUndefined();
    expect(ev.confusionMatrix).toHaveLength(3);
    expect(ev.precision).toHaveLength(3);
  });
});
