// JS → safetensors → PyTorch (examples/pytorch/local_experts.py) and back: PyTorch's
// predictions match predict's; a model trained in PyTorch loads here, predicts what
// PyTorch predicts and trains on; our momentum and Adam steps are torch.optim's.
// Skipped, with the reason printed, where no interpreter can import torch.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../src/data/dataset.js';
import { cloneState } from '../src/model/state.js';
import { stateFromSafetensors, stateToSafetensors } from '../src/io/safetensors-state.js';
import { Mixture } from '../src/mixture.js';
import { compare, EXPORT_CASES, regressionData, scaleOf, trainCase, type ExportCase } from './helpers/export-models.js';
import { findTorchPython } from '../src/python/find-torch.js';

const SCRIPT = fileURLToPath(new URL('../examples/pytorch/local_experts.py', import.meta.url));
const torch = await findTorchPython();
if (!torch.python) console.log(`PyTorch tests skipped: no interpreter can import torch (${'reason' in torch ? torch.reason : ''})`);
const dir = await mkdtemp(join(tmpdir(), 'moe-pytorch-'));
const measured: string[] = [];
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  if (torch.python) console.log(`PyTorch ${torch.torch} (${torch.python}) vs local-experts, max |Δ| (worst |Δ|/tolerance):\n${measured.join('\n')}`);
});

