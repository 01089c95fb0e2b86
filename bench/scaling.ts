/**
 * The scaling benchmark: dense mixtures of one expert count, trained step by step with 1…W
 * worker threads (and in-process, for reference), measuring throughput, parallel
 * efficiency and the synchronisation cost of each phase against the bare round trip of the
 * trainer's own signalling (`ThreadRunner.ping`) on the same runner in the same run.
 *
 * Steps are timed with tinybench, one task per worker count and size, after a fixed
 * warm-up that each task runs itself (tinybench warms every task before running any, which
 * would keep every task's runner and memory alive at once).
 */
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bench } from 'tinybench';
import type { BackendRequest } from '../src/index.js';
import { checkWorkerCount, CMD, expertShape, gateShape, mlpParamCount, type ThreadRunner, type TrainingSession } from '../src/internal.js';
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
  loadNow,
  otherLoad,
  num,
  SIZE_SPECS,
  startLoad,
  type BenchHeader,
  type BenchSize,
  type LoadAverage,
  type SizeSpec,
} from './harness.js';
import { benchProblem, startSession, stepper } from './problem.js';
import { perPhaseMicros, StepTimer, TimedRunner } from './step-timer.js';

export { SIZE_SPECS, type SizeSpec };

/** The benchmark's problem sizes (see {@link SIZE_SPECS}). */
export const SCALING_SIZES = BENCH_SIZES;
/** One of {@link SCALING_SIZES}; see {@link SIZE_SPECS} for what each is. */
export type ScalingSize = BenchSize;

/** Idle time before each of the "idle" pings, ms (of the order of a medium phase). */
export const IDLE_GAP_MS = 20;

/** Options of {@link runScalingBenchmark}. */
export interface ScalingOptions {
  /** Default all three. */
  sizes?: ScalingSize[];
  /** Worker counts; 1 is always measured (speedups are against it). Default 1, 2, 4, … ≤ min(cores, experts), and cores. */
  workers?: number[];
  /** Experts in every mixture; default 8, or 16 on machines with more than 8 cores. */
  experts?: number;
  /** Compute provider (default auto). */
  backend?: BackendRequest;
  /** CBLAS library for `blas`. */
  blasLibrary?: string;
  /** Timed budget per (size, workers) measurement in ms (tinybench `time`); default 3000. */
  timeMs?: number;
  /** At least this many timed steps per measurement (tinybench `iterations`); default 5. */
  minSteps?: number;
  /** Untimed steps before each measurement; default 3. */
  warmupSteps?: number;
  /** `ping()` round trips averaged per runner; default 500. */
  pings?: number;
  /** Also time the in-process trainer on every size (default true). */
  inProcess?: boolean;
  /** A stable name for this machine (default: CPU model and core count, slugged). */
  machine?: string;
  /** Seed of data and initialisation (default 1). */
  seed?: number;
  /** One line per measurement as it finishes. */
  onProgress?: (message: string) => void;
}

/** One (size, workers) measurement. */
export interface ScalingRow {
  /** Problem size measured. */
  size: ScalingSize;
  /** Worker threads W (shards). */
  workers: number;
  /** Rows per step. */
  batch: number;
  /** Timed steps. */
  steps: number;
  /** Mean wall time of one step, µs. */
  stepMicros: number;
  /** Relative margin of error of the step time (tinybench, %, 95%). */
  rmePercent: number;
  /** Training rows per second (batch ÷ mean step time). */
  samplesPerSecond: number;
  /** samples/s ÷ samples/s with 1 worker. */
  speedup: number;
  /** samples/s ÷ (samples/s with 1 worker × min(W, cores)). */
  efficiency: number;
  /**
   * Synchronisation per phase, µs: the phase's wall time on the main thread (signal to
   * resumed after the wait) minus the longer of the slowest shard's compute in that phase
   * and the main thread's own overlapping work, averaged over the 3 phases of every step.
   */
  syncMicros: number;
  /** The slowest shard's compute per phase, µs (mean over phases). */
  shardComputeMicros: number;
  /** `syncMicros` per phase, µs. */
  syncMicrosByPhase: PhaseMicros;
  /** `shardComputeMicros` per phase, µs. */
  shardComputeMicrosByPhase: PhaseMicros;
  /** Mean `runner.ping()` on the same runner: the bare signal-and-wait round trip, µs. */
  atomicsRoundTripMicros: number;
  /**
   * The same round trip after every thread has been idle for `IDLE_GAP_MS` (20 ms), µs: what
   * a phase that ends after milliseconds of compute pays to wake its waiting threads.
   */
  idleRoundTripMicros: number;
  /** The in-process trainer on the same size, same data, same step code. */
  inProcessSamplesPerSecond?: number;
  /** efficiency above {@link SUSPECT_EFFICIENCY}: more than W cores can give, so the 1-worker baseline was probably disturbed. */
  suspect: boolean;
  /** Other processes' load was high when this measurement ended (see `LoadAverage`). */
  busy: boolean;
  /** Other processes' load when this measurement ended: the 1-minute load less this benchmark's busy threads (min(W + 1, cores)). */
  otherLoad: number;
}

