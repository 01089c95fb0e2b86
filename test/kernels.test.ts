/**
 * The element-wise kernels (src/kernels): the WebAssembly SIMD set and its JavaScript mirror
 * are bit-identical on every kernel, at sizes that are and are not multiples of 4 and at
 * offsets that are not 16-byte aligned; each kernel is within a stated bound of a float64
 * reference written from its formula; other writers of the same memory (JavaScript views,
 * OpenBLAS, another thread) and the kernels see each other's bytes; the binary has no data
 * segment, no memory export and no relaxed SIMD.
 *
 * Bounds are stated in units of u = 2⁻²⁴ (half an ulp of 1) times a per-element scale S (the
 * sum of the magnitudes the rounding errors are proportional to), or in ulps of the result;
 * each comes with the worst value measured when the bound was set.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import wabtInit from 'wabt';
import { loadExactProvider } from '../src/compute/load.js';
import type { ComputeProvider } from '../src/compute/provider.js';
import { MoeError, OptionError } from '../src/errors.js';
import { createKernels, kernelSetFromEnv } from '../src/kernels/index.js';
import { expF32, jsKernels, logF32, tanhF32 } from '../src/kernels/js.js';
import { KERNEL_NAMES, KERNEL_TABLE, type CountName, type KernelName, type ViewArg } from '../src/kernels/signatures.js';
import type { Kernels } from '../src/kernels/types.js';
import { wasmApi, type WasmMemory } from '../src/kernels/wasm-api.js';
import { compileKernelModule, kernelWasmFile, wasmKernels, wasmScalarMath } from '../src/kernels/wasm.js';
import type { Activation } from '../src/model/mlp.js';
import { Rng } from '../src/rng.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const U = 2 ** -24;
const PAGES = 1024; // 64 MiB
const memory = new wasmApi.Memory({ initial: PAGES, maximum: 65536, shared: true });
const W = wasmKernels(memory, undefined, { check: true });
const J = jsKernels(memory, { check: true });
const SETS: [string, Kernels][] = [
  ['wasm', W],
  ['js', J],
];
const ACTS: Activation[] = ['tanh', 'relu', 'sigmoid'];
const SIZES = [1, 3, 4, 5, 17, 1000, 4099];

/** Bump allocation of views in `memory`, at element offsets ≡ `misalign` (mod 4). */
class Arena {
  private next = 0;
  private ranges: [number, number][] = [];
  constructor(private readonly mem: WasmMemory = memory) {}
  reset(): void {
    this.next = 0;
    this.ranges = [];
  }
  private place(n: number, misalign: number): number {
    const off = Math.ceil(this.next / 4) * 4 + misalign;
    this.next = off + n + 4;
    if (4 * this.next > this.mem.buffer.byteLength) throw new Error('test arena full');
    this.ranges.push([off, off + n]);
    return off;
  }
  /** Fills every element between the views placed so far with a guard pattern. */
  guardGaps(): void {
    const all = new Int32Array(this.mem.buffer, 0, this.next);
    let from = 0;
    for (const [a, b] of this.ranges) {
      all.fill(GUARD, from, a);
      from = Math.max(from, b);
    }
    all.fill(GUARD, from, this.next);
  }
  /** Expects the guard pattern still in every gap (no kernel wrote outside its views). */
  checkGaps(what: string): void {
    const all = new Int32Array(this.mem.buffer, 0, this.next);
    let from = 0;
    const check = (a: number, b: number): void => {
      for (let i = a; i < b; i++) if (all[i] !== GUARD) fail(`${what}: element ${i} outside every view was overwritten`);
    };
    for (const [a, b] of this.ranges) {
      check(from, a);
      from = Math.max(from, b);
    }
    check(from, this.next);
  }
  f32(n: number, misalign = 0): Float32Array {
    return new Float32Array(this.mem.buffer, 4 * this.place(n, misalign), n);
  }
  i32(n: number, misalign = 0): Int32Array {
    return new Int32Array(this.mem.buffer, 4 * this.place(n, misalign), n);
  }
}

const GUARD = 0x7fa5a5a5; // a NaN no kernel produces
const arena = new Arena();

/** Edge values mixed into the inputs of the parity tests. */
const EDGES = [
  0, -0, 1, -1, 0.5, 1e30, -1e30, 3.4e38, -3.4e38, Infinity, -Infinity, NaN, 1e-40, -1e-40, 1.4e-45, -1.4e-45, 7.905311107635498, -7.905311107635498,
  20, -20, 88.7, -88.7, 89, -89, 103.9, -104, -150, 1e-8,
];

/** Fails the test with `message` (vitest's expect has no fail()). */
function fail(message: string): never {
  throw new Error(message);
}

/** Prints measured worst errors when KERNELS_TEST_REPORT=1 (to restate the bounds' comments). */
function report(what: string, values: Record<string, number>): void {
  if (process.env.KERNELS_TEST_REPORT === '1') console.log(what, JSON.stringify(values));
}

const F = new Float32Array(1);
const I = new Int32Array(F.buffer);
const bitsOf = (x: number): number => ((F[0] = x), I[0]!);

