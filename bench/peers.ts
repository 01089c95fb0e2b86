/**
 * The peer benchmark behind `moe bench peers`: the benchmark's dense mixture (8 experts,
 * linear gate, Gaussian-mixture NLL, Adam, random regression data; `SIZE_SPECS`) trained on
 * identical shapes by
 *
 * - this library in-process (one thread) and with W shard workers (default min(cores, 8)),
 * - PyTorch (bench/peers/pytorch.ts), one process per thread configuration,
 *
 * all from the same initial parameters (this library's, handed to PyTorch as a safetensors
 * file) on the same batches (the standardised rows, handed over as raw float32), the first
 * steps' losses checked to agree; PyTorch measured twice per thread configuration, as is
 * and with subnormals flushed before `import torch`;
 *
 * measured interleaved: each round runs every system once (order reversed every other
 * round), at least three rounds by default, and the median round is reported, so drift in
 * the machine's load falls on every system alike. Each measurement records process CPU
 * time ÷ wall time; one that used more cores than its system may is invalid (left out of
 * the medians and of "PyTorch's best").
 *
 * In the same run, for each size: where the in-process step's time goes (sgemm, element-wise
 * kernels, optimiser, gate, synchronisation for the workers, the rest) and `gemmShare`, the
 * step's own sgemm calls replayed alone ÷ the step (bench/breakdown.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BackendRequest, OptionError } from '../src/index.js';
import { checkWorkerCount, expertShape, findTorchPython, gateShape, median, mlpParamCount, type TorchPython } from '../src/internal.js';
import { breakdownInProcess, breakdownWorkers, type GemmReplay, type StepBreakdown } from './breakdown.js';
import {
  BENCH_SIZES,
  benchHeader,
  blasThreadsOf,
  checkChoices,
  checkMillis,
  checkNonNegativeInt,
  checkPositiveInt,
  defaultWorkers,
  endLoad,
  loadNow,
  otherLoad,
  runInterleaved,
  SIZE_SPECS,
  startLoad,
  summariseRounds,
  type BenchHeader,
  type BenchSize,
  type Contender,
  type LoadAverage,
  type RoundSummary,
  type SizeSpec,
  type Window,
  type WindowPlan,
} from './harness.js';
import { configCores, PYTORCH_CONFIGS, runPytorchPeer, type PytorchConfigName } from './peers/pytorch.js';
import { BENCH_DATA, BENCH_LR, benchProblem, DENORMAL_MODES, startSession, stepper, sessionWindow, type BenchData, type BenchProblem, type DenormalMode } from './problem.js';

/** The sizes the peer benchmark runs. */
export const PEER_SIZES = BENCH_SIZES;
/** One of {@link PEER_SIZES}; see `SIZE_SPECS` for what each is. */
export type PeerSize = BenchSize;

/** The systems measured, in the order of the report. */
export const PEER_SYSTEMS = ['in-process', 'workers', 'pytorch'] as const;
/** A system measured: this library in-process or with workers, or PyTorch. */
export type PeerSystem = (typeof PEER_SYSTEMS)[number];

/** Experts in every mixture. */
export const PEER_EXPERTS = 8;
/** Timed steps per measurement at least, with data hard. */
export const HARD_MIN_STEPS = 50;

