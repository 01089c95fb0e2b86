/**
 * Hostile round three (issue 16), the model side: nothing the library writes may be
 * unloadable, no prediction may be NaN, no small file may ask for gigabytes. One test (or
 * more) per defect and rough edge; each failed before its fix.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProvider } from '../src/compute/load.js';
import { datasetFromArrays, type Dataset } from '../src/data/dataset.js';
import { BackendError, DataError, ModelFormatError, MoeError, OptionError } from '../src/errors.js';
import { parseModelBytes, toModelDocument } from '../src/io/model-file.js';
import { decodeSafetensors, encodeSafetensors, MAX_HEADER_BYTES } from '../src/io/safetensors.js';
import { stateFromSafetensors, stateToSafetensors } from '../src/io/safetensors-state.js';
import { setMemoryLimitForTests } from '../src/memory/memory.js';
import { Mixture, type CreateOptions } from '../src/mixture.js';
import { parseNetSpec } from '../src/model/config.js';
import { cloneState, type ModelState } from '../src/model/state.js';
import { cosineDecay, stepDecay } from '../src/optim/config.js';
import { routingArg } from '../src/cli/common.js';
import { rejection } from './helpers/rejection.js';
import { joinSafetensors, splitSafetensors } from './helpers/safetensors-bytes.js';

const FILE = 'model.x';
// Literal limits (not imported), so that this file also runs against 0.2.0 and fails there.

/** 200 rows a, b, c → y = 2a − b ± 0.5 on the sign of c (the reg.csv). */
function regData(n = 200): Dataset {
  const xs: number[][] = [], ys: number[][] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.37), b = Math.cos(i * 0.71), c = Math.sin(i * 2.3 + 1);
    xs.push([a, b, c]);
    ys.push([2 * a - b + (c > 0 ? 0.5 : -0.5)]);
  }
  return datasetFromArrays('regression', xs, ys);
}

function classData(n = 120): Dataset {
  const xs: number[][] = [], ys: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.37), b = Math.cos(i * 0.71);
    xs.push([a, b]);
    ys.push(a > 0.3 ? 2 : a < -0.3 ? 0 : 1);
  }
  return datasetFromArrays('classification', xs, ys, 3);
}

const REG: CreateOptions = { task: 'regression', inputs: 3, outputs: 1, experts: 4, seed: 3, featureNames: ['a', 'b', 'c'] };

async function trained(opts: CreateOptions = REG, data: Dataset = regData()): Promise<Mixture> {
  const m = await Mixture.create(opts);
  await m.fit(data, { epochs: 2 });
  return m;
}

/** The error `f` throws (synchronously). */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message, 'one line').not.toContain('\n');
    return e as Error;
  }
  throw new Error('did not throw');
}

let dir: string;
let model: Mixture;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-hostile3-'));
  model = await trained();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('defect 1: the size a model implies is refused before anything is allocated', () => {
  const external = (): number => process.memoryUsage().arrayBuffers;

  it('safetensors: a 4 KB file asking for 2^24 experts is one ModelFormatError line, without a large allocation', () => {
    const { tensors, metadata } = decodeSafetensors(stateToSafetensors(cloneState(model.state)), FILE);
    const config = JSON.parse(metadata.config!);
    config.experts = 2 ** 24;
    config.routing.k = 2 ** 24;
    const bomb = encodeSafetensors([...tensors], { ...metadata, config: JSON.stringify(config) });
    expect(bomb.length).toBeLessThan(8192);
    const before = external();
    const err = thrown(() => stateFromSafetensors(bomb, FILE));
    expect(external() - before).toBeLessThan(64 * 2 ** 20);
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toMatch(/^model\.x: config: 16,777,216 experts \(gate 3→16777216, experts 3→1\) need 536,870,912 bytes of parameter tensors; the file holds \d+$/);
  });

  it('JSON: the same file as a model document is refused before its arrays are allocated', () => {
    const doc = JSON.parse(JSON.stringify(toModelDocument(cloneState(model.state), 'test')));
    doc.config.experts = 2 ** 24;
    doc.config.routing.k = 2 ** 24;
    const before = external();
    const err = thrown(() => parseModelBytes(Buffer.from(JSON.stringify(doc)), FILE));
    expect(external() - before).toBeLessThan(64 * 2 ** 20);
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toBe(`${FILE}: params.gateParams holds 16 values, the configuration needs 67108864`);
  });
});

