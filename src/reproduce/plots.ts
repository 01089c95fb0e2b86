/**
 * The figures as Vega specs (the plotting library the project already depends on),
 * rendered headless to SVG by Vega itself and to PNG by resvg (a Rust SVG renderer
 * shipped as prebuilt npm binaries: no browser, no canvas build).
 */
import type * as vega from 'vega';
import type { FigureData } from './figure.js';

/** Expert colours (Tableau 10): region fills at low opacity, decision lines solid. */
const EXPERT_COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#b07aa1', '#76b7b2', '#edc948', '#9c755f', '#ff9da7', '#bab0ac'];
/** Vowels: the front pair in blues, the back pair in reds, so the paper's two pairs read at a glance. */
const VOWEL_COLORS = ['#08306b', '#2b8cbe', '#7f0000', '#d7301f'];
const VOWEL_SHAPES = ['circle', 'diamond', 'square', 'triangle-up'];

const expertName = (i: number): string => `expert ${i + 1}`;

/** Axis titles, subtitle and point legend of {@link figureSpec} (default: the vowels' F1, F2 in Hz). */
export interface FigureLabels {
  x: string;
  y: string;
  subtitle: string[];
  /** Legend title of the points (the class). */
  points: string;
}

const VOWEL_LABELS: FigureLabels = {
  x: 'F1 (Hz)',
  y: 'F2 (Hz)',
  subtitle: [
    'Shaded: the expert the gate weights most (GRID grid). Dashed: gate boundaries.',
    "Coloured lines: where an expert's two largest outputs tie. Filled: training speakers; hollow: test.",
  ],
  points: 'vowel',
};

/** Vega spec of the Figure-2 analog (`labels` for other two-input data than the vowels' formants). */
export function figureSpec(f: FigureData, title: string, labels: FigureLabels = VOWEL_LABELS): vega.Spec {
  const experts = Array.from({ length: f.experts }, (_, i) => expertName(i));
  const many = f.classNames.length > VOWEL_COLORS.length;
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: 620,
    height: 500,
    padding: 10,
    background: 'white',
    title: {
      text: title,
      subtitle: labels.subtitle.map((s) => s.replace('GRID', `${f.grid[0]}×${f.grid[1]}`)),
      anchor: 'start',
      fontSize: 14,
      subtitleFontSize: 11,
    },
    data: [
      { name: 'cells', values: f.cells.map((c) => ({ ...c, name: expertName(c.expert) })) },
      { name: 'gateLines', values: f.gateLines },
      {
        name: 'expertLines',
        values: f.expertLines.map((s) => ({ ...s, name: expertName(s.expert), label: `E${s.expert + 1}: ${f.classNames[s.i]}|${f.classNames[s.j]}` })),
      },
      { name: 'points', values: f.points },
    ],
    scales: [
      { name: 'x', type: 'linear', domain: f.box.x, range: 'width', zero: false, nice: false },
      { name: 'y', type: 'linear', domain: f.box.y, range: 'height', zero: false, nice: false },
      { name: 'expert', type: 'ordinal', domain: experts, range: EXPERT_COLORS.slice(0, Math.max(1, f.experts)) },
      { name: 'vowelColor', type: 'ordinal', domain: f.classNames, range: many ? { scheme: 'tableau20' } : VOWEL_COLORS },
      { name: 'vowelShape', type: 'ordinal', domain: f.classNames, range: VOWEL_SHAPES },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: labels.x, grid: false },
      { orient: 'left', scale: 'y', title: labels.y, grid: false },
    ],
    legends: [
      { stroke: 'vowelColor', fill: 'vowelColor', shape: 'vowelShape', title: labels.points, orient: 'right' },
      {
        fill: 'expert',
        title: 'gate region',
        symbolType: 'square',
        orient: 'right',
        values: f.cells.length > 0 ? [...new Set(f.cells.map((c) => c.expert))].sort((a, b) => a - b).map(expertName) : [],
        encode: { symbols: { update: { fillOpacity: { value: 0.35 }, strokeWidth: { value: 0 } } } },
      },
    ],
    marks: [
      {
        type: 'rect',
        name: 'gate-regions',
        from: { data: 'cells' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'f1a' },
            x2: { scale: 'x', field: 'f1b' },
            y: { scale: 'y', field: 'f2b' },
            y2: { scale: 'y', field: 'f2a' },
            fill: { scale: 'expert', field: 'name' },
            fillOpacity: { value: 0.2 },
          },
        },
      },
      {
        type: 'rule',
        name: 'gate-lines',
        from: { data: 'gateLines' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'x1' },
            y: { scale: 'y', field: 'y1' },
            x2: { scale: 'x', field: 'x2' },
            y2: { scale: 'y', field: 'y2' },
            stroke: { value: '#222222' },
            strokeWidth: { value: 1.5 },
            strokeDash: { value: [6, 4] },
          },
        },
      },
      {
        type: 'rule',
        name: 'expert-lines',
        from: { data: 'expertLines' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'x1' },
            y: { scale: 'y', field: 'y1' },
            x2: { scale: 'x', field: 'x2' },
            y2: { scale: 'y', field: 'y2' },
            stroke: { scale: 'expert', field: 'name' },
            strokeWidth: { value: 2.5 },
          },
        },
      },
      {
        type: 'symbol',
        name: 'cases',
        from: { data: 'points' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'f1' },
            y: { scale: 'y', field: 'f2' },
            shape: { scale: 'vowelShape', field: 'vowel' },
            stroke: { scale: 'vowelColor', field: 'vowel' },
            fill: [{ test: "datum.set === 'test'", value: 'white' }, { scale: 'vowelColor', field: 'vowel' }],
            fillOpacity: { value: 0.75 },
            size: { value: 26 },
            strokeWidth: { value: 1 },
          },
        },
      },
      {
        type: 'text',
        name: 'expert-line-label-halos',
        from: { data: 'expertLines' },
        encode: {
          enter: {
            x: { signal: "scale('x', 0.5 * (datum.x1 + datum.x2))" },
            y: { signal: "scale('y', 0.5 * (datum.y1 + datum.y2))" },
            text: { field: 'label' },
            stroke: { value: 'white' },
            strokeWidth: { value: 3 },
            strokeOpacity: { value: 0.9 },
            fontSize: { value: 11 },
            fontWeight: { value: 'bold' },
            align: { value: 'center' },
            baseline: { value: 'bottom' },
            dy: { value: -3 },
          },
        },
      },
      {
        type: 'text',
        name: 'expert-line-labels',
        from: { data: 'expertLines' },
        encode: {
          enter: {
            x: { signal: "scale('x', 0.5 * (datum.x1 + datum.x2))" },
            y: { signal: "scale('y', 0.5 * (datum.y1 + datum.y2))" },
            text: { field: 'label' },
            fill: { scale: 'expert', field: 'name' },
            fontSize: { value: 11 },
            fontWeight: { value: 'bold' },
            align: { value: 'center' },
            baseline: { value: 'bottom' },
            dy: { value: -3 },
          },
        },
      },
    ],
  };
}