/** Options of {@link runPeerBenchmark}. */
export interface PeerOptions {
  /** Default all three (small, medium, large). */
  sizes?: PeerSize[];
  /** Interleaved rounds (default 3): every system is measured once per round; the median is reported. */
  rounds?: number;
  /** Exactly this many timed steps per measurement (overrides `timeMs` and `minSteps`). */
  steps?: number;
  /** Timed budget per measurement in ms; default 3000. */
  timeMs?: number;
  /** At least this many timed steps per measurement with `timeMs`; default 3. */
  minSteps?: number;
  /** Untimed steps before each measurement; default 2. */
  warmupSteps?: number;
  /** Worker threads of the parallel system; default min(cores, 8). */
  workers?: number;
  /** This library's compute provider (default auto: blas where OpenBLAS loads). */
  backend?: BackendRequest;
  /** CBLAS library for `blas`. */
  blasLibrary?: string;
  /** Run the PyTorch peer where an interpreter imports torch (default true). */
  pytorch?: boolean;
  /** PyTorch thread configurations (default all four). */
  pytorchConfigs?: PytorchConfigName[];
  /** PyTorch's denormal modes, each configuration measured in each (default both: `ieee` as is, `flush` FTZ/DAZ before import). */
  pytorchDenormals?: DenormalMode[];
  /** The data: `learnable` (default) or `hard` (independent random targets; at least 50 timed steps per measurement). */
  data?: BenchData;
  /** Subnormal floats in this library's compute (default flush); recorded in the report. */
  denormals?: DenormalMode;
  /** Environment PyTorch is looked for and run in (default process.env). */
  pythonEnv?: NodeJS.ProcessEnv;
  /** Measure where the time goes (breakdown and gemmShare) for each size (default true). */
  breakdown?: boolean;
  /** A stable name for this machine (default: CPU model and core count, slugged). */
  machine?: string;
  /** Seed of data and initialisation (default 1). */
  seed?: number;
  /** One line per measurement as it finishes. */
  onProgress?: (message: string) => void;
}

/** One system's measurement on one size: the median of its rounds. */
export interface PeerRow extends RoundSummary {
  /** Problem size. */
  size: PeerSize;
  /** What ran. */
  system: PeerSystem;
  /** PyTorch: the thread configuration (`torch1-blas1`, …). */
  config?: PytorchConfigName;
  /** PyTorch: run with FTZ/DAZ set before `import torch` and `torch.set_flush_denormal(True)`. */
  flushDenormal?: boolean;
  /** The system for people, e.g. `local-experts, 2 workers`. */
  label: string;
  /** Compute threads: 1, the worker count, or PyTorch's torch threads. */
  threads: number;
  /** Threads of the matrix-product library per compute thread (OpenBLAS). */
  blasThreads: number;
  /** Cores the system may use: what its CPU ÷ wall is held to. */
  cores: number;
  /** Compute underneath: this library's provider, or `torch <version>`. */
  compute: string;
  /** Rows per step. */
  batch: number;
  /** samples/s ÷ PyTorch's best valid one-core row (torch 1 / BLAS 1, either denormal mode), same size, same run. */
  vsPytorchOneCore?: number;
  /** samples/s ÷ PyTorch's best valid row on at most two cores (the one-core rows included, either mode), same size, same run. */
  vsPytorchBestTwoCore?: number;
  /** This library's rows: the ceiling of vsPytorchOneCore, that PyTorch step ÷ this library's sgemm-only time (the gemm replay, ÷ the row's compute threads with workers). */
  vsPytorchOneCoreCeiling?: number;
  /** This library's rows: the ceiling of vsPytorchBestTwoCore, likewise. */
  vsPytorchBestTwoCoreCeiling?: number;
}

/** A system that was asked for but not measured, and why. */
export interface PeerSkip {
  /** Problem size, or `all`. */
  size: PeerSize | 'all';
  /** The system. */
  system: PeerSystem;
  /** PyTorch: the configuration, where only it failed. */
  config?: PytorchConfigName;
  /** Why it did not run. */
  reason: string;
}

/** One size of the report: the workload, pinned, and where the in-process step's time goes. */
export interface PeerSizeEntry extends SizeSpec {
  /** Size name. */
  size: PeerSize;
  /** The experts' hidden activation (tanh; none for linear experts, reported as configured). */
  activation: string;
  /** Experts E. */
  experts: number;
  /** Parameters of one expert. */
  expertParams: number;
  /** Parameters of the gate. */
  gateParams: number;
  /** Approximate expert FLOPs per training step (6 × batch × expertParams × E). */
  flopsPerStep: number;
  /** The in-process step's own sgemm calls replayed alone ÷ its step time (null where not measured). */
  gemmShare: number | null;
  /** The rate of those calls, GFLOP/s (null where not measured). */
  gemmGflops: number | null;
  /** The replay in detail. */
  gemmReplay?: GemmReplay;
  /** Where one step's time goes: the in-process trainer, and the workers. */
  breakdown: StepBreakdown[];
  /** PyTorch's best valid configuration on one core, if any. */
  pytorchBestOneCore?: PytorchBest;
  /** PyTorch's best valid configuration on at most two cores (one-core rows included), if any. */
  pytorchBestTwoCore?: PytorchBest;
  /** This library and PyTorch from the same start on the same batches: their first losses. */
  lossCheck?: LossCheck;
}

