/**
 * An independent float64 reference of the mixture's forward pass and error functions,
 * written from the formulas of Jacobs, Jordan, Nowlan & Hinton (1991) and
 * shared/ARCHITECTURE.md, not from src/: nothing here calls library code (only its
 * types are imported), so a finite difference of {@link refBatchLoss} checks the
 * library's analytic gradients against the math rather than against itself.
 *
 * Parameter layout follows src/model/mlp.ts: for layer l mapping n_l → n_{l+1},
 *   [ W_0 (n_0×n_1, row-major: W[a][b] at a·n_1 + b) | b_0 (n_1) | W_1 | b_1 | … ]
 * hidden layers apply the activation, the last layer is linear.
 */
import type { MixtureConfig } from '../../src/model/config.js';

/** Hidden nonlinearity, spelled as in the library's configs. */
export type RefActivation = 'tanh' | 'relu' | 'sigmoid';
export type RefLoss = 'cooperative' | 'competitive' | 'gaussian' | 'categorical';

/** A network: layer widths, input first, and the hidden activation. */
export interface RefNet {
  sizes: number[];
  activation: RefActivation;
}

function act(v: number, a: RefActivation): number {
  if (a === 'tanh') return Math.tanh(v);
  if (a === 'relu') return v > 0 ? v : 0;
  return 1 / (1 + Math.exp(-v));
}

/** Number of parameters of a network: Σ_l n_l·n_{l+1} + n_{l+1}. */
export function refParamCount(net: RefNet): number {
  let n = 0;
  for (let l = 0; l + 1 < net.sizes.length; l++) n += net.sizes[l]! * net.sizes[l + 1]! + net.sizes[l + 1]!;
  return n;
}

/** One row through the network: x (n_0) → output (n_L), in float64. */
export function refNetForward(net: RefNet, params: ArrayLike<number>, x: ArrayLike<number>): number[] {
  let a: number[] = Array.from(x);
  let off = 0;
  const L = net.sizes.length - 1;
  for (let l = 0; l < L; l++) {
    const nin = net.sizes[l]!, nout = net.sizes[l + 1]!;
    const bOff = off + nin * nout;
    const z: number[] = [];
    for (let j = 0; j < nout; j++) {
      let s = params[bOff + j]!;
      for (let i = 0; i < nin; i++) s += a[i]! * params[off + i * nout + j]!;
      z.push(l < L - 1 ? act(s, net.activation) : s);
    }
    a = z;
    off = bOff + nout;
  }
  return a;
}

/** softmax(v), shifted by max(v) so exp never overflows. */
export function refSoftmax(v: readonly number[]): number[] {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((p, q) => p + q, 0);
  return e.map((x) => x / s);
}

/** log Σ exp(v), shifted by max(v). */
export function refLogSumExp(v: readonly number[]): number {
  const m = Math.max(...v);
  if (m === -Infinity) return -Infinity;
  return m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0));
}

/** What one case gives: loss, gate probabilities, posteriors (g for the squared errors), ȳ. */
export interface RefCase {
  loss: number;
  g: number[];
  /** h_i ∝ g_i exp(−½e_i) (gaussian) or g_i P_i(y) (categorical); g itself for the squared errors. */
  h: number[];
  /** Σ g_i o_i (for categorical: Σ g_i softmax(z_i), the class probabilities). */
  ybar: number[];
}

/**
 * One case's error from gate logits u (E), expert outputs o (E rows of K; logits for
 * categorical), target d (K; one-hot for classification with a squared loss) and label y:
 *   cooperative  ½‖d − Σ g_i o_i‖²
 *   competitive  Σ g_i ‖d − o_i‖²
 *   gaussian     −log Σ g_i exp(−½‖d − o_i‖²)
 *   categorical  −log Σ g_i softmax(o_i)[y]
 * with g = softmax(u). Log-space where it matters, so huge logits stay finite.
 */
