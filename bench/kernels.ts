/**
 * The kernel benchmark: nanoseconds per element (per parameter for the optimisers) of every
 * element-wise kernel of a training step, for the WebAssembly SIMD set, its JavaScript
 * mirror, and the loops of 0.1.0 they replace (`js-old`, see kernels-baseline.ts), on one
 * thread, on random-normal data of a medium step's sizes (8 MLP experts 256→512→256, batch
 * 512, 8 experts in the gate, 256 outputs). Every array lives in one shared WebAssembly
 * memory, as in training.
 *
 * Each (kernel, set) is one tinybench task; inputs a kernel changes in place in a way that
 * would drift (activations, derivatives) are restored before every iteration, outside the
 * timed call.
 */
import { Bench } from 'tinybench';
import { OptionError, Rng, type Sgemm } from '../src/index.js';
import { jsKernels, type Kernels, loadExactProvider, wasmApi, wasmKernels, type WasmMemory } from '../src/internal.js';
import * as old from './kernels-baseline.js';
import { benchHeader, busyLine, checkChoices, machineLine, checkMillis, endLoad, formatJson, loadText, startLoad, type BenchHeader, type LoadAverage } from './harness.js';

/** The sets measured: the kernels' two implementations and the 0.1.0 loops. */
export const KERNEL_BENCH_SETS = ['js-old', 'js', 'wasm'] as const;
/** One of {@link KERNEL_BENCH_SETS}. */
export type KernelBenchSet = (typeof KERNEL_BENCH_SETS)[number];

/** One (kernel, set) measurement. */
export interface KernelBenchRow {
  /** Kernel name, e.g. `activate tanh`, `adam`. */
  kernel: string;
  /** Which implementation. */
  set: KernelBenchSet;
  /** Mean time per element (per parameter for optimisers), ns. */
  nsPerElement: number;
  /** The fastest call's time per element, ns (less sensitive to other load on the machine). */
  minNsPerElement: number;
  /** Elements (parameters) per call. */
  elements: number;
  /** Relative margin of error of the mean call time (tinybench, %, 95%). */
  rmePercent: number;
  /** Timed calls. */
  samples: number;
}

/** What {@link runKernelBenchmark} returns. */
export interface KernelBenchReport extends BenchHeader {
  /** Timed budget per (kernel, set), ms. */
  timeMs: number;
  /** The 1-minute load average at the start and the end. */
  loadAverage: LoadAverage;
  /** Shapes of each kernel's call, e.g. `512×512`. */
  shapes: Record<string, string>;
  /** One row per (kernel, set), in kernel order. */
  rows: KernelBenchRow[];
  /** Kernels whose js-old baseline was not measured, with the reason. */
  skipped: string[];
}

/** Options of {@link runKernelBenchmark}. */
export interface KernelBenchOptions {
  /** Timed budget per (kernel, set) in ms (tinybench `time`); default 300. */
  timeMs?: number;
  /** At least this many timed calls per (kernel, set); default 10. */
  minCalls?: number;
  /** Only these kernels (names as in the report); default all. */
  kernels?: string[];
  /** Only these sets; default all three. */
  sets?: KernelBenchSet[];
  /** A stable name for this machine (default: CPU model and core count, slugged). */
  machine?: string;
  /** Seed of the random data (default 1). */
  seed?: number;
  /** One line per measurement as it finishes. */
  onProgress?: (message: string) => void;
}

/** A medium training step's sizes. */
const B = 512; // batch rows
const H = 512; // hidden width
const K = 256; // outputs
const E = 8; // experts
const EXPERT_PARAMS = 256 * 512 + 512 + 512 * 256 + 256; // 262,912
const ADAM_N = E * EXPERT_PARAMS; // 2,103,296: every expert's parameters as one block

