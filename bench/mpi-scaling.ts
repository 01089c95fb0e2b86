/**
 * `moe bench scaling --mpi`: the scaling benchmark across MPI ranks (src/mpi), run under
 * `mpiexec -n R`. Every rank runs this same code in lockstep; rank 0 alone reports.
 *
 * Rows of ranks × workers, each measured once per round in interleaved rounds
 * (harness.roundOrder) and reported as the median:
 * - 1 rank × W for W = 1, 2 (the cost model's inputs) and R·w for each asked w (the
 *   same shards in one process): rank 0 trains alone, in a plain session (no MPI), while
 *   the other ranks wait in a broadcast;
 * - R ranks × w for each asked w: every rank trains its share, exchanging after each phase.
 * Each row: samples/s, and for the MPI rows the wall time each rank spent in the
 * communicator's collectives per step (start to MPI_Test's completion: the transfer, and
 * the wait for the slowest rank) and the payload bytes per step, per rank and per exchange.
 *
 * Beside the rows: a probe of the one-host latency and bandwidth (allgatherv of a few
 * sizes, timed through the same communicator), the cost model's exchange
 * (bench/cost-model.ts) checked against the R-rank rows with those, and its predictions
 * (PREDICTED) for more ranks on real networks.
 */
import { loadavg } from 'node:os';
import { OptionError, type BackendRequest } from '../src/index.js';
import { CMD, Communicator, errorFunction, expertShape, gateShape, mlpParamCount, median, type ExchangeCounters, type TrainingSession } from '../src/internal.js';
import { costModelInputsOf, exchangeBytesPerStep, predictRanks, rankExpertCounts, type CostModelInputs, type ExchangeBytes, type ExchangeFlags, type Network, type RankPrediction } from './cost-model.js';
import {
  BENCH_SIZES,
  benchHeader,
  checkChoices,
  checkMillis,
  checkNonNegativeInt,
  checkPositiveInt,
  defaultExperts,
  endLoad,
  isBusy,
  num,
  roundOrder,
  SIZE_SPECS,
  startLoad,
  timeWindow,
  type BenchHeader,
  type LoadAverage,
  type Window,
} from './harness.js';
import { benchProblem, startSession, stepper, type BenchProblem } from './problem.js';
import type { PhaseMicros, ScalingSize } from './scaling.js';
import { StepTimer, TimedRunner } from './step-timer.js';

/** Error functions the benchmark can train with (regression). */
export const MPI_BENCH_LOSSES = ['gaussian', 'cooperative', 'competitive'] as const;
/** One of {@link MPI_BENCH_LOSSES}. */
export type MpiBenchLoss = (typeof MPI_BENCH_LOSSES)[number];

/** The overhead target on one host: R ranks × 1 worker ≥ this × the samples/s of 1 rank × R workers. */
export const OVERHEAD_TARGET = 0.85;

/** Floats each rank contributes to one probe allgatherv (8 B to 4 MiB). */
export const PROBE_FLOATS: readonly number[] = [2, 1024, 16_384, 262_144, 1_048_576];

/** Options of {@link runMpiScalingBenchmark}. */
export interface MpiScalingOptions {
  /** Default medium. */
  sizes?: ScalingSize[];
  /** Workers per rank of the R-rank rows; default 1. */
  workers?: number[];
  /** Experts (default 8; 16 on machines with more than 8 cores). */
  experts?: number;
  /** Error function (default gaussian). */
  loss?: MpiBenchLoss;
  /** Compute provider (default auto). */
  backend?: BackendRequest;
  /** CBLAS library for `blas`. */
  blasLibrary?: string;
  /** Timed budget per measurement, ms (the step count is agreed across ranks from the warm-up); default 3000. */
  timeMs?: number;
  /** At least this many timed steps; default 5. */
  minSteps?: number;
  /** Untimed steps before each measurement; default 3. */
  warmupSteps?: number;
  /** Interleaved rounds, the median reported; default 3. */
  rounds?: number;
  /** Network bandwidths of the predictions, Gb/s; default 10 and 100. */
  bandwidthsGbps?: number[];
  /** Latency of each bandwidth, µs (one value for all, or one per bandwidth); default 20. */
  latencyMicros?: number[];
  /** Rank counts of the predictions; default 4, 8, 16. */
  predictRanks?: number[];
  /** Probe the one-host latency and bandwidth (default true where R > 1). */
  probe?: boolean;
  /** A stable name for this machine. */
  machine?: string;
  /** Seed of data and initialisation (default 1). */
  seed?: number;
  /** One line per measurement as it finishes (rank 0's). */
  onProgress?: (message: string) => void;
}

