/**
 * The fixture of tests that need a Python that imports torch: the interpreter found (or why
 * none was), an environment in which `import torch` fails for every interpreter, and a skip
 * that prints its reason. Registers its beforeAll/afterAll in the calling file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { findTorchPython, type TorchPython } from '../../src/python/find-torch.js';

export interface TorchFixture {
  /** What findTorchPython found (set in beforeAll). */
  found: Awaited<ReturnType<typeof findTorchPython>>;
  /** A torch.py that raises, first on PYTHONPATH, and MOE_PYTHON naming no interpreter. */
  noTorchEnv: NodeJS.ProcessEnv;
  /** A scratch folder of the file's own, removed in afterAll. */
  dir: string;
  /** Skip (with the reason printed) where no interpreter imports torch; the interpreter otherwise. */
  torchOrSkip(ctx: { skip: (note?: string) => void }): TorchPython;
}

export function torchFixture(prefix: string): TorchFixture {
  const fx = {
    torchOrSkip(ctx: { skip: (note?: string) => void }): TorchPython {
      if (fx.found.python === undefined) {
        ctx.skip(`no Python imports torch here: ${fx.found.reason}`);
        throw new Error('unreachable');
      }
      return fx.found;
    },
  } as TorchFixture;
  beforeAll(async () => {
    const env = { ...process.env };
    delete env.MOE_PYTHON;
    fx.found = await findTorchPython({ env });
    if (fx.found.python === undefined) console.warn(`PyTorch tests skipped: ${fx.found.reason}`);
    fx.dir = mkdtempSync(join(tmpdir(), prefix));
    writeFileSync(join(fx.dir, 'torch.py'), 'raise ImportError("torch blocked by the test")\n');
    fx.noTorchEnv = { ...env, PYTHONPATH: fx.dir, MOE_PYTHON: join(fx.dir, 'no-such-python') };
  });
  afterAll(() => {
    rmSync(fx.dir, { recursive: true, force: true });
  });
  return fx;
}
