/**
 * Hostile round three (issue 16) through the CLI, the model side: a run never exits 0
 * with a file nothing loads, predictions are never NaN with exit 0, limits are checked
 * when a model is created and before training starts, and hostile model files are one
 * error line.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseModelBytes, toModelDocument } from '../src/io/model-file.js';
import { decodeSafetensors, encodeSafetensors } from '../src/io/safetensors.js';
import { moe, requireBuild, type RunResult } from './fixtures/cli/harness.js';

let dir: string;
const at = (name: string): string => join(dir, name);
/** The reg.csv: 200 rows a, b, c → y = 2a − b ± 0.5 on the sign of c. */
let reg: string;
/** A 4-expert regression model trained on it (JSON), and the same as safetensors. */
let regModel: string;
let regSafetensors: string;

/** Exactly one stderr line, nothing on stdout; returns the line. */
function oneLine(r: RunResult, code: number): string {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0]!;
}

beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-cli-hostile3-'));
  let csv = 'a,b,c,y\n';
  for (let i = 0; i < 200; i++) {
    const a = Math.sin(i * 1.37), b = Math.cos(i * 0.71), c = Math.sin(i * 2.3 + 1);
    csv += `${a.toFixed(4)},${b.toFixed(4)},${c.toFixed(4)},${(2 * a - b + (c > 0 ? 0.5 : -0.5)).toFixed(4)}\n`;
  }
  reg = at('reg.csv');
  await writeFile(reg, csv);
  regModel = at('reg.moe');
  regSafetensors = at('reg.safetensors');
  const train = (save: string) => moe(['train', '--data', reg, '--target', 'y', '--task', 'regression', '--experts', '4', '--epochs', '3', '--save', save]);
  const [a, b] = await Promise.all([train(regModel), train(regSafetensors)]);
  expect(a.code, a.stderr).toBe(0);
  expect(b.code, b.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('defect 12: no NaN prediction with exit 0', () => {
  it('3e38 in a regression model: one DataError line naming the row and column, exit 1', async () => {
    const big = at('big.csv');
    await writeFile(big, 'a,b,c\n0.1,0.2,0.3\n3e38,0,0\n');
    const line = oneLine(await moe(['predict', '--model', regModel, '--data', big]), 1);
    expect(line).toMatch(/^moe: error: .*big\.csv, row 2, column a: the prediction is (NaN|-?Infinity), not a finite number: input 3\.\d+e\+38 is /);
    const bigY = at('big-y.csv');
    await writeFile(bigY, 'a,b,c,y\n0.1,0.2,0.3,1\n3e38,0,0,1\n');
    expect(oneLine(await moe(['eval', '--model', regModel, '--data', bigY]), 1)).toMatch(/big-y\.csv, row 2, column a: the prediction is/);
  });

  it('a checksum-valid model whose inputScaler.std is 1e-300 is refused by every command', async () => {
    const { state } = parseModelBytes(await readFile(regModel), regModel);
    state.inputScaler!.std[1] = 1e-300;
    const edited = at('tiny-std.moe');
    await writeFile(edited, JSON.stringify(toModelDocument(state, 'blas')));
    expect(oneLine(await moe(['inspect', edited]), 1)).toMatch(/^moe: error: .*tiny-std\.moe: inputScaler\.std\[1\]: is outside .*no float32 column has this spread$/);
  });
});

describe('defect 3: a successful run never saves a file nothing loads', () => {
  it('--z-loss 1e20: the run fails, or what it saved loads', async () => {
    const z = at('z.moe');
    const r = await moe(['train', '--data', reg, '--target', 'y', '--task', 'regression', '--routing', 'topk:2', '--loss', 'cooperative', '--z-loss', '1e20', '--epochs', '3', '--save', z]);
    if (r.code === 0 || existsSync(z)) {
      const again = await moe(['inspect', z]);
      expect(again.code, again.stderr).toBe(0);
    }
    if (r.code !== 0) expect(r.stderr.trimEnd().split('\n').at(-1)).toMatch(/^moe: error: /);
  });
});

describe('defect 4: deep MLPs are refused when the model is created', () => {
  const deep = `mlp:${Array.from({ length: 65 }, () => 2).join(',')}`;
  it.each([
    ['--expert', 'm.moe'],
    ['--gate', 'm.safetensors'],
  ])('%s with 65 hidden layers (saving to %s): exit 2 before training, nothing written', async (flag, name) => {
    const out = at(`deep-${name}`);
    const line = oneLine(await moe(['train', '--data', reg, '--target', 'y', '--task', 'regression', flag, deep, '--epochs', '1', '--save', out]), 2);
    expect(line).toContain('hidden: has 65 hidden layers; at most 64 are supported');
    expect(existsSync(out)).toBe(false);
  });
});

describe('defect 6: counters checked before training', () => {
  it('--epochs 9007199254740992 is refused', async () => {
    const line = oneLine(await moe(['train', '--data', reg, '--target', 'y', '--task', 'regression', '--epochs', '9007199254740992']), 2);
    expect(line).toContain('--epochs');
    expect(line).toContain('at most 9007199254740991');
  });

  it('resuming a model at step 2^53 − 1 in place is refused before training, and the file is kept', async () => {
    const { state } = parseModelBytes(await readFile(regModel), regModel);
    state.training.step = Number.MAX_SAFE_INTEGER;
    const path = at('old.moe');
    const bytes = JSON.stringify(toModelDocument(state, 'blas'));
    await writeFile(path, bytes);
    const r = await moe(['train', '--data', reg, '--resume', path, '--epochs', '4', '--save', path]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--epochs: .*the most steps a model file holds/);
    expect(await readFile(path, 'utf8')).toBe(bytes);
  });
});

describe('rough edges', () => {
  it('weights-only files: the fresh-optimiser line only where something trains', async () => {
    const { tensors, metadata } = decodeSafetensors(await readFile(regSafetensors), regSafetensors);
    const weights = at('weights.safetensors');
    await writeFile(weights, encodeSafetensors([...tensors].filter(([n]) => !n.startsWith('optimizer.')), metadata));
    const data = at('x.csv');
    await writeFile(data, 'a,b,c\n0.1,0.2,0.3\n');
    for (const args of [
      ['inspect', weights],
      ['predict', '--model', weights, '--data', data],
      ['eval', '--model', weights, '--data', reg],
      ['export', '--model', weights, '--format', 'onnx', '--out', at('w.onnx')],
    ]) {
      const r = await moe(args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toContain('training continues');
    }
    const r = await moe(['train', '--data', reg, '--resume', weights, '--epochs', '4', '--save', at('w2.moe')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('holds weights only (no optimiser state): training continues with a fresh adam optimiser from step 0');
  });

  it('a safetensors length field of 2^63: "header length … out of range"', async () => {
    const b = new Uint8Array(await readFile(regSafetensors));
    new DataView(b.buffer, b.byteOffset).setBigUint64(0, 2n ** 63n, true);
    const path = at('absurd.safetensors');
    await writeFile(path, b);
    expect(oneLine(await moe(['inspect', path]), 1)).toBe(`moe: error: ${path}: header length 9223372036854775808 is out of range: a header is at most 100000000 bytes (not a safetensors file, or corrupt)`);
  });

  it('a 4 KB safetensors file asking for 2^24 experts: one line, exit 1', async () => {
    const { tensors, metadata } = decodeSafetensors(await readFile(regSafetensors), regSafetensors);
    const config = JSON.parse(metadata.config!);
    config.experts = 2 ** 24;
    config.routing.k = 2 ** 24;
    const path = at('bomb.safetensors');
    await writeFile(path, encodeSafetensors([...tensors], { ...metadata, config: JSON.stringify(config) }));
    expect(oneLine(await moe(['inspect', path]), 1)).toMatch(/bomb\.safetensors: config: 16,777,216 experts .* need 536,870,912 bytes of parameter tensors; the file holds \d+$/);
  });

  it('expert-choice:1e-3 trains as 0.001; expert-choice:x gets its own message', async () => {
    const ok = await moe(['train', '--data', reg, '--target', 'y', '--task', 'regression', '--routing', 'expert-choice:1e-3', '--epochs', '1']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(oneLine(await moe(['train', '--data', reg, '--target', 'y', '--task', 'regression', '--routing', 'expert-choice:x']), 2)).toContain('expert-choice:C needs a capacity factor C > 0');
  });

  it('--z-loss 1e300 is blamed on --z-loss; --gate mlp:50000000 on --gate', async () => {
    const base = ['train', '--data', reg, '--target', 'y', '--task', 'regression', '--epochs', '1'];
    expect(oneLine(await moe([...base, '--routing', 'topk:2', '--loss', 'cooperative', '--z-loss', '1e300']), 2)).toBe(
      'moe: error: --z-loss: 1e+300 is over 3.4e38, the largest float32: the training computes in float32, where this weight is Infinity',
    );
    expect(oneLine(await moe([...base, '--gate', 'mlp:50000000']), 2)).toContain('--gate');
  });

  it('MOE_REQUIRE_BACKEND with an unknown value is refused in one line', async () => {
    expect(oneLine(await moe(['inspect', regModel], undefined, { MOE_REQUIRE_BACKEND: 'openblas' }), 2)).toBe(
      'moe: error: MOE_REQUIRE_BACKEND: unknown backend "openblas" (expected blas, tensorflow, wasm, cpu, or unset)',
    );
  });
});