/** Same float32 bits, or both NaN (WebAssembly leaves NaN payloads unspecified). */
function sameBits(a: Float32Array | Int32Array, b: Float32Array | Int32Array, what: string): void {
  expect(a.length, what).toBe(b.length);
  const ai = new Int32Array(a.buffer, a.byteOffset, a.length), bi = new Int32Array(b.buffer, b.byteOffset, b.length);
  const isF = a instanceof Float32Array;
  for (let i = 0; i < a.length; i++) {
    if (ai[i] === bi[i]) continue;
    if (isF && Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    fail(`${what}: element ${i} differs: ${a[i]} (0x${(ai[i]! >>> 0).toString(16)}) vs ${b[i]} (0x${(bi[i]! >>> 0).toString(16)})`);
  }
}

type Init = (i: number, rng: Rng) => number;
const normal: Init = (_i, rng) => rng.normal() * 3;
const withEdges = (scale = 3): Init => (i, rng) => (i < EDGES.length && i % 2 === 0 ? EDGES[i]! : i % 7 === 3 ? EDGES[(i * 5) % EDGES.length]! : rng.normal() * scale);
const positive: Init = (_i, rng) => Math.abs(rng.normal());

interface ArraySpec<N extends string = string> {
  name: N;
  len: number;
  init: Init;
  int?: boolean;
}

/** The views of one parity run by name: `f` types them as float32, `i` as int32 (the same objects). */
interface Views<N extends string> {
  f: Record<N, Float32Array>;
  i: Record<N, Int32Array>;
}

/**
 * Runs `run` once with the wasm set and once with the js set on separate copies of the same
 * inputs (each at element offsets ≡ misalign mod 4) and expects every array, inputs included
 * (most kernels work in place), to end bit-identical.
 */
function parity<N extends string>(what: string, specs: readonly ArraySpec<N>[], misalign: number, run: (k: Kernels, v: Views<N>) => void, seed = 1): void {
  arena.reset();
  const rng = new Rng(seed);
  const templates = specs.map((s) => {
    const t = s.int ? new Int32Array(s.len) : new Float32Array(s.len);
    for (let i = 0; i < s.len; i++) t[i] = s.init(i, rng);
    return t;
  });
  const views = SETS.map((_set, si) => {
    const byName = Object.fromEntries(specs.map((s, j) => [s.name, s.int ? arena.i32(s.len, (misalign + j + si) % 4) : arena.f32(s.len, (misalign + j + si) % 4)]));
    return byName as Record<N, Float32Array | Int32Array>;
  });
  arena.guardGaps();
  SETS.forEach(([, k], si) => {
    const v = views[si]!;
    specs.forEach((s, j) => v[s.name].set(templates[j]!));
    run(k, { f: v, i: v } as Views<N>);
  });
  arena.checkGaps(what);
  for (const s of specs) sameBits(views[0]![s.name], views[1]![s.name], `${what}: ${s.name}`);
}

/**
 * One parity run of table entry `name` with the given counts, activation and sample index
 * of its scalars: inputs are drawn from each argument's kind (edge values mixed into float32
 * views, in-range indices and, where the kernel handles them, −1 and the limit), and with
 * `alias` = [a, b] view b is view a (an in-place call).
 */
function tableParity(name: KernelName, counts: Record<CountName, number>, act: Activation | undefined, sample: number, alias: readonly [string, string] | undefined, mis: number, seed: number): void {
  const spec = KERNEL_TABLE[name];
  const views = spec.args.filter((a): a is ViewArg => a.kind === 'f32' || a.kind === 'i32');
  const lengths: Record<string, number> = {};
  for (const a of views) lengths[a.name] = (a.len ?? a.sampleLen!)(counts);
  const specs: ArraySpec[] = views
    .filter((a) => !(alias && a.name === alias[1]))
    .map((a) => {
      const len = lengths[a.name]!;
      if (a.kind === 'i32') {
        const limit = a.index?.limit(counts, lengths);
        const init: Init =
          limit === undefined ? (_i, r) => r.int(1000) - 500 : a.index!.checked ? (_i, r) => (limit > 0 ? r.int(limit) : 0) : (i, r) => (i === 1 ? -1 : i === 2 ? limit : limit > 0 ? r.int(limit) : 0);
        return { name: a.name, len, init, int: true };
      }
      return { name: a.name, len, init: a.nonNegative ? (i: number, r: Rng) => (i === 2 ? 0 : positive(i, r) * 1e-4) : withEdges(act === 'tanh' ? 4 : 5) };
    });
  const what = `${name}${act ? ` ${act}` : ''} ${JSON.stringify(counts)} sample ${sample}${alias ? ` ${alias[1]} = ${alias[0]}` : ''}`;
  parity(
    what,
    specs,
    mis,
    (k, v) => {
      const args = spec.args.map((a) => {
        switch (a.kind) {
          case 'activation':
            return act;
          case 'count':
            return counts[a.name];
          case 'scalar':
            return a.samples[Math.min(sample, a.samples.length - 1)];
          default:
            return a.kind === 'i32' ? v.i[alias && a.name === alias[1] ? alias[0] : a.name] : v.f[alias && a.name === alias[1] ? alias[0] : a.name];
        }
      });
      (k[name] as (...a: unknown[]) => void)(...args);
    },
    seed,
  );
}

describe('wasm and js kernel sets are bit-identical', () => {
  // The parity list is KERNEL_TABLE: every kernel, every activation, every sample of its
  // scalars, each length in SIZES (rows 1, 3 and 5 for row kernels), every in-place group
  // aliased, at element offsets that are and are not 16-byte aligned.
  const ROWS = [1, 3, 5];
  for (const name of KERNEL_NAMES) {
    it(`${name}`, () => {
      const spec = KERNEL_TABLE[name];
      const hasRows = spec.args.some((a) => a.kind === 'count' && a.role === 'rows');
      const acts = spec.args.some((a) => a.kind === 'activation') ? ACTS : [undefined];
      const samples = Math.max(1, ...spec.args.map((a) => (a.kind === 'scalar' ? a.samples.length : 1)));
      const aliases: (readonly [string, string] | undefined)[] = [undefined, ...(spec.inPlace ?? []).flatMap((g) => g.slice(1).map((b) => [g[0]!, b] as const))];
      let runs = 0;
      for (const n of SIZES) {
        for (const rows of hasRows ? ROWS : [0]) {
          const counts = {} as Record<CountName, number>;
          for (const a of spec.args) if (a.kind === 'count') counts[a.name] = a.role === 'rows' ? rows : a.role === 'stride' ? 3 : a.role === 'offset' ? 1 : n;
          for (const act of acts) {
            for (let sample = 0; sample < samples; sample++) {
              for (const alias of aliases) {
                const seed = n * 100 + rows * 10 + sample;
                const mis = (n + rows + sample) % 4;
                tableParity(name, counts, act, sample, alias, mis, seed);
                runs++;
              }
            }
          }
        }
      }
      expect(runs).toBeGreaterThanOrEqual(SIZES.length);
    });
  }

  it('every table entry has a JS mirror of its arity and a wasm export (per activation)', () => {
    const mirror = jsKernels(undefined, { check: false }) as unknown as Record<string, (...a: unknown[]) => void>;
    for (const name of KERNEL_NAMES) expect(mirror[name]!.length, name).toBe(KERNEL_TABLE[name].args.length);
    const exports = new Set(sections(new Uint8Array(readFileSync(kernelWasmFile()))).exports.map((e) => e.name));
    for (const name of KERNEL_NAMES) {
      const spec = KERNEL_TABLE[name];
      const names = spec.args[0]?.kind === 'activation' ? ACTS.map((a) => spec.wasm + a[0]!.toUpperCase() + a.slice(1)) : [spec.wasm];
      for (const e of names) expect(exports.has(e), `${name}: export ${e}`).toBe(true);
    }
  });

  it('the harness notices a write one element past a view (so the gap checks can fail)', () => {
    expect(() =>
      parity('overrun', [{ name: 'a', len: 5, init: normal }], 1, (k, v) => {
        if (k.name === 'wasm') new Float32Array(v.f.a.buffer, v.f.a.byteOffset, 6)[5] = 1;
      }),
    ).toThrow(/overrun: element \d+ outside every view was overwritten/);
  });

  it('rows of −∞ and NaN, and zero-sized calls', () => {
    const specs: ArraySpec<'u' | 'logG' | 'g' | 'lse' | 'labels' | 'out'>[] = [
      { name: 'u', len: 12, init: (i) => (i < 6 ? -Infinity : i < 9 ? NaN : i) },
      { name: 'logG', len: 12, init: () => 7 },
      { name: 'g', len: 12, init: () => 7 },
      { name: 'lse', len: 4, init: () => 7 },
      { name: 'labels', len: 4, init: () => 0, int: true },
      { name: 'out', len: 4, init: () => 7 },
    ];
    parity('logSoftmaxRows special rows', specs, 1, (k, v) => k.logSoftmaxRows(v.f.u, 4, 3, v.f.logG, v.f.g));
    parity('logSoftmaxPickRows special rows', specs, 2, (k, v) => k.logSoftmaxPickRows(v.f.u, v.i.labels, 4, 3, v.f.out, 1, 0, v.f.lse));
    parity('zero rows', specs, 3, (k, v) => {
      k.colSums(v.f.u, 0, 3, v.f.out);
      k.logSoftmaxRows(v.f.u, 0, 3, v.f.logG, v.f.g);
      k.activate('tanh', v.f.u, 0);
      k.adam(v.f.u, v.f.g, v.f.logG, v.f.lse, 0, 1, 1, 0.9, 0.999, 1 - 0.9, 1 - 0.999, 1e-8, 0);
    });
  });

  it('scalar exp and log agree bit for bit on 2M float32 bit patterns', () => {
    const sm = wasmScalarMath(memory);
    const rng = new Rng(7);
    for (let j = 0; j < 2_000_000; j++) {
      I[0] = rng.nextU32() | 0;
      const x = F[0]!;
      const we = sm.expF32(x), je = expF32(x), wl = sm.logF32(x), jl = logF32(x);
      if (!(Object.is(we, je) || (Number.isNaN(we) && Number.isNaN(je)))) fail(`exp(${x}): wasm ${we}, js ${je}`);
      if (!(Object.is(wl, jl) || (Number.isNaN(wl) && Number.isNaN(jl)))) fail(`log(${x}): wasm ${wl}, js ${jl}`);
    }
  });

  it('works on a view at byte offset 0 of the memory', () => {
    const a = new Float32Array(memory.buffer, 0, 9), b = new Float32Array(memory.buffer, 64, 9);
    for (let i = 0; i < 9; i++) a[i] = b[i] = i - 4.5;
    W.activate('tanh', a, 9);
    J.activate('tanh', b, 9);
    sameBits(a, b, 'tanh at offset 0');
    expect(a[8]).toBeCloseTo(Math.tanh(3.5), 6);
  });
});

// ---------------------------------------------------------------------------------------
// Accuracy against float64 references

/** ulp of a float32 result of magnitude |y| (normal range; the subnormal spacing below). */
function ulp32(y: number): number {
  const a = Math.abs(y);
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

/** max over i of |got − ref| / (u·S_i); NaN in the reference requires NaN, and vice versa. */
function worstRatio(got: ArrayLike<number>, ref: ArrayLike<number>, scale: ArrayLike<number>, what: string): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, r = ref[i]!;
    if (Number.isNaN(r) || Number.isNaN(g)) {
      expect(Number.isNaN(g) && Number.isNaN(r), `${what}[${i}]: ${g} vs reference ${r}`).toBe(true);
      continue;
    }
    if (g === r) continue;
    const ratio = Math.abs(g - r) / (U * scale[i]!);
    if (!(ratio <= worst)) worst = ratio;
  }
  return worst;
}

