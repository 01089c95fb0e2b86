/**
 * Where the time of a training step goes, measured in the benchmark's own run:
 *
 * - the step broken into matrix products (sgemm), element-wise kernels, the optimiser, the
 *   main thread's gate work, synchronisation and the rest, by timing wrappers around the
 *   provider's sgemm, around every kernel (`wrapKernels`) and around the shard runner's
 *   phases (`wrapRunner`), so that the parts can be checked to add up to the step;
 * - `gemmShare`: the step's own sgemm calls recorded once (shapes and buffers) and replayed
 *   alone on the same thread right after, warm, ÷ the step's time; `gemmGflops` their rate.
 *
 * The in-process trainer runs everything on the calling thread, so every part is measured
 * there. With workers the experts run in shard threads whose kernels the main thread cannot
 * wrap: each phase's slowest-shard compute comes from the shards' busy counters in shared
 * memory and is split into gemm, element-wise, optimiser and the rest in the in-process
 * trainer's proportions for the same phase (`apportioned`); synchronisation is each phase's
 * wall time minus the longer of that compute and the main thread's overlapping work.
 */
import type { ComputeProvider } from '../src/index.js';
import { CMD, median, type TrainingSession } from '../src/internal.js';
import { checkPositiveInt, timeWindow, type WindowPlan } from './harness.js';
import { startSession, stepper, type BenchProblem } from './problem.js';
import { PHASES, StepTimer, TimedRunner, type GemmCall } from './step-timer.js';


/** One step's time in parts, µs per step (means over the timed steps). */
export interface StepBreakdown {
  /** The trainer broken down. */
  system: 'in-process' | 'workers';
  /** Worker threads (0 in-process). */
  workers: number;
  /** Timed steps the means are over. */
  steps: number;
  /** Mean wall time of one step with the timers on, µs: what the parts must add up to. */
  stepMicros: number;
  /** The experts' matrix products (sgemm). */
  gemmMicros: number;
  /** The experts' element-wise kernels (activations, bias, losses, gathers, gradient sums). */
  elementwiseMicros: number;
  /** The experts' optimiser kernels (sgd, momentum, adam). */
  optimiserMicros: number;
  /**
   * The main thread's own work on the step's critical path: gathering the batch, the gate's
   * forward and backward pass, routing, the loss and the gate's optimiser step (with workers:
   * outside the phases, plus the part of its overlapping work that outlasted the shards).
   */
  gateMicros: number;
  /** Workers: per phase, wall time − max(slowest shard's compute, the main thread's overlapping work). 0 in-process. */
  syncMicros: number;
  /** The experts' time outside any sgemm or kernel call (loops, views, calls). */
  otherMicros: number;
  /** gemm + element-wise + optimiser + gate + sync + other. */
  sumMicros: number;
  /** sumMicros ÷ stepMicros − 1 (the parts should add up to within ±5%). */
  error: number;
  /** The experts' compute per step, µs (in-process: their phases; workers: the slowest shard per phase). */
  expertMicros: number;
  /** Workers: gemm, element-wise, optimiser and other are the slowest shard's compute split in the in-process proportions per phase. */
  apportioned: boolean;
  /** Inside gateMicros: the gate's own sgemm calls (in-process), µs. */
  gateGemmMicros?: number;
  /** Inside gateMicros: the main thread's kernel calls (in-process), µs. */
  gateKernelMicros?: number;
  /** In-process: the experts' time in each kernel, µs per step, largest first (element-wise and optimiser in detail). */
  kernelMicros?: Record<string, number>;
}

/** The step's own sgemm calls replayed alone. */
export interface GemmReplay {
  /** sgemm calls in one step. */
  calls: number;
  /** 2·M·N·K summed over them. */
  flopsPerStep: number;
  /** Median time of one replay of all of them, µs. */
  replayMicros: number;
  /** Replays timed (after one untimed). */
  reps: number;
  /** flopsPerStep ÷ replay time, GFLOP/s. */
  gflops: number;
  /** The in-process step's median wall time with the timers off, same session, µs. */
  stepMicros: number;
  /** replayMicros ÷ stepMicros. */
  share: number;
}

