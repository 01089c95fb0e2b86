/**
 * stdout and stderr that fail: a full disk (/dev/full) or a closed stdout (`>&-`) costs a
 * command its text, never its files, and exits 74 (EX_IOERR) with one line on stderr,
 * no stack trace. /dev/full and the closed-stdout check are Linux's; elsewhere these tests
 * are skipped with that reason. Needs `npm run build`.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withoutFallbackNotice, FIXTURES, MAIN, ROOT, finish, lastJson, moe, requireBuild, type RunResult } from './fixtures/cli/harness.js';

const REGRESSION = join(FIXTURES, 'regression.csv');
const TRAIN = ['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--experts', '2', '--epochs', '3', '--log-every', '1'];
const LINUX = process.platform === 'linux' && existsSync('/dev/full') && existsSync('/proc/self/fdinfo');
const SKIP = { skip: !LINUX, meta: { skipReason: '/dev/full and /proc/self/fdinfo are Linux\'s: the failing-stream tests need them' } };
const STACK = /^\s+at /m;

/** Run the CLI with stdout or stderr on /dev/full (the other one piped). */
async function moeFull(stream: 'stdout' | 'stderr', args: readonly string[], cwd = ROOT): Promise<RunResult> {
  const full = openSync('/dev/full', 'w');
  try {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd,
      stdio: ['ignore', stream === 'stdout' ? full : 'pipe', stream === 'stderr' ? full : 'pipe'],
      env: { ...process.env, FORCE_COLOR: '0' },
    });
    if (stream === 'stdout') child.stdout = null;
    return await finishPartial(child);
  } finally {
    closeSync(full);
  }
}

/** {@link finish} for a child with one of stdout/stderr not piped. */
function finishPartial(child: ReturnType<typeof spawn>): Promise<RunResult> {
  if (child.stdout && child.stderr) return finish(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr: withoutFallbackNotice(stderr) }));
  });
}

/** Run the CLI from a shell with `redirect` applied to it (e.g. `>&-`, `>/dev/null`). */
function moeShell(redirect: string, args: readonly string[], cwd = ROOT): Promise<RunResult> {
  const child = spawn('/bin/sh', ['-c', `exec "$0" "$@" ${redirect}`, process.execPath, MAIN, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  return finish(child);
}

let dir: string;
let model: string;
beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-streams-'));
  model = join(dir, 'reg.moe');
  const r = await moe([...TRAIN, '--save', model]);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('stderr on a full disk (train)', SKIP, () => {
  it('stops writing progress, trains, saves a loadable model, prints the summary, exits 74', async () => {
    const save = join(dir, 'sf.moe');
    const r = await moeFull('stderr', [...TRAIN, '--save', save]);
    expect(r.code).toBe(74);
    expect(r.stdout).toContain(`saved      ${save}`);
    expect(existsSync(save)).toBe(true);
    const i = await moe(['inspect', save, '--json']);
    expect(i.code, i.stderr).toBe(0);
    expect(lastJson(i.stdout).training).toMatchObject({ epoch: 3 });
  });

  it('--json: the JSON line still comes, then exit 74', async () => {
    const save = join(dir, 'sf-json.moe');
    const r = await moeFull('stderr', [...TRAIN, '--save', save, '--json']);
    expect(r.code).toBe(74);
    expect(lastJson(r.stdout).saved).toBe(save);
    expect(JSON.parse(await readFile(save, 'utf8'))).toMatchObject({ format: 'local-experts-model' });
  });

  it('a command that writes only a notice to stderr (export) exits 74 with its file written', async () => {
    const out = join(dir, 'e.onnx');
    const r = await moeFull('stderr', ['export', '--model', model, '--format', 'onnx', '--out', out]);
    expect(r.code).toBe(74);
    expect(existsSync(out)).toBe(true);
  });

  it('a failure keeps its own exit code (a missing model file is still 1)', async () => {
    const r = await moeFull('stderr', ['inspect', join(dir, 'missing.moe')]);
    expect(r.code).toBe(1);
  });
});

describe('stdout on a full disk: one line, exit 74, no stack trace', SKIP, () => {
  const cases: [string, () => string[]][] = [
    ['inspect', () => ['inspect', model]],
    ['inspect --json', () => ['inspect', model, '--json']],
    ['train', () => [...TRAIN, '--save', join(dir, 'full-stdout.moe')]],
    ['predict', () => ['predict', '--model', model, '--data', REGRESSION]],
    ['eval', () => ['eval', '--model', model, '--data', REGRESSION]],
    ['bench --help', () => ['bench', '--help']],
    ['--help', () => ['--help']],
    ['--version', () => ['--version']],
  ];
  it.each(cases)('%s', async (_name, args) => {
    const r = await moeFull('stdout', args());
    expect(r.code, r.stderr).toBe(74);
    expect(r.stderr).not.toMatch(STACK);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('moe: error:'));
    expect(errors).toEqual(['moe: error: cannot write to stdout: no space left on the device (ENOSPC)']);
  });

  it('train still saves its model before reporting', async () => {
    const save = join(dir, 'full-stdout-2.moe');
    const r = await moeFull('stdout', [...TRAIN, '--save', save]);
    expect(r.code).toBe(74);
    const i = await moe(['inspect', save]);
    expect(i.code, i.stderr).toBe(0);
  });

  it('export writes nothing to stdout: a full stdout does not matter (exit 0)', async () => {
    const r = await moeFull('stdout', ['export', '--model', model, '--format', 'safetensors', '--out', join(dir, 'e.safetensors')]);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('stdout closed (>&-)', SKIP, () => {
  it('inspect: one line, exit 74', async () => {
    const r = await moeShell('>&-', ['inspect', model]);
    expect(r.code).toBe(74);
    expect(r.stderr.trim()).toMatch(/^moe: error: cannot write to stdout: it is closed .*>\/dev\/null/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('train: saves its model, then exit 74', async () => {
    const save = join(dir, 'closed.moe');
    const r = await moeShell('>&-', [...TRAIN, '--save', save]);
    expect(r.code).toBe(74);
    expect(r.stderr).toContain('cannot write to stdout: it is closed');
    expect(existsSync(save)).toBe(true);
  });

  it('>/dev/null is a choice to discard: exit 0', async () => {
    const r = await moeShell('>/dev/null', ['inspect', model]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('export --out with stdout closed loses nothing: exit 0', async () => {
    const r = await moeShell('>&-', ['export', '--model', model, '--format', 'onnx', '--out', join(dir, 'closed.onnx')]);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('a reader that stops early is not an error', SKIP, () => {
  it('predict | head -n 1 (EPIPE on a 10,000-row output): exit 0', async () => {
    const big = join(dir, 'big.csv');
    const rows = Array.from({ length: 10_000 }, (_, i) => `${(i % 97) / 50 - 1},${(i % 89) / 45 - 1},0`);
    await writeFile(big, ['x1,x2,y', ...rows].join('\n') + '\n');
    const child = spawn('bash', ['-c', 'set -o pipefail; "$0" "$@" | head -n 1', process.execPath, MAIN, 'predict', '--model', model, '--data', big], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const r = await finish(child);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('y,gate_0,gate_1,expert\n');
  });
});

describe('--help documents exit code 74', () => {
  it.each([['train'], ['predict'], ['eval'], ['inspect'], ['export'], ['bench'], ['reproduce']])('%s', async (command) => {
    const r = await moe([command, '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}74 {3}stdout or stderr could not be written/m);
  });
});
