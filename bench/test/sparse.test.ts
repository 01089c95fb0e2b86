/**
 * The sparse-routing benchmark (`moe bench sparse`): the report's shape, the skew case's
 * exact routing (a fixed gate on inputs that name each row's experts), and the CLI's JSON.
 * Functional checks only on a tiny shape: the numbers depend on the machine and its load.
 */
import { describe, expect, it } from 'vitest';
import { formatSparseMarkdown, runSparseBenchmark, skewData, skewPairs, sparseLoss, SPARSE_ROUTINGS } from '../sparse.js';
import { OptionError } from '../../src/index.js';
import { Rng } from '../../src/index.js';
import { benchCli, positiveFinite } from './cli.js';

// A tiny version of the pinned workload: medium's expert shape, 4 experts, 16 rows a step.
const TINY = { experts: 4, batch: 16, steps: 2, warmupSteps: 1, rounds: 1, predictRows: 32 };

describe('the skew case', () => {
  it('sends 90% of the rows to expert 0 and spreads the rest, or every expert the same rows', () => {
    const E = 16, rows = 1000;
    const skewed = skewPairs('skewed', rows, E);
    expect(skewed.filter(([a, b]) => a === 0 || b === 0).length).toBe(900);
    for (const [a, b] of skewed) expect(a).not.toBe(b);
    const others = new Array<number>(E).fill(0);
    for (const [a, b] of skewed) for (const e of [a, b]) others[e]!++;
    // Every other expert gets an even share of the rest (1100 entries over 15), within two.
    for (let e = 1; e < E; e++) expect(Math.abs(others[e]! - 1100 / 15)).toBeLessThanOrEqual(2);
    const balanced = skewPairs('balanced', 512, E);
    const load = new Array<number>(E).fill(0);
    for (const [a, b] of balanced) (load[a]!++, load[b]!++);
    expect(load).toEqual(new Array<number>(E).fill(64));
    expect(() => skewPairs('skewed', 4, 2)).toThrow(OptionError);
  });

  it('names each row\'s experts with its first E inputs', () => {
    const d = skewData('skewed', { inputs: 6, outputs: 2 }, 12, 4, new Rng(1));
    const pairs = skewPairs('skewed', 12, 4);
    for (let r = 0; r < 12; r++) {
      const first = Array.from(d.x.subarray(r * 6, r * 6 + 4));
      expect(first.map((v, i) => (v === 5 ? i : -1)).filter((i) => i >= 0)).toEqual([...pairs[r]!].sort((a, b) => a - b));
      expect(first.filter((v) => v !== 0 && v !== 5)).toEqual([]);
    }
    expect(() => skewData('skewed', { inputs: 3, outputs: 2 }, 4, 4, new Rng(1))).toThrow(/inputs \(3\) ≥ experts \(4\)/);
  });

  it('trains the one-expert rules with the cooperative error and the others with the NLL', () => {
    expect(SPARSE_ROUTINGS.map((r) => sparseLoss(r, 16))).toEqual(['gaussian', 'cooperative', 'gaussian', 'gaussian', 'cooperative', 'gaussian']);
  });
});

