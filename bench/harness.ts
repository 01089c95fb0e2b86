/**
 * What every benchmark shares: the header a report starts with (machine, Node, date, load),
 * the problem sizes, option checks, the timed window (tinybench, the one harness) and the
 * interleaved-rounds runner (tinybench runs tasks one after another and cannot interleave
 * rounds of them), and the helpers that format numbers for markdown and JSON. The benchmarks themselves
 * (scaling.ts, peers.ts, sparse.ts, kernels.ts, csv.ts) only add what is theirs.
 */
import { availableParallelism, cpus, loadavg } from 'node:os';
import { Bench } from 'tinybench';
import { OptionError } from '../src/index.js';
import { machineInfo, machineText, median } from '../src/internal.js';

// ---------------------------------------------------------------------------------------
// Header

/** Where and when a benchmark ran: the header every report starts with. */
export interface BenchHeader {
  /** Stable machine name (slug of CPU model and cores, or the `machine` option). */
  machine: string;
  /** CPU model as the OS reports it. */
  cpuModel: string;
  /** Cores available to this process. */
  cores: number;
  /** Hardware threads per core (1: no SMT), where the OS says. */
  threadsPerCore?: number | undefined;
  /** Node.js version (`process.version`). */
  node: string;
  /** ISO 8601. */
  date: string;
  /** The command that produced it (set by the CLI). */
  command?: string;
  /** Free-form remarks printed with the report. */
  notes?: string[];
}

/**
 * The system's 1-minute load average when a run started and ended, and what of it other
 * processes made (they compete for the cores): the load less the benchmark's own threads.
 */
export interface LoadAverage {
  /** At the start of the run. */
  start: number;
  /** At the end of the run. */
  end: number;
  /** The benchmark's own busy threads: its process's CPU time ÷ wall time over the run. */
  ownThreads: number;
  /** Other processes' load at the start: the load then (nothing of the run had started). */
  otherStart: number;
  /** Other processes' load at the end: the load less the benchmark's own threads. */
  otherEnd: number;
  /** Either of them above {@link BUSY_LOAD_PER_CORE} × cores: every number of the run may be off. */
  busy: boolean;
}

/** Other processes' load per core above which a machine is busy and its measurements suspect. */
export const BUSY_LOAD_PER_CORE = 0.25;

/** Is `otherLoad` (load average less the benchmark's own threads) high for `cores` cores? */
export function isBusy(otherLoad: number, cores = availableParallelism()): boolean {
  return otherLoad > BUSY_LOAD_PER_CORE * cores;
}

/** Other processes' load: the load average less `ownThreads` (never below 0). */
export function otherLoad(load: number, ownThreads: number): number {
  return Math.max(0, load - ownThreads);
}

