/**
 * `moe reproduce jacobs1991`: the paper's Table 1 comparison (mixtures of 4 and 8 linear
 * experts against backprop nets with 6 and 12 hidden units on the Peterson & Barney
 * vowels) over many seeded runs, the runs spread over worker threads by piscina, then
 * the table, the verdicts, the Figure-2 analog and learning curves written to a folder.
 */
import { machineInfo, type MachineInfo } from './machine.js';
import { availableParallelism } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { loadProvider } from '../compute/load.js';
import type { BackendRequest } from '../compute/provider.js';
import { errorFromWire, OptionError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Activation } from '../model/mlp.js';
import { workerFile } from '../parallel/worker-path.js';
import { Rng } from '../rng.js';
import { markdownReport } from './markdown.js';
import { curvesSpec, figureSpec, renderPng, renderSvg } from './plots.js';
import { comparisons, meanCurve, specialisation, summarise, verdicts, type Specialisation, type SystemSummary, type Verdict } from './report.js';
import { vowelSplit, type RunReply, type RunResult, type RunTask, type TrainSettings } from './run.js';
import { alternativeActivation, jacobs1991Systems, type SystemSpec } from './systems.js';
import type { FigureData } from './figure.js';

/** Options of {@link reproduceJacobs1991}; every default is what the committed results used. */
export interface ReproduceOptions {
  /** Runs per system (default 25, as in the paper). */
  runs?: number;
  /** Worker threads running runs at once: a number ≥ 1 or `auto` (os.availableParallelism()). Default auto. */
  jobs?: number | 'auto';
  /** Base seed: the speaker split and every run's seed derive from it (default 1). */
  seed?: number;
  /** Epochs every run trains for, and the criterion's cap (default 300). */
  epochs?: number;
  /** Training-accuracy criterion, a fraction (default 0.9). */
  criterion?: number;
  /** Adam learning rate for every system (default 0.01). */
  lr?: number;
  /** Batch size for every system (default 32). */
  batchSize?: number;
  /** Hidden units of the backprop nets (default sigmoid: the logistic units of 1991). */
  bpActivation?: Activation;
  backend?: BackendRequest;
  /** Folder for jacobs1991.{md,json,svg,png} and jacobs1991-curves.{svg,png}; nothing is written when absent. */
  out?: string;
  /** The command line, written into the report. */
  command?: string;
  /** Called after each finished run. */
  onProgress?: (p: { done: number; total: number; result: RunResult }) => void;
}

/** Everything the command reports (the JSON file holds all of it). */
export interface Jacobs1991Report {
  paper: string;
  command: string;
  seed: number;
  runs: number;
  jobs: number;
  settings: TrainSettings & { bpActivation: Activation; runSeeds: number[] };
  data: { trainCases: number; testCases: number; trainSpeakers: number; testSpeakers: number; classes: string[] };
  systemSpecs: SystemSpec[];
  systems: Record<string, SystemSummary>;
  verdicts: Verdict[];
  specialisation: Record<string, Specialisation>;
  figure: Omit<FigureData, 'points' | 'cells'> & { shareByVowel: number[][] };
  curves: Record<string, number[]>;
  perRun: Omit<RunResult, 'curve' | 'figure'>[];
  backend: string;
  /** The machine it ran on (CPU model, cores, SMT): the wall time and nothing else depend on it. */
  machine: MachineInfo;
  seconds: number;
  files: string[];
  pngNote?: string;
  generated: string;
}

/** Defaults, also the settings of the committed results. */
export const DEFAULTS = { runs: 25, seed: 1, epochs: 300, criterion: 0.9, lr: 0.01, batchSize: 32, bpActivation: 'sigmoid' as Activation };

/** The system whose first run is drawn as Figure 2. */
export const FIGURE_SYSTEM = 'moe4';

/**
 * The command line that reproduces a report exactly, every setting spelled out
 * (defaults included, so a later change of default cannot change its meaning).
 */
export function commandLine(o: { runs: number; jobs: number | 'auto'; seed: number; epochs: number; criterion: number; lr: number; batchSize: number; bpActivation: Activation; backend?: string | undefined; out?: string | undefined; json?: boolean | undefined }): string {
  const parts = ['npx moe reproduce jacobs1991', `--runs ${o.runs}`, `--jobs ${o.jobs}`, `--seed ${o.seed}`, `--epochs ${o.epochs}`, `--criterion ${o.criterion}`, `--lr ${o.lr}`, `--batch-size ${o.batchSize}`, `--bp-activation ${o.bpActivation}`];
  if (o.backend) parts.push(`--backend ${o.backend}`);
  if (o.out !== undefined) parts.push(`--out ${o.out}`);
  if (o.json) parts.push('--json');
  return parts.join(' ');
}

