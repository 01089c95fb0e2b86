/**
 * The CLI's sparse routing and export: a topk:2 model trained on the vowels is saved,
 * loaded and predicts what it predicted before saving; inspect shows the routing and the
 * load; export writes ONNX and safetensors that load back (by header, whatever the name)
 * and resume; bad export requests are one line, exit code by kind, nothing written.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadVowels } from '../src/data/vowels.js';
import { Mixture } from '../src/mixture.js';
import { lastJson, moe, requireBuild } from './fixtures/cli/harness.js';

let dir: string;
let model: string;
beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-routing-cli-'));
  model = join(dir, 'vowels-topk.moe');
  const r = await moe(['train', '--dataset', 'vowels', '--experts', '4', '--expert', 'mlp:6', '--routing', 'topk:2', '--balance-bias', '0.01', '--epochs', '15', '--workers', '2', '--save', model, '--json']);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('topk:2 on the vowels', () => {
  it('the report names the routing and gives the last epoch’s load', async () => {
    const r = await moe(['train', '--dataset', 'vowels', '--routing', 'topk:2', '--epochs', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.routing).toBe('topk:2');
    const stats = j.routingStats as { rowsPerExpert: number[]; droppedRows: number; loadCv: number; gateEntropy: number; workerBusyMs: number[] };
    // Every row goes to two experts: the rows per expert add up to twice the epoch's rows.
    expect(stats.rowsPerExpert.reduce((a, b) => a + b, 0)).toBe(2 * (j.rows as { train: number }).train);
    expect(stats.droppedRows).toBe(0);
    expect(stats.loadCv).toBeGreaterThanOrEqual(0);
    expect(stats.workerBusyMs).toHaveLength(1);
  });

  it('saved, loaded: predicts what it predicted before saving (the library’s view of the same file)', async () => {
    const { test } = await loadVowels({ seed: 1 });
    const a = await Mixture.load(model);
    expect(a.config.routing.kind).toBe('topk');
    const before = a.predict(test.x);
    const resaved = join(dir, 'resaved.moe');
    await a.save(resaved);
    const after = (await Mixture.load(resaved)).predict(test.x);
    expect(Array.from(after.output)).toEqual(Array.from(before.output));
    expect(Array.from(after.gate)).toEqual(Array.from(before.gate));
    // Two experts per row: exactly two non-zero weights, summing to 1.
    for (let r = 0; r < 5; r++) {
      const w = Array.from(before.gate.subarray(r * 4, r * 4 + 4));
      expect(w.filter((x) => x > 0)).toHaveLength(2);
      expect(w.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 5);
    }
  });

  it('inspect shows the routing, the bias and each expert’s load on data', async () => {
    const csv = join(dir, 'formants.csv');
    const { test } = await loadVowels({ seed: 1 });
    await writeFile(csv, 'F1,F2\n' + Array.from({ length: 40 }, (_, r) => `${test.x[2 * r]},${test.x[2 * r + 1]}`).join('\n') + '\n');
    const text = await moe(['inspect', model, '--data', csv]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/routing\s+topk:2, blocks of 64 rows, balancing bias step 0\.01 \(bias /);
    expect(text.stdout).toMatch(/computes \d+ rows/);
    const j = lastJson((await moe(['inspect', model, '--data', csv, '--json'])).stdout);
    const routing = j.routing as { rule: string; bias: number[] };
    expect(routing.rule).toBe('topk:2');
    expect(routing.bias).toHaveLength(4);
    const load = (j.utilisation as { rowsPerExpert: number[] }).rowsPerExpert;
    expect(load.reduce((a, b) => a + b, 0)).toBe(80);
  });
});

describe('moe export', () => {
  it('onnx: ONNX Runtime predicts what moe predicts', async () => {
    const out = join(dir, 'm.onnx');
    const r = await moe(['export', '--model', model, '--format', 'onnx', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const { test } = await loadVowels({ seed: 1 });
    const m = await Mixture.load(model);
    const session = await ort.InferenceSession.create(await readFile(out));
    const got = await session.run({ x: new ort.Tensor('float32', test.x.slice(0, 200), [100, 2]) });
    const want = m.predict(test.x.slice(0, 200));
    const data = got.output!.data as Float32Array;
    for (let j = 0; j < data.length; j++) expect(Math.abs(data[j]! - want.output[j]!)).toBeLessThanOrEqual(1e-5 * Math.abs(want.output[j]!) + 1e-6);
    await session.release();
  });

  it('safetensors: loads back by its header under any name, and --resume continues from it', async () => {
    const out = join(dir, 'weights.bin');
    expect((await moe(['export', '--model', model, '--format', 'safetensors', '--out', out])).code).toBe(0);
    const a = await Mixture.load(model), b = await Mixture.load(out);
    expect(Array.from(b.params.expertParams)).toEqual(Array.from(a.params.expertParams));
    expect(Array.from(b.params.routerBias)).toEqual(Array.from(a.params.routerBias));
    expect(b.training).toEqual(a.training);
    const resumed = join(dir, 'resumed.moe');
    const r = await moe(['train', '--dataset', 'vowels', '--resume', out, '--epochs', '17', '--save', resumed, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout).epochs).toBe(17);
  });

  it.each([
    [['export', '--model', 'MODEL', '--format', 'pdf', '--out', 'OUT'], 2, /--format/],
    [['export', '--model', 'nope.moe', '--format', 'onnx', '--out', 'OUT'], 1, /nope\.moe: file not found/],
    [['export', '--model', 'MODEL', '--format', 'onnx', '--out', '/dev/null'], 2, /--out/],
    [['export', '--model', 'MODEL', '--format', 'onnx', '--out', 'MODEL'], 2, /--out: would overwrite --model/],
    [['export', '--model', 'CORRUPT', '--format', 'safetensors', '--out', 'OUT'], 1, /checksum/],
    [['export', '--model', 'EC', '--format', 'onnx', '--out', 'OUT'], 2, /expert-choice/],
  ])('%j: exit %d, one line, nothing written', async (args, code, message) => {
    const corrupt = join(dir, 'corrupt.moe');
    const doc = JSON.parse(await readFile(model, 'utf8')) as { training: { epoch: number } };
    doc.training.epoch += 1;
    await writeFile(corrupt, JSON.stringify(doc));
    const ec = join(dir, 'ec.moe');
    if (!existsSync(ec)) {
      const t = await moe(['train', '--dataset', 'vowels', '--routing', 'expert-choice:1.5', '--loss', 'gaussian', '--epochs', '1', '--save', ec]);
      expect(t.code, t.stderr).toBe(0);
    }
    const out = join(dir, 'out', 'x.onnx');
    await rm(join(dir, 'out'), { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'out')));
    const map: Record<string, string> = { MODEL: model, CORRUPT: corrupt, EC: ec, OUT: out };
    const r = await moe(args.map((a) => map[a] ?? a));
    expect(r.code, r.stderr).toBe(code);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(await readdir(join(dir, 'out'))).toEqual([]);
  });

  it('--out through a symbolic link writes the link’s target and keeps the link', async () => {
    const target = join(dir, 'real.onnx'), link = join(dir, 'link.onnx');
    await symlink(target, link);
    expect((await moe(['export', '--model', model, '--format', 'onnx', '--out', link])).code).toBe(0);
    expect(existsSync(target)).toBe(true);
    expect((await import('node:fs')).lstatSync(link).isSymbolicLink()).toBe(true);
  });
});
