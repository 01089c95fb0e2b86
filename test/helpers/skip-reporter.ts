/**
 * A vitest reporter that ends the run with one line per reason tests were skipped on
 * this machine (the `skipReason` that test/helpers/backends.ts puts in a suite's meta):
 * "72 tests skipped: OpenBLAS not found; apt-get install libopenblas0". Silent when none.
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SkipSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const counts = new Map<string, number>();
    for (const module of testModules) {
      for (const test of module.children.allTests('skipped')) {
        const reason = test.meta().skipReason;
        if (reason !== undefined) counts.set(reason, (counts.get(reason) ?? 0) + 1);
      }
    }
    for (const [reason, n] of counts) process.stdout.write(`\n${n} test${n === 1 ? '' : 's'} skipped: ${reason}\n`);
  }
}
