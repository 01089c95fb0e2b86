/**
 * The peer benchmark behind `moe bench peers`: the scaling benchmark's dense mixture
 * (8 experts, linear gate, Gaussian-mixture NLL, Adam, random regression data) trained on
 * identical shapes, data and initial parameters by
 *
 * - this library in-process (the reference trainer, one thread),
 * - this library with W worker threads (default 2),
 * - plain tfjs on one thread, the same mixture written with tfjs-core ops, on the `wasm`
 *   backend (XNNPACK, one thread) and, where one step is cheap enough, the `cpu` backend,
 *
 * each one tinybench task in one Bench per size, so the ratios come from one run on one
 * machine under one load. PyTorch is looked for (`python3 -c "import torch"`) and reported
 * as available or not.
 *
 * One global tfjs backend per thread: this library's own `wasm`/`cpu` providers use it too.
 * The tfjs tasks run after the library's tasks, switch the backend in their `beforeAll` and
 * switch it back in their `afterAll`, so the library's provider (blas by default, which
 * does not touch tfjs at all) always finds the backend it was loaded on. A worker thread of
 * the peer's own would isolate it as well, but costs a second entry file for no gain: the
 * tasks never overlap.
 */
import { execFile } from 'node:child_process';
import { availableParallelism, cpus, loadavg } from 'node:os';
import type * as TfCore from '@tensorflow/tfjs-core';
import { Bench } from 'tinybench';
import type { BackendRequest } from '../compute/provider.js';
import type { Dataset } from '../data/dataset.js';
import { fitStandardizer } from '../data/standardize.js';
import { OptionError } from '../errors.js';
import { Mixture } from '../mixture.js';
import { expertShape, gateShape } from '../model/config.js';
import { mlpParamCount, type Activation } from '../model/mlp.js';
import { checkWorkerCount } from '../engine/plan.js';
import { Rng } from '../rng.js';
import { kernelSetFromEnv } from '../kernels/index.js';
import { trainingData } from '../train/data.js';
import { TrainingSession } from '../train/session.js';
import type { BenchHeader } from './report.js';
import { checkPositiveInt, machineSlug, randomData, SIZE_SPECS, type SizeSpec } from './scaling.js';

/** The sizes the peer benchmark runs (the scaling benchmark's `small` and `medium`). */
export const PEER_SIZES = ['small', 'medium'] as const;
/** One of {@link PEER_SIZES}; see `SIZE_SPECS` for what each is. */
export type PeerSize = (typeof PEER_SIZES)[number];

/** The tfjs backends a peer can run on. */
export const TFJS_PEER_BACKENDS = ['wasm', 'cpu'] as const;
/** One of {@link TFJS_PEER_BACKENDS}. */
export type TfjsPeerBackend = (typeof TFJS_PEER_BACKENDS)[number];

/** A system measured: this library in-process, with workers, or plain tfjs on a backend. */
export type PeerSystem = 'in-process' | 'workers' | 'tfjs-wasm' | 'tfjs-cpu';

/** The tfjs peer's expert layout per size: the faster of the two on wasm here (see {@link TfjsExpertLayout}). */
export const TFJS_LAYOUT: Record<PeerSize, TfjsExpertLayout> = { small: 'stacked', medium: 'per-expert' };

/** Experts in every mixture (as the scaling benchmark on up to 8 cores). */
export const PEER_EXPERTS = 8;
/** Batches of distinct rows held in memory per size: the steps cycle over them. */
const BATCHES = 8;
/** Learning rate of every system (the scaling benchmark's). */
const LR = 1e-3;
/**
 * tfjs `cpu` runs about 0.6 GFLOP/s here (ARCHITECTURE.md): a size whose estimated step
 * takes longer than this on it is not run on that backend, and the report says why.
 */
const CPU_GFLOPS = 0.6;
const CPU_MAX_STEP_SECONDS = 1;

/** Options of {@link runPeerBenchmark}. */
export interface PeerOptions {
  /** Default both (small, medium). */
  sizes?: PeerSize[];
  /** Exactly this many timed steps for every system (overrides `timeMs` and `minSteps`). */
  steps?: number;
  /** Timed budget per system in ms (tinybench `time`); default 3000. */
  timeMs?: number;
  /** At least this many timed steps per system with `timeMs`; default 5. */
  minSteps?: number;
  /** Untimed steps before each system's measurement; default 3. */
  warmupSteps?: number;
  /** Worker threads of the parallel system; default 2. */
  workers?: number;
  /** This library's compute provider (default auto: blas where OpenBLAS loads). */
  backend?: BackendRequest;
  /** CBLAS library for `blas`. */
  blasLibrary?: string;
  /** tfjs backends to run the plain-tfjs peer on; default both (`cpu` only where a step is cheap). */
  tfjsBackends?: TfjsPeerBackend[];
  /** How the tfjs peer holds its experts; default per size, the faster form here ({@link TFJS_LAYOUT}). */
  tfjsLayout?: TfjsExpertLayout;
  /** A stable name for this machine (default: CPU model and core count, slugged). */
  machine?: string;
  /** Seed of data and initialisation (default 1). */
  seed?: number;
  /** One line per measurement as it finishes. */
  onProgress?: (message: string) => void;
}

