/**
 * The model file: a round trip is exact (predictions, parameters, optimiser and training
 * state), every kind of damaged or foreign file is refused with a typed error and code,
 * and saving is atomic (no partial file, no temporary files left behind).
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetFromArrays } from '../src/data/dataset.js';
import { loadVowels } from '../src/data/vowels.js';
import { DataError, ModelFormatError, OptionError, type MoeError, type MoeErrorCode } from '../src/errors.js';
import { canonicalJson, jsonModelFileBytes, MODEL_FORMAT_VERSION, writeModelFile } from '../src/io/model-file.js';
import { isSafetensors } from '../src/io/safetensors.js';
import { safetensorsLayout } from '../src/io/safetensors-state.js';
import { PARAM_ARRAYS } from '../src/model/state.js';
import { Mixture } from '../src/mixture.js';
import { testRandom } from './helpers/backends.js';
import { makeFifo } from './helpers/files.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

let dir: string;
let vowels: Awaited<ReturnType<typeof loadVowels>>;
let classifier: Mixture;
let classifierFile: string;
let classifierText: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-model-'));
  vowels = await loadVowels({ seed: 1 });
  classifier = await Mixture.create({
    task: 'classification',
    inputs: 2,
    outputs: 4,
    experts: 3,
    expert: 'mlp:4',
    gate: 'mlp:3:relu',
    seed: 9,
    featureNames: ['F1', 'F2'],
    classNames: ['iy', 'ih', 'aa', 'ah'],
  });
  await classifier.fit(vowels.train, { epochs: 3 });
  classifierFile = join(dir, 'vowels.moe.json');
  await classifier.save(classifierFile);
  classifierText = await readFile(classifierFile, 'utf8');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const same = (a: ArrayLike<number>, b: ArrayLike<number>): boolean => a.length === b.length && Array.prototype.every.call(a, (v: number, j: number) => Object.is(v, b[j]));

async function expectLoadError(path: string, cls: typeof ModelFormatError | typeof DataError, code: MoeErrorCode, text: string): Promise<MoeError> {
  const err = await Mixture.load(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(cls);
  const e = err as MoeError;
  expect(e.code).toBe(code);
  expect(e.message).toContain(text);
  return e;
}

let n = 0;
async function fileWith(text: string): Promise<string> {
  const path = join(dir, `bad${n++}.json`);
  await writeFile(path, text, 'utf8');
  return path;
}

describe('round trip', () => {
  it('classification: load → predict is bit-identical, and every array and state comes back', async () => {
    const loaded = await Mixture.load(classifierFile);
    const p = classifier.predict(vowels.test.x), q = loaded.predict(vowels.test.x);
    expect(same(p.output, q.output)).toBe(true);
    expect(same(p.gate, q.gate)).toBe(true);
    expect(same(p.experts, q.experts)).toBe(true);
    expect(same(p.labels!, q.labels!)).toBe(true);
    for (const k of ['gateParams', 'expertParams', 'gateOpt', 'expertOpt'] as const) expect(same(loaded.params[k], classifier.params[k]), k).toBe(true);
    expect(loaded.config).toEqual(classifier.config);
    expect(loaded.optimizer).toEqual(classifier.optimizer);
    expect(loaded.inputScaler).toEqual(classifier.inputScaler);
    expect(loaded.classNames).toEqual(['iy', 'ih', 'aa', 'ah']);
    expect(loaded.featureNames).toEqual(['F1', 'F2']);
  });

  it('training state (seed, step, epoch, rng) round-trips, and training resumes exactly', async () => {
    const loaded = await Mixture.load(classifierFile);
    expect(loaded.training).toEqual(classifier.training);
    expect(loaded.training.step).toBeGreaterThan(0);
    expect(loaded.training.epoch).toBe(3);
    // Two more epochs from the file and from memory: the same numbers, bit for bit.
    const a = await Mixture.load(classifierFile), b = await Mixture.load(classifierFile);
    await a.fit(vowels.train, { epochs: 2 });
    await b.fit(vowels.train, { epochs: 2 });
    expect(a.training).toEqual(b.training);
    expect(same(a.params.expertParams, b.params.expertParams)).toBe(true);
    expect(same(a.params.expertParams, classifier.params.expertParams)).toBe(false);
  });

  it('regression: original-unit predictions and the target standardisation come back', async () => {
    const rnd = testRandom(3);
    const xs = Array.from({ length: 60 }, () => [1000 * rnd.uniform(), rnd.normal()]);
    const ys = xs.map(([a, b]) => [3 * a! - 50 * b! + 7, a! / 10]);
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 2, experts: 2, loss: 'competitive', optimizer: 'momentum', seed: 5 });
    await m.fit(datasetFromArrays('regression', xs, ys), { epochs: 5, batchSize: 8 });
    const path = join(dir, 'reg.json');
    await m.save(path);
    const loaded = await Mixture.load(path);
    const probe = [[10, 0.5], [900, -1]];
    expect(same(m.predict(probe).output, loaded.predict(probe).output)).toBe(true);
    expect(loaded.targetScaler).toEqual(m.targetScaler);
    expect(loaded.optimizer.name).toBe('momentum');
    expect(same(loaded.params.expertOpt, m.params.expertOpt)).toBe(true);
  });
});

describe('damaged and foreign files → typed errors', () => {
  it('a missing file → DataError FILE_NOT_FOUND', async () => {
    const e = await expectLoadError(join(dir, 'nope.json'), DataError, 'FILE_NOT_FOUND', 'not found');
    expect((e as DataError).location.file).toBe(join(dir, 'nope.json'));
  });

  it('a truncated file → MODEL_FORMAT', async () => {
    await expectLoadError(await fileWith(classifierText.slice(0, Math.floor(classifierText.length / 2))), ModelFormatError, 'MODEL_FORMAT', 'truncated');
  });

  it('an empty file → MODEL_FORMAT', async () => {
    await expectLoadError(await fileWith(''), ModelFormatError, 'MODEL_FORMAT', 'not a model file');
  });

  it('one flipped base64 character in the parameters → checksum mismatch', async () => {
    const doc = JSON.parse(classifierText) as { params: Record<string, string> };
    const s = doc.params.expertParams!;
    const j = Math.floor(s.length / 2);
    doc.params.expertParams = s.slice(0, j) + (s[j] === 'A' ? 'B' : 'A') + s.slice(j + 1);
    await expectLoadError(await fileWith(JSON.stringify(doc)), ModelFormatError, 'MODEL_FORMAT', 'checksum');
  });

  it('a parameter array of the wrong length → MODEL_FORMAT', async () => {
    const doc = JSON.parse(classifierText) as { params: Record<string, string> };
    doc.params.gateParams = Buffer.from(new Float32Array(3).buffer).toString('base64');
    await expectLoadError(await fileWith(JSON.stringify(doc)), ModelFormatError, 'MODEL_FORMAT', 'gateParams');
  });

  it.each([
    ['another format', '{"format":"tfjs-layers-model","version":1}'],
    ['a JSON array', '[1, 2, 3]'],
    ['JSON null', 'null'],
    ['a package.json', '{"name":"x","version":"1.0.0"}'],
  ])('%s → MODEL_FORMAT', async (_, text) => {
    await expectLoadError(await fileWith(text), ModelFormatError, 'MODEL_FORMAT', 'not a local-experts model');
  });

  it('version 999 → MODEL_VERSION, naming a newer writer', async () => {
    const doc = JSON.parse(classifierText) as { version: number };
    expect(doc.version).toBe(MODEL_FORMAT_VERSION);
    doc.version = 999;
    const e = await expectLoadError(await fileWith(JSON.stringify(doc)), ModelFormatError, 'MODEL_VERSION', 'newer');
    expect(e.message).toContain('999');
  });

  /** The document with a change applied and its checksum recomputed (an edit that knows the format). */
  function edited(change: (doc: Record<string, any>) => void): string {
    const doc = JSON.parse(classifierText) as Record<string, any>;
    change(doc);
    doc.checksum = createHash('sha256').update(canonicalJson({ ...doc, checksum: undefined })).digest('hex');
    return JSON.stringify(doc);
  }

  // Every edit below is checksummed as the format wants: the schema must catch it by itself.
  it.each([
    ['zero experts', (d: Record<string, any>) => (d.config.experts = 0), 'config.experts'],
    ['a billion experts', (d: Record<string, any>) => (d.config.experts = 1e9), 'config.experts'],
    ['hidden layers of 1e5 on a linear net', (d: Record<string, any>) => (d.config.expert = { kind: 'mlp', hidden: [100000, 100000], activation: 'tanh' }), 'config.expert'],
    ['a string where a number belongs', (d: Record<string, any>) => (d.config.inputs = '2'), 'config.inputs'],
    ['an unknown loss', (d: Record<string, any>) => (d.config.loss = 'hinge'), 'config.loss'],
    ['class names shorter than the classes', (d: Record<string, any>) => (d.classNames = ['iy', 'ih']), 'classNames'],
    ['a negative epoch', (d: Record<string, any>) => (d.training.epoch = -2), 'training.epoch'],
    ['a short rng state', (d: Record<string, any>) => (d.training.rng = [1]), 'training.rng'],
    ['a seed beyond 32 bits', (d: Record<string, any>) => (d.training.seed = 2 ** 40), 'training.seed'],
    ['a validation split of 1.5', (d: Record<string, any>) => (d.training.validationSplit = 1.5), 'training.validationSplit'],
    ['early stopping counters below zero', (d: Record<string, any>) => (d.training.earlyStopping = { best: 1, bestEpoch: 2, sinceBest: -1 }), 'training.earlyStopping.sinceBest'],
    ['a NaN learning rate (null in JSON)', (d: Record<string, any>) => (d.optimizer.lr = null), 'optimizer.lr'],
    ['a negative weight decay', (d: Record<string, any>) => (d.optimizer.weightDecay = -1), 'optimizer.weightDecay'],
    ['β₁ of 1', (d: Record<string, any>) => (d.optimizer.beta1 = 1), 'optimizer.beta1'],
    ['a zero standard deviation', (d: Record<string, any>) => (d.inputScaler.std = [0, 1]), 'inputScaler.std'],
    ['a scaler of the wrong width', (d: Record<string, any>) => (d.inputScaler.mean = [1, 2, 3]), 'inputScaler'],
    ['NaN parameters', (d: Record<string, any>) => (d.params.gateParams = Buffer.from(new Float32Array(Buffer.from(d.params.gateParams, 'base64').byteLength / 4).fill(NaN).buffer).toString('base64')), 'params.gateParams[0]'],
    ['params that are not base64', (d: Record<string, any>) => (d.params.expertParams = '***'), 'params.expertParams'],
  ])('%s → MODEL_FORMAT naming the field', async (_, change, field) => {
    const e = await expectLoadError(await fileWith(edited(change)), ModelFormatError, 'MODEL_FORMAT', field);
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.message.length).toBeLessThan(300);
  });

  it('an edit that keeps the old checksum (configuration, names, training state) → checksum mismatch', async () => {
    for (const change of [
      (d: Record<string, any>) => (d.training.epoch = 99),
      (d: Record<string, any>) => (d.classNames = ['a', 'b', 'c', 'd']),
      (d: Record<string, any>) => (d.optimizer.lr = 0.5),
    ]) {
      const doc = JSON.parse(classifierText) as Record<string, any>;
      change(doc);
      await expectLoadError(await fileWith(JSON.stringify(doc)), ModelFormatError, 'MODEL_FORMAT', 'checksum');
    }
  });

  it('a directory, a device and an oversized file → one line naming the path', async () => {
    await expectLoadError(dir, DataError, 'INVALID_DATA', 'directory');
    await expectLoadError('/dev/zero', DataError, 'INVALID_DATA', 'not a regular file');
  });

  it('a named pipe (FIFO) with no writer → refused at once, not waited on', async () => {
    const fifo = join(dir, 'model.fifo');
    expect(makeFifo(fifo), 'mkfifo').toBe(true);
    await expectLoadError(fifo, DataError, 'INVALID_DATA', 'not a regular file');
    // Through a symbolic link too.
    const link = join(dir, 'model-link.moe');
    await symlink(fifo, link);
    await expectLoadError(link, DataError, 'INVALID_DATA', 'not a regular file');
  });

  it('a binary file that is not JSON gets the safetensors reader\'s precise error', async () => {
    // A header that says 1000 bytes in a 64-byte file: a safetensors file cut short.
    const bytes = Buffer.alloc(64, 0x20);
    bytes.writeBigUInt64LE(1000n, 0);
    bytes.write('{"__metadata__":', 8, 'utf8');
    const path = join(dir, 'cut.safetensors.bin');
    await writeFile(path, bytes);
    await expectLoadError(path, ModelFormatError, 'MODEL_FORMAT', 'truncated header');
  });
});

