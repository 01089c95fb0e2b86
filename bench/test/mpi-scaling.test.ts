/**
 * `moe bench scaling --mpi` under `mpiexec -n 2` on the small size (a few seconds): the
 * report's structure, rank 0 alone writing it, and the bytes per step the ranks counted
 * equal to the cost model's formula exactly (dense routing: the same bytes every step).
 * Skipped, saying why, where MPICH is not installed (CI installs it). Ranks start from
 * dist/: run `npm run build` first.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exchangeBytesPerStep, rankExpertCounts } from '../cost-model.js';
import type { MpiScalingReport } from '../mpi-scaling.js';
import { positiveFinite } from './cli.js';

const mpiexec = spawnSync('mpiexec', ['--version'], { encoding: 'utf8' });
const libmpich = spawnSync('sh', ['-c', 'ldconfig -p | grep -q libmpich.so.12'], { encoding: 'utf8' });
const available = mpiexec.status === 0 && libmpich.status === 0;
const why = 'MPICH not installed (apt-get install mpich): moe bench scaling --mpi needs mpiexec and libmpich.so.12';
const dir = mkdtempSync(join(tmpdir(), 'moe-mpi-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run `moe bench scaling --mpi …` on 2 ranks; the report rank 0 printed (one JSON line). */
function bench(args: string[]): MpiScalingReport {
  const r = spawnSync('mpiexec', ['-n', '2', process.execPath, 'bin/moe', 'bench', 'scaling', '--mpi', '--sizes', 'small', '--quick', '--time', '50', '--json', ...args], { encoding: 'utf8', timeout: 60_000 });
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  // Rank 0 alone prints: one report.
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as MpiScalingReport;
}

describe.skipIf(available)('moe bench scaling --mpi', () => {
  it.skip(why, () => {});
});

