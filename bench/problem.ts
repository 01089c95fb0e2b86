/**
 * The benchmarks' training problem: a mixture of one size with its random regression data,
 * standardised, cut into fixed batches, and the training sessions every benchmark times
 * steps on. Every system of a benchmark starts from the same problem, so every one of them
 * sees the same numbers.
 */
import { type Activation, type BackendRequest, type ComputeProvider, type Dataset, DENORMAL_MODES, type DenormalMode, Mixture, Rng } from '../src/index.js';
import { expertShape, fitStandardizer, identityStandardizer, kernelSetFromEnv, type SessionOptions, type TrainingData, trainingData, TrainingSession } from '../src/internal.js';
import { timeWindow, type SizeSpec, type Window, type WindowPlan } from './harness.js';

/** Batches of distinct rows held in memory: the steps cycle over them. */
export const BATCHES = 8;
/** Learning rate of every system (a modest one: thousands of steps revisit the same batches). */
export const BENCH_LR = 1e-3;

/** The benchmarks' data: `learnable` (each target a noisy copy of one input) or `hard` (independent random targets, which no mixture can learn). */
export const BENCH_DATA = ['learnable', 'hard'] as const;
/** One of {@link BENCH_DATA}. */
export type BenchData = (typeof BENCH_DATA)[number];

export { DENORMAL_MODES, type DenormalMode };

/**
 * Random regression rows for a size: standard normal inputs; each target a noisy copy of
 * one input (`learnable`, default) or standard normal of its own (`hard`).
 */
export function randomData(spec: Pick<SizeSpec, 'inputs' | 'outputs'>, rows: number, rng: Rng, kind: BenchData = 'learnable'): Dataset {
  const { inputs: D, outputs: K } = spec;
  const x = new Float32Array(rows * D);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const y = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) y[r * K + k] = kind === 'hard' ? rng.normal() : x[r * D + (k % D)]! + 0.1 * rng.normal();
  return { task: 'regression', n: rows, inputs: D, x, outputs: K, y, source: 'random' };
}

/** Options of {@link benchProblem}. */
export interface ProblemOptions {
  /** Experts E. */
  experts: number;
  /** Seed of data and initialisation (default 1). */
  seed?: number;
  /** Routing as `Mixture.create` takes it (default dense). */
  routing?: string;
  /** Error function (default gaussian, the NLL). */
  loss?: 'gaussian' | 'cooperative' | 'competitive';
  /** Compute provider (default auto). */
  backend?: BackendRequest;
  /** CBLAS library for `blas`. */
  blasLibrary?: string;
  /** The data (default {@link randomData} of BATCHES batches). */
  data?: Dataset;
  /** The kind of {@link randomData} where `data` is not given (default learnable). */
  targets?: BenchData;
  /**
   * Subnormal floats in this library's compute (default flush): the sessions and predict
   * run in it, and the reports record it.
   */
  denormals?: DenormalMode;
  /** Standardise the inputs on the data (default) or leave them as they are. */
  inputScaling?: 'fit' | 'identity';
  /** A provider fall-back's one-line notice. */
  onWarning?: (message: string) => void;
}

/** A mixture of one size with its data, in this library's layout. */
export interface BenchProblem {
  /** The size. */
  spec: SizeSpec;
  /** The mixture (its provider, config, optimizer, initial parameters): the caller closes it. */
  mixture: Mixture;
  /** The raw data. */
  data: Dataset;
  /** The data standardised as the sessions train on it. */
  training: TrainingData;
  /** Standardised inputs, n×D (= training.x). */
  x: Float32Array;
  /** Standardised targets, n×K (= training.t). */
  t: Float32Array;
  /** Rows per batch. */
  batch: number;
  /** Row lists of the fixed batches, each a run of consecutive rows. */
  batches: Int32Array[];
  /** The experts' hidden activation. */
  activation: Activation;
  /** Subnormal floats in this library's compute, as asked for. */
  denormals: DenormalMode;
}

/** Build the mixture and data of one size (Adam, linear gate, regression). */
export async function benchProblem(spec: SizeSpec, o: ProblemOptions): Promise<BenchProblem> {
  const seed = o.seed ?? 1;
  const m = await Mixture.create({
    task: 'regression',
    inputs: spec.inputs,
    outputs: spec.outputs,
    experts: o.experts,
    expert: spec.expert,
    gate: 'linear',
    loss: o.loss ?? 'gaussian',
    optimizer: 'adam',
    lr: BENCH_LR,
    seed,
    backend: o.backend ?? 'auto',
    ...(o.routing !== undefined ? { routing: o.routing } : {}),
    ...(o.blasLibrary !== undefined ? { blasLibrary: o.blasLibrary } : {}),
    ...(o.onWarning ? { onWarning: o.onWarning } : {}),
  });
  const B = spec.batch;
  const data = o.data ?? randomData(spec, B * BATCHES, new Rng(seed), o.targets ?? 'learnable');
  const nb = Math.floor(data.n / B);
  m.state.inputScaler = o.inputScaling === 'identity' ? identityStandardizer(spec.inputs) : fitStandardizer(data.x, data.n, spec.inputs);
  m.state.targetScaler = fitStandardizer(data.y!, data.n, spec.outputs);
  const training = trainingData(m.state, data);
  const batches = Array.from({ length: nb }, (_, i) => Int32Array.from({ length: B }, (_, r) => i * B + r));
  // predict and evaluate run in the model's recorded mode.
  m.state.training.denormals = o.denormals ?? 'flush';
  return { spec, mixture: m, data, training, x: training.x, t: training.t, batch: B, batches, activation: expertShape(m.config).activation, denormals: o.denormals ?? 'flush' };
}

/** Start a training session on the problem (the session's options besides batch and kernels). */
export function startSession(p: BenchProblem, o: Omit<SessionOptions, 'maxBatch' | 'kernels'> & { provider?: ComputeProvider }): Promise<TrainingSession> {
  const m = p.mixture;
  const { provider, ...rest } = o;
  return TrainingSession.start(m.state, provider ?? m.provider, p.training, { maxBatch: p.batch, kernels: kernelSetFromEnv(), denormals: p.denormals, ...rest });
}

/** A step function cycling over the problem's batches: step t trains on batch t mod BATCHES. */
export function stepper(p: BenchProblem, s: TrainingSession): () => Promise<number> {
  let t = 0;
  const lr = p.mixture.optimizer.lr;
  return () => {
    t++;
    return Promise.resolve(s.step.run(p.batches[t % p.batches.length]!, lr, t));
  };
}

/**
 * One measurement of this library's trainer on the problem: start a session (`workers` 0:
 * in-process), warm up, time one window of full training steps, close the session.
 */
export async function sessionWindow(
  p: BenchProblem,
  o: {
    workers: number;
    split?: boolean;
    warmupSteps: number;
    plan: WindowPlan;
    /** Called before every step (warm-up included), e.g. to hold parameters fixed. */
    beforeStep?: (s: TrainingSession) => void;
    /** Called after the timed window, before the session closes (to read its views). */
    inspect?: (s: TrainingSession) => void;
  },
): Promise<Window> {
  const s = await startSession(p, { workers: o.workers, ...(o.split !== undefined ? { split: o.split } : {}) });
  try {
    const run = stepper(p, s);
    const before = o.beforeStep;
    const step = before ? (): Promise<number> => (before(s), run()) : run;
    for (let i = 0; i < o.warmupSteps; i++) await step();
    const w = await timeWindow(step, o.plan);
    o.inspect?.(s);
    return w;
  } finally {
    await s.close();
  }
}