function python(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // One thread: the tests share two cores with everything else.
    const env = { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };
    execFile(torch.python!, [SCRIPT, ...args], { env, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${SCRIPT} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** A CSV of n rows: an unused `id` column first, the features, and the targets when given (by name). */
async function writeCsv(file: string, m: Mixture, x: Float32Array, data?: Dataset): Promise<void> {
  const D = m.config.inputs;
  const n = x.length / D;
  const targets = data ? m.targetNames! : [];
  const lines = [['id', ...m.featureNames!, ...targets].join(',')];
  for (let r = 0; r < n; r++) {
    const cells = [String(r), ...Array.from(x.subarray(r * D, (r + 1) * D), String)];
    if (data?.task === 'classification') cells.push(m.classNames![data.labels![r]!]!);
    else if (data) for (let k = 0; k < m.config.outputs; k++) cells.push(String(data.y![r * m.config.outputs + k]));
    lines.push(cells.join(','));
  }
  await writeFile(file, lines.join('\n') + '\n');
}

/** `local_experts.py MODEL CSV`'s output as a flat n×K array (the header checked). */
async function torchPredict(model: string, csv: string, K: number): Promise<Float32Array> {
  const { stdout } = await python([model, csv]);
  const [head, ...rows] = stdout.trim().split('\n');
  expect(head).toBe(Array.from({ length: K }, (_, k) => `output_${k}`).join(','));
  return Float32Array.from(rows.flatMap((l) => l.split(',').map(Number)));
}

let fileNo = 0;
const path = (ext: string) => join(dir, `f${++fileNo}.${ext}`);

describe.skipIf(!torch.python)('PyTorch predicts what predict predicts', () => {
  it.each(EXPORT_CASES.map((c) => [c.name, c] as [string, ExportCase]))('%s (batch 1 and 1,000)', async (_name, c) => {
    const { m, inputs } = await trainCase(c);
    const model = path('safetensors');
    await writeFile(model, stateToSafetensors(cloneState(m.state)));
    for (const n of [1, 1000]) {
      const x = inputs(n);
      const csv = path('csv');
      await writeCsv(csv, m, x);
      const got = await torchPredict(model, csv, m.config.outputs);
      const r = compare(m.predict(x).output, got, scaleOf(m, 'output'));
      measured.push(`  JS → PyTorch, ${c.name}, N=${n}: output ${r.maxAbs.toExponential(2)} (${r.worst.toFixed(3)})`);
      expect(r.worst, `row ${Math.floor(r.at / m.config.outputs)}`).toBeLessThanOrEqual(1);
    }
  }, 120_000);
});

describe.skipIf(!torch.python)('trained in PyTorch, back here', () => {
  it.each([EXPORT_CASES[1]!, EXPORT_CASES[5]!].map((c) => [c.name, c] as [string, ExportCase]))(
    '%s: --train 5 → loads here, predicts as PyTorch does, trains on',
    async (_name, c) => {
      const { m, train, inputs } = await trainCase(c);
      const model = path('safetensors'), trained = path('safetensors'), weightsOnly = path('safetensors');
      await writeFile(model, stateToSafetensors(cloneState(m.state)));
      const trainCsv = path('csv');
      await writeCsv(trainCsv, m, train.x, train);
      const { stderr } = await python([model, trainCsv, '--train', '5', '--out', trained]);
      expect(stderr.trim().split('\n')).toHaveLength(5); // one loss line per step
      await python([model, trainCsv, '--train', '5', '--out', weightsOnly, '--weights-only']);

      const back = stateFromSafetensors(await readFile(trained), trained);
      expect(back.hasOptimizerState).toBe(true);
      expect(back.state.training.step).toBe(m.training.step + 5);
      expect(Array.from(back.state.params.expertParams)).not.toEqual(Array.from(m.params.expertParams));
      const only = stateFromSafetensors(await readFile(weightsOnly), weightsOnly);
      expect(only.hasOptimizerState).toBe(false);
      expect(Array.from(only.state.params.expertParams)).toEqual(Array.from(back.state.params.expertParams));

      const here = await Mixture.fromState(back.state);
      for (const n of [1, 1000]) {
        const x = inputs(n);
        const csv = path('csv');
        await writeCsv(csv, m, x);
        const theirs = await torchPredict(trained, csv, m.config.outputs);
        const r = compare(here.predict(x).output, theirs, scaleOf(here, 'output'));
        measured.push(`  PyTorch --train 5 → JS, ${c.name}, N=${n}: output ${r.maxAbs.toExponential(2)} (${r.worst.toFixed(3)})`);
        expect(r.worst).toBeLessThanOrEqual(1);
      }

      // Training continues here from the weights-only file (the optimiser restarts).
      const cont = await Mixture.fromState(only.state);
      const before = cont.params.expertParams.slice();
      const fit = await cont.fit(train, { epochs: 1, batchSize: 32 });
      const loss = fit.history.at(-1)!.loss;
      expect(Number.isFinite(loss)).toBe(true);
      expect(Array.from(cont.params.expertParams)).not.toEqual(Array.from(before));
      measured.push(`  continued here from PyTorch's weights (${c.name}): 1 epoch, loss ${loss.toFixed(4)}`);
    },
    120_000,
  );
});

describe.skipIf(!torch.python)("our optimisers are torch.optim's (same data, same steps, same result)", () => {
  // Full-batch steps, so both sides see the same gradient; 5 steps in each.
  const data = regressionData(200, 21);

  const optimisers: [string, { name: 'momentum' | 'adam'; lr: number; weightDecay: number }, number][] = [
    ['momentum (μ 0.9, weight decay 0.01), continuing from a saved velocity', { name: 'momentum', lr: 0.05, weightDecay: 0.01 }, 3],
    ['adam (weight decay 0.01), from the start', { name: 'adam', lr: 0.01, weightDecay: 0.01 }, 0],
    ['adam (weight decay 0.01), continuing from saved moments', { name: 'adam', lr: 0.01, weightDecay: 0.01 }, 3],
  ];
  it.for(optimisers)('%s', { timeout: 120_000 }, async ([name, optimizer, warmup]) => {
    const m = await Mixture.create({
      task: 'regression', inputs: 3, outputs: 2, experts: 2, expert: 'mlp:4', gate: 'linear', loss: 'gaussian', seed: 9,
      optimizer: { ...optimizer }, featureNames: data.featureNames!, targetNames: data.targetNames!,
    });
    const full = { batchSize: data.n, shuffle: false };
    const initial = cloneState(m.state);
    await m.fit(data, { epochs: 1, ...full }); // fits the standardisation (and takes a step)
    if (warmup === 0) {
      // Back to the initial weights and a fresh optimiser, keeping the standardisation.
      m.params.gateParams.set(initial.params.gateParams);
      m.params.expertParams.set(initial.params.expertParams);
      m.params.gateOpt.fill(0);
      m.params.expertOpt.fill(0);
      m.state.training.step = 0;
    } else {
      await m.fit(data, { epochs: warmup - 1, ...full });
    }
    const model = path('safetensors'), out = path('safetensors'), csv = path('csv');
    await writeFile(model, stateToSafetensors(cloneState(m.state)));
    await writeCsv(csv, m, data.x, data);
    await python([model, csv, '--train', '5', '--out', out]);
    await m.fit(data, { epochs: 5, ...full });

    const theirs = stateFromSafetensors(await readFile(out), out).state;
    const x = regressionData(1000, 5).x;
    const r = compare(m.predict(x).output, (await Mixture.fromState(theirs)).predict(x).output, scaleOf(m, 'output'));
    let maxParam = 0;
    for (const k of ['gateParams', 'expertParams'] as const) {
      for (let j = 0; j < theirs.params[k].length; j++) maxParam = Math.max(maxParam, Math.abs(theirs.params[k][j]! - m.params[k][j]!));
    }
    measured.push(`  5 steps of ${name} here vs torch.optim: max |Δθ| ${maxParam.toExponential(2)}, output ${r.maxAbs.toExponential(2)} (${r.worst.toFixed(3)})`);
    expect(maxParam).toBeLessThanOrEqual(1e-5);
    expect(r.worst).toBeLessThanOrEqual(1);
  });
});