/** Per rank, per step, over a measurement's timed steps. */
export interface RankExchange {
  /** Rank. */
  rank: number;
  /** Wall time in the communicator's collectives per step, µs. */
  exchangeMicrosPerStep: number;
  /** Payload bytes received per step. */
  bytesReceivedPerStep: number;
  /** Payload bytes sent per step. */
  bytesSentPerStep: number;
  /** Collectives per step. */
  exchangesPerStep: number;
}

/** One exchange of the runner (rank 0's counters). */
export interface ExchangeRow {
  /** What the runner calls it. */
  what: string;
  /** Times per step. */
  perStep: number;
  /** Rank 0's payload bytes received per step. */
  bytesReceivedPerStep: number;
  /** Rank 0's wall time in it per step, µs. */
  microsPerStep: number;
}

/** One (size, ranks, workers) measurement, the median over its rounds. */
export interface MpiScalingRow {
  size: ScalingSize;
  /** Ranks R (1: rank 0 alone, no MPI). */
  ranks: number;
  /** Worker threads per rank W. */
  workers: number;
  /** Rows per step. */
  batch: number;
  /** Timed steps over all rounds. */
  steps: number;
  /** Median over rounds of the mean step, µs (rank 0's wall clock; the ranks run in lockstep). */
  stepMicros: number;
  /** batch ÷ stepMicros. */
  samplesPerSecond: number;
  /** samples/s of every round. */
  roundSamplesPerSecond: number[];
  /** The slowest shard's compute per phase, µs (rank 0's shards). */
  shardComputeMicrosByPhase: PhaseMicros;
  /** Synchronisation per phase, µs (with MPI it includes the phase's exchanges). */
  syncMicrosByPhase: PhaseMicros;
  /** MPI rows: wall time in collectives per step, µs, the mean over ranks (median over rounds). */
  exchangeMicrosPerStep?: number;
  /** MPI rows: payload bytes exchanged per step by the whole job (Σ over ranks of bytes received). */
  bytesPerStep?: number;
  /** MPI rows: each rank's exchange (median over rounds of the time; bytes are the same every step, dense). */
  byRank?: RankExchange[];
  /** MPI rows: rank 0's exchanges by name. */
  byExchange?: ExchangeRow[];
  /** Process CPU time ÷ wall time (rank 0), median over rounds. */
  cpuPerWall: number;
  /** Other processes' load was high at the end of some round. */
  busy: boolean;
}

/** The probe of one size. */
export interface ProbePoint {
  /** Floats each rank contributed. */
  floatsPerRank: number;
  /** Payload bytes each rank received. */
  bytesReceived: number;
  /** Median time of one allgatherv, µs. */
  micros: number;
  /** The fastest, µs (what the fit uses: on a shared host, the others are the ranks' scheduling). */
  minMicros: number;
  /** Repetitions timed. */
  reps: number;
}

/** The one-host network as the probe measured it. */
export interface ProbeResult {
  points: ProbePoint[];
  /** α: the smallest allgatherv's (8 bytes) fastest time ÷ its ⌈log2 R⌉ rounds, µs. */
  latencyMicros: number;
  /** β: the best rate beyond α of the sizes from 64 kB (each size's fastest repetition), Gb/s. */
  gbps: number;
}