describe('sizes the JSON model file cannot hold', () => {
  it('writeModelFile refuses a model over 512 MiB as JSON before building it: an OptionError naming the path option and safetensors', async () => {
    // Stand-in arrays: only their lengths are read before the refusal.
    const huge = { length: 2 ** 28 } as unknown as Float32Array;
    const state = { ...classifier.state, params: { ...classifier.state.params, expertParams: huge } };
    const path = join(dir, 'huge.moe');
    const err = await writeModelFile(path, state, 'js').then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('path');
    expect((err as Error).message).toMatch(/MiB as a JSON model file.*safetensors/);
    // The estimate bounds the real size: a small model's file is within it.
    expect(classifierText.length).toBeLessThanOrEqual(jsonModelFileBytes(classifier.state.params));
    expect(classifierText.length).toBeGreaterThan(jsonModelFileBytes(classifier.state.params) - 64 * 1024);
    expect(existsSync(path)).toBe(false);
  });

  it('save() to a path ending in .safetensors writes the safetensors file, and load() reads it back exactly', async () => {
    const path = join(dir, 'vowels.SafeTensors');
    await classifier.save(path);
    const bytes = await readFile(path);
    expect(isSafetensors(bytes)).toBe(true);
    const back = await Mixture.load(path);
    for (const k of PARAM_ARRAYS) expect(same(back.params[k], classifier.params[k]), k).toBe(true);
    expect(back.training).toEqual(classifier.training);
  });
});

