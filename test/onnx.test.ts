// ONNX export: the graph run by ONNX Runtime (onnxruntime-node, CPU) gives what
// Mixture.predict gives, for every error function, activation and gate/expert kind, on a
// batch of 1 and of 1,000; the model uses only allowed operators at IR 8 / opset 17.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, type ModelProto } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { OptionError } from '../src/errors.js';
import { cloneState, type ModelState } from '../src/model/state.js';
import { mixtureToOnnx, ONNX_IR_VERSION, ONNX_MAX_INITIALIZER_BYTES, ONNX_OPERATORS, ONNX_OPSET, onnxInitializerBytes } from '../src/io/onnx/export.js';
import { resolveMixtureConfig } from '../src/model/config.js';
import { resolveOptimizer } from '../src/optim/config.js';
import { compare, EXPORT_CASES, scaleOf, trainCase } from './helpers/export-models.js';

/** The operators a graph may use: the default domain's, and only these. */
const ALLOWED = new Set(['Cast', 'Sub', 'Div', 'Mul', 'Add', 'MatMul', 'Tanh', 'Relu', 'Sigmoid', 'Softmax', 'Transpose', 'Unsqueeze', 'ReduceSum', 'TopK', 'GatherElements', 'ScatterElements', 'Concat', 'Slice']);

const measured: string[] = [];
afterAll(() => {
  // The report's numbers: max |Δ| per case and output (and the worst fraction of the tolerance).
  console.log(`ONNX Runtime ${ort.env.versions.node} vs Mixture.predict, max |Δ| (worst |Δ|/tolerance):\n${measured.join('\n')}`);
});

function decode(bytes: Uint8Array): ModelProto {
  return fromBinary(ModelProtoSchema, bytes);
}

describe.each(EXPORT_CASES.filter((c) => c.onnx !== false))('$name', (c) => {
  it('ONNX Runtime matches predict for a batch of 1 and of 1,000', async () => {
    const { m, inputs } = await trainCase(c);
    const bytes = mixtureToOnnx(cloneState(m.state));
    const session = await ort.InferenceSession.create(bytes);
    try {
      expect(session.inputNames).toEqual(['x']);
      expect(session.outputNames).toEqual(['output', 'gate', 'experts']);
      const { inputs: D, outputs: K, experts: E } = m.config;
      for (const n of [1, 1000]) {
        const x = inputs(n);
        // ONNX computes every expert's output: compare with predict's allExperts.
        const ref = m.predict(x, { allExperts: true });
        const got = await session.run({ x: new ort.Tensor('float32', x, [n, D]) });
        expect(got.output!.dims).toEqual([n, K]);
        expect(got.gate!.dims).toEqual([n, E]);
        expect(got.experts!.dims).toEqual([E, n, K]);
        const parts: string[] = [];
        for (const what of ['output', 'gate', 'experts'] as const) {
          const r = compare(ref[what], got[what]!.data as Float32Array, scaleOf(m, what));
          parts.push(`${what} ${r.maxAbs.toExponential(2)} (${r.worst.toFixed(3)})`);
          expect(r.worst, `${what}[${r.at}]: predict ${ref[what][r.at]}, onnx ${(got[what]!.data as Float32Array)[r.at]}`).toBeLessThanOrEqual(1);
        }
        measured.push(`  ${c.name}, N=${n}: ${parts.join(', ')}`);
      }
    } finally {
      await session.release();
    }
  });
});

