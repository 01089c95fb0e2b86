/**
 * The scaling benchmark: dense mixtures of one expert count, trained step by step with 1…W
 * worker threads (and in-process, for reference), measuring throughput, parallel
 * efficiency and the synchronisation cost of each phase against the bare round trip of the
 * trainer's own signalling (`ParallelPool.ping`) on the same pool in the same run.
 *
 * Steps are timed with tinybench, one task per worker count and size, after a fixed
 * warm-up that each task runs itself (tinybench warms every task before running any, which
 * would keep every task's pool and memory alive at once).
 */
import { availableParallelism, cpus, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bench } from 'tinybench';
import type { BackendRequest } from '../compute/provider.js';
import type { Dataset } from '../data/dataset.js';
import { fitStandardizer } from '../data/standardize.js';
import { OptionError } from '../errors.js';
import { BUSY_SLOTS, CMD } from '../memory/layout.js';
import { Mixture } from '../mixture.js';
import { expertShape, gateShape } from '../model/config.js';
import { mlpParamCount } from '../model/mlp.js';
import { checkWorkerCount } from '../engine/plan.js';
import type { ParallelPool } from '../parallel/pool.js';
import { Rng } from '../rng.js';
import type { ExpertPool } from '../engine/pool.js';
import { kernelSetFromEnv } from '../kernels/index.js';
import { trainingData } from '../train/data.js';
import { TrainingSession } from '../train/session.js';
import type { BenchHeader } from './report.js';

/** The benchmark's problem sizes. */
export const SCALING_SIZES = ['small', 'medium', 'large'] as const;
/** One of {@link SCALING_SIZES}; see {@link SIZE_SPECS} for what each is. */
export type ScalingSize = (typeof SCALING_SIZES)[number];

/** One size: a regression mixture of `expert` nets D → … → K, trained on batches of `batch` rows. */
export interface SizeSpec {
  /** Input width D. */
  inputs: number;
  /** Output width K. */
  outputs: number;
  /** Expert net as the CLI spells it. */
  expert: string;
  /** Rows per training step. */
  batch: number;
  /** What it stands for. */
  note: string;
}

/**
 * small: the paper's shape (2 formants in, 4 outputs, linear experts and gate), batch 32;
 * medium and large: MLP experts heavy enough for the threads to matter. Every size is a
 * regression on random data with the Gaussian-mixture NLL and Adam.
 */
export const SIZE_SPECS: Record<ScalingSize, SizeSpec> = {
  small: { inputs: 2, outputs: 4, expert: 'linear', batch: 32, note: 'linear 2→4, the paper’s vowel shape' },
  medium: { inputs: 256, outputs: 256, expert: 'mlp:512', batch: 512, note: 'MLP 256→512→256' },
  large: { inputs: 1024, outputs: 1024, expert: 'mlp:1024', batch: 256, note: 'MLP 1024→1024→1024' },
};

/** Batches of distinct rows held in memory per size: the steps cycle over them. */
const BATCHES = 8;
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
  /** `ping()` round trips averaged per pool; default 500. */
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
  /** Mean `pool.ping()` on the same pool: the bare signal-and-wait round trip, µs. */
  atomicsRoundTripMicros: number;
  /**
   * The same round trip after every thread has been idle for `IDLE_GAP_MS` (20 ms), µs: what
   * a phase that ends after milliseconds of compute pays to wake its waiting threads.
   */
  idleRoundTripMicros: number;
  /** The in-process trainer on the same size, same data, same step code. */
  inProcessSamplesPerSecond?: number;
}

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
  loadAverage: {
    /** At the start of the run. */
    start: number;
    /** At the end of the run. */
    end: number;
  };
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