/** One system's measurement on one size. */
export interface PeerRow {
  /** Problem size. */
  size: PeerSize;
  /** What ran. */
  system: PeerSystem;
  /** The system for people, e.g. `local-experts, 2 workers`. */
  label: string;
  /** Threads doing the compute: 1, or the worker count (the main thread then runs only the gate). */
  threads: number;
  /** Compute underneath: this library's provider, or `tfjs <version> <backend>`. */
  compute: string;
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
  /** samples/s ÷ plain tfjs wasm's samples/s on the same size in the same run. */
  vsTfjsWasm?: number;
  /** samples/s ÷ plain tfjs cpu's samples/s on the same size in the same run. */
  vsTfjsCpu?: number;
  /** tfjs rows: tensors alive after the timed steps minus before them (asserted 0). */
  tensorsLeaked?: number;
}

/** A system that was asked for but not measured, and why. */
export interface PeerSkip {
  /** Problem size, or `all`. */
  size: PeerSize | 'all';
  /** The system, e.g. `tfjs-cpu` or `pytorch`. */
  system: PeerSystem | 'pytorch';
  /** Why it did not run. */
  reason: string;
}

/** What {@link runPeerBenchmark} returns. */
export interface PeerReport extends BenchHeader {
  /** This library's compute provider. */
  backend: string;
  /** Provider detail: library path or tfjs backend version. */
  backendDetail: string;
  /** tfjs-core version of the plain-tfjs peer. */
  tfjsVersion: string;
  /** Experts E in every mixture. */
  experts: number;
  /** Worker threads of the `workers` system. */
  workers: number;
  /** PyTorch on this machine: whether `python3 -c "import torch"` works, and what it said. */
  pytorch: {
    /** `python3 -c "import torch"` succeeded. */
    available: boolean;
    /** `torch <version>`, or why not (the import's last error line, or that python3 is missing). */
    detail: string;
  };
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
    size: PeerSize;
    /** Parameters of one expert. */
    expertParams: number;
    /** Parameters of the gate. */
    gateParams: number;
    /** Approximate expert FLOPs per training step (6 × batch × expertParams × E). */
    flopsPerStep: number;
  } & SizeSpec)[];
  /** One row per (size, system) measured. */
  rows: PeerRow[];
  /** Systems not measured, with the reason (never left out silently). */
  skipped: PeerSkip[];
}

// ---------------------------------------------------------------------------------------
// The plain-tfjs mixture

/** Shapes of {@link TfjsMixture}: a linear gate D → E and E experts with layer widths `sizes`. */
export interface TfjsMixtureShape {
  /** Experts E. */
  experts: number;
  /** Expert layer widths D, hidden…, K (as `expertShape`). */
  sizes: readonly number[];
  /** Hidden-layer activation of the experts. */
  activation: Activation;
}

/** Adam's hyper-parameters, as this library's optimizer config holds them. */
export interface AdamSettings {
  /** Learning rate. */
  lr: number;
  /** First-moment decay β₁. */
  beta1: number;
  /** Second-moment decay β₂. */
  beta2: number;
  /** ε added to the denominator. */
  epsilon: number;
}

/**
 * How {@link TfjsMixture} holds and runs its experts:
 * - `stacked`: one [E, n_l, n_l+1] variable per layer for all experts and batched 3-D
 *   products: fewest ops and variables (Adam runs ~10 ops per variable), fastest where ops
 *   are tiny (small: 0.7 ms a step against 2.3 ms split, measured here on wasm);
 * - `per-expert`: variables and 2-D products per expert: on wasm only untransposed 2-D
 *   products reach XNNPACK (measured here at 512×256·256×512, one thread: 20 GFLOP/s,
 *   against 1.8 with `transposeB`, 1.0 with `transposeA`, which tfjs's own matMul gradient
 *   uses, and about 1.1 batched 3-D), so this is the fast form where products dominate
 *   (medium: 0.35 s a step against 4 s stacked).
 */
export type TfjsExpertLayout = 'stacked' | 'per-expert';

/** The experts' part of one step: errors e (B×E) and, given the per-row weights h/B (B×E), their gradients. */
interface ExpertPass {
  /** e_i = ‖d − o_i‖², B×E. */
  errors: TfCore.Tensor2D;
  /** Gradients of the experts' variables, in `expertVariables` order. */
  backward: (rowWeights: TfCore.Tensor2D) => TfCore.Tensor[];
}

/**
 * The benchmark's mixture written with tfjs-core ops on one thread: tf.variable weights, a
 * linear gate with tf.logSoftmax, E experts each a stack of tf.matMul + bias layers, the
 * Gaussian-mixture NLL −mean log Σ_i g_i exp(−½‖d − o_i‖²) via tf.logSumExp, and
 * `tf.train.adam`; see {@link TfjsExpertLayout} for the two forms of the experts.
 *
 * The backward pass is written out with tfjs ops (the formulas of ARCHITECTURE.md):
 * tfjs-core's Node build registers no gradient functions (they come with the
 * `@tensorflow/tfjs` union package, not a dependency here), so `tf.variableGrads` fails
 * with "gradient function not found".
 *
 * Every tensor a step makes is released inside tf.tidy; the variables and Adam's moments
 * live until {@link dispose}.
 */
export class TfjsMixture {
  /** How the experts are held and run. */
  readonly layout: TfjsExpertLayout;
  private readonly gateW: TfCore.Variable;
  private readonly gateB: TfCore.Variable;
  /** per-expert: expert i's layer l, weights n_l×n_{l+1} and bias n_{l+1}; stacked: [0][l] is [E, n_l, n_{l+1}] and [E, 1, n_{l+1}]. */
  private readonly w: TfCore.Variable[][] = [];
  private readonly b: TfCore.Variable[][] = [];
  private readonly optimizer: TfCore.Optimizer;
  private readonly D: number;
  private readonly E: number;
  private readonly P: number;
  private readonly L: number;

