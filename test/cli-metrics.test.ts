/**
 * The metrics in the CLI (scikit-learn's definitions): `moe eval` text and --json, the
 * training summary and --json for the validation and test data, `moe predict` with class
 * probabilities under the class names, --json and `--out -`. Cross-checked against the
 * library's metric functions on what `moe predict --json` returns. Needs `npm run build`.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confusionMatrix, logLoss, meanBaselineScores, precisionScore, r2Score, recallScore, rootMeanSquaredError } from '../src/metrics/index.js';
import { FIXTURES, lastJson, moe, requireBuild } from './fixtures/cli/harness.js';

const CLASSES = join(FIXTURES, 'classes.csv');
const REGRESSION = join(FIXTURES, 'regression.csv');
const NAMES = ['low', 'mid', 'high'];

let dir: string, classifier: string, regressor: string;
let trainedClassifier: Record<string, unknown>, trainedRegressor: Record<string, unknown>;
beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-metrics-'));
  classifier = join(dir, 'c.moe');
  regressor = join(dir, 'r.moe');
  const [c, r] = await Promise.all([
    moe(['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--experts', '3', '--epochs', '15', '--val-split', '0.2', '--test-data', CLASSES, '--save', classifier, '--json']),
    moe(['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--experts', '2', '--epochs', '15', '--val-split', '0.25', '--test-data', REGRESSION, '--save', regressor, '--json']),
  ]);
  expect(c.code, c.stderr).toBe(0);
  expect(r.code, r.stderr).toBe(0);
  trainedClassifier = lastJson(c.stdout);
  trainedRegressor = lastJson(r.stdout);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The CSV's true labels (as class indices) and targets. */
async function truth(file: string, column: number): Promise<string[]> {
  return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(1).map((l) => l.split(',')[column]!);
}

interface PredictJson {
  task: string;
  classes?: string[];
  targets?: string[];
  probabilities?: boolean;
  n: number;
  predictions: { label?: string; probabilities?: Record<string, number>; prediction?: Record<string, number>; gate: number[]; expert: number }[];
}

