/**
 * The sparse-routing benchmark behind `moe bench sparse`: one mixture shape (16 MLP experts
 * 256→512→256, tanh, batch 512, Adam, random regression data) trained with the parallel
 * trainer at workers = cores under every routing — the dense softmax, topk:1, topk:2,
 * topk:4, switch and expert-choice:1 (the Gaussian NLL; the cooperative error for the
 * one-expert rules, which the NLL gives no gate signal) — measured interleaved like the peer
 * benchmark, samples/s of full training steps and the speed-up over dense. The one-expert
 * rules are compared with dense on their own loss too (`dense` trained with the cooperative
 * error), as well as with dense on the NLL.
 *
 * Where each routing's step goes (as `bench peers` measures dense, bench/breakdown.ts): the
 * fixed part, which does not shrink with fewer entries (Adam over every expert's
 * parameters, the main thread's gate, routing and loss, synchronisation), and the per-entry
 * part (the experts' products, kernels and loops over their routed rows); from them the
 * measured Amdahl bound of each routing: dense's step ÷ (the routing's fixed part + dense's
 * per-entry part × the routing's entries ÷ dense's), the speed-up it would reach were its
 * per-entry part exactly its share of dense's.
 *
 * And predict: the public `Mixture.predict` on 4096 rows under each routing, samples/s and
 * the speed-up over dense.
 *
 * And the cost of a skewed load: topk:2 with a FIXED gate (its parameters written back
 * before every step; no balancing) on inputs whose first E features name each row's two
 * experts, so that the choice is exact: "skewed", 90% of the rows take expert 0 as one of
 * their two and the rest spread evenly; "balanced", every expert takes the same number of
 * rows. Step times of the balanced batch, and of the skewed one with and without splitting a
 * hot expert's blocks among the workers (`split`).
 */
import { availableParallelism } from 'node:os';
import { type BackendRequest, type Dataset, OptionError, Rng } from '../src/index.js';
import { checkWorkerCount, CTRL, resolveRouting, type TrainingSession } from '../src/internal.js';
import {
  BENCH_SIZES,
  benchHeader,
  blasThreadsOf,
  checkChoices,
  checkMillis,
  checkNonNegativeInt,
  checkPositiveInt,
  endLoad,
  formatJson,
  headerLines,
  markdownTable,
  num,
  pct,
  ratio,
  runInterleaved,
  SIZE_SPECS,
  startLoad,
  summariseRounds,
  type BenchHeader,
  type BenchSize,
  type Contender,
  type LoadAverage,
  type Window,
  type WindowPlan,
} from './harness.js';
import { breakdownInProcess, breakdownWorkers, type StepBreakdown } from './breakdown.js';
import { BATCHES, benchProblem, sessionWindow, type BenchProblem } from './problem.js';
import { timeWindow } from './harness.js';

/** The routings measured by default, as `--routing` spells them. */
export const SPARSE_ROUTINGS = ['dense', 'topk:1', 'topk:2', 'topk:4', 'switch', 'expert-choice:1'] as const;

/** Rows of the predict measurement. */
export const PREDICT_ROWS = 4096;

/** Share of the skewed batch's rows that take expert 0 as one of their two experts. */
export const SKEW_SHARE = 0.9;

/** Options of {@link runSparseBenchmark}. */
export interface SparseOptions {
  /** Expert shape and batch: a benchmark size (default medium: MLP 256→512→256, batch 512). */
  size?: BenchSize;
  /** Rows per step (default the size's). */
  batch?: number;
  /** Experts E (default 16). */
  experts?: number;
  /** Worker threads (default min(cores, experts)). */
  workers?: number;
  /** Routings, as `Mixture.create` takes them (default {@link SPARSE_ROUTINGS}). */
  routings?: string[];
  /** Measure the skew case (default true; needs inputs ≥ experts ≥ 3). */
  skew?: boolean;
  /** Measure where each routing's step goes and its Amdahl bound (default true). */
  breakdown?: boolean;
  /** Rows of the predict measurement (default 4096; 0: do not measure predict). */
  predictRows?: number;
  /** Interleaved rounds (default 3). */
  rounds?: number;
  /** Exactly this many timed steps per measurement. */
  steps?: number;
  /** Timed budget per measurement, ms (default 3000). */
  timeMs?: number;
  /** At least this many timed steps per measurement with `timeMs` (default 3). */
  minSteps?: number;
  /** Untimed steps before each measurement (default 2). */
  warmupSteps?: number;
  /** Compute provider (default auto). */
  backend?: BackendRequest;
  /** CBLAS library for `blas`. */
  blasLibrary?: string;
  /** A stable name for this machine. */
  machine?: string;
  /** Seed of data and initialisation (default 1). */
  seed?: number;
  /** One line per measurement as it finishes. */
  onProgress?: (message: string) => void;
}