/** The model against a measured R-rank row. */
export interface ModelCheck {
  size: ScalingSize;
  ranks: number;
  workers: number;
  /** The model with the probe's α and β, all ranks on this host. */
  predicted: RankPrediction;
  /** Measured step, µs. */
  measuredStepMicros: number;
  /** Measured exchange per step (mean over ranks), µs. */
  measuredExchangeMicros: number;
  /** Measured bytes per step (the job's). */
  measuredBytesPerStep: number;
}

/** R ranks × 1 worker against 1 rank × R workers (the one-host overhead target). */
export interface OverheadResult {
  size: ScalingSize;
  ranks: number;
  /** samples/s of R × 1 ÷ samples/s of 1 × R (medians). */
  ratio: number;
  /** The same ratio round by round (interleaved). */
  roundRatios: number[];
  target: number;
}

/** What {@link runMpiScalingBenchmark} returns (on every rank; rank 0 reports it). */
export interface MpiScalingReport extends BenchHeader {
  mpi: true;
  /** Ranks R of the job. */
  ranks: number;
  /** The MPI library's version (first line). */
  mpiLibrary: string;
  backend: string;
  backendDetail: string;
  experts: number;
  loss: MpiBenchLoss;
  /** Rounds per measurement. */
  rounds: number;
  loadAverage: LoadAverage;
  /** `uptime`'s 1-, 5- and 15-minute load averages at the start and the end. */
  uptime: { start: number[]; end: number[] };
  sizes: { size: ScalingSize; inputs: number; outputs: number; expert: string; batch: number; note: string; expertParams: number; gateParams: number }[];
  rows: MpiScalingRow[];
  /** The cost model's bytes per step of each size's R-rank rows. */
  exchange: { size: ScalingSize; ranks: number; workers: number; formula: string; floatsPerEntry: number; rankExperts: number[]; bytes: ExchangeBytes }[];
  probe?: ProbeResult;
  checks: ModelCheck[];
  /** The cost model's predictions: PREDICTED, not measured. */
  predictions: (RankPrediction & { label: 'PREDICTED' })[];
  overhead: OverheadResult[];
}

interface Measurement {
  window: Window;
  timer: StepTimer;
  /** Per rank (MPI rows): [wall s, exchange ms, bytes sent, bytes received, exchanges]. */
  ranks?: number[][];
  /** Rank 0's counters by exchange over the window. */
  byExchange?: Map<string, ExchangeCounters>;
}

/** A long wait for the ranks idling while rank 0 measures alone, ms. */
const IDLE_RANK_TIMEOUT_MS = 60 * 60 * 1000;

/** The formula of the job's bytes per step, for the report. */
export function bytesFormula(flags: ExchangeFlags): string {
  const f = ['1', ...(flags.mixesOutputs ? ['K'] : []), ...(flags.gateGradAfterBackward ? ['1'] : [])].join(' + ');
  return `4·B·E·(R−1)·(${f}) + 8·R`;
}

/** The options checked (the same on every rank). */
function checkOptions(opts: MpiScalingOptions, R: number) {
  const experts = opts.experts === undefined ? defaultExperts() : checkPositiveInt(opts.experts, 'experts');
  const sizes = checkChoices(opts.sizes ?? ['medium'], BENCH_SIZES, 'sizes', 'size');
  const loss = checkChoices([opts.loss ?? 'gaussian'], MPI_BENCH_LOSSES, 'loss', 'error function')[0]!;
  const workers = [...new Set(opts.workers ?? [1])].sort((a, b) => a - b);
  for (const w of workers) rankExpertCounts(experts, R, checkPositiveInt(w, 'workers'));
  const timeMs = checkMillis(opts.timeMs ?? 3000, 'timeMs');
  const minSteps = checkPositiveInt(opts.minSteps ?? 5, 'minSteps');
  const warmupSteps = checkNonNegativeInt(opts.warmupSteps ?? 3, 'warmupSteps');
  const rounds = checkPositiveInt(opts.rounds ?? 3, 'rounds');
  const bandwidths = opts.bandwidthsGbps ?? [10, 100];
  const latencies = opts.latencyMicros ?? [20];
  if (latencies.length !== 1 && latencies.length !== bandwidths.length) throw new OptionError('latencyMicros', `one value, or one per bandwidth (${bandwidths.length})`);
  const networks: Network[] = bandwidths.map((gbps, i) => ({ gbps, latencyMicros: latencies[latencies.length === 1 ? 0 : i]! }));
  const predictCounts = opts.predictRanks ?? [4, 8, 16];
  return { experts, sizes, loss, workers, timeMs, minSteps, warmupSteps, rounds, networks, predictCounts };
}