describe('defect 2: deep nesting is one ModelFormatError line', () => {
  it('a JSON model file with a key nested 20,000 arrays deep', () => {
    const doc = toModelDocument(cloneState(model.state), 'test');
    const text = JSON.stringify(doc).replace(/}$/, `,"x":${'['.repeat(20_000)}${']'.repeat(20_000)}}`);
    const err = thrown(() => parseModelBytes(Buffer.from(text), FILE));
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toMatch(new RegExp(`^model\\.x: x(\\[0\\])+\\.\\.\\.: nested more than 32 levels deep`));
  });

  it('a safetensors tensor entry whose shape nests 20,000 deep, and metadata that does', () => {
    const b = stateToSafetensors(cloneState(model.state));
    const { header, data } = splitSafetensors(b);
    const name = Object.keys(header).find((k) => k !== '__metadata__')!;
    header[name].shape = 'DEEP';
    const text = JSON.stringify(header).replace('"DEEP"', `${'['.repeat(20_000)}${']'.repeat(20_000)}`);
    const err = thrown(() => stateFromSafetensors(joinSafetensors(text, data), FILE));
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toContain('is not a list of non-negative integers');
    const { header: h2 } = splitSafetensors(b);
    h2.__metadata__.config = JSON.stringify({ ...JSON.parse(h2.__metadata__.config), x: 'DEEP' }).replace('"DEEP"', `${'['.repeat(20_000)}${']'.repeat(20_000)}`);
    const err2 = thrown(() => stateFromSafetensors(joinSafetensors(h2, data), FILE));
    expect(err2).toBeInstanceOf(ModelFormatError);
    expect(err2.message).toMatch(/__metadata__\.config: x(\[0\])+\.\.\.: nested more than/);
  });
});

describe('defect 3: what the library writes, the library loads', () => {
  it.each(['json.moe', 'x.safetensors'])('save() of a model with a non-finite parameter or optimiser value is refused (DIVERGED), and writes nothing (%s)', async (name) => {
    for (const [k, v] of [['expertParams', NaN], ['gateOpt', Infinity]] as const) {
      const m = await trained();
      m.params[k][3] = v;
      const path = join(dir, `${k}-${name}`);
      const err = await rejection(m.save(path));
      expect(err).toBeInstanceOf(MoeError);
      expect((err as MoeError).code).toBe('DIVERGED');
      expect(err.message).toBe(`${path}: not written: params.${k}[3]: is ${v}, not a finite number; a file holding it would not load (training diverged: lower the learning rate or the loss weights, or keep an earlier checkpoint)`);
      expect(existsSync(path)).toBe(false);
    }
  });

  it('exports are checked the same way (safetensors and ONNX bytes)', async () => {
    const m = await trained();
    m.params.gateParams[0] = NaN;
    expect(((await rejection(m.toSafetensors())) as MoeError).code).toBe('DIVERGED');
    expect(((await rejection(m.toOnnx())) as MoeError).code).toBe('DIVERGED');
  });

  it('a state edited out of the loader\'s range is refused with the loader\'s message', async () => {
    const m = await trained();
    m.state.training.step = -1;
    const path = join(dir, 'edited.moe');
    const err = await rejection(m.save(path));
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toMatch(/^.*edited\.moe: not written: training\.step: Too small: expected number to be >=0 \(the loader would refuse the file\)$/);
    expect(existsSync(path)).toBe(false);
  });

  it('a feature name the loader would refuse is refused when the mixture is created', async () => {
    const err = await rejection(Mixture.create({ ...REG, featureNames: ['a', 'b'.repeat(10_001), 'c'] }));
    expect(err).toBeInstanceOf(OptionError);
    expect(err.message).toMatch(/^featureNames: \[1\]: Too big/);
  });

  it('what save() writes loads again (JSON and safetensors)', async () => {
    for (const name of ['ok.moe', 'ok.safetensors']) {
      const path = join(dir, name);
      await model.save(path);
      const back = await Mixture.load(path);
      expect(back.config).toStrictEqual(model.config);
    }
  });
});