/** One routing's measurement. */
export interface SparseRow {
  /** The routing as given (`dense`, `topk:2`, …). */
  routing: string;
  /** Experts per row (topk, switch: 1; dense: E); for expert-choice the capacity factor C. */
  k: number;
  /** The error function it trained with. */
  loss: 'gaussian' | 'cooperative';
  /** Training rows per second of full steps, the median round. */
  samplesPerSecond: number;
  /** samples/s ÷ dense's (Gaussian NLL) in the same run (absent without a dense row). */
  speedupOverDense?: number;
  /** samples/s ÷ dense's on the same loss (the cooperative rows: ÷ dense trained with the cooperative error). */
  speedupOverDenseSameLoss?: number;
  /** Where the step goes with the workers (absent with `breakdown: false`). */
  breakdown?: SparseBreakdown;
  /** The measured Amdahl bound of the speed-up over dense on the same loss (see the module comment). */
  amdahlBound?: number;
  /** speedupOverDenseSameLoss ÷ amdahlBound: how much of what the fixed part allows was reached. */
  fractionOfBound?: number;
  /** Mean step time of the median round, µs. */
  stepMicros: number;
  /** Process CPU time ÷ wall time, the median round. */
  cpuPerWall: number;
  /** Some round stayed within the cores. */
  valid: boolean;
  /** Rounds measured. */
  rounds: number;
  /** samples/s of every round. */
  roundSamplesPerSecond: number[];
  /** Timed steps over all rounds. */
  steps: number;
  /** Other processes' load was high when one of its rounds ended. */
  busy: boolean;
}

/** A routing's step in its fixed and per-entry parts, µs per step (workers; the timers on). */
export interface SparseBreakdown {
  /** Mean step with the timers on. */
  stepMicros: number;
  /** Adam (and any optimiser kernel) over every expert's parameters: every expert steps every step. */
  optimiserMicros: number;
  /** The main thread's own work: gather, gate forward and backward, routing, loss, the gate's optimiser. */
  gateMicros: number;
  /** Synchronisation of the phases. */
  syncMicros: number;
  /** optimiser + gate + sync: what fewer entries do not shrink. */
  fixedMicros: number;
  /** The experts' products, element-wise kernels and loops over their routed rows. */
  perEntryMicros: number;
  /** Entries (row, expert) per row: k, E for dense, C for expert-choice. */
  entriesPerRow: number;
  /** The parts as the peers benchmark reports them (workers trainer, apportioned). */
  parts: StepBreakdown;
}

/** The predict measurement: the public `Mixture.predict` on `rows` rows under each routing. */
export interface SparsePredict {
  /** Rows per predict call. */
  rows: number;
  /** One per routing (of the Gaussian-NLL rows and the one-expert rules, as trained). */
  results: { routing: string; loss: 'gaussian' | 'cooperative'; samplesPerSecond: number; speedupOverDense?: number }[];
}

/** The skew case's step times and loads. */
export interface SparseSkew {
  /** topk:2, a fixed gate, every expert the same number of rows, with splitting: µs per step. */
  balancedMicros: number;
  /** topk:2, the same fixed gate, 90% of rows to expert 0, with splitting: µs per step. */
  withSplittingMicros: number;
  /** The same skewed batch without splitting (each block with its expert's owner): µs per step. */
  withoutSplittingMicros: number;
  /** withSplitting ÷ balanced. */
  withSplittingRatio: number;
  /** withoutSplitting ÷ balanced. */
  withoutSplittingRatio: number;
  /** Share of a skewed batch's rows whose two experts include expert 0, as the router chose them. */
  expert0Share: number;
  /** Rows each worker computed in one step, as the router assigned them, per case. */
  shardRows: { balanced: number[]; withSplitting: number[]; withoutSplitting: number[] };
}