/** One learning curve: mean training accuracy (fraction) per epoch of one system. */
export interface CurveSeries {
  key: string;
  /** The paper's row it stands for (the line colour). */
  base: string;
  /** Form or variant (the line dash). */
  variant: string;
  trainAccuracy: readonly number[];
}

/** Vega spec of the learning curves, with the criterion as a horizontal rule. */
export function curvesSpec(series: readonly CurveSeries[], criterion: number, title: string): vega.Spec {
  const rows = series.flatMap((s) => s.trainAccuracy.map((a, e) => ({ key: s.key, base: s.base, variant: s.variant, epoch: e + 1, accuracy: 100 * a })));
  const epochs = Math.max(2, ...series.map((s) => s.trainAccuracy.length));
  const lowest = Math.min(100 * criterion, ...rows.map((r) => r.accuracy));
  const bases = [...new Set(series.map((s) => s.base))];
  const variants = [...new Set(series.map((s) => s.variant))];
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: 620,
    height: 380,
    padding: 10,
    background: 'white',
    title: {
      text: title,
      subtitle: `Mean over runs of the training accuracy after each epoch; dotted: the criterion (${(100 * criterion).toFixed(0)}%).`,
      anchor: 'start',
      fontSize: 14,
      subtitleFontSize: 11,
    },
    data: [
      { name: 'curves', values: rows },
      { name: 'criterion', values: [{ accuracy: 100 * criterion }] },
    ],
    scales: [
      { name: 'x', type: 'log', domain: [1, epochs], range: 'width' },
      { name: 'y', type: 'linear', domain: [Math.max(0, Math.floor(lowest / 5) * 5), 100], range: 'height', zero: false },
      { name: 'color', type: 'ordinal', domain: bases, range: EXPERT_COLORS },
      { name: 'dash', type: 'ordinal', domain: variants, range: [[1, 0], [6, 3], [2, 2], [8, 2, 2, 2]] },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'epoch (log scale)', grid: true, gridOpacity: 0.3 },
      { orient: 'left', scale: 'y', title: 'training accuracy (%)', grid: true, gridOpacity: 0.3 },
    ],
    legends: [
      { stroke: 'color', title: 'system', orient: 'right', symbolType: 'stroke' },
      { strokeDash: 'dash', title: 'form', orient: 'right', symbolType: 'stroke', symbolSize: 400, labelLimit: 320 },
    ],
    marks: [
      {
        type: 'rule',
        name: 'criterion-line',
        from: { data: 'criterion' },
        encode: {
          enter: {
            x: { value: 0 },
            x2: { signal: 'width' },
            y: { scale: 'y', field: 'accuracy' },
            stroke: { value: '#555555' },
            strokeDash: { value: [2, 3] },
          },
        },
      },
      {
        type: 'group',
        name: 'curve-groups',
        from: { facet: { name: 'series', data: 'curves', groupby: 'key' } },
        marks: [
          {
            type: 'line',
            name: 'curve',
            from: { data: 'series' },
            encode: {
              enter: {
                x: { scale: 'x', field: 'epoch' },
                y: { scale: 'y', field: 'accuracy' },
                stroke: { scale: 'color', field: 'base' },
                strokeDash: { scale: 'dash', field: 'variant' },
                strokeWidth: { value: 1.8 },
              },
            },
          },
        ],
      },
    ],
  };
}

/** Render a Vega spec to an SVG document, headless. */
export async function renderSvg(spec: vega.Spec): Promise<string> {
  // Loaded on demand: importing Vega costs ~0.15 s of CPU that every moe command would pay.
  const v = await import('vega');
  const view = new v.View(v.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * Render SVG text to PNG with @resvg/resvg-js (at `zoom`× its size), or explain why not:
 * the package is a native addon whose prebuilt binary may be missing on a platform.
 */
export async function renderPng(svg: string, zoom = 2): Promise<{ png: Buffer } | { error: string }> {
  try {
    const { Resvg } = await import('@resvg/resvg-js');
    const r = new Resvg(svg, { fitTo: { mode: 'zoom', value: zoom }, background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } });
    return { png: r.render().asPng() };
  } catch (err) {
    return { error: (err as Error).message.split('\n')[0] ?? String(err) };
  }
}