/** Run the benchmark on every rank of the MPI job (see the module comment). */
export async function runMpiScalingBenchmark(opts: MpiScalingOptions = {}): Promise<MpiScalingReport> {
  const comm = Communicator.world();
  const R = comm.size, rank = comm.rank;
  // The options are the same on every rank, and so is their check: rank 0 alone reports a
  // bad one, and every rank ends with it.
  const checked = await comm.sameOnEveryRank(() => checkOptions(opts, R), 'the check of the options');
  const { experts, sizes, loss, workers, timeMs, minSteps, warmupSteps, rounds, networks, predictCounts } = checked;
  const progress = rank === 0 ? (opts.onProgress ?? (() => {})) : () => {};
  const flags: ExchangeFlags = errorFunction(loss);
  // One-rank rows: 1 and 2 workers (the model's inputs), and R·w (the same shards in one process).
  const oneRank = [...new Set([1, ...(experts >= 2 ? [2] : []), ...(R > 1 ? workers.map((w) => R * w) : workers)])].filter((w) => w <= experts).sort((a, b) => a - b);
  const configs = [...oneRank.map((w) => ({ ranks: 1, workers: w })), ...(R > 1 ? workers.map((w) => ({ ranks: R, workers: w })) : [])];

  const report: MpiScalingReport = {
    ...benchHeader(opts.machine),
    mpi: true,
    ranks: R,
    mpiLibrary: comm.library.version.split('\n')[0]!.trim(),
    backend: '',
    backendDetail: '',
    experts,
    loss,
    rounds,
    loadAverage: startLoad(),
    uptime: { start: loadavg(), end: [] },
    sizes: [],
    rows: [],
    exchange: [],
    checks: [],
    predictions: [],
    overhead: [],
  };

  const byExchange = comm.byExchange;
  comm.byExchange = new Map();
  try {
    if (R > 1 && (opts.probe ?? true)) {
      report.probe = await probeNetwork(comm);
      progress(`probe: latency ${num(report.probe.latencyMicros)} µs per round, bandwidth ${num(report.probe.gbps)} Gb/s (one host, through the communicator)`);
    }
    for (const size of sizes) {
      const spec = SIZE_SPECS[size];
      const p = await benchProblem(spec, {
        experts,
        loss,
        seed: opts.seed ?? 1,
        ...(opts.backend ? { backend: opts.backend } : {}),
        ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}),
        onWarning: progress,
      });
      try {
        const m = p.mixture;
        report.backend = m.provider.name;
        report.backendDetail = m.provider.detail;
        report.sizes.push({ size, ...spec, expertParams: mlpParamCount(expertShape(m.config)), gateParams: mlpParamCount(gateShape(m.config)) });
        const results: Measurement[][] = configs.map(() => []);
        for (const order of roundOrder(configs.length, rounds)) {
          for (const i of order) {
            const c = configs[i]!;
            const r = await measure(comm, p, c.ranks, c.workers, { timeMs, minSteps, warmupSteps });
            results[i]!.push(r);
            if (rank === 0) {
              const w = r.window;
              const ex = r.ranks ? `, exchange ${num(mean(r.ranks.map((x) => (x[1]! * 1000) / w.steps)))} µs/step, ${num(sum(r.ranks.map((x) => x[3]!)) / w.steps)} B/step` : '';
              progress(`${size} ${c.ranks} rank${c.ranks > 1 ? 's' : ''} × ${c.workers} worker${c.workers > 1 ? 's' : ''}: ${num((w.steps * p.batch) / w.wallSeconds)} samples/s over ${w.steps} steps${ex}`);
            }
          }
        }
        configs.forEach((c, i) => report.rows.push(summarise(size, c.ranks, c.workers, p.batch, results[i]!)));
        addModel(report, size, p, flags, workers, networks, predictCounts);
      } finally {
        await p.mixture.close();
      }
    }
  } finally {
    comm.byExchange = byExchange;
  }
  report.uptime.end = loadavg();
  endLoad(report.loadAverage, progress);
  return report;
}

