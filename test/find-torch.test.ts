/**
 * Finding a Python interpreter that imports torch (src/python/find-torch.ts), as the
 * PyTorch round trips and the PyTorch peer benchmark use it. Tests that need torch are
 * skipped, with the reason printed, where no interpreter here imports it.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findTorchPython, probeTorch, PYTHON_CANDIDATES } from '../src/python/find-torch.js';
import { torchFixture } from './helpers/torch-fixture.js';

const fx = torchFixture('moe-find-torch-');
const { torchOrSkip } = fx;

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
    const wrapper = join(fx.dir, 'my-python');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${t.python} "$@"\n`);
    chmodSync(wrapper, 0o755);
    expect(await findTorchPython({ env: { ...process.env, MOE_PYTHON: wrapper } })).toEqual({ python: wrapper, torch: t.torch });
  });

  it('falls through to python3 and /usr/bin/python3 when MOE_PYTHON does not exist', async (ctx) => {
    const t = torchOrSkip(ctx);
    expect(await findTorchPython({ env: { ...process.env, MOE_PYTHON: join(fx.dir, 'no-such-python') } })).toEqual(t);
  });

  it('names every interpreter tried and its last error line where none imports torch', async () => {
    const r = await findTorchPython({ env: fx.noTorchEnv });
    expect(r.python).toBeUndefined();
    if (r.python !== undefined) return;
    expect(r.reason).toContain(`MOE_PYTHON=${join(fx.dir, 'no-such-python')}: not found`);
    for (const p of PYTHON_CANDIDATES) expect(r.reason).toMatch(new RegExp(`${p.replace(/[/.]/g, '\\$&')}: (not found|ImportError: torch blocked by the test)`));
    // The order tried: MOE_PYTHON, then the candidates.
    const at = [`MOE_PYTHON=`, ...PYTHON_CANDIDATES.map((p) => `; ${p}: `)].map((s) => r.reason.indexOf(s));
    expect(at.every((v) => v >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
  });
});
