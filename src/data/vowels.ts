/**
 * The vowel task of Jacobs, Jordan, Nowlan & Hinton (1991): Peterson & Barney (1952)
 * formants F1, F2 (Hz) of the vowels iy, ih, aa, ah, split by speaker so no test voice was
 * heard in training.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataError, OptionError } from '../errors.js';
import { Rng } from '../rng.js';
import { columnIndices, numberCell, openCsv, parseNumber } from './csv.js';
import { subset, type Dataset } from './dataset.js';

/** The paper's four vowels, in label order. */
export const PAPER_VOWELS = ['iy', 'ih', 'aa', 'ah'] as const;

const FILE = 'peterson-barney-1952.csv';

/** Options of {@link loadVowels}. */
export interface VowelOptions {
  /** Seed of the speaker shuffle; default 1. */
  seed?: number;
  /** Fraction of speakers held out for test, in (0, 1); default 0.5. */
  testFraction?: number;
  /** Vowel codes to keep, in label order; default {@link PAPER_VOWELS}. */
  vowels?: readonly string[];
  /** Input columns (Hz); default ['F1', 'F2']. */
  features?: readonly string[];
  /** Another CSV with the same columns; default the copy shipped in data/. */
  file?: string;
}

/** What {@link loadVowels} returns: a speaker-disjoint train/test split (inputs in Hz). */
export interface VowelSplit {
  /** Rows of the training speakers. */
  train: Dataset;
  /** Rows of the held-out test speakers. */
  test: Dataset;
  /** Every selected row, in file order. */
  all: Dataset;
  /** Speaker ids (1-based, ascending) of the training side. */
  trainSpeakers: number[];
  /** Speaker ids (1-based, ascending) of the test side. */
  testSpeakers: number[];
}

let root: string | undefined;

/**
 * The package root: the first directory above this module holding data/peterson-barney-1952.csv.
 * Walks up because the module runs from src/data/ (vitest) and from dist/src/data/ (built).
 */
export function datasetRoot(): string {
  if (root !== undefined) return root;
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'data', FILE))) return (root = dir);
    if (dirname(dir) === dir) break;
  }
  throw new DataError(`data/${FILE} not found in any directory above ${start}`, { file: FILE }, 'FILE_NOT_FOUND');
}

/**
 * Load the vowel data and split its speakers into train and test. Inputs are raw formants
 * in Hz (n×D, D = features.length); labels index `vowels`. The split holds out
 * round(testFraction × speakers) speakers, drawn within each speaker type (m/w/c) in the
 * same proportion, so men, women and children are on both sides.
 */
export async function loadVowels(opts: VowelOptions = {}): Promise<VowelSplit> {
  const seed = opts.seed ?? 1;
  const testFraction = opts.testFraction ?? 0.5;
  const vowels = [...(opts.vowels ?? PAPER_VOWELS)];
  const features = [...(opts.features ?? ['F1', 'F2'])];
  if (!Number.isInteger(seed)) throw new OptionError('seed', `must be an integer, got ${seed}`);
  if (!(testFraction > 0 && testFraction < 1)) throw new OptionError('testFraction', `must be in (0, 1), got ${testFraction}`);
  if (vowels.length < 2 || new Set(vowels).size !== vowels.length) {
    throw new OptionError('vowels', 'name two or more different vowels');
  }
  if (features.length === 0 || new Set(features).size !== features.length) {
    throw new OptionError('features', 'name one or more different columns');
  }
  const path = opts.file ?? join(datasetRoot(), 'data', FILE);
  const source = basename(path);

  const { header, records } = await openCsv(path);
  const [typeCol, speakerCol, vowelCol] = columnIndices('file', ['Type', 'Speaker', 'Vowel'], header, source) as [number, number, number];
  const fi = columnIndices('features', features, header, source);

  const x: number[] = [];
  const labels: number[] = [];
  const speakerOfRow: number[] = [];
  const typeOf = new Map<number, string>();
  const seenVowels = new Set<string>();
  // 1520 rows: plain arrays are fine here; the streaming buffers are for user files.
  for await (const { row, values } of records) {
    const vowel = values[vowelCol]!;
    seenVowels.add(vowel);
    const label = vowels.indexOf(vowel);
    if (label < 0) continue;
    const speaker = parseNumber(values[speakerCol]!);
    if (!(Number.isInteger(speaker) && speaker >= 1)) {
      throw new DataError(`speaker "${values[speakerCol]}" is not a positive integer`, { file: source, row, column: 'Speaker' });
    }
    const type = values[typeCol]!;
    if ((typeOf.get(speaker) ?? type) !== type) {
      throw new DataError(`speaker ${speaker} is listed as both "${typeOf.get(speaker)}" and "${type}"`, { file: source, row, column: 'Type' });
    }
    typeOf.set(speaker, type);
    for (let j = 0; j < fi.length; j++) x.push(numberCell(values[fi[j]!]!, source, row, features[j]!));
    labels.push(label);
    speakerOfRow.push(speaker);
  }
  const missing = vowels.filter((v) => !seenVowels.has(v));
  if (missing.length > 0) {
    throw new OptionError('vowels', `${missing.join(', ')} not in ${source}; available: ${[...seenVowels].join(', ')}`);
  }

  const all: Dataset = {
    task: 'classification',
    n: labels.length,
    inputs: features.length,
    x: Float32Array.from(x),
    outputs: vowels.length,
    labels: Int32Array.from(labels),
    featureNames: features,
    targetNames: ['Vowel'],
    classNames: vowels,
    source,
  };

  const test = new Set(splitSpeakers(typeOf, testFraction, seed));
  if (test.size === 0 || test.size === typeOf.size) {
    throw new OptionError('testFraction', `${testFraction} of ${typeOf.size} speakers leaves one side empty`);
  }
  const trainRows: number[] = [];
  const testRows: number[] = [];
  speakerOfRow.forEach((s, r) => (test.has(s) ? testRows : trainRows).push(r));
  const ids = [...typeOf.keys()].sort((a, b) => a - b);
  return {
    train: subset(all, trainRows),
    test: subset(all, testRows),
    all,
    trainSpeakers: ids.filter((s) => !test.has(s)),
    testSpeakers: ids.filter((s) => test.has(s)),
  };
}

/**
 * The held-out speakers: round(fraction × total), shared among the types by largest
 * remainder (so the total is exact while each type is split in nearly the same
 * proportion), each type's speakers shuffled by one Rng in a fixed type order.
 */
function splitSpeakers(typeOf: ReadonlyMap<number, string>, fraction: number, seed: number): number[] {
  const groups = new Map<string, number[]>();
  for (const [s, t] of [...typeOf].sort((a, b) => a[0] - b[0])) {
    if (!groups.has(t)) groups.set(t, []);
    groups.get(t)!.push(s);
  }
  const list = [...groups.values()];
  const quota = list.map((g) => fraction * g.length);
  const take = quota.map(Math.floor);
  let left = Math.round(fraction * typeOf.size) - take.reduce((a, b) => a + b, 0);
  // Ties in remainder go to the type of the lowest speaker id, so the split is reproducible.
  const order = list.map((_, i) => i).sort((a, b) => quota[b]! - take[b]! - (quota[a]! - take[a]!) || a - b);
  for (const i of order) if (left-- > 0) take[i]!++;
  const rng = new Rng(seed);
  return list.flatMap((g, i) => rng.shuffle([...g]).slice(0, take[i]));
}