  /**
   * @param gateParams this library's linear-gate vector [W_g (D×E) | b_g (E)]
   * @param expertParams this library's expert vectors, expert i at i·P, each [W_0 | b_0 | W_1 | b_1 | …]
   */
  constructor(
    private readonly tf: typeof TfCore,
    private readonly shape: TfjsMixtureShape,
    gateParams: Float32Array,
    expertParams: Float32Array,
    adam: AdamSettings,
    layout: TfjsExpertLayout = 'per-expert',
  ) {
    const { experts: E, sizes } = shape;
    if (sizes.length < 2) throw new OptionError('sizes', 'an expert needs at least an input and an output width');
    const D = sizes[0]!;
    this.layout = layout;
    this.D = D;
    this.E = E;
    this.L = sizes.length - 1;
    this.P = mlpParamCount({ sizes, activation: shape.activation });
    if (gateParams.length !== D * E + E) throw new OptionError('gateParams', `a linear gate ${D}→${E} has ${D * E + E} parameters, got ${gateParams.length}`);
    if (expertParams.length !== E * this.P) throw new OptionError('expertParams', `${E} experts of ${this.P} parameters, got ${expertParams.length}`);
    // A variable shares its initial tensor's data: the initial tensor itself must go.
    const variable = (init: TfCore.Tensor): TfCore.Variable => {
      const v = tf.variable(init);
      init.dispose();
      return v;
    };
    this.gateW = variable(tf.tensor2d(gateParams.slice(0, D * E), [D, E]));
    this.gateB = variable(tf.tensor1d(gateParams.slice(D * E)));
    const offsets: number[] = [];
    for (let l = 0, off = 0; l < this.L; l++) {
      offsets.push(off);
      off += sizes[l]! * sizes[l + 1]! + sizes[l + 1]!;
    }
    if (layout === 'stacked') {
      const ws: TfCore.Variable[] = [], bs: TfCore.Variable[] = [];
      for (let l = 0; l < this.L; l++) {
        const nin = sizes[l]!, nout = sizes[l + 1]!;
        const W = new Float32Array(E * nin * nout);
        const bias = new Float32Array(E * nout);
        for (let i = 0; i < E; i++) {
          const at = i * this.P + offsets[l]!;
          W.set(expertParams.subarray(at, at + nin * nout), i * nin * nout);
          bias.set(expertParams.subarray(at + nin * nout, at + nin * nout + nout), i * nout);
        }
        ws.push(variable(tf.tensor3d(W, [E, nin, nout])));
        bs.push(variable(tf.tensor3d(bias, [E, 1, nout])));
      }
      this.w.push(ws);
      this.b.push(bs);
    } else {
      for (let i = 0; i < E; i++) {
        const ws: TfCore.Variable[] = [], bs: TfCore.Variable[] = [];
        for (let l = 0; l < this.L; l++) {
          const nin = sizes[l]!, nout = sizes[l + 1]!;
          const at = i * this.P + offsets[l]!;
          ws.push(variable(tf.tensor2d(expertParams.slice(at, at + nin * nout), [nin, nout])));
          bs.push(variable(tf.tensor1d(expertParams.slice(at + nin * nout, at + nin * nout + nout))));
        }
        this.w.push(ws);
        this.b.push(bs);
      }
    }
    this.optimizer = tf.train.adam(adam.lr, adam.beta1, adam.beta2, adam.epsilon);
  }

  /** Every variable, in the order {@link lossAndGrads} returns gradients: gate W, b, then per expert (or stack) each layer's W, b. */
  private get variables(): TfCore.Variable[] {
    const out = [this.gateW, this.gateB];
    for (let i = 0; i < this.w.length; i++) for (let l = 0; l < this.L; l++) out.push(this.w[i]![l]!, this.b[i]![l]!);
    return out;
  }

  /**
   * Mean loss over the batch and the gradient of every variable (same order as
   * `variables`). Makes tensors: call inside tf.tidy.
   */
  private lossAndGrads(x: TfCore.Tensor2D, d: TfCore.Tensor2D): { loss: TfCore.Scalar; grads: TfCore.Tensor[] } {
    const tf = this.tf;
    const B = x.shape[0];
    // Gate: log g = u − logsumexp(u), never log(softmax(u)).
    const logG = tf.logSoftmax(tf.add(tf.matMul(x, this.gateW), this.gateB)); // B×E
    const xT = tf.transpose(x);
    const experts = this.layout === 'stacked' ? this.stackedPass(x, d) : this.perExpertPass(x, xT, d);
    const joint = tf.sub(logG, tf.mul(experts.errors, 0.5)); // log g_i − ½ e_i, B×E
    const lse = tf.logSumExp(joint, 1, true); // B×1
    const loss = tf.neg(tf.mean(lse)) as TfCore.Scalar;

    // Backward, with the posterior h_i = exp(joint_i − lse):
    // ∂E/∂o_i = h_i (o_i − d) / B and ∂E/∂u_i = (g_i − h_i) / B.
    const h = tf.exp(tf.sub(joint, lse)); // B×E
    const inv = 1 / B;
    const dU = tf.mul(tf.sub(tf.exp(logG), h), inv);
    return { loss, grads: [tf.matMul(xT, dU), tf.sum(dU, 0), ...experts.backward(tf.mul(h, inv))] };
  }