/** One measurement of R ranks × W workers (R = 1: rank 0 alone, the others wait). Collective. */
async function measure(comm: Communicator, p: BenchProblem, ranks: number, workers: number, o: { timeMs: number; minSteps: number; warmupSteps: number }): Promise<Measurement> {
  if (ranks === 1) {
    let out: Measurement | undefined, failed = 0;
    const timeout = comm.timeoutMs;
    try {
      if (comm.rank === 0) {
        try {
          out = await window(comm, p, workers, false, o);
        } catch (err) {
          failed = 1;
          throw err;
        } finally {
          if (comm.size > 1) await comm.bcast(new Uint8Array([failed]), 0, 'the end of a one-rank measurement');
        }
      } else {
        comm.timeoutMs = IDLE_RANK_TIMEOUT_MS;
        const done = new Uint8Array(1);
        await comm.bcast(done, 0, 'the end of a one-rank measurement');
        if (done[0] !== 0) throw new Error('rank 0 failed a one-rank measurement (its error is on its output)');
      }
    } finally {
      comm.timeoutMs = timeout;
    }
    return out ?? ({} as Measurement);
  }
  return window(comm, p, workers, true, o);
}

/** Start a session, warm up, agree on the step count (MPI), time the steps, gather the counters. */
async function window(comm: Communicator, p: BenchProblem, workers: number, mpi: boolean, o: { timeMs: number; minSteps: number; warmupSteps: number }): Promise<Measurement> {
  const timer = new StepTimer();
  let timed: TimedRunner | undefined;
  const s: TrainingSession = await startSession(p, { workers, ...(mpi ? { mpi: comm } : {}), wrapRunner: (inner, views) => (timed = new TimedRunner(inner, views.busy, timer)) });
  try {
    const run = stepper(p, s);
    const t0 = performance.now();
    for (let i = 0; i < o.warmupSteps; i++) await run();
    const warm = o.warmupSteps > 0 ? (performance.now() - t0) / o.warmupSteps : 0;
    let steps = Math.max(o.minSteps, warm > 0 ? Math.ceil(o.timeMs / warm) : o.minSteps);
    if (mpi) {
      // Every rank must run the same steps: the most any rank asks for.
      const agreed = Int32Array.of(steps);
      await comm.allreduceInts(agreed, 'max', 'the timed step count');
      steps = agreed[0]!;
    }
    const before = comm.counters();
    const beforeBy = new Map([...comm.byExchange!].map(([k, v]) => [k, { ...v }]));
    timer.reset();
    timed!.resync();
    timer.on = true;
    const w = await timeWindow(run, { steps, timeMs: 0, minSteps: steps });
    timer.on = false;
    if (!mpi) return { window: w, timer };
    const after = comm.counters();
    const byExchange = new Map<string, ExchangeCounters>();
    for (const [k, v] of comm.byExchange!) {
      const b = beforeBy.get(k) ?? { exchanges: 0, bytesSent: 0, bytesReceived: 0, ms: 0 };
      byExchange.set(k, { exchanges: v.exchanges - b.exchanges, bytesSent: v.bytesSent - b.bytesSent, bytesReceived: v.bytesReceived - b.bytesReceived, ms: v.ms - b.ms });
    }
    // Every rank's numbers, as doubles through an allgather of their bytes (as ints).
    const mine = Float64Array.of(w.wallSeconds, after.ms - before.ms, after.bytesSent - before.bytesSent, after.bytesReceived - before.bytesReceived, after.exchanges - before.exchanges);
    const all = new Float64Array((await comm.allgatherInts(new Int32Array(mine.buffer), 'the benchmark counters')).buffer);
    const ranks = Array.from({ length: comm.size }, (_, r) => Array.from(all.subarray(r * mine.length, (r + 1) * mine.length)));
    return { window: w, timer, ranks, byExchange };
  } finally {
    await s.close();
  }
}

