/**
 * Errors that cross a thread boundary: errorToWire → structured clone (what postMessage
 * does) → errorFromWire must give back the class, code, message and option name.
 */
import { describe, expect, it } from 'vitest';
import {
  BackendError,
  DataError,
  errorFromWire,
  errorToWire,
  ModelFormatError,
  MoeError,
  OptionError,
  ShardCrashError,
  ShardStallError,
  type WireError,
} from '../src/errors.js';

/** Through the wire form and a structured clone, as a worker's reply travels. */
function roundTrip(err: unknown): MoeError {
  return errorFromWire(structuredClone(errorToWire(err)));
}

describe('errorToWire / errorFromWire', () => {
  it('OptionError keeps its class and option name, and the message is not prefixed twice', () => {
    const e = new OptionError('batchSize', 'must be an integer ≥ 1, got 0');
    expect(errorToWire(e)).toMatchObject({ code: 'INVALID_OPTION', option: 'batchSize' });
    const back = roundTrip(e);
    expect(back).toBeInstanceOf(OptionError);
    expect((back as OptionError).option).toBe('batchSize');
    expect(back.code).toBe('INVALID_OPTION');
    expect(back.message).toBe('batchSize: must be an integer ≥ 1, got 0');
  });

  it('an INVALID_OPTION without an option name stays a MoeError with that code', () => {
    const back = errorFromWire({ code: 'INVALID_OPTION', name: 'OptionError', message: 'x: bad' });
    expect(back).not.toBeInstanceOf(OptionError);
    expect(back).toMatchObject({ code: 'INVALID_OPTION', message: 'x: bad' });
  });

  it.each(['INVALID_DATA', 'DATA_SHAPE', 'FILE_NOT_FOUND', 'CSV_PARSE'] as const)('DataError with code %s', (code) => {
    const e = new DataError('"abc" is not a number', { file: 'd.csv', row: 3, column: 'b' }, code);
    const back = roundTrip(e);
    expect(back).toBeInstanceOf(DataError);
    expect(back.code).toBe(code);
    expect(back.message).toBe('d.csv, row 3, column b: "abc" is not a number');
  });

  it.each(['MODEL_FORMAT', 'MODEL_VERSION'] as const)('ModelFormatError with code %s', (code) => {
    const back = roundTrip(new ModelFormatError('m.moe: checksum mismatch', code));
    expect(back).toBeInstanceOf(ModelFormatError);
    expect(back).toMatchObject({ code, message: 'm.moe: checksum mismatch' });
  });

  it('BackendError', () => {
    const back = roundTrip(new BackendError('backend blas did not load: no libopenblas'));
    expect(back).toBeInstanceOf(BackendError);
    expect(back).toMatchObject({ code: 'BACKEND_UNAVAILABLE', message: 'backend blas did not load: no libopenblas' });
  });

  it('ShardCrashError comes back as a MoeError with code SHARD_CRASHED and the same message', () => {
    const e = new ShardCrashError(1, [2, 3], 'forward', 41, 'worker exited with code 1');
    const back = roundTrip(e);
    expect(back).toBeInstanceOf(MoeError);
    expect(back.code).toBe('SHARD_CRASHED');
    expect(back.message).toBe(e.message);
  });

  it.each(['ABORTED', 'DIVERGED', 'SHARED_MEMORY_UNAVAILABLE'] as const)('a plain MoeError with code %s', (code) => {
    const back = roundTrip(new MoeError(code, 'something'));
    expect(back).toBeInstanceOf(MoeError);
    expect(back).toMatchObject({ code, message: 'something' });
  });

  it('anything else is INTERNAL with its message', () => {
    expect(roundTrip(new TypeError('x is undefined'))).toMatchObject({ code: 'INTERNAL', message: 'x is undefined' });
    expect(roundTrip('a string')).toMatchObject({ code: 'INTERNAL', message: 'a string' });
    const w: WireError = errorToWire(new RangeError('r'));
    expect(w).toEqual({ code: 'INTERNAL', name: 'RangeError', message: 'r' });
  });
});

describe('ShardStallError', () => {
  it('states the timeout in the unit it was given at: ms under a second, s above', () => {
    expect(new ShardStallError([1], 'forward', 4, 250).message).toContain('within 250 ms (stall timeout)');
    expect(new ShardStallError([0, 2], 'update', 4, 12_000).message).toContain('shards 0, 2 did not finish the update phase within 12.0 s');
  });
});
