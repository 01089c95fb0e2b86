/**
 * Inference on the calling thread: gate probabilities, the routed experts' outputs and the
 * mixture's output for standardised inputs, and the mean loss where targets are given,
 * in chunks of rows so the kernel memory stays bounded. Each chunk is routed by the
 * routing plan training uses (src/engine/routing-plan.ts, predict mode), and each expert
 * computes only the rows routed to it. The engine copies the parameters into a kernel
 * memory of its own when it is made (make a new one when they change), or, in a training
 * session, runs in that session's memory on its live parameters (see {@link EngineHome}).
 */
import type { WasmMemory } from '../kernels/wasm-api.js';
import type { Sgemm } from '../compute/provider.js';
import type { Kernels } from '../kernels/types.js';
import { errorFunction, meanLoss, type ExpertLossBlock, type MainLossViews } from '../losses/index.js';
import { Arena } from '../memory/arena.js';
import { allocateMemory } from '../memory/memory.js';
import { expertShape, gateShape, type MixtureConfig } from '../model/config.js';
import { hiddenWidthSum, layerViews, mlpParamCount, type LayerViews, type MlpShape } from '../model/mlp.js';
import { mlpForward, type MlpPass } from '../nn/mlp.js';
import { RoutingPlan, routingRule, type GateScores, type PlanEntries, type RoutingRule } from './routing-plan.js';

/** What a forward pass gives for n rows. */
export interface MixtureForward {
  /** Number of rows. */
  n: number;
  /**
   * The combination weights ĝ, n×E: the gate's softmax under dense routing; under sparse
   * routing the weights of each row's chosen experts and 0 for the others.
   */
  gate: Float32Array;
  /** Whether row r was routed to expert i, n×E (1 or 0; all 1 under dense routing). */
  routed: Uint8Array;
  /**
   * Expert outputs, E blocks of n×K (expert i at i·n·K); logits for categorical. 0 where
   * the row was not routed to the expert, unless every expert was computed (allExperts).
   * Under sparse routing made when first read (a plain property from then on).
   */
  experts: Float32Array;
  /**
   * The mixture's output, n×K: Σ g_i o_i, or for categorical the class probabilities
   * Σ g_i softmax(z_i), over each row's routed experts. Standardised units for regression.
   */
  mixture: Float32Array;
  /** Mean loss under the model's error function, where targets were given. */
  loss?: number;
}

/** Targets for the loss: model-space rows (n×K) and labels. */
export interface LossTargets {
  t: Float32Array;
  labels: Int32Array;
}

/**
 * Define `obj[key]` as computed by `make` when first read (then a plain value). A sparse
 * prediction's E×n×K expert outputs are mostly not computed: a caller that never reads
 * them never pays for the array.
 */
export function lazy<T extends object, K extends keyof T>(obj: T, key: K, make: () => T[K]): void {
  Object.defineProperty(obj, key, {
    configurable: true,
    enumerable: true,
    get(): T[K] {
      const value = make();
      Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
      return value;
    },
  });
}

/** Most rows per chunk. */
export const INFERENCE_CHUNK = 1024;

/**
 * Scratch bytes one chunk may take: past this a chunk holds fewer rows (a dense model of
 * 10⁶ experts needs ~50 MB a row, so 1,024 rows would need 50 GiB, past any WebAssembly
 * memory: its training ran an epoch, then could not evaluate and lost the model).
 */
const CHUNK_SCRATCH_BYTES = 256 * 2 ** 20;

/** Bytes of an engine's scratch for chunks of `C` rows. */
function scratchBytes(config: MixtureConfig, rule: RoutingRule, C: number): number {
  const a = new Arena(0);
  reserveScratch(a, config, rule, C);
  return a.byteLength;
}

/**
 * Rows per chunk for `config` under `rule`: INFERENCE_CHUNK, or fewer (at least 1) where a
 * chunk's scratch would pass CHUNK_SCRATCH_BYTES. A function of the configuration only,
 * so `evaluate` and a fit's validation chunk the rows alike (and so sum the loss alike).
 */