/** Time allgathervs of a few sizes through the communicator: the one-host α and β. Collective. */
async function probeNetwork(comm: Communicator): Promise<ProbeResult> {
  const R = comm.size;
  const points: ProbePoint[] = [];
  for (const n of PROBE_FLOATS) {
    const view = new Float32Array(n * R);
    const slices = { counts: new Int32Array(R).fill(n), displs: Int32Array.from({ length: R }, (_, r) => r * n) };
    const reps = n * 4 <= 65_536 ? 100 : 20;
    const times: number[] = [];
    for (let i = 0; i <= reps; i++) {
      const t0 = performance.now();
      await comm.allgatherv(view, slices, 'the network probe');
      if (i > 0) times.push((performance.now() - t0) * 1000);
    }
    points.push({ floatsPerRank: n, bytesReceived: 4 * n * (R - 1), micros: median(times), minMicros: Math.min(...times), reps });
  }
  // α: the smallest size's fastest time (8 bytes: all latency); β: the best rate any size of
  // 64 kB or more reached beyond that latency (on a shared host a slow repetition is the
  // other rank waiting for a core, not the transfer).
  const rounds = Math.ceil(Math.log2(R));
  const alpha = points[0]!.minMicros / rounds;
  const bytesPerMicro = Math.max(...points.filter((x) => x.bytesReceived >= 65_536).map((x) => x.bytesReceived / Math.max(1e-3, x.minMicros - rounds * alpha)));
  return { points, latencyMicros: alpha, gbps: (bytesPerMicro * 1e6 * 8) / 1e9 };
}

const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
const sum = (xs: number[]): number => xs.reduce((a, x) => a + x, 0);

function phaseMicros(ms: (t: StepTimer) => Float64Array, results: Measurement[]): PhaseMicros {
  const at = (cmd: number): number => {
    let t = 0, n = 0;
    for (const r of results) {
      t += ms(r.timer)[cmd]!;
      n += r.timer.phases[cmd]!;
    }
    return n > 0 ? (t * 1000) / n : 0;
  };
  return { forward: at(CMD.FORWARD), backward: at(CMD.BACKWARD), update: at(CMD.UPDATE) };
}

/** The median row of one configuration's rounds (rank 0; other ranks get placeholders). */
function summarise(size: ScalingSize, ranks: number, workers: number, batch: number, results: Measurement[]): MpiScalingRow {
  const ok = results.filter((r) => r.window !== undefined);
  const sps = ok.map((r) => (r.window.steps * batch) / r.window.wallSeconds);
  const s = ok.length ? median(sps) : NaN;
  const row: MpiScalingRow = {
    size,
    ranks,
    workers,
    batch,
    steps: sum(ok.map((r) => r.window.steps)),
    stepMicros: (batch * 1e6) / s,
    samplesPerSecond: s,
    roundSamplesPerSecond: sps,
    shardComputeMicrosByPhase: phaseMicros((t) => t.shardMs, ok),
    syncMicrosByPhase: phaseMicros((t) => t.syncMs, ok),
    cpuPerWall: ok.length ? median(ok.map((r) => r.window.cpuSeconds / r.window.wallSeconds)) : NaN,
    busy: ok.some((r) => r.window.otherLoad !== undefined && isBusy(r.window.otherLoad)),
  };
  if (ranks > 1 && ok.length && ok[0]!.ranks) {
    const per = (r: Measurement, k: number, i: number): number => r.ranks![k]![i]! / r.window.steps;
    const last = ok.at(-1)!;
    row.byRank = last.ranks!.map((_, k) => ({
      rank: k,
      exchangeMicrosPerStep: median(ok.map((r) => per(r, k, 1) * 1000)),
      bytesSentPerStep: per(last, k, 2),
      bytesReceivedPerStep: per(last, k, 3),
      exchangesPerStep: per(last, k, 4),
    }));
    row.exchangeMicrosPerStep = median(ok.map((r) => mean(r.ranks!.map((_, k) => per(r, k, 1) * 1000))));
    row.bytesPerStep = sum(row.byRank.map((x) => x.bytesReceivedPerStep));
    const steps = row.steps;
    const names = [...last.byExchange!].filter(([, c]) => c.exchanges > 0).map(([what]) => what);
    row.byExchange = names.map((what) => {
      const tot = (k: keyof ExchangeCounters): number => sum(ok.map((r) => r.byExchange!.get(what)?.[k] ?? 0));
      return { what, perStep: tot('exchanges') / steps, bytesReceivedPerStep: tot('bytesReceived') / steps, microsPerStep: (tot('ms') * 1000) / steps };
    });
  }
  return row;
}