/** A PyTorch row named by its configuration and denormal mode. */
export interface PytorchBest {
  config: PytorchConfigName;
  flushDenormal: boolean;
  samplesPerSecond: number;
  stepMicros: number;
}

/** Relative difference the first steps' losses may show (float32 sums in different orders, through Adam). */
export const LOSS_CHECK_TOLERANCE = 1e-3;
/** Steps from the start whose losses are compared. */
export const LOSS_CHECK_STEPS = 5;

/** The same-start check of one size. */
export interface LossCheck {
  /** Steps compared (from the start, warm-up included). */
  steps: number;
  /** This library's loss at each of them (in-process). */
  library: number[];
  /** PyTorch's at each of them (its first run). */
  pytorch: (number | null)[];
  /** The largest |PyTorch − library| ÷ |library| over every PyTorch run and step compared. */
  maxRelativeDifference: number;
  /** maxRelativeDifference ≤ {@link LOSS_CHECK_TOLERANCE}: the systems train the same thing. */
  agree: boolean;
}

/** What {@link runPeerBenchmark} returns. */
export interface PeerReport extends BenchHeader {
  /** This library's compute provider. */
  backend: string;
  /** Provider detail: library path or tfjs backend version. */
  backendDetail: string;
  /** OpenBLAS threads per compute thread of this library (OPENBLAS_NUM_THREADS as loaded). */
  blasThreads: number;
  /** Experts E in every mixture. */
  experts: number;
  /** Worker threads of the `workers` system. */
  workers: number;
  /** Interleaved rounds. */
  rounds: number;
  /** Timed budget per measurement, ms (absent with `steps`). */
  timeMs?: number;
  /** Exact timed steps per measurement (absent with `timeMs`). */
  steps?: number;
  /** PyTorch on this machine: the interpreter and version, or why not. */
  pytorch: {
    /** Some interpreter imports torch (and the peer ran). */
    available: boolean;
    /** `torch <version> (<python>)`, or why not. */
    detail: string;
  };
  /** The 1-minute load average at the start and the end. */
  loadAverage: LoadAverage;
  /** Each size measured. */
  sizes: PeerSizeEntry[];
  /** The data every system trained on: learnable (targets copy inputs) or hard (independent random targets). */
  data: BenchData;
  /** Subnormal floats in this library's compute. */
  denormals: DenormalMode;
  /** One row per (size, system[, configuration, denormal mode]) measured. */
  rows: PeerRow[];
  /** Systems not measured, with the reason (never left out silently). */
  skipped: PeerSkip[];
}

/** A measurement, or why this system stopped being measured. */
type Outcome = { window: Window; compute: string; losses?: (number | null)[] } | { error: string };

/** A contender of one size with what its rows need. */
interface PeerContender extends Contender<Outcome>, Pick<PeerRow, 'system' | 'config' | 'flushDenormal' | 'label' | 'threads' | 'blasThreads' | 'cores'> {}

/**
 * Row ratios against PyTorch's best valid rows of one size: on one core, and on at most two
 * (the one-core rows count), either denormal mode; invalid rows never count. With the gemm
 * replay's time (µs, one thread), this library's rows get each ratio's ceiling: that
 * PyTorch step ÷ the replay ÷ the row's compute threads (the experts' sgemm split evenly).
 */
