/**
 * What the gate learned on a two-input problem: the region of the input plane each expert
 * wins under the gate, the gate's boundaries (linear gate) and the data's rows, the
 * figure `moe reproduce` draws for the vowels, for any trained two-input mixture.
 */
import type { Dataset } from '../data/dataset.js';
import type { Mixture } from '../mixture.js';
import { gateRegions, type FigureData } from '../reproduce/figure.js';
import { affineScores, argmaxBoundaries, type Box } from '../reproduce/geometry.js';
import { figureSpec, renderSvg } from '../reproduce/plots.js';

const PAD = 0.05;
/** Rows drawn at most (evenly spaced), so a large file gives a readable figure. */
const MAX_POINTS = 2000;

/** The figure's data for `m` on `data` (two inputs, in the data's units). */
export function gateFigureData(m: Mixture, data: Dataset, grid: [number, number] = [160, 120]): FigureData {
  const c = m.config;
  if (c.inputs !== 2) throw new RangeError(`the gate plot needs 2 inputs, the model has ${c.inputs}`);
  const scaler = m.inputScaler;
  if (!scaler) throw new RangeError('the mixture has not been trained');
  const classNames = data.labels ? (m.classNames ?? data.classNames ?? Array.from({ length: c.outputs }, (_, k) => `class ${k}`)) : ['row'];
  const step = Math.max(1, Math.ceil(data.n / MAX_POINTS));
  const points: FigureData['points'] = [];
  for (let r = 0; r < data.n; r += step) {
    points.push({ f1: data.x[2 * r]!, f2: data.x[2 * r + 1]!, vowel: data.labels ? classNames[data.labels[r]!]! : 'row', set: 'train' });
  }
  const range = (j: 0 | 1): [number, number] => {
    let lo = Infinity, hi = -Infinity;
    for (let r = 0; r < data.n; r++) {
      lo = Math.min(lo, data.x[2 * r + j]!);
      hi = Math.max(hi, data.x[2 * r + j]!);
    }
    const pad = PAD * (hi - lo || Math.abs(hi) || 1);
    return [lo - pad, hi + pad];
  };
  const box: Box = { x: range(0), y: range(1) };
  const cells = gateRegions(m, box, grid);
  const casesWon = new Array<number>(c.experts).fill(0);
  for (const w of m.predict(data.x).winner) casesWon[w]!++;
  const shown = casesWon.flatMap((n, i) => (n > 0 ? [i] : []));
  const gateLines = c.gate.kind === 'linear' ? argmaxBoundaries(affineScores(m.gateParameters(), c.experts, scaler), box) : [];
  // An expert's decision lines are where two of its class scores tie: classification only.
  const expertLines: FigureData['expertLines'] = [];
  if (c.expert.kind === 'linear' && c.task === 'classification') {
    for (const i of shown) {
      for (const s of argmaxBoundaries(affineScores(m.expertParameters(i), c.outputs, scaler), box)) expertLines.push({ ...s, expert: i });
    }
  }
  return { key: 'gate', run: 1, seed: m.training.seed, epochs: m.training.epoch, classNames, experts: c.experts, box, points, grid, cells, gateLines, expertLines, shown, casesWon };
}

/** The gate plot as an SVG document. */
export function renderGatePlot(m: Mixture, data: Dataset, title: string): Promise<string> {
  const f = gateFigureData(m, data);
  const names = m.featureNames ?? data.featureNames ?? ['input 1', 'input 2'];
  return renderSvg(
    figureSpec(f, title, {
      x: names[0]!,
      y: names[1]!,
      subtitle: [
        `Shaded: the expert the gate weights most (GRID grid)${f.gateLines.length ? '. Dashed: gate boundaries' : ''}.`,
        `${f.expertLines.length ? "Coloured lines: where an expert's two largest outputs tie. " : ''}Points: the training rows${f.points.length < 2000 ? '' : ' (a sample)'}.`,
      ],
      points: m.config.task === 'classification' ? 'class' : 'data',
    }),
  );
}
