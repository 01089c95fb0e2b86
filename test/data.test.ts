import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCsv, parseNumber, type CsvOptions } from '../src/data/csv.js';
import { validateDataset, type Dataset } from '../src/data/dataset.js';
import { datasetRoot, loadVowels, PAPER_VOWELS } from '../src/data/vowels.js';
import { DataError, OptionError, type MoeErrorCode } from '../src/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-data-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCount = 0;
/** Write `text` to a fresh file in the temp dir and return its path. */
async function csv(text: string): Promise<string> {
  const path = join(dir, `f${fileCount++}.csv`);
  await writeFile(path, text, 'utf8');
  return path;
}

/** Await `p`, expect it to reject with `cls` and `code`, a one-line message holding every part. */
async function expectError(
  p: Promise<unknown>,
  cls: typeof DataError | typeof OptionError,
  code: MoeErrorCode,
  parts: string[],
): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(cls);
  const e = err as DataError;
  expect(e.code).toBe(code);
  expect(e.message).not.toContain('\n');
  for (const part of parts) expect(e.message).toContain(part);
  return e;
}

const countLabels = (labels: Int32Array, classes: number): number[] => {
  const c = new Array<number>(classes).fill(0);
  for (const l of labels) c[l]!++;
  return c;
};

describe('parseNumber', () => {
  it('accepts decimal and exponent notation', () => {
    expect(parseNumber('0')).toBe(0);
    expect(parseNumber('-1.5')).toBe(-1.5);
    expect(parseNumber('+2')).toBe(2);
    expect(parseNumber('.5')).toBe(0.5);
    expect(parseNumber('3.')).toBe(3);
    expect(parseNumber('1e3')).toBe(1000);
    expect(parseNumber('2.5E-2')).toBe(0.025);
  });
  it('rejects everything else', () => {
    for (const s of ['', ' ', '0x10', '0b1', '1_000', 'abc', '1,5', '1e', 'e3', '.', '-', 'NaN', 'Infinity', ' 1', '1 ']) {
      expect(parseNumber(s), JSON.stringify(s)).toBeNaN();
    }
  });
});