/** `AMD EPYC 7B13` on 2 cores → `amd-epyc-7b13-2c`. */
export function machineSlug(model = cpus()[0]?.model ?? 'unknown-cpu', cores = availableParallelism()): string {
  const s = `${model}-${cores}c`
    .toLowerCase()
    .replace(/\(r\)|\(tm\)/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return s || `machine-${cores}c`;
}

/** The header of a report starting now, on this machine (`machine` overrides the slug). */
export function benchHeader(machine?: string): BenchHeader {
  const m = machineInfo();
  return {
    machine: machine ?? machineSlug(),
    cpuModel: m.cpuModel,
    cores: m.cores,
    threadsPerCore: m.threadsPerCore,
    node: process.version,
    date: new Date().toISOString(),
  };
}

/** The 1-minute load average now. */
export function loadNow(): number {
  return loadavg()[0]!;
}

/** Where each run's process CPU time and wall clock stood at its start. */
const runStarts = new WeakMap<LoadAverage, { cpu: NodeJS.CpuUsage; t: number }>();

/** A load average whose end is filled in by {@link endLoad}. */
export function startLoad(): LoadAverage {
  const start = loadNow();
  const l: LoadAverage = { start, end: NaN, ownThreads: NaN, otherStart: start, otherEnd: NaN, busy: false };
  runStarts.set(l, { cpu: process.cpuUsage(), t: performance.now() });
  return l;
}

/**
 * Record the end of the run's load average, less the run's own threads; where other
 * processes' load was high at the start or the end, say so through `onWarning` (one line).
 */
export function endLoad(l: LoadAverage, onWarning?: (line: string) => void, cores = availableParallelism()): void {
  l.end = loadNow();
  const s = runStarts.get(l);
  if (s) {
    const c = process.cpuUsage(s.cpu);
    const wall = (performance.now() - s.t) / 1000;
    l.ownThreads = wall > 0 ? (c.user + c.system) / 1e6 / wall : 0;
  } else l.ownThreads = 0;
  l.otherEnd = otherLoad(l.end, l.ownThreads);
  l.busy = isBusy(l.otherStart, cores) || isBusy(l.otherEnd, cores);
  if (l.busy) onWarning?.(`warning: ${busyLine(l, cores)}`);
}

/** The busy machine's warning, for the log and the report. */
export function busyLine(l: LoadAverage, cores: number): string {
  return `the machine was busy: other processes' load ${l.otherStart.toFixed(2)} at the start and ${l.otherEnd.toFixed(2)} at the end (the 1-minute load average less this benchmark's ${l.ownThreads.toFixed(2)} busy threads) on ${cores} cores, above ${(BUSY_LOAD_PER_CORE * cores).toFixed(2)}; every number may be off, and the rows measured then are marked busy`;
}

/** The load average for a report's header line. */
export function loadText(l: LoadAverage, cores: number): string {
  return `1-minute load average ${l.start.toFixed(2)} at the start, ${l.end.toFixed(2)} at the end (${cores} cores); less this benchmark's own ${Number.isFinite(l.ownThreads) ? l.ownThreads.toFixed(2) : '–'} busy threads: ${l.otherStart.toFixed(2)} and ${Number.isFinite(l.otherEnd) ? l.otherEnd.toFixed(2) : '–'}`;
}

/** `amd-epyc-2c (AMD EPYC, 2 cores, no SMT)`: the machine as every report names it. */
export function machineLine(h: BenchHeader): string {
  return `${h.machine} (${machineText({ cpuModel: h.cpuModel, cores: h.cores, threadsPerCore: h.threadsPerCore })})`;
}

/** The markdown header lines every report shares: machine, date and load, command, notes. */
export function headerLines(h: BenchHeader & { loadAverage?: LoadAverage }, extra: string[] = []): string[] {
  const out = [`- Machine: ${machineLine(h)}, Node ${h.node}`];
  out.push(...extra);
  out.push(`- Date: ${h.date}${h.loadAverage ? `; ${loadText(h.loadAverage, h.cores)}` : ''}`);
  if (h.loadAverage?.busy) out.push(`- **Warning:** ${busyLine(h.loadAverage, h.cores)}.`);
  if (h.command) out.push(`- Command: \`${h.command}\``);
  for (const n of h.notes ?? []) out.push(`- Note: ${n}`);
  return out;
}

// ---------------------------------------------------------------------------------------
// Sizes

/** The benchmarks' problem sizes. */
export const BENCH_SIZES = ['small', 'medium', 'large'] as const;
/** One of {@link BENCH_SIZES}; see {@link SIZE_SPECS} for what each is. */
export type BenchSize = (typeof BENCH_SIZES)[number];

/** One size: a regression mixture of `expert` nets D → … → K, trained on batches of `batch` rows. */
export interface SizeSpec {
  /** Input width D. */
  inputs: number;
  /** Output width K. */
  outputs: number;
  /** Expert net as the CLI spells it (`linear`, `mlp:512`; hidden units tanh). */
  expert: string;
  /** Rows per training step. */
  batch: number;
  /** What it stands for. */
  note: string;
}

/**
 * small: the paper's shape (2 formants in, 4 outputs, linear experts and gate), batch 32;
 * medium and large: MLP experts (tanh hidden units) heavy enough for the threads to
 * matter. Every size is a regression on random data with the Gaussian-mixture NLL and Adam.
 */
export const SIZE_SPECS: Record<BenchSize, SizeSpec> = {
  small: { inputs: 2, outputs: 4, expert: 'linear', batch: 32, note: 'linear 2→4, the paper’s vowel shape' },
  medium: { inputs: 256, outputs: 256, expert: 'mlp:512', batch: 512, note: 'MLP 256→512→256' },
  large: { inputs: 1024, outputs: 1024, expert: 'mlp:1024', batch: 256, note: 'MLP 1024→1024→1024' },
};

/** Experts in the benchmarks' mixtures on a machine of `cores` cores: 8, or 16 with more than 8 cores. */
export function defaultExperts(cores = availableParallelism()): number {
  return cores > 8 ? 16 : 8;
}

/** Worker threads of the benchmarks' parallel system: min(cores, 8). */
export function defaultWorkers(cores = availableParallelism()): number {
  return Math.min(cores, 8);
}

/**
 * OpenBLAS threads per compute thread of this library's `backend`: OPENBLAS_NUM_THREADS as
 * the provider loaded it (it pins 1 where unset); 1 for the other providers.
 */
export function blasThreadsOf(backend: string): number {
  if (backend !== 'blas') return 1;
  const n = Number(process.env.OPENBLAS_NUM_THREADS);
  return Number.isInteger(n) && n > 0 ? n : 1;
}

// ---------------------------------------------------------------------------------------
// Option checks (each throws OptionError naming the option)

/** The option as a positive integer. */
export function checkPositiveInt(v: unknown, option: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new OptionError(option, `must be a positive integer, got ${String(v)}`);
  return v;
}

/** The option as an integer ≥ 0. */
export function checkNonNegativeInt(v: unknown, option: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new OptionError(option, `must be an integer ≥ 0, got ${String(v)}`);
  return v;
}

/** The option as a finite number of milliseconds ≥ 0. */
export function checkMillis(v: unknown, option: string): number {
  if (typeof v !== 'number' || !(Number.isFinite(v) && v >= 0)) throw new OptionError(option, `must be a number of milliseconds ≥ 0, got ${String(v)}`);
  return v;
}

/** A non-empty list whose every entry is one of `allowed` (the list itself is returned). */
export function checkChoices<T extends string>(values: readonly string[], allowed: readonly T[], option: string, what = 'value'): T[] {
  if (values.length === 0) throw new OptionError(option, `no ${what} given`);
  for (const v of values) {
    if (!(allowed as readonly string[]).includes(v)) throw new OptionError(option, `unknown ${what} ${JSON.stringify(v)} (expected ${allowed.join(', ')})`);
  }
  return values as T[];
}

// ---------------------------------------------------------------------------------------
// Timed windows

/** How long one measurement runs: exactly `steps` steps, or until `timeMs` has passed and at least `minSteps` ran. */
export interface WindowPlan {
  /** Exactly this many timed steps (overrides `timeMs` and `minSteps`). */
  steps?: number | undefined;
  /** Timed budget, ms. */
  timeMs: number;
  /** At least this many timed steps with `timeMs`. */
  minSteps: number;
}

/** One timed window of training steps. */
export interface Window {
  /** Timed steps. */
  steps: number;
  /** Wall time of the steps, s. */
  wallSeconds: number;
  /** Process CPU time of the steps (every thread, user + system), s. */
  cpuSeconds: number;
  /** The median step's wall time, s (the step another process taking the core for a moment moves least). */
  medianStepSeconds: number;
  /** Each timed step's wall time, s, in the order run. */
  stepSeconds: number[];
  /** Other processes' load when the window ended: the 1-minute load less the window's own busy threads (CPU ÷ wall). */
  otherLoad?: number;
}

/** Steps per window of {@link slowdownOf}. */
export const SLOWDOWN_WINDOW = 10;

/**
 * How much a run slowed down as it went: the slowest `window`-step window's mean step time
 * ÷ the fastest's, over every window of consecutive steps (1: steady). Runs shorter than two
 * windows use windows of half the run; NaN under 2 steps.
 */
export function slowdownOf(stepSeconds: readonly number[], window = SLOWDOWN_WINDOW): number {
  const n = stepSeconds.length;
  if (n < 2) return Number.NaN;
  const w = Math.min(window, Math.floor(n / 2));
  let sum = 0;
  for (let i = 0; i < w; i++) sum += stepSeconds[i]!;
  let lo = sum, hi = sum;
  for (let i = w; i < n; i++) {
    sum += stepSeconds[i]! - stepSeconds[i - w]!;
    if (sum < lo) lo = sum;
    if (sum > hi) hi = sum;
  }
  return lo > 0 ? hi / lo : Number.NaN;
}

/**
 * Run `step` over one window (see {@link WindowPlan}) with tinybench, the benchmarks' one
 * harness: one task, no warm-up of its own (callers warm up on their own session first),
 * `iterations` = the exact step count or `minSteps`, `time` = the budget (0 with exact
 * steps), so tinybench runs until both are reached. Around it, the process's CPU time
 * (`process.cpuUsage`: every thread of the process, workers included), which tinybench does
 * not measure.
 */
export async function timeWindow(step: () => unknown, plan: WindowPlan): Promise<Window> {
  const bench = new Bench({ time: plan.steps !== undefined ? 0 : plan.timeMs, iterations: plan.steps ?? plan.minSteps, warmup: false, throws: true });
  const stepSeconds: number[] = [];
  bench.add(
    'window',
    async () => {
      const s0 = performance.now();
      await step();
      stepSeconds.push((performance.now() - s0) / 1000);
    },
    { async: true },
  );
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await bench.run();
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const task = bench.tasks[0]!;
  const r = task.result;
  if (r.state !== 'completed') throw new Error(`timed window did not complete: ${r.state}`);
  const cpuSeconds = (c.user + c.system) / 1e6;
  return { steps: task.runs, wallSeconds: wall, cpuSeconds, medianStepSeconds: r.latency.p50 / 1000, stepSeconds, otherLoad: otherLoad(loadNow(), cpuSeconds / wall) };
}

// ---------------------------------------------------------------------------------------
// Interleaved rounds

/** A system measured once per round; what it returns is its window, or why it did not run. */
export interface Contender<R> {
  /** Unique name (for progress and results). */
  name: string;
  /** One measurement in round `round` (0-based). */
  measure: (round: number) => Promise<R>;
}

/** What a contender's measurement resolves to. */
export type ResultOf<C> = C extends Contender<infer R> ? R : never;

/**
 * The order the contenders run in each round: 0, 1, …, n−1 in even rounds and the reverse
 * in odd ones, so that no system always runs right after the same neighbour or always
 * first (drift in the machine's load then falls on every system alike).
 */
export function roundOrder(n: number, rounds: number): number[][] {
  const forward = Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: rounds }, (_, r) => (r % 2 === 0 ? [...forward] : [...forward].reverse()));
}

