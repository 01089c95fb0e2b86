/**
 * Compute providers: which one `auto` picks, sgemm on blas and wasm against a float64
 * triple loop (every transpose, alpha and beta; shared memory; views with a byte offset),
 * backend names checked at the boundary, fall-back with a one-line warning, and the two
 * providers training to the same model within a stated tolerance.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadProvider, parseBackend } from '../src/compute/load.js';
import { BACKENDS, type ComputeProvider } from '../src/compute/provider.js';
import { standardize } from '../src/data/standardize.js';
import { loadVowels } from '../src/data/vowels.js';
import { BackendError, OptionError } from '../src/errors.js';
import { Mixture } from '../src/mixture.js';
import { backendSuite, naiveSgemm, provider, testRandom, TEST_BACKENDS } from './helpers/backends.js';

const savedRequire = process.env.MOE_REQUIRE_BACKEND;
afterEach(() => {
  if (savedRequire === undefined) delete process.env.MOE_REQUIRE_BACKEND;
  else process.env.MOE_REQUIRE_BACKEND = savedRequire;
});

describe('choosing a provider', () => {
  it('auto takes blas where CI requires it, and reports what it took', async () => {
    const warnings: string[] = [];
    const p = await loadProvider('auto', { onWarning: (m) => warnings.push(m) });
    expect(BACKENDS).toContain(p.name);
    if (savedRequire === 'blas') expect(p.name).toBe('blas');
    else console.log(`auto loaded ${p.name} (${p.detail})${warnings.length ? `; warnings: ${warnings.join(' | ')}` : ''}`);
    // tfjs-node is optional: its absence under auto is not worth a warning.
    expect(warnings.filter((w) => w.includes('tensorflow'))).toEqual([]);
  });

  it('an unknown backend name → OptionError naming the option', async () => {
    expect(() => parseBackend('cuda')).toThrow(OptionError);
    expect(() => parseBackend(42, '--backend')).toThrow(/--backend/);
    expect(parseBackend(undefined)).toBe('auto');
    const err = await loadProvider('cuda' as never).then(
      (p) => p,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('backend');
  });

  it('a bad blasLibrary falls back with one one-line warning when nothing requires blas', async () => {
    delete process.env.MOE_REQUIRE_BACKEND;
    const warnings: string[] = [];
    const lib = '/nonexistent/libnot-a-blas.so';
    const p = await loadProvider('blas', { blasLibrary: lib, onWarning: (m) => warnings.push(m) });
    expect(p.name).not.toBe('blas');
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings[0]).toContain('blas');
    expect(warnings[0]).toContain(lib);
    for (const w of warnings) expect(w).not.toContain('\n');
  });

  it('a bad blasLibrary is a BackendError when MOE_REQUIRE_BACKEND=blas', async () => {
    process.env.MOE_REQUIRE_BACKEND = 'blas';
    const warnings: string[] = [];
    const err = await loadProvider('blas', { blasLibrary: '/nonexistent/libnot-a-blas.so', onWarning: (m) => warnings.push(m) }).then(
      (p) => p,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).code).toBe('BACKEND_UNAVAILABLE');
    expect((err as Error).message).toContain('/nonexistent/libnot-a-blas.so');
  });
});

/**
 * sgemm against the float64 triple loop. Tolerance per element: float32 products summed
 * over K terms, |c − ref| ≤ 1e-5·(|alpha|·Σ_k|a_ik b_kj| + |beta·c0|) + 1e-6.
 */