describe('runSparseBenchmark', () => {
  it('measures every routing and the skew case, with the router choosing exactly the named experts', async () => {
    const lines: string[] = [];
    const r = await runSparseBenchmark({ ...TINY, routings: ['dense', 'topk:2', 'switch', 'expert-choice:1'], onProgress: (l) => lines.push(l) });
    expect(r).toMatchObject({ experts: 4, batch: 16, inputs: 256, outputs: 256, expert: 'mlp:512', rounds: 1, steps: 2 });
    expect(r.workers).toBeGreaterThanOrEqual(1);
    // switch trains on the cooperative error: dense runs on it too, to compare on the same loss.
    expect(r.rows.map((x) => [x.routing, x.k, x.loss])).toEqual([
      ['dense', 4, 'gaussian'],
      ['dense', 4, 'cooperative'],
      ['topk:2', 2, 'gaussian'],
      ['switch', 1, 'cooperative'],
      ['expert-choice:1', 1, 'gaussian'],
    ]);
    const denseSame = (loss: string) => r.rows.find((x) => x.routing === 'dense' && x.loss === loss)!;
    for (const x of r.rows) {
      expect(positiveFinite(x.samplesPerSecond)).toBe(true);
      expect(x.speedupOverDense).toBeCloseTo(x.samplesPerSecond / r.rows[0]!.samplesPerSecond, 9);
      expect(x.speedupOverDenseSameLoss).toBeCloseTo(x.samplesPerSecond / denseSame(x.loss).samplesPerSecond, 9);
      expect(x.steps).toBe(2);
      // The step in parts: the fixed part (Adam over every expert, gate and routing, sync) and the per-entry part.
      const b = x.breakdown!;
      expect(b.fixedMicros).toBeCloseTo(b.optimiserMicros + b.gateMicros + b.syncMicros, 6);
      for (const key of ['stepMicros', 'optimiserMicros', 'gateMicros', 'perEntryMicros'] as const) expect(positiveFinite(b[key]), `${x.routing} ${key}`).toBe(true);
      expect(b.entriesPerRow).toBe(x.k);
      // The bound: dense's step ÷ (fixed + dense's per-entry part × k ÷ E).
      const d = denseSame(x.loss).breakdown!;
      expect(x.amdahlBound).toBeCloseTo(d.stepMicros / (b.fixedMicros + (d.perEntryMicros * x.k) / 4), 9);
      expect(x.fractionOfBound).toBeCloseTo(x.speedupOverDenseSameLoss! / x.amdahlBound!, 9);
    }
    expect(r.rows[0]!.speedupOverDense).toBe(1);
    expect(denseSame('cooperative').speedupOverDenseSameLoss).toBe(1);
    // Predict: the public predict on predictRows rows per routing.
    expect(r.predict!.rows).toBe(32);
    expect(r.predict!.results.map((x) => [x.routing, x.loss])).toEqual(r.rows.map((x) => [x.routing, x.loss]));
    for (const x of r.predict!.results) expect(positiveFinite(x.samplesPerSecond) && positiveFinite(x.speedupOverDense)).toBe(true);
    expect(r.predict!.results[0]!.speedupOverDense).toBe(1);
    const k = r.skew!;
    for (const key of ['balancedMicros', 'withSplittingMicros', 'withoutSplittingMicros'] as const) expect(positiveFinite(k[key])).toBe(true);
    expect(k.withoutSplittingRatio).toBeCloseTo(k.withoutSplittingMicros / k.balancedMicros, 9);
    // The last step's batch as the router saw it: the share its rows name expert 0.
    expect(k.expert0Share).toBeGreaterThanOrEqual(0.8);
    for (const rows of Object.values(k.shardRows)) {
      expect(rows).toHaveLength(r.workers);
      expect(rows.reduce((a, b) => a + b, 0)).toBe(2 * 16);
    }
    if (r.workers === 2) {
      // Without splitting the worker owning expert 0 takes the hot expert's rows; balanced, both the same.
      expect(k.shardRows.balanced).toEqual([16, 16]);
      expect(k.shardRows.withoutSplitting[0]!).toBeGreaterThan(k.shardRows.withoutSplitting[1]!);
    }
    // One progress line per measurement (a machine without OpenBLAS adds fall-back notices).
    expect(lines.filter((l) => /^sparse .*\(round /.test(l)).length).toBe(5 + 3);
    const md = formatSparseMarkdown(r);
    expect(md).toMatch(/^\| topk:2( \(busy\))? \| 2 \| gaussian \| [\d,]+ \| [\d.]+× \| [\d.]+× \| [\d.]+× \| \d+% \|/m);
    expect(md).toContain('## Predict (`Mixture.predict`, 32 rows)');
    expect(md).not.toMatch(/\bmet\b|not met|Target/);
    expect(md).toContain('## Skewed load');
  });

  it('skips the skew case where the inputs cannot name the experts, saying why', async () => {
    const r = await runSparseBenchmark({ ...TINY, size: 'small', routings: ['topk:2'] });
    expect(r.skew).toBeUndefined();
    expect(r.rows[0]!.speedupOverDense).toBeUndefined();
    expect(r.skipped).toEqual([expect.stringContaining('inputs (2) ≥ experts (4)') as unknown as string]);
  });

  it('rejects bad routings and worker counts', async () => {
    await expect(runSparseBenchmark({ ...TINY, routings: ['topk:9'] })).rejects.toMatchObject({ option: 'routing' });
    await expect(runSparseBenchmark({ ...TINY, routings: ['dense', 'dense'] })).rejects.toThrow(/given twice/);
    await expect(runSparseBenchmark({ ...TINY, workers: 5 })).rejects.toBeInstanceOf(OptionError);
  });
});

describe('moe bench sparse', () => {
  it('ends with one JSON object: experts, workers, batch, rows of routing/k/samplesPerSecond/speedupOverDense, skew', async () => {
    const out = await benchCli(['sparse', '--json', '--experts', '4', '--batch', '16', '--steps', '2', '--rounds', '1', '--no-breakdown', '--predict-rows', '16', '--routing', 'dense,topk:1,expert-choice:1']);
    const j = JSON.parse(out.trimEnd().split('\n').at(-1)!) as {
      experts: number; workers: number; batch: number; command: string;
      rows: { routing: string; k: number; loss: string; samplesPerSecond: number; speedupOverDense: number }[];
      predict: { rows: number; results: { routing: string; samplesPerSecond: number; speedupOverDense: number }[] };
      skew: { balancedMicros: number; withSplittingMicros: number; withoutSplittingMicros: number };
    };
    expect(j).toMatchObject({ experts: 4, batch: 16 });
    expect(typeof j.workers).toBe('number');
    expect(j.rows.map((x) => [x.routing, x.k, x.loss])).toEqual([
      ['dense', 4, 'gaussian'],
      ['dense', 4, 'cooperative'],
      ['topk:1', 1, 'cooperative'],
      ['expert-choice:1', 1, 'gaussian'],
    ]);
    expect(j.predict.rows).toBe(16);
    for (const x of j.predict.results) for (const key of ['samplesPerSecond', 'speedupOverDense'] as const) expect(positiveFinite(x[key]), `predict ${x.routing} ${key}`).toBe(true);
    for (const x of j.rows) for (const key of ['samplesPerSecond', 'speedupOverDense'] as const) expect(positiveFinite(x[key]), `${x.routing} ${key}`).toBe(true);
    for (const key of ['balancedMicros', 'withSplittingMicros', 'withoutSplittingMicros'] as const) expect(positiveFinite(j.skew[key])).toBe(true);
    expect(j.command).toBe('moe bench sparse --json --routing dense,topk:1,expert-choice:1 --experts 4 --batch 16 --rounds 1 --steps 2 --no-breakdown --predict-rows 16');
  });

  it('rejects an unknown size and a bad --routing naming the option', async () => {
    await expect(benchCli(['sparse', '--size', 'huge'])).rejects.toMatchObject({ option: '--size' });
    await expect(benchCli(['sparse', '--routing', 'dense,,topk:2'])).rejects.toMatchObject({ option: '--routing' });
  });
});