describe('loadCsv', () => {
  it('reads quoted headers, string labels in order of first appearance', async () => {
    const path = await csv('"a","b c","label"\n1,2,cat\n3,4,dog\n5,6,cat\n7,8,"emu, large"\n');
    const ds = await loadCsv(path, { target: ['label'], task: 'classification' });
    validateDataset(ds);
    expect(ds.task).toBe('classification');
    expect(ds.n).toBe(4);
    expect(ds.inputs).toBe(2);
    expect(ds.featureNames).toEqual(['a', 'b c']);
    expect(ds.targetNames).toEqual(['label']);
    expect(ds.classNames).toEqual(['cat', 'dog', 'emu, large']);
    expect(ds.outputs).toBe(3);
    expect(Array.from(ds.labels!)).toEqual([0, 1, 0, 2]);
    expect(Array.from(ds.x)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(ds.source).toBe(path);
    expect(ds.y).toBeUndefined();
  });

  it('handles a BOM, CRLF, whitespace around values, blank lines and no final newline', async () => {
    const path = await csv('\ufeff a , "b" ,y\r\n 1 , 2.5 ,3\r\n\r\n4,5e1, -6 \r\n7,8,9');
    const ds = await loadCsv(path, { target: ['y'], task: 'regression' });
    validateDataset(ds);
    expect(ds.featureNames).toEqual(['a', 'b']);
    expect(ds.n).toBe(3);
    expect(Array.from(ds.x)).toEqual([1, 2.5, 4, 50, 7, 8]);
    expect(Array.from(ds.y!)).toEqual([3, -6, 9]);
    expect(ds.outputs).toBe(1);
    expect(ds.labels).toBeUndefined();
    expect(ds.classNames).toBeUndefined();
  });

  it('takes a subset of features in the order given', async () => {
    const path = await csv('a,b,c,y\n1,2,3,0\n4,5,6,1\n');
    const ds = await loadCsv(path, { target: ['y'], features: ['c', 'a'], task: 'classification' });
    expect(ds.featureNames).toEqual(['c', 'a']);
    expect(ds.inputs).toBe(2);
    expect(Array.from(ds.x)).toEqual([3, 1, 6, 4]);
    expect(ds.classNames).toEqual(['0', '1']);
  });

  it('reads two regression targets row-major', async () => {
    const path = await csv('u,x,v\n10,1,20\n11,2,21\n12,3,22\n');
    const ds = await loadCsv(path, { target: ['v', 'u'], task: 'regression' });
    validateDataset(ds);
    expect(ds.featureNames).toEqual(['x']);
    expect(ds.targetNames).toEqual(['v', 'u']);
    expect(ds.outputs).toBe(2);
    expect(Array.from(ds.y!)).toEqual([20, 10, 21, 11, 22, 12]);
    expect(Array.from(ds.x)).toEqual([1, 2, 3]);
  });

  it('uses fixed classNames for label order and width', async () => {
    const path = await csv('x,y\n1,dog\n2,cat\n3,dog\n');
    const ds = await loadCsv(path, { target: ['y'], task: 'classification', classNames: ['emu', 'cat', 'dog'] });
    validateDataset(ds);
    expect(ds.classNames).toEqual(['emu', 'cat', 'dog']);
    expect(ds.outputs).toBe(3);
    expect(Array.from(ds.labels!)).toEqual([2, 1, 2]);
    // A single class present is fine when the classes are fixed (e.g. predicting).
    const one = await loadCsv(await csv('x,y\n1,cat\n'), { target: ['y'], task: 'classification', classNames: ['cat', 'dog'] });
    expect(Array.from(one.labels!)).toEqual([0]);
  });

  it('with requireTarget: false, reads a missing target as absent and a present one as usual', async () => {
    const noTarget = await csv('a,b\n1,2\n3,4\n');
    const reg = await loadCsv(noTarget, { target: ['y'], task: 'regression', requireTarget: false });
    expect(reg).toMatchObject({ n: 2, inputs: 2, outputs: 1, featureNames: ['a', 'b'], targetNames: [] });
    expect(Array.from(reg.x)).toEqual([1, 2, 3, 4]);
    expect(reg.y).toBeUndefined();
    const cls = await loadCsv(noTarget, { target: ['y'], task: 'classification', classNames: ['cat', 'dog'], requireTarget: false });
    expect(cls).toMatchObject({ outputs: 2, classNames: ['cat', 'dog'] });
    expect(cls.labels).toBeUndefined();
    // No target at all: every column is an input.
    expect((await loadCsv(noTarget, { target: [], task: 'regression', requireTarget: false })).inputs).toBe(2);

    // Present: never an input, and checked like any target.
    const withTarget = await csv('a,y,b\n1,cat,2\n3,cat,4\n');
    const one = await loadCsv(withTarget, { target: ['y'], task: 'classification', requireTarget: false });
    expect(one.featureNames).toEqual(['a', 'b']);
    expect(Array.from(one.labels!)).toEqual([0, 0]);
    await expectError(
      loadCsv(withTarget, { target: ['y'], task: 'classification', classNames: ['dog', 'emu'], requireTarget: false }),
      DataError,
      'INVALID_DATA',
      ['row 1', 'column y', '"cat"'],
    );
    await expectError(loadCsv(withTarget, { target: ['y'], task: 'regression', requireTarget: false }), DataError, 'INVALID_DATA', ['row 1', 'column y', '"cat"']);
    // Without requireTarget: false a missing target is still an OptionError.
    await expectError(loadCsv(noTarget, { target: ['y'], task: 'regression' }), OptionError, 'INVALID_OPTION', ['target', '"y"']);
  });

  it('returns exact-length buffers after growing past the initial capacity', async () => {
    const rows = Array.from({ length: 3000 }, (_, r) => `${r},${r * 2},${r % 2 ? 'odd' : 'even'}`);
    const ds = await loadCsv(await csv(`a,b,y\n${rows.join('\n')}\n`), { target: ['y'], task: 'classification' });
    expect(ds.n).toBe(3000);
    expect(ds.x.length).toBe(6000);
    expect(ds.x.buffer.byteLength).toBe(6000 * 4);
    expect(ds.labels!.length).toBe(3000);
    expect(ds.x[2 * 2999 + 1]).toBe(5998);
    expect(countLabels(ds.labels!, 2)).toEqual([1500, 1500]);
  });

  it('streams a 200 000 × 32 file with memory a few times its float32 size', async () => {
    const path = join(dir, 'big.csv');
    const ws = createWriteStream(path);
    ws.write(`${Array.from({ length: 32 }, (_, j) => `x${j}`).join(',')},y\n`);
    for (let r = 0; r < 200_000; r += 1000) {
      let s = '';
      for (let q = r; q < r + 1000; q++) {
        const row: number[] = [];
        for (let j = 0; j < 32; j++) row.push(((q * 31 + j * 7) % 1000) / 10);
        s += `${row.join(',')},${q % 3}\n`;
      }
      if (!ws.write(s)) await new Promise<void>((res) => ws.once('drain', () => res()));
    }
    await new Promise<void>((res) => ws.end(() => res()));

    const base = process.memoryUsage();
    let peak = 0;
    const poll = setInterval(() => {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers);
    }, 5);
    let ds: Dataset;
    try {
      ds = await loadCsv(path, { target: ['y'], task: 'classification' });
    } finally {
      clearInterval(poll);
    }
    expect(ds.n).toBe(200_000);
    expect(ds.inputs).toBe(32);
    expect(ds.outputs).toBe(3);
    const q = 123_456, j = 17;
    expect(ds.x[q * 32 + j]).toBeCloseTo(((q * 31 + j * 7) % 1000) / 10, 4);
    expect(ds.labels![q]).toBe(q % 3);
    // The file is ~60 MB of text and 25.6 MB as float32; holding its lines or string
    // records at once would cost several hundred MB.
    expect(peak).toBeLessThan(6 * ds.x.byteLength);
  }, 60_000);

  describe('errors', () => {
    it('missing file', async () => {
      const path = join(dir, 'nope.csv');
      const e = await expectError(loadCsv(path, { target: ['y'], task: 'regression' }), DataError, 'FILE_NOT_FOUND', [path, 'not found']);
      expect((e as DataError).location.file).toBe(path);
    });

    it('empty file, BOM-only file, header only', async () => {
      const opts: CsvOptions = { target: ['y'], task: 'regression' };
      for (const text of ['', '\ufeff', '\n\n']) {
        const path = await csv(text);
        await expectError(loadCsv(path, opts), DataError, 'DATA_SHAPE', [path, 'empty']);
      }
      const path = await csv('x,y\r\n');
      await expectError(loadCsv(path, opts), DataError, 'DATA_SHAPE', [path, 'no data rows']);
    });

    it('ragged rows name the data row and line', async () => {
      const path = await csv('x,y\n1,2\n\n3,4,5\n6,7\n');
      const e = await expectError(loadCsv(path, { target: ['y'], task: 'regression' }), DataError, 'CSV_PARSE', [
        path,
        'row 2',
        '3 fields',
        'header has 2',
        'line 4',
      ]);
      expect((e as DataError).location.row).toBe(2);
      await expectError(loadCsv(await csv('x,y\n1,2\n3\n'), { target: ['y'], task: 'regression' }), DataError, 'CSV_PARSE', ['row 2', '1 fields']);
    });

    it('bad quoting is a CSV_PARSE DataError', async () => {
      const path = await csv('x,y\n1,2\n3,"4\n');
      await expectError(loadCsv(path, { target: ['y'], task: 'regression' }), DataError, 'CSV_PARSE', [path, 'row 2']);
      const path2 = await csv('x,y\n1,"2"z\n');
      await expectError(loadCsv(path2, { target: ['y'], task: 'regression' }), DataError, 'CSV_PARSE', [path2, 'row 1']);
    });

    it('non-numeric feature cell quotes the value', async () => {
      const path = await csv('a,b,y\n1,2,3\n4,abc,6\n');
      const e = await expectError(loadCsv(path, { target: ['y'], task: 'regression' }), DataError, 'INVALID_DATA', [
        path,
        'row 2',
        'column b',
        '"abc"',
        'not a number',
      ]);
      expect((e as DataError).location).toEqual({ file: path, row: 2, column: 'b' });
      await expectError(loadCsv(await csv('a,y\n0x10,1\n'), { target: ['y'], task: 'regression' }), DataError, 'INVALID_DATA', ['row 1', 'column a', '"0x10"']);
    });

    it('non-numeric regression target', async () => {
      const path = await csv('a,y\n1,2\n3,high\n');
      await expectError(loadCsv(path, { target: ['y'], task: 'regression' }), DataError, 'INVALID_DATA', [path, 'row 2', 'column y', '"high"']);
    });

    it.each(['NaN', 'nan', 'Inf', '-Inf', 'Infinity', '+infinity', '1e39', '-1e400'])('%s is not finite', async (v) => {
      const path = await csv(`a,b,y\n1,2,3\n4,5,6\n7,${v},9\n`);
      await expectError(loadCsv(path, { target: ['y'], task: 'regression' }), DataError, 'INVALID_DATA', [
        path,
        'row 3',
        'column b',
        `"${v}"`,
        'not finite',
      ]);
    });

    it('non-finite target', async () => {
      const path = await csv('a,y\n1,Inf\n');
      await expectError(loadCsv(path, { target: ['y'], task: 'regression' }), DataError, 'INVALID_DATA', ['row 1', 'column y', 'not finite']);
    });

    it('empty cells in features and labels', async () => {
      const path = await csv('a,b,y\n1,2,x\n3,,y\n');
      await expectError(loadCsv(path, { target: ['y'], task: 'classification' }), DataError, 'INVALID_DATA', [path, 'row 2', 'column b', 'empty']);
      const path2 = await csv('a,y\n1,x\n3,y\n4, \n');
      await expectError(loadCsv(path2, { target: ['y'], task: 'classification' }), DataError, 'INVALID_DATA', [path2, 'row 3', 'column y', 'empty']);
    });

    it('unknown target or feature lists the available columns', async () => {
      const path = await csv('a,b,y\n1,2,3\n');
      const e = await expectError(loadCsv(path, { target: ['z'], task: 'regression' }), OptionError, 'INVALID_OPTION', ['target', '"z"', 'a, b, y']);
      expect((e as OptionError).option).toBe('target');
      const f = await expectError(loadCsv(path, { target: ['y'], features: ['a', 'q'], task: 'regression' }), OptionError, 'INVALID_OPTION', [
        'features',
        '"q"',
        'a, b, y',
      ]);
      expect((f as OptionError).option).toBe('features');
    });

    it('a target that is also a feature, and other bad column choices', async () => {
      const path = await csv('a,b,y\n1,2,3\n');
      await expectError(loadCsv(path, { target: ['y'], features: ['a', 'y'], task: 'regression' }), OptionError, 'INVALID_OPTION', ['features', '"y"', 'target']);
      await expectError(loadCsv(path, { target: [], task: 'regression' }), OptionError, 'INVALID_OPTION', ['target']);
      await expectError(loadCsv(path, { target: ['a', 'y'], task: 'classification' }), OptionError, 'INVALID_OPTION', ['target', 'one']);
      await expectError(loadCsv(path, { target: ['a', 'b', 'y'], task: 'regression' }), OptionError, 'INVALID_OPTION', ['features', 'a, b, y']);
    });

    it('duplicate header names', async () => {
      const path = await csv('a,a,y\n1,2,3\n');
      await expectError(loadCsv(path, { target: ['y'], task: 'regression' }), DataError, 'INVALID_DATA', [path, '"a" twice']);
    });

    it('a single class', async () => {
      const path = await csv('a,y\n1,x\n2,x\n');
      await expectError(loadCsv(path, { target: ['y'], task: 'classification' }), DataError, 'INVALID_DATA', [path, 'only one class', '"x"']);
    });

    it('a label outside fixed classNames names file, row, column and value', async () => {
      const path = await csv('a,y\n1,cat\n2,dog\n3,emu\n');
      const e = await expectError(
        loadCsv(path, { target: ['y'], task: 'classification', classNames: ['cat', 'dog'] }),
        DataError,
        'INVALID_DATA',
        [path, 'row 3', 'column y', '"emu"'],
      );
      expect((e as DataError).location).toEqual({ file: path, row: 3, column: 'y' });
      await expectError(loadCsv(path, { target: ['y'], task: 'classification', classNames: ['cat'] }), OptionError, 'INVALID_OPTION', ['classNames']);
    });
  });
});