/** A session with the timers in place. */
interface TimedSession {
  session: TrainingSession;
  timer: StepTimer;
  runner: TimedRunner;
  run: () => Promise<number>;
}

async function timedSession(p: BenchProblem, workers: number): Promise<TimedSession> {
  const timer = new StepTimer();
  const m = p.mixture;
  const provider: ComputeProvider = { name: m.provider.name, detail: m.provider.detail, sgemm: timer.sgemm(m.provider.sgemm) };
  let runner: TimedRunner | undefined;
  const session = await startSession(p, {
    workers,
    provider,
    wrapKernels: (k) => timer.kernels(k),
    wrapRunner: (inner, views) => (runner = new TimedRunner(inner, views.busy, timer)),
  });
  return { session, timer, runner: runner!, run: stepper(p, session) };
}

/** Time a window of steps with the timers on; the timer's accumulators then hold its sums. */
async function timedSteps(s: TimedSession, plan: WindowPlan): Promise<void> {
  const t = s.timer;
  t.reset();
  s.runner.resync();
  t.on = true;
  try {
    await timeWindow(async () => {
      t.stepBegin();
      await s.run();
      t.stepEnd();
    }, plan);
  } finally {
    t.on = false;
  }
}

/** The in-process breakdown's proportions per phase: fractions of the phase's time in gemm, element-wise, optimiser, other. */
export interface PhaseShares {
  gemm: number;
  elementwise: number;
  optimiser: number;
  other: number;
}

/** What {@link breakdownInProcess} measures. */
export interface InProcessResult {
  breakdown: StepBreakdown;
  replay: GemmReplay;
  /** Per phase (forward, backward, update), the shares the workers' breakdown is split by. */
  shares: Record<'forward' | 'backward' | 'update', PhaseShares>;
}

const PHASE_KEYS = { [CMD.FORWARD]: 'forward', [CMD.BACKWARD]: 'backward', [CMD.UPDATE]: 'update' } as const;

function sumOf(parts: Omit<StepBreakdown, 'sumMicros' | 'error'>): StepBreakdown {
  const sum = parts.gemmMicros + parts.elementwiseMicros + parts.optimiserMicros + parts.gateMicros + parts.syncMicros + parts.otherMicros;
  return { ...parts, sumMicros: sum, error: sum / parts.stepMicros - 1 };
}

/**
 * The in-process trainer on this thread: its step time with the timers off, the step in
 * parts with them on, and the replay of one step's sgemm calls (see the module comment).
 * `replayMs` is the least time spent replaying (at least 3 replays after one untimed).
 */
