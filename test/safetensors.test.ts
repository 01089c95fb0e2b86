// safetensors: JS → file → JS gives the same state bit for bit and the same predictions;
// the tensor names, shapes and transposition follow PyTorch's nn.Linear; weights-only
// files load; every malformed file is one ModelFormatError line naming file and tensor.
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/errors.js';
import { Mixture } from '../src/mixture.js';
import { regionSlots } from '../src/io/export-state.js';
import { cloneState, noiseSeed, type ModelState } from '../src/model/state.js';
import { Rng } from '../src/rng.js';
import { toModelDocument } from '../src/io/model-file.js';
import { mixtureToOnnx } from '../src/io/onnx/export.js';
import { decodeSafetensors, encodeSafetensors, isSafetensors, MAX_HEADER_BYTES } from '../src/io/safetensors.js';
import { safetensorsLayout, stateFromSafetensors, stateToSafetensors } from '../src/io/safetensors-state.js';
import { resolveMixtureConfig } from '../src/model/config.js';
import { resolveOptimizer, type OptimizerName } from '../src/optim/config.js';
import { adamLayoutMismatch, trainCase, EXPORT_CASES } from './helpers/export-models.js';
import { expectSame, REGIONS } from './helpers/params.js';
import { joinSafetensors, splitSafetensors } from './helpers/safetensors-bytes.js';

const FILE = 'model.safetensors';

function expectSameState(a: ModelState, b: ModelState): void {
  for (const k of REGIONS) expectSame(k, a.params[k], b.params[k]);
  const { params: _pa, ...restA } = a;
  const { params: _pb, ...restB } = b;
  expect(restB).toStrictEqual(restA);
}

function errorOf(f: () => unknown): ModelFormatError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelFormatError);
    const msg = (e as Error).message;
    expect(msg.startsWith(`${FILE}: `), msg).toBe(true);
    expect(msg, 'one line').not.toContain('\n');
    return e as ModelFormatError;
  }
  throw new Error('did not throw');
}

