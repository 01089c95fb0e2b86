/** Awaiting a promise that must reject, for tests that then inspect the error. */
import { expect } from 'vitest';

/** The error `p` rejects with; fails the test when it resolves or rejects with a non-Error. */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').toBeInstanceOf(Error);
  return err as Error;
}