describe('defect 4: one limit for MLP depth, checked when the model is created, with the loader\'s message', () => {
  const deepSpec = `mlp:${Array.from({ length: 65 }, () => 2).join(',')}`;

  it.each(['expert', 'gate'] as const)('%s with 65 hidden layers', async (key) => {
    const err = await rejection(Mixture.create({ ...REG, [key]: deepSpec }));
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe(key);
    expect(err.message).toBe(`${key}: hidden: has 65 hidden layers; at most 64 are supported`);
    expect(thrown(() => parseNetSpec(deepSpec, key)).message).toBe(`${key}: hidden: has 65 hidden layers; at most 64 are supported`);
    // The loader's message for the same architecture in a file.
    const doc = JSON.parse(JSON.stringify(toModelDocument(cloneState(model.state), 'test')));
    doc.config[key] = { kind: 'mlp', hidden: Array.from({ length: 65 }, () => 2), activation: 'tanh' };
    expect(thrown(() => parseModelBytes(Buffer.from(JSON.stringify(doc)), FILE)).message).toBe(`${FILE}: config.${key}.hidden: has 65 hidden layers; at most 64 are supported`);
  });

  it('64 hidden layers are fine', async () => {
    const m = await Mixture.create({ ...REG, expert: `mlp:${Array.from({ length: 64 }, () => 2).join(',')}` });
    expect(m.config.expert.hidden.length).toBe(64);
  });
});

describe('defect 5: the safetensors writer refuses what the reader would refuse', () => {
  it('a header over the reader\'s 100 MB is refused by the writer', () => {
    const err = thrown(() => encodeSafetensors([['t', { shape: [1], data: new Float32Array(1) }]], { big: 'x'.repeat(MAX_HEADER_BYTES) }));
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toMatch(/^its safetensors header would be 100,000,\d{3} bytes \(1 tensors\), over the 100,000,000 bytes safetensors readers accept$/);
  });
});

describe('defect 6: counters a model file cannot hold are refused before training', () => {
  it.each([
    ['step', Number.MAX_SAFE_INTEGER],
    ['epoch', Number.MAX_SAFE_INTEGER],
  ] as const)('training.%s = 2^53 − 1: one more epoch is refused and nothing changes', async (field, value) => {
    const m = await trained();
    m.state.training[field] = value;
    const before = m.params.expertParams.slice();
    const err = await rejection(m.fit(regData(), { epochs: 1 }));
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('epochs');
    expect(err.message).toContain(`the most ${field === 'step' ? 'steps' : 'epochs'} a model file holds`);
    expect(m.params.expertParams).toStrictEqual(before);
    expect(m.state.training[field]).toBe(value);
  });

  it('epochs: 2^53 in one call is refused', async () => {
    const m = await trained();
    const err = await rejection(m.fit(regData(), { epochs: 2 ** 53 }));
    expect(err).toBeInstanceOf(OptionError);
    expect(err.message).toMatch(/^epochs: 9007199254740992 more epochs/);
  });

  it('a file whose step is past 2^53 − 1 is refused at load', () => {
    const state = cloneState(model.state);
    state.training.step = 2 ** 53;
    const err = thrown(() => parseModelBytes(Buffer.from(JSON.stringify(toModelDocument(state, 'test'))), FILE));
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toMatch(/^model\.x: training\.step: Too big/);
  });
});