describe('loadVowels', () => {
  it('finds the shipped CSV from the package root', () => {
    expect(existsSync(join(datasetRoot(), 'data', 'peterson-barney-1952.csv'))).toBe(true);
  });

  it('gives 608 rows of the four vowels with F1, F2 in Hz', async () => {
    const { all, train, test } = await loadVowels();
    expect(all.n).toBe(608);
    for (const ds of [all, train, test]) {
      validateDataset(ds);
      expect(ds.task).toBe('classification');
      expect(ds.classNames).toEqual([...PAPER_VOWELS]);
      expect(ds.featureNames).toEqual(['F1', 'F2']);
      expect(ds.outputs).toBe(4);
      expect(ds.inputs).toBe(2);
      expect(ds.source).toBe('peterson-barney-1952.csv');
    }
    // First row of the file: speaker 1, iy, F1 240 Hz, F2 2280 Hz.
    expect(Array.from(all.x.subarray(0, 2))).toEqual([240, 2280]);
    expect(all.labels![0]).toBe(0);
    expect(countLabels(all.labels!, 4)).toEqual([152, 152, 152, 152]);
    expect(train.n + test.n).toBe(608);
  });

  it('splits speakers disjointly, half of each type, with 8 rows per speaker', async () => {
    const { train, test, trainSpeakers, testSpeakers } = await loadVowels({ seed: 7 });
    expect(trainSpeakers.length).toBe(38);
    expect(testSpeakers.length).toBe(38);
    expect(trainSpeakers.filter((s) => testSpeakers.includes(s))).toEqual([]);
    expect([...trainSpeakers, ...testSpeakers].sort((a, b) => a - b)).toEqual(Array.from({ length: 76 }, (_, i) => i + 1));
    // Speakers 1–33 are men, 34–61 women, 62–76 children.
    const inRange = (ids: number[], lo: number, hi: number): number => ids.filter((s) => s >= lo && s <= hi).length;
    expect(inRange(testSpeakers, 1, 33)).toBeGreaterThanOrEqual(16);
    expect(inRange(testSpeakers, 1, 33)).toBeLessThanOrEqual(17);
    expect(inRange(testSpeakers, 34, 61)).toBe(14);
    expect(inRange(testSpeakers, 62, 76)).toBeGreaterThanOrEqual(7);
    expect(inRange(testSpeakers, 62, 76)).toBeLessThanOrEqual(8);
    // Every speaker says each vowel twice.
    expect(train.n).toBe(8 * trainSpeakers.length);
    expect(test.n).toBe(8 * testSpeakers.length);
    expect(countLabels(train.labels!, 4)).toEqual([76, 76, 76, 76]);
    expect(countLabels(test.labels!, 4)).toEqual([76, 76, 76, 76]);
  });

  it('is reproducible by seed and differs between seeds', async () => {
    const a = await loadVowels({ seed: 3 });
    const b = await loadVowels({ seed: 3 });
    const c = await loadVowels({ seed: 4 });
    expect(b.testSpeakers).toEqual(a.testSpeakers);
    expect(Array.from(b.test.x)).toEqual(Array.from(a.test.x));
    expect(c.testSpeakers).not.toEqual(a.testSpeakers);
    const d = await loadVowels();
    const e = await loadVowels({ seed: 1 });
    expect(d.testSpeakers).toEqual(e.testSpeakers);
  });

  it('honours testFraction, vowels and features', async () => {
    const q = await loadVowels({ testFraction: 0.25 });
    expect(q.testSpeakers.length).toBe(19);
    expect(q.trainSpeakers.length).toBe(57);
    const v = await loadVowels({ vowels: ['uw', 'iy', 'er'], features: ['F0', 'F1', 'F2', 'F3'] });
    expect(v.all.n).toBe(456);
    expect(v.all.classNames).toEqual(['uw', 'iy', 'er']);
    expect(v.all.inputs).toBe(4);
    expect(Array.from(v.all.x.subarray(0, 4))).toEqual([160, 240, 2280, 2850]);
    expect(v.all.labels![0]).toBe(1);
  });

  it('rejects bad options', async () => {
    await expectError(loadVowels({ testFraction: 0 }), OptionError, 'INVALID_OPTION', ['testFraction']);
    await expectError(loadVowels({ testFraction: 1 }), OptionError, 'INVALID_OPTION', ['testFraction']);
    await expectError(loadVowels({ testFraction: 0.001 }), OptionError, 'INVALID_OPTION', ['testFraction', 'empty']);
    await expectError(loadVowels({ vowels: ['iy', 'zz'] }), OptionError, 'INVALID_OPTION', ['vowels', 'zz', 'aa']);
    await expectError(loadVowels({ features: ['F9'] }), OptionError, 'INVALID_OPTION', ['features', 'F9', 'F1']);
  });
});