export function addRatios(rows: PeerRow[], replayMicros?: number, cores = availableParallelism()): { bestTwoCore?: PeerRow; oneCore?: PeerRow } {
  const torch = rows.filter((r) => r.system === 'pytorch' && r.valid);
  const best = (max: number): PeerRow | undefined => torch.filter((r) => r.cores <= max).reduce<PeerRow | undefined>((b, r) => (b === undefined || r.samplesPerSecond > b.samplesPerSecond ? r : b), undefined);
  const oneCore = best(1);
  const bestTwoCore = best(2);
  for (const r of rows) {
    if (oneCore) r.vsPytorchOneCore = r.samplesPerSecond / oneCore.samplesPerSecond;
    if (bestTwoCore) r.vsPytorchBestTwoCore = r.samplesPerSecond / bestTwoCore.samplesPerSecond;
    if (replayMicros !== undefined && replayMicros > 0 && r.system !== 'pytorch') {
      const sgemmOnly = replayMicros / Math.min(r.threads, cores);
      if (oneCore) r.vsPytorchOneCoreCeiling = oneCore.stepMicros / sgemmOnly;
      if (bestTwoCore) r.vsPytorchBestTwoCoreCeiling = bestTwoCore.stepMicros / sgemmOnly;
    }
  }
  return { ...(bestTwoCore ? { bestTwoCore } : {}), ...(oneCore ? { oneCore } : {}) };
}

/** The largest relative difference of PyTorch's first losses (each run's) from this library's. */
export function lossDifference(library: readonly number[], runs: readonly (readonly (number | null)[])[]): number {
  let worst = 0;
  for (const run of runs) {
    for (let i = 0; i < library.length; i++) {
      const v = run[i];
      if (v === undefined) continue;
      const d = v === null ? Number.POSITIVE_INFINITY : Math.abs(v - library[i]!) / Math.max(Math.abs(library[i]!), 1e-12);
      if (!(d <= worst)) worst = d;
    }
  }
  return worst;
}

/** This library's loss at each of the first `steps` steps from the problem's initial parameters (in-process, the benchmark's batch order). */
async function libraryLosses(p: BenchProblem, steps: number): Promise<number[]> {
  const s = await startSession(p, { workers: 0 });
  try {
    const run = stepper(p, s);
    const out: number[] = [];
    for (let i = 0; i < steps; i++) out.push(await run());
    return out;
  } finally {
    await s.close();
  }
}

/**
 * The problem handed to PyTorch: its initial parameters (`Mixture.toSafetensors`) and its
 * standardised batches as raw float32 rows (D inputs then K targets), in the order the
 * library's steps take them (step t trains on batch t mod the batch count, from t = 1).
 */
async function writeTorchStart(p: BenchProblem, dir: string): Promise<{ init: string; data: string }> {
  const init = join(dir, `${p.spec.inputs}x${p.spec.outputs}-init.safetensors`);
  const data = join(dir, `${p.spec.inputs}x${p.spec.outputs}-batches.f32`);
  await writeFile(init, await p.mixture.toSafetensors());
  const { inputs: D, outputs: K } = p.spec;
  const nb = p.batches.length;
  const rows = new Float32Array(nb * p.batch * (D + K));
  let o = 0;
  for (let i = 0; i < nb; i++) {
    for (const r of p.batches[(i + 1) % nb]!) {
      rows.set(p.x.subarray(r * D, (r + 1) * D), o);
      rows.set(p.t.subarray(r * K, (r + 1) * K), o + D);
      o += D + K;
    }
  }
  await writeFile(data, new Uint8Array(rows.buffer));
  return { init, data };
}

/**
 * Run the peer benchmark (see the module comment). Takes about sizes × systems × rounds ×
 * (timeMs + start-up), plus the breakdown.
 */