describe('defect 11: every value a schedule returns is checked before it is used', () => {
  it.each([
    ['a negative rate', () => -0.01, '-0.01'],
    ['NaN', () => NaN, 'NaN'],
    ['Infinity', () => Infinity, 'Infinity'],
    ['a string', () => '0.1' as unknown as number, '"0.1"'],
  ])('%s: OptionError naming the step, parameters unchanged', async (_what, schedule, shown) => {
    const m = await trained();
    const before = m.params.gateParams.slice();
    const step = m.training.step;
    const err = await rejection(m.fit(regData(), { epochs: 1, schedule }));
    expect(err).toBeInstanceOf(OptionError);
    expect(err.message).toBe(`schedule: returned ${shown} for step ${step + 1} (epoch 3); a learning rate must be a finite number ≥ 0`);
    expect(m.params.gateParams).toStrictEqual(before);
  });

  it('a value checked at the step it goes wrong', async () => {
    const m = await trained();
    const step = m.training.step;
    const err = await rejection(m.fit(regData(), { epochs: 2, schedule: ({ step: t, baseLr }) => (t > step + 3 ? -1 : baseLr) }));
    expect(err.message).toMatch(new RegExp(`^schedule: returned -1 for step ${step + 4} `));
  });

  it('stepDecay(0, …) and cosineDecay(0) are refused when made', () => {
    expect(thrown(() => stepDecay(0, 0.5))).toBeInstanceOf(OptionError);
    expect(thrown(() => stepDecay(10, NaN))).toBeInstanceOf(OptionError);
    expect(thrown(() => cosineDecay(0))).toBeInstanceOf(OptionError);
    expect(thrown(() => cosineDecay(10, -1))).toBeInstanceOf(OptionError);
  });

  it('a schedule that is not a function is a typed OptionError', async () => {
    const m = await trained();
    const err = await rejection(m.fit(regData(), { epochs: 1, schedule: 0.1 as never }));
    expect(err).toBeInstanceOf(OptionError);
    expect(err.message).toBe('schedule: must be a function ({ epoch, step, baseLr }) => learning rate, got number');
  });
});

