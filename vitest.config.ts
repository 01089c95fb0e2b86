import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'bench/test/**/*.test.ts'],
    // Worker threads are started from the built files in dist/ (Node 20 cannot start a
    // worker from .ts), so `npm test` builds first; forks keep each file's OpenBLAS and
    // worker pools in their own process.
    pool: 'forks',
    testTimeout: 60_000,
    // The default output, then one line counting the tests skipped on this machine and why
    // (e.g. the blas provider's own tests where OpenBLAS is not installed).
    reporters: ['default', './test/helpers/skip-reporter.ts'],
    hookTimeout: 60_000,
  },
});