describe("Adam's second moment", () => {
  it('a negative value in an edited safetensors file → ModelFormatError naming it', async () => {
    const bytes = new Uint8Array(await classifier.toSafetensors());
    const layout = safetensorsLayout(classifier.config, 'adam');
    const v = layout.find((t) => t.name.includes('exp_avg_sq'));
    expect(v, 'an exp_avg_sq tensor').toBeDefined();
    const headerLen = Number(Buffer.from(bytes).readBigUInt64LE(0));
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLen)).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    const at = 8 + headerLen + header[v!.name]!.data_offsets[0];
    new DataView(bytes.buffer, bytes.byteOffset).setFloat32(at, -1, true);
    const path = join(dir, 'negative-v.safetensors');
    await writeFile(path, bytes);
    await expectLoadError(path, ModelFormatError, 'MODEL_FORMAT', "Adam's second moment is -1");
  });
});

describe('0.1.0 model files (format version 1) still load', () => {
  const expected = JSON.parse(readFileSync(fixture('model-v1-expected.json'), 'utf8')) as {
    vowels: { x: number[]; output: number[]; gate: number[]; labels: number[] };
    regression: { x: number[][]; output: number[]; gate: number[] };
  };
  const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number): number => {
    let worst = 0;
    for (let j = 0; j < b.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!) / (tol * (1 + Math.abs(b[j]!))));
    return worst;
  };

  it('predicts what 0.1.0 predicted (to float32 rounding of the new kernels) and keeps its training state', async () => {
    const m = await Mixture.load(fixture('model-v1-vowels.moe'));
    expect(m.training.step).toBe(30);
    expect(m.classNames).toEqual(['iy', 'ih', 'aa', 'ah']);
    const p = m.predict(Float32Array.from(expected.vowels.x));
    expect(Array.from(p.labels!)).toEqual(expected.vowels.labels);
    expect(close(p.output, expected.vowels.output, 1e-5)).toBeLessThanOrEqual(1);
    expect(close(p.gate, expected.vowels.gate, 1e-5)).toBeLessThanOrEqual(1);
    const r = await Mixture.load(fixture('model-v1-regression.moe'));
    const q = r.predict(expected.regression.x);
    expect(close(q.output, expected.regression.output, 1e-5)).toBeLessThanOrEqual(1);
  });

  it('its interleaved optimiser state becomes planar: a resumed fit continues, and a re-save is version 2', async () => {
    const m = await Mixture.load(fixture('model-v1-vowels.moe'));
    const raw = JSON.parse(readFileSync(fixture('model-v1-vowels.moe'), 'utf8')) as { params: { expertOpt: string } };
    const inter = new Float32Array(new Uint8Array(Buffer.from(raw.params.expertOpt, 'base64')).buffer);
    const n = m.params.expertParams.length;
    for (const j of [0, 1, n - 1]) {
      expect(m.params.expertOpt[j]).toBe(inter[2 * j]); // Adam's m
      expect(m.params.expertOpt[n + j]).toBe(inter[2 * j + 1]); // Adam's v
    }
    const vowels = await loadVowels({ seed: 1 });
    const fit = await m.fit(vowels.train, { epochs: 1, batchSize: 32 });
    expect(Number.isFinite(fit.finalLoss)).toBe(true);
    expect(m.training.epoch).toBe(4);
    const path = join(dir, 'resaved.moe');
    await m.save(path);
    expect((JSON.parse(await readFile(path, 'utf8')) as { version: number }).version).toBe(MODEL_FORMAT_VERSION);
  });
});

describe('atomic save', () => {
  it('leaves no temporary files after a successful save, and overwrites whole', async () => {
    const sub = join(dir, 'ok');
    await mkdir(sub);
    const path = join(sub, 'm.json');
    await classifier.save(path);
    await classifier.save(path);
    expect(await readdir(sub)).toEqual(['m.json']);
    expect(await readFile(path, 'utf8')).toBe(classifierText);
  });

  it('a save into a missing directory fails and leaves nothing behind', async () => {
    const before = (await readdir(dir)).sort();
    const missing = join(dir, 'no-such-dir');
    await expect(classifier.save(join(missing, 'm.json'))).rejects.toThrow();
    expect(existsSync(missing)).toBe(false);
    expect((await readdir(dir)).sort()).toEqual(before);
  });

  it('a save whose final rename fails removes its temporary file and keeps the target', async () => {
    // The target is a non-empty directory: writing the temporary file works, the rename cannot.
    const sub = join(dir, 'rename-fails');
    const target = join(sub, 'model.json');
    await mkdir(join(target, 'inside'), { recursive: true });
    await expect(classifier.save(target)).rejects.toThrow();
    expect(await readdir(sub)).toEqual(['model.json']);
    expect(await readdir(target)).toEqual(['inside']);
  });
});