/** What {@link runSparseBenchmark} returns. */
export interface SparseReport extends BenchHeader {
  /** Compute provider. */
  backend: string;
  /** Provider detail. */
  backendDetail: string;
  /** OpenBLAS threads per compute thread. */
  blasThreads: number;
  /** Experts E. */
  experts: number;
  /** Worker threads. */
  workers: number;
  /** Rows per step. */
  batch: number;
  /** Input width D. */
  inputs: number;
  /** Output width K. */
  outputs: number;
  /** Expert net as the CLI spells it (hidden units tanh). */
  expert: string;
  /** Interleaved rounds. */
  rounds: number;
  /** Timed budget per measurement, ms (absent with `steps`). */
  timeMs?: number;
  /** Exact timed steps per measurement (absent with `timeMs`). */
  steps?: number;
  /** The 1-minute load average at the start and the end. */
  loadAverage: LoadAverage;
  /** One row per routing (and `dense` on the cooperative error, where a one-expert rule is measured). */
  rows: SparseRow[];
  /** Predict's throughput per routing (absent with `predictRows: 0`). */
  predict?: SparsePredict;
  /** The skew case (absent where not measured; see `skipped`). */
  skew?: SparseSkew;
  /** What was not measured, and why. */
  skipped: string[];
}

/** The error function a routing trains with here: cooperative for the one-expert rules, else the NLL. */
export function sparseLoss(routing: string, experts: number): 'gaussian' | 'cooperative' {
  const r = resolveRouting({ routing }, experts, 'cooperative');
  return r.kind === 'switch' || (r.kind === 'topk' && r.k === 1) ? 'cooperative' : 'gaussian';
}

/**
 * Each row's two experts in the skew case. `skewed`: row r with r mod 10 ≠ 0 (the h-th
 * such row) takes expert 0 and 1 + (h mod (E−1)); the j-th other row (r = 10j) takes
 * 1 + (j mod (E−1)) and 1 + ((j + ⌊(E−1)/2⌋) mod (E−1)): 90% of the rows name expert 0,
 * the rest of the entries spread evenly over the others. `balanced`: r mod E and
 * (r + ⌊E/2⌋) mod E, every expert the same number of rows.
 */
export function skewPairs(kind: 'skewed' | 'balanced', rows: number, experts: number): [number, number][] {
  const E = experts;
  if (E < 3) throw new OptionError('experts', `the skew case needs at least 3 experts, got ${E}`);
  return Array.from({ length: rows }, (_, r): [number, number] => {
    if (kind === 'balanced') return [r % E, (r + (E >> 1)) % E];
    const j = Math.floor(r / 10);
    if (r % 10 !== 0) return [0, 1 + ((r - j - 1) % (E - 1))];
    return [1 + (j % (E - 1)), 1 + ((j + ((E - 1) >> 1)) % (E - 1))];
  });
}

/**
 * Regression data whose first E inputs name each row's two experts (5 for the two, 0 for
 * the others; the other inputs standard normal) and targets a noisy copy of the inputs.
 */
export function skewData(kind: 'skewed' | 'balanced', spec: { inputs: number; outputs: number }, rows: number, experts: number, rng: Rng): Dataset {
  const { inputs: D, outputs: K } = spec;
  if (D < experts) throw new OptionError('experts', `the skew case names each row's experts in its first E inputs: it needs inputs (${D}) ≥ experts (${experts})`);
  const pairs = skewPairs(kind, rows, experts);
  const x = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    for (let f = experts; f < D; f++) x[r * D + f] = rng.normal();
    const [a, b] = pairs[r]!;
    x[r * D + a] = 5;
    x[r * D + b] = 5;
  }
  const y = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) y[r * K + k] = x[r * D + (k % D)]! + 0.1 * rng.normal();
  return { task: 'regression', n: rows, inputs: D, x, outputs: K, y, source: `skew:${kind}` };
}

