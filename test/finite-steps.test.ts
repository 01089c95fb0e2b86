/**
 * Commit only finite steps: a step whose gradients are not finite (or whose norm would
 * overflow the optimiser's state) is refused before its UPDATE, with the parameters and
 * optimiser state of the step before, in-process and with workers; the model then saves
 * and loads. Workers start from dist/.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { committable, committableWithin, MAX_GRAD_SQNORM } from '../src/engine/finite.js';
import type { Sgemm } from '../src/compute/provider.js';
import { LAYOUT_BASE } from '../src/memory/layout.js';
import { layerViews, mlpParamCount, type MlpShape } from '../src/model/mlp.js';
import { mlpBackward, mlpForward } from '../src/nn/mlp.js';
import { Rng } from '../src/rng.js';
import { createKernels, squaredNorm } from '../src/kernels/index.js';
import { wasmApi } from '../src/kernels/wasm-api.js';
import { MoeError } from '../src/errors.js';
import { Mixture } from '../src/mixture.js';
import { copyParams, expectIdentical } from './helpers/params.js';

function regression(n = 120): Dataset {
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.37), b = Math.cos(i * 0.71), c = Math.sin(i * 0.29);
    xs.push([a, b, c]);
    ys.push([2 * a - b + (c > 0 ? 0.5 : -0.5)]);
  }
  return datasetFromArrays('regression', xs, ys);
}

async function rejection(p: Promise<unknown>): Promise<MoeError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(MoeError);
    return err as MoeError;
  }
  throw new Error('the fit did not reject');
}

describe('commit only finite steps', () => {
  it.each(['wasm', 'js'] as const)('squaredNorm by the %s sqNorm kernel: NaN and ±∞ propagate, a sum past float32\'s range is +∞ and refused', (set) => {
    const memory = new wasmApi.Memory({ initial: 4, maximum: 4, shared: true });
    const kernels = createKernels(memory, set);
    const f32 = (n: number, at: number): Float32Array => new Float32Array(memory.buffer, at, n);
    const out = f32(1, 0);
    // The same values at the head of a vector shorter than a SIMD block and of a long one (zeros after).
    for (const n of [3, 16 * 100 + 7]) {
      const g = f32(n, 64);
      const norm = (head: number[]): number => {
        g.fill(0);
        g.set(head);
        return squaredNorm(kernels, g, n, out);
      };
      expect(norm([3, 4])).toBe(25);
      expect(norm([1, NaN, 2])).toBeNaN();
      expect(norm([1, -Infinity])).toBe(Infinity);
      expect(norm([3e19, 1])).toBe(Infinity); // 9e38 is past float32's range
      expect(norm([1e15, 0])).toBeLessThanOrEqual(MAX_GRAD_SQNORM * 1.0000001);
      expect(committable(kernels, g, n, out)).toBe(true);
      g[n - 1] = 2e15;
      expect(committable(kernels, g, n, out)).toBe(false);
    }
  });

  // A reference sgemm (float64 sums), row-major as cblas_sgemm: C = α·op(A)·op(B) + β·C.
  const refGemm: Sgemm = (transA, transB, M, N, K, alpha, A, B, beta, C) => {
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let sum = 0;
        for (let k = 0; k < K; k++) sum += (transA ? A[k * M + i]! : A[i * K + k]!) * (transB ? B[j * K + k]! : B[k * N + j]!);
        C[i * N + j] = alpha * sum + (beta === 0 ? 0 : beta * C[i * N + j]!);
      }
  };

  it.each(['wasm', 'js'] as const)("mlpBackward's bound on ‖∂E/∂θ‖² (%s kernels) is never under the exact value, for few rows (Cauchy–Schwarz) and many (exact), and is NaN where an input is", (set) => {
    const memory = new wasmApi.Memory({ initial: 64, maximum: 64, shared: true });
    const kernels = createKernels(memory, set);
    let at = LAYOUT_BASE; // below it: the wasm module's own data
    const f32 = (n: number, fill?: () => number): Float32Array => {
      const a = new Float32Array(memory.buffer, at, n); // a view of the kernel memory, as the wasm kernels need
      at += (n * 4 + 15) & ~15;
      if (fill) for (let i = 0; i < n; i++) a[i] = fill();
      return a;
    };
    const normOut = f32(1);
    const rng = new Rng(11);
    const shapes: MlpShape[] = [
      { sizes: [16, 32, 8], activation: 'tanh' },
      { sizes: [5, 7, 9, 3], activation: 'relu' },
      { sizes: [12, 4], activation: 'tanh' },
    ];
    for (const shape of shapes) {
      for (const rows of [1, 3, 40]) {
        const P = mlpParamCount(shape), sizes = shape.sizes, widest = Math.max(...sizes);
        const params = f32(P, () => rng.normal() * 0.5), grads = f32(P);
        const hidden = sizes.slice(1, -1).map((n) => f32(rows * n));
        const pass = { shape, params: layerViews(shape, params), grads: layerViews(shape, grads), hidden, deltaA: f32(rows * widest), deltaB: f32(rows * widest) };
        const x = f32(rows * sizes[0]!, () => rng.normal()), out = f32(rows * sizes.at(-1)!);
        const gradOut = f32(rows * sizes.at(-1)!, () => rng.normal() * 3);
        mlpForward(refGemm, kernels, pass, x, rows, out);
        const bound = mlpBackward(refGemm, kernels, pass, x, rows, gradOut, normOut);
        let exact = 0;
        for (const g of grads) exact += g * g;
        expect(exact).toBeGreaterThan(0);
        expect(bound).toBeGreaterThanOrEqual(exact * (1 - 1e-5));
        // Without normOut the same gradients, and no bound.
        const copy = Float32Array.from(grads);
        expect(mlpBackward(refGemm, kernels, pass, x, rows, gradOut)).toBe(0);
        expect(Array.from(grads)).toEqual(Array.from(copy));
        // A NaN input: the bound is NaN, so the exact check of the gradient decides.
        x[0] = Number.NaN;
        const nan = mlpBackward(refGemm, kernels, pass, x, rows, gradOut, normOut);
        expect(nan).toBeNaN();
        expect(committableWithin(nan, kernels, grads, P, normOut)).toBe(committable(kernels, grads, P, normOut));
        expect(committableWithin(nan, kernels, grads, P, normOut)).toBe(false);
      }
    }
    // The decision is the exact check's wherever the bound is not under half the limit.
    const g = f32(8).fill(1);
    expect(committableWithin(MAX_GRAD_SQNORM, kernels, g, 8, normOut)).toBe(true); // exact: 8
    g[3] = 2e15;
    expect(committableWithin(MAX_GRAD_SQNORM * 4, kernels, g, 8, normOut)).toBe(false);
    expect(committableWithin(Number.POSITIVE_INFINITY, kernels, g, 8, normOut)).toBe(false);
  });

  for (const workers of [0, 2]) {
    it(`a z-loss that blows up the gate's gradient is refused before its update, the model still saves and loads (${workers} workers)`, async () => {
      // The reproduction: --z-loss 1e20 used to write Infinity into Adam's state.
      const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 1, experts: 4, zLoss: 1e20, seed: 4 });
      await m.fit(regression(), { epochs: 0 }); // fits the scalers only
      const before = copyParams(m.params);
      const err = await rejection(m.fit(regression(), { epochs: 3, workers }));
      expect(err.code).toBe('DIVERGED');
      expect(err.message).toMatch(/gate's gradient is not finite .* at step 1; parameters and optimiser state are left at step 0/);
      expectIdentical(m.params, before);
      const dir = await mkdtemp(join(tmpdir(), 'moe-finite-'));
      try {
        await m.save(join(dir, 'z.moe'));
        const back = await Mixture.load(join(dir, 'z.moe'));
        expectIdentical(back.params, before);
        await back.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      await m.close();
    });

    it(`an expert whose gradient overflows is refused before its update, parameters at the step before (${workers} workers)`, async () => {
      // The competitive error passes every expert a gradient (the Gaussian NLL's posterior
      // of a hopeless expert would be 0).
      const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 1, experts: 4, loss: 'competitive', seed: 6 });
      await m.fit(regression(), { epochs: 1, workers });
      // Expert 2's output ~1e16: its error e ~ 1e32 keeps the loss finite (float32), its
      // gradient's squared norm does not fit the bound.
      const P = m.params.expertParams.length / 4;
      for (let j = 0; j < P; j++) m.params.expertParams[2 * P + j] = 1e16;
      const before = copyParams(m.params);
      const step = m.training.step;
      const err = await rejection(m.fit(regression(), { epochs: 1, workers }));
      expect(err.code).toBe('DIVERGED');
      expect(err.message).toMatch(new RegExp(`gradient of \\d+ expert blocks? is not finite .* at step ${step + 1}; parameters and optimiser state are left at step ${step}`));
      expectIdentical(m.params, before);
      await m.close();
    });
  }
});

describe('long phases in-process', () => {
  it('a phase over thousands of experts yields between slices, and a stop asked for meanwhile ends the step there', async () => {
    const n = 64, xs: number[][] = [], ys: number[][] = [];
    for (let i = 0; i < n; i++) xs.push(Array.from({ length: 8 }, (_, j) => Math.sin(i * (j + 1)))), ys.push([Math.sin(2 * i)]);
    const data = datasetFromArrays('regression', xs, ys);
    // Each of FORWARD and BACKWARD runs 4,000 MLP experts: well over one slice (100 ms).
    const m = await Mixture.create({ task: 'regression', inputs: 8, outputs: 1, experts: 4_000, expert: 'mlp:256', seed: 1 });
    const controller = new AbortController();
    // The stop is asked for as step 2 starts (the schedule runs after the between-steps
    // check): only a check between a phase's slices can see it before the step ends.
    const err = await rejection(m.fit(data, { epochs: 5, batchSize: 64, signal: controller.signal, schedule: ({ step, baseLr }) => (step === 2 && controller.abort(), baseLr) }));
    expect(err.code).toBe('ABORTED');
    expect(err.message).toBe('training aborted during step 2; parameters are those of step 1');
    expect(m.training.step).toBe(1);
    await m.close();
  });
});