export async function breakdownInProcess(p: BenchProblem, o: { warmupSteps: number; plan: WindowPlan; replayMs: number }): Promise<InProcessResult> {
  const s = await timedSession(p, 0);
  try {
    for (let i = 0; i < o.warmupSteps; i++) await s.run();
    // The step with the timers off (one branch per wrapped call): the median step, which
    // another process taking the core for a moment moves least.
    const plainMicros = (await timeWindow(s.run, o.plan)).medianStepSeconds * 1e6;

    await timedSteps(s, o.plan);
    const t = s.timer, n = t.steps, us = (ms: number): number => (ms * 1000) / n;
    let gemm = 0, ew = 0, opt = 0, phases = 0;
    const shares = {} as InProcessResult['shares'];
    for (const c of PHASES) {
      gemm += t.gemm[c]!;
      ew += t.kern[c]!;
      opt += t.opt[c]!;
      phases += t.phaseMs[c]!;
      const wall = t.phaseMs[c]!;
      const inCalls = t.gemm[c]! + t.kern[c]! + t.opt[c]!;
      shares[PHASE_KEYS[c]] = wall > 0 ? { gemm: t.gemm[c]! / wall, elementwise: t.kern[c]! / wall, optimiser: t.opt[c]! / wall, other: Math.max(0, wall - inCalls) / wall } : { gemm: 0, elementwise: 0, optimiser: 0, other: 1 };
    }
    const breakdown = sumOf({
      system: 'in-process',
      workers: 0,
      steps: n,
      stepMicros: us(t.stepMs),
      gemmMicros: us(gemm),
      elementwiseMicros: us(ew),
      optimiserMicros: us(opt),
      gateMicros: us(t.outsideMs),
      syncMicros: 0,
      otherMicros: us(phases - gemm - ew - opt),
      expertMicros: us(phases),
      apportioned: false,
      gateGemmMicros: us(t.gemm[0]!),
      gateKernelMicros: us(t.kern[0]! + t.opt[0]!),
      kernelMicros: Object.fromEntries(
        t.kernelNames
          .map((name, i): [string, number] => [name, us(t.byKernel[i]!)])
          .filter(([, v]) => v > 0)
          .sort((a, b) => b[1] - a[1]),
      ),
    });

    // Record one step's sgemm calls, then replay exactly those, alone, on the same buffers.
    const calls: GemmCall[] = [];
    s.timer.recording = calls;
    try {
      await s.run();
    } finally {
      s.timer.recording = undefined;
    }
    const sgemm = p.mixture.provider.sgemm;
    let flops = 0;
    for (const c of calls) flops += 2 * c.args[2] * c.args[3] * c.args[4];
    const replayOnce = (): number => {
      const r0 = performance.now();
      for (const c of calls) sgemm(...c.args);
      return performance.now() - r0;
    };
    replayOnce();
    const times: number[] = [];
    const r0 = performance.now();
    while (times.length < 3 || (performance.now() - r0 < o.replayMs && times.length < 100_000)) times.push(replayOnce());
    const replayMicros = median(times) * 1000;
    const replay: GemmReplay = {
      calls: calls.length,
      flopsPerStep: flops,
      replayMicros,
      reps: times.length,
      gflops: flops / (replayMicros * 1e3),
      stepMicros: plainMicros,
      share: replayMicros / plainMicros,
    };
    return { breakdown, replay, shares };
  } finally {
    await s.session.close();
  }
}

/**
 * The parallel trainer with `workers` shards: per step, the main thread's own work, each
 * phase's slowest-shard compute (split in the in-process `shares`) and synchronisation.
 */
export async function breakdownWorkers(p: BenchProblem, workers: number, shares: InProcessResult['shares'], o: { warmupSteps: number; plan: WindowPlan }): Promise<StepBreakdown> {
  checkPositiveInt(workers, 'workers');
  const s = await timedSession(p, workers);
  try {
    for (let i = 0; i < o.warmupSteps; i++) await s.run();
    await timedSteps(s, o.plan);
    const t = s.timer, n = t.steps, us = (ms: number): number => (ms * 1000) / n;
    let gemm = 0, ew = 0, opt = 0, other = 0, compute = 0, sync = 0, excess = 0;
    for (const c of PHASES) {
      const ms = t.shardMs[c]!, sh = shares[PHASE_KEYS[c]];
      compute += ms;
      gemm += ms * sh.gemm;
      ew += ms * sh.elementwise;
      opt += ms * sh.optimiser;
      other += ms * sh.other;
      sync += t.syncMs[c]!;
      excess += t.excessMs[c]!;
    }
    return sumOf({
      system: 'workers',
      workers,
      steps: n,
      stepMicros: us(t.stepMs),
      gemmMicros: us(gemm),
      elementwiseMicros: us(ew),
      optimiserMicros: us(opt),
      gateMicros: us(t.outsideMs + excess),
      syncMicros: us(sync),
      otherMicros: us(other),
      expertMicros: us(compute),
      apportioned: true,
    });
  } finally {
    await s.session.close();
  }
}
