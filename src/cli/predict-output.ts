/**
 * `moe predict`'s output: CSV (one row per input row) or one JSON object, each with the
 * prediction, a classifier's class probabilities under the class names, the gate's
 * weights and the winning expert.
 */
import { outputIsProbability, type Mixture, type Prediction } from '../mixture.js';
import { csvField, csvNumber } from './common.js';

/** A float32 value as the shortest number that reads back as it (for JSON). */
const short = (v: number): number => Number(csvNumber(v));

/** Class names (or indices where the model has none) and whether the outputs are probabilities. */
function classColumns(m: Mixture): { names: string[]; probabilities: boolean } {
  const K = m.config.outputs;
  return { names: Array.from({ length: K }, (_, k) => m.classNames?.[k] ?? String(k)), probabilities: outputIsProbability(m.config) };
}

/** Regression: the target names (the model's, else --target's when it has K, else output_k). */
function targetColumns(m: Mixture, target: string[] | undefined): string[] {
  const K = m.config.outputs, targets = m.targetNames ?? target;
  return Array.from({ length: K }, (_, k) => (targets?.[k] !== undefined && targets.length === K ? targets[k]! : `output_${k}`));
}

/**
 * CSV: the prediction column(s); for a classifier `prob_<class>` per class (the
 * mixture's class probabilities; `output_<class>` where they are not: a loss other than
 * categorical, or routing whose weights sum to less than 1);
 * gate_0 … gate_E-1; expert.
 */
export function predictionCsv(m: Mixture, p: Prediction, target: string[] | undefined): string {
  const { experts: E, outputs: K, task } = m.config;
  const head: string[] = [];
  if (task === 'classification') {
    const { names, probabilities } = classColumns(m);
    head.push(m.targetNames?.[0] ?? target?.[0] ?? 'prediction', ...names.map((c) => `${probabilities ? 'prob' : 'output'}_${c}`));
  } else {
    head.push(...targetColumns(m, target));
  }
  for (let i = 0; i < E; i++) head.push(`gate_${i}`);
  head.push('expert');

  const lines: string[] = [head.map(csvField).join(',')];
  const names = task === 'classification' ? classColumns(m).names : [];
  for (let r = 0; r < p.n; r++) {
    const cells: string[] = [];
    if (task === 'classification') cells.push(csvField(names[p.labels![r]!]!));
    for (let k = 0; k < K; k++) cells.push(csvNumber(p.output[r * K + k]!));
    for (let i = 0; i < E; i++) cells.push(csvNumber(p.gate[r * E + i]!));
    cells.push(String(p.winner[r]!));
    lines.push(cells.join(','));
  }
  return lines.join('\n') + '\n';
}

/** One row of `moe predict --json`. */
export interface PredictionRow {
  /** Classification: the predicted class's name. */
  label?: string;
  /** Classification, where the output is a probability vector (categorical loss, weights summing to 1): each class's probability, by name. */
  probabilities?: Record<string, number>;
  /** Classification otherwise (other losses; switch, topk:1, expert-choice): the mixture's output per class, by name (not probabilities). */
  outputs?: Record<string, number>;
  /** Regression: the prediction per target, by name, in the target's units. */
  prediction?: Record<string, number>;
  /** The gate's combination weight per expert. */
  gate: number[];
  /** The expert with the largest combination weight. */
  expert: number;
}

/** The fields of `moe predict --json`: task, classes or targets, n and one object per row. */
export function predictionJson(m: Mixture, p: Prediction, target: string[] | undefined): Record<string, unknown> {
  const { experts: E, outputs: K, task } = m.config;
  const byName = (names: string[], r: number): Record<string, number> => Object.fromEntries(names.map((c, k) => [c, short(p.output[r * K + k]!)]));
  const rows: PredictionRow[] = [];
  const { names, probabilities } = classColumns(m);
  const targets = task === 'regression' ? targetColumns(m, target) : [];
  for (let r = 0; r < p.n; r++) {
    const gate = Array.from(p.gate.subarray(r * E, (r + 1) * E), short);
    if (task === 'classification') {
      rows.push({ label: names[p.labels![r]!]!, [probabilities ? 'probabilities' : 'outputs']: byName(names, r), gate, expert: p.winner[r]! });
    } else {
      rows.push({ prediction: byName(targets, r), gate, expert: p.winner[r]! });
    }
  }
  return {
    task,
    ...(task === 'classification' ? { classes: names, probabilities } : { targets }),
    experts: E,
    n: p.n,
    predictions: rows,
  };
}