/** Legend name of a system's form in the learning curves. */
function variantName(s: SystemSpec, bpActivation: Activation): string {
  if (s.loss === 'categorical') return `categorical NLL (${bpActivation} backprop)`;
  return s.variant ? `Gaussian error, ${s.variant} backprop` : `Gaussian error (${bpActivation} backprop)`;
}

/** Run seeds derived from the base seed (distinct positive 31-bit integers). */
export function runSeeds(base: number, runs: number): number[] {
  const rng = new Rng(base);
  const seen = new Set<number>();
  const out: number[] = [];
  while (out.length < runs) {
    const s = rng.nextU32() & 0x7fffffff;
    if (s === 0 || seen.has(s)) continue;
    seen.add(s);
    out.push(s);
  }
  return out;
}

/** Resolve `jobs` (a count ≥ 1 or `auto`) to a thread count. */
export function resolveJobs(jobs: number | 'auto' | undefined): number {
  if (jobs === undefined || jobs === 'auto') return availableParallelism();
  if (!Number.isInteger(jobs) || jobs < 1) throw new OptionError('jobs', `must be a positive integer or auto, got ${String(jobs)}`);
  return jobs;
}

function check(o: ReproduceOptions): void {
  const int = (v: number | undefined, name: string, min: number): void => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min)) throw new OptionError(name, `must be an integer ≥ ${min}, got ${String(v)}`);
  };
  int(o.runs, 'runs', 1);
  int(o.epochs, 'epochs', 1);
  int(o.batchSize, 'batchSize', 1);
  int(o.seed, 'seed', 0);
  if (o.criterion !== undefined && !(o.criterion > 0 && o.criterion <= 1)) throw new OptionError('criterion', `must be a fraction in (0, 1], got ${o.criterion}`);
  if (o.lr !== undefined && !(o.lr > 0 && Number.isFinite(o.lr))) throw new OptionError('lr', `must be a positive number, got ${o.lr}`);
}

