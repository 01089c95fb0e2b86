/**
 * Data loading at its limits: large arrays, ragged arrays, files that never end or have
 * no line breaks, huge header names and values in messages, and a header lookup that is
 * linear in the column count (counted, not timed).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { columnIndices, ColumnNotFoundError, loadCsv } from '../src/data/csv.js';
import { datasetFromArrays, validateDataset } from '../src/data/dataset.js';
import { cutValue, DataError, listValues, OptionError, quoteValue } from '../src/errors.js';
import { rejection } from './helpers/rejection.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-limits-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('datasetFromArrays', () => {
  it('takes 300 000 classification rows without `classes` (no spread of the labels into arguments)', () => {
    const n = 300_000;
    const xs = Array.from({ length: n }, (_, i) => [i % 17, (i * 7) % 13]);
    const labels = Array.from({ length: n }, (_, i) => (i * 31) % 5);
    const ds = datasetFromArrays('classification', xs, labels);
    expect(ds.n).toBe(n);
    expect(ds.outputs).toBe(5);
    expect(ds.labels![n - 1]).toBe(((n - 1) * 31) % 5);
    validateDataset(ds);
  });

  it('a ragged target row is a DataError naming the row', () => {
    const xs = [[1], [2], [3]];
    const err = (() => {
      try {
        datasetFromArrays('regression', xs, [[1, 2], [3, 4], [5, 6, 7]]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(DataError);
    expect((err as DataError).code).toBe('DATA_SHAPE');
    expect((err as DataError).location.row).toBe(3);
    expect((err as Error).message).toMatch(/row 3: has 3 targets, row 1 has 2/);
  });

  it('a ragged input row, a count mismatch and a non-integer label are DataErrors naming what is wrong', () => {
    expect(() => datasetFromArrays('regression', [[1, 2], [3]], [[1], [2]])).toThrow(/row 2: has 1 inputs, row 1 has 2/);
    expect(() => datasetFromArrays('regression', [[1], [2]], [[1]])).toThrow(DataError);
    expect(() => datasetFromArrays('classification', [[1], [2]], [0, 1, 1])).toThrow(/3 labels for 2 input rows/);
    expect(() => datasetFromArrays('classification', [[1], [2]], [0, 1.5])).toThrow(/row 2: label 1.5 is not an integer/);
  });
});

describe('CSV files that never end or have no line breaks', () => {
  it('/dev/zero: a DataError naming the file, at once (NUL bytes are never CSV text)', async (ctx) => {
    if (!existsSync('/dev/zero')) ctx.skip('this system has no /dev/zero, so an endless file of NUL bytes is not tested here');
    const err = await rejection(loadCsv('/dev/zero', { target: ['y'], task: 'regression' }));
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toMatch(/^\/dev\/zero: holds a NUL byte at byte 1: not a text CSV file/);
  });

  it('a record longer than maxRecordChars: a DataError naming the file and row', async () => {
    const path = join(dir, 'long-line.csv');
    await writeFile(path, `a,y\n1,2\n0.${'0'.repeat(5000)}1,3\n4,5\n`);
    const err = await rejection(loadCsv(path, { target: ['y'], task: 'regression', maxRecordChars: 1000 }));
    expect(err).toBeInstanceOf(DataError);
    expect((err as DataError).location).toMatchObject({ file: path, row: 2 });
    expect(err.message).toContain('longer than 1000 characters');
    // The same file loads with the default cap.
    expect((await loadCsv(path, { target: ['y'], task: 'regression' })).n).toBe(3);
  });

  it('a header without a line break, longer than the cap: the error says so', async () => {
    const path = join(dir, 'long-header.csv');
    await writeFile(path, 'x'.repeat(3000));
    const err = await rejection(loadCsv(path, { target: ['y'], task: 'regression', maxRecordChars: 1000 }));
    expect(err.message).toMatch(/row 0: the header \(line 1\) is longer than 1000 characters/);
  });

  it('a named pipe (FIFO) still works', async (ctx) => {
    const fifo = join(dir, 'pipe.csv');
    const mk = spawn('mkfifo', [fifo]);
    const ok = await new Promise<boolean>((res) => {
      mk.on('error', () => res(false));
      mk.on('close', (code) => res(code === 0));
    });
    if (!ok) ctx.skip('mkfifo is missing or failed on this system, so reading a named pipe is not tested here');
    // A writer in another process, as a shell pipe would be.
    const writer = spawn('sh', ['-c', `printf 'a,y\\n1,2\\n3,4\\n' > '${fifo}'`]);
    const written = new Promise((res) => writer.on('close', res));
    const ds = await loadCsv(fifo, { target: ['y'], task: 'regression' });
    expect(ds.n).toBe(2);
    expect(Array.from(ds.y!)).toEqual([2, 4]);
    expect(await written).toBe(0);
  });
});

describe('long values are cut in messages', () => {
  it('quoteValue, cutValue and listValues keep a message short and say how long the value was', () => {
    expect(quoteValue('abc')).toBe('"abc"');
    expect(quoteValue('a\nb')).toBe('"a\\nb"');
    const big = 'x'.repeat(1_000_000);
    expect(quoteValue(big)).toBe(`"${'x'.repeat(80)}…" (1000000 chars)`);
    expect(cutValue(big)).toBe(`${'x'.repeat(80)}…(1000000 chars)`);
    expect(cutValue('short')).toBe('short');
    const names = Array.from({ length: 100_000 }, (_, j) => `f${j}`);
    const list = listValues(names);
    expect(list.length).toBeLessThan(260);
    expect(list).toMatch(/^f0, f1, .*, … \(100000 in all\)$/);
    expect(listValues(['a', 'b'])).toBe('a, b');
  });

  it('a 1 MB header name and a 1 MB cell give errors of a few hundred characters', async () => {
    const name = 'h'.repeat(1_000_000);
    const path = join(dir, 'big-header.csv');
    await writeFile(path, `${name},y\n1,2\n`);
    const missing = await rejection(loadCsv(path, { target: ['label'], task: 'classification' }));
    expect(missing).toBeInstanceOf(ColumnNotFoundError);
    expect(missing.message).toContain('no column "label"');
    expect(missing.message).toContain('(1000000 chars)');
    expect(missing.message.length).toBeLessThan(400);

    const cellPath = join(dir, 'big-cell.csv');
    await writeFile(cellPath, `${name},y\n${'z'.repeat(1_000_000)},2\n`);
    const cell = await rejection(loadCsv(cellPath, { target: ['y'], task: 'regression' }));
    expect(cell).toBeInstanceOf(DataError);
    expect(cell.message).toContain('is not a number');
    expect(cell.message.length).toBeLessThan(400);

    const labelPath = join(dir, 'big-label.csv');
    await writeFile(labelPath, `a,label\n1,low\n2,${'q'.repeat(1_000_000)}\n`);
    const label = await rejection(loadCsv(labelPath, { target: ['label'], task: 'classification', classNames: ['low', 'high'] }));
    expect(label.message).toContain('is not one of the fixed classes');
    expect(label.message.length).toBeLessThan(400);
  });
});

describe('header lookup', () => {
  /** A header whose element reads are counted (indexOf over it reads every element it passes). */
  function countingHeader(names: string[]): { header: string[]; reads: () => number } {
    let reads = 0;
    const header = new Proxy(names, {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    return { header, reads: () => reads };
  }

  it('reads each header name a bounded number of times: linear, not quadratic, in the column count', () => {
    const H = 4000;
    const names = Array.from({ length: H }, (_, j) => `c${j}`);
    const { header, reads } = countingHeader(names);
    const wanted = [...names].reverse();
    const idx = columnIndices('features', wanted, header, 'wide.csv');
    expect(idx[0]).toBe(H - 1);
    expect(idx[H - 1]).toBe(0);
    // indexOf per name would read about H²/2 = 8 000 000 elements here.
    expect(reads()).toBeLessThanOrEqual(2 * H);
  });

  it('a 100 000-column header loads, every column in order', async () => {
    const D = 100_000;
    const path = join(dir, 'wide.csv');
    const head = [...Array.from({ length: D }, (_, j) => `f${j}`), 'y'].join(',');
    const row = Array.from({ length: D + 1 }, (_, j) => String(j % 7)).join(',');
    await writeFile(path, `${head}\n${row}\n`);
    const ds = await loadCsv(path, { target: ['y'], task: 'regression' });
    expect(ds.inputs).toBe(D);
    expect(ds.featureNames![D - 1]).toBe(`f${D - 1}`);
    expect(ds.x[D - 1]).toBe((D - 1) % 7);
  });

  it('a missing column is an OptionError naming the option and the column', () => {
    const err = (() => {
      try {
        columnIndices('target', ['nope'], ['a', 'b'], 'f.csv');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(OptionError);
    expect(err).toBeInstanceOf(ColumnNotFoundError);
    expect((err as ColumnNotFoundError).column).toBe('nope');
    expect((err as Error).message).toBe('target: no column "nope" in f.csv; available: a, b');
  });
});
