// Bit-for-bit comparison of a mixture's parameters and optimiser state, shared by the
// parity and crash tests.
import { expect } from 'vitest';
import { PARAM_ARRAYS, type MixtureParams } from '../../src/model/state.js';

export const REGIONS = PARAM_ARRAYS;

/** A copy of every region (the trainer's views change as it runs). */
export function copyParams(p: MixtureParams): MixtureParams {
  return Object.fromEntries(REGIONS.map((k) => [k, p[k].slice()])) as unknown as MixtureParams;
}

/** Index of the first element whose bits differ (Object.is: -0 ≠ 0, NaN = NaN), -1 if none. */
export function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

/** Two arrays equal bit for bit; the failure names the first element that is not. */
export function expectSame(label: string, a: Float32Array, b: Float32Array): void {
  const i = firstDifference(a, b);
  expect(i, `${label}[${i}]: ${a[i]} vs ${b[i]}`).toBe(-1);
}

/** Every parameter and optimiser-state element equal, bit for bit. */
export function expectIdentical(actual: MixtureParams, expected: MixtureParams): void {
  for (const region of REGIONS) expectSame(region, actual[region], expected[region]);
}