export function chunkRows(config: MixtureConfig, rule: RoutingRule = routingRule(config.routing)): number {
  const one = scratchBytes(config, rule, 1);
  const perRow = Math.max(1, scratchBytes(config, rule, 2) - one);
  return Math.max(1, Math.min(INFERENCE_CHUNK, Math.floor((CHUNK_SCRATCH_BYTES - (one - perRow)) / perRow)));
}

type FloatBuffers = 'x' | 'u' | 'logG' | 'g' | 'eHidden' | 'gHidden' | 'out' | 'prob' | 'mix' | 'score' | 'lse' | 't' | 'w' | 'dlw' | 'rowScratch' | 'ex' | 'et' | 'all';
type IntBuffers = 'labels' | 'el';

/**
 * Where an engine runs when it has no memory of its own: a training session's kernel
 * memory, its scratch after the session's layout (from `base`), the session's kernels on
 * that memory, and the parameters read in place from the session's views (never copied,
 * so each forward pass sees them as they are at the time).
 */
export interface EngineHome {
  memory: WasmMemory;
  kernels: Kernels;
  /** First byte of the engine's scratch, past everything else the memory holds. */
  base: number;
  /** Most rows of one chunk (≤ {@link chunkRows}; chunks still start chunkRows(config) rows apart). */
  rows: number;
}

/** The engine's scratch regions for chunks of `C` rows. */
function reserveScratch(a: Arena, config: MixtureConfig, rule: RoutingRule, C: number) {
  const { inputs: D, outputs: K, experts: E } = config;
  const N = rule.maxEntries(C, E, 'predict');
  return {
    x: a.reserve(C * D),
    u: a.reserve(C * E),
    logG: a.reserve(C * E),
    g: a.reserve(C * E),
    gHidden: a.reserve(C * hiddenWidthSum(gateShape(config))),
    eHidden: a.reserve(C * hiddenWidthSum(expertShape(config))),
    delta: a.reserve(0),
    out: a.reserve(N * K),
    prob: a.reserve(C * K),
    mix: a.reserve(C * K),
    score: a.reserve(N),
    lse: a.reserve(N),
    t: a.reserve(C * K),
    w: a.reserve(N),
    dlw: a.reserve(N),
    rowScratch: a.reserve(C),
    ex: a.reserve(C * D),
    et: a.reserve(C * K),
    all: a.reserve(C * K),
    logW: a.reserve(N),
    gW: a.reserve(N),
    labels: a.reserve(C, 'i32'),
    el: a.reserve(C, 'i32'),
    expertStart: a.reserve(E + 1, 'i32'),
    expertLoad: a.reserve(E, 'i32'),
    entryRow: a.reserve(N, 'i32'),
    entryExpert: a.reserve(N, 'i32'),
    rowStart: a.reserve(C + 1, 'i32'),
    rowEntries: a.reserve(N, 'i32'),
  };
}

/** A model's forward pass on the calling thread, over a kernel memory of its own or a session's. */
export class InferenceEngine {
  private readonly memory: WasmMemory;
  private readonly kernels: Kernels;
  private readonly eShape: MlpShape;
  private readonly gShape: MlpShape;
  private readonly gatePass: MlpPass;
  private readonly expertParams: LayerViews[];
  private readonly buf: Record<FloatBuffers, Float32Array>;
  private readonly ibuf: Record<IntBuffers, Int32Array>;
  private readonly plan: RoutingPlan;
  /** The plan's entries and each row's (in the kernel memory: the kernels gather by them). */
  private readonly entries: PlanEntries;
  private readonly scores: GateScores;
  /** Most rows one chunk holds. */
  private readonly chunkRows: number;
  /** Rows between chunk starts: {@link chunkRows} of the configuration and rule. */
  private readonly stride: number;