describe('an empty batch (0 rows)', () => {
  // ONNX Runtime 1.30's TopK dies with SIGFPE on an empty tensor: the graph pads the scores
  // with one row for TopK. Run in a child process, so a crash fails the test and not the run.
  it.each(EXPORT_CASES.filter((c) => c.onnx !== false).filter((c, i) => c.routing !== undefined || i === 0))('$name: every output has 0 rows', async (c) => {
    const { m } = await trainCase(c, 1);
    const dir = mkdtempSync(join(tmpdir(), 'moe-onnx0-'));
    try {
      const file = join(dir, 'm.onnx');
      writeFileSync(file, mixtureToOnnx(cloneState(m.state)));
      const code = `
        const ort = await import('onnxruntime-node');
        const s = await ort.InferenceSession.create(${JSON.stringify(file)});
        const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(0), [0, ${m.config.inputs}]) });
        console.log(JSON.stringify(Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.dims]))));`;
      const cwd = fileURLToPath(new URL('..', import.meta.url));
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd, encoding: 'utf8', timeout: 60_000 });
      expect(r.signal, r.stderr).toBeNull();
      expect(r.status, r.stderr).toBe(0);
      const { inputs: _D, outputs: K, experts: E } = m.config;
      expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!)).toEqual({ output: [0, K], gate: [0, E], experts: [E, 0, K] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the ONNX model itself', () => {
  it('uses only allowed operators of the default domain, IR version 8 and opset 17', async () => {
    for (const c of [EXPORT_CASES[1]!, EXPORT_CASES[2]!, EXPORT_CASES[3]!, EXPORT_CASES[5]!, EXPORT_CASES[6]!, EXPORT_CASES[8]!]) {
      const { m } = await trainCase(c, 1);
      const model = decode(mixtureToOnnx(cloneState(m.state)));
      expect(model.irVersion).toBe(8n);
      expect(ONNX_IR_VERSION).toBe(8);
      expect(model.opsetImport.map((o) => [o.domain, o.version])).toEqual([['', 17n]]);
      expect(ONNX_OPSET).toBe(17);
      const g = model.graph!;
      expect(g.node.length).toBeGreaterThan(10);
      for (const node of g.node) {
        expect(node.domain, `${node.opType} domain`).toBe('');
        expect(ALLOWED.has(node.opType), `${node.opType} is not on the allow-list`).toBe(true);
      }
      // The exporter's own list stays inside the allow-list.
      for (const op of ONNX_OPERATORS) expect(ALLOWED.has(op), op).toBe(true);
      expect(g.input.map((v) => v.name)).toEqual(['x']);
      expect(g.output.map((v) => v.name)).toEqual(['output', 'gate', 'experts']);
      const dims = (i: number, list = g.output) => {
        const t = list[i]!.type!.value;
        if (t.case !== 'tensorType') throw new Error('not a tensor');
        expect(t.value.elemType).toBe(1); // float32
        return t.value.shape!.dim.map((d) => (d.value.case === 'dimParam' ? d.value.value : Number(d.value.value)));
      };
      const { inputs: D, outputs: K, experts: E } = m.config;
      expect(dims(0, g.input)).toEqual(['N', D]);
      expect(dims(0)).toEqual(['N', K]);
      expect(dims(1)).toEqual(['N', E]);
      expect(dims(2)).toEqual([E, 'N', K]);
      const props = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
      expect(JSON.parse(props['local-experts.config']!)).toEqual(m.config);
    }
  });

  it('carries the class and feature names as metadata', async () => {
    const { m } = await trainCase(EXPORT_CASES[0]!, 1);
    const props = Object.fromEntries(decode(mixtureToOnnx(cloneState(m.state))).metadataProps.map((p) => [p.key, p.value]));
    expect(JSON.parse(props['local-experts.class_names']!)).toEqual(['iy', 'ih', 'aa', 'ah']);
    expect(JSON.parse(props['local-experts.feature_names']!)).toEqual(['F1', 'F2']);
  });
});

describe('what mixtureToOnnx refuses', () => {
  const small = (): ModelState => {
    const config = resolveMixtureConfig({ task: 'regression', inputs: 2, outputs: 1, experts: 2 });
    return {
      config,
      optimizer: resolveOptimizer({ name: 'sgd' }),
      params: { gateParams: new Float32Array(6), expertParams: new Float32Array(6), gateOpt: new Float32Array(0), expertOpt: new Float32Array(0), noiseParams: new Float32Array(0), noiseOpt: new Float32Array(0), routerBias: new Float32Array(0) },
      inputScaler: { mean: [0, 0], std: [1, 1] },
      targetScaler: { mean: [0], std: [1] },
      training: { seed: 1, step: 0, epoch: 0, rng: [1, 2, 3, 4] },
    };
  };

  it('a model over 2 GiB of weights, before touching its parameters', () => {
    // 8 experts of 2 → 8192 → 8192 → 1: 8 × 67.1 M floats = 2.15 GB; the arrays are empty.
    const config = resolveMixtureConfig({ task: 'regression', inputs: 2, outputs: 1, experts: 8, expert: 'mlp:8192,8192' });
    expect(onnxInitializerBytes(config)).toBeGreaterThan(ONNX_MAX_INITIALIZER_BYTES);
    const s = { ...small(), config };
    let err: unknown;
    try {
      mixtureToOnnx(s);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('format');
    expect((err as Error).message).toMatch(/^format: onnx: the model's weights take 2\.\d\d GiB, more than the 2 GiB one ONNX protobuf can hold; export it as safetensors instead$/);
  });

  it('expert-choice routing, with one line naming it', async () => {
    const { m } = await trainCase(EXPORT_CASES.find((c) => c.onnx === false)!, 1);
    let err: unknown;
    try {
      mixtureToOnnx(cloneState(m.state));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('format');
    expect((err as Error).message).toMatch(/expert-choice routing is not exported/);
  });

  it('a model that was never trained (no standardisation)', () => {
    const s = small();
    delete s.inputScaler;
    expect(() => mixtureToOnnx(s)).toThrow(OptionError);
    expect(() => mixtureToOnnx(s)).toThrow(/not been trained yet/);
  });


  it('parameters that do not fit the configuration', () => {
    const s = small();
    s.params.expertParams = new Float32Array(5);
    expect(() => mixtureToOnnx(s)).toThrow('onnx export: expertParams holds 5 values, the configuration needs 6');
  });
});

describe('an exported model in ONNX Runtime is independent of the mixture', () => {
  it('keeps the weights of the moment of export', async () => {
    const { m, train, inputs } = await trainCase(EXPORT_CASES[3]!, 2);
    const bytes = mixtureToOnnx(cloneState(m.state));
    const x = inputs(5);
    const before = m.predict(x).output.slice();
    await m.fit(train, { epochs: 2 });
    const session = await ort.InferenceSession.create(bytes);
    const got = (await session.run({ x: new ort.Tensor('float32', x, [5, 3]) })).output!.data as Float32Array;
    await session.release();
    expect(compare(before, got, scaleOf(m, 'output')).worst).toBeLessThanOrEqual(1);
    // …while the mixture itself has moved on.
    expect(compare(before, m.predict(x).output, scaleOf(m, 'output')).worst).toBeGreaterThan(1);
  });
});