/**
 * Measure every contender once per round, `rounds` rounds, interleaved in
 * {@link roundOrder}; one at a time, never two at once. Resolves to each contender's
 * results by round, in the contenders' order.
 */
export async function runInterleaved<C extends Contender<unknown>>(
  contenders: readonly C[],
  rounds: number,
  onResult?: (c: C, round: number, result: ResultOf<C>) => void,
): Promise<ResultOf<C>[][]> {
  checkPositiveInt(rounds, 'rounds');
  const out: ResultOf<C>[][] = contenders.map(() => []);
  for (const [r, order] of roundOrder(contenders.length, rounds).entries()) {
    for (const i of order) {
      const c = contenders[i]!;
      const result = (await c.measure(r)) as ResultOf<C>;
      out[i]![r] = result;
      onResult?.(c, r, result);
    }
  }
  return out;
}

/** How far process CPU time ÷ wall time may exceed a system's core count before its measurement is invalid. */
export const CPU_PER_WALL_TOLERANCE = 0.2;

/** Is a run of `cores` cores that measured `cpuPerWall` within its cores (≤ cores + tolerance)? False for a non-finite ratio. */
export function withinCores(cpuPerWall: number, cores: number, tolerance = CPU_PER_WALL_TOLERANCE): boolean {
  return Number.isFinite(cpuPerWall) && cpuPerWall <= cores + tolerance;
}