  /**
   * An engine with a kernel memory of its own, holding a copy of the parameters.
   * @param rule the routing rule (default: the configuration's; tests pass their own)
   * @param home run inside another memory instead (see {@link EngineHome}); `makeKernels` is then not called
   */
  constructor(
    private readonly gemm: Sgemm,
    makeKernels: (memory: WasmMemory) => Kernels,
    private readonly config: MixtureConfig,
    gateParams: Float32Array,
    expertParams: Float32Array,
    routerBias: Float32Array = new Float32Array(0),
    private readonly rule: RoutingRule = routingRule(config.routing),
    home?: EngineHome,
  ) {
    const E = config.experts;
    this.eShape = expertShape(config);
    this.gShape = gateShape(config);
    const P = mlpParamCount(this.eShape);
    const a = new Arena(home?.base);
    // Own memory: the parameters are copied in first; at home they are read where they lie.
    const own = home ? undefined : { gate: a.reserve(gateParams.length), experts: a.reserve(expertParams.length), bias: a.reserve(routerBias.length) };
    this.stride = chunkRows(config, rule);
    const C = home?.rows ?? this.stride;
    const ids = reserveScratch(a, config, rule, C);
    this.chunkRows = C;
    this.memory = home ? home.memory : allocateMemory(a.byteLength, 'inference', 'model');
    const b = this.memory.buffer;
    this.kernels = home ? home.kernels : makeKernels(this.memory);
    let gp = gateParams, ep = expertParams, bias = routerBias;
    if (own) {
      gp = a.f32(b, own.gate);
      ep = a.f32(b, own.experts);
      bias = a.f32(b, own.bias);
      gp.set(gateParams);
      ep.set(expertParams);
      bias.set(routerBias);
    }
    const f = (id: number): Float32Array => a.f32(b, id);
    this.buf = {
      x: f(ids.x), u: f(ids.u), logG: f(ids.logG), g: f(ids.g), gHidden: f(ids.gHidden), eHidden: f(ids.eHidden), out: f(ids.out),
      prob: f(ids.prob), mix: f(ids.mix), score: f(ids.score), lse: f(ids.lse), t: f(ids.t), w: f(ids.w), dlw: f(ids.dlw),
      rowScratch: f(ids.rowScratch), ex: f(ids.ex), et: f(ids.et), all: f(ids.all),
    };
    this.ibuf = { labels: a.i32(b, ids.labels), el: a.i32(b, ids.el) };
    this.entries = {
      expertStart: a.i32(b, ids.expertStart), expertLoad: a.i32(b, ids.expertLoad), entryRow: a.i32(b, ids.entryRow), entryExpert: a.i32(b, ids.entryExpert),
      rowStart: a.i32(b, ids.rowStart), rowEntries: a.i32(b, ids.rowEntries), entryLogWeight: f(ids.logW), entryGateWeight: f(ids.gW),
    };
    this.plan = new RoutingPlan(rule, 'predict', E, C, this.entries);
    this.scores = { rows: 0, experts: E, logits: this.buf.u, logProb: this.buf.logG, prob: this.buf.g, bias };
    const empty = a.f32(b, ids.delta);
    this.gatePass = { shape: this.gShape, params: layerViews(this.gShape, gp), hidden: [], deltaA: empty, deltaB: empty };
    this.expertParams = Array.from({ length: E }, (_, i) => layerViews(this.eShape, ep.subarray(i * P, (i + 1) * P)));
  }

  /** Bytes a memory needs for an engine at home from `base` with chunks of up to `rows` rows (the configuration's routing). */
  static homeEnd(config: MixtureConfig, base: number, rows: number): number {
    const a = new Arena(base);
    reserveScratch(a, config, routingRule(config.routing), rows);
    return a.byteLength;
  }

  private hidden(shape: MlpShape, region: Float32Array, rows: number): Float32Array[] {
    const out: Float32Array[] = [];
    let off = 0;
    for (let l = 1; l + 1 < shape.sizes.length; l++) {
      out.push(region.subarray(rows * off, rows * (off + shape.sizes[l]!)));
      off += shape.sizes[l]!;
    }
    return out;
  }