describe('round trip JS → safetensors → JS', () => {
  it.each(['sgd', 'momentum', 'adam'] as OptimizerName[])('%s: identical state bit for bit, identical predictions', async (opt) => {
    for (const c of [EXPORT_CASES[1]!, EXPORT_CASES[5]!, EXPORT_CASES[7]!, EXPORT_CASES[8]!]) {
      const { m, inputs } = await trainCase({ ...c, optimizer: opt }, 2);
      m.state.training.batch = 3; // a mid-epoch position travels too
      m.state.training.batchSize = 32;
      const state = cloneState(m.state);
      const bytes = stateToSafetensors(state);
      expect(isSafetensors(bytes)).toBe(true);
      const back = stateFromSafetensors(bytes, FILE);
      expect(back.hasOptimizerState).toBe(true);
      expectSameState(state, back.state);
      if (opt !== 'sgd') expect(state.params.expertOpt.some((v) => v !== 0)).toBe(true);
      const rebuilt = await Mixture.fromState(back.state);
      const x = inputs(50);
      const [p, q] = [m.predict(x), rebuilt.predict(x)];
      for (const k of ['output', 'gate', 'experts'] as const) expectSame(k, p[k], q[k]);
      // and again: the file written from the rebuilt mixture is the same file
      expect(Buffer.from(stateToSafetensors(cloneState(rebuilt.state))).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  it("a noisy top-k file without the noise generator's state (written elsewhere) draws from the stream its seed starts", async () => {
    const { m } = await trainCase(EXPORT_CASES[7]!, 2);
    expect(m.state.training.noiseRng).toBeDefined();
    const { header, data } = splitSafetensors(stateToSafetensors(cloneState(m.state)));
    const training = JSON.parse(header.__metadata__.training as string) as Record<string, unknown>;
    delete training.noiseRng;
    header.__metadata__.training = JSON.stringify(training);
    const back = stateFromSafetensors(joinSafetensors(header, data), FILE).state;
    expect(back.training.noiseRng).toEqual(new Rng(noiseSeed(m.state.training.seed)).state());
    // The noise network's parameters and optimiser state travel as tensors.
    expectSame('noiseParams', m.state.params.noiseParams, back.params.noiseParams);
    expectSame('noiseOpt', m.state.params.noiseOpt, back.params.noiseOpt);
  });

  it('metadata holds the configuration, optimiser, standardisation, names and position as JSON strings', async () => {
    const { m } = await trainCase(EXPORT_CASES[0]!, 1);
    const { metadata } = decodeSafetensors(stateToSafetensors(cloneState(m.state)), FILE);
    expect(metadata.format).toBe('local-experts');
    expect(metadata.format_version).toBe('1');
    expect(JSON.parse(metadata.config!)).toEqual(m.config);
    expect(JSON.parse(metadata.optimizer!)).toEqual(m.optimizer);
    expect(JSON.parse(metadata.training!)).toEqual(m.training);
    expect(JSON.parse(metadata.input_scaler!)).toEqual(m.inputScaler);
    expect(JSON.parse(metadata.class_names!)).toEqual(['iy', 'ih', 'aa', 'ah']);
    expect(JSON.parse(metadata.feature_names!)).toEqual(['F1', 'F2']);
    expect(JSON.parse(metadata.target_names!)).toEqual(['Vowel']);
  });

  it('the data starts 8-byte aligned and the header is padded with spaces', async () => {
    const { m } = await trainCase(EXPORT_CASES[3]!, 1);
    const bytes = stateToSafetensors(cloneState(m.state));
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const text = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
    expect(text.startsWith('{')).toBe(true);
    expect(/^[^]*\} *$/.test(text)).toBe(true);
  });
});

describe('tensor names and shapes follow PyTorch (nn.Linear weight is out × in)', () => {
  const config = resolveMixtureConfig({ task: 'regression', inputs: 3, outputs: 2, experts: 2, expert: 'mlp:4', gate: 'linear' });

  it('layout for adam', () => {
    const names = safetensorsLayout(config, 'adam');
    const params = [
      { name: 'gate.layers.0.weight', shape: [2, 3] },
      { name: 'gate.layers.0.bias', shape: [2] },
      { name: 'experts.0.layers.0.weight', shape: [4, 3] },
      { name: 'experts.0.layers.0.bias', shape: [4] },
      { name: 'experts.0.layers.1.weight', shape: [2, 4] },
      { name: 'experts.0.layers.1.bias', shape: [2] },
      { name: 'experts.1.layers.0.weight', shape: [4, 3] },
      { name: 'experts.1.layers.0.bias', shape: [4] },
      { name: 'experts.1.layers.1.weight', shape: [2, 4] },
      { name: 'experts.1.layers.1.bias', shape: [2] },
    ];
    expect(names).toEqual([
      ...params,
      ...params.map((p) => ({ ...p, name: `optimizer.exp_avg.${p.name}` })),
      ...params.map((p) => ({ ...p, name: `optimizer.exp_avg_sq.${p.name}` })),
    ]);
    expect(safetensorsLayout(config, 'momentum').slice(params.length).map((t) => t.name)).toEqual(params.map((p) => `optimizer.momentum_buffer.${p.name}`));
    expect(safetensorsLayout(config, 'sgd')).toEqual(params);
  });

  it('weights are our W (in × out, row-major) transposed; optimiser slots likewise', () => {
    const optimizer = resolveOptimizer({ name: 'adam' });
    const Pg = 3 * 2 + 2, Pe = 3 * 4 + 4 + 4 * 2 + 2;
    const fill = (n: number, base: number) => Float32Array.from({ length: n }, (_, i) => base + i);
    const state: ModelState = {
      config,
      optimizer,
      params: { gateParams: fill(Pg, 0), expertParams: fill(2 * Pe, 1000), gateOpt: fill(2 * Pg, 2000), expertOpt: fill(2 * 2 * Pe, 3000), noiseParams: new Float32Array(0), noiseOpt: new Float32Array(0), routerBias: new Float32Array(0) },
      training: { seed: 1, step: 7, epoch: 1, rng: [1, 2, 3, 4] },
    };
    const { tensors } = decodeSafetensors(stateToSafetensors(state), FILE);
    // gate W_0 is 3×2 row-major: W[i][j] at i·2 + j; PyTorch's weight[j][i].
    const gw = tensors.get('gate.layers.0.weight')!;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) expect(gw.data[j * 3 + i]).toBe(i * 2 + j);
    expect(Array.from(tensors.get('gate.layers.0.bias')!.data)).toEqual([6, 7]);
    // expert 1, layer 1: W_1 (4×2) starts at Pe + 3·4 + 4 of expertParams.
    const w = tensors.get('experts.1.layers.1.weight')!;
    const base = 1000 + Pe + 16;
    for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) expect(w.data[j * 4 + i]).toBe(base + i * 2 + j);
    // Optimiser slots of expert 1 come from regionSlots (the one place that knows the layout).
    const slots = regionSlots(config, 'adam', state.params).experts[1]!;
    const v = tensors.get('optimizer.exp_avg_sq.experts.1.layers.0.bias')!;
    expect(Array.from(v.data)).toEqual(Array.from(slots.find((s) => s.name === 'exp_avg_sq')!.values.subarray(12, 16)));
  });
});

describe("the trainer's optimiser state has the layout regionSlots reads (planar per region)", () => {
  // The safetensors mapping reads planar state: per region (the gate; all experts)
  // [m (n) | v (n)] for adam. This fails if the trainer interleaved [m, v] per parameter,
  // or laid its planar slots out otherwise than regionSlots reads them.
  it.each([0, 2])('adam after one step, workers %i', async (workers) => {
    expect(await adamLayoutMismatch(workers)).toBeUndefined();
  });
});

describe('weights-only files', () => {
  it('load with zero optimiser state and hasOptimizerState false', async () => {
    const { m } = await trainCase(EXPORT_CASES[3]!, 2);
    const state = cloneState(m.state);
    const { tensors, metadata } = decodeSafetensors(stateToSafetensors(state), FILE);
    const weights = [...tensors].filter(([name]) => !name.startsWith('optimizer.'));
    const back = stateFromSafetensors(encodeSafetensors(weights, metadata), FILE);
    expect(back.hasOptimizerState).toBe(false);
    expectSame('gateParams', state.params.gateParams, back.state.params.gateParams);
    expectSame('expertParams', state.params.expertParams, back.state.params.expertParams);
    expect(back.state.params.expertOpt.length).toBe(state.params.expertOpt.length);
    expect(back.state.params.expertOpt.every((v) => v === 0)).toBe(true);
    expect(back.state.params.gateOpt.every((v) => v === 0)).toBe(true);
  });

  it('sgd has no optimiser state to miss', async () => {
    const { m } = await trainCase({ ...EXPORT_CASES[3]!, optimizer: 'sgd' }, 1);
    expect(stateFromSafetensors(stateToSafetensors(cloneState(m.state)), FILE).hasOptimizerState).toBe(true);
  });
});

describe('isSafetensors recognises the format by its header', () => {
  it('yes for a safetensors file whatever its name; no for a JSON model file, an ONNX file, nothing or garbage', async () => {
    const { m } = await trainCase(EXPORT_CASES[0]!, 1);
    expect(isSafetensors(stateToSafetensors(cloneState(m.state)))).toBe(true);
    expect(isSafetensors(encodeSafetensors([], {}))).toBe(true);
    expect(isSafetensors(Buffer.from(JSON.stringify(toModelDocument(m.state, m.backend))))).toBe(false);
    expect(isSafetensors(mixtureToOnnx(cloneState(m.state)))).toBe(false);
    expect(isSafetensors(new Uint8Array(0))).toBe(false);
    expect(isSafetensors(Uint8Array.from({ length: 64 }, (_, i) => (i * 37) % 256))).toBe(false);
  });
});

describe('malformed files: one ModelFormatError line naming the file (and the tensor)', () => {
  let good: Uint8Array;
  const base = async (): Promise<Uint8Array> => {
    if (!good) {
      const { m } = await trainCase({ ...EXPORT_CASES[1]!, optimizer: 'momentum' }, 1);
      good = stateToSafetensors(cloneState(m.state));
    }
    return good;
  };
  const load = (bytes: Uint8Array) => () => stateFromSafetensors(bytes, FILE);
  const W = 'experts.1.layers.0.weight';

  it('truncated file, truncated header, absurd and oversized header lengths, invalid JSON', async () => {
    const b = await base();
    expect(errorOf(load(b.subarray(0, 5))).message).toBe(`${FILE}: truncated: 5 bytes, a safetensors file starts with an 8-byte header length`);
    expect(errorOf(load(b.subarray(0, 40))).message).toMatch(/^model\.safetensors: truncated header: it should be \d+ bytes, the file has 32 after the length$/);
    const absurd = b.slice();
    new DataView(absurd.buffer).setBigUint64(0, 2n ** 63n, true);
    expect(errorOf(load(absurd)).message).toBe(`${FILE}: header length 9223372036854775808 is out of range: a header is at most 100000000 bytes (not a safetensors file, or corrupt)`);
    const big = b.slice();
    new DataView(big.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
    expect(errorOf(load(big)).message).toContain('header length 100000001 bytes is over the 100000000-byte limit');
    const { header, data } = splitSafetensors(b);
    expect(errorOf(load(joinSafetensors(JSON.stringify(header).slice(0, -1), data))).message).toBe(`${FILE}: the header is not valid JSON (not a safetensors file, or corrupt)`);
    expect(errorOf(load(joinSafetensors('[1, 2]', data))).message).toBe(`${FILE}: the header is not a JSON object`);
  });

  it('truncated data', async () => {
    const b = await base();
    expect(errorOf(load(b.subarray(0, b.length - 4))).message).toMatch(/^model\.safetensors: tensor optimizer\.momentum_buffer\.experts\.2\.layers\.1\.bias: data_offsets \[\d+, \d+\] run past the end of the data \(\d+ bytes\): truncated$/);
  });

  it('a dtype other than F32', async () => {
    for (const dtype of ['F16', 'BF16', 'F64', 'I64']) {
      const { header, data } = splitSafetensors(await base());
      header[W].dtype = dtype;
      expect(errorOf(load(joinSafetensors(header, data))).message).toBe(`${FILE}: tensor ${W}: dtype "${dtype}" is not supported (only F32)`);
    }
  });

  it('non-integer, negative and reversed offsets', async () => {
    const cases: [unknown, string][] = [
      [[0.5, 48.5], 'data_offsets [0.5,48.5] are not two non-negative integers'],
      [[-48, 0], 'data_offsets [-48,0] are not two non-negative integers'],
      [['0', '48'], 'data_offsets ["0","48"] are not two non-negative integers'],
      [[0], 'data_offsets [0] are not two non-negative integers'],
      [[48, 0], 'data_offsets [48, 0] end before they begin'],
    ];
    for (const [offs, msg] of cases) {
      const { header, data } = splitSafetensors(await base());
      header[W].data_offsets = offs;
      expect(errorOf(load(joinSafetensors(header, data))).message).toBe(`${FILE}: tensor ${W}: ${msg}`);
    }
  });

  it('overlapping and gapped offsets, bytes after the last tensor', async () => {
    const { header, data } = splitSafetensors(await base());
    const [b0, e0] = header[W].data_offsets as [number, number];
    const h1 = structuredClone(header);
    h1[W].data_offsets = [b0 - 4, e0 - 4];
    expect(errorOf(load(joinSafetensors(h1, data))).message).toMatch(new RegExp(`^model\\.safetensors: tensor ${W.replaceAll('.', '\\.')}: data_offsets \\[${b0 - 4}, ${e0 - 4}\\] overlap tensor experts\\.0\\.layers\\.1\\.bias`));
    // Grow the data by 8 bytes and move the tensor up: a gap before it.
    const grown = new Uint8Array(data.length + 8);
    grown.set(data);
    const h2 = structuredClone(header);
    for (const v of Object.values(h2)) {
      const t = v as { data_offsets?: [number, number] };
      if (t.data_offsets && t.data_offsets[0] >= b0) t.data_offsets = [t.data_offsets[0] + 8, t.data_offsets[1] + 8];
    }
    expect(errorOf(load(joinSafetensors(h2, grown))).message).toBe(`${FILE}: tensor ${W}: data_offsets [${b0 + 8}, ${e0 + 8}] leave a gap of 8 bytes before it`);
    expect(errorOf(load(joinSafetensors(header, grown))).message).toMatch(/^model\.safetensors: 8 bytes after the last tensor \(optimizer\.momentum_buffer\.experts\.2\.layers\.1\.bias\): not a well-formed safetensors file$/);
  });

  it('shape × 4 ≠ byte length, and a bad shape', async () => {
    const { header, data } = splitSafetensors(await base());
    header[W].shape = [8, 3];
    expect(errorOf(load(joinSafetensors(header, data))).message).toMatch(new RegExp(`^model\\.safetensors: tensor ${W.replaceAll('.', '\\.')}: shape \\[8, 3\\] of F32 needs 96 bytes, data_offsets \\[\\d+, \\d+\\] hold 64$`));
    header[W].shape = [8, -1];
    expect(errorOf(load(joinSafetensors(header, data))).message).toBe(`${FILE}: tensor ${W}: shape [8,-1] is not a list of non-negative integers`);
  });

  it('a wrong shape (same size, transposed)', async () => {
    const { header, data } = splitSafetensors(await base());
    header[W].shape = [2, 8];
    expect(errorOf(load(joinSafetensors(header, data))).message).toBe(`${FILE}: tensor ${W} has shape [2, 8], the configuration needs [8, 2]`);
  });

  it('a missing tensor, an extra tensor, a partial optimiser state', async () => {
    const b = await base();
    const { tensors, metadata } = decodeSafetensors(b, FILE);
    const without = (name: string) => encodeSafetensors([...tensors].filter(([n]) => n !== name), metadata);
    expect(errorOf(load(without(W))).message).toBe(`${FILE}: tensor ${W} is missing (the configuration needs shape [8, 2])`);
    expect(errorOf(load(without(`optimizer.momentum_buffer.${W}`))).message).toBe(`${FILE}: tensor optimizer.momentum_buffer.${W} is missing (the configuration needs shape [8, 2])`);
    const extra = encodeSafetensors([...tensors, ['experts.3.layers.0.weight', { shape: [8, 2], data: new Float32Array(16) }]], metadata);
    expect(errorOf(load(extra)).message).toBe(`${FILE}: tensor experts.3.layers.0.weight is not part of this configuration (3 experts, gate 2→6→3, experts 2→8→4)`);
    const adamish = encodeSafetensors([...tensors, [`optimizer.exp_avg.${W}`, { shape: [8, 2], data: new Float32Array(16) }]], metadata);
    expect(errorOf(load(adamish)).message).toBe(`${FILE}: tensor optimizer.exp_avg.${W} is not part of a momentum checkpoint of this configuration`);
    const onlyOne = encodeSafetensors([...tensors].filter(([n]) => !n.startsWith('optimizer.') || n.endsWith(W)), metadata);
    expect(errorOf(load(onlyOne)).message).toBe(`${FILE}: tensor optimizer.momentum_buffer.${W} is not part of this weights-only momentum checkpoint of this configuration`);
  });

  it('metadata: not strings, missing, foreign, newer, invalid', async () => {
    const b = await base();
    const { header, data } = splitSafetensors(b);
    const h1 = structuredClone(header);
    h1.__metadata__.format_version = 1;
    expect(errorOf(load(joinSafetensors(h1, data))).message).toBe(`${FILE}: __metadata__.format_version is not a string`);
    const { tensors, metadata } = decodeSafetensors(b, FILE);
    const withMeta = (m: Record<string, string>) => encodeSafetensors([...tensors], m);
    expect(errorOf(load(withMeta({}))).message).toContain('not a local-experts model: __metadata__.format is undefined');
    expect(errorOf(load(withMeta({ ...metadata, format: 'pt' }))).message).toContain('__metadata__.format is "pt"');
    const newer = errorOf(load(withMeta({ ...metadata, format_version: '2' })));
    expect(newer.code).toBe('MODEL_VERSION');
    expect(newer.message).toBe(`${FILE}: safetensors format version 2 was written by a newer local-experts; this one reads versions up to 1`);
    const { config: _c, ...noConfig } = metadata;
    expect(errorOf(load(withMeta(noConfig))).message).toBe(`${FILE}: __metadata__.config is missing`);
    expect(errorOf(load(withMeta({ ...metadata, config: '{"task": "regression"' }))).message).toBe(`${FILE}: __metadata__.config is not valid JSON`);
    // The metadata's fields pass the same schema as the JSON model file: one line naming the field.
    expect(errorOf(load(withMeta({ ...metadata, config: JSON.stringify({ ...JSON.parse(metadata.config!), experts: 0 }) }))).message).toBe(
      `${FILE}: __metadata__: config.experts: Too small: expected number to be >=1`,
    );
    expect(errorOf(load(withMeta({ ...metadata, training: '{"step": -1}' }))).message).toMatch(new RegExp(`^${FILE}: __metadata__: training\\.`));
    expect(errorOf(load(withMeta({ ...metadata, input_scaler: '{"mean": [0, 0], "std": [1, 0]}' }))).message).toBe(
      `${FILE}: __metadata__: inputScaler.std[1]: must be > 0`,
    );
    expect(errorOf(load(withMeta({ ...metadata, feature_names: '["F1"]' }))).message).toBe(`${FILE}: __metadata__: featureNames: has 1 names, the model has 2 inputs`);
  });

});