/** One kernel's benchmark: its shape, size and one call per set. */
interface KernelCase {
  name: string;
  shape: string;
  elements: number;
  /** Inputs to restore before every call (the drifting in-place ones), with their pristine copies. */
  restore?: [Float32Array, Float32Array][];
  run: Partial<Record<KernelBenchSet, () => void>>;
}

/** Bump allocator of views in one memory. */
class Arena {
  private next = 0;
  constructor(private readonly memory: WasmMemory) {}
  f32(n: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.take(n), n);
  }
  i32(n: number): Int32Array {
    return new Int32Array(this.memory.buffer, this.take(n), n);
  }
  private take(n: number): number {
    const off = this.next;
    this.next += Math.ceil(n / 16) * 64; // 64-byte aligned, as a layout would place them
    return off;
  }
  static bytesFor(floats: number): number {
    return floats * 4 + 64 * 64;
  }
}

function buildCases(memory: WasmMemory, rng: Rng, gemm: Sgemm | undefined): KernelCase[] {
  const arena = new Arena(memory);
  const W = wasmKernels(memory);
  const J = jsKernels();
  const normal = (n: number, scale = 1): Float32Array => {
    const v = arena.f32(n);
    for (let i = 0; i < n; i++) v[i] = rng.normal() * scale;
    return v;
  };
  const copyOf = (v: Float32Array): Float32Array => {
    const c = arena.f32(v.length);
    c.set(v);
    return c;
  };
  const sets = (f: (k: Kernels) => void, oldFn?: () => void): KernelCase['run'] => ({ wasm: () => f(W), js: () => f(J), ...(oldFn ? { 'js-old': oldFn } : {}) });
  const cases: KernelCase[] = [];
  const hidden = B * H;

  // Forward: bias rows and activations on the hidden layer, 512×512.
  {
    const z = arena.f32(hidden), bias = normal(H);
    cases.push({ name: 'biasRows', shape: `${B}×${H}`, elements: hidden, run: sets((k) => k.biasRows(z, bias, B, H), () => old.fillBiasRows(z, bias, B, H)) });
  }
  for (const act of ['tanh', 'relu', 'sigmoid'] as const) {
    const a = normal(hidden, 2), pristine = copyOf(a);
    cases.push({
      name: `activate ${act}`,
      shape: `${B}×${H}`,
      elements: hidden,
      restore: [[a, pristine]],
      run: sets((k) => k.activate(act, a, hidden), () => old.activate(a, hidden, act)),
    });
  }
  for (const act of ['tanh', 'relu', 'sigmoid'] as const) {
    const delta = normal(hidden), pristine = copyOf(delta);
    const a = normal(hidden);
    if (act === 'tanh') for (let i = 0; i < hidden; i++) a[i] = Math.tanh(a[i]!);
    if (act === 'sigmoid') for (let i = 0; i < hidden; i++) a[i] = 1 / (1 + Math.exp(-a[i]!));
    cases.push({
      name: `backward ${act}`,
      shape: `${B}×${H}`,
      elements: hidden,
      restore: [[delta, pristine]],
      run: sets((k) => k.activateBackward(act, delta, a, hidden), () => old.activateBackward(delta, a, hidden, act)),
    });
  }
  // Bias gradient: column sums of δ, 512×512 (0.1.0: a ones-row sgemm).
  {
    const m = normal(hidden), out = arena.f32(H), ones = arena.f32(B).fill(1);
    cases.push({
      name: 'colSums',
      shape: `${B}×${H}`,
      elements: hidden,
      run: sets((k) => k.colSums(m, B, H, out), gemm ? () => gemm(false, false, 1, H, B, 1, ones, m, 0, out) : undefined),
    });
  }
  // Optimisers over every expert's parameters as one block (planar state; 0.1.0 interleaved Adam's).
  {
    const p = normal(ADAM_N, 0.05), g = normal(ADAM_N, 0.01), m = normal(ADAM_N, 0.001), v = arena.f32(ADAM_N);
    for (let i = 0; i < ADAM_N; i++) v[i] = 1e-6 * Math.abs(rng.normal());
    const interleaved = arena.f32(2 * ADAM_N);
    for (let i = 0; i < ADAM_N; i++) (interleaved[2 * i] = m[i]!), (interleaved[2 * i + 1] = v[i]!);
    const cfg = { momentum: 0.9, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 1e-4 };
    const t = 10, lr = 1e-3;
    const step = lr / (1 - 0.9 ** t), invC2 = 1 / (1 - 0.999 ** t);
    const shape = `${E}×${EXPERT_PARAMS.toLocaleString('en-US')}`;
    cases.push({ name: 'sgd', shape, elements: ADAM_N, run: sets((k) => k.sgd(p, g, ADAM_N, lr, 1e-4), () => old.optimizerStep('sgd', cfg, p, g, m, ADAM_N, lr, t)) });
    cases.push({ name: 'momentum', shape, elements: ADAM_N, run: sets((k) => k.momentum(p, g, m, ADAM_N, lr, 0.9, 1e-4), () => old.optimizerStep('momentum', cfg, p, g, m, ADAM_N, lr, t)) });
    cases.push({
      name: 'adam',
      shape,
      elements: ADAM_N,
      run: sets((k) => k.adam(p, g, m, v, ADAM_N, step, invC2, 0.9, 0.999, 1 - 0.9, 1 - 0.999, 1e-8, 1e-4), () => old.optimizerStep('adam', cfg, p, g, interleaved, ADAM_N, lr, t)),
    });
    const dst = arena.f32(EXPERT_PARAMS);
    cases.push({ name: 'addInto', shape: EXPERT_PARAMS.toLocaleString('en-US'), elements: EXPERT_PARAMS, run: sets((k) => k.addInto(dst, g, EXPERT_PARAMS)) });
    cases.push({ name: 'fill', shape: EXPERT_PARAMS.toLocaleString('en-US'), elements: EXPERT_PARAMS, run: sets((k) => k.fill(dst, EXPERT_PARAMS, 0)) });
    cases.push({ name: 'copy', shape: EXPERT_PARAMS.toLocaleString('en-US'), elements: EXPERT_PARAMS, run: sets((k) => k.copy(dst, g, EXPERT_PARAMS)) });
  }
  // The gate: log-softmax of 512×8 logits.
  {
    const u = normal(B * E, 2), logG = arena.f32(B * E), g = arena.f32(B * E);
    cases.push({ name: 'logSoftmaxRows', shape: `${B}×${E}`, elements: B * E, run: sets((k) => k.logSoftmaxRows(u, B, E, logG, g), () => old.gateSoftmax(u, B, E, logG, g)) });
  }
  // Loss terms of one expert, 512×256.
  {
    const n = B * K;
    const o = normal(n), d = normal(n), ybar = normal(n), grad = arena.f32(n), scores = arena.f32(B * E), w = normal(B * E, 0.01);
    const labels = arena.i32(B);
    for (let r = 0; r < B; r++) labels[r] = rng.int(K);
    const lse = arena.f32(B), lse64 = new Float64Array(B);
    const i = 3;
    const shape = `${B}×${K}`;
    cases.push({ name: 'sqErrRows', shape, elements: n, run: sets((k) => k.sqErrRows(o, d, B, K, scores, E, i), () => old.expertScores('gaussian', o, d, labels, B, K, scores, E, i)) });
    cases.push({
      name: 'logSoftmaxPickRows',
      shape,
      elements: n,
      run: sets((k) => k.logSoftmaxPickRows(o, labels, B, K, scores, E, i, lse), () => old.expertScores('categorical', o, d, labels, B, K, scores, E, i, lse64)),
    });
    cases.push({
      name: 'weightedDiffRows',
      shape,
      elements: n,
      run: sets((k) => k.weightedDiffRows(o, d, w, E, i, B, K, grad), () => old.expertOutputGrad('gaussian', o, d, labels, ybar, w, B, K, E, i, grad)),
    });
    J.logSoftmaxPickRows(o, labels, B, K, scores, E, i, lse);
    lse64.set(lse);
    cases.push({
      name: 'softmaxMinusOnehotRows',
      shape,
      elements: n,
      run: sets((k) => k.softmaxMinusOnehotRows(o, lse, labels, w, E, i, B, K, grad), () => old.expertOutputGrad('categorical', o, d, labels, ybar, w, B, K, E, i, grad, lse64)),
    });
    cases.push({ name: 'dotDiffRows', shape, elements: n, run: sets((k) => k.dotDiffRows(d, ybar, o, B, K, scores, E, i), () => old.cooperativeDots(o, d, ybar, B, K, scores, E, i)) });
    // 0.1.0 mixed all experts at once; one expert's share of mixOutputs (E = 1) is the comparable unit.
    const g1 = normal(B, 0.3);
    cases.push({ name: 'mixAccumulate', shape, elements: n, run: sets((k) => k.mixAccumulate(ybar, o, w, E, i, B, K), () => old.mixOutputs(g1, o, 0, B, 1, K, ybar)) });
    const idx = arena.i32(B);
    for (let r = 0; r < B; r++) idx[r] = rng.int(B);
    const x = normal(n), xb = arena.f32(n);
    cases.push({ name: 'gatherRows', shape, elements: n, run: sets((k) => k.gatherRows(x, K, idx, B, xb)) });
  }
  return cases;
}