  /**
   * Forward pass for n rows of standardised inputs `x` (n×D); the loss too where `targets`
   * are given. Each expert computes the rows routed to it; with `allExperts` every expert
   * also computes every row, for the `experts` output only (the mixture, the gate and the
   * loss are the same either way).
   */
  forward(x: Float32Array, n: number, targets?: LossTargets, allExperts = false): MixtureForward {
    const c = this.config, { inputs: D, outputs: K, experts: E } = c;
    const kernels = this.kernels, B = this.buf, o = this.entries;
    const ef = errorFunction(c.loss);
    const categorical = c.loss === 'categorical';
    const S = this.stride;
    if (Math.min(n, S) > this.chunkRows) throw new RangeError(`inference engine: chunks of ${Math.min(n, S)} rows, room for ${this.chunkRows}`);
    const gate = new Float32Array(n * E), routed = new Uint8Array(n * E), mixture = new Float32Array(n * K);
    // Every expert's outputs at once (dense, allExperts), or the routed ones compactly
    // (row, expert, K outputs), spread into E×n×K when `experts` is first read.
    const eager = allExperts || this.rule.maxEntries(n, E, 'predict') >= n * E;
    const experts = eager ? new Float32Array(E * n * K) : new Float32Array(0);
    const M = eager ? 0 : this.rule.maxEntries(n, E, 'predict');
    const cOut = new Float32Array(M * K), cRow = new Int32Array(M), cExpert = new Int32Array(M);
    let m = 0;
    let lossSum = 0;
    for (let start = 0; start < n; start += S) {
      const rows = Math.min(S, n - start);
      B.x.set(x.subarray(start * D, (start + rows) * D));
      this.gatePass.hidden = this.hidden(this.gShape, B.gHidden, rows);
      mlpForward(this.gemm, kernels, this.gatePass, B.x, rows, B.u);
      kernels.logSoftmaxRows(B.u, rows, E, B.logG, B.g);
      this.scores.rows = rows;
      const N = this.plan.route(this.scores);
      for (let e = 0; e < N; e++) {
        const j = (start + o.entryRow[e]!) * E + o.entryExpert[e]!;
        gate[j] = o.entryGateWeight[e]!;
        routed[j] = 1;
      }
      if (targets) {
        B.t.set(targets.t.subarray(start * K, (start + rows) * K));
        this.ibuf.labels.set(targets.labels.subarray(start, start + rows));
      }
      if (allExperts) {
        const hidden = this.hidden(this.eShape, B.eHidden, rows);
        for (let i = 0; i < E; i++) {
          const out = B.all.subarray(0, rows * K);
          mlpForward(this.gemm, kernels, { shape: this.eShape, params: this.expertParams[i]!, hidden, deltaA: B.x, deltaB: B.x }, B.x, rows, out);
          experts.set(out, i * n * K + start * K);
        }
      }
      kernels.fill(B.mix, rows * K, 0);
      // Experts in order, each adding ĝ·o to its rows: every row's sum runs in expert order.
      for (let i = 0; i < E; i++) {
        const a = o.expertStart[i]!, load = o.expertLoad[i]!;
        if (load === 0) continue;
        this.expertBlock(i, a, load, rows, targets !== undefined && !ef.mixesOutputs);
        const out = B.out.subarray(a * K, (a + load) * K);
        if (!eager) {
          cOut.set(out, m * K);
          for (let e = a; e < a + load; e++, m++) {
            cRow[m] = start + o.entryRow[e]!;
            cExpert[m] = i;
          }
        } else if (load === rows) {
          experts.set(out, i * n * K + start * K);
        } else {
          for (let e = a; e < a + load; e++) experts.set(out.subarray((e - a) * K, (e - a + 1) * K), i * n * K + (start + o.entryRow[e]!) * K);
        }
        let y = out;
        if (categorical) {
          y = B.prob.subarray(0, load * K);
          kernels.logSoftmaxRows(out, load, K, B.all, y);
        }
        this.accumulate(y, a, load, rows);
      }
      mixture.set(B.mix.subarray(0, rows * K), start * K);
      if (targets) lossSum += this.chunkLoss(rows) * rows;
    }
    const f = { n, gate, routed, mixture } as MixtureForward;
    if (eager) f.experts = experts;
    else {
      const routedCount = m;
      lazy(f, 'experts', () => {
        const all = new Float32Array(E * n * K); // 0 where not routed
        for (let j = 0; j < routedCount; j++) {
          const to = (cExpert[j]! * n + cRow[j]!) * K, from = j * K;
          for (let q = 0; q < K; q++) all[to + q] = cOut[from + q]!;
        }
        return all;
      });
    }
    if (targets) f.loss = lossSum / n;
    return f;
  }