/** A system's rounds summarised. */
export interface RoundSummary {
  /** Median training rows per second over the valid rounds (all rounds where none is valid). */
  samplesPerSecond: number;
  /** Median process CPU time ÷ wall time over the same rounds. */
  cpuPerWall: number;
  /** Some round stayed within the system's cores (see {@link withinCores}). */
  valid: boolean;
  /** Rounds measured. */
  rounds: number;
  /** Rounds that used more cores than the system may. */
  invalidRounds: number;
  /** samples/s of every round, in round order. */
  roundSamplesPerSecond: number[];
  /** Timed steps over all rounds. */
  steps: number;
  /** Mean µs per step over the rounds used (batch ÷ median samples/s). */
  stepMicros: number;
  /** The slowest 10-step window's mean step ÷ the fastest's ({@link slowdownOf}), the median over the rounds used; null under 2 steps. */
  slowdown: number | null;
  /** Some round ended with other processes' load high ({@link isBusy}): measured on a busy machine. */
  busy: boolean;
}

/**
 * Medians over rounds of one system of `cores` cores, `batch` rows per step: a round that
 * used more than its cores (CPU ÷ wall above cores + {@link CPU_PER_WALL_TOLERANCE}) is
 * left out of the medians; where every round did, all are used and the system is invalid.
 */
