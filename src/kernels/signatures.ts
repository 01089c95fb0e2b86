/**
 * The signature table of the element-wise kernels: ONE entry per kernel, from which come
 * - the `Kernels` type (types.ts maps this table to the methods' signatures and docs),
 * - the WebAssembly wrappers (wasm.ts: views become byte offsets, an activation picks the
 *   export `<wasm><Activation>`),
 * - the argument checks (check.ts: counts, view sizes and buffers, index ranges, overlaps),
 * - the parity list of the tests (test/kernels.test.ts runs every entry on both sets).
 *
 * Adding an element-wise kernel means editing three places: its AssemblyScript in
 * assembly/kernels.ts, its JavaScript mirror in js.ts, and its entry here.
 */
import { ACTIVATIONS, type Activation } from '../model/mlp.js';

/** The names the kernels give their count arguments (extend it for a kernel with a new one). */
export type CountName = 'n' | 'rows' | 'cols' | 'width' | 'E' | 'K' | 'outStride' | 'outOffset' | 'wStride' | 'wOffset' | 'gStride' | 'gOffset';

/** The counts of one call, by argument name. */
export type Counts = Readonly<Record<CountName, number>>;

/** Elements a view must hold, from the call's counts. */
export type Length = (c: Counts) => number;

/** How the indices held by an int32 view are bounded. */
export interface IndexSpec {
  /** Indices must lie in [0, limit) (from the counts and the views' lengths); undefined: no limit. */
  limit: (c: Counts, lengths: Readonly<Record<string, number>>) => number | undefined;
  /** Checked by the checked set (`check: true`); false: the kernel handles an index outside (labels). */
  checked: boolean;
}

/** One argument of a kernel, in call order. */
export type ArgSpec =
  | {
      /** A Float32Array or Int32Array view of the kernel memory, passed to wasm as its byteOffset. */
      kind: 'f32' | 'i32';
      name: string;
      /** Elements read or written; undefined: any length (the whole view may be read). */
      len?: Length;
      /** For an open-length view: a length that fits a call (for the parity tests). */
      sampleLen?: Length;
      /** An int32 view of indices. */
      index?: IndexSpec;
      /** A float32 view whose values must be ≥ 0 (e.g. Adam's second moment). */
      nonNegative?: boolean;
    }
  | {
      /** A non-negative integer count; `role` says what it counts. */
      kind: 'count';
      name: CountName;
      /** `length`: elements (n, cols, K, E, width); `rows`; `stride`/`offset` of a strided view. */
      role: 'length' | 'rows' | 'stride' | 'offset';
    }
  | {
      /** A number, rounded to float32 on entry; `samples` are typical values (parity tests use each). */
      kind: 'scalar';
      name: string;
      samples: readonly number[];
    }
  | {
      /** The activation: `tanh`, `relu` or `sigmoid`; chooses the wasm export. */
      kind: 'activation';
      name: string;
    };

/** A view argument of {@link ArgSpec}. */
export type ViewArg = Extract<ArgSpec, { kind: 'f32' | 'i32' }>;

/** A kernel's entry: its arguments, overlap rules and wasm export. */
export interface KernelSpec {
  /** The wasm export's name (with an activation argument: its prefix, e.g. `activate` → `activateTanh`). */
  wasm: string;
  /** The arguments, in call order. */
  args: readonly ArgSpec[];
  /** Pairs of views that must not overlap at all. */
  disjoint?: readonly (readonly [string, string])[];
  /** Groups of views that may be the same range (in place) but must not overlap partly. */
  inPlace?: readonly (readonly string[])[];
}

/** A table entry typed with its method signature `F` (a phantom: only the type carries it). */
export type Kernel<F> = KernelSpec & { readonly signature?: F };

function kernel<F extends (...args: never[]) => void>(spec: KernelSpec): Kernel<F> {
  return spec;
}

const f32 = (name: string, len: Length | { open: Length }, init?: 'nonNegative'): ArgSpec =>
  typeof len === 'function' ? { kind: 'f32', name, len, ...(init ? { nonNegative: true } : {}) } : { kind: 'f32', name, sampleLen: len.open };