/** Floats the benchmark's arrays take (the memory is sized from it). */
function floatsNeeded(): number {
  const hidden = B * H;
  return 16 * hidden + 7 * ADAM_N + 4 * EXPERT_PARAMS + 16 * B * K + 8 * B * E + 8 * B;
}

/**
 * Times every kernel with the wasm set, the js set and the 0.1.0 loop it replaces, one
 * thread, one task per (kernel, set).
 */
export async function runKernelBenchmark(opts: KernelBenchOptions = {}): Promise<KernelBenchReport> {
  const timeMs = checkMillis(opts.timeMs ?? 300, 'timeMs');
  const sets = checkChoices(opts.sets ?? [...KERNEL_BENCH_SETS], KERNEL_BENCH_SETS, 'sets', 'set');
  const progress = opts.onProgress ?? (() => {});
  const report: KernelBenchReport = {
    ...benchHeader(opts.machine),
    timeMs,
    loadAverage: startLoad(),
    shapes: {},
    rows: [],
    skipped: [],
  };
  let gemm: Sgemm | undefined;
  if (sets.includes('js-old')) {
    try {
      gemm = (await loadExactProvider('blas')).sgemm;
    } catch {
      gemm = undefined;
    }
  }
  const pages = Math.ceil(Arena.bytesFor(floatsNeeded()) / 65536);
  const memory = new wasmApi.Memory({ initial: pages, maximum: pages, shared: true });
  const all = buildCases(memory, new Rng(opts.seed ?? 1), gemm);
  const names = new Set(all.map((c) => c.name));
  for (const k of opts.kernels ?? []) if (!names.has(k)) throw new OptionError('kernels', `unknown kernel ${JSON.stringify(k)} (expected one of ${[...names].join(', ')})`);
  const cases = opts.kernels ? all.filter((c) => opts.kernels!.includes(c.name)) : all;
  if (sets.includes('js-old') && !gemm && cases.some((c) => c.name === 'colSums')) {
    report.skipped.push('colSums js-old: OpenBLAS did not load, so the ones-row sgemm of 0.1.0 was not timed');
  }

  for (const c of cases) {
    report.shapes[c.name] = c.shape;
    const bench = new Bench({ name: c.name, time: timeMs, iterations: opts.minCalls ?? 10, warmup: true, warmupTime: Math.min(100, timeMs), warmupIterations: 3, throws: true });
    for (const set of sets) {
      const fn = c.run[set];
      if (!fn) continue;
      const restore = c.restore;
      bench.add(set, fn, restore ? { beforeEach: () => restore.forEach(([v, p]) => v.set(p)) } : {});
    }
    bench.runSync();
    for (const t of bench.tasks) {
      const r = t.result;
      if (r.state !== 'completed') throw new Error(`kernel benchmark ${c.name} (${t.name}) did not complete: ${r.state}`);
      const row: KernelBenchRow = {
        kernel: c.name,
        set: t.name as KernelBenchSet,
        nsPerElement: (r.latency.mean * 1e6) / c.elements,
        minNsPerElement: (r.latency.min * 1e6) / c.elements,
        elements: c.elements,
        rmePercent: r.latency.rme,
        samples: r.latency.samplesCount,
      };
      report.rows.push(row);
      progress(`${c.name} ${row.set}: ${row.nsPerElement.toPrecision(3)} ns/element (±${row.rmePercent.toFixed(1)}%, ${row.samples} calls)`);
    }
  }
  endLoad(report.loadAverage, progress);
  return report;
}