export function refCase(loss: RefLoss, u: readonly number[], o: readonly (readonly number[])[], d: readonly number[], y: number): RefCase {
  const E = u.length, K = d.length;
  const lse = refLogSumExp(u);
  const logG = u.map((v) => v - lse);
  const g = logG.map(Math.exp);
  const ybar = new Array<number>(K).fill(0);
  if (loss === 'categorical') {
    for (let i = 0; i < E; i++) {
      const p = refSoftmax(o[i]!);
      for (let k = 0; k < K; k++) ybar[k]! += g[i]! * p[k]!;
    }
  } else {
    for (let i = 0; i < E; i++) for (let k = 0; k < K; k++) ybar[k]! += g[i]! * o[i]![k]!;
  }
  const sq = (a: readonly number[], b: readonly number[]): number => a.reduce((s, v, k) => s + (v - b[k]!) ** 2, 0);
  if (loss === 'cooperative') return { loss: 0.5 * sq(d, ybar), g, h: g, ybar };
  if (loss === 'competitive') return { loss: g.reduce((s, gi, i) => s + gi * sq(d, o[i]!), 0), g, h: g, ybar };
  // log(g_i s_i) per expert, s_i the expert's likelihood of the case.
  const joint = o.map((oi, i) => {
    const logS = loss === 'gaussian' ? -0.5 * sq(d, oi) : oi[y]! - refLogSumExp(oi);
    return logG[i]! + logS;
  });
  const total = refLogSumExp(joint);
  return { loss: -total, g, h: joint.map((a) => Math.exp(a - total)), ybar };
}

/** The two networks of a mixture, as the library's config describes them. */
export function refNets(c: MixtureConfig): { expert: RefNet; gate: RefNet } {
  return {
    expert: { sizes: [c.inputs, ...(c.expert.kind === 'mlp' ? c.expert.hidden : []), c.outputs], activation: c.expert.activation },
    gate: { sizes: [c.inputs, ...(c.gate.kind === 'mlp' ? c.gate.hidden : []), c.experts], activation: c.gate.activation },
  };
}

/** A batch: x n×D, targets t n×K (one-hot rows for classification), labels n. */
export interface RefBatch {
  n: number;
  x: ArrayLike<number>;
  t: ArrayLike<number>;
  labels: ArrayLike<number>;
}

/**
 * The batch-mean error of the whole mixture for parameters in the library's layout:
 * `gateParams` (the gate network) and `expertParams` (expert i's block at i·P).
 */
export function refBatchLoss(
  c: MixtureConfig,
  gateParams: ArrayLike<number>,
  expertParams: ArrayLike<number>,
  b: RefBatch,
): { loss: number; cases: RefCase[]; outputs: number[][][] } {
  const { expert, gate } = refNets(c);
  const P = refParamCount(expert);
  const D = c.inputs, K = c.outputs, E = c.experts;
  const blocks = Array.from({ length: E }, (_, i) => Array.prototype.slice.call(expertParams, i * P, (i + 1) * P) as number[]);
  let total = 0;
  const cases: RefCase[] = [];
  const outputs: number[][][] = [];
  for (let r = 0; r < b.n; r++) {
    const x = Array.prototype.slice.call(b.x, r * D, (r + 1) * D) as number[];
    const d = Array.prototype.slice.call(b.t, r * K, (r + 1) * K) as number[];
    const u = refNetForward(gate, gateParams, x);
    const o = blocks.map((p) => refNetForward(expert, p, x));
    const rc = refCase(c.loss, u, o, d, b.labels[r]!);
    total += rc.loss;
    cases.push(rc);
    outputs.push(o);
  }
  return { loss: total / b.n, cases, outputs };
}

/**
 * Central differences (f(θ+ε) − f(θ−ε)) / 2ε of `f` at every coordinate of `theta`
 * (float64; θ is restored after each coordinate).
 */
export function numericGradient(f: () => number, theta: Float64Array, eps = 1e-4): Float64Array {
  const grad = new Float64Array(theta.length);
  for (let j = 0; j < theta.length; j++) {
    const keep = theta[j]!;
    theta[j] = keep + eps;
    const plus = f();
    theta[j] = keep - eps;
    const minus = f();
    theta[j] = keep;
    grad[j] = (plus - minus) / (2 * eps);
  }
  return grad;
}

