/**
 * The library leaves the process as it found it: a parallel fit does not change the
 * environment the user's child processes inherit, and product code sets no V8 flag.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const fixture = join(root, 'test', 'fixtures', 'environment-after-fit.mjs');

interface Report {
  backend: string;
  workers: number;
  before: Record<string, string | null>;
  here: Record<string, string | null>;
  child: Record<string, string | null>;
}

/** Runs the fixture in a fresh process with `env`; its report comes back through a file. */
function runFixture(env: NodeJS.ProcessEnv): Report {
  const dir = mkdtempSync(join(tmpdir(), 'moe-env-'));
  try {
    const out = join(dir, 'report.json');
    const r = spawnSync(process.execPath, [fixture, out], { env, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, `fixture failed: ${r.stderr}`).toBe(0);
    return JSON.parse(readFileSync(out, 'utf8')) as Report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function envWithout(...names: string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const n of names) delete env[n];
  return env;
}

describe('a parallel fit leaves the environment as it found it', () => {
  it('BLAS thread variables unset before: unset after, in this process and in a child spawned after the fit', () => {
    const r = runFixture(envWithout('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS'));
    expect(r.workers).toBe(2);
    const unset = { OPENBLAS_NUM_THREADS: null, OMP_NUM_THREADS: null };
    expect(r.before).toEqual(unset);
    expect(r.here).toEqual(unset);
    expect(r.child).toEqual(unset);
  }, 150_000);

  it("the user's own values are kept as they were", () => {
    const r = runFixture({ ...envWithout('OMP_NUM_THREADS'), OPENBLAS_NUM_THREADS: '3' });
    expect(r.child).toEqual({ OPENBLAS_NUM_THREADS: '3', OMP_NUM_THREADS: null });
    expect(r.here).toEqual(r.before);
  }, 150_000);
});

describe('product code sets no V8 flag', () => {
  /** Every .ts file under `dir`. */
  function sources(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
    });
  }

  it('no setFlagsFromString and no --expose-gc in src/ or workers/', () => {
    const files = [...sources(join(root, 'src')), ...sources(join(root, 'workers'))];
    expect(files.length).toBeGreaterThan(50);
    const offenders = files.filter((f) => /setFlagsFromString|--expose-gc|--allow-natives-syntax/.test(readFileSync(f, 'utf8')));
    expect(offenders.map((f) => f.slice(root.length + 1))).toEqual([]);
  });
});