/** The fixed gate of the skew case: logit i = input i (i < E), no bias, so the chosen two are the named two. */
function fixedGate(inputs: number, experts: number): Float32Array {
  const g = new Float32Array(inputs * experts + experts);
  for (let i = 0; i < experts; i++) g[i * experts + i] = 1;
  return g;
}

/** Rows each worker computes in the session's current step (blocks as the router assigned them). */
function shardRowsOf(s: TrainingSession, workers: number): number[] {
  const v = s.views, n = Atomics.load(v.control, CTRL.BLOCKS);
  const out = new Array<number>(workers).fill(0);
  for (let b = 0; b < n; b++) out[v.blockWorker[b]!] = out[v.blockWorker[b]!]! + v.blockRows[b]!;
  return out;
}

/** Run the sparse benchmark (see the module comment): about (routings + 3) × rounds × (timeMs + start-up). */
export async function runSparseBenchmark(opts: SparseOptions = {}): Promise<SparseReport> {
  const cores = availableParallelism();
  const size = checkChoices([opts.size ?? 'medium'], BENCH_SIZES, 'size', 'size')[0]!;
  const experts = checkPositiveInt(opts.experts ?? 16, 'experts');
  const spec = { ...SIZE_SPECS[size], batch: checkPositiveInt(opts.batch ?? SIZE_SPECS[size].batch, 'batch') };
  const workers = opts.workers ?? Math.min(cores, experts);
  checkWorkerCount(workers, experts);
  const routings = opts.routings ?? [...SPARSE_ROUTINGS];
  if (routings.length === 0) throw new OptionError('routings', 'no routing given');
  if (new Set(routings).size !== routings.length) throw new OptionError('routings', `a routing is given twice: ${routings.join(', ')}`);
  for (const r of routings) resolveRouting({ routing: r }, experts, sparseLoss(r, experts));
  const rounds = checkPositiveInt(opts.rounds ?? 3, 'rounds');
  const steps = opts.steps === undefined ? undefined : checkPositiveInt(opts.steps, 'steps');
  const timeMs = checkMillis(opts.timeMs ?? 3000, 'timeMs');
  const plan: WindowPlan = { steps, timeMs, minSteps: checkPositiveInt(opts.minSteps ?? 3, 'minSteps') };
  const warmupSteps = checkNonNegativeInt(opts.warmupSteps ?? 2, 'warmupSteps');
  const predictRows = checkNonNegativeInt(opts.predictRows ?? PREDICT_ROWS, 'predictRows');
  const seed = opts.seed ?? 1;
  // Each routing on its loss; dense once more on the cooperative error where a one-expert rule is measured.
  const cases: { routing: string; loss: 'gaussian' | 'cooperative' }[] = routings.map((routing) => ({ routing, loss: sparseLoss(routing, experts) }));
  if (routings.includes('dense') && cases.some((c) => c.loss === 'cooperative')) cases.splice(routings.indexOf('dense') + 1, 0, { routing: 'dense', loss: 'cooperative' });
  const progress = opts.onProgress ?? (() => {});
  const common = { seed, ...(opts.backend ? { backend: opts.backend } : {}), ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}), onWarning: progress };

  const report: SparseReport = {
    ...benchHeader(opts.machine),
    backend: '',
    backendDetail: '',
    blasThreads: 1,
    experts,
    workers,
    batch: spec.batch,
    inputs: spec.inputs,
    outputs: spec.outputs,
    expert: spec.expert,
    rounds,
    ...(steps !== undefined ? { steps } : { timeMs }),
    loadAverage: startLoad(),
    rows: [],
    skipped: [],
  };
  const wantSkew = opts.skew ?? true;
  let skewWhy: string | undefined;
  if (wantSkew && experts < 3) skewWhy = `the skew case needs at least 3 experts (topk:2 with one hot expert), got ${experts}`;
  else if (wantSkew && spec.inputs < experts) skewWhy = `the skew case names each row's experts in its first E inputs: it needs inputs (${spec.inputs}) ≥ experts (${experts})`;
  if (skewWhy) report.skipped.push(`skew: ${skewWhy}`);

  const problems: BenchProblem[] = [];
  try {
    const contenders: (Contender<Window> & { routing: string; loss: 'gaussian' | 'cooperative'; problem: BenchProblem })[] = [];
    for (const { routing, loss } of cases) {
      const p = await benchProblem(spec, { experts, routing, loss, ...common });
      problems.push(p);
      const name = routing === 'dense' && loss === 'cooperative' ? 'dense (cooperative)' : routing;
      contenders.push({ name, routing, loss, problem: p, measure: () => sessionWindow(p, { workers, warmupSteps, plan }) });
    }
    const skewCases: Contender<Window>[] = [];
    const shardRows = { balanced: [] as number[], withSplitting: [] as number[], withoutSplitting: [] as number[] };
    let expert0Share = NaN;
    if (wantSkew && !skewWhy) {
      const rows = spec.batch * BATCHES;
      const gate = fixedGate(spec.inputs, experts);
      const make = async (kind: 'skewed' | 'balanced'): Promise<BenchProblem> => {
        const p = await benchProblem(spec, { experts, routing: 'topk:2', data: skewData(kind, spec, rows, experts, new Rng(seed)), inputScaling: 'identity', ...common });
        problems.push(p);
        p.mixture.params.gateParams.set(gate);
        return p;
      };
      const balanced = await make('balanced'), skewed = await make('skewed');
      // The gate does not learn: its parameters are written back before every step.
      const hold = (s: TrainingSession): void => s.views.gateParams.set(gate);
      const skewCase = (name: keyof typeof shardRows, p: BenchProblem, split: boolean): Contender<Window> => ({
        name: `skew ${name}`,
        measure: () =>
          sessionWindow(p, {
            workers,
            split,
            warmupSteps,
            plan,
            beforeStep: hold,
            inspect: (s) => {
              shardRows[name] = shardRowsOf(s, workers);
              if (name === 'withoutSplitting') {
                const v = s.views;
                let hot = 0;
                for (let q = 0; q < spec.batch; q++) for (let j = v.rowStart[q]!; j < v.rowStart[q + 1]!; j++) if (v.entryExpert[v.rowEntries[j]!] === 0) hot++;
                expert0Share = hot / spec.batch;
              }
            },
          }),
      });
      skewCases.push(skewCase('balanced', balanced, true), skewCase('withSplitting', skewed, true), skewCase('withoutSplitting', skewed, false));
    }
    const first = problems[0]!.mixture;
    report.backend = first.provider.name;
    report.backendDetail = first.provider.detail;
    report.blasThreads = blasThreadsOf(first.provider.name);

    const all: Contender<Window>[] = [...contenders, ...skewCases];
    const results = await runInterleaved(all, rounds, (c, round, w) => {
      progress(`sparse ${c.name} (round ${round + 1}/${rounds}): ${num((w.steps * spec.batch) / w.wallSeconds)} samples/s, ${num((w.wallSeconds * 1e6) / w.steps)} µs/step over ${w.steps} steps`);
    });
    const machineCores = Math.min(workers + 1, cores);
    contenders.forEach((c, i) => {
      const s = summariseRounds(results[i]!, spec.batch, machineCores);
      report.rows.push({
        routing: c.routing,
        k: c.problem.mixture.config.routing.k,
        loss: c.loss,
        samplesPerSecond: s.samplesPerSecond,
        stepMicros: s.stepMicros,
        cpuPerWall: s.cpuPerWall,
        valid: s.valid,
        rounds: s.rounds,
        roundSamplesPerSecond: s.roundSamplesPerSecond,
        steps: s.steps,
        busy: s.busy,
      });
    });
    const denseOf = (loss: SparseRow['loss']): SparseRow | undefined => report.rows.find((r) => r.routing === 'dense' && r.loss === loss);
    const dense = denseOf('gaussian');
    for (const r of report.rows) {
      if (dense) r.speedupOverDense = r.samplesPerSecond / dense.samplesPerSecond;
      const same = denseOf(r.loss);
      if (same) r.speedupOverDenseSameLoss = r.samplesPerSecond / same.samplesPerSecond;
    }

    if (opts.breakdown ?? true) {
      // Each routing's step in parts (the workers trainer, as measured above), then its bound.
      const bplan: WindowPlan = { steps, timeMs: timeMs / 2, minSteps: plan.minSteps };
      for (const [i, c] of contenders.entries()) {
        const inProc = await breakdownInProcess(c.problem, { warmupSteps, plan: bplan, replayMs: 0 });
        const w = await breakdownWorkers(c.problem, workers, inProc.shares, { warmupSteps, plan: bplan });
        const fixed = w.optimiserMicros + w.gateMicros + w.syncMicros;
        report.rows[i]!.breakdown = {
          stepMicros: w.stepMicros,
          optimiserMicros: w.optimiserMicros,
          gateMicros: w.gateMicros,
          syncMicros: w.syncMicros,
          fixedMicros: fixed,
          perEntryMicros: w.gemmMicros + w.elementwiseMicros + w.otherMicros,
          entriesPerRow: report.rows[i]!.k,
          parts: w,
        };
        progress(`sparse ${c.name}: fixed ${num(fixed)} µs (Adam ${num(w.optimiserMicros)}, gate and routing ${num(w.gateMicros)}, sync ${num(w.syncMicros)}), per-entry ${num(report.rows[i]!.breakdown!.perEntryMicros)} µs of a ${num(w.stepMicros)} µs step`);
      }
      for (const r of report.rows) {
        const d = denseOf(r.loss)?.breakdown;
        if (!d || !r.breakdown) continue;
        r.amdahlBound = d.stepMicros / (r.breakdown.fixedMicros + (d.perEntryMicros * r.k) / d.entriesPerRow);
        if (r.speedupOverDenseSameLoss !== undefined) r.fractionOfBound = r.speedupOverDenseSameLoss / r.amdahlBound;
      }
    }

    if (predictRows > 0) {
      // The public predict, on raw inputs of the mixture's width.
      const rng = new Rng(seed + 1);
      const x = new Float32Array(predictRows * spec.inputs);
      for (let i = 0; i < x.length; i++) x[i] = rng.normal();
      const results: SparsePredict['results'] = [];
      for (const c of contenders) {
        const m = c.problem.mixture;
        m.predict(x.subarray(0, Math.min(x.length, 64 * spec.inputs)));
        const w = await timeWindow(() => m.predict(x), plan);
        results.push({ routing: c.routing, loss: c.loss, samplesPerSecond: (w.steps * predictRows) / w.wallSeconds });
        progress(`sparse predict ${c.name}: ${num(results[results.length - 1]!.samplesPerSecond)} rows/s over ${w.steps} calls of ${predictRows} rows`);
      }
      const densePredict = results.find((r) => r.routing === 'dense' && r.loss === 'gaussian');
      if (densePredict) for (const r of results) r.speedupOverDense = r.samplesPerSecond / densePredict.samplesPerSecond;
      report.predict = { rows: predictRows, results };
    }
    if (skewCases.length) {
      const micros = (j: number): number => summariseRounds(results[contenders.length + j]!, spec.batch, machineCores).stepMicros;
      const balancedMicros = micros(0), withSplittingMicros = micros(1), withoutSplittingMicros = micros(2);
      report.skew = {
        balancedMicros,
        withSplittingMicros,
        withoutSplittingMicros,
        withSplittingRatio: withSplittingMicros / balancedMicros,
        withoutSplittingRatio: withoutSplittingMicros / balancedMicros,
        expert0Share,
        shardRows,
      };
    }
  } finally {
    for (const p of problems) await p.mixture.close();
  }
  endLoad(report.loadAverage, progress, cores);
  return report;
}