describe('moe eval', () => {
  it('classification --json: accuracy, log-loss, the full confusion matrix, per-class precision and recall, as the metric functions compute them from predict --json', async () => {
    const [e, p] = await Promise.all([moe(['eval', '--model', classifier, '--data', CLASSES, '--json']), moe(['predict', '--model', classifier, '--data', CLASSES, '--json'])]);
    expect(e.code, e.stderr).toBe(0);
    expect(p.code, p.stderr).toBe(0);
    const j = lastJson(e.stdout);
    const pj = JSON.parse(p.stdout) as PredictJson;
    expect(pj.classes).toEqual(NAMES);
    expect(j.classNames).toEqual(NAMES);
    const yTrue = (await truth(CLASSES, 2)).map((l) => NAMES.indexOf(l));
    const yPred = pj.predictions.map((r) => NAMES.indexOf(r.label!));
    const probs = pj.predictions.flatMap((r) => NAMES.map((c) => r.probabilities![c]!));
    const labels = [0, 1, 2];
    expect(j.confusionMatrix).toEqual(confusionMatrix(yTrue, yPred, { labels }));
    expect(j.precision).toEqual(precisionScore(yTrue, yPred, { labels }));
    expect(j.recall).toEqual(recallScore(yTrue, yPred, { labels }));
    // predict --json's probabilities are float32 printed shortest: the same log-loss to ~1e-7.
    expect(j.logLoss as number).toBeCloseTo(logLoss(yTrue, probs), 5);
    const cm = j.confusionMatrix as number[][];
    expect(cm.reduce((a, row, i) => a + row[i]!, 0) / 90).toBe(j.accuracy);
    // The training run's test set is this file: the same numbers.
    expect(trainedClassifier.testAccuracy).toBe(j.accuracy);
    expect(trainedClassifier.testConfusionMatrix).toEqual(j.confusionMatrix);
    expect(trainedClassifier.testLogLoss).toBe(j.logLoss);
  });

  it('classification text: the confusion matrix with class names, per-class precision, recall and support', async () => {
    const r = await moe(['eval', '--model', classifier, '--data', CLASSES]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/accuracy\s+\d+\.\d%/);
    expect(r.stdout).toMatch(/log-loss\s+\d\.\d+/);
    expect(r.stdout).toContain('confusion matrix (rows: true class, columns: predicted class)');
    expect(r.stdout).toMatch(/true \\ predicted\s+low\s+mid\s+high/);
    const rows = r.stdout.split('\n').filter((l) => /^\s+(low|mid|high)\s+\d+\s+\d+\s+\d+$/.test(l));
    expect(rows).toHaveLength(3);
    expect(rows.map((l) => l.trim().split(/\s+/).slice(1).map(Number)).flat().reduce((a, b) => a + b, 0)).toBe(90);
    expect(r.stdout).toMatch(/class\s+precision\s+recall\s+support/);
    // Support per class: the true counts of the file (32 low, 29 mid, 29 high).
    const counts = (await truth(CLASSES, 2)).reduce<Record<string, number>>((a, l) => ({ ...a, [l]: (a[l] ?? 0) + 1 }), {});
    for (const c of NAMES) expect(r.stdout).toMatch(new RegExp(`${c}\\s+\\d+\\.\\d%\\s+\\d+\\.\\d%\\s+${counts[c]}\\n`));
  });

  it('regression --json and text: R², RMSE, MAE, MSE and the training-mean baseline (the model\'s target mean)', async () => {
    const [e, p, t] = await Promise.all([
      moe(['eval', '--model', regressor, '--data', REGRESSION, '--json']),
      moe(['predict', '--model', regressor, '--data', REGRESSION, '--json']),
      moe(['eval', '--model', regressor, '--data', REGRESSION]),
    ]);
    expect(e.code, e.stderr).toBe(0);
    const j = lastJson(e.stdout);
    const pj = JSON.parse(p.stdout) as PredictJson;
    expect(pj.targets).toEqual(['y']);
    const y = (await truth(REGRESSION, 2)).map(Number);
    const yHat = pj.predictions.map((r) => r.prediction!.y!);
    expect(j.r2 as number).toBeCloseTo(r2Score(y, yHat), 5);
    expect(j.rmse as number).toBeCloseTo(rootMeanSquaredError(y, yHat), 5);
    const model = JSON.parse(await readFile(regressor, 'utf8')) as { targetScaler: { mean: number[] } };
    const b = j.baseline as { mean: number[]; r2: number; rmse: number; mae: number; mse: number };
    expect(b.mean).toEqual(model.targetScaler.mean);
    const ref = meanBaselineScores(y, model.targetScaler.mean);
    expect(b.r2).toBeCloseTo(ref.r2, 6);
    expect(b.mae).toBeCloseTo(ref.mae, 6);
    expect(j.accuracy).toBeUndefined();
    expect(t.stdout).toMatch(/r2\s+-?\d[\d.e-]* \(training-mean baseline -?[\d.e-]+\)/);
    for (const s of ['rmse ', 'mae ', 'mse ']) expect(t.stdout).toContain(s);
  });

  it('more than 20 classes: the text lists the largest confusions; --json has the whole matrix', async () => {
    // 25 classes c0..c24 along one input, 4 rows each; one epoch leaves many confused.
    const lines = ['x,z,label'];
    for (let k = 0; k < 25; k++) for (let i = 0; i < 4; i++) lines.push(`${k + i / 4},${(k * 7 + i) % 5},c${k}`);
    const csv = join(dir, 'many.csv'), model = join(dir, 'many.moe');
    await writeFile(csv, lines.join('\n') + '\n');
    const t = await moe(['train', '--data', csv, '--target', 'label', '--task', 'classification', '--experts', '2', '--epochs', '1', '--save', model]);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toContain('25 classes, too many to print');
    const [text, json] = await Promise.all([moe(['eval', '--model', model, '--data', csv]), moe(['eval', '--model', model, '--data', csv, '--json'])]);
    expect(text.stdout).toContain('confusion matrix: 25 classes, too many to print (in full with --json)');
    expect(text.stdout).toMatch(/c\d+ -> c\d+: \d+/);
    expect(text.stdout).toMatch(/precision\s+macro average \d+\.\d%, recall macro average \d+\.\d% over 25 classes/);
    const cm = lastJson(json.stdout).confusionMatrix as number[][];
    expect(cm).toHaveLength(25);
    for (const row of cm) expect(row).toHaveLength(25);
    expect(cm.flat().reduce((a, b) => a + b, 0)).toBe(100);
    expect((lastJson(json.stdout).precision as number[]).length).toBe(25);
  });
});

