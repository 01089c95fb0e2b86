/**
 * SVG plots of a training run: learning curves (training and validation loss per epoch),
 * the same in the task's units (accuracy, or MSE in the target's units) where given, and
 * expert utilisation (each expert's mean gate share per epoch, stacked to 1).
 * Rendered by Vega's headless SVG renderer: no browser, no canvas, no DOM.
 */
import type { Spec } from 'vega';
import { renderSvg } from '../reproduce/plots.js';

/** Height of each panel's plotting area (px). */
const HEIGHT = 200;

/** One epoch of a run, as the plot needs it. */
export interface PlotEpoch {
  /** Epoch number in the model's life (1-based; continues across resumes). */
  epoch: number;
  /** Mean training loss of the epoch (standardised units). */
  loss: number;
  valLoss?: number;
  /** The task's metric on the training rows (accuracy fraction, or MSE in the target's units). */
  metric?: number;
  /** The same on the validation rows. */
  valMetric?: number;
  /** Mean gate probability of each expert on a fixed sample of training rows (sums to 1). */
  gateShare: number[];
}

export interface PlotOptions {
  /** Title above both panels. */
  title?: string;
  /** Panel width in px (default 560). */
  width?: number;
  /** What `metric` is (default: no metric panel). */
  metric?: 'accuracy' | 'mse';
  /** The loss axis' title (default 'mean loss (standardised)'). */
  lossLabel?: string;
}

/** The Vega specification of the two-panel plot (exported for tests and other renderers). */
export function trainingPlotSpec(history: readonly PlotEpoch[], opts: PlotOptions = {}): Spec {
  const width = opts.width ?? 560;
  const loss: { epoch: number; series: string; value: number }[] = [];
  const metric: { epoch: number; series: string; value: number }[] = [];
  const share: { epoch: number; expert: string; index: number; share: number }[] = [];
  for (const h of history) {
    if (Number.isFinite(h.loss)) loss.push({ epoch: h.epoch, series: 'train', value: h.loss });
    if (h.valLoss !== undefined && Number.isFinite(h.valLoss)) loss.push({ epoch: h.epoch, series: 'validation', value: h.valLoss });
    if (h.metric !== undefined && Number.isFinite(h.metric)) metric.push({ epoch: h.epoch, series: 'train', value: h.metric });
    if (h.valMetric !== undefined && Number.isFinite(h.valMetric)) metric.push({ epoch: h.epoch, series: 'validation', value: h.valMetric });
    h.gateShare.forEach((s, i) => share.push({ epoch: h.epoch, expert: `expert ${i}`, index: i, share: s }));
  }
  const experts = history[0]?.gateShare.length ?? 0;
  const hasVal = loss.some((l) => l.series === 'validation');
  const panel = (title: string) => ({
    type: 'group',
    title: { text: title, anchor: 'start', fontSize: 13 },
    encode: { enter: { width: { value: width }, height: { value: HEIGHT } } },
  });
  const curves = (data: string, yTitle: string, format?: string) => ({
    scales: [
      { name: 'x', type: 'linear', domain: { data, field: 'epoch' }, range: [0, width], zero: false, nice: false },
      { name: 'y', type: 'linear', domain: { data, field: 'value' }, range: [HEIGHT, 0], zero: false, nice: true },
      { name: 'color', type: 'ordinal', domain: hasVal ? ['train', 'validation'] : ['train'], range: ['#1f77b4', '#ff7f0e'] },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'epoch', tickMinStep: 1, format: 'd' },
      { orient: 'left', scale: 'y', title: yTitle, grid: true, ...(format ? { format } : {}) },
    ],
    legends: [{ stroke: 'color', orient: 'top-right', symbolType: 'stroke' }],
    marks: [
      {
        type: 'group',
        from: { facet: { name: `${data}Series`, data, groupby: 'series' } },
        marks: [
          {
            type: 'line',
            from: { data: `${data}Series` },
            encode: {
              enter: {
                x: { scale: 'x', field: 'epoch' },
                y: { scale: 'y', field: 'value' },
                stroke: { scale: 'color', field: 'series' },
                strokeWidth: { value: 2 },
              },
            },
          },
          {
            // Marks each epoch too, so a one-epoch run still shows its point.
            type: 'symbol',
            from: { data: `${data}Series` },
            encode: {
              enter: {
                x: { scale: 'x', field: 'epoch' },
                y: { scale: 'y', field: 'value' },
                fill: { scale: 'color', field: 'series' },
                size: { value: history.length > 40 ? 0 : 16 },
              },
            },
          },
        ],
      },
    ],
  });
  const metricPanel =
    opts.metric && metric.length > 0
      ? [{ ...panel(opts.metric === 'accuracy' ? 'Accuracy' : 'Mean squared error (target units)'), ...curves('metric', opts.metric === 'accuracy' ? 'accuracy' : 'MSE', opts.metric === 'accuracy' ? '%' : undefined) }]
      : [];
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    background: 'white',
    padding: 12,
    autosize: 'pad',
    ...(opts.title ? { title: { text: opts.title, anchor: 'start', fontSize: 14, limit: width + 80 } } : {}),
    layout: { columns: 1, padding: 36, bounds: 'full', align: 'each' },
    data: [
      { name: 'loss', values: loss },
      { name: 'metric', values: metric },
      {
        name: 'share',
        values: share,
        transform: [{ type: 'stack', groupby: ['epoch'], field: 'share', sort: { field: 'index' }, as: ['y0', 'y1'] }],
      },
    ],
    marks: [
      { ...panel('Learning curves'), ...curves('loss', opts.lossLabel ?? 'mean loss (standardised)') },
      ...metricPanel,
      {
        ...panel('Expert utilisation (mean gate share)'),
        scales: [
          { name: 'x', type: 'linear', domain: { data: 'share', field: 'epoch' }, range: [0, width], zero: false, nice: false },
          { name: 'y', type: 'linear', domain: [0, 1], range: [HEIGHT, 0] },
          {
            name: 'color',
            type: 'ordinal',
            domain: Array.from({ length: experts }, (_, i) => `expert ${i}`),
            range: { scheme: experts <= 10 ? 'category10' : 'category20' },
          },
        ],
        axes: [
          { orient: 'bottom', scale: 'x', title: 'epoch', tickMinStep: 1, format: 'd' },
          { orient: 'left', scale: 'y', title: 'gate share', format: '%', grid: true },
        ],
        legends: [{ fill: 'color', orient: 'right', title: 'expert' }],
        marks: [
          {
            type: 'group',
            from: { facet: { name: 'expertShare', data: 'share', groupby: 'expert' } },
            marks: [
              {
                type: 'area',
                from: { data: 'expertShare' },
                encode: {
                  enter: {
                    x: { scale: 'x', field: 'epoch' },
                    y: { scale: 'y', field: 'y0' },
                    y2: { scale: 'y', field: 'y1' },
                    fill: { scale: 'color', field: 'expert' },
                    fillOpacity: { value: 0.85 },
                    stroke: { value: 'white' },
                    strokeWidth: { value: 0.5 },
                  },
                },
              },
            ],
          },
        ],
      },
    ],
  } as Spec;
}

/** Render the learning-curve and utilisation plot as a standalone SVG document. */
export function renderTrainingPlot(history: readonly PlotEpoch[], opts: PlotOptions = {}): Promise<string> {
  return renderSvg(trainingPlotSpec(history, opts));
}