/** The sparse report as JSON (one line, or indented). */
export function formatSparseJson(report: SparseReport, pretty = false): string {
  return formatJson(report, pretty);
}

/** The sparse report as markdown. */
export function formatSparseMarkdown(r: SparseReport): string {
  const out: string[] = [`# Sparse routing: ${r.machine}`, ''];
  out.push(
    ...headerLines(r, [
      `- Compute: ${r.backend} (${r.backendDetail}), ${r.blasThreads} BLAS thread per compute thread; ${r.workers} workers`,
      `- Mixture: ${r.experts} experts ${r.expert} (${r.inputs}→…→${r.outputs}, tanh), linear gate, batch ${r.batch}, Adam, random regression data; Gaussian NLL (cooperative for switch and topk:1, and dense once more on the cooperative error to compare them on the same loss); no balancing`,
      `- Measurement: ${r.rounds} interleaved round${r.rounds === 1 ? '' : 's'}, ${r.steps !== undefined ? `${r.steps} timed steps` : `${num(r.timeMs)} ms`} per measurement, the median round; samples/s = batch rows per second of full training steps`,
    ]),
  );
  out.push('');
  out.push(
    ...markdownTable(
      ['routing', 'k / C', 'loss', 'samples/s', '× dense', '× dense, same loss', 'Amdahl bound', 'of the bound', 'µs/step', 'rounds min–max', 'CPU ÷ wall'],
      r.rows.map((x) => [
        `${x.routing}${x.busy ? ' (busy)' : ''}`,
        String(x.k),
        x.loss,
        num(x.samplesPerSecond),
        ratio(x.speedupOverDense),
        ratio(x.speedupOverDenseSameLoss),
        ratio(x.amdahlBound),
        pct(x.fractionOfBound),
        num(x.stepMicros),
        x.roundSamplesPerSecond.length > 1 ? `${num(Math.min(...x.roundSamplesPerSecond))}–${num(Math.max(...x.roundSamplesPerSecond))}` : '–',
        `${x.cpuPerWall.toFixed(2)}${x.valid ? '' : ' ✗'}`,
      ]),
      ['l', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  out.push('');
  if (r.rows.some((x) => x.breakdown)) {
    out.push('Where the step goes (the workers trainer, µs per step, timers on): the fixed part does not shrink with fewer entries; the per-entry part does.', '');
    out.push(
      ...markdownTable(
        ['routing', 'loss', 'step', 'Adam (every expert)', 'gate, routing, loss (main thread)', 'sync', 'fixed', 'per-entry', 'entries per row'],
        r.rows
          .filter((x) => x.breakdown)
          .map((x) => {
            const b = x.breakdown!;
            return [x.routing, x.loss, num(b.stepMicros), num(b.optimiserMicros), num(b.gateMicros), num(b.syncMicros), num(b.fixedMicros), num(b.perEntryMicros), String(b.entriesPerRow)];
          }),
        ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    out.push(
      '',
      "Amdahl bound: dense's step (same loss) ÷ (this routing's fixed part + dense's per-entry part × this routing's entries per row ÷ dense's), the speed-up over dense were the per-entry part exactly its share of dense's; of the bound = × dense, same loss ÷ the bound.",
      '',
    );
  }
  if (r.predict) {
    out.push(`## Predict (\`Mixture.predict\`, ${r.predict.rows.toLocaleString('en-US')} rows)`, '');
    out.push(...markdownTable(['routing', 'loss', 'rows/s', '× dense'], r.predict.results.map((x) => [x.routing, x.loss, num(x.samplesPerSecond), ratio(x.speedupOverDense)]), ['l', 'l', 'r', 'r']));
    out.push('');
  }
  if (r.skew) {
    const k = r.skew;
    out.push('## Skewed load', '');
    out.push(
      `topk:2 with a fixed gate (written back before every step, no balancing) on inputs that name each row's two experts: balanced, every expert the same number of rows; skewed, ${(k.expert0Share * 100).toFixed(0)}% of the rows take expert 0 as one of their two, the rest spread evenly.`,
      '',
    );
    out.push(
      ...markdownTable(
        ['case', 'µs/step', '× balanced', 'rows per worker (one step)'],
        [
          ['balanced (splitting)', num(k.balancedMicros), '1.00×', k.shardRows.balanced.join(' / ')],
          ['skewed, with splitting', num(k.withSplittingMicros), ratio(k.withSplittingRatio), k.shardRows.withSplitting.join(' / ')],
          ['skewed, without splitting', num(k.withoutSplittingMicros), ratio(k.withoutSplittingRatio), k.shardRows.withoutSplitting.join(' / ')],
        ],
      ),
    );
    out.push('');
  }
  for (const s of r.skipped) out.push(`Not measured: ${s}.`);
  if (r.skipped.length) out.push('');
  return out.join('\n');
}