describe('kernels against float64 references', () => {
  const rng = new Rng(11);
  const N = 4099;
  const rand = (n: number, f: () => number): Float64Array => Float64Array.from({ length: n }, f);
  const toView = (src: ArrayLike<number>, mis = 1): Float32Array => {
    const v = arena.f32(src.length, mis);
    v.set(src);
    return v;
  };
  const f32 = (x: ArrayLike<number>): Float64Array => Float64Array.from(Float32Array.from(x as ArrayLike<number>));

  it('tanh: absolute error ≤ 3e-7 against Math.tanh on EVERY float32, exactly odd, ±0 kept, NaN to NaN', async () => {
    // Every one of the 2³² bit patterns goes through the SIMD kernel (the js set is the same
    // function: the parity tests compare them bit for bit). Math.tanh is called where it is
    // needed; elsewhere a bound of tanh stands in for it:
    // - 0 < x < 2⁻¹²: |x − tanh x| < x³/3 < 2⁻³⁶/3, so |y − tanh x| ≤ |y − x| + 2⁻³⁶/3;
    // - 2⁻¹² ≤ x ≤ 9: Math.tanh on every float32 (≈127M values);
    // - x > 9 (+∞ included): the kernel clamps, so y must be the one value y(9), whose error
    //   is largest at one end: max(|y(9) − tanh 9|, |1 − y(9)|);
    // - every NaN pattern gives NaN; every negative pattern (−0 and −NaN included) gives the
    //   exact negation of its positive twin.
    // The bulk loops (patterns, differences, comparisons) run in a small helper module.
    // Measured worst: 1.49e-7 (at x ≈ 1.87).
    const wabt = await wabtInit();
    const wat = `(module (import "env" "memory" (memory 0 65536 shared))
      (func (export "iota") (param $p i32) (param $n i32) (param $start i32) (param $or i32) (local $i i32)
        (block $done (loop $next (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (i32.store (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2))) (i32.or (i32.add (local.get $start) (local.get $i)) (local.get $or)))
          (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next))))
      (func (export "maxAbsDiff") (param $a i32) (param $b i32) (param $n i32) (result f64) (local $i i32) (local $m f64) (local $d f64)
        (block $done (loop $next (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $d (f64.abs (f64.sub (f64.promote_f32 (f32.load (i32.add (local.get $a) (i32.shl (local.get $i) (i32.const 2)))))
                                          (f64.promote_f32 (f32.load (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 2))))))))
          (if (i32.eqz (f64.le (local.get $d) (local.get $m))) (then (local.set $m (local.get $d))))
          (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))
        (local.get $m))
      (func (export "firstNotEqual") (param $a i32) (param $bits i32) (param $n i32) (result i32) (local $i i32)
        (block $done (loop $next (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (if (i32.ne (i32.load (i32.add (local.get $a) (i32.shl (local.get $i) (i32.const 2)))) (local.get $bits)) (then (return (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))
        (i32.const -1))
      (func (export "firstNotOdd") (param $pos i32) (param $neg i32) (param $n i32) (result i32) (local $i i32) (local $x i32) (local $y i32)
        (block $done (loop $next (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $x (i32.load (i32.add (local.get $pos) (i32.shl (local.get $i) (i32.const 2)))))
          (local.set $y (i32.load (i32.add (local.get $neg) (i32.shl (local.get $i) (i32.const 2)))))
          (if (i32.and (i32.ne (local.get $y) (i32.xor (local.get $x) (i32.const 0x80000000)))
                       (i32.eqz (i32.and (f32.ne (f32.reinterpret_i32 (local.get $x)) (f32.reinterpret_i32 (local.get $x)))
                                         (f32.ne (f32.reinterpret_i32 (local.get $y)) (f32.reinterpret_i32 (local.get $y))))))
            (then (return (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))
        (i32.const -1)))`;
    const parsed = wabt.parseWat('tanh-check.wat', wat, { threads: true });
    const helperBytes = parsed.toBinary({}).buffer;
    parsed.destroy();
    const h = new wasmApi.Instance(new wasmApi.Module(helperBytes), { env: { memory } }).exports as {
      iota(p: number, n: number, start: number, or: number): void;
      maxAbsDiff(a: number, b: number, n: number): number;
      firstNotEqual(a: number, bits: number, n: number): number;
      firstNotOdd(pos: number, neg: number, n: number): number;
    };
    arena.reset();
    const CHUNK = 1 << 22;
    const pos = arena.f32(CHUNK, 0), neg = arena.f32(CHUNK, 0), inp = arena.f32(CHUNK, 0);
    const TINY = bitsOf(2 ** -12), NINE = bitsOf(9), INF = 0x7f800000, LAST = 0x7fffffff;
    const SIGN = 0x80000000 | 0;
    let worst = 0, at = 0, clampValue = NaN;
    const y9 = arena.f32(1, 0);
    y9[0] = 9;
    W.activate('tanh', y9, 1);
    clampValue = y9[0]!;
    for (let start = 0; start <= LAST; start += CHUNK) {
      const n = Math.min(CHUNK, LAST - start + 1), end = start + n; // patterns [start, end)
      h.iota(pos.byteOffset, n, start, 0);
      h.iota(neg.byteOffset, n, start, SIGN);
      if (start < TINY) h.iota(inp.byteOffset, n, start, 0);
      W.activate('tanh', pos, n);
      W.activate('tanh', neg, n);
      const odd = h.firstNotOdd(pos.byteOffset, neg.byteOffset, n);
      if (odd >= 0) fail(`tanh(−x) is not −tanh(x) for the pattern 0x${(start + odd).toString(16)}: ${neg[odd]} vs ${pos[odd]}`);
      if (start < TINY) {
        // 0 < x < 2⁻¹² (the pattern 0 gives +0, checked below): all at once.
        const from = Math.max(start, 1) - start, to = Math.min(end, TINY) - start;
        const e = h.maxAbsDiff(pos.byteOffset + 4 * from, inp.byteOffset + 4 * from, to - from) + 2 ** -36 / 3;
        if (e > worst) (worst = e), (at = inp[from]!);
      }
      for (let b = Math.max(start, TINY); b < Math.min(end, NINE + 1); b++) {
        const x = ((I[0] = b), F[0]!);
        const e = Math.abs(pos[b - start]! - Math.tanh(x));
        if (e > worst) (worst = e), (at = x);
      }
      if (end > NINE + 1 && start <= INF) {
        const from = Math.max(start, NINE + 1) - start, to = Math.min(end, INF + 1) - start;
        const bad = h.firstNotEqual(pos.byteOffset + 4 * from, bitsOf(clampValue), to - from);
        if (bad >= 0) fail(`tanh(${pos[from + bad]}) is not the clamped value ${clampValue}`);
      }
      for (let b = Math.max(start, INF + 1); b < end; b++) if (!Number.isNaN(pos[b - start])) fail(`tanh of the NaN pattern 0x${b.toString(16)} is ${pos[b - start]}`);
    }
    const clampError = Math.max(Math.abs(clampValue - Math.tanh(9)), Math.abs(1 - clampValue));
    report('tanh', { worst, at, clampValue, clampError });
    expect(worst, `worst at x = ${at}`).toBeLessThanOrEqual(3e-7);
    expect(clampError).toBeLessThanOrEqual(3e-7);
    // ±0 keep their sign; the scalar export and the js set give the same bits at the worst point.
    const z = arena.f32(4, 1);
    z.set([0, -0, Infinity, -Infinity]);
    W.activate('tanh', z, 4);
    expect([Object.is(z[0], 0), Object.is(z[1], -0), z[2], z[3]]).toEqual([true, true, 1, -1]);
    expect(tanhF32(Math.fround(at))).toBe(wasmScalarMath(memory).tanhF32(at));
  }, 300_000);

  it('exp: ≤ 1 ulp for normal results, ≤ 1 subnormal step below, +0 and +∞ at the ends', () => {
    // Every 509th float32 bit pattern of [−104, 89] (≈4.4M values) against Math.exp.
    // Measured worst: 0.96 ulp (normal results; 0.98 ulp over every 7th pattern of
    // [−87.3, 88.7]), 0.72 of a step of 2⁻¹⁴⁹ in the subnormal range.
    const sm = wasmScalarMath(memory);
    let worstUlp = 0, worstSub = 0;
    const check = (x: number): void => {
      const got = sm.expF32(x), ref = Math.exp(x);
      if (ref >= 2 ** -126) {
        if (ref > 3.4028235677973366e38) {
          if (got !== Infinity && Math.abs(got - ref) / ulp32(ref) > 1) fail(`exp(${x}) = ${got}, reference ${ref}`);
          return;
        }
        const e = Math.abs(got - ref) / ulp32(ref);
        if (e > worstUlp) worstUlp = e;
      } else {
        const e = Math.abs(got - ref) / 2 ** -149;
        if (e > worstSub) worstSub = e;
      }
    };
    for (let b = 0; b <= bitsOf(89); b += 509) check(((I[0] = b), F[0]!));
    for (let b = 0x80000000 | 0; b <= bitsOf(-104); b += 509) check(((I[0] = b), F[0]!));
    report('exp', { worstUlp, worstSub });
    expect(worstUlp).toBeLessThanOrEqual(1);
    expect(worstSub).toBeLessThanOrEqual(1);
    expect(sm.expF32(-Infinity)).toBe(0);
    expect(sm.expF32(-200)).toBe(0);
    expect(sm.expF32(Infinity)).toBe(Infinity);
    expect(sm.expF32(89)).toBe(Infinity);
    expect(sm.expF32(0)).toBe(1);
    expect(Number.isNaN(sm.expF32(NaN))).toBe(true);
  });

  it('log: ≤ 1 ulp on every positive float32 (sampled), special values exact', () => {
    // Every 257th positive finite float32 bit pattern (≈8.3M values, subnormals included)
    // against Math.log. Measured worst: 0.76 ulp (0.82 ulp over every 7th pattern).
    const sm = wasmScalarMath(memory);
    let worst = 0, at = 0;
    for (let b = 1; b < 0x7f800000; b += 257) {
      const x = ((I[0] = b), F[0]!);
      const got = sm.logF32(x), ref = Math.log(x);
      const e = Math.abs(got - ref) / ulp32(ref);
      if (e > worst) (worst = e), (at = x);
    }
    report('log', { worst, at });
    expect(worst, `worst at x = ${at}`).toBeLessThanOrEqual(1);
    expect(sm.logF32(1)).toBe(0);
    expect(sm.logF32(0)).toBe(-Infinity);
    expect(sm.logF32(-0)).toBe(-Infinity);
    expect(sm.logF32(Infinity)).toBe(Infinity);
    expect(Number.isNaN(sm.logF32(-1))).toBe(true);
    expect(Number.isNaN(sm.logF32(NaN))).toBe(true);
  });

  it('sigmoid: relative error ≤ 4u for results ≥ 2⁻¹²⁶ (exp 2u, 1 + e and the division u each), ≤ 2⁻¹²⁶ absolute below', () => {
    // Every 401st float32 bit pattern of [−110, 110] through the SIMD kernel (both sets by
    // parity). Measured worst: 2.28u relative; 2.9e-39 absolute below 2⁻¹²⁶ (flushed to +0).
    arena.reset();
    const CHUNK = 1 << 20;
    const v = arena.f32(CHUNK, 2);
    let worstRel = 0, worstAbs = 0;
    const run = (from: number, to: number): void => {
      for (let start = from; start <= to; start += 401 * CHUNK) {
        let n = 0;
        for (let b = start; b <= to && n < CHUNK; b += 401) v[n++] = ((I[0] = b), F[0]!);
        const x = Float64Array.from(v.subarray(0, n));
        W.activate('sigmoid', v, n);
        for (let i = 0; i < n; i++) {
          const ref = 1 / (1 + Math.exp(-x[i]!));
          if (ref >= 2 ** -126) worstRel = Math.max(worstRel, Math.abs(v[i]! - ref) / (U * ref));
          else worstAbs = Math.max(worstAbs, Math.abs(v[i]! - ref));
        }
      }
    };
    run(0, bitsOf(110));
    run(0x80000000 | 0, bitsOf(-110));
    report('sigmoid', { worstRel, worstAbs });
    expect(worstRel).toBeLessThanOrEqual(4);
    // Below x ≈ −88.7, exp(−x) overflows to +∞ and the result is +0 instead of a subnormal.
    expect(worstAbs).toBeLessThanOrEqual(2 ** -126);
    v.set([NaN, Infinity, -Infinity]);
    W.activate('sigmoid', v, 3);
    expect(Number.isNaN(v[0]!)).toBe(true);
    expect([v[1], v[2]]).toEqual([1, 0]);
  });

  for (const [name, k] of SETS) {
    it(`${name}: relu, its derivative, bias rows, gathers, fill and copy are exact`, () => {
      arena.reset();
      const x = rand(N, () => rng.normal());
      x[5] = NaN; // relu and its derivative send NaN to +0, as 0.1.0 did
      x[6] = -0;
      const a = toView(x, 1), d = toView(rand(N, () => rng.normal()), 2);
      const d0 = Float32Array.from(d);
      k.activateBackward('relu', d, a, N);
      k.activate('relu', a, N);
      for (let i = 0; i < N; i++) {
        const f = Math.fround(x[i]!);
        expect(Object.is(a[i], f > 0 ? f : 0), `relu(${f}) = ${a[i]}`).toBe(true);
        expect(d[i]).toBe(f > 0 ? d0[i] : 0);
      }
      const bias = toView(rand(17, () => rng.normal())), z = arena.f32(5 * 17, 3);
      k.biasRows(z, bias, 5, 17);
      for (let r = 0; r < 5; r++) expect(z.subarray(r * 17, r * 17 + 17)).toEqual(bias);
      const idx = arena.i32(4, 1);
      idx.set([3, 0, 3, 1]);
      const g = arena.f32(4 * 17, 2);
      k.gatherRows(z, 17, idx, 4, g);
      expect(g).toEqual(Float32Array.from({ length: 4 * 17 }, (_, i) => bias[i % 17]!));
      k.fill(g, 10, 2.5);
      expect(Array.from(g.subarray(0, 11))).toEqual([...Array<number>(10).fill(2.5), bias[10]!]);
      k.copy(g, bias, 17);
      expect(g.subarray(0, 17)).toEqual(bias);
    });

    it(`${name}: activation derivatives, sums and optimisers within their rounding bounds`, () => {
      arena.reset();
      const a64 = f32(rand(N, () => Math.tanh(rng.normal()))), d64 = f32(rand(N, () => rng.normal()));
      const worst: Record<string, number> = {};
      // tanh': d·(1 − a²); 3 roundings, S = |d|·(a² + |1 − a²|). Bound 2; measured 1.35.
      {
        const a = toView(a64), d = toView(d64, 2);
        k.activateBackward('tanh', d, a, N);
        worst.tanh = worstRatio(d, d64.map((di, i) => di * (1 - a64[i]! * a64[i]!)), d64.map((di, i) => Math.abs(di) * (a64[i]! ** 2 + Math.abs(1 - a64[i]! ** 2))), 'tanh backward');
        expect(worst.tanh).toBeLessThanOrEqual(2);
      }
      // sigmoid': (d·a)·(1 − a); S = |d·a·(1 − a)|. Bound 3; measured 2.35.
      {
        const s64 = f32(a64.map((x) => (x + 1) / 2));
        const a = toView(s64), d = toView(d64, 3);
        k.activateBackward('sigmoid', d, a, N);
        worst.sigmoid = worstRatio(d, d64.map((di, i) => di * s64[i]! * (1 - s64[i]!)), d64.map((di, i) => Math.abs(di * s64[i]! * (1 - s64[i]!))), 'sigmoid backward');
        expect(worst.sigmoid).toBeLessThanOrEqual(3);
      }
      // colSums over 1000 rows: S = Σ_r |m[r,c]|. Bound rows−1 (sequential sum); measured 2.4.
      {
        const rows = 1000, cols = 37;
        const m64 = f32(rand(rows * cols, () => rng.normal())), m = toView(m64, 1), out = arena.f32(cols, 2);
        k.colSums(m, rows, cols, out);
        const ref = new Float64Array(cols), S = new Float64Array(cols);
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) (ref[c] = ref[c]! + m64[r * cols + c]!), (S[c] = S[c]! + Math.abs(m64[r * cols + c]!));
        worst.colSums = worstRatio(out, ref, S, 'colSums');
        expect(worst.colSums).toBeLessThanOrEqual(rows - 1);
      }
      // addInto: one rounding, S = |dst + src|. Bound 1 (half an ulp is ≤ u·|x|); measured 1.00.
      {
        const s64 = f32(rand(N, () => rng.normal())), dst = toView(d64, 1), src = toView(s64, 3);
        k.addInto(dst, src, N);
        worst.addInto = worstRatio(dst, d64.map((x, i) => x + s64[i]!), d64.map((x, i) => Math.abs(x + s64[i]!)), 'addInto');
        expect(worst.addInto).toBeLessThanOrEqual(1);
      }
      // sqNorm: Σ a_i² by 16 lanes, then their sum, then the tail: every term rounded once
      // (the square) and added through at most ⌈n/16⌉ + 4 + 15 sums; S = Σ a_i². Bound that
      // many roundings plus one; measured well below it.
      {
        const n = 16 * 200 + 11, a64v = f32(rand(n, () => rng.normal())), a = toView(a64v, 1), out = arena.f32(1, 2);
        k.sqNorm(a, n, out);
        let ref = 0;
        for (const x of a64v) ref += x * x;
        worst.sqNorm = worstRatio(out, Float64Array.of(ref), Float64Array.of(ref), 'sqNorm');
        expect(worst.sqNorm).toBeLessThanOrEqual(Math.ceil(n / 16) + 4 + 15 + 1);
      }
      const p64 = f32(rand(N, () => rng.normal())), g64 = f32(rand(N, () => rng.normal() * 0.1));
      const lr = Math.fround(0.05), wd = Math.fround(1e-3), mu = Math.fround(0.9);
      // sgd: p − lr·(g + wd·p); S = |p| + lr·(|g| + wd·|p|). Bound 4; measured 1.41.
      {
        const p = toView(p64, 2), g = toView(g64, 1);
        k.sgd(p, g, N, lr, wd);
        worst.sgd = worstRatio(p, p64.map((x, i) => x - lr * (g64[i]! + wd * x)), p64.map((x, i) => Math.abs(x) + lr * (Math.abs(g64[i]!) + wd * Math.abs(x))), 'sgd');
        expect(worst.sgd).toBeLessThanOrEqual(4);
      }
      // momentum: v = mu·v + (g + wd·p), S_v = mu|v| + |g| + wd|p|, bound 3 (measured 1.71);
      // p − lr·v, S_p = |p| + lr·S_v, bound 5 (measured 1.14).
      {
        const v64 = f32(rand(N, () => rng.normal() * 0.1));
        const p = toView(p64, 3), g = toView(g64, 1), v = toView(v64, 2);
        k.momentum(p, g, v, N, lr, mu, wd);
        const vRef = v64.map((x, i) => mu * x + (g64[i]! + wd * p64[i]!));
        const Sv = v64.map((x, i) => mu * Math.abs(x) + Math.abs(g64[i]!) + wd * Math.abs(p64[i]!));
        worst.momentumV = worstRatio(v, vRef, Sv, 'momentum v');
        worst.momentumP = worstRatio(p, p64.map((x, i) => x - lr * vRef[i]!), p64.map((x, i) => Math.abs(x) + lr * Sv[i]!), 'momentum p');
        expect(worst.momentumV).toBeLessThanOrEqual(3);
        expect(worst.momentumP).toBeLessThanOrEqual(5);
      }
      // adam: gj = g + wd·p; m = b1·m + a1·gj (S_m = b1|m| + a1(|g| + wd|p|), bound 3, measured 2.33);
      // v = b2·v + a2·gj² (S_v = b2|v| + a2·(gj² + 2|gj|·(|g| + 2wd|p|)), bound 3, measured 1.87);
      // p − step·m/(√(v·c2) + eps): S_p = |p| + |Δ|·(7 + 3·S_m/|m| + 2.5·S_v/v), the update's own
      // roundings plus the propagated m and v errors; bound 1, measured 0.96.
      {
        const m64 = f32(rand(N, () => rng.normal() * 0.01)), v64 = f32(rand(N, () => Math.abs(rng.normal()) * 1e-4));
        const b1 = Math.fround(0.9), b2 = Math.fround(0.999), eps = Math.fround(1e-8);
        const step = Math.fround(0.01 / (1 - 0.9 ** 5)), c2 = Math.fround(1 / (1 - 0.999 ** 5));
        const a1 = Math.fround(1 - 0.9), a2 = Math.fround(1 - 0.999);
        const p = toView(p64, 1), g = toView(g64, 2), m = toView(m64, 3), v = toView(v64, 0);
        k.adam(p, g, m, v, N, step, c2, b1, b2, a1, a2, eps, wd);
        const gj = g64.map((x, i) => x + wd * p64[i]!);
        const mRef = m64.map((x, i) => b1 * x + a1 * gj[i]!), vRef = v64.map((x, i) => b2 * x + a2 * gj[i]! * gj[i]!);
        const Sm = m64.map((x, i) => b1 * Math.abs(x) + a1 * (Math.abs(g64[i]!) + wd * Math.abs(p64[i]!)));
        const Sv = v64.map((x, i) => b2 * x + a2 * (gj[i]! * gj[i]! + 2 * Math.abs(gj[i]!) * (Math.abs(g64[i]!) + 2 * wd * Math.abs(p64[i]!))));
        worst.adamM = worstRatio(m, mRef, Sm, 'adam m');
        worst.adamV = worstRatio(v, vRef, Sv, 'adam v');
        const delta = mRef.map((mi, i) => (step * mi) / (Math.sqrt(vRef[i]! * c2) + eps));
        worst.adamP = worstRatio(
          p,
          p64.map((x, i) => x - delta[i]!),
          p64.map((x, i) => Math.abs(x) + Math.abs(delta[i]!) * (7 + (3 * Sm[i]!) / Math.abs(mRef[i]!) + (2.5 * Sv[i]!) / vRef[i]!)),
          'adam p',
        );
        expect(worst.adamM).toBeLessThanOrEqual(3);
        expect(worst.adamV).toBeLessThanOrEqual(3);
        expect(worst.adamP).toBeLessThanOrEqual(1);
      }
      report(`${name} element-wise`, worst);
      expect(Object.keys(worst).length).toBe(11);
    });

    it(`${name}: row kernels of the error functions within their bounds`, () => {
      arena.reset();
      const worst: Record<string, number> = {};
      for (const [rows, K] of [
        [64, 8],
        [16, 256],
        [9, 3],
        [4, 4099],
      ] as const) {
        const o64 = f32(rand(rows * K, () => rng.normal() * 2)), d64 = f32(rand(rows * K, () => rng.normal() * 2)), y64 = f32(rand(rows * K, () => rng.normal()));
        const w64 = f32(rand(rows, () => rng.normal()));
        const labels = arena.i32(rows, 1);
        for (let r = 0; r < rows; r++) labels[r] = rng.int(K);
        const o = toView(o64, 1), d = toView(d64, 2), ybar = toView(y64, 3), w = toView(w64, 0);
        const out = arena.f32(rows, 1);
        const lseRef = new Float64Array(rows);
        for (let r = 0; r < rows; r++) {
          let m = -Infinity, s = 0;
          for (let k2 = 0; k2 < K; k2++) m = Math.max(m, o64[r * K + k2]!);
          for (let k2 = 0; k2 < K; k2++) s += Math.exp(o64[r * K + k2]! - m);
          lseRef[r] = m + Math.log(s);
        }
        const byRow = (f: (r: number, k: number) => number): Float64Array => Float64Array.from({ length: rows * K }, (_, i) => f(Math.floor(i / K), i % K));
        const rowSum = (f: (r: number, k: number) => number): Float64Array =>
          Float64Array.from({ length: rows }, (_, r) => {
            let s = 0;
            for (let k2 = 0; k2 < K; k2++) s += f(r, k2);
            return s;
          });
        const depth = Math.floor(K / 4) + 8; // lane length + combine + tail + the term's own roundings
        const at = (a: Float64Array, r: number, k2: number): number => a[r * K + k2]!;
        // sqErrRows: S = Σ (d − o)²; bound K/4 + 8 (measured 0.29 of it).
        k.sqErrRows(o, d, rows, K, out, 1, 0);
        const sq = rowSum((r, k2) => (at(d64, r, k2) - at(o64, r, k2)) ** 2);
        worst[`sqErr K=${K}`] = worstRatio(out, sq, sq, 'sqErrRows') / depth;
        // dotDiffRows: S = Σ |d − ȳ|·|o − ȳ|; bound K/4 + 8 (measured 0.18 of it).
        k.dotDiffRows(d, ybar, o, rows, K, out, 1, 0);
        worst[`dotDiff K=${K}`] =
          worstRatio(
            out,
            rowSum((r, k2) => (at(d64, r, k2) - at(y64, r, k2)) * (at(o64, r, k2) - at(y64, r, k2))),
            rowSum((r, k2) => Math.abs((at(d64, r, k2) - at(y64, r, k2)) * (at(o64, r, k2) - at(y64, r, k2)))),
            'dotDiffRows',
          ) / depth;
        // lse = m + log Σ exp(u − m): the sum's relative error is ≤ u·(K/4 + 9) (exp's 1 ulp,
        // the rounding of u − m weighted by exp(u − m) ≤ 1/e, the lane sums), log adds 1 ulp
        // and the final + one rounding: S_lse = |lse| + 2·ln K + K/4 + 10.
        const Slse = lseRef.map((l) => Math.abs(l) + 2 * Math.log(K) + K / 4 + 10);
        // logSoftmaxRows: logG = u − lse, S = |u − lse| + S_lse, bound 1 (measured 0.38).
        const logG = arena.f32(rows * K, 2), g = arena.f32(rows * K, 3), lse = arena.f32(rows, 1);
        k.logSoftmaxRows(o, rows, K, logG, g);
        const lgRef = byRow((r, k2) => at(o64, r, k2) - lseRef[r]!);
        const lgS = byRow((r, k2) => Math.abs(at(o64, r, k2) - lseRef[r]!) + Slse[r]!);
        worst[`logG K=${K}`] = worstRatio(logG, lgRef, lgS, 'logSoftmaxRows logG');
        // g = exp(logG): relative error ≤ |logG error| + exp's 1 ulp: S = g·(lgS + 2); bound 1 (measured 0.35).
        worst[`g K=${K}`] = worstRatio(g, lgRef.map(Math.exp), lgRef.map((x, i) => Math.exp(x) * (lgS[i]! + 2)), 'logSoftmaxRows g');
        // logSoftmaxPickRows: the same lse, then z_y − lse; same scale, bound 1 (measured lse 0.21, out 0.36).
        k.logSoftmaxPickRows(o, labels, rows, K, out, 1, 0, lse);
        worst[`lse K=${K}`] = worstRatio(lse, lseRef, Slse, 'logSoftmaxPickRows lse');
        worst[`pick K=${K}`] = worstRatio(
          out,
          Float64Array.from({ length: rows }, (_, r) => at(o64, r, labels[r]!) - lseRef[r]!),
          Float64Array.from({ length: rows }, (_, r) => Math.abs(at(o64, r, labels[r]!) - lseRef[r]!) + Slse[r]!),
          'logSoftmaxPickRows out',
        );
        // softmaxMinusOnehotRows with the kernel's own lse: e = exp(z − lse) has relative error
        // ≤ u·(|z − lse| + 2); then − onehot and · w: S = |w|·(e·(|z − lse| + 2) + 2|e − onehot|); bound 1 (measured 0.84).
        const grad = arena.f32(rows * K, 1);
        k.softmaxMinusOnehotRows(o, lse, labels, w, 1, 0, rows, K, grad);
        const lse32 = Float64Array.from(lse);
        const e = byRow((r, k2) => Math.exp(at(o64, r, k2) - lse32[r]!));
        const oh = (r: number, k2: number): number => (k2 === labels[r] ? 1 : 0);
        worst[`softmaxGrad K=${K}`] = worstRatio(
          grad,
          byRow((r, k2) => w64[r]! * (at(e, r, k2) - oh(r, k2))),
          byRow((r, k2) => Math.abs(w64[r]!) * (at(e, r, k2) * (Math.abs(at(o64, r, k2) - lse32[r]!) + 2) + 2 * Math.abs(at(e, r, k2) - oh(r, k2)))),
          'softmaxMinusOnehotRows',
        );
        // weightedDiffRows: w·(ref − d), 2 roundings, S = |w·(ref − d)|; bound 2 (measured 1.91).
        k.weightedDiffRows(ybar, d, w, 1, 0, rows, K, grad);
        const wd = byRow((r, k2) => w64[r]! * (at(y64, r, k2) - at(d64, r, k2)));
        worst[`weightedDiff K=${K}`] = worstRatio(grad, wd, wd.map(Math.abs), 'weightedDiffRows') / 2;
        // mixAccumulate: ȳ + g·o, 2 roundings, S = |ȳ| + 2|g·o|; bound 1 (measured 0.96).
        k.mixAccumulate(ybar, o, w, 1, 0, rows, K);
        worst[`mix K=${K}`] = worstRatio(
          ybar,
          byRow((r, k2) => at(y64, r, k2) + w64[r]! * at(o64, r, k2)),
          byRow((r, k2) => Math.abs(at(y64, r, k2)) + 2 * Math.abs(w64[r]! * at(o64, r, k2))),
          'mixAccumulate',
        );
      }
      report(`${name} rows`, worst);
      for (const [key, v] of Object.entries(worst)) expect(v, key).toBeLessThanOrEqual(1);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Other writers of the same memory

describe('the kernel memory is shared with other writers', () => {
  it('OpenBLAS sgemm writes where a kernel reads, and reads what a kernel wrote', async (ctx) => {
    let blas: ComputeProvider;
    try {
      blas = await loadExactProvider('blas');
    } catch (err) {
      ctx.skip(`OpenBLAS did not load, so sgemm on the kernel memory is not tested here: ${(err as Error).message}`);
      return;
    }
    for (const [name, k] of SETS) {
      arena.reset();
      const rng = new Rng(3);
      const M = 5, N = 7, K = 3;
      const A = arena.f32(M * K, 1), B = arena.f32(K * N, 2), C = arena.f32(M * N, 3), bias = arena.f32(N, 1), D = arena.f32(M * N, 2);
      for (let i = 0; i < A.length; i++) A[i] = rng.normal();
      for (let i = 0; i < B.length; i++) B[i] = rng.normal();
      for (let i = 0; i < N; i++) bias[i] = rng.normal();
      // Kernels write A (tanh) and C (bias rows); sgemm reads both: C = bias + tanh(A)·B.
      k.activate('tanh', A, M * K);
      k.biasRows(C, bias, M, N);
      blas.sgemm(false, false, M, N, K, 1, A, B, 1, C);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let ref = bias[j]!;
          for (let l = 0; l < K; l++) ref += A[i * K + l]! * B[l * N + j]!;
          expect(Math.abs(C[i * N + j]! - ref), `${name} C[${i},${j}]`).toBeLessThan(1e-5 * (1 + Math.abs(ref)));
        }
      }
      // A kernel reads what sgemm wrote.
      const snapshot = Float32Array.from(C);
      k.copy(D, C, M * N);
      sameBits(D, snapshot, `${name}: copy of sgemm output`);
      k.activate('relu', C, M * N);
      sameBits(C, snapshot.map((x) => (x > 0 ? x : 0)), `${name}: relu of sgemm output`);
    }
  });

  it('a worker thread instantiates the posted Module over the posted shared Memory and its writes are seen here', async () => {
    arena.reset();
    const n = 1001;
    const a = arena.f32(n, 1), expected = arena.f32(n, 2);
    const rng = new Rng(5);
    for (let i = 0; i < n; i++) a[i] = expected[i] = rng.normal() * 3;
    J.activate('tanh', expected, n);
    const distWasm = join(root, 'dist', 'src', 'kernels', 'wasm.js');
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.url).then(({ wasmKernels }) => {
        const { memory, module, byteOffset, n } = workerData;
        const k = wasmKernels(memory, module, { check: true });
        k.activate('tanh', new Float32Array(memory.buffer, byteOffset, n), n);
        parentPort.postMessage('done');
      }, (err) => parentPort.postMessage('error: ' + err.message));`;
    const worker = new Worker(code, { eval: true, workerData: { url: pathToFileURL(distWasm).href, memory, module: compileKernelModule(), byteOffset: a.byteOffset, n } });
    try {
      const msg = await new Promise<unknown>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(msg, `worker (needs the build in dist/: npm run build)`).toBe('done');
    } finally {
      await worker.terminate();
    }
    sameBits(a, expected, 'tanh computed in a worker');
  });

  it('instantiates over a shared memory of several GiB and reaches its last bytes', () => {
    const big = new wasmApi.Memory({ initial: 49152, maximum: 65536, shared: true }); // 3 GiB
    const k = wasmKernels(big, undefined, { check: true });
    const end = new Float32Array(big.buffer, big.buffer.byteLength - 64, 16);
    end.fill(-2);
    k.activate('relu', end, 16);
    expect(Array.from(end)).toEqual(Array<number>(16).fill(0));
    const small = new wasmApi.Memory({ initial: 1, maximum: 1, shared: true });
    const s = new Float32Array(small.buffer, 0, 4);
    s.set([1, 2, 3, 4]);
    wasmKernels(small).addInto(s, s, 4);
    expect(Array.from(s)).toEqual([2, 4, 6, 8]);
  });
});

// ---------------------------------------------------------------------------------------
// The binary

/** Section ids of a wasm binary, with the import and export entries decoded. */
function sections(bytes: Uint8Array): { ids: number[]; imports: { module: string; name: string; kind: number; limitsFlags?: number; min?: number; max?: number }[]; exports: { name: string; kind: number }[] } {
  let p = 8;
  const leb = (): number => {
    let r = 0, shift = 0, b: number;
    do {
      b = bytes[p++]!;
      r += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return r;
  };
  const str = (): string => {
    const n = leb();
    const s = new TextDecoder().decode(bytes.subarray(p, p + n));
    p += n;
    return s;
  };
  const out: ReturnType<typeof sections> = { ids: [], imports: [], exports: [] };
  while (p < bytes.length) {
    const id = bytes[p++]!;
    const size = leb();
    const end = p + size;
    out.ids.push(id);
    if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        const module = str(), name = str(), kind = bytes[p++]!;
        if (kind === 2) {
          const limitsFlags = bytes[p++]!;
          const min = leb();
          const max = limitsFlags & 1 ? leb() : undefined;
          out.imports.push({ module, name, kind, limitsFlags, min, ...(max !== undefined ? { max } : {}) });
        } else {
          out.imports.push({ module, name, kind });
          break; // only the memory import is expected; stop decoding anything else
        }
      }
    } else if (id === 7) {
      for (let n = leb(); n > 0; n--) {
        const name = str(), kind = bytes[p++]!;
        leb();
        out.exports.push({ name, kind });
      }
    }
    p = end;
  }
  return out;
}

describe('the kernel binary', () => {
  const bytes = new Uint8Array(readFileSync(kernelWasmFile()));

  it('is found from the module, inside the package, and compiled once per thread', () => {
    expect(kernelWasmFile()).toBe(join(root, 'dist', 'kernels', 'kernels.wasm'));
    expect(compileKernelModule()).toBe(compileKernelModule());
    expect(wasmApi.validate(bytes)).toBe(true);
  });

  it('imports one shared memory (0 … 65536 pages) and has no data segment, memory export, start function or other import', () => {
    const s = sections(bytes);
    expect(s.ids).not.toContain(11); // data
    expect(s.ids).not.toContain(12); // data count
    expect(s.ids).not.toContain(8); // start
    expect(s.imports).toEqual([{ module: 'env', name: 'memory', kind: 2, limitsFlags: 3, min: 0, max: 65536 }]);
    expect(s.exports.filter((e) => e.kind !== 0)).toEqual([]); // functions only
    expect(s.exports.map((e) => e.name)).toEqual(expect.arrayContaining(['adam', 'activateTanh', 'logSoftmaxRows', 'copy']));
  });

  it('uses SIMD but no relaxed-SIMD instruction (wabt rejects relaxed SIMD when it is off)', async () => {
    const wabt = await wabtInit();
    const features = { simd: true, threads: true, relaxed_simd: false };
    const mod = wabt.readWasm(bytes, { readDebugNames: false, ...features });
    // wabt.js's validate() takes the feature set too (its typings leave the argument out).
    (mod as unknown as { validate(f: typeof features): void }).validate(features);
    const text = mod.toText({});
    expect(text).toMatch(/f32x4\.mul/);
    expect(text).not.toMatch(/relaxed/);
    expect(text).not.toMatch(/\(data/);
    mod.destroy();
    // The check can fail: a module with one relaxed instruction is refused with relaxed SIMD off.
    const relaxed = wabt.parseWat('relaxed.wat', '(module (func (param v128 v128 v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))))', { simd: true, relaxed_simd: true });
    const bin = relaxed.toBinary({}).buffer;
    relaxed.destroy();
    expect(() => wabt.readWasm(bin, { readDebugNames: false, ...features })).toThrow();
  });
});

// ---------------------------------------------------------------------------------------
// Choosing a set, and the checks

describe('kernel sets', () => {
  it('MOE_KERNELS picks the set (default wasm) and rejects anything else naming the variable', () => {
    expect(kernelSetFromEnv({})).toBe('wasm');
    expect(kernelSetFromEnv({ MOE_KERNELS: '' })).toBe('wasm');
    expect(kernelSetFromEnv({ MOE_KERNELS: 'js' })).toBe('js');
    expect(kernelSetFromEnv({ MOE_KERNELS: 'wasm' })).toBe('wasm');
    expect(() => kernelSetFromEnv({ MOE_KERNELS: 'simd' })).toThrow(OptionError);
    expect(() => kernelSetFromEnv({ MOE_KERNELS: 'simd' })).toThrow(/^MOE_KERNELS: unknown kernel set "simd"/);
    expect(createKernels(memory, 'js').name).toBe('js');
    expect(createKernels(memory, 'wasm', { module: compileKernelModule() }).name).toBe('wasm');
  });

  for (const [name, k] of SETS) {
    it(`${name}: the checked set refuses views of another buffer, short views, bad counts and indices out of range`, () => {
      arena.reset();
      const a = arena.f32(8), b = arena.f32(8);
      expect(() => k.activate('relu', new Float32Array(8), 8)).toThrow(MoeError);
      expect(() => k.activate('relu', new Float32Array(8), 8)).toThrow(/not a view of the kernel memory/);
      expect(() => k.addInto(arena.f32(9), b, 9)).toThrow(/src has 8 elements, needs 9/);
      expect(() => k.fill(a, -1, 0)).toThrow(/n must be a non-negative integer/);
      expect(() => k.fill(a, 2.5, 0)).toThrow(/n must be a non-negative integer/);
      expect(() => k.addInto(a, a.subarray(1), 4)).toThrow(/dst overlaps src/);
      const idx = arena.i32(2);
      idx.set([0, 4]);
      expect(() => k.gatherRows(a, 2, idx, 2, b)).toThrow(/idx\[1\] = 4 is outside \[0, 4\)/);
      expect(() => k.sqErrRows(a, b, 2, 4, b, 5, 4)).toThrow(/out has 8 elements, needs 10/);
      expect(() => k.activate('gelu' as Activation, a, 8)).toThrow(/unknown activation/);
      // In place is fine.
      k.addInto(a, a, 8);
    });
  }
});