/** The cost model for one size: the exchange's bytes, the check against the R-rank rows, the predictions. */
function addModel(report: MpiScalingReport, size: ScalingSize, p: BenchProblem, flags: ExchangeFlags, workers: number[], networks: Network[], predictCounts: number[]): void {
  const R = report.ranks, E = report.experts, B = p.batch, K = p.spec.outputs;
  const rows = report.rows.filter((r) => r.size === size);
  if (R > 1) {
    for (const w of workers) {
      const rankExperts = rankExpertCounts(E, R, w);
      report.exchange.push({ size, ranks: R, workers: w, formula: bytesFormula(flags), floatsPerEntry: 1 + (flags.mixesOutputs ? K : 0) + (flags.gateGradAfterBackward ? 1 : 0), rankExperts, bytes: exchangeBytesPerStep({ batch: B, experts: E, outputs: K, rankExperts, flags }) });
    }
  }
  const one = rows.find((r) => r.ranks === 1 && r.workers === 1), two = rows.find((r) => r.ranks === 1 && r.workers === 2);
  if (one && two && Number.isFinite(one.stepMicros) && Number.isFinite(two.stepMicros)) {
    const m: CostModelInputs = costModelInputsOf(size, E, one, two);
    if (report.probe) {
      const net: Network = { gbps: report.probe.gbps, latencyMicros: report.probe.latencyMicros };
      for (const row of rows.filter((r) => r.ranks > 1)) {
        report.checks.push({
          size,
          ranks: row.ranks,
          workers: row.workers,
          predicted: predictRanks(m, { ranks: row.ranks, workers: row.workers, experts: E, batch: B, outputs: K, flags, network: net, oneHost: true }),
          measuredStepMicros: row.stepMicros,
          measuredExchangeMicros: row.exchangeMicrosPerStep ?? NaN,
          measuredBytesPerStep: row.bytesPerStep ?? NaN,
        });
      }
    }
    const most = Math.max(...predictCounts);
    for (const w of R > 1 ? workers : [1]) {
      const experts = Math.max(E, most * w);
      for (const ranks of predictCounts) {
        for (const network of networks) {
          report.predictions.push({ label: 'PREDICTED', ...predictRanks(m, { ranks, workers: w, experts, batch: B, outputs: K, flags, network, oneHost: false }) });
        }
      }
    }
  }
  for (const row of rows.filter((r) => r.ranks > 1 && r.workers === 1)) {
    const base = rows.find((r) => r.ranks === 1 && r.workers === row.ranks);
    if (!base) continue;
    const n = Math.min(row.roundSamplesPerSecond.length, base.roundSamplesPerSecond.length);
    report.overhead.push({
      size,
      ranks: row.ranks,
      ratio: row.samplesPerSecond / base.samplesPerSecond,
      roundRatios: Array.from({ length: n }, (_, i) => row.roundSamplesPerSecond[i]! / base.roundSamplesPerSecond[i]!),
      target: OVERHEAD_TARGET,
    });
  }
}