/** The kernel report as one JSON line (or indented, for files). */
export function formatKernelJson(report: KernelBenchReport, pretty = false): string {
  return formatJson(report, pretty);
}

function ns(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  return v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
}

/** The kernel report as markdown: header, one line per kernel with every set and the speed-ups. */
export function formatKernelMarkdown(report: KernelBenchReport): string {
  const out: string[] = [];
  out.push(`# Kernel benchmark: ${report.machine}`, '');
  out.push(`- Machine: ${machineLine(report)}, Node ${report.node}, one thread`);
  out.push(`- Date: ${report.date}; ${loadText(report.loadAverage, report.cores)}`);
  if (report.loadAverage.busy) out.push(`- **Warning:** ${busyLine(report.loadAverage, report.cores)}.`);
  if (report.command) out.push(`- Command: \`${report.command}\``);
  out.push(`- Data: random normal, a medium step's sizes (8 experts 256→512→256, batch 512, 8-expert gate); ${report.timeMs} ms per measurement; every array in one shared WebAssembly memory.`);
  out.push('- Sets: `js-old` = the loops of 0.1.0 (float64 arithmetic; interleaved Adam state; bias gradient by a ones-row sgemm); `js` = the float32 mirror; `wasm` = the SIMD kernels.');
  for (const s of report.skipped) out.push(`- Skipped: ${s}`);
  for (const n of report.notes ?? []) out.push(`- Note: ${n}`);
  out.push('');
  out.push('| kernel | shape | js-old ns/elt | js ns/elt | wasm ns/elt | wasm vs js-old |');
  out.push('|---|---|---:|---:|---:|---:|');
  const kernels = [...new Set(report.rows.map((r) => r.kernel))];
  for (const k of kernels) {
    const by = (s: KernelBenchSet): KernelBenchRow | undefined => report.rows.find((r) => r.kernel === k && r.set === s);
    const cell = (r: KernelBenchRow | undefined): string => (r ? `${ns(r.nsPerElement)} (${ns(r.minNsPerElement)})` : '–');
    const o = by('js-old'), j = by('js'), w = by('wasm');
    const speedup = o && w ? `${(o.nsPerElement / w.nsPerElement).toFixed(1)}×` : '–';
    out.push(`| ${k} | ${report.shapes[k] ?? ''} | ${cell(o)} | ${cell(j)} | ${cell(w)} | ${speedup} |`);
  }
  out.push('');
  out.push(
    'ns/elt: mean time of one call ÷ elements (parameters for sgd, momentum and adam), and in parentheses the fastest call’s. Speed-up = js-old ÷ wasm, means.',
  );
  return out.join('\n') + '\n';
}