/** Run the whole comparison; writes the result files when `out` is given. */
export async function reproduceJacobs1991(o: ReproduceOptions = {}): Promise<Jacobs1991Report> {
  check(o);
  const t0 = performance.now();
  const runs = o.runs ?? DEFAULTS.runs;
  const seed = o.seed ?? DEFAULTS.seed;
  const jobs = resolveJobs(o.jobs);
  const bpActivation = o.bpActivation ?? DEFAULTS.bpActivation;
  const settings: TrainSettings = {
    optimizer: 'adam',
    lr: o.lr ?? DEFAULTS.lr,
    batchSize: o.batchSize ?? DEFAULTS.batchSize,
    epochs: o.epochs ?? DEFAULTS.epochs,
    criterion: o.criterion ?? DEFAULTS.criterion,
    splitSeed: seed,
    ...(o.backend ? { backend: o.backend } : {}),
  };
  const systems = jacobs1991Systems(bpActivation);
  const seeds = runSeeds(seed, runs);
  const split = await vowelSplit(seed);
  const classes = split.train.classNames ?? [];

  // Each worker thread is one thread of compute: OpenBLAS, loaded here first, runs one
  // thread (see compute/blas.ts).
  // The provider is chosen once, here, and every worker loads exactly it. A worker that
  // probed a missing OpenBLAS itself could be terminated in the middle of that load (when
  // another run fails and the pool is destroyed), and koffi aborts the whole process when
  // it cannot throw its load error into a terminating thread.
  const provider = await loadProvider(o.backend ?? 'auto');
  const runSettings: TrainSettings = { ...settings, backend: provider.name };

  // Run-major order, so that a partial picture is balanced across systems while it runs.
  const tasks: RunTask[] = [];
  for (let r = 0; r < runs; r++) {
    for (const system of systems) tasks.push({ system, run: r, seed: seeds[r]!, settings: runSettings, figure: system.key === FIGURE_SYSTEM && r === 0 });
  }

  const pool = new Piscina({ filename: workerFile('reproduce-run'), minThreads: Math.min(jobs, tasks.length), maxThreads: jobs });
  const results: RunResult[] = [];
  try {
    let done = 0;
    await Promise.all(
      tasks.map(async (task) => {
        const reply = (await pool.run(task)) as RunReply;
        if ('error' in reply) throw errorFromWire(reply.error);
        const { result } = reply;
        results.push(result);
        o.onProgress?.({ done: ++done, total: tasks.length, result });
      }),
    );
  } finally {
    await pool.destroy();
  }
  results.sort((a, b) => a.run - b.run || systems.findIndex((s) => s.key === a.key) - systems.findIndex((s) => s.key === b.key));

  const byKey = (k: string): RunResult[] => results.filter((r) => r.key === k);
  const summaries: Record<string, SystemSummary> = {};
  const curves: Record<string, number[]> = {};
  const spec: Record<string, Specialisation> = {};
  const epochsByKey: Record<string, number[]> = {};
  for (const s of systems) {
    summaries[s.key] = summarise(s, byKey(s.key));
    curves[s.key] = meanCurve(byKey(s.key));
    epochsByKey[s.key] = byKey(s.key).map((r) => r.epochs);
    if (s.kind === 'mixture') spec[s.key] = specialisation(byKey(s.key), classes);
  }
  const figRun = results.find((r) => r.figure);
  if (!figRun?.figure || !figRun.gateShareByVowel) throw new Error(`the ${FIGURE_SYSTEM} run that draws the figure returned no figure data`);
  const fig = figRun.figure;
  const backends = [...new Set(results.map((r) => r.backend))];

  const { points: _p, cells: _c, ...figMeta } = fig;
  const report: Jacobs1991Report = {
    paper: 'Jacobs, Jordan, Nowlan & Hinton (1991), "Adaptive mixtures of local experts", Neural Computation 3(1):79–87: Table 1 and Figure 2',
    command:
      o.command ??
      commandLine({ runs, jobs: o.jobs ?? 'auto', seed, epochs: settings.epochs, criterion: settings.criterion, lr: settings.lr, batchSize: settings.batchSize, bpActivation, backend: o.backend, out: o.out }),
    seed,
    runs,
    jobs,
    settings: { ...settings, bpActivation, runSeeds: seeds },
    data: { trainCases: split.train.n, testCases: split.test.n, trainSpeakers: split.trainSpeakers.length, testSpeakers: split.testSpeakers.length, classes },
    systemSpecs: systems,
    systems: summaries,
    verdicts: comparisons(bpActivation, alternativeActivation(bpActivation)).flatMap((c) => verdicts(summaries, c, epochsByKey)),
    specialisation: spec,
    figure: { ...figMeta, shareByVowel: figRun.gateShareByVowel },
    curves,
    perRun: results.map(({ curve: _curve, figure: _figure, ...rest }) => rest),
    backend: backends.join(', '),
    machine: machineInfo(),
    seconds: 0,
    files: [],
    generated: new Date().toISOString(),
  };

  if (o.out !== undefined) {
    await mkdir(o.out, { recursive: true });
    const write = async (name: string, data: string | Uint8Array): Promise<void> => {
      await writeFileAtomic(join(o.out!, name), data);
      report.files.push(join(o.out!, name));
    };
    const figTitle = `Figure 2 analog: ${FIGURE_SYSTEM} (4 linear experts, Gaussian error), run 1, ${settings.epochs} epochs`;
    const figSvg = await renderSvg(figureSpec(fig, figTitle));
    const curveSeries = systems.map((s) => ({ key: s.key, base: s.base, variant: variantName(s, bpActivation), trainAccuracy: curves[s.key]! }));
    const curveSvg = await renderSvg(curvesSpec(curveSeries, settings.criterion, `Learning curves, mean of ${runs} run${runs === 1 ? '' : 's'} per system`));
    await write('jacobs1991.svg', figSvg);
    await write('jacobs1991-curves.svg', curveSvg);
    for (const [name, svg] of [['jacobs1991.png', figSvg], ['jacobs1991-curves.png', curveSvg]] as const) {
      const png = await renderPng(svg);
      if ('png' in png) await write(name, png.png);
      else report.pngNote = `PNG not rendered: @resvg/resvg-js did not load or render (${png.error}); the SVGs are complete.`;
    }
    report.seconds = (performance.now() - t0) / 1000;
    await write('jacobs1991.md', markdownReport(report));
    report.files.push(join(o.out, 'jacobs1991.json'));
    await writeFileAtomic(join(o.out, 'jacobs1991.json'), JSON.stringify(report, null, 1) + '\n');
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

/**
 * The one-line JSON the CLI prints: each system's summary under its key (moe4, moe8,
 * bp6, bp12, then the `_categorical` forms), with the verdicts and settings beside them.
 * Accuracies are fractions.
 */
export function jsonSummary(r: Jacobs1991Report): Record<string, unknown> {
  return {
    ...r.systems,
    paperForm: 'gaussian: linear experts, one-hot targets, the error of eq. 1.3; the _categorical keys hold softmax experts under the categorical NLL',
    criterion: `training accuracy >= ${r.settings.criterion} after an epoch, cap ${r.settings.epochs} epochs`,
    accuracyUnits: 'fraction',
    seed: r.seed,
    runs: r.runs,
    jobs: r.jobs,
    backend: r.backend,
    verdicts: r.verdicts.map((v) => ({ comparison: v.comparison, claim: v.claim, verdict: v.verdict })),
    specialisation: r.specialisation,
    seconds: Number(r.seconds.toFixed(2)),
    files: r.files,
  };
}