  /** Expert i on its `load` routed rows (entries a…): outputs, and the loss's per-entry scores. */
  private expertBlock(i: number, a: number, load: number, rows: number, scores: boolean): void {
    const c = this.config, { inputs: D, outputs: K } = c, kernels = this.kernels, B = this.buf, o = this.entries;
    // An expert with every row reads the chunk in place (its entries are the rows in order).
    const whole = load === rows;
    const idx = o.entryRow.subarray(a, a + load);
    const x = whole ? B.x : B.ex;
    if (!whole) kernels.gatherRows(B.x, D, idx, load, B.ex);
    const out = B.out.subarray(a * K, (a + load) * K);
    const hidden = this.hidden(this.eShape, B.eHidden, load);
    mlpForward(this.gemm, kernels, { shape: this.eShape, params: this.expertParams[i]!, hidden, deltaA: x, deltaB: x }, x, load, out);
    if (!scores) return;
    let target = B.t, labels = this.ibuf.labels;
    if (!whole) {
      target = B.et;
      labels = this.ibuf.el;
      kernels.gatherRows(B.t, K, idx, load, target);
      if (c.task === 'classification') kernels.gatherRowsI32(this.ibuf.labels, idx, load, labels);
    }
    const at = (arr: Float32Array): Float32Array => arr.subarray(a, a + load);
    const block: ExpertLossBlock = { rows: load, K, out, target, labels, score: at(B.score), lse: at(B.lse), weight: at(B.w), mix: B.mix, dot: at(B.score), gradOut: B.prob };
    errorFunction(c.loss).expertScores(kernels, block);
  }

  /** mix[row] += ĝ·y for expert entries a … a + load (y: load×K). The same float32 products and sums as the kernel's. */
  private accumulate(y: Float32Array, a: number, load: number, rows: number): void {
    const K = this.config.outputs, B = this.buf, o = this.entries, w = o.entryGateWeight;
    if (load === rows) {
      this.kernels.mixAccumulate(B.mix, y, w.subarray(a), 1, 0, rows, K);
      return;
    }
    const mix = B.mix;
    for (let e = a; e < a + load; e++) {
      const g = w[e]!, m = o.entryRow[e]! * K, off = (e - a) * K;
      for (let j = 0; j < K; j++) mix[m + j] = Math.fround(mix[m + j]! + Math.fround(g * y[off + j]!));
    }
  }

  /** The chunk's mean loss by the error function's own main side, on the plan's entries. */
  private chunkLoss(rows: number): number {
    const c = this.config, B = this.buf, o = this.entries;
    const v: MainLossViews = {
      rows, K: c.outputs, rowStart: o.rowStart, rowEntries: o.rowEntries, logWeight: o.entryLogWeight, gateWeight: o.entryGateWeight, score: B.score,
      dot: B.score, target: B.t, mix: B.mix, rowScratch: B.rowScratch, weight: B.w, dLogWeight: B.dlw, normalized: this.rule.normalized,
    };
    return meanLoss(errorFunction(c.loss), v);
  }
}