describe('defect 12: no NaN prediction; scalers float32 training could never make are refused', () => {
  it('3e38 in a regression model: a DataError naming the row and the input column, in predict and evaluate', () => {
    const x = [[0.1, 0.2, 0.3], [3e38, 0, 0]];
    const err = thrown(() => model.predict(x));
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toMatch(/^row 2, column a: the prediction is (NaN|-?Infinity), not a finite number: input 3\.\d+e\+38 is [\d.]+e\+\d+ standard deviations from the training data's mean/);
    expect((err as DataError).location).toStrictEqual({ row: 2, column: 'a' });
    const data = datasetFromArrays('regression', x, [[0], [0]]);
    const ev = thrown(() => model.evaluate(data));
    expect(ev).toBeInstanceOf(DataError);
    expect((ev as DataError).location.row).toBe(2);
  });

  it('a classification model: NaN probabilities are a DataError, not a label', async () => {
    const m = await trained({ task: 'classification', inputs: 2, outputs: 3, experts: 3, seed: 2 }, classData());
    const err = thrown(() => m.predict([[1e38, -3e38]]));
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toMatch(/^row 1, column #\d: a class probability is (NaN|-?Infinity), not a finite number/);
  });

  it('parameters that are not finite: predict says the model diverged (DIVERGED), not that the row is bad', async () => {
    const m = await trained();
    m.params.expertParams[0] = NaN;
    const err = thrown(() => m.predict([[0.1, 0.2, 0.3]]));
    expect((err as MoeError).code).toBe('DIVERGED');
    expect(err.message).toContain('expertParams[0] is NaN');
  });

  it.each([
    ['inputScaler', 'std', 1e-300, /^model\.x: inputScaler\.std\[0\]: is outside \[[\d.e-]+, 3\.4e38\]: no float32 column has this spread$/],
    ['inputScaler', 'std', 1e39, /inputScaler\.std\[0\]: is outside/],
    ['inputScaler', 'mean', 1e39, /^model\.x: inputScaler\.mean\[0\]: is outside float32 range/],
    ['targetScaler', 'std', 1e-300, /targetScaler\.std\[0\]: is outside/],
    ['inputScaler', 'std', 0, /inputScaler\.std\[0\]: must be > 0/],
  ] as const)('%s.%s = %s (checksum-valid) is refused at load', (scaler, key, value, re) => {
    const state = cloneState(model.state) as ModelState;
    state[scaler] = { ...state[scaler]!, [key]: state[scaler]![key].map((v, j) => (j === 0 ? value : v)) };
    const err = thrown(() => parseModelBytes(Buffer.from(JSON.stringify(toModelDocument(state, 'test'))), FILE));
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toMatch(re);
  });
});

describe('rough edges', () => {
  it('a safetensors length field of 2^63 says the header length is out of range (not "not valid JSON")', async () => {
    const b = stateToSafetensors(cloneState(model.state)).slice();
    new DataView(b.buffer).setBigUint64(0, 2n ** 63n, true);
    const path = join(dir, 'absurd.safetensors');
    await writeFile(path, b);
    const err = await rejection(Mixture.load(path));
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toBe(`${path}: header length 9223372036854775808 is out of range: a header is at most 100000000 bytes (not a safetensors file, or corrupt)`);
  });

  it('a weights-only file says its optimiser restarts when it trains, not when it is loaded', async () => {
    const { tensors, metadata } = decodeSafetensors(stateToSafetensors(cloneState(model.state)), FILE);
    const path = join(dir, 'weights.safetensors');
    await writeFile(path, encodeSafetensors([...tensors].filter(([n]) => !n.startsWith('optimizer.')), metadata));
    const warnings: string[] = [];
    const m = await Mixture.load(path, { onWarning: (w) => warnings.push(w) });
    m.predict([[0.1, 0.2, 0.3]]);
    m.evaluate(regData(20));
    await m.toSafetensors();
    expect(warnings.filter((w) => w.includes('weights only'))).toStrictEqual([]);
    await m.fit(regData(), { epochs: 1 });
    await m.fit(regData(), { epochs: 1 });
    expect(warnings.filter((w) => w.includes('weights only'))).toStrictEqual([`local-experts: ${path} holds weights only (no optimiser state): training continues with a fresh adam optimiser from step 0`]);
  });

  it.each(['0x1', ' 1 ', '1.0', '01', '1e0', ''])('safetensors format_version %j is refused (only versions as written)', (v) => {
    const { tensors, metadata } = decodeSafetensors(stateToSafetensors(cloneState(model.state)), FILE);
    const err = thrown(() => stateFromSafetensors(encodeSafetensors([...tensors], { ...metadata, format_version: v }), FILE));
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toBe(`${FILE}: __metadata__.format_version ${JSON.stringify(v)} is not a version number`);
  });

  it('unknown or excess header entries are refused before any entry is checked or read', () => {
    const { header, data } = splitSafetensors(stateToSafetensors(cloneState(model.state)));
    const tensors = Object.keys(header).length - 1;
    // 100,000 entries no configuration of 4 experts has: counted before the header is parsed.
    const many = structuredClone(header);
    for (let i = 0; i < 100_000; i++) many[`experts.${4 + i}.layers.0.weight`] = { dtype: 'F64', shape: [1], data_offsets: [0, 8] };
    const err = thrown(() => stateFromSafetensors(joinSafetensors(many, data), FILE));
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toBe(`${FILE}: the header lists ${(100_000 + tensors).toLocaleString('en-US')} tensors; this model has at most ${tensors.toLocaleString('en-US')}`);
    // One unknown entry (malformed too): its name is refused before its entry is checked.
    header['experts.4.layers.0.weight'] = { dtype: 'F64', shape: [1], data_offsets: [0, 8] };
    expect(thrown(() => stateFromSafetensors(joinSafetensors(header, data), FILE)).message).toBe(`${FILE}: tensor experts.4.layers.0.weight is not part of this configuration (4 experts, gate 3→4, experts 3→1)`);
    delete header['experts.4.layers.0.weight'];
    const h2 = structuredClone(header);
    h2['optimizer.momentum_buffer.gate.layers.0.weight'] = { dtype: 'F64', shape: [], data_offsets: [0, 0] };
    expect(thrown(() => stateFromSafetensors(joinSafetensors(h2, data), FILE)).message).toBe(`${FILE}: tensor optimizer.momentum_buffer.gate.layers.0.weight is not part of a adam checkpoint of this configuration`);
  });

  it('expert-choice:1e-3 is a capacity factor like 0.001; malformed ones get a message of their own', () => {
    expect(routingArg('expert-choice:1e-3')).toBe('expert-choice:1e-3');
    expect(thrown(() => routingArg('expert-choice:abc')).message).toBe('expert-choice:C needs a capacity factor C > 0, a decimal number such as 1, 0.5 or 1e-3, got "expert-choice:abc".');
    expect(thrown(() => routingArg('expert-choice:0')).message).toContain('expert-choice:C needs a capacity factor C > 0');
    expect(thrown(() => routingArg('topk:two')).message).toBe('topk:K needs a whole number K ≥ 1 of experts per row (e.g. topk:2), got "topk:two".');
    expect(thrown(() => routingArg('switch:2')).message).toBe('switch takes no parameter, got "switch:2".');
  });

  it('--z-loss 1e300 is refused as the z-loss weight (over float32), not blamed on the learning rate', async () => {
    const err = await rejection(Mixture.create({ ...REG, routing: 'topk:2', loss: 'cooperative', zLoss: 1e300 }));
    expect(err).toBeInstanceOf(OptionError);
    expect(err.message).toBe('zLoss: 1e+300 is over 3.4e38, the largest float32: the training computes in float32, where this weight is Infinity');
  });

  it('--gate mlp:50000000 is blamed on the gate, not on the experts', async () => {
    const err = await rejection(Mixture.create({ ...REG, gate: 'mlp:50000000' }));
    expect((err as OptionError).option).toBe('gate');
    expect(err.message).toBe('gate: hidden[0]: 50000000 is over 16777216, the widest layer a model may have');
    // Within the width limit but too large: the gate, not the experts, is what to change.
    const wide = await rejection(Mixture.create({ ...REG, gate: 'mlp:16000000,20' }));
    expect((wide as OptionError).option).toBe('gate');
    expect(wide.message).toMatch(/^gate: a gate of [\d,]+ parameters \(3→16000000→20→4\) needs [\d.]+ GiB/);
  });

  it('"inference needs … GiB" names what to change', async () => {
    const m = await trained();
    setMemoryLimitForTests(1024);
    try {
      const err = thrown(() => m.predict([[0, 0, 0]]));
      expect(err).toBeInstanceOf(OptionError);
      expect(err.message).toMatch(/^model: inference needs .* GiB of kernel memory; .*: the model is too large to run in one memory; train one with fewer experts \(--experts\) or narrower networks \(--expert, --gate\)$/);
    } finally {
      setMemoryLimitForTests(undefined);
    }
  });

  describe('MOE_REQUIRE_BACKEND', () => {
    const saved = process.env.MOE_REQUIRE_BACKEND;
    afterAll(() => {
      if (saved === undefined) delete process.env.MOE_REQUIRE_BACKEND;
      else process.env.MOE_REQUIRE_BACKEND = saved;
    });

    it('an unknown value is refused in one line', async () => {
      process.env.MOE_REQUIRE_BACKEND = 'openblas';
      const err = await rejection(loadProvider('auto'));
      expect(err).toBeInstanceOf(OptionError);
      expect(err.message).toBe('MOE_REQUIRE_BACKEND: unknown backend "openblas" (expected blas, tensorflow, wasm, cpu, or unset)');
    });

    it('tensorflow under auto runs on tensorflow or fails; never on another provider', async () => {
      process.env.MOE_REQUIRE_BACKEND = 'tensorflow';
      const got = await loadProvider('auto').then(
        (p) => p.name,
        (e: unknown) => e,
      );
      if (typeof got === 'string') expect(got).toBe('tensorflow');
      else expect(got).toBeInstanceOf(BackendError);
    });

    it('empty is unset', async () => {
      process.env.MOE_REQUIRE_BACKEND = '';
      expect((await loadProvider('cpu')).name).toBe('cpu');
    });
  });
});
