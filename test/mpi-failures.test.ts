/**
 * MPI runs that fail: a signal to one rank stops every rank at the same step boundary and
 * rank 0 writes the checkpoint once; `kill -9` of any rank, and `kill -STOP` of one (the
 * exchange watchdog acts), leave no process alive 30 s later, every exit status non-zero,
 * and the last checkpoint loads. The same with `mpiexec -disable-auto-cleanup`, so that
 * the library's own handling is what is tested. Skipped, saying why, without MPICH.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Mixture } from '../src/mixture.js';

const available = spawnSync('mpiexec', ['--version']).status === 0 && spawnSync('sh', ['-c', 'ldconfig -p | grep -q libmpich.so.12']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'moe-mpi-fail-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cli = join(process.cwd(), 'dist/src/cli/main.js');

/** A CSV whose path names the case (so that its processes can be found). */
function data(name: string): string {
  let s = 'a,b,c,y\n';
  for (let i = 0; i < 400; i++) {
    const a = Math.sin(i * 1.37), b = Math.cos(i * 0.71), c = Math.sin(i * 0.29);
    s += `${a},${b},${c},${2 * a - b + (c > 0 ? 0.5 : -0.5)}\n`;
  }
  const path = join(dir, `${name}.csv`);
  writeFileSync(path, s);
  return path;
}

/** The pids of the case's ranks, by rank, read from /proc (Hydra sets PMI_RANK). */
function rankPids(marker: string): Map<number, number> {
  const out = new Map<number, number>();
  const ps = spawnSync('pgrep', ['-f', marker], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
  for (const pid of ps) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      const rank = env.find((e) => e.startsWith('PMI_RANK='));
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (rank && cmd.includes('main.js')) out.set(Number(rank.slice('PMI_RANK='.length)), pid);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return cond();
}

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  goneAfterMs: number;
  checkpoint: string;
}

async function failCase(name: string, target: 0 | 1, sig: NodeJS.Signals, noCleanup: boolean): Promise<Outcome> {
  const csv = data(name), checkpoint = join(dir, `${name}.moe`);
  const args = [...(noCleanup ? ['-disable-auto-cleanup'] : []), '-n', '2', process.execPath, cli, 'train', '--data', csv, '--target', 'y', '--task', 'regression', '--experts', '4', '--epochs', '100000', '--mpi', '--save', checkpoint, '--checkpoint-every', '1'];
  const job: ChildProcess = spawn('mpiexec', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  job.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  job.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => job.on('exit', (code, s) => r([code, s])));
  try {
    expect(await until(() => existsSync(checkpoint) && rankPids(csv).size === 2, 60_000), `no checkpoint: ${output}`).toBe(true);
    const pid = rankPids(csv).get(target)!;
    process.kill(pid, sig);
    const t0 = Date.now();
    await until(() => rankPids(csv).size === 0, 30_000);
    const goneAfterMs = Date.now() - t0;
    const [status, signal] = await Promise.race([exited, new Promise<[null, null]>((r) => setTimeout(() => r([null, null]), 10_000))]);
    return { status, signal, output, goneAfterMs, checkpoint };
  } finally {
    // Never leave a job behind (a failed expectation above, or a stopped rank).
    for (const pid of rankPids(csv).values()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    job.kill('SIGKILL');
  }
}

async function expectLoads(path: string): Promise<void> {
  const m = await Mixture.load(path);
  expect(m.training.step).toBeGreaterThan(0);
  await m.close();
}

describe.skipIf(!available).concurrent('MPI failures', () => {
  it('SIGTERM to rank 1: every rank stops at the same step, rank 0 writes the checkpoint once', async () => {
    const o = await failCase('term', 1, 'SIGTERM', false);
    expect(o.goneAfterMs).toBeLessThan(30_000);
    expect(o.status).not.toBe(0);
    expect(o.output.match(/checkpoint written to/g) ?? [], o.output).toHaveLength(1);
    await expectLoads(o.checkpoint);
  });
  for (const noCleanup of [false, true]) {
    for (const target of [0, 1] as const) {
      it(`kill -9 of rank ${target}${noCleanup ? ' (mpiexec -disable-auto-cleanup)' : ''}: nothing alive 30 s later, a non-zero exit, the last checkpoint loads`, async () => {
        const o = await failCase(`kill${target}${noCleanup ? 'n' : ''}`, target, 'SIGKILL', noCleanup);
        expect(o.goneAfterMs, o.output).toBeLessThan(30_000);
        expect(o.status === 0 && o.signal === null).toBe(false);
        await expectLoads(o.checkpoint);
      });
    }
  }
  it('kill -STOP of rank 1 (mpiexec -disable-auto-cleanup): the exchange watchdog ends every rank, the last checkpoint loads', async () => {
    const o = await failCase('stop', 1, 'SIGSTOP', true);
    expect(o.goneAfterMs, o.output).toBeLessThan(30_000);
    expect(o.status === 0 && o.signal === null).toBe(false);
    expect(o.output).toMatch(/did not complete within \d+ s on rank 0: another rank is stalled or dead/);
    await expectLoads(o.checkpoint);
  });
});

describe.skipIf(available)('MPI failures', () => {
  it.skip('MPICH not installed (apt-get install mpich): the MPI failure tests need mpiexec and libmpich.so.12', () => {});
});
