/**
 * The metrics of an {@link Evaluation} as the CLI shows them: the fields of `--json`
 * (confusion matrix always in full) and the text of `moe eval` and the training summary
 * (the confusion matrix in full up to {@link MAX_PRINTED_CLASSES} classes, its largest
 * confusions beyond).
 */
import type { Evaluation } from '../mixture.js';
import { fmt, pct } from './common.js';

/** Up to this many classes the text prints the whole confusion matrix and every class's precision and recall. */
export const MAX_PRINTED_CLASSES = 20;

/** Off-diagonal cells listed when the confusion matrix is too large to print. */
const TOP_CONFUSIONS = 10;

/** The task metrics of an evaluation as JSON fields, each key prefixed (`val` → `valR2`); no prefix: the plain names. */
export function metricsJson(ev: Evaluation, prefix = ''): Record<string, unknown> {
  const key = (name: string): string => (prefix === '' ? name : prefix + name[0]!.toUpperCase() + name.slice(1));
  const out: Record<string, unknown> = {};
  const fields: (keyof Evaluation)[] = ['accuracy', 'logLoss', 'confusionMatrix', 'precision', 'recall', 'r2', 'mse', 'rmse', 'mae', 'baseline'];
  for (const f of fields) if (ev[f] !== undefined) out[key(f)] = ev[f];
  return out;
}

/** Cut a name to `w` characters (an ellipsis marks the cut). */
function cut(s: string, w: number): string {
  return s.length <= w ? s : `${s.slice(0, w - 1)}…`;
}

/**
 * The confusion matrix as text: a header of predicted classes and one row per true class,
 * or, beyond {@link MAX_PRINTED_CLASSES} classes, the largest off-diagonal counts.
 */
export function confusionLines(cm: number[][], names: readonly string[], indent = '  '): string[] {
  const K = cm.length;
  if (K > MAX_PRINTED_CLASSES) {
    const cells: { i: number; j: number; c: number }[] = [];
    cm.forEach((row, i) => row.forEach((c, j) => i !== j && c > 0 && cells.push({ i, j, c })));
    cells.sort((a, b) => b.c - a.c || a.i - b.i || a.j - b.j);
    const top = cells.slice(0, TOP_CONFUSIONS);
    return [
      `${indent}confusion matrix: ${K} classes, too many to print (in full with --json); ${top.length === 0 ? 'no row is misclassified' : `the largest confusions, true -> predicted:`}`,
      ...top.map(({ i, j, c }) => `${indent}  ${cut(names[i]!, 24)} -> ${cut(names[j]!, 24)}: ${c}`),
    ];
  }
  const labels = names.map((s) => cut(s, 12));
  const w = Math.max(...labels.map((s) => s.length), ...cm.flat().map((c) => String(c).length));
  const first = Math.max(...labels.map((s) => s.length), 'true \\ predicted'.length);
  const line = (head: string, cells: string[]): string => `${indent}  ${head.padEnd(first)}  ${cells.map((c) => c.padStart(w)).join('  ')}`;
  return [
    `${indent}confusion matrix (rows: true class, columns: predicted class)`,
    line('true \\ predicted', labels),
    ...cm.map((row, i) => line(labels[i]!, row.map(String))),
  ];
}

/** Per-class precision, recall and support (true rows) as a table; beyond {@link MAX_PRINTED_CLASSES} classes their macro averages. */
export function perClassLines(ev: Evaluation, names: readonly string[], indent = '  '): string[] {
  const cm = ev.confusionMatrix!, p = ev.precision!, r = ev.recall!;
  const support = cm.map((row) => row.reduce((a, b) => a + b, 0));
  const K = cm.length;
  if (K > MAX_PRINTED_CLASSES) {
    const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
    return [`${indent}precision  macro average ${pct(mean(p))}, recall macro average ${pct(mean(r))} over ${K} classes (per class with --json)`];
  }
  const labels = names.map((s) => cut(s, 24));
  const w = Math.max('class'.length, ...labels.map((s) => s.length));
  return [
    `${indent}  ${'class'.padEnd(w)}  precision  recall  support`,
    ...labels.map((l, k) => `${indent}  ${l.padEnd(w)}  ${pct(p[k]).padStart(9)}  ${pct(r[k]).padStart(6)}  ${String(support[k]).padStart(7)}`),
  ];
}

/** The class names of a model, or the indices where it has none. */
export function classLabels(names: readonly string[] | undefined, K: number): string[] {
  return Array.from({ length: K }, (_, k) => names?.[k] ?? String(k));
}

/** The metric lines of `moe eval` (after the loss line). */
export function evaluationLines(ev: Evaluation, classNames: readonly string[] | undefined): string[] {
  if (ev.accuracy !== undefined) {
    const names = classLabels(classNames, ev.confusionMatrix!.length);
    return [
      `  accuracy   ${pct(ev.accuracy)}`,
      ...(ev.logLoss !== undefined ? [`  log-loss   ${fmt(ev.logLoss)}`] : []),
      ...confusionLines(ev.confusionMatrix!, names),
      ...perClassLines(ev, names),
    ];
  }
  const b = ev.baseline!;
  return [
    `  r2         ${fmt(ev.r2)} (training-mean baseline ${fmt(b.r2)})`,
    `  rmse       ${fmt(ev.rmse)} (baseline ${fmt(b.rmse)})`,
    `  mae        ${fmt(ev.mae)} (baseline ${fmt(b.mae)})`,
    `  mse        ${fmt(ev.mse)} (baseline ${fmt(b.mse)})`,
  ];
}

/** A named evaluation of the training summary (train, validation, test). */
export interface NamedEvaluation {
  name: string;
  ev: Evaluation;
}

/**
 * The training summary's metric lines beyond loss, accuracy and MSE: log-loss, or R²,
 * RMSE, MAE and the training-mean baseline's, for each evaluated set; for a classifier
 * the confusion matrix and per-class precision and recall of the last set (test, else
 * validation, else training rows).
 */
export function summaryLines(sets: NamedEvaluation[], classNames: readonly string[] | undefined): string[] {
  const row = (label: string, f: (ev: Evaluation) => string, only = sets): string => `  ${label.padEnd(10)} ${only.map((s) => `${s.name} ${f(s.ev)}`).join(', ')}`;
  const last = sets.at(-1)!;
  if (last.ev.accuracy !== undefined) {
    const names = classLabels(classNames, last.ev.confusionMatrix!.length);
    return [
      ...(last.ev.logLoss !== undefined ? [row('log-loss', (ev) => fmt(ev.logLoss))] : []),
      `  on ${last.name} rows:`,
      ...confusionLines(last.ev.confusionMatrix!, names, '  '),
      ...perClassLines(last.ev, names, '  '),
    ];
  }
  const held = sets.filter((s) => s.name !== 'train');
  return [
    row('r2', (ev) => fmt(ev.r2)),
    row('rmse', (ev) => fmt(ev.rmse)),
    row('mae', (ev) => fmt(ev.mae)),
    `  baseline   predicting the training mean: ${(held.length > 0 ? held : sets).map((s) => `${s.name} r2 ${fmt(s.ev.baseline!.r2)}, rmse ${fmt(s.ev.baseline!.rmse)}, mae ${fmt(s.ev.baseline!.mae)}`).join('; ')}`,
  ];
}