/** Efficiency above which a row is flagged suspect (the published large-size result is 101%). */
export const SUSPECT_EFFICIENCY = 1.1;

/** Mean µs of one phase. */
export interface PhaseMicros {
  /** FORWARD phase, µs. */
  forward: number;
  /** BACKWARD phase, µs. */
  backward: number;
  /** UPDATE phase, µs. */
  update: number;
}

/** What {@link runScalingBenchmark} returns. */
export interface ScalingReport extends BenchHeader {
  /** Compute provider the benchmark ran on. */
  backend: string;
  /** Provider detail: library path or tfjs backend version. */
  backendDetail: string;
  /** Experts E in every mixture. */
  experts: number;
  /** The system's 1-minute load average when the run started and ended (other processes compete for the cores). */
  loadAverage: LoadAverage;
  /** Each size measured, with its parameter counts. */
  sizes: ({
    /** Size name. */
    size: ScalingSize;
    /** Parameters of one expert. */
    expertParams: number;
    /** Parameters of the gate. */
    gateParams: number;
    /** Approximate expert FLOPs per training step (6 × batch × expertParams × E). */
    flopsPerStep: number;
  } & SizeSpec)[];
  /** One measurement per (size, workers). */
  rows: ScalingRow[];
}

/** 1, 2, 4, … up to min(cores, experts), then `cores` itself when it fits. */
export function defaultWorkerCounts(cores: number, experts: number): number[] {
  const cap = Math.min(cores, experts);
  const out: number[] = [];
  for (let w = 1; w <= cap; w *= 2) out.push(w);
  if (!out.includes(cap)) out.push(cap);
  return out;
}

/** What one timed measurement leaves behind. */
interface Measured {
  steps: number;
  stepMicros: number;
  rmePercent: number;
  syncMicros?: number;
  shardComputeMicros?: number;
  syncMicrosByPhase?: PhaseMicros;
  shardComputeMicrosByPhase?: PhaseMicros;
  atomicsRoundTripMicros?: number;
  idleRoundTripMicros?: number;
  otherLoad: number;
}

/**
 * Run the scaling benchmark (see the module comment). Takes tens of seconds to minutes:
 * about (workers counts + 1) × sizes × (timeMs + start-up).
 */