  private perExpertPass(x: TfCore.Tensor2D, xT: TfCore.Tensor2D, d: TfCore.Tensor2D): ExpertPass {
    const tf = this.tf;
    const E = this.E, L = this.L;
    const acts: TfCore.Tensor2D[][] = [];
    const diffs: TfCore.Tensor2D[] = [];
    const errors: TfCore.Tensor1D[] = [];
    for (let i = 0; i < E; i++) {
      const a: TfCore.Tensor2D[] = [x];
      let z = x;
      for (let l = 0; l < L; l++) {
        z = tf.add(tf.matMul(a[l]!, this.w[i]![l]!), this.b[i]![l]!);
        if (l + 1 < L) a.push(this.activate(z));
      }
      acts.push(a);
      const diff: TfCore.Tensor2D = tf.sub(z, d); // o_i − d
      diffs.push(diff);
      errors.push(tf.sum(tf.square(diff), 1));
    }
    const backward = (rowWeights: TfCore.Tensor2D): TfCore.Tensor[] => {
      const grads: TfCore.Tensor[] = [];
      const weights = tf.split(rowWeights, E, 1); // E × (B×1)
      for (let i = 0; i < E; i++) {
        const a = acts[i]!;
        const gw = new Array<TfCore.Tensor>(L), gb = new Array<TfCore.Tensor>(L);
        let delta: TfCore.Tensor2D = tf.mul(diffs[i]!, weights[i]!);
        for (let l = L - 1; l >= 0; l--) {
          // Explicit transposes: see TfjsExpertLayout.
          gw[l] = tf.matMul(l === 0 ? xT : tf.transpose(a[l]!), delta);
          gb[l] = tf.sum(delta, 0);
          if (l > 0) delta = tf.mul(tf.matMul(delta, tf.transpose(this.w[i]![l]!)), this.derivative(a[l]!));
        }
        for (let l = 0; l < L; l++) grads.push(gw[l]!, gb[l]!);
      }
      return grads;
    };
    return { errors: tf.stack(errors, 1) as TfCore.Tensor2D, backward };
  }

  private stackedPass(x: TfCore.Tensor2D, d: TfCore.Tensor2D): ExpertPass {
    const tf = this.tf;
    const E = this.E, L = this.L;
    const W = this.w[0]!, b = this.b[0]!;
    const acts: TfCore.Tensor3D[] = [tf.tile(tf.expandDims(x, 0), [E, 1, 1]) as TfCore.Tensor3D]; // E×B×n_l
    let z = acts[0]!;
    for (let l = 0; l < L; l++) {
      z = tf.add(tf.matMul(acts[l]!, W[l]!), b[l]!);
      if (l + 1 < L) acts.push(this.activate(z));
    }
    const diff: TfCore.Tensor3D = tf.sub(z, d); // o_i − d, E×B×K
    const backward = (rowWeights: TfCore.Tensor2D): TfCore.Tensor[] => {
      const gw = new Array<TfCore.Tensor>(L), gb = new Array<TfCore.Tensor>(L);
      let delta: TfCore.Tensor3D = tf.mul(diff, tf.expandDims(tf.transpose(rowWeights), 2));
      for (let l = L - 1; l >= 0; l--) {
        gw[l] = tf.matMul(acts[l]!, delta, true, false);
        gb[l] = tf.sum(delta, 1, true);
        if (l > 0) delta = tf.mul(tf.matMul(delta, W[l]!, false, true), this.derivative(acts[l]!));
      }
      const grads: TfCore.Tensor[] = [];
      for (let l = 0; l < L; l++) grads.push(gw[l]!, gb[l]!);
      return grads;
    };
    return { errors: tf.transpose(tf.sum(tf.square(diff), 2)) as TfCore.Tensor2D, backward };
  }

  private activate<T extends TfCore.Tensor>(z: T): T {
    const tf = this.tf;
    switch (this.shape.activation) {
      case 'tanh':
        return tf.tanh(z);
      case 'relu':
        return tf.relu(z);
      case 'sigmoid':
        return tf.sigmoid(z);
    }
  }

  /** f′ from the activation's output a = f(z). */
  private derivative<T extends TfCore.Tensor>(a: T): T {
    const tf = this.tf;
    switch (this.shape.activation) {
      case 'tanh':
        return tf.sub(1, tf.square(a));
      case 'relu':
        return tf.cast(tf.greater(a, 0), 'float32') as T;
      case 'sigmoid':
        return tf.mul(a, tf.sub(1, a));
    }
  }

  /** One training step on the batch (x: B×D, d: B×K); returns the batch's mean loss before the update. */
  step(x: TfCore.Tensor2D, d: TfCore.Tensor2D): number {
    const tf = this.tf;
    const vars = this.variables;
    const loss = tf.tidy(() => {
      const { loss, grads } = this.lossAndGrads(x, d);
      const named: TfCore.NamedTensorMap = {};
      vars.forEach((v, i) => (named[v.name] = grads[i]!));
      this.optimizer.applyGradients(named);
      return loss;
    });
    try {
      return loss.dataSync()[0]!;
    } finally {
      loss.dispose();
    }
  }