export async function runPeerBenchmark(opts: PeerOptions = {}): Promise<PeerReport> {
  const cores = availableParallelism();
  const sizes = checkChoices(opts.sizes ?? [...PEER_SIZES], PEER_SIZES, 'sizes', 'size');
  const workers = opts.workers ?? Math.min(defaultWorkers(cores), PEER_EXPERTS);
  checkWorkerCount(workers, PEER_EXPERTS);
  const rounds = checkPositiveInt(opts.rounds ?? 3, 'rounds');
  const data = checkChoices([opts.data ?? 'learnable'], BENCH_DATA, 'data', 'data')[0]!;
  const denormals = checkChoices([opts.denormals ?? 'flush'], DENORMAL_MODES, 'denormals', 'mode')[0]!;
  const torchModes = checkChoices(opts.pytorchDenormals ?? [...DENORMAL_MODES].reverse(), DENORMAL_MODES, 'pytorchDenormals', 'mode');
  const steps = opts.steps === undefined ? undefined : checkPositiveInt(opts.steps, 'steps');
  // Hard data: a run long enough for its slowdown (the slowest 10-step window ÷ the fastest).
  if (data === 'hard' && steps !== undefined && steps < HARD_MIN_STEPS) throw new OptionError('steps', `must be at least ${HARD_MIN_STEPS} with data hard (its slowdown is measured over at least ${HARD_MIN_STEPS} steps), got ${steps}`);
  const timeMs = checkMillis(opts.timeMs ?? 3000, 'timeMs');
  const plan: WindowPlan = { steps, timeMs, minSteps: Math.max(checkPositiveInt(opts.minSteps ?? 3, 'minSteps'), data === 'hard' ? HARD_MIN_STEPS : 1) };
  const warmupSteps = checkNonNegativeInt(opts.warmupSteps ?? 2, 'warmupSteps');
  const torchConfigs = opts.pytorchConfigs ?? PYTORCH_CONFIGS.map((c) => c.config);
  checkChoices(torchConfigs, PYTORCH_CONFIGS.map((c) => c.config), 'pytorchConfigs', 'configuration');
  const seed = opts.seed ?? 1;
  const progress = opts.onProgress ?? (() => {});

  const report: PeerReport = {
    ...benchHeader(opts.machine),
    backend: '',
    backendDetail: '',
    blasThreads: 1,
    experts: PEER_EXPERTS,
    workers,
    rounds,
    ...(steps !== undefined ? { steps } : { timeMs }),
    pytorch: { available: false, detail: 'not run (pytorch: false)' },
    loadAverage: startLoad(),
    data,
    denormals,
    sizes: [],
    rows: [],
    skipped: [],
  };

  let torch: TorchPython | undefined;
  if (opts.pytorch ?? true) {
    const found = await findTorchPython(opts.pythonEnv ? { env: opts.pythonEnv } : {});
    if (found.python === undefined) {
      report.pytorch = { available: false, detail: found.reason };
      report.skipped.push({ size: 'all', system: 'pytorch', reason: found.reason });
    } else {
      torch = found;
      report.pytorch = { available: true, detail: `torch ${found.torch} (${found.python})` };
    }
  } else {
    report.skipped.push({ size: 'all', system: 'pytorch', reason: 'not asked for' });
  }

  const dir = torch ? await mkdtemp(join(tmpdir(), 'moe-bench-peers-')) : undefined;
  try {
  for (const size of sizes) {
    const spec = SIZE_SPECS[size];
    const p = await benchProblem(spec, { experts: PEER_EXPERTS, seed, targets: data, denormals, ...(opts.backend ? { backend: opts.backend } : {}), ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}), onWarning: progress });
    try {
      const start = dir ? await writeTorchStart(p, dir) : undefined;
      const m = p.mixture;
      report.backend = m.provider.name;
      report.backendDetail = m.provider.detail;
      report.blasThreads = blasThreadsOf(m.provider.name);
      const c = m.config;
      const P = mlpParamCount(expertShape(c));
      const flopsPerStep = 6 * spec.batch * P * PEER_EXPERTS;
      const entry: PeerSizeEntry = {
        size,
        ...spec,
        activation: p.activation,
        experts: PEER_EXPERTS,
        expertParams: P,
        gateParams: mlpParamCount(gateShape(c)),
        flopsPerStep,
        gemmShare: null,
        gemmGflops: null,
        breakdown: [],
      };
      report.sizes.push(entry);
      const contenders = peerContenders(p, size, { workers, cores, plan, warmupSteps, torch, torchConfigs, torchModes, start, opts });

      const results = await runInterleaved(contenders, rounds, (k, round, out) => {
        if ('error' in out) progress(`${size} ${k.label}: not measured: ${out.error}`);
        else progress(`${size} ${k.label} (round ${round + 1}/${rounds}): ${Math.round((out.window.steps * p.batch) / out.window.wallSeconds).toLocaleString('en-US')} samples/s over ${out.window.steps} steps, ${(out.window.cpuSeconds / out.window.wallSeconds).toFixed(2)} cores busy`);
      });

      const rows: PeerRow[] = [];
      contenders.forEach((k, i) => {
        const outs = results[i]!;
        const failed = outs.find((o): o is { error: string } => 'error' in o);
        if (failed) {
          report.skipped.push({ size, system: k.system, ...(k.config ? { config: k.config } : {}), reason: failed.error });
          return;
        }
        const ok = outs as Extract<Outcome, { window: Window }>[];
        const row: PeerRow = {
          size,
          system: k.system,
          ...(k.config ? { config: k.config } : {}),
          ...(k.flushDenormal !== undefined ? { flushDenormal: k.flushDenormal } : {}),
          label: k.label,
          threads: k.threads,
          blasThreads: k.blasThreads,
          cores: k.cores,
          compute: ok[0]!.compute,
          batch: p.batch,
          ...summariseRounds(ok.map((o) => o.window), p.batch, k.cores),
        };
        rows.push(row);
      });
      report.rows.push(...rows);

      // The same start: PyTorch's first losses, every run of it, against this library's.
      const torchLosses = contenders.flatMap((k, i) => (k.system === 'pytorch' ? results[i]!.flatMap((o) => ('losses' in o && o.losses ? [o.losses] : [])) : []));
      if (torchLosses.length) {
        const n = Math.min(LOSS_CHECK_STEPS, ...torchLosses.map((l) => l.length));
        const library = await libraryLosses(p, n);
        const diff = lossDifference(library, torchLosses);
        entry.lossCheck = { steps: n, library, pytorch: torchLosses[0]!.slice(0, n), maxRelativeDifference: diff, agree: diff <= LOSS_CHECK_TOLERANCE };
        progress(`${size}: the first ${n} losses of this library and of PyTorch (${torchLosses.length} runs) ${entry.lossCheck.agree ? 'agree' : 'DISAGREE'}: relative difference ≤ ${diff.toExponential(1)}`);
      }

      let replayMicros: number | undefined;
      if (opts.breakdown ?? true) {
        const bplan: WindowPlan = { steps, timeMs: timeMs / 2, minSteps: plan.minSteps };
        const inProc = await breakdownInProcess(p, { warmupSteps, plan: bplan, replayMs: timeMs / 2 });
        entry.gemmShare = inProc.replay.share;
        entry.gemmGflops = inProc.replay.gflops;
        entry.gemmReplay = inProc.replay;
        replayMicros = inProc.replay.replayMicros;
        entry.breakdown.push(inProc.breakdown);
        entry.breakdown.push(await breakdownWorkers(p, workers, inProc.shares, { warmupSteps, plan: bplan }));
        progress(`${size}: gemmShare ${inProc.replay.share.toFixed(2)} (${inProc.replay.calls} sgemm calls, ${inProc.replay.gflops.toFixed(1)} GFLOP/s replayed alone)`);
      }
      const best = addRatios(rows, replayMicros, cores);
      const named = (r: PeerRow): PytorchBest => ({ config: r.config!, flushDenormal: r.flushDenormal ?? false, samplesPerSecond: r.samplesPerSecond, stepMicros: r.stepMicros });
      if (best.oneCore) entry.pytorchBestOneCore = named(best.oneCore);
      if (best.bestTwoCore) entry.pytorchBestTwoCore = named(best.bestTwoCore);
    } finally {
      await p.mixture.close();
    }
  }
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
  endLoad(report.loadAverage, progress, cores);
  return report;
}

