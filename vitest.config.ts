import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Worker threads are started from the built files in dist/ (Node 20 cannot start a
    // worker from .ts), so `npm test` builds first; forks keep each file's OpenBLAS and
    // worker pools in their own process.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