  /**
   * The loss and gradients on a batch without updating, in this library's layouts: the
   * gate's [W_g | b_g] and the experts' vectors, expert i at i·P, each [W_0 | b_0 | …].
   */
  gradients(x: TfCore.Tensor2D, d: TfCore.Tensor2D): { loss: number; gate: Float32Array; experts: Float32Array } {
    const tf = this.tf;
    const { loss, grads } = tf.tidy(() => this.lossAndGrads(x, d));
    try {
      const data = grads.map((g) => g.dataSync() as Float32Array);
      const gate = new Float32Array(this.D * this.E + this.E);
      gate.set(data[0]!, 0);
      gate.set(data[1]!, this.D * this.E);
      const experts = new Float32Array(this.E * this.P);
      const sizes = this.shape.sizes;
      let k = 2;
      for (let i = 0; i < this.w.length; i++) {
        for (let l = 0, off = 0; l < this.L; l++) {
          const nin = sizes[l]!, nout = sizes[l + 1]!;
          const gw = data[k++]!, gb = data[k++]!;
          if (this.layout === 'per-expert') {
            experts.set(gw, i * this.P + off);
            experts.set(gb, i * this.P + off + nin * nout);
          } else {
            for (let j = 0; j < this.E; j++) {
              experts.set(gw.subarray(j * nin * nout, (j + 1) * nin * nout), j * this.P + off);
              experts.set(gb.subarray(j * nout, (j + 1) * nout), j * this.P + off + nin * nout);
            }
          }
          off += nin * nout + nout;
        }
      }
      return { loss: loss.dataSync()[0]!, gate, experts };
    } finally {
      loss.dispose();
      for (const g of grads) g.dispose();
    }
  }

  /** Release the variables and Adam's state. */
  dispose(): void {
    this.optimizer.dispose();
    for (const v of this.variables) v.dispose();
  }
}

/**
 * Switch tfjs to `backend` (loading its package), returning the backend it was on (null if
 * none), or throw when the backend does not load. wasm gets one thread, like a worker.
 */
