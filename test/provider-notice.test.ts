/**
 * The provider fall-back notice: one line of at most ~120 characters saying what did not
 * load, what is used instead and how to get the fast path; printed once per process
 * (worker threads included) when nobody listens, and given every time to a caller's own
 * onWarning. Run in subprocesses where OpenBLAS is hidden (Linux: LD_LIBRARY_PATH finds
 * empty files first), so it is checked on every machine.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlasLoadError } from '../src/compute/blas.js';
import { fallbackNotice, MAX_NOTICE_CHARS } from '../src/compute/load.js';
import { BackendError } from '../src/errors.js';
import { MAIN, requireBuild, ROOT } from './fixtures/cli/harness.js';
import { hiddenBlasEnv } from './helpers/backends.js';

let dir: string;
const hiddenDir = join(tmpdir(), `moe-notice-no-blas-${process.pid}`);
const hidden = hiddenBlasEnv(hiddenDir);
beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-notice-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(hiddenDir, { recursive: true, force: true });
});

function run(script: string, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return spawnNode([script], ROOT, env);
}

/** Run node with `args` in `cwd`; its exit code and whole output. */
function spawnNode(args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '', stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((res, rej) => {
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
  });
}

const blasFailure = (attempts: { library: string; reason: string; missing: boolean }[], explicit = false) => ({
  name: 'blas' as const,
  error: new BackendError('backend blas did not load', { cause: new BlasLoadError(attempts.map((a) => ({ ...a, detail: a.reason })), explicit) }),
});

describe('the notice', () => {
  it('says what did not load, what is used and how to get OpenBLAS, in one short line', () => {
    const notFound = fallbackNotice([blasFailure([{ library: 'libopenblas.so.0', reason: 'not found', missing: true }])], 'wasm');
    expect(notFound).toMatch(/^OpenBLAS not found; using wasm, several times slower on large experts: /);
    if (process.platform === 'linux') expect(notFound).toContain('apt-get install libopenblas0');
    const broken = fallbackNotice([blasFailure([{ library: 'libopenblas.so.0', reason: 'x'.repeat(500), missing: false }])], 'wasm');
    expect(broken).toMatch(/^OpenBLAS did not load/);
    const named = fallbackNotice([blasFailure([{ library: `/opt/${'deep/'.repeat(40)}libcblas.so`, reason: 'not found', missing: true }], true)], 'cpu');
    expect(named).toMatch(/^blas: library \/opt\/deep\/.*… not found; using cpu$/);
    const tf = fallbackNotice([{ name: 'tensorflow', error: new BackendError(`backend tensorflow did not load: ${'Cannot find package '.repeat(20)}`) }], 'wasm');
    expect(tf).toMatch(/^backend tensorflow did not load \(.*…\); using wasm$/);
    for (const n of [notFound, broken, named, tf]) {
      expect(n.length, n).toBeLessThanOrEqual(MAX_NOTICE_CHARS);
      expect(`moe: warning: ${n}`.length).toBeLessThanOrEqual(120);
      expect(n).not.toContain('\n');
    }
  });
});

describe.skipIf(hidden === undefined)('once per process, worker threads included (OpenBLAS hidden from a subprocess)', () => {
  it('main thread twice and three worker threads, none with onWarning: one line; a caller\'s onWarning still gets it', async () => {
    const load = pathToFileURL(join(ROOT, 'dist/src/compute/load.js')).href;
    const script = join(dir, 'notice.mjs');
    await writeFile(
      script,
      `import { Worker, isMainThread } from 'node:worker_threads';
import { loadProvider, lastProviderFallback } from ${JSON.stringify(load)};
if (isMainThread) {
  const p = await loadProvider();
  await loadProvider();
  const workers = Array.from({ length: 3 }, () => new Worker(new URL(import.meta.url)));
  await Promise.all(workers.map((w) => new Promise((res, rej) => { w.on('exit', res); w.on('error', rej); })));
  const heard = [];
  await loadProvider('auto', { onWarning: (m) => heard.push(m) });
  console.log(JSON.stringify({ used: p.name, heard, details: lastProviderFallback().details }));
} else {
  const p = await loadProvider();
  if (p.name === 'blas') throw new Error('blas loaded in a worker');
}
`,
    );
    const r = await run(script, hidden);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^local-experts: warning: OpenBLAS did not load; using wasm/);
    const out = JSON.parse(r.stdout) as { used: string; heard: string[]; details: string[] };
    expect(out.used).toBe('wasm');
    expect(out.heard).toHaveLength(1);
    expect(out.heard[0]).toMatch(/^local-experts: OpenBLAS did not load; using wasm/);
    // Every library tried, for --verbose.
    expect(out.details.length).toBeGreaterThanOrEqual(2);
    expect(out.details[0]).toMatch(/^blas: libopenblas\.so\.0: .*file too short/);
  });

  it('the CLI: one `moe: warning:` line for a parallel run, its details only with --verbose', async () => {
    const data = join(ROOT, 'test/fixtures/cli/classes.csv');
    const args = [MAIN, 'train', '--data', data, '--target', 'label', '--task', 'classification', '--experts', '2', '--workers', '2', '--epochs', '2', '--json'];
    const plain = await runArgs(args);
    expect(plain.code, plain.stderr).toBe(0);
    const notices = plain.stderr.split('\n').filter((l) => l.startsWith('moe: warning:'));
    expect(notices, plain.stderr).toHaveLength(1);
    expect(notices[0]).toMatch(/^moe: warning: OpenBLAS did not load; using wasm, several times slower on large experts: apt-get install libopenblas0$/);
    expect(notices[0]!.length).toBeLessThanOrEqual(120);
    expect(plain.stderr).not.toContain('tried');
    expect(JSON.parse(plain.stdout.trimEnd().split('\n').at(-1)!).backend).toBe('wasm');

    const verbose = await runArgs([...args, '--verbose']);
    expect(verbose.code).toBe(0);
    expect(verbose.stderr).toMatch(/moe: {3}tried blas: libopenblas\.so\.0: .*file too short/);
  });

  it('moe reproduce: runs in worker threads, one notice for the whole command', async () => {
    const out = join(dir, 'reproduce');
    const r = await runArgs([MAIN, 'reproduce', 'jacobs1991', '--runs', '1', '--epochs', '1', '--jobs', '2', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const notices = r.stderr.split('\n').filter((l) => /OpenBLAS/.test(l));
    expect(notices, r.stderr).toHaveLength(1);
    expect(notices[0]).toMatch(/^moe: warning: OpenBLAS did not load; using wasm/);
  });

  function runArgs(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return spawnNode(args, dir, { FORCE_COLOR: '0', ...hidden });
  }
});
