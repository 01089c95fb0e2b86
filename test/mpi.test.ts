/**
 * Experts sharded across MPI ranks (src/mpi): under `mpiexec -n 2`, with 0, 1 and 2
 * worker threads per rank, final parameters and optimiser state are bit-identical to one
 * process, dense and sparse, on the vowels and on a regression MLP mixture; the transport
 * leaves V8's WebAssembly traps alone and the user's environment as it was; a rank that
 * differs is named. Skipped, saying why, where MPICH is not installed (CI installs it).
 * Workers and ranks start from dist/: run `npm run build` first.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isMpichAbi } from '../src/mpi/library.js';

const mpiexec = spawnSync('mpiexec', ['--version'], { encoding: 'utf8' });
const libmpich = spawnSync('sh', ['-c', 'ldconfig -p | grep -q libmpich.so.12'], { encoding: 'utf8' });
const available = mpiexec.status === 0 && libmpich.status === 0;
const why = 'MPICH not installed (apt-get install mpich): the MPI tests need mpiexec and libmpich.so.12';
const dir = mkdtempSync(join(tmpdir(), 'moe-mpi-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function mpirun(ranks: number, script: string, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; output: string } {
  const r = spawnSync('mpiexec', ['-n', String(ranks), process.execPath, script, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!available)('MPI ranks', () => {
  const cases: [string, string, number][] = [];
  for (const which of ['vowels', 'regression']) for (const routing of ['dense', 'topk:2', 'switch']) for (const workers of [1, 2]) cases.push([which, routing, workers]);
  cases.push(['regression', 'dense', 0], ['vowels', 'topk:2', 0]);
  for (const [which, routing, workers] of cases) {
    it(`2 ranks × ${workers} worker${workers === 1 ? '' : 's'} (${which}, ${routing}): bit-identical to one process`, () => {
      const out = join(dir, `${which}-${routing}-${workers}.json`);
      const r = mpirun(2, 'test/fixtures/mpi/fit-and-compare.mjs', [out, which, routing, String(workers)]);
      expect(r.status, r.output).toBe(0);
      const res = JSON.parse(readFileSync(out, 'utf8')) as { differs: string[]; loss: number; refLoss: number; valLoss: number; refValLoss: number };
      expect(res.differs).toEqual([]);
      expect(res.loss).toBe(res.refLoss);
      expect(res.valLoss).toBe(res.refValLoss);
    });
  }

  it('a checkpoint made by 2 ranks resumes in one process, and one made in one process resumes on 2 ranks, bit-identically', async () => {
    const { Mixture } = await import('../src/mixture.js');
    const { datasetFromArrays } = await import('../src/data/dataset.js');
    const xs: number[][] = [], ys: number[][] = [];
    for (let i = 0; i < 160; i++) {
      const a = Math.sin(i * 1.37) * 3, b = Math.cos(i * 0.71) * 2;
      xs.push([a, b]);
      ys.push([a > 0 ? 2 * a - b : a * b]);
    }
    const data = datasetFromArrays('regression', xs, ys);
    const fresh = () => Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 4, expert: 'mlp:4', seed: 11 });
    // The reference: 4 epochs in one process.
    const ref = await fresh();
    await ref.fit(data, { epochs: 4, batchSize: 24 });
    // 2 epochs on 2 ranks × 1 worker, then 2 more in one process.
    const a = join(dir, 'ranks.moe');
    const r1 = mpirun(2, 'test/fixtures/mpi/resume.mjs', ['-', a, '2', '1']);
    expect(r1.status, r1.output).toBe(0);
    const m1 = await Mixture.load(a);
    await m1.fit(data, { epochs: 2, batchSize: 24 });
    // 2 epochs in one process, then 2 more on 2 ranks × 2 workers.
    const b = join(dir, 'one.moe'), c = join(dir, 'one-then-ranks.moe');
    const m2 = await fresh();
    await m2.fit(data, { epochs: 2, batchSize: 24 });
    await m2.save(b);
    const r2 = mpirun(2, 'test/fixtures/mpi/resume.mjs', [b, c, '2', '2']);
    expect(r2.status, r2.output).toBe(0);
    const m3 = await Mixture.load(c);
    for (const m of [m1, m3]) {
      for (const k of ['gateParams', 'expertParams', 'gateOpt', 'expertOpt'] as const) {
        expect(Buffer.from(m.params[k].buffer, m.params[k].byteOffset, m.params[k].byteLength).equals(Buffer.from(ref.params[k].buffer, ref.params[k].byteOffset, ref.params[k].byteLength)), k).toBe(true);
      }
      expect(m.training.step).toBe(ref.training.step);
    }
    for (const m of [ref, m1, m2, m3]) await m.close();
  });

  it('moe train --mpi --resume: rank 0 reads the checkpoint and broadcasts it; rank 0 alone prints and writes', async () => {
    const { writeFileSync } = await import('node:fs');
    let csv = 'a,b,y\n';
    for (let i = 0; i < 120; i++) {
      const a = Math.sin(i * 1.37), b = Math.cos(i * 0.71);
      csv += `${a},${b},${a > 0 ? 2 * a - b : a * b}\n`;
    }
    const data = join(dir, 'cli.csv'), first = join(dir, 'cli-1.moe'), second = join(dir, 'cli-2.moe');
    writeFileSync(data, csv);
    const cli = join(process.cwd(), 'dist/src/cli/main.js');
    const train = (more: string[]): { status: number | null; output: string } => {
      const r = spawnSync('mpiexec', ['-n', '2', process.execPath, cli, 'train', '--data', data, '--target', 'y', '--task', 'regression', '--experts', '4', '--mpi', '--json', ...more], { encoding: 'utf8', timeout: 120_000 });
      return { status: r.status, output: `${r.stdout}${r.stderr}` };
    };
    const a = train(['--epochs', '2', '--save', first]);
    expect(a.status, a.output).toBe(0);
    // One summary: rank 1 prints nothing but errors.
    expect(a.output.match(/^\{.*"saved"/gm) ?? [], a.output).toHaveLength(1);
    const b = train(['--epochs', '4', '--resume', first, '--save', second]);
    expect(b.status, b.output).toBe(0);
    const { Mixture } = await import('../src/mixture.js');
    const m = await Mixture.load(second);
    expect(m.training.epoch).toBe(4);
    await m.close();
  });

  it("keeps V8's WebAssembly traps catchable and the user's UCX setting as it was", () => {
    const out = join(dir, 'trap');
    const r = mpirun(2, 'test/fixtures/mpi/wasm-trap.mjs', [out]);
    expect(r.status, r.output).toBe(0);
    for (const rank of [0, 1]) {
      const res = JSON.parse(readFileSync(`${out}.${rank}`, 'utf8')) as { result: string; ucx: string | null };
      expect(res.result).toMatch(/RuntimeError: memory access out of bounds/);
      expect(res.ucx).toBeNull();
    }
  });

  it('identifies the library before using a handle', () => {
    expect(isMpichAbi('MPICH Version:\t4.0.2')).toBe(true);
    expect(isMpichAbi('Open MPI v4.1.4, package: Debian OpenMPI')).toBe(false);
  });
});

describe.skipIf(available)('MPI ranks', () => {
  it.skip(why, () => {});
});
