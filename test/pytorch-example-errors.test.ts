/**
 * The PyTorch example's messages (issue 17): a Python without torch gets one line that
 * names MOE_PYTHON (and MOE_PYTHON, when set, runs the script there); a label outside the
 * model's classes names the file, row, column and the classes. Needs an interpreter that
 * imports torch for the model round trip; skips (saying why) without one.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mixture } from '../src/mixture.js';
import { loadVowels } from '../src/data/vowels.js';
import { findTorchPython } from '../src/python/find-torch.js';

const SCRIPT = fileURLToPath(new URL('../examples/pytorch/local_experts.py', import.meta.url));
const torch = await findTorchPython();
if (!torch.python) console.log(`PyTorch example error tests skipped: no interpreter can import torch (${'reason' in torch ? torch.reason : ''})`);

let dir: string;
let model: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-pyerr-'));
  const { train } = await loadVowels({ seed: 1 });
  const m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 2, seed: 1, featureNames: train.featureNames!, targetNames: ['Vowel'], classNames: train.classNames! });
  await m.fit(train, { epochs: 1 });
  model = join(dir, 'v.safetensors');
  await m.save(model);
  await m.close();
  await writeFile(join(dir, 'bad.csv'), 'F1,F2,Vowel\n300,2300,iy\n700,1200,eh\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function run(python: string, args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const e: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1', ...env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete e[k];
    execFile(python, args, { env: e, encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe.skipIf(!torch.python)('examples/pytorch/local_experts.py messages', () => {
  // `python -S` skips site-packages, where Debian's torch lives: a Python without torch.
  it('a Python without torch: one line naming MOE_PYTHON, exit 1', async () => {
    const r = await run(torch.python!, ['-S', SCRIPT, model, join(dir, 'bad.csv')], { MOE_PYTHON: undefined });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot import torch .*MOE_PYTHON/);
  });

  it('MOE_PYTHON set: the script runs with that interpreter', async () => {
    const r = await run(torch.python!, ['-S', SCRIPT, model, join(dir, 'bad.csv')], { MOE_PYTHON: torch.python! });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('output_0,output_1,output_2,output_3');
  });

  it('a label outside the classes names the file, row, column and the classes', async () => {
    const r = await run(torch.python!, [SCRIPT, model, join(dir, 'bad.csv'), '--train', '1', '--out', join(dir, 't.safetensors')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`local_experts.py: ${join(dir, 'bad.csv')}: row 2, column Vowel: label 'eh' is not one of the model's classes (iy, ih, aa, ah)`);
  });
});