for (const name of TEST_BACKENDS) describe(`sgemm on ${name}`, backendSuite(name), () => {
  let p: ComputeProvider;
  beforeAll(async () => {
    p = await provider(name);
    if (name === 'wasm') {
      // tfjs's backend is one global: a provider loaded later (cpu, say) would silently
      // take over this one's products. Nothing in this file may have done that.
      const tf = await import('@tensorflow/tfjs-core');
      expect(tf.getBackend()).toBe('wasm');
    }
  });

  const SHAPES: [number, number, number][] = [
    [5, 4, 3],
    [1, 7, 1],
    [33, 17, 29],
  ];
  const TRANS: [boolean, boolean][] = [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ];
  const SCALARS: [number, number][] = [
    [1, 0],
    [0.5, 1],
    [-2, 0.25],
  ];
  const cases = SHAPES.flatMap((s) => TRANS.flatMap((t) => SCALARS.map((a) => [...s, ...t, ...a] as const)));

  /**
   * Operands laid out at an offset inside one buffer (shared or not) with guard values
   * after each, so a provider that ignores byteOffset or writes past M×N is caught.
   */
  function operands(shared: boolean, offset: number, M: number, N: number, K: number, seed: number) {
    const rnd = testRandom(seed);
    const GUARD = 8;
    const sizes = [M * K, K * N, M * N];
    const total = sizes.reduce((s, n) => s + offset + n + GUARD, 0);
    const buf = shared ? new SharedArrayBuffer(total * 4) : new ArrayBuffer(total * 4);
    const all = new Float32Array(buf);
    all.fill(777); // guard value
    let at = 0;
    const views = sizes.map((n) => {
      at += offset;
      const v = all.subarray(at, at + n);
      for (let j = 0; j < n; j++) v[j] = Math.round(rnd.normal() * 64) / 32; // exact in float32
      at += n + GUARD;
      return v;
    });
    return { all, A: views[0]!, B: views[1]!, C: views[2]!, guardsAt: () => Array.from(all).filter((v) => v === 777).length };
  }

  it.each(cases)('M=%i N=%i K=%i transA=%s transB=%s alpha=%d beta=%d', (M, N, K, tA, tB, alpha, beta) => {
    for (const [shared, offset] of [
      [true, 0],
      [false, 3],
      [true, 5],
    ] as const) {
      const { A, B, C, guardsAt } = operands(shared, offset, M, N, K, M * 1000 + N * 10 + K);
      expect(C.byteOffset > 0 || offset === 0).toBe(true);
      const c0 = Float64Array.from(C);
      const ref = new Float64Array(M * N).map((_, j) => c0[j]!);
      const guards = guardsAt();
      naiveSgemm(tA, tB, M, N, K, alpha, Float64Array.from(A) as unknown as Float32Array, Float64Array.from(B) as unknown as Float32Array, beta, ref as unknown as Float32Array);
      // Bound of the rounding error: the same product on absolute values.
      const absA = Float64Array.from(A, Math.abs), absB = Float64Array.from(B, Math.abs);
      const mag = new Float64Array(M * N);
      naiveSgemm(tA, tB, M, N, K, Math.abs(alpha), absA as unknown as Float32Array, absB as unknown as Float32Array, 0, mag as unknown as Float32Array);
      p.sgemm(tA, tB, M, N, K, alpha, A, B, beta, C);
      for (let j = 0; j < M * N; j++) {
        const tol = 1e-5 * (mag[j]! + Math.abs(beta * c0[j]!)) + 1e-6;
        expect(Math.abs(C[j]! - ref[j]!), `shared=${shared} offset=${offset} C[${j}] = ${C[j]} vs ${ref[j]}`).toBeLessThanOrEqual(tol);
      }
      expect(guardsAt(), 'a value outside the operands changed').toBe(guards);
    }
  });

  it('beta = 0 ignores NaN in C', () => {
    const A = Float32Array.of(1, 2, 3, 4), B = Float32Array.of(1, 0, 0, 1);
    const C = new Float32Array(4).fill(NaN);
    p.sgemm(false, false, 2, 2, 2, 1, A, B, 0, C);
    expect(Array.from(C)).toEqual([1, 2, 3, 4]);
  });
});