/** `AMD EPYC 7B13` on 2 cores → `amd-epyc-7b13-2c`. */
export function machineSlug(model = cpus()[0]?.model ?? 'unknown-cpu', cores = availableParallelism()): string {
  const s = `${model}-${cores}c`
    .toLowerCase()
    .replace(/\(r\)|\(tm\)/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return s || `machine-${cores}c`;
}

/** 1, 2, 4, … up to min(cores, experts), then `cores` itself when it fits. */
export function defaultWorkerCounts(cores: number, experts: number): number[] {
  const cap = Math.min(cores, experts);
  const out: number[] = [];
  for (let w = 1; w <= cap; w *= 2) out.push(w);
  if (!out.includes(cap)) out.push(cap);
  return out;
}

/**
 * An ExpertPool around the parallel pool that times every phase on the main thread and
 * reads each shard's compute time for that phase from the shared `busy` region, so that
 * synchronisation is measured per phase, not inferred from totals. No allocation beyond
 * the one promise per phase the wait itself costs.
 */
class PhaseClock implements ExpertPool {
  readonly workers: number;
  private begun = 0;
  private called = 0;
  private readonly last: Float64Array;
  /** Since reset, indexed by CMD: phases run, sync ms, slowest-shard compute ms. */
  readonly phases = new Float64Array(4);
  readonly syncMs = new Float64Array(4);
  readonly computeMs = new Float64Array(4);

  constructor(
    private readonly inner: ParallelPool,
    private readonly busy: Float64Array,
  ) {
    this.workers = inner.workers;
    this.last = new Float64Array(busy.length);
    this.reset();
  }

  reset(): void {
    this.last.set(this.busy);
    this.phases.fill(0);
    this.syncMs.fill(0);
    this.computeMs.fill(0);
  }

  /** Mean µs per phase of `of` (syncMs or computeMs) for one command, or over all three. */
  micros(of: Float64Array, cmd?: number): number {
    if (cmd !== undefined) return (of[cmd]! * 1000) / this.phases[cmd]!;
    let sum = 0, n = 0;
    for (const c of [CMD.FORWARD, CMD.BACKWARD, CMD.UPDATE]) {
      sum += of[c]!;
      n += this.phases[c]!;
    }
    return (sum * 1000) / n;
  }

  private end(cmd: number): void {
    const now = performance.now();
    let slowest = 0;
    for (let k = 0; k < this.workers; k++) {
      const i = k * BUSY_SLOTS + cmd;
      const b = this.busy[i]!;
      const d = b - this.last[i]!;
      this.last[i] = b;
      if (d > slowest) slowest = d;
    }
    const own = this.called - this.begun;
    this.syncMs[cmd] = this.syncMs[cmd]! + (now - this.begun - (slowest > own ? slowest : own));
    this.computeMs[cmd] = this.computeMs[cmd]! + slowest;
    this.phases[cmd] = this.phases[cmd]! + 1;
  }

  beginForward(rows: number, step: number): void {
    this.begun = performance.now();
    this.inner.beginForward(rows, step);
  }
  async finishForward(): Promise<void> {
    this.called = performance.now();
    await this.inner.finishForward();
    this.end(CMD.FORWARD);
  }
  beginBackward(rows: number, step: number): void {
    this.begun = performance.now();
    this.inner.beginBackward(rows, step);
  }
  async finishBackward(): Promise<void> {
    this.called = performance.now();
    await this.inner.finishBackward();
    this.end(CMD.BACKWARD);
  }
  beginUpdate(lr: number, step: number): void {
    this.begun = performance.now();
    this.inner.beginUpdate(lr, step);
  }
  async finishUpdate(): Promise<void> {
    this.called = performance.now();
    await this.inner.finishUpdate();
    this.end(CMD.UPDATE);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Random regression data: inputs N(0,1), each target a noisy copy of one input. */
/** Random regression rows for a size: standard normal inputs, targets a noisy copy of them. */
export function randomData(spec: SizeSpec, rows: number, rng: Rng): Dataset {
  const { inputs: D, outputs: K } = spec;
  const x = new Float32Array(rows * D);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const y = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) y[r * K + k] = x[r * D + (k % D)]! + 0.1 * rng.normal();
  return { task: 'regression', n: rows, inputs: D, x, outputs: K, y, source: 'random' };
}

/** The option as a positive integer, or OptionError naming it. */
export function checkPositiveInt(v: unknown, option: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new OptionError(option, `must be a positive integer, got ${String(v)}`);
  return v;
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
}

/**
 * Run the scaling benchmark (see the module comment). Takes tens of seconds to minutes:
 * about (workers counts + 1) × sizes × (timeMs + start-up).
 */
export async function runScalingBenchmark(opts: ScalingOptions = {}): Promise<ScalingReport> {
  const cores = availableParallelism();
  const experts = opts.experts === undefined ? (cores > 8 ? 16 : 8) : checkPositiveInt(opts.experts, 'experts');
  const sizes = opts.sizes ?? [...SCALING_SIZES];
  if (sizes.length === 0) throw new OptionError('sizes', 'no size given');
  for (const s of sizes) {
    if (!(SCALING_SIZES as readonly string[]).includes(s)) throw new OptionError('sizes', `unknown size ${JSON.stringify(s)} (expected ${SCALING_SIZES.join(', ')})`);
  }
  const requested = opts.workers ?? defaultWorkerCounts(cores, experts);
  for (const w of requested) {
    checkWorkerCount(w, experts);
  }
  const workerCounts = [...new Set([1, ...requested])].sort((a, b) => a - b);
  const timeMs = opts.timeMs ?? 3000;
  if (!(timeMs >= 0)) throw new OptionError('timeMs', `must be ≥ 0, got ${timeMs}`);
  const minSteps = checkPositiveInt(opts.minSteps ?? 5, 'minSteps');
  const warmupSteps = opts.warmupSteps ?? 3;
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new OptionError('warmupSteps', `must be an integer ≥ 0, got ${warmupSteps}`);
  const pings = checkPositiveInt(opts.pings ?? 500, 'pings');
  const seed = opts.seed ?? 1;
  const progress = opts.onProgress ?? (() => {});

  const report: ScalingReport = {
    machine: opts.machine ?? machineSlug(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores,
    backend: '',
    backendDetail: '',
    experts,
    node: process.version,
    date: new Date().toISOString(),
    loadAverage: { start: loadavg()[0]!, end: NaN },
    sizes: [],
    rows: [],
  };

  for (const size of sizes) {
    const spec = SIZE_SPECS[size];
    const m = await Mixture.create({
      task: 'regression',
      inputs: spec.inputs,
      outputs: spec.outputs,
      experts,
      expert: spec.expert,
      gate: 'linear',
      loss: 'gaussian',
      optimizer: 'adam',
      // A modest rate: thousands of steps revisit the same 8 batches.
      lr: 1e-3,
      seed,
      backend: opts.backend ?? 'auto',
      ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}),
      onWarning: progress,
    });
    report.backend = m.provider.name;
    report.backendDetail = m.provider.detail;
    const c = m.config;
    const P = mlpParamCount(expertShape(c));
    report.sizes.push({ size, ...spec, expertParams: P, gateParams: mlpParamCount(gateShape(c)), flopsPerStep: 6 * spec.batch * P * experts });

    const B = spec.batch;
    const data = randomData(spec, B * BATCHES, new Rng(seed));
    m.state.inputScaler = fitStandardizer(data.x, data.n, c.inputs);
    m.state.targetScaler = fitStandardizer(data.y!, data.n, c.outputs);
    const standardised = trainingData(m.state, data);
    const kernels = kernelSetFromEnv();
    // Every step trains on one of BATCHES fixed, disjoint row lists: no allocation per step.
    const batches = Array.from({ length: BATCHES }, (_, i) => Int32Array.from({ length: B }, (_, r) => i * B + r));

    const measured = new Map<number, Measured>();
    // Everything a task's hooks set up, torn down in afterAll.
    let run: (() => Promise<number>) | undefined;
    let clock: PhaseClock | undefined;
    let pool: ParallelPool | undefined;
    let session: TrainingSession | undefined;

    const stepper = (s: TrainingSession): (() => Promise<number>) => {
      let t = 0;
      return () => {
        t++;
        return s.step.run(batches[t % BATCHES]!, m.optimizer.lr, t);
      };
    };

    const bench = new Bench({
      name: `scaling ${size}`,
      time: timeMs,
      iterations: minSteps,
      warmup: false,
      throws: true,
    });
    const fn = (): Promise<number> => run!();
    // afterAll runs before tinybench has computed the task's result: the pool-side numbers
    // are kept here, and joined with the step timings once the task's cycle ends.
    const poolSide = new Map<number, Required<Pick<Measured, 'syncMicros' | 'shardComputeMicros' | 'syncMicrosByPhase' | 'shardComputeMicrosByPhase' | 'atomicsRoundTripMicros' | 'idleRoundTripMicros'>>>();

    if (opts.inProcess ?? true) {
      bench.add('in-process', fn, {
        async: true,
        beforeAll: async () => {
          session = await TrainingSession.start(m.state, m.provider, standardised, { maxBatch: B, workers: 0, kernels });
          run = stepper(session);
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
          const s = await TrainingSession.start(m.state, m.provider, standardised, {
            maxBatch: B,
            workers,
            kernels,
            wrapPool: (inner, views) => {
              pool = inner as ParallelPool;
              return (clock = new PhaseClock(pool, views.busy));
            },
          });
          const p = pool!;
          const timer = clock!;
          run = stepper(s);
          try {
            for (let i = 0; i < warmupSteps; i++) await run();
          } catch (err) {
            // afterAll does not run when beforeAll throws.
            pool = undefined;
            await p.close();
            throw err;
          }
          timer.reset();
        },
        afterAll: async () => {
          const p = pool, k = clock;
          run = undefined;
          pool = undefined;
          clock = undefined;
          if (!p) return;
          try {
            if (k && k.phases[CMD.UPDATE]! > 0) {
              // The bare round trip, on the same pool right after its steps.
              for (let i = 0; i < Math.min(50, pings); i++) await p.ping();
              const t0 = performance.now();
              for (let i = 0; i < pings; i++) await p.ping();
              const hot = ((performance.now() - t0) * 1000) / pings;
              let idle = 0;
              const idlePings = Math.min(20, pings);
              for (let i = 0; i < idlePings; i++) {
                await sleep(IDLE_GAP_MS);
                const t = performance.now();
                await p.ping();
                idle += performance.now() - t;
              }
              const byPhase = (of: Float64Array): PhaseMicros => ({ forward: k.micros(of, CMD.FORWARD), backward: k.micros(of, CMD.BACKWARD), update: k.micros(of, CMD.UPDATE) });
              poolSide.set(workers, {
                syncMicros: k.micros(k.syncMs),
                shardComputeMicros: k.micros(k.computeMs),
                syncMicrosByPhase: byPhase(k.syncMs),
                shardComputeMicrosByPhase: byPhase(k.computeMs),
                atomicsRoundTripMicros: hot,
                idleRoundTripMicros: (idle * 1000) / idlePings,
              });
            }
          } finally {
            await p.close();
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
      const out: Measured = { steps: t.runs, stepMicros: r.period * 1000, rmePercent: r.latency.rme, ...poolSide.get(w) };
      measured.set(w, out);
      progress(
        `${size} ${t.name}: ${fmt((B * 1e6) / out.stepMicros)} samples/s over ${out.steps} steps (${fmt(out.stepMicros)} µs/step ±${out.rmePercent.toFixed(1)}%)` +
          (out.syncMicros !== undefined ? `, sync ${fmt(out.syncMicros)} µs/phase, ping ${fmt(out.atomicsRoundTripMicros!)} µs (${fmt(out.idleRoundTripMicros!)} after idling)` : ''),
      );
    });
    await bench.run();

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
      };
      if (inProc) row.inProcessSamplesPerSecond = (B * 1e6) / inProc.stepMicros;
      report.rows.push(row);
    }
  }
  report.loadAverage.end = loadavg()[0]!;
  return report;
}

function fmt(v: number): string {
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(3);
}
