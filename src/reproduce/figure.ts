/**
 * The data of the paper's Figure 2 for one trained mixture: every case in the F1–F2
 * plane (Hz), the region each expert wins under the gate, the gate's own boundaries and
 * each linear expert's decision lines (where its two largest outputs tie), all in
 * original units.
 */
import type { VowelSplit } from '../data/vowels.js';
import type { Mixture } from '../mixture.js';
import { affineScores, argmaxBoundaries, type Box, type TieSegment } from './geometry.js';

/** A horizontal strip of grid cells that one expert wins (cells merged along F1). */
export interface GateCell {
  f1a: number;
  f1b: number;
  f2a: number;
  f2b: number;
  /** 0-based expert index. */
  expert: number;
}

export interface FigureData {
  /** Which run of which system the figure shows. */
  key: string;
  run: number;
  seed: number;
  epochs: number;
  classNames: string[];
  experts: number;
  /** Plot window (Hz): x is F1, y is F2. */
  box: Box;
  /** Every case: formants (Hz), vowel name and side of the speaker split. */
  points: { f1: number; f2: number; vowel: string; set: 'train' | 'test' }[];
  /** Gate winner on a grid of `grid[0]` × `grid[1]` cells (F1 × F2), merged per row. */
  grid: [number, number];
  cells: GateCell[];
  /** Boundaries between the experts' gate regions (i, j are experts). */
  gateLines: TieSegment[];
  /** Decision lines of the experts in `shown` (expert index, then classes i, j tying). */
  expertLines: (TieSegment & { expert: number })[];
  /** Experts that win at least one training case under the gate (their lines are drawn). */
  shown: number[];
  /** Training cases won by each expert under the gate. */
  casesWon: number[];
}

const PAD = 0.05;

/**
 * Compute the figure from a trained mixture with linear experts and a linear gate on two
 * inputs. `grid` is the cell count along F1 and F2.
 */
export function figureData(
  m: Mixture,
  split: VowelSplit,
  meta: { key: string; run: number; seed: number; epochs: number },
  grid: [number, number] = [160, 120],
): FigureData {
  const c = m.config;
  if (c.inputs !== 2) throw new RangeError(`the figure needs 2 inputs (F1, F2), the model has ${c.inputs}`);
  const scaler = m.inputScaler;
  if (!scaler) throw new RangeError('the mixture has not been trained');
  const classNames = split.train.classNames ?? Array.from({ length: c.outputs }, (_, k) => `class ${k}`);

  const points: FigureData['points'] = [];
  for (const [set, d] of [['train', split.train], ['test', split.test]] as const) {
    for (let r = 0; r < d.n; r++) points.push({ f1: d.x[2 * r]!, f2: d.x[2 * r + 1]!, vowel: classNames[d.labels![r]!]!, set });
  }
  const range = (get: (p: (typeof points)[number]) => number): [number, number] => {
    let lo = Infinity, hi = -Infinity;
    for (const p of points) {
      lo = Math.min(lo, get(p));
      hi = Math.max(hi, get(p));
    }
    const pad = PAD * (hi - lo);
    return [Math.floor(lo - pad), Math.ceil(hi + pad)];
  };
  const box: Box = { x: range((p) => p.f1), y: range((p) => p.f2) };

  const cells = gateRegions(m, box, grid);

  const casesWon = new Array<number>(c.experts).fill(0);
  for (const w of m.predict(split.train.x).winner) casesWon[w]!++;
  const shown = casesWon.flatMap((n, i) => (n > 0 ? [i] : []));

  const gateLines = c.gate.kind === 'linear' ? argmaxBoundaries(affineScores(m.gateParameters(), c.experts, scaler), box) : [];
  const expertLines: FigureData['expertLines'] = [];
  if (c.expert.kind === 'linear') {
    for (const i of shown) {
      for (const s of argmaxBoundaries(affineScores(m.expertParameters(i), c.outputs, scaler), box)) expertLines.push({ ...s, expert: i });
    }
  }
  return { ...meta, classNames, experts: c.experts, box, points, grid, cells, gateLines, expertLines, shown, casesWon };
}

/**
 * The expert the gate weights most (the model's own `predict`, so the regions are what
 * the model does) on a `grid[0]` × `grid[1]` grid over a two-input `box`, cells merged
 * along x.
 */
export function gateRegions(m: Mixture, box: Box, grid: [number, number]): GateCell[] {
  const [nx, ny] = grid;
  const dx = (box.x[1] - box.x[0]) / nx, dy = (box.y[1] - box.y[0]) / ny;
  const xy = new Float32Array(nx * ny * 2);
  for (let r = 0; r < ny; r++) {
    for (let q = 0; q < nx; q++) {
      xy[2 * (r * nx + q)] = box.x[0] + (q + 0.5) * dx;
      xy[2 * (r * nx + q) + 1] = box.y[0] + (r + 0.5) * dy;
    }
  }
  const winner = m.predict(xy).winner;
  const cells: GateCell[] = [];
  for (let r = 0; r < ny; r++) {
    let q0 = 0;
    for (let q = 1; q <= nx; q++) {
      if (q === nx || winner[r * nx + q] !== winner[r * nx + q0]) {
        cells.push({ f1a: box.x[0] + q0 * dx, f1b: box.x[0] + q * dx, f2a: box.y[0] + r * dy, f2b: box.y[0] + (r + 1) * dy, expert: winner[r * nx + q0]! });
        q0 = q;
      }
    }
  }
  return cells;
}