export async function runScalingBenchmark(opts: ScalingOptions = {}): Promise<ScalingReport> {
  const cores = availableParallelism();
  const experts = opts.experts === undefined ? defaultExperts(cores) : checkPositiveInt(opts.experts, 'experts');
  const sizes = checkChoices(opts.sizes ?? [...SCALING_SIZES], SCALING_SIZES, 'sizes', 'size');
  const requested = opts.workers ?? defaultWorkerCounts(cores, experts);
  for (const w of requested) {
    checkWorkerCount(w, experts);
  }
  const workerCounts = [...new Set([1, ...requested])].sort((a, b) => a - b);
  const timeMs = checkMillis(opts.timeMs ?? 3000, 'timeMs');
  const minSteps = checkPositiveInt(opts.minSteps ?? 5, 'minSteps');
  const warmupSteps = checkNonNegativeInt(opts.warmupSteps ?? 3, 'warmupSteps');
  const pings = checkPositiveInt(opts.pings ?? 500, 'pings');
  const seed = opts.seed ?? 1;
  const progress = opts.onProgress ?? (() => {});

  const report: ScalingReport = {
    ...benchHeader(opts.machine),
    backend: '',
    backendDetail: '',
    experts,
    loadAverage: startLoad(),
    sizes: [],
    rows: [],
  };

  for (const size of sizes) {
    const spec = SIZE_SPECS[size];
    const p = await benchProblem(spec, {
      experts,
      seed,
      ...(opts.backend ? { backend: opts.backend } : {}),
      ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}),
      onWarning: progress,
    });
    const m = p.mixture;
    report.backend = m.provider.name;
    report.backendDetail = m.provider.detail;
    const c = m.config;
    const P = mlpParamCount(expertShape(c));
    report.sizes.push({ size, ...spec, expertParams: P, gateParams: mlpParamCount(gateShape(c)), flopsPerStep: 6 * spec.batch * P * experts });
    const B = spec.batch;

    const measured = new Map<number, Measured>();
    // Everything a task's hooks set up, torn down in afterAll.
    let run: (() => Promise<number>) | undefined;
    let clock: StepTimer | undefined;
    let timed: TimedRunner | undefined;
    let runner: ThreadRunner | undefined;
    let session: TrainingSession | undefined;

    const bench = new Bench({
      name: `scaling ${size}`,
      time: timeMs,
      iterations: minSteps,
      warmup: false,
      throws: true,
    });
    const fn = (): Promise<number> => run!();
    // afterAll runs before tinybench has computed the task's result: the runner-side numbers
    // are kept here, and joined with the step timings once the task's cycle ends.
    const runnerSide = new Map<number, Required<Pick<Measured, 'syncMicros' | 'shardComputeMicros' | 'syncMicrosByPhase' | 'shardComputeMicrosByPhase' | 'atomicsRoundTripMicros' | 'idleRoundTripMicros'>>>();

    if (opts.inProcess ?? true) {
      bench.add('in-process', fn, {
        async: true,
        beforeAll: async () => {
          session = await startSession(p, { workers: 0 });
          run = stepper(p, session);
          for (let i = 0; i < warmupSteps; i++) await run();
        },
        afterAll: async () => {
          run = undefined;
          await session?.close();
          session = undefined;
        },
      });
    }
    for (const workers of workerCounts) {
      bench.add(`${workers} worker${workers === 1 ? '' : 's'}`, fn, {
        async: true,
        beforeAll: async () => {
          const s = await startSession(p, {
            workers,
            wrapRunner: (inner, views) => {
              runner = inner as ThreadRunner;
              clock = new StepTimer();
              return (timed = new TimedRunner(inner, views.busy, clock));
            },
          });
          const started = runner!;
          const timer = clock!;
          const wrapper = timed!;
          run = stepper(p, s);
          try {
            for (let i = 0; i < warmupSteps; i++) await run();
          } catch (err) {
            // afterAll does not run when beforeAll throws.
            runner = undefined;
            await started.close();
            throw err;
          }
          // Only the runner's phase timers: the steps' own are tinybench's.
          timer.reset();
          wrapper.resync();
          timer.on = true;
        },
        afterAll: async () => {
          const started = runner, k = clock;
          run = undefined;
          runner = undefined;
          clock = undefined;
          timed = undefined;
          if (k) k.on = false;
          if (!started) return;
          try {
            if (k && k.phases[CMD.UPDATE]! > 0) {
              // The bare round trip, on the same runner right after its steps.
              for (let i = 0; i < Math.min(50, pings); i++) await started.ping();
              const t0 = performance.now();
              for (let i = 0; i < pings; i++) await started.ping();
              const hot = ((performance.now() - t0) * 1000) / pings;
              let idle = 0;
              const idlePings = Math.min(20, pings);
              for (let i = 0; i < idlePings; i++) {
                await sleep(IDLE_GAP_MS);
                const t = performance.now();
                await started.ping();
                idle += performance.now() - t;
              }
              const byPhase = (of: Float64Array): PhaseMicros => ({ forward: perPhaseMicros(k, of, CMD.FORWARD), backward: perPhaseMicros(k, of, CMD.BACKWARD), update: perPhaseMicros(k, of, CMD.UPDATE) });
              runnerSide.set(workers, {
                syncMicros: perPhaseMicros(k, k.syncMs),
                shardComputeMicros: perPhaseMicros(k, k.shardMs),
                syncMicrosByPhase: byPhase(k.syncMs),
                shardComputeMicrosByPhase: byPhase(k.shardMs),
                atomicsRoundTripMicros: hot,
                idleRoundTripMicros: (idle * 1000) / idlePings,
              });
            }
          } finally {
            await started.close();
          }
        },
      });
    }
    bench.addEventListener('cycle', (e) => {
      const t = e.task;
      if (!t) return;
      const r = t.result;
      if (r.state !== 'completed') return;
      const w = t.name === 'in-process' ? 0 : Number.parseInt(t.name, 10);
      // Other processes' load: this benchmark's busy threads are the workers and the main thread.
      const out: Measured = { steps: t.runs, stepMicros: r.period * 1000, rmePercent: r.latency.rme, otherLoad: otherLoad(loadNow(), Math.min(w + 1, cores)), ...runnerSide.get(w) };
      measured.set(w, out);
      progress(
        `${size} ${t.name}: ${num((B * 1e6) / out.stepMicros)} samples/s over ${out.steps} steps (${num(out.stepMicros)} µs/step ±${out.rmePercent.toFixed(1)}%)` +
          (out.syncMicros !== undefined ? `, sync ${num(out.syncMicros)} µs/phase, ping ${num(out.atomicsRoundTripMicros!)} µs (${num(out.idleRoundTripMicros!)} after idling)` : ''),
      );
    });
    try {
      await bench.run();
    } finally {
      await m.close();
    }

    const base = measured.get(1);
    if (!base) throw new Error(`the 1-worker measurement of ${size} is missing`);
    const baseSps = (B * 1e6) / base.stepMicros;
    const inProc = measured.get(0);
    for (const workers of workerCounts) {
      const r = measured.get(workers);
      if (!r || r.syncMicros === undefined || r.atomicsRoundTripMicros === undefined || r.idleRoundTripMicros === undefined) throw new Error(`the ${workers}-worker measurement of ${size} is missing`);
      const sps = (B * 1e6) / r.stepMicros;
      const row: ScalingRow = {
        size,
        workers,
        batch: B,
        steps: r.steps,
        stepMicros: r.stepMicros,
        rmePercent: r.rmePercent,
        samplesPerSecond: sps,
        speedup: workers === 1 ? 1 : sps / baseSps,
        efficiency: workers === 1 ? 1 : sps / (baseSps * Math.min(workers, cores)),
        syncMicros: r.syncMicros,
        shardComputeMicros: r.shardComputeMicros!,
        syncMicrosByPhase: r.syncMicrosByPhase!,
        shardComputeMicrosByPhase: r.shardComputeMicrosByPhase!,
        atomicsRoundTripMicros: r.atomicsRoundTripMicros,
        idleRoundTripMicros: r.idleRoundTripMicros,
        suspect: false,
        busy: isBusy(r.otherLoad, cores),
        otherLoad: r.otherLoad,
      };
      row.suspect = row.efficiency > SUSPECT_EFFICIENCY;
      if (row.suspect) progress(`warning: ${size} at ${workers} workers: efficiency ${(row.efficiency * 100).toFixed(0)}% is above ${SUSPECT_EFFICIENCY * 100}%, suspect (the 1-worker baseline was probably slowed by other work)`);
      if (inProc) row.inProcessSamplesPerSecond = (B * 1e6) / inProc.stepMicros;
      report.rows.push(row);
    }
  }
  endLoad(report.loadAverage, progress, cores);
  return report;
}