const i32 = (name: string, len: Length | { open: Length }, index?: IndexSpec): ArgSpec =>
  typeof len === 'function' ? { kind: 'i32', name, len, ...(index ? { index } : {}) } : { kind: 'i32', name, sampleLen: len.open, ...(index ? { index } : {}) };
const open = (sample: Length): { open: Length } => ({ open: sample });
const count = (name: CountName): ArgSpec => ({ kind: 'count', name, role: 'length' });
const rows = (name: CountName): ArgSpec => ({ kind: 'count', name, role: 'rows' });
const stride = (name: CountName): ArgSpec => ({ kind: 'count', name, role: 'stride' });
const offset = (name: CountName): ArgSpec => ({ kind: 'count', name, role: 'offset' });
const scalar = (name: string, ...samples: number[]): ArgSpec => ({ kind: 'scalar', name, samples });
const act = (): ArgSpec => ({ kind: 'activation', name: 'act' });
/** Elements of a view read at r·stride + offset for r < rows. */
const strided =
  (s: CountName, o: CountName): Length =>
  (c) =>
    c.rows === 0 ? 0 : (c.rows - 1) * c[s] + c[o] + 1;

/** The element-wise kernels of a training step; see types.ts for the conventions. */
export const KERNEL_TABLE = {
  /**
   * Every row of `z` (rows×cols) ← `bias` (cols), bit for bit, so that a following sgemm
   * with beta = 1 adds x·W on top.
   */
  biasRows: kernel<(z: Float32Array, bias: Float32Array, rows: number, cols: number) => void>({ wasm: 'biasRows', args: [f32('z', (c) => c.rows * c.cols), f32('bias', (c) => c.cols), rows('rows'), count('cols')], disjoint: [['z', 'bias']] }),

  /**
   * In place, n elements: a ← f(a).
   * - `tanh`: in float32 through expm1 (constants in constants.ts): g = sign bit of a;
   *   z = |a|, z = (C < z ? C : z) with C = 9; tm = z·(−2·log2e) + 1.5·2²³; nf = tm − 1.5·2²³;
   *   s = 2^n from the bits of tm (n = nf in [−26, 0]); ρ = z + nf·(ln2/2);
   *   q = ((Q43·ρ + Q42)·ρ + Q41)·ρ + Q40 with Q4k = 4·(−2)^k·TQk; e = ρ·((ρ·q) − 2);
   *   m = (s·e) − (1 − s); y = m / (−2 − m); a = y with g XOR-ed onto its sign bit. So tanh is
   *   exactly odd, tanh(±0) = ±0, ±∞ → ±1, NaN → NaN. Absolute error ≤ 3e-7 against Math.tanh
   *   over every float32 (1.49e-7 measured, exhaustively; test/kernels.test.ts).
   * - `relu`: a = (a > 0 ? a : +0); NaN → +0 (the old behaviour).
   * - `sigmoid`: a = 1 / (1 + exp(−a)) with the float32 exp: relative error ≤ 4·2⁻²⁴ (2.3·2⁻²⁴
   *   measured) down to 2⁻¹²⁶; below a ≈ −88.7, exp(−a) overflows and the result is +0
   *   (absolute error < 2⁻¹²⁶). NaN → NaN.
   */
  activate: kernel<(act: Activation, a: Float32Array, n: number) => void>({ wasm: 'activate', args: [act(), f32('a', (c) => c.n), count('n')] }),

  /**
   * In place, every row r of `z` (rows×cols): z[r,c] ← f(z[r,c] + bias[c]), the sum rounded to
   * float32 and then the activation exactly as `activate`: the same result as
   * adding the bias and then calling activate, in one pass over z.
   */
  biasActivate: kernel<(act: Activation, z: Float32Array, bias: Float32Array, rows: number, cols: number) => void>({ wasm: 'biasActivate', args: [act(), f32('z', (c) => c.rows * c.cols), f32('bias', (c) => c.cols), rows('rows'), count('cols')], disjoint: [['z', 'bias']] }),

  /**
   * In place, n elements: delta ← delta ⊙ f'(z), written through the activation a = f(z):
   * - `tanh`: delta = delta · (1 − a·a);
   * - `relu`: delta = (a > 0 ? delta : +0);
   * - `sigmoid`: delta = (delta · a) · (1 − a).
   */
  activateBackward: kernel<(act: Activation, delta: Float32Array, a: Float32Array, n: number) => void>({ wasm: 'backward', args: [act(), f32('delta', (c) => c.n), f32('a', (c) => c.n), count('n')], inPlace: [['delta', 'a']] }),

  /**
   * Bias gradient: out[c] = (((+0 + m[0,c]) + m[1,c]) + …) + m[rows−1,c] for c < cols, summed
   * over r in increasing order (m is rows×cols). rows = 0 gives +0. out must not overlap m.
   */
  colSums: kernel<(m: Float32Array, rows: number, cols: number, out: Float32Array) => void>({ wasm: 'colSums', args: [f32('m', (c) => c.rows * c.cols), rows('rows'), count('cols'), f32('out', (c) => c.cols)], disjoint: [['out', 'm']] }),

  /** dst row r ← src row idx[r] for r < rows (rows of `width` floats; bits copied unchanged). */
  gatherRows: kernel<(src: Float32Array, width: number, idx: Int32Array, rows: number, dst: Float32Array) => void>({ wasm: 'gatherRows', args: [f32('src', open((c) => 7 * c.width)), count('width'), i32('idx', (c) => c.rows, { limit: (c, len) => (c.width > 0 ? Math.floor(len.src! / c.width) : undefined), checked: true }), rows('rows'), f32('dst', (c) => c.rows * c.width)], disjoint: [['dst', 'src']] }),

  /** dst[r] ← src[idx[r]] for r < rows (labels). */
  gatherRowsI32: kernel<(src: Int32Array, idx: Int32Array, rows: number, dst: Int32Array) => void>({ wasm: 'gatherRowsI32', args: [i32('src', open((c) => c.rows + 3)), i32('idx', (c) => c.rows, { limit: (_c, len) => len.src!, checked: true }), rows('rows'), i32('dst', (c) => c.rows)], disjoint: [['dst', 'src']] }),

  /** SGD, n parameters: p ← p − lr·(g + wd·p), i.e. t = g + (wd·p); p = p − (lr·t). */
  sgd: kernel<(p: Float32Array, g: Float32Array, n: number, lr: number, wd: number) => void>({ wasm: 'sgd', args: [f32('p', (c) => c.n), f32('g', (c) => c.n), count('n'), scalar('lr', 0.05), scalar('wd', 1e-4, 0)], inPlace: [['p', 'g']] }),

  /**
   * Momentum, n parameters: gj = g + (wd·p); v = (mu·v) + gj; p = p − (lr·v).
   * `vel` is the velocity (n floats).
   */
  momentum: kernel<(p: Float32Array, g: Float32Array, vel: Float32Array, n: number, lr: number, mu: number, wd: number) => void>({ wasm: 'momentum', args: [f32('p', (c) => c.n), f32('g', (c) => c.n), f32('vel', (c) => c.n), count('n'), scalar('lr', 0.05), scalar('mu', 0.9), scalar('wd', 1e-4)], inPlace: [['p', 'g', 'vel']] }),

  /**
   * Adam with PLANAR state (m and v are separate arrays of n floats), n parameters:
   * a1 = 1 − b1 and a2 = 1 − b2 come from the caller (computed in float64, rounded once
   * to float32, as torch.optim.Adam's `1 - beta`); gj = g + (wd·p); m = (b1·m) + (a1·gj);
   * v = (b2·v) + (a2·(gj·gj)); p = p − ((stepSize·m) / (sqrt(v·invC2) + eps)).
   * The caller computes stepSize = lr/(1 − b1^t) and invC2 = 1/(1 − b2^t) in float64.
   */
  adam: kernel<(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number, stepSize: number, invC2: number, b1: number, b2: number, a1: number, a2: number, eps: number, wd: number) => void>({ wasm: 'adam', args: [f32('p', (c) => c.n), f32('g', (c) => c.n), f32('m', (c) => c.n), f32('v', (c) => c.n, 'nonNegative'), count('n'), scalar('stepSize', 0.01 / (1 - 0.9 ** 3)), scalar('invC2', 1 / (1 - 0.999 ** 3)), scalar('b1', 0.9), scalar('b2', 0.999), scalar('a1', 1 - 0.9), scalar('a2', 1 - 0.999), scalar('eps', 1e-8), scalar('wd', 0, 1e-3)], disjoint: [['m', 'v'], ['m', 'p'], ['v', 'p']], inPlace: [['p', 'g']] }),

  /**
   * Gate softmax, per row of u (rows×E): lse = logsumexp(u_r) (see the module comment);
   * logG = u − lse; g = exp(logG). logG and g are rows×E; they may alias u (not each other).
   */
  logSoftmaxRows: kernel<(u: Float32Array, rows: number, E: number, logG: Float32Array, g: Float32Array) => void>({ wasm: 'logSoftmaxRows', args: [f32('u', (c) => c.rows * c.E), rows('rows'), count('E'), f32('logG', (c) => c.rows * c.E), f32('g', (c) => c.rows * c.E)], inPlace: [['u', 'logG', 'g']] }),

  /** out[r·outStride + outOffset] = Σ_k (d[r,k] − o[r,k])·(d[r,k] − o[r,k]) in lane order (o, d rows×K). */
  sqErrRows: kernel<(o: Float32Array, d: Float32Array, rows: number, K: number, out: Float32Array, outStride: number, outOffset: number) => void>({ wasm: 'sqErrRows', args: [f32('o', (c) => c.rows * c.K), f32('d', (c) => c.rows * c.K), rows('rows'), count('K'), f32('out', strided('outStride', 'outOffset')), stride('outStride'), offset('outOffset')] }),

  /**
   * Categorical score: lse[r] = logsumexp(z_r) (kept for backward); out[r·outStride + outOffset]
   * = z[r, labels[r]] − lse[r], or NaN when labels[r] is outside [0, K). z is rows×K.
   */
  logSoftmaxPickRows: kernel<(z: Float32Array, labels: Int32Array, rows: number, K: number, out: Float32Array, outStride: number, outOffset: number, lse: Float32Array) => void>({ wasm: 'logSoftmaxPickRows', args: [f32('z', (c) => c.rows * c.K), i32('labels', (c) => c.rows, { limit: (c) => c.K, checked: false }), rows('rows'), count('K'), f32('out', strided('outStride', 'outOffset')), stride('outStride'), offset('outOffset'), f32('lse', (c) => c.rows)] }),

  /** gradOut[r,k] = w_r · (ref[r,k] − d[r,k]) with w_r = w[r·wStride + wOffset] (all rows×K). */
  weightedDiffRows: kernel<(ref: Float32Array, d: Float32Array, w: Float32Array, wStride: number, wOffset: number, rows: number, K: number, gradOut: Float32Array) => void>({ wasm: 'weightedDiffRows', args: [f32('ref', (c) => c.rows * c.K), f32('d', (c) => c.rows * c.K), f32('w', strided('wStride', 'wOffset')), stride('wStride'), offset('wOffset'), rows('rows'), count('K'), f32('gradOut', (c) => c.rows * c.K)], inPlace: [['ref', 'd', 'gradOut']] }),

  /**
   * Categorical output gradient: gradOut[r,k] = w_r · (exp(z[r,k] − lse[r]) − [k = labels[r]])
   * with w_r = w[r·wStride + wOffset]; for k ≠ label the subtraction of 0 is exact and skipped.
   * A label outside [0, K) subtracts nothing.
   */
  softmaxMinusOnehotRows: kernel<(z: Float32Array, lse: Float32Array, labels: Int32Array, w: Float32Array, wStride: number, wOffset: number, rows: number, K: number, gradOut: Float32Array) => void>({ wasm: 'softmaxMinusOnehotRows', args: [f32('z', (c) => c.rows * c.K), f32('lse', (c) => c.rows), i32('labels', (c) => c.rows, { limit: (c) => c.K, checked: false }), f32('w', strided('wStride', 'wOffset')), stride('wStride'), offset('wOffset'), rows('rows'), count('K'), f32('gradOut', (c) => c.rows * c.K)], inPlace: [['z', 'gradOut']] }),

  /** Cooperative dot: out[r·outStride + outOffset] = Σ_k (d − ybar)[r,k] · (o − ybar)[r,k] in lane order. */
  dotDiffRows: kernel<(d: Float32Array, ybar: Float32Array, o: Float32Array, rows: number, K: number, out: Float32Array, outStride: number, outOffset: number) => void>({ wasm: 'dotDiffRows', args: [f32('d', (c) => c.rows * c.K), f32('ybar', (c) => c.rows * c.K), f32('o', (c) => c.rows * c.K), rows('rows'), count('K'), f32('out', strided('outStride', 'outOffset')), stride('outStride'), offset('outOffset')] }),

  /** Cooperative mixing, one expert: ybar[r,k] = ybar[r,k] + (g_r · o[r,k]) with g_r = g[r·gStride + gOffset]. */
  mixAccumulate: kernel<(ybar: Float32Array, o: Float32Array, g: Float32Array, gStride: number, gOffset: number, rows: number, K: number) => void>({ wasm: 'mixAccumulate', args: [f32('ybar', (c) => c.rows * c.K), f32('o', (c) => c.rows * c.K), f32('g', strided('gStride', 'gOffset')), stride('gStride'), offset('gOffset'), rows('rows'), count('K')], inPlace: [['ybar', 'o']] }),

  /** dst = dst + src, n elements (sums gradient blocks in a fixed order). */
  addInto: kernel<(dst: Float32Array, src: Float32Array, n: number) => void>({ wasm: 'addInto', args: [f32('dst', (c) => c.n), f32('src', (c) => c.n), count('n')], inPlace: [['dst', 'src']] }),

  /**
   * out[0] ← Σ a_i² over a[0..n), in float32: four f32x4 accumulators over blocks of 16
   * (element i of a block into lane i mod 4 of accumulator ⌊i/4⌋ mod 4), the accumulators
   * summed lane-wise as (s0 + s1) + (s2 + s3), its lanes 0..3 in order, then the tail in
   * order. NaN and ±∞ propagate; a sum past float32's range is +∞. The finite-step check
   * of a gradient (engine/finite.ts).
   */
  sqNorm: kernel<(a: Float32Array, n: number, out: Float32Array) => void>({ wasm: 'sqNorm', args: [f32('a', (c) => c.n), count('n'), f32('out', () => 1)], disjoint: [['a', 'out']] }),
  /** dst[0…n) ← float32(value). */
  fill: kernel<(dst: Float32Array, n: number, value: number) => void>({ wasm: 'fill', args: [f32('dst', (c) => c.n), count('n'), scalar('value', -0.1, 0, -0)] }),

  /** dst[0…n) ← src[0…n), bits unchanged; the ranges may overlap (memmove). */
  copy: kernel<(dst: Float32Array, src: Float32Array, n: number) => void>({ wasm: 'copy', args: [f32('dst', (c) => c.n), f32('src', (c) => c.n), count('n')] }),
};

/** The name of each kernel. */
export type KernelName = keyof typeof KERNEL_TABLE;

/** Every kernel's name, in table order. */
export const KERNEL_NAMES = Object.keys(KERNEL_TABLE) as KernelName[];

/** Every activation a kernel with an `activation` argument accepts (the export suffix is its name, capitalised). */
export const KERNEL_ACTIVATIONS: readonly Activation[] = ACTIVATIONS;
