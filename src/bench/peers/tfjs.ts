/**
 * The plain-tfjs peer of `moe bench peers`: the benchmark's mixture (linear gate, E experts,
 * Gaussian-mixture NLL, Adam) written with tfjs-core ops on one thread, on the `wasm`
 * backend (XNNPACK, one thread) or the `cpu` backend, and the contender that times it.
 *
 * One global tfjs backend per thread: this library's own `wasm`/`cpu` providers use it too.
 * A tfjs measurement switches the backend when it starts and switches it back when it ends,
 * so this library's provider (blas by default, which does not touch tfjs at all) always
 * finds the backend it was loaded on; measurements never overlap.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import { OptionError } from '../../errors.js';
import { expertShape } from '../../model/config.js';
import { mlpParamCount, type Activation } from '../../model/mlp.js';
import { timeWindow, type BenchSize, type Window, type WindowPlan } from '../harness.js';
import type { BenchProblem } from '../problem.js';

/** The tfjs backends a peer can run on. */
export const TFJS_PEER_BACKENDS = ['wasm', 'cpu'] as const;
/** One of {@link TFJS_PEER_BACKENDS}. */
export type TfjsPeerBackend = (typeof TFJS_PEER_BACKENDS)[number];

/** The tfjs peer's expert layout per size: the faster of the two on wasm here (see {@link TfjsExpertLayout}). */
export const TFJS_LAYOUT: Record<BenchSize, TfjsExpertLayout> = { small: 'stacked', medium: 'per-expert', large: 'per-expert' };

/**
 * tfjs `cpu` runs about 0.6 GFLOP/s here (ARCHITECTURE.md): a size whose estimated step
 * takes longer than {@link TFJS_CPU_MAX_STEP_SECONDS} on it is not run on that backend, and
 * the report says why.
 */
export const TFJS_CPU_GFLOPS = 0.6;
/** The longest estimated tfjs `cpu` step that is still measured, s. */
export const TFJS_CPU_MAX_STEP_SECONDS = 1;

/** Why tfjs `cpu` is not run on a step of `flopsPerStep`, or undefined where it is cheap enough. */
export function tfjsCpuTooSlow(flopsPerStep: number): string | undefined {
  const seconds = flopsPerStep / (TFJS_CPU_GFLOPS * 1e9);
  if (seconds <= TFJS_CPU_MAX_STEP_SECONDS) return undefined;
  return `tfjs cpu runs about ${TFJS_CPU_GFLOPS} GFLOP/s: one step (${(flopsPerStep / 1e9).toFixed(1)} GFLOP) would take about ${seconds.toFixed(0)} s`;
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

/** A {@link TfjsMixture} from a problem's mixture's current parameters and optimizer settings. */
export function tfjsMixtureFor(tf: typeof TfCore, p: BenchProblem, layout: TfjsExpertLayout = 'per-expert'): TfjsMixture {
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
export function tfjsBatches(tf: typeof TfCore, p: BenchProblem): { x: TfCore.Tensor2D; d: TfCore.Tensor2D }[] {
  const c = p.mixture.config, B = p.batch;
  return p.batches.map((rows) => {
    const first = rows[0]!;
    // The batches are runs of consecutive rows (see benchProblem).
    return {
      x: tf.tensor2d(p.x.slice(first * c.inputs, (first + B) * c.inputs), [B, c.inputs]),
      d: tf.tensor2d(p.t.slice(first * c.outputs, (first + B) * c.outputs), [B, c.outputs]),
    };
  });
}

/** What one tfjs measurement leaves: the window, what ran, and the tensors it left alive (always 0, or it throws). */
export interface TfjsWindow extends Window {
  /** `tfjs <version> <backend>, experts <layout>`. */
  compute: string;
  /** Tensors alive after the timed steps minus after the warm-up (0). */
  tensorsLeaked: number;
}

/**
 * One measurement of the tfjs peer: switch to `backend`, build the model from the
 * problem's initial parameters, upload the batches, warm up, time a window, release
 * everything and switch the backend back. Throws when a tensor is left alive.
 */
export async function tfjsWindow(tf: typeof TfCore, p: BenchProblem, backend: TfjsPeerBackend, layout: TfjsExpertLayout, plan: WindowPlan, warmupSteps: number): Promise<TfjsWindow> {
  const prev = await useTfjsBackend(tf, backend);
  const before = tf.memory().numTensors;
  let model: TfjsMixture | undefined;
  let tensors: { x: TfCore.Tensor2D; d: TfCore.Tensor2D }[] = [];
  let window: Window;
  let leak: number;
  const compute = `tfjs ${tf.version_core} ${tf.getBackend()}, experts ${layout}`;
  try {
    model = tfjsMixtureFor(tf, p, layout);
    tensors = tfjsBatches(tf, p);
    let t = 0;
    const step = (): number => {
      t++;
      const b = tensors[t % tensors.length]!;
      return model!.step(b.x, b.d);
    };
    for (let i = 0; i < warmupSteps; i++) step();
    // Adam's moments appear on the first update; the count is flat from then on.
    const afterWarmup = tf.memory().numTensors;
    window = await timeWindow(step, plan);
    leak = tf.memory().numTensors - afterWarmup;
  } finally {
    model?.dispose();
    for (const b of tensors) {
      b.x.dispose();
      b.d.dispose();
    }
    if (prev !== null && prev !== backend) await tf.setBackend(prev);
  }
  const left = tf.memory().numTensors - before;
  if (leak !== 0 || left !== 0) throw new Error(`tfjs ${backend} peer leaked tensors: ${leak} over the timed steps, ${left} after disposing`);
  return { ...window, compute, tensorsLeaked: leak };
}
