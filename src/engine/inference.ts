/**
 * Inference on the calling thread: gate probabilities, each expert's output and the
 * mixture's output for standardised inputs, and the mean loss where targets are given,
 * in chunks of rows so the kernel memory stays bounded. The engine copies the parameters
 * into a kernel memory of its own when it is made; make a new one when they change.
 */
import type { WasmMemory } from '../kernels/wasm-api.js';
import type { Sgemm } from '../compute/provider.js';
import type { Kernels } from '../kernels/types.js';
import { errorFunction, type ExpertLossBlock, type MainLossViews } from '../losses/index.js';
import { Arena } from '../memory/arena.js';
import { allocateMemory } from '../memory/memory.js';
import { expertShape, gateShape, type MixtureConfig } from '../model/config.js';
import { renormalises } from '../model/routing.js';
import { hiddenWidthSum, layerViews, mlpParamCount, type LayerViews, type MlpShape } from '../model/mlp.js';
import { mlpForward, type MlpPass } from '../nn/mlp.js';

/** What a forward pass gives for n rows. */
export interface MixtureForward {
  /** Number of rows. */
  n: number;
  /**
   * The combination weights ĝ, n×E: the gate's softmax under dense routing; under sparse
   * routing the weights of each row's chosen experts and 0 for the others.
   */
  gate: Float32Array;
  /** Expert outputs, E blocks of n×K (expert i at i·n·K); logits for categorical. */
  experts: Float32Array;
  /**
   * The mixture's output, n×K: Σ g_i o_i, or for categorical the class probabilities
   * Σ g_i softmax(z_i). Standardised units for regression.
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

/** Rows per chunk. */
export const INFERENCE_CHUNK = 1024;

/** A model's forward pass on the calling thread, over a kernel memory of its own. */
export class InferenceEngine {
  private readonly memory: WasmMemory;
  private readonly k: Kernels;
  private readonly eShape: MlpShape;
  private readonly gShape: MlpShape;
  private readonly gatePass: MlpPass;
  private readonly expertParams: LayerViews[];
  private readonly buf: Record<'x' | 'u' | 'logG' | 'g' | 'eHidden' | 'gHidden' | 'out' | 'prob' | 'logProb' | 'mix' | 'score' | 'lse' | 't' | 'w' | 'dlw' | 'logW' | 'gW' | 'rowScratch', Float32Array>;
  private readonly ibuf: Record<'labels' | 'rowStart' | 'rowEntries', Int32Array>;

  private readonly routerBias: Float32Array;
  private readonly chosen: Uint8Array;