describe('blas and wasm train the same model', backendSuite('blas'), () => {
  it('on the same parameters, expert outputs differ by at most twice the float32 error bound of their products; trained models agree on accuracy', async () => {
    const { train, test } = await loadVowels({ seed: 1 });
    const create = async (backend: 'blas' | 'wasm'): Promise<Mixture> => {
      await provider(backend); // loads tfjs wasm once per file
      const m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 4, expert: 'mlp:4', lr: 0.01, seed: 3, backend });
      expect(m.backend).toBe(backend);
      await m.fit(train, { epochs: 5, batchSize: 32 });
      return m;
    };
    const a = await create('blas');
    // The same parameters through the other provider: only the products' float32 rounding differs.
    const b = await Mixture.fromState(a.state, { backend: 'wasm' });
    expect(b.backend).toBe('wasm');
    const pa = a.predict(test.x), pb = b.predict(test.x);
    // Bound. A product z = b + Σ_k x_k·W_k over K terms, summed in float32 in ANY order (with
    // or without fused multiply-add), is within γ_{K+1}·(|b| + Σ_k |x_k|·|W_k|) of the exact
    // value, γ_n = n·u/(1 − n·u), u = 2⁻²⁴ (Higham, Accuracy and Stability, §3.1). Each
    // provider is within that of the exact product, so they are within twice it of each other.
    // The hidden tanh is the same kernel in both (absolute error ≤ 3e-7 against tanh, whose
    // slope is ≤ 1), so |Δh_j| ≤ |Δz_j| + 2·3e-7; the output layer adds its own products'
    // bound on |h| ≤ 1 plus the propagated Σ_j |Δh_j|·|W_jk|.
    const u = 2 ** -24;
    const gamma = (n: number): number => (n * u) / (1 - n * u);
    const D = 2, H = 4, K = 4, E = 4, per = D * H + H + H * K + K;
    const x = standardize(a.inputScaler!, test.x, test.n);
    const W = a.params.expertParams;
    expect(W.length).toBe(E * per);
    let worstRatio = 0, differ = 0;
    for (let e = 0; e < E; e++) {
      const o = e * per, W1 = o, b1 = o + D * H, W2 = b1 + H, b2 = W2 + H * K;
      for (let r = 0; r < test.n; r++) {
        const dh = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          let mag = Math.abs(W[b1 + j]!);
          for (let k = 0; k < D; k++) mag += Math.abs(x[r * D + k]!) * Math.abs(W[W1 + k * H + j]!);
          dh[j] = 2 * gamma(D + 1) * mag + 2 * 3e-7;
        }
        for (let k = 0; k < K; k++) {
          let mag = Math.abs(W[b2 + k]!), propagated = 0;
          for (let j = 0; j < H; j++) {
            mag += Math.abs(W[W2 + j * K + k]!);
            propagated += dh[j]! * Math.abs(W[W2 + j * K + k]!);
          }
          const bound = propagated + 2 * gamma(H + 1) * mag;
          const i = e * test.n * K + r * K + k;
          const diff = Math.abs(pa.experts[i]! - pb.experts[i]!);
          if (diff !== 0) differ++;
          worstRatio = Math.max(worstRatio, diff / bound);
          if (!(diff <= bound)) expect.fail(`expert ${e}, row ${r}, output ${k}: blas ${pa.experts[i]}, wasm ${pb.experts[i]}, difference ${diff} > bound ${bound}`);
        }
      }
    }
    console.log(`blas vs wasm on the same parameters: ${differ} expert outputs differ, worst difference ${worstRatio.toFixed(3)} of its bound`);
    // Trained from the same start on each provider, the models classify alike (a behaviour
    // check: after 5 epochs the rounding differences have been through Adam's updates).
    const c = await create('wasm');
    const accA = a.evaluate(test).accuracy!, accC = c.evaluate(test).accuracy!;
    expect(Math.abs(accA - accC)).toBeLessThanOrEqual(0.02);
    expect(accA).toBeGreaterThan(0.5);
  });
});