describe('moe train: metrics for the validation and test data', () => {
  it('classification --json', () => {
    const j = trainedClassifier;
    for (const set of ['train', 'val', 'test']) {
      expect(j[`${set}ConfusionMatrix`]).toHaveLength(3);
      expect(j[`${set}Precision`]).toHaveLength(3);
      expect(j[`${set}Recall`]).toHaveLength(3);
      expect(typeof j[`${set}LogLoss`]).toBe('number');
    }
    expect((j.valConfusionMatrix as number[][]).flat().reduce((a, b) => a + b, 0)).toBe(18);
  });

  it('regression --json and the summary text', async () => {
    const j = trainedRegressor;
    for (const set of ['train', 'val', 'test']) {
      for (const k of ['R2', 'Rmse', 'Mae', 'Mse']) expect(typeof j[`${set}${k}`], `${set}${k}`).toBe('number');
      expect(Object.keys(j[`${set}Baseline`] as object).sort()).toEqual(['mae', 'mean', 'mse', 'r2', 'rmse']);
    }
    // Baseline R² on the validation rows: predicting the training rows' mean, not theirs: ≤ 0.
    expect((j.valBaseline as { r2: number }).r2).toBeLessThanOrEqual(0);
    const r = await moe(['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--experts', '2', '--epochs', '3', '--val-split', '0.25', '--test-data', REGRESSION]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\n {2}r2 +train -?[\d.e-]+, validation -?[\d.e-]+, test -?[\d.e-]+\n/);
    expect(r.stdout).toMatch(/\n {2}rmse +train [\d.e-]+, validation [\d.e-]+, test [\d.e-]+\n/);
    expect(r.stdout).toMatch(/\n {2}mae +train /);
    expect(r.stdout).toMatch(/\n {2}baseline +predicting the training mean: validation r2 -?[\d.e-]+, rmse [\d.e-]+, mae [\d.e-]+; test r2 /);
  });

  it('classification summary text: log-loss per set, the test rows\' confusion matrix and per-class table', async () => {
    const r = await moe(['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--experts', '3', '--epochs', '3', '--val-split', '0.2', '--test-data', CLASSES]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/log-loss +train [\d.]+, validation [\d.]+, test [\d.]+/);
    expect(r.stdout).toContain('on test rows:');
    expect(r.stdout).toMatch(/true \\ predicted\s+low\s+mid\s+high/);
    expect(r.stdout).toMatch(/class\s+precision\s+recall\s+support/);
  });
});

describe('moe predict', () => {
  it('--json: the classes, and per row the label, probabilities by class name (summing to 1, the label the most probable), gate, expert', async () => {
    const r = await moe(['predict', '--model', classifier, '--data', CLASSES, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    const j = JSON.parse(r.stdout) as PredictJson & { command: string };
    expect(j.command).toBe('predict');
    expect(j.n).toBe(90);
    expect(j.probabilities).toBe(true);
    expect(j.predictions).toHaveLength(90);
    for (const row of j.predictions) {
      expect(Object.keys(row.probabilities!)).toEqual(NAMES);
      const p = NAMES.map((c) => row.probabilities![c]!);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(NAMES[p.indexOf(Math.max(...p))]).toBe(row.label);
      expect(row.gate).toHaveLength(3);
      expect(row.gate[row.expert]).toBe(Math.max(...row.gate));
    }
  });

  it('--out - is stdout (no file named -), the same CSV as no --out', async () => {
    const [dash, plain] = await Promise.all([moe(['predict', '--model', classifier, '--data', CLASSES, '--out', '-'], dir), moe(['predict', '--model', classifier, '--data', CLASSES], dir)]);
    expect(dash.code, dash.stderr).toBe(0);
    expect(dash.stdout).toBe(plain.stdout);
    expect(dash.stdout.split('\n')[0]).toBe('label,prob_low,prob_mid,prob_high,gate_0,gate_1,gate_2,expert');
    expect(existsSync(join(dir, '-'))).toBe(false);
    // --json with --out FILE writes the JSON there.
    const out = join(dir, 'p.json');
    const f = await moe(['predict', '--model', classifier, '--data', CLASSES, '--json', '--out', out]);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toBe('');
    expect((JSON.parse(await readFile(out, 'utf8')) as PredictJson).n).toBe(90);
  });

  it('a classifier trained with another loss: output_<class> columns (not probabilities)', async () => {
    const model = join(dir, 'competitive.moe');
    expect((await moe(['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--loss', 'competitive', '--experts', '2', '--epochs', '2', '--save', model])).code).toBe(0);
    const [csv, json, ev] = await Promise.all([
      moe(['predict', '--model', model, '--data', CLASSES]),
      moe(['predict', '--model', model, '--data', CLASSES, '--json']),
      moe(['eval', '--model', model, '--data', CLASSES, '--json']),
    ]);
    expect(csv.stdout.split('\n')[0]).toBe('label,output_low,output_mid,output_high,gate_0,gate_1,expert');
    const j = JSON.parse(json.stdout) as PredictJson & { predictions: { outputs?: Record<string, number> }[] };
    expect(j.probabilities).toBe(false);
    expect(Object.keys(j.predictions[0]!.outputs!)).toEqual(NAMES);
    expect(lastJson(ev.stdout).logLoss).toBeUndefined();
    expect(lastJson(ev.stdout).confusionMatrix).toHaveLength(3);
  });
});
