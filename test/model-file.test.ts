/**
 * The model file: a round trip is exact (predictions, parameters, optimiser and training
 * state), every kind of damaged or foreign file is refused with a typed error and code,
 * and saving is atomic (no partial file, no temporary files left behind).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetFromArrays } from '../src/data/dataset.js';
import { loadVowels } from '../src/data/vowels.js';
import { DataError, ModelFormatError, type MoeError, type MoeErrorCode } from '../src/errors.js';
import { MODEL_FORMAT_VERSION } from '../src/io/model-file.js';
import { Mixture } from '../src/mixture.js';
import { testRandom } from './helpers/backends.js';

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

  it('an invalid configuration or training state → MODEL_FORMAT', async () => {
    const doc = JSON.parse(classifierText) as { config: { experts: number }; training: { rng: number[] } };
    await expectLoadError(await fileWith(JSON.stringify({ ...doc, config: { ...doc.config, experts: 0 } })), ModelFormatError, 'MODEL_FORMAT', 'configuration');
    await expectLoadError(await fileWith(JSON.stringify({ ...doc, training: { ...doc.training, rng: [1] } })), ModelFormatError, 'MODEL_FORMAT', 'training state');
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
