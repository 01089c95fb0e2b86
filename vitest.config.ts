import { availableParallelism } from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';

/** Suites `npm test` leaves to CI's own steps (MOE_TEST_ALL=1 includes them). */
const SLOW_SUITES = ['test/pytorch.test.ts', 'bench/test/pytorch.test.ts', 'bench/test/peers.test.ts', 'test/mpi-failures.test.ts'];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'bench/test/**/*.test.ts'],
    // Worker threads are started from the built files in dist/ (Node 20 cannot start a
    // worker from .ts), so `npm test` builds first; forks keep each file's OpenBLAS and
    // worker pools in their own process.
    pool: 'forks',
    // Two files at a time at least: vitest's default (one fewer than the cores) runs one at a
    // time on 2 cores, where most files spend their time waiting on a child process or
    // worker threads (on the 2-core AMD EPYC: 332 s one at a time, 206 s two at a time).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // The slowest suites (PyTorch round trips and peers, MPI failures: ~85 s of waiting on
    // child processes) run in CI as steps of their own, and here with MOE_TEST_ALL=1, so
    // that `npm test` stays under 5 minutes on 2 cores.
    exclude: [...configDefaults.exclude, ...(process.env.MOE_TEST_ALL === '1' ? [] : SLOW_SUITES)],
    testTimeout: 60_000,
    // The default output, then one line counting the tests skipped on this machine and why
    // (e.g. the blas provider's own tests where OpenBLAS is not installed).
    reporters: ['default', './test/helpers/skip-reporter.ts'],
    hookTimeout: 60_000,
  },
});
