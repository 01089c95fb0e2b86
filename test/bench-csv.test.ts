// `moe bench csv`: the report's form, including the wide-header measurement (the numbers
// depend on the machine and its load and are never asserted).
import { describe, expect, it } from 'vitest';
import { runCsvParseBenchmark } from '../src/bench/csv.js';
import { formatCsvMarkdown } from '../src/bench/report.js';
import { positiveFinite } from './helpers/bench-cli.js';

describe('runCsvParseBenchmark', () => {
  it('times loadCsv on the generated file and on a wide header, and reports both', async () => {
    const lines: string[] = [];
    const r = await runCsvParseBenchmark({ rows: 300, features: 3, runs: 1, workers: 0, wideColumns: 2000, onProgress: (l) => lines.push(l) });
    expect(r.rows).toBe(300);
    expect(positiveFinite(r.parseSeconds)).toBe(true);
    expect(r.wideHeader).toMatchObject({ columns: 2000, rows: 2, runs: 3 });
    expect(positiveFinite(r.wideHeader!.seconds)).toBe(true);
    expect(lines).toContain('parsing a 2000-column header');
    expect(formatCsvMarkdown(r)).toMatch(/\| loadCsv of a 2,000-column header \+ 2 rows \(best of 3\) \| [\d.]+ s \|/);
  });

  it('skips the wide header with wideColumns 0', async () => {
    const r = await runCsvParseBenchmark({ rows: 50, features: 2, runs: 1, workers: 0, wideColumns: 0 });
    expect(r.wideHeader).toBeUndefined();
    expect(formatCsvMarkdown(r)).not.toContain('-column header');
  });
});