interface ContenderContext {
  workers: number;
  cores: number;
  plan: WindowPlan;
  warmupSteps: number;
  torch: TorchPython | undefined;
  torchConfigs: readonly PytorchConfigName[];
  torchModes: readonly DenormalMode[];
  /** The initial parameters and batches handed to PyTorch. */
  start: { init: string; data: string } | undefined;
  opts: PeerOptions;
}

/** The systems of one size, in report order. */
function peerContenders(p: BenchProblem, size: PeerSize, x: ContenderContext): PeerContender[] {
  const blas = blasThreadsOf(p.mixture.provider.name);
  const compute = p.mixture.provider.name;
  const out: PeerContender[] = [
    {
      name: 'in-process',
      system: 'in-process',
      label: 'local-experts, in-process',
      threads: 1,
      blasThreads: blas,
      cores: 1,
      measure: async () => ({ window: await sessionWindow(p, { workers: 0, warmupSteps: x.warmupSteps, plan: x.plan }), compute }),
    },
    {
      name: 'workers',
      system: 'workers',
      label: `local-experts, ${x.workers} workers`,
      threads: x.workers,
      blasThreads: blas,
      // The main thread runs the gate beside the shards: a core of its own where there is one.
      cores: Math.min(x.workers + 1, x.cores),
      measure: async () => ({ window: await sessionWindow(p, { workers: x.workers, warmupSteps: x.warmupSteps, plan: x.plan }), compute }),
    },
  ];
  const torch = x.torch;
  if (torch) {
    for (const name of x.torchConfigs) {
      for (const mode of x.torchModes) {
        const c = PYTORCH_CONFIGS.find((k) => k.config === name)!;
        const flushDenormal = mode === 'flush';
        let failure: string | undefined;
        out.push({
          name: `pytorch ${name} ${mode}`,
          system: 'pytorch',
          config: name,
          flushDenormal,
          label: `PyTorch, ${c.processes > 1 ? `DDP over gloo, ${c.processes} processes of 1 thread` : `torch ${c.threads} / BLAS ${c.blasThreads} thread${c.threads * c.blasThreads > 1 ? 's' : ''}`}, ${flushDenormal ? 'flushed before import' : 'as is'}`,
          threads: c.threads * c.processes,
          blasThreads: c.blasThreads,
          cores: configCores(c),
          measure: async () => {
            // A script that fails on an interpreter that imports torch is said so, and not run again.
            if (failure !== undefined) return { error: failure };
            try {
              const r = await runPytorchPeer(size, {
                configs: [name],
                python: torch,
                ...(x.opts.pythonEnv ? { env: x.opts.pythonEnv } : {}),
                ...(x.plan.steps !== undefined ? { steps: x.plan.steps } : { timeSeconds: Math.max(x.plan.timeMs, 1) / 1000, minSteps: x.plan.minSteps }),
                warmupSteps: x.warmupSteps,
                lr: BENCH_LR,
                flushDenormal,
                ...(x.start ? { init: x.start.init, data: x.start.data } : {}),
              });
              const row = r.rows[0];
              if (!row) return { error: (failure = r.skipped ?? 'PyTorch ran no configuration') };
              const times = row.stepSeconds;
              const window: Window = { steps: row.steps, wallSeconds: row.wallSeconds, cpuSeconds: row.cpuSeconds, medianStepSeconds: times.length ? median(times) : row.wallSeconds / row.steps, stepSeconds: times, otherLoad: otherLoad(loadNow(), row.cpuPerWall) };
              return { window, compute: `torch ${row.torch}, experts ${row.impl}`, losses: row.losses };
            } catch (err) {
              return { error: (failure = (err as Error).message) };
            }
          },
        });
      }
    }
  }
  return out;
}