export async function useTfjsBackend(tf: typeof TfCore, backend: TfjsPeerBackend): Promise<string | null> {
  const prev = tf.getBackend() ?? null;
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // Ignored by a wasm backend already initialised, which this library's provider does with 1 too.
    wasm.setThreadsCount(1);
  } else {
    await import('@tensorflow/tfjs-backend-cpu');
  }
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} did not initialise`);
  await tf.ready();
  return prev;
}

// ---------------------------------------------------------------------------------------
// PyTorch

/** Whether `python3 -c "import torch"` works here: `{ available, detail }` (version, or why not). */
export function detectPytorch(timeoutMs = 60_000): Promise<{ available: boolean; detail: string }> {
  return new Promise((resolve) => {
    execFile('python3', ['-c', 'import torch; print(torch.__version__)'], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (!err) {
        resolve({ available: true, detail: `torch ${stdout.trim()}` });
        return;
      }
      const code = (err as NodeJS.ErrnoException).code;
      const lastLine = stderr.trim().split('\n').pop()?.trim();
      resolve({ available: false, detail: code === 'ENOENT' ? 'python3 not found' : lastLine || err.message });
    });
  });
}

// ---------------------------------------------------------------------------------------
// The benchmark

/** Random regression data: inputs N(0,1), each target a noisy copy of one input (as the scaling benchmark's). */
/**
 * A mixture of one size with its data in this library's layout: the standardised rows
 * and targets, the initial parameters, and the batches. Both this library's systems and
 * the tfjs peer start from it, so every system sees the same numbers.
 */
export interface PeerProblem {
  /** The mixture (its provider, config, optimizer, initial parameters). */
  mixture: Mixture;
  /** The raw data (the in-process and worker layouts standardise it themselves). */
  data: Dataset;
  /** Standardised inputs, n×D. */
  x: Float32Array;
  /** Standardised targets, n×K. */
  t: Float32Array;
  /** Rows per batch. */
  batch: number;
  /** Row lists of the 8 fixed batches, each a run of consecutive rows. */
  batches: Int32Array[];
}

/** Build the mixture and data of one size, or of any regression shape (the caller closes `mixture`). */
export async function peerProblem(
  size: PeerSize | SizeSpec,
  o: { seed?: number; backend?: BackendRequest; blasLibrary?: string; onWarning?: (m: string) => void } = {},
): Promise<PeerProblem> {
  const spec = typeof size === 'string' ? SIZE_SPECS[size] : size;
  const seed = o.seed ?? 1;
  const m = await Mixture.create({
    task: 'regression',
    inputs: spec.inputs,
    outputs: spec.outputs,
    experts: PEER_EXPERTS,
    expert: spec.expert,
    gate: 'linear',
    loss: 'gaussian',
    optimizer: 'adam',
    lr: LR,
    seed,
    backend: o.backend ?? 'auto',
    ...(o.blasLibrary !== undefined ? { blasLibrary: o.blasLibrary } : {}),
    ...(o.onWarning ? { onWarning: o.onWarning } : {}),
  });
  const B = spec.batch;
  const data = randomData(spec, B * BATCHES, new Rng(seed));
  m.state.inputScaler = fitStandardizer(data.x, data.n, spec.inputs);
  m.state.targetScaler = fitStandardizer(data.y!, data.n, spec.outputs);
  const std = trainingData(m.state, data);
  const batches = Array.from({ length: BATCHES }, (_, i) => Int32Array.from({ length: B }, (_, r) => i * B + r));
  return { mixture: m, data, x: std.x, t: std.t, batch: B, batches };
}

/** A {@link TfjsMixture} from a problem's mixture's current parameters and optimizer settings. */
export function tfjsMixtureFor(tf: typeof TfCore, p: PeerProblem, layout: TfjsExpertLayout = 'per-expert'): TfjsMixture {
  const m = p.mixture, c = m.config;
  if (c.gate.hidden.length > 0) throw new OptionError('gate', 'the tfjs peer has a linear gate only');
  const shape = expertShape(c);
  const o = m.optimizer;
  if (o.name !== 'adam') throw new OptionError('optimizer', 'the tfjs peer trains with Adam only');
  return new TfjsMixture(
    tf,
    { experts: c.experts, sizes: shape.sizes, activation: shape.activation },
    m.params.gateParams,
    m.params.expertParams,
    { lr: o.lr, beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon },
    layout,
  );
}

/** The problem's batches as tfjs tensors (inputs B×D, targets B×K), uploaded once: the caller disposes them. */
export function tfjsBatches(tf: typeof TfCore, p: PeerProblem): { x: TfCore.Tensor2D; d: TfCore.Tensor2D }[] {
  const c = p.mixture.config, B = p.batch;
  return p.batches.map((rows) => {
    const first = rows[0]!;
    // The batches are runs of consecutive rows (see peerProblem).
    return {
      x: tf.tensor2d(p.x.slice(first * c.inputs, (first + B) * c.inputs), [B, c.inputs]),
      d: tf.tensor2d(p.t.slice(first * c.outputs, (first + B) * c.outputs), [B, c.outputs]),
    };
  });
}

const LABELS: Record<PeerSystem, (w: number) => string> = {
  'in-process': () => 'local-experts, in-process',
  workers: (w) => `local-experts, ${w} workers`,
  'tfjs-wasm': () => 'plain tfjs, wasm backend',
  'tfjs-cpu': () => 'plain tfjs, cpu backend',
};

/**
 * Run the peer benchmark (see the module comment). Takes about sizes × systems × (timeMs
 * + start-up); the tfjs wasm peer at `medium` runs about 0.3 s a step here.
 */
export async function runPeerBenchmark(opts: PeerOptions = {}): Promise<PeerReport> {
  const cores = availableParallelism();
  const sizes = opts.sizes ?? [...PEER_SIZES];
  if (sizes.length === 0) throw new OptionError('sizes', 'no size given');
  for (const s of sizes) {
    if (!(PEER_SIZES as readonly string[]).includes(s)) throw new OptionError('sizes', `unknown size ${JSON.stringify(s)} (expected ${PEER_SIZES.join(', ')})`);
  }
  const workers = opts.workers ?? 2;
  checkWorkerCount(workers, PEER_EXPERTS);
  const steps = opts.steps === undefined ? undefined : checkPositiveInt(opts.steps, 'steps');
  const timeMs = opts.timeMs ?? 3000;
  if (!(timeMs >= 0)) throw new OptionError('timeMs', `must be ≥ 0, got ${timeMs}`);
  const minSteps = checkPositiveInt(opts.minSteps ?? 5, 'minSteps');
  if (opts.tfjsLayout !== undefined && opts.tfjsLayout !== 'stacked' && opts.tfjsLayout !== 'per-expert') throw new OptionError('tfjsLayout', `expected stacked or per-expert, got ${JSON.stringify(opts.tfjsLayout)}`);
  const warmupSteps = opts.warmupSteps ?? 3;
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new OptionError('warmupSteps', `must be an integer ≥ 0, got ${warmupSteps}`);
  const tfjsBackends = opts.tfjsBackends ?? [...TFJS_PEER_BACKENDS];
  for (const b of tfjsBackends) {
    if (!(TFJS_PEER_BACKENDS as readonly string[]).includes(b)) throw new OptionError('tfjsBackends', `unknown tfjs backend ${JSON.stringify(b)} (expected ${TFJS_PEER_BACKENDS.join(', ')})`);
  }
  const seed = opts.seed ?? 1;
  const progress = opts.onProgress ?? (() => {});

  const tf = await import('@tensorflow/tfjs-core');
  const report: PeerReport = {
    machine: opts.machine ?? machineSlug(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores,
    node: process.version,
    date: new Date().toISOString(),
    backend: '',
    backendDetail: '',
    tfjsVersion: tf.version_core,
    experts: PEER_EXPERTS,
    workers,
    pytorch: await detectPytorch(),
    loadAverage: { start: loadavg()[0]!, end: NaN },
    sizes: [],
    rows: [],
    skipped: [],
  };
  if (!report.pytorch.available) report.skipped.push({ size: 'all', system: 'pytorch', reason: `not available: ${report.pytorch.detail}` });
  else report.skipped.push({ size: 'all', system: 'pytorch', reason: `${report.pytorch.detail} imports, but this benchmark has no PyTorch peer yet` });

  // A tfjs backend that does not load is a peer not run (and said so), not a failed run.
  const unavailable = new Map<TfjsPeerBackend, string>();
  for (const backend of tfjsBackends) {
    try {
      const prev = await useTfjsBackend(tf, backend);
      if (prev !== null && prev !== backend) await tf.setBackend(prev);
    } catch (err) {
      unavailable.set(backend, `not available: ${(err as Error).message}`);
    }
  }

  for (const size of sizes) {
    const spec = SIZE_SPECS[size];
    const p = await peerProblem(size, { seed, ...(opts.backend ? { backend: opts.backend } : {}), ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}), onWarning: progress });
    const m = p.mixture;
    try {
      report.backend = m.provider.name;
      report.backendDetail = m.provider.detail;
      const c = m.config;
      const P = mlpParamCount(expertShape(c));
      const flopsPerStep = 6 * spec.batch * P * PEER_EXPERTS;
      report.sizes.push({ size, ...spec, expertParams: P, gateParams: mlpParamCount(gateShape(c)), flopsPerStep });
      const B = p.batch;
      const layout = opts.tfjsLayout ?? TFJS_LAYOUT[size];

      const bench = new Bench({
        name: `peers ${size}`,
        time: steps === undefined ? timeMs : 0,
        iterations: steps ?? minSteps,
        warmup: false,
        throws: true,
      });
      const measured = new Map<PeerSystem, { steps: number; stepMicros: number; rmePercent: number }>();
      const leaked = new Map<PeerSystem, number>();
      const compute = new Map<PeerSystem, string>();

      // Everything a task's hooks set up, torn down in its afterAll.
      let run: (() => Promise<number>) | undefined;
      let session: TrainingSession | undefined;
      const standardised = trainingData(m.state, p.data);
      const stepper = (s: TrainingSession): (() => Promise<number>) => {
        let t = 0;
        return () => {
          t++;
          return s.step.run(p.batches[t % BATCHES]!, m.optimizer.lr, t);
        };
      };
      const libraryFn = (): Promise<number> => run!();

      bench.add('in-process', libraryFn, {
        async: true,
        beforeAll: async () => {
          session = await TrainingSession.start(m.state, m.provider, standardised, { maxBatch: B, workers: 0, kernels: kernelSetFromEnv() });
          run = stepper(session);
          for (let i = 0; i < warmupSteps; i++) await run();
          compute.set('in-process', m.provider.name);
        },
        afterAll: async () => {
          run = undefined;
          await session?.close();
          session = undefined;
        },
      });
      bench.add('workers', libraryFn, {
        async: true,
        beforeAll: async () => {
          const started = await TrainingSession.start(m.state, m.provider, standardised, { maxBatch: B, workers, kernels: kernelSetFromEnv() });
          session = started;
          run = stepper(started);
          try {
            for (let i = 0; i < warmupSteps; i++) await run();
          } catch (err) {
            // afterAll does not run when beforeAll throws.
            session = undefined;
            await started.close();
            throw err;
          }
          compute.set('workers', m.provider.name);
        },
        afterAll: async () => {
          const started = session;
          run = undefined;
          session = undefined;
          await started?.close();
        },
      });

      for (const backend of tfjsBackends) {
        const system: PeerSystem = backend === 'wasm' ? 'tfjs-wasm' : 'tfjs-cpu';
        if (unavailable.has(backend)) {
          report.skipped.push({ size, system, reason: unavailable.get(backend)! });
          continue;
        }
        if (backend === 'cpu') {
          const seconds = flopsPerStep / (CPU_GFLOPS * 1e9);
          if (seconds > CPU_MAX_STEP_SECONDS) {
            report.skipped.push({
              size,
              system,
              reason: `tfjs cpu runs about ${CPU_GFLOPS} GFLOP/s: one step (${(flopsPerStep / 1e9).toFixed(1)} GFLOP) would take about ${seconds.toFixed(0)} s`,
            });
            continue;
          }
        }
        let prev: string | null = null;
        let model: TfjsMixture | undefined;
        let tensors: { x: TfCore.Tensor2D; d: TfCore.Tensor2D }[] = [];
        let before = 0, afterWarmup = 0;
        let t = 0;
        const fn = (): number => {
          t++;
          const batch = tensors[t % BATCHES]!;
          return model!.step(batch.x, batch.d);
        };
        const teardown = async (): Promise<void> => {
          model?.dispose();
          for (const b of tensors) {
            b.x.dispose();
            b.d.dispose();
          }
          model = undefined;
          tensors = [];
          if (prev !== null && prev !== backend) await tf.setBackend(prev);
        };
        bench.add(system, fn, {
          beforeAll: async () => {
            prev = await useTfjsBackend(tf, backend);
            try {
              before = tf.memory().numTensors;
              model = tfjsMixtureFor(tf, p, layout);
              tensors = tfjsBatches(tf, p);
              t = 0;
              for (let i = 0; i < warmupSteps; i++) fn();
              // Adam's moments appear on the first update; the count is flat from then on.
              afterWarmup = tf.memory().numTensors;
              compute.set(system, `tfjs ${tf.version_core} ${tf.getBackend()}, experts ${layout}`);
            } catch (err) {
              await teardown();
              throw err;
            }
          },
          afterAll: async () => {
            const leak = tf.memory().numTensors - afterWarmup;
            await teardown();
            const left = tf.memory().numTensors - before;
            if (leak !== 0 || left !== 0) throw new Error(`tfjs ${backend} peer leaked tensors: ${leak} over the timed steps, ${left} after disposing`);
            leaked.set(system, leak);
          },
        });
      }

      bench.addEventListener('cycle', (e) => {
        const task = e.task;
        if (!task) return;
        const r = task.result;
        if (r.state !== 'completed') return;
        const system = task.name as PeerSystem;
        const out = { steps: task.runs, stepMicros: r.period * 1000, rmePercent: r.latency.rme };
        measured.set(system, out);
        progress(`${size} ${LABELS[system](workers)}: ${fmt((B * 1e6) / out.stepMicros)} samples/s over ${out.steps} steps (${fmt(out.stepMicros)} µs/step ±${out.rmePercent.toFixed(1)}%)`);
      });
      await bench.run();

      const sps = (s: PeerSystem): number | undefined => {
        const r = measured.get(s);
        return r ? (B * 1e6) / r.stepMicros : undefined;
      };
      const wasm = sps('tfjs-wasm'), cpu = sps('tfjs-cpu');
      for (const system of ['in-process', 'workers', 'tfjs-wasm', 'tfjs-cpu'] as const) {
        const r = measured.get(system);
        if (!r) continue;
        const s = (B * 1e6) / r.stepMicros;
        const row: PeerRow = {
          size,
          system,
          label: LABELS[system](workers),
          threads: system === 'workers' ? workers : 1,
          compute: compute.get(system) ?? '',
          batch: B,
          steps: r.steps,
          stepMicros: r.stepMicros,
          rmePercent: r.rmePercent,
          samplesPerSecond: s,
        };
        if (wasm !== undefined) row.vsTfjsWasm = s / wasm;
        if (cpu !== undefined) row.vsTfjsCpu = s / cpu;
        if (leaked.has(system)) row.tensorsLeaked = leaked.get(system)!;
        report.rows.push(row);
      }
    } finally {
      await m.close();
    }
  }
  report.loadAverage.end = loadavg()[0]!;
  return report;
}

// ---------------------------------------------------------------------------------------
// Report

/** The report as JSON (one line, or indented with `pretty`). */
export function formatPeersJson(report: PeerReport, pretty = false): string {
  return JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), pretty ? 2 : undefined);
}

function fmt(v: number): string {
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(3);
}

function ratio(v: number | undefined): string {
  return v === undefined ? '–' : `${v >= 10 ? v.toFixed(0) : v.toFixed(2)}×`;
}

/** The report as markdown: one table per size, the skipped systems and how the peers are built. */
export function formatPeersMarkdown(r: PeerReport): string {
  const lines: string[] = [];
  lines.push(`# Peers: the same mixture on identical shapes, one run`, '');
  lines.push(`- machine: ${r.machine} (${r.cpuModel}, ${r.cores} cores), Node ${r.node}`);
  lines.push(`- this library's compute: ${r.backend} (${r.backendDetail}); plain tfjs: tfjs-core ${r.tfjsVersion}`);
  lines.push(`- PyTorch: ${r.pytorch.available ? r.pytorch.detail : `not available (${r.pytorch.detail})`}`);
  lines.push(`- date: ${r.date}; 1-minute load average ${r.loadAverage.start.toFixed(2)} at the start, ${r.loadAverage.end.toFixed(2)} at the end`);
  if (r.command) lines.push(`- command: \`${r.command}\``);
  for (const n of r.notes ?? []) lines.push(`- note: ${n}`);
  lines.push('');
  lines.push(
    `Every system trains the same mixture from the same initial parameters on the same batches: ${r.experts} experts, a linear gate, the Gaussian-mixture NLL, Adam (lr ${LR}), on random regression data; each is one tinybench task, and the ratios compare systems measured side by side in this run.`,
    '',
  );
  for (const s of r.sizes) {
    lines.push(`## ${s.size}: ${s.note}, batch ${s.batch}`, '');
    lines.push(`${s.expertParams.toLocaleString('en-US')} parameters per expert, ${s.gateParams.toLocaleString('en-US')} in the gate, about ${fmt(s.flopsPerStep / 1e6)} MFLOP of expert compute per step.`, '');
    lines.push('| system | threads | compute | steps | µs/step | ±rme | samples/s | × tfjs wasm | × tfjs cpu | tensors leaked |');
    lines.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of r.rows.filter((x) => x.size === s.size)) {
      lines.push(
        `| ${row.label} | ${row.threads} | ${row.compute} | ${row.steps} | ${fmt(row.stepMicros)} | ${row.rmePercent.toFixed(1)}% | ${fmt(row.samplesPerSecond)} | ${ratio(row.vsTfjsWasm)} | ${ratio(row.vsTfjsCpu)} | ${row.tensorsLeaked ?? '–'} |`,
      );
    }
    const skipped = r.skipped.filter((x) => x.size === s.size);
    if (skipped.length) {
      lines.push('');
      for (const x of skipped) lines.push(`Not run: ${x.system}: ${x.reason}.`);
    }
    lines.push('');
  }
  lines.push('## How the peers are built', '');
  lines.push(
    `- local-experts: \`MixtureStep\` with the in-process expert pool (one thread), and with ${r.workers} shard workers on SharedArrayBuffer; each step reads its loss back.`,
    "- plain tfjs: the same mixture in tfjs-core ops on one thread: tf.variable weights, tf.logSoftmax for the gate, the NLL through tf.logSumExp, tf.train.adam with the same β₁, β₂ and ε; each step in tf.tidy, its loss read back. The backward pass is written out in tfjs ops, because tfjs-core's Node build registers no gradient functions (those come with the @tensorflow/tfjs union package). The experts take the faster of two forms on wasm here: `stacked` (one [E, n_in, n_out] variable per layer, batched products: fewest ops, for small) or `per-expert` (2-D untransposed products with explicit tf.transpose, the only form that reaches XNNPACK: 20 GFLOP/s against 1–2 with transposed or batched operands, for medium). Batches are uploaded once; the live tensor count must be the same after the timed steps as before them.",
    `- tfjs cpu runs about ${CPU_GFLOPS} GFLOP/s, so it is measured only where a step costs under ${CPU_MAX_STEP_SECONDS} s there (small).`,
    '',
  );
  return lines.join('\n');
}