  constructor(
    private readonly gemm: Sgemm,
    makeKernels: (memory: WasmMemory) => Kernels,
    private readonly config: MixtureConfig,
    gateParams: Float32Array,
    expertParams: Float32Array,
    routerBias: Float32Array = new Float32Array(0),
  ) {
    this.routerBias = routerBias.slice();
    this.chosen = new Uint8Array(INFERENCE_CHUNK * config.experts);
    const { inputs: D, outputs: K, experts: E } = config;
    this.eShape = expertShape(config);
    this.gShape = gateShape(config);
    const C = INFERENCE_CHUNK, P = mlpParamCount(this.eShape);
    const a = new Arena();
    const ids = {
      gateParams: a.reserve(gateParams.length),
      expertParams: a.reserve(expertParams.length),
      x: a.reserve(C * D),
      u: a.reserve(C * E),
      logG: a.reserve(C * E),
      g: a.reserve(C * E),
      gHidden: a.reserve(C * hiddenWidthSum(this.gShape)),
      eHidden: a.reserve(C * hiddenWidthSum(this.eShape)),
      delta: a.reserve(0),
      out: a.reserve(E * C * K),
      prob: a.reserve(C * K),
      logProb: a.reserve(C * K),
      mix: a.reserve(C * K),
      score: a.reserve(E * C),
      lse: a.reserve(E * C),
      t: a.reserve(C * K),
      w: a.reserve(E * C),
      dlw: a.reserve(E * C),
      logW: a.reserve(E * C),
      gW: a.reserve(E * C),
      rowScratch: a.reserve(C),
      labels: a.reserve(C, 'i32'),
      rowStart: a.reserve(C + 1, 'i32'),
      rowEntries: a.reserve(E * C, 'i32'),
    };
    this.memory = allocateMemory(a.byteLength, 'inference', 'model');
    const b = this.memory.buffer;
    this.k = makeKernels(this.memory);
    const gp = a.f32(b, ids.gateParams), ep = a.f32(b, ids.expertParams);
    gp.set(gateParams);
    ep.set(expertParams);
    this.buf = {
      x: a.f32(b, ids.x), u: a.f32(b, ids.u), logG: a.f32(b, ids.logG), g: a.f32(b, ids.g),
      gHidden: a.f32(b, ids.gHidden), eHidden: a.f32(b, ids.eHidden), out: a.f32(b, ids.out),
      prob: a.f32(b, ids.prob), logProb: a.f32(b, ids.logProb), mix: a.f32(b, ids.mix), score: a.f32(b, ids.score),
      lse: a.f32(b, ids.lse), t: a.f32(b, ids.t), w: a.f32(b, ids.w), dlw: a.f32(b, ids.dlw),
      logW: a.f32(b, ids.logW), gW: a.f32(b, ids.gW), rowScratch: a.f32(b, ids.rowScratch),
    };
    this.ibuf = { labels: a.i32(b, ids.labels), rowStart: a.i32(b, ids.rowStart), rowEntries: a.i32(b, ids.rowEntries) };
    const empty = a.f32(b, ids.delta);
    this.gatePass = { shape: this.gShape, params: layerViews(this.gShape, gp), hidden: [], deltaA: empty, deltaB: empty };
    this.expertParams = Array.from({ length: E }, (_, i) => layerViews(this.eShape, ep.subarray(i * P, (i + 1) * P)));
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

  /** Forward pass for n rows of standardised inputs `x` (n×D); the loss too where `targets` are given. */
  forward(x: Float32Array, n: number, targets?: LossTargets): MixtureForward {
    const c = this.config, { inputs: D, outputs: K, experts: E } = c;
    const k = this.k, B = this.buf;
    const ef = errorFunction(c.loss);
    const gate = new Float32Array(n * E), experts = new Float32Array(E * n * K), mixture = new Float32Array(n * K);
    let lossSum = 0;
    for (let start = 0; start < n; start += INFERENCE_CHUNK) {
      const rows = Math.min(INFERENCE_CHUNK, n - start);
      B.x.set(x.subarray(start * D, (start + rows) * D));
      this.gatePass.hidden = this.hidden(this.gShape, B.gHidden, rows);
      mlpForward(this.gemm, k, this.gatePass, B.x, rows, B.u);
      k.logSoftmaxRows(B.u, rows, E, B.logG, B.g);
      this.route(rows);
      gate.set(B.g.subarray(0, rows * E), start * E);
      k.fill(B.mix, rows * K, 0);
      const eHidden = this.hidden(this.eShape, B.eHidden, rows);
      if (targets) {
        B.t.set(targets.t.subarray(start * K, (start + rows) * K));
        this.ibuf.labels.set(targets.labels.subarray(start, start + rows));
      }
      for (let i = 0; i < E; i++) {
        const out = B.out.subarray(i * rows * K, (i + 1) * rows * K);
        mlpForward(this.gemm, k, { shape: this.eShape, params: this.expertParams[i]!, hidden: eHidden, deltaA: B.x, deltaB: B.x }, B.x, rows, out);
        experts.set(out, i * n * K + start * K);
        if (c.loss === 'categorical') {
          k.logSoftmaxRows(out, rows, K, B.logProb, B.prob);
          k.mixAccumulate(B.mix, B.prob, B.g, E, i, rows, K);
        } else {
          k.mixAccumulate(B.mix, out, B.g, E, i, rows, K);
        }
        if (targets && !ef.mixesOutputs) ef.expertScores(k, this.lossBlock(i, rows));
      }
      mixture.set(B.mix.subarray(0, rows * K), start * K);
      if (targets) lossSum += this.chunkLoss(rows) * rows;
    }
    const f: MixtureForward = { n, gate, experts, mixture };
    if (targets) f.loss = lossSum / n;
    return f;
  }

  /**
   * The routing at prediction, per row (no batch to choose from, no noise): in B.g and
   * B.logG the softmax becomes the combination weights ĝ and log ĝ, and `chosen` marks
   * each row's experts. topk: the K largest of u + b, ĝ = softmax of u over them; switch:
   * the largest of u + b, ĝ = its p; expert-choice:C: the ⌈C⌉ largest p (each row to its
   * ⌈C⌉ best experts, so a prediction does not depend on the other rows), ĝ = p.
   */
  private route(rows: number): void {
    const r = this.config.routing, E = this.config.experts, B = this.buf, chosen = this.chosen;
    if (r.kind === 'dense') {
      chosen.fill(1, 0, rows * E);
      return;
    }
    chosen.fill(0, 0, rows * E);
    const K = r.kind === 'expert-choice' ? Math.min(E, Math.ceil(r.k)) : r.k;
    const bias = this.routerBias;
    for (let q = 0; q < rows; q++) {
      for (let j = 0; j < K; j++) {
        let best = -1, bestScore = -Infinity;
        for (let i = 0; i < E; i++) {
          if (chosen[q * E + i]) continue;
          const score = r.kind === 'expert-choice' ? B.g[q * E + i]! : B.u[q * E + i]! + (bias.length > 0 ? bias[i]! : 0);
          if (best < 0 || score > bestScore) {
            best = i;
            bestScore = score;
          }
        }
        chosen[q * E + best] = 1;
      }
      let lse = 0;
      const renorm = renormalises(r);
      if (renorm) {
        let m = -Infinity, sum = 0;
        for (let i = 0; i < E; i++) if (chosen[q * E + i]) m = Math.max(m, B.u[q * E + i]!);
        for (let i = 0; i < E; i++) if (chosen[q * E + i]) sum += Math.exp(B.u[q * E + i]! - m);
        lse = m + Math.log(sum);
      }
      for (let i = 0; i < E; i++) {
        const j = q * E + i;
        if (!chosen[j]) {
          B.g[j] = 0;
          B.logG[j] = -Infinity;
        } else if (renorm) {
          B.logG[j] = B.u[j]! - lse;
          B.g[j] = Math.exp(B.logG[j]!);
        }
      }
    }
  }

  private lossBlock(i: number, rows: number): ExpertLossBlock {
    const K = this.config.outputs, B = this.buf;
    const at = (a: Float32Array, w: number): Float32Array => a.subarray(i * rows * w, (i + 1) * rows * w);
    return {
      rows, K, out: at(B.out, K), target: B.t, labels: this.ibuf.labels, score: at(B.score, 1), lse: at(B.lse, 1),
      weight: at(B.w, 1), mix: B.mix, dot: at(B.score, 1), gradOut: B.prob,
    };
  }

  /** The chunk's mean loss by the error function's own main side, on each row's chosen entries i·rows + r. */
  private chunkLoss(rows: number): number {
    const c = this.config, E = c.experts, B = this.buf, I = this.ibuf;
    let n = 0;
    for (let r = 0; r < rows; r++) {
      I.rowStart[r] = n;
      for (let i = 0; i < E; i++) {
        if (!this.chosen[r * E + i]) continue;
        I.rowEntries[n++] = i * rows + r;
        B.logW[i * rows + r] = B.logG[r * E + i]!;
        B.gW[i * rows + r] = B.g[r * E + i]!;
      }
    }
    I.rowStart[rows] = n;
    const v: MainLossViews = {
      rows, K: c.outputs, rowStart: I.rowStart, rowEntries: I.rowEntries, logWeight: B.logW, gateWeight: B.gW, score: B.score,
      dot: B.score, target: B.t, mix: B.mix, rowScratch: B.rowScratch, weight: B.w, dLogWeight: B.dlw, normalized: c.routing.kind === 'dense' || renormalises(c.routing),
    };
    return errorFunction(c.loss).combine(v);
  }
}
