/**
 * Finding a Python interpreter that imports torch (src/python/find-torch.ts), as the
 * PyTorch round trips and the PyTorch peer benchmark use it. Tests that need torch are
 * skipped, with the reason printed, where no interpreter here imports it.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findTorchPython, probeTorch, PYTHON_CANDIDATES, type TorchPython } from '../src/python/find-torch.js';

let found: Awaited<ReturnType<typeof findTorchPython>>;
let dir: string;
/** An environment in which `import torch` fails for every interpreter: a torch.py that raises, first on PYTHONPATH. */
let noTorchEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  const env = { ...process.env };
  delete env.MOE_PYTHON;
  found = await findTorchPython({ env });
  if (found.python === undefined) console.warn(`PyTorch tests skipped: ${found.reason}`);
  dir = mkdtempSync(join(tmpdir(), 'moe-find-torch-'));
  writeFileSync(join(dir, 'torch.py'), 'raise ImportError("torch blocked by the test")\n');
  noTorchEnv = { ...env, PYTHONPATH: dir, MOE_PYTHON: join(dir, 'no-such-python') };
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Skip (with the reason printed) where no interpreter imports torch; the interpreter otherwise. */
function torchOrSkip(ctx: { skip: (note?: string) => void }): TorchPython {
  if (found.python === undefined) {
    ctx.skip(`no Python imports torch here: ${found.reason}`);
    throw new Error('unreachable');
  }
  return found;
}

describe('findTorchPython', () => {
  it('answers the first candidate that imports torch: every one before it fails the probe', async (ctx) => {
    const t = torchOrSkip(ctx);
    expect(PYTHON_CANDIDATES).toContain(t.python);
    expect(t.torch).toMatch(/^\d+\.\d+/);
    for (const earlier of PYTHON_CANDIDATES.slice(0, PYTHON_CANDIDATES.indexOf(t.python))) {
      expect((await probeTorch(earlier)).ok, `${earlier} imports torch but was passed over`).toBe(false);
    }
    expect(await probeTorch(t.python)).toEqual({ ok: true, torch: t.torch });
  });

  it('tries MOE_PYTHON first', async (ctx) => {
    const t = torchOrSkip(ctx);
    // A wrapper around the interpreter that works: a different path, so the answer tells which was taken.
    const wrapper = join(dir, 'my-python');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${t.python} "$@"\n`);
    chmodSync(wrapper, 0o755);
    expect(await findTorchPython({ env: { ...process.env, MOE_PYTHON: wrapper } })).toEqual({ python: wrapper, torch: t.torch });
  });

  it('falls through to python3 and /usr/bin/python3 when MOE_PYTHON does not exist', async (ctx) => {
    const t = torchOrSkip(ctx);
    expect(await findTorchPython({ env: { ...process.env, MOE_PYTHON: join(dir, 'no-such-python') } })).toEqual(t);
  });

  it('names every interpreter tried and its last error line where none imports torch', async () => {
    const r = await findTorchPython({ env: noTorchEnv });
    expect(r.python).toBeUndefined();
    if (r.python !== undefined) return;
    expect(r.reason).toContain(`MOE_PYTHON=${join(dir, 'no-such-python')}: not found`);
    for (const p of PYTHON_CANDIDATES) expect(r.reason).toMatch(new RegExp(`${p.replace(/[/.]/g, '\\$&')}: (not found|ImportError: torch blocked by the test)`));
    // The order tried: MOE_PYTHON, then the candidates.
    const at = [`MOE_PYTHON=`, ...PYTHON_CANDIDATES.map((p) => `; ${p}: `)].map((s) => r.reason.indexOf(s));
    expect(at.every((v) => v >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
  });
});