describe.skipIf(!available)('moe bench scaling --mpi', () => {
  it('2 ranks × 1 worker, Gaussian NLL: rows of ranks × workers, exchange time and bytes, the model and its PREDICTED rows; rank 0 writes mpi-<machine>.json/.md', () => {
    const out = join(dir, 'out');
    const j = bench(['--workers', '1', '--experts', '8', '--machine', 'test-box', '--out', out]);
    expect(j).toMatchObject({ mpi: true, ranks: 2, experts: 8, loss: 'gaussian', machine: 'test-box', rounds: 1 });
    expect(j.mpiLibrary).toMatch(/MPICH/i);
    expect(j.uptime.start).toHaveLength(3);
    expect(j.rows.map((r) => [r.ranks, r.workers])).toEqual([
      [1, 1],
      [1, 2],
      [2, 1],
    ]);
    for (const r of j.rows) {
      expect(positiveFinite(r.samplesPerSecond) && positiveFinite(r.stepMicros), JSON.stringify(r)).toBe(true);
      expect(r.samplesPerSecond).toBeCloseTo((r.batch * 1e6) / r.stepMicros, 6);
    }
    const two = j.rows[2]!;
    expect(positiveFinite(two.exchangeMicrosPerStep)).toBe(true);
    // B = 32, E = 8, R = 2, 4 experts each: 4·32·4 + 8 received per rank; the job's 4·B·E·(R−1) + 8·R.
    const model = exchangeBytesPerStep({ batch: 32, experts: 8, outputs: 4, rankExperts: rankExpertCounts(8, 2, 1), flags: { mixesOutputs: false, gateGradAfterBackward: false } });
    expect(model.total).toBe(4 * 32 * 8 * 1 + 8 * 2);
    expect(two.bytesPerStep).toBe(model.total);
    expect(two.byRank!.map((x) => x.bytesReceivedPerStep)).toEqual(model.receivedByRank);
    expect(two.byRank!.map((x) => x.bytesSentPerStep)).toEqual(model.sentByRank);
    expect(two.byRank!.map((x) => x.exchangesPerStep)).toEqual([2, 2]);
    expect(two.byExchange!.map((x) => [x.what, x.perStep, x.bytesReceivedPerStep])).toEqual(model.collectives.map((c) => [c.what, 1, c.received[0]]));
    expect(j.exchange).toEqual([expect.objectContaining({ ranks: 2, workers: 1, formula: '4·B·E·(R−1)·(1) + 8·R', bytes: model })]);
    // The one-host probe, the model against the 2-rank row, its predictions at 4, 8, 16 ranks on 10 and 100 Gb/s.
    expect(positiveFinite(j.probe!.gbps) && positiveFinite(j.probe!.latencyMicros)).toBe(true);
    expect(j.checks).toHaveLength(1);
    expect(j.checks[0]!.predicted.bytesPerStep).toBe(two.bytesPerStep);
    expect(j.checks[0]!.measuredStepMicros).toBe(two.stepMicros);
    expect(j.predictions.map((p) => [p.label, p.ranks, p.network.gbps])).toEqual([4, 8, 16].flatMap((r) => [10, 100].map((g) => ['PREDICTED', r, g])));
    expect(j.overhead).toEqual([expect.objectContaining({ ranks: 2, target: 0.85 })]);
    // Files: rank 0's, once.
    expect(readdirSync(out).sort()).toEqual(['mpi-test-box.json', 'mpi-test-box.md']);
    const md = readFileSync(join(out, 'mpi-test-box.md'), 'utf8');
    expect(md).toContain('# Scaling across MPI ranks: test-box');
    expect(md).toMatch(/^\| small( \(busy\))? \| 2 × 1 \| /m);
    expect(md).toMatch(/^\| PREDICTED \| small \| 16 × 1 \| 16 \| 10 Gb\/s, 20 µs \|/m);
  });

  it('2 ranks × 2 workers, cooperative, 5 experts (3 and 2 per rank): scores, outputs and dots, each rank its own bytes', () => {
    const j = bench(['--workers', '2', '--experts', '5', '--loss', 'cooperative', '--rounds', '1', '--bandwidth', '25', '--latency', '5']);
    expect(j.rows.map((r) => [r.ranks, r.workers])).toEqual([
      [1, 1],
      [1, 2],
      [1, 4],
      [2, 2],
    ]);
    const row = j.rows[3]!;
    const split = rankExpertCounts(5, 2, 2);
    expect(split).toEqual([3, 2]);
    const model = exchangeBytesPerStep({ batch: 32, experts: 5, outputs: 4, rankExperts: split, flags: { mixesOutputs: true, gateGradAfterBackward: true } });
    // f = 1 + K + 1 = 6 floats per entry: rank 0 receives the 2 experts of rank 1, rank 1 the 3 of rank 0.
    expect(model.receivedByRank).toEqual([4 * 32 * 2 * 6 + 8, 4 * 32 * 3 * 6 + 8]);
    expect(row.bytesPerStep).toBe(model.total);
    expect(row.bytesPerStep).toBe(4 * 32 * 5 * 1 * 6 + 8 * 2);
    expect(row.byRank!.map((x) => x.bytesReceivedPerStep)).toEqual(model.receivedByRank);
    expect(row.byRank!.map((x) => x.exchangesPerStep)).toEqual([4, 4]);
    expect(row.byExchange!.map((x) => x.what)).toEqual(['the scores after FORWARD', 'the outputs after FORWARD', 'the dot products after BACKWARD', 'the step agreement after BACKWARD']);
    expect(j.exchange[0]!.formula).toBe('4·B·E·(R−1)·(1 + K + 1) + 8·R');
    expect(j.predictions.map((p) => [p.ranks, p.workers, p.experts, p.network])).toEqual([4, 8, 16].map((r) => [r, 2, 32, { gbps: 25, latencyMicros: 5 }]));
  });

  // Every rank meets a bad option alike: the job ends normally with the usage exit code
  // (an MPI_Abort there could kill rank 0 before mpiexec forwarded its line: a CI run saw
  // an empty stderr).
  it('refuses ranks × workers above the experts and a bad option in one line, rank 0\'s, and every rank exits 2 without MPI_Abort', () => {
    for (const [args, message] of [
      [['--workers', '3', '--experts', '4'], /^moe: error: .*2 ranks × 3 workers need at least 6 experts, the model has 4$/m],
      [['--bandwidth', '10,x'], /^moe: error: --bandwidth: expected a comma-separated list of numbers > 0, got "10,x"$/m],
    ] as const) {
      const r = spawnSync('mpiexec', ['-n', '2', process.execPath, 'bin/moe', 'bench', 'scaling', '--mpi', '--sizes', 'small', '--quick', ...args], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/MPI_Abort/);
      expect(r.stderr.match(/moe: error/g), r.stderr).toHaveLength(1);
    }
  });

  it('a bad option on rank 1 only (the command line, the benchmark\'s own check): rank 1 reports it, rank 0 names rank 1, the job ends without MPI_Abort', () => {
    const cmd = [process.execPath, 'bin/moe', 'bench', 'scaling', '--mpi', '--sizes', 'small', '--quick'];
    for (const [ok, bad, check, message] of [
      [['--bandwidth', '10'], ['--bandwidth', '10,x'], 'the command line', /^rank 1: moe: error: --bandwidth: expected a comma-separated list of numbers > 0, got "10,x"$/m],
      [['--workers', '3', '--experts', '6'], ['--workers', '3', '--experts', '4'], 'the options', /^rank 1: moe: error: .*2 ranks × 3 workers need at least 6 experts, the model has 4$/m],
    ] as const) {
      const r = spawnSync('mpiexec', ['-n', '1', ...cmd, ...ok, ':', '-n', '1', ...cmd, ...bad], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).not.toBe(0);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain(`moe: error: the check of ${check}: rank 1 failed where rank 0 did not (its error is on its output)\n`);
      expect(r.stderr.match(/moe: error/g), r.stderr).toHaveLength(2);
      expect(r.stderr).not.toMatch(/MPI_Abort/);
    }
  });
});