/** A routing decision held fixed while the parameters move (finite differences through sparse routing). */
export interface RefFrozenRouting {
  /** 'topk' (ĝ = softmax of h over the chosen), or 'prob' (switch, expert-choice: ĝ = softmax(u) of the chosen). */
  weights: 'topk' | 'prob';
  /** chosen[r][i]: row r goes to expert i. */
  chosen: boolean[][];
  /** Noisy top-k: the standard normal draws ε (n×E), else undefined. */
  eps?: number[][];
  /** Balancing weights (0 = off). */
  balanceLoss: number;
  zLoss: number;
}

/**
 * The batch-mean error under sparse routing with the choice frozen, plus the balancing
 * losses, from the formulas (independent of src/): per row, h = u (+ ε·softplus(x·Wn + bn)
 * with noise), ĝ over the chosen experts; the error functions over the chosen only (a row
 * with none adds nothing); Switch loss w·E·Σ_i f_i·P_i with f_i the fraction of (row,
 * choice) pairs routed to i (held fixed) and P_i the mean softmax(u)_i; z-loss
 * w·mean_r logsumexp(u_r)².
 */
export function refRoutedBatchLoss(
  c: MixtureConfig,
  gateParams: ArrayLike<number>,
  expertParams: ArrayLike<number>,
  noiseParams: ArrayLike<number>,
  b: RefBatch,
  f: RefFrozenRouting,
): number {
  const { expert, gate } = refNets(c);
  const P = refParamCount(expert);
  const D = c.inputs, K = c.outputs, E = c.experts;
  const noiseNet: RefNet = { sizes: [D, E], activation: 'tanh' };
  const sq = (a: readonly number[], q: readonly number[]): number => a.reduce((s, v, k) => s + (v - q[k]!) ** 2, 0);
  let total = 0;
  const meanP = new Array<number>(E).fill(0);
  const pairs = new Array<number>(E).fill(0);
  let zs = 0;
  for (let r = 0; r < b.n; r++) {
    const x = Array.prototype.slice.call(b.x, r * D, (r + 1) * D) as number[];
    const d = Array.prototype.slice.call(b.t, r * K, (r + 1) * K) as number[];
    const u = refNetForward(gate, gateParams, x);
    const p = refSoftmax(u);
    p.forEach((v, i) => (meanP[i]! += v / b.n));
    zs += refLogSumExp(u) ** 2;
    let h = u;
    if (f.eps) {
      const nl = refNetForward(noiseNet, noiseParams, x);
      h = u.map((v, i) => v + f.eps![r]![i]! * Math.log1p(Math.exp(nl[i]!)));
    }
    const chosen = f.chosen[r]!.map((on, i) => (on ? i : -1)).filter((i) => i >= 0);
    chosen.forEach((i) => pairs[i]!++);
    if (chosen.length === 0) continue;
    let logW: number[];
    if (f.weights === 'topk') {
      const lse = refLogSumExp(chosen.map((i) => h[i]!));
      logW = chosen.map((i) => h[i]! - lse);
    } else {
      const lse = refLogSumExp(u);
      logW = chosen.map((i) => u[i]! - lse);
    }
    const w = logW.map(Math.exp);
    const o = chosen.map((i) => refNetForward(expert, Array.prototype.slice.call(expertParams, i * P, (i + 1) * P) as number[], x));
    if (c.loss === 'cooperative') {
      const ybar = new Array<number>(K).fill(0);
      o.forEach((oi, j) => oi.forEach((v, k) => (ybar[k]! += w[j]! * v)));
      total += 0.5 * sq(d, ybar);
    } else if (c.loss === 'competitive') {
      total += o.reduce((s, oi, j) => s + w[j]! * sq(d, oi), 0);
    } else {
      const y = b.labels[r]!;
      const joint = o.map((oi, j) => logW[j]! + (c.loss === 'gaussian' ? -0.5 * sq(d, oi) : oi[y]! - refLogSumExp(oi)));
      total -= refLogSumExp(joint);
    }
  }
  let loss = total / b.n;
  const allPairs = Math.max(1, pairs.reduce((s, v) => s + v, 0));
  if (f.balanceLoss > 0) loss += f.balanceLoss * E * pairs.reduce((s, n, i) => s + (n / allPairs) * meanP[i]!, 0);
  if (f.zLoss > 0) loss += (f.zLoss * zs) / b.n;
  return loss;
}