export function summariseRounds(windows: readonly Window[], batch: number, cores: number): RoundSummary {
  if (windows.length === 0) throw new OptionError('windows', 'no round to summarise');
  const sps = windows.map((w) => (w.steps * batch) / w.wallSeconds);
  const cpw = windows.map((w) => w.cpuSeconds / w.wallSeconds);
  const ok = cpw.map((c) => withinCores(c, cores));
  const valid = ok.some((v) => v);
  const use = (xs: number[]): number[] => (valid ? xs.filter((_, i) => ok[i]) : xs);
  const s = median(use(sps));
  return {
    samplesPerSecond: s,
    cpuPerWall: median(use(cpw)),
    valid,
    rounds: windows.length,
    invalidRounds: ok.filter((v) => !v).length,
    roundSamplesPerSecond: sps,
    steps: windows.reduce((a, w) => a + w.steps, 0),
    stepMicros: (batch * 1e6) / s,
    slowdown: finiteOrNull(median(use(windows.map((w) => slowdownOf(w.stepSeconds))))),
    busy: windows.some((w) => w.otherLoad !== undefined && isBusy(w.otherLoad)),
  };
}

/** A number, or null where it is not finite (JSON has no NaN). */
export function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

// ---------------------------------------------------------------------------------------
// Formatting

/** A number for a table: thousands grouped from 1000, whole from 100, else `digits` significant; `–` for none. */
export function num(v: number | undefined, digits = 3): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return v.toPrecision(digits);
}

/** A fraction as a whole percentage (`0.96` → `96%`); `–` for none. */
export function pct(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(0)}%`;
}

/** A ratio (`3.10×`, `13×` from 10 up); `–` for none. */
export function ratio(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : `${v >= 10 ? v.toFixed(0) : v.toFixed(2)}×`;
}

/** A report as JSON, one line (or indented with `pretty`); non-finite numbers become null. */
export function formatJson(report: unknown, pretty = false): string {
  return JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), pretty ? 2 : undefined);
}

/** A markdown table from a header row and rows of cells; `align` per column, `l` or `r` (default r but the first). */
export function markdownTable(head: readonly string[], rows: readonly (readonly string[])[], align?: readonly ('l' | 'r')[]): string[] {
  const a = align ?? head.map((_, i) => (i === 0 ? 'l' : 'r'));
  return [`| ${head.join(' | ')} |`, `|${a.map((x) => (x === 'l' ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}
