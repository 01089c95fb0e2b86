// Trained mixtures and data for the export tests (ONNX, safetensors, PyTorch): the vowels
// and a regression set in awkward units, and the tolerance the exports are held to.
import { Mixture, type CreateOptions } from '../../src/mixture.js';
import type { Dataset } from '../../src/data/dataset.js';
import { loadVowels } from '../../src/data/vowels.js';
import { regionSlots } from '../../src/io/export-state.js';
import type { LossName } from '../../src/model/config.js';
import { testRandom } from './backends.js';

/** One model to export: data set, error function, architectures, optimiser. */
export interface ExportCase {
  name: string;
  data: 'vowels' | 'regression';
  loss: LossName;
  expert: string;
  gate: string;
  experts: number;
  optimizer?: CreateOptions['optimizer'];
  /** Sparse routing and its options (dense when absent). */
  routing?: Pick<CreateOptions, 'routing' | 'noise' | 'balanceBias' | 'balanceLoss'>;
  /** Whether ONNX exports it (expert-choice is refused there). */
  onnx?: boolean;
}

/**
 * Every error function, every activation, linear and MLP gates and experts: the ONNX and
 * PyTorch tests run all of them.
 */
export const EXPORT_CASES: readonly ExportCase[] = [
  { name: 'vowels categorical, linear experts, linear gate', data: 'vowels', loss: 'categorical', expert: 'linear', gate: 'linear', experts: 4 },
  { name: 'vowels categorical, tanh MLP experts, relu MLP gate', data: 'vowels', loss: 'categorical', expert: 'mlp:8', gate: 'mlp:6:relu', experts: 3 },
  { name: 'vowels competitive, sigmoid MLP experts, linear gate', data: 'vowels', loss: 'competitive', expert: 'mlp:5:sigmoid', gate: 'linear', experts: 3 },
  { name: 'regression gaussian, linear experts, sigmoid MLP gate', data: 'regression', loss: 'gaussian', expert: 'linear', gate: 'mlp:4:sigmoid', experts: 4 },
  { name: 'regression cooperative, relu MLP experts, linear gate', data: 'regression', loss: 'cooperative', expert: 'mlp:8:relu', gate: 'linear', experts: 3, optimizer: 'momentum' },
  { name: 'regression competitive, 2-layer tanh experts, tanh MLP gate', data: 'regression', loss: 'competitive', expert: 'mlp:6,5', gate: 'mlp:4', experts: 2 },
  { name: 'vowels categorical, topk:2 with balancing bias', data: 'vowels', loss: 'categorical', expert: 'mlp:6', gate: 'linear', experts: 4, routing: { routing: 'topk:2', balanceBias: 0.05 } },
  { name: 'regression gaussian, noisy topk:2', data: 'regression', loss: 'gaussian', expert: 'mlp:6', gate: 'mlp:4', experts: 4, routing: { routing: 'topk:2', noise: true, balanceLoss: 0.1 } },
  { name: 'regression cooperative, switch with balancing bias', data: 'regression', loss: 'cooperative', expert: 'mlp:6', gate: 'linear', experts: 3, routing: { routing: 'switch', balanceBias: 0.05 } },
  { name: 'vowels gaussian, expert-choice:1.5', data: 'vowels', loss: 'gaussian', expert: 'linear', gate: 'linear', experts: 4, routing: { routing: 'expert-choice:1.5' }, onnx: false },
];

/**
 * n rows of a regression task with D = 3 inputs and K = 2 targets in units far from 1:
 * inputs around 500 (±200), 0.005 (±0.005) and −50 (±10); targets around 1000 (std
 * ~200) and −3 (std ~0.4).
 */
export function regressionData(n: number, seed: number): Dataset {
  const r = testRandom(seed);
  const x = new Float32Array(n * 3), y = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const a = 300 + 400 * r.uniform(), b = 0.01 * r.uniform(), c = -50 + 10 * r.normal();
    x.set([a, b, c], 3 * i);
    y[2 * i] = 1000 + 250 * Math.sin((a - 500) / 80) + 3 * (c + 50) + 5 * r.normal();
    y[2 * i + 1] = -3 + 0.5 * Math.tanh((b - 0.005) * 600) - 0.002 * (a - 500) + 0.02 * r.normal();
  }
  return {
    task: 'regression', n, inputs: 3, x, outputs: 2, y,
    featureNames: ['freq', 'gain', 'level'], targetNames: ['power', 'offset'], source: 'regression-test',
  };
}

/** n input rows of the vowels (formants in Hz): every row of the set in turn, jittered ±5 Hz. */
export function vowelInputs(all: Dataset, n: number, seed: number): Float32Array {
  const r = testRandom(seed);
  const x = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const row = (i * 7) % all.n;
    x[2 * i] = all.x[2 * row]! + 10 * (r.uniform() - 0.5);
    x[2 * i + 1] = all.x[2 * row + 1]! + 10 * (r.uniform() - 0.5);
  }
  return x;
}

/** A trained mixture of `c` (5 epochs, so the standardisation exists), its training data and an input maker. */
export async function trainCase(c: ExportCase, epochs = 5): Promise<{ m: Mixture; train: Dataset; all: Dataset; inputs: (n: number) => Float32Array }> {
  let train: Dataset, all: Dataset;
  if (c.data === 'vowels') {
    const v = await loadVowels({ seed: 1 });
    train = v.train;
    all = v.all;
  } else {
    train = regressionData(400, 7);
    all = train;
  }
  const m = await Mixture.create({
    task: train.task, inputs: train.inputs, outputs: train.outputs, experts: c.experts,
    expert: c.expert, gate: c.gate, loss: c.loss, seed: 5, lr: 0.02,
    ...(c.optimizer ? { optimizer: c.optimizer } : {}),
    ...(c.routing ?? {}),
    ...(train.featureNames ? { featureNames: train.featureNames } : {}),
    ...(train.targetNames ? { targetNames: train.targetNames } : {}),
    ...(train.classNames ? { classNames: train.classNames } : {}),
  });
  await m.fit(train, { epochs, batchSize: 32 });
  const inputs = (n: number): Float32Array => (c.data === 'vowels' ? vowelInputs(all, n, 11 + n) : regressionData(n, 100 + n).x);
  return { m, train, all, inputs };
}

/** Largest |Δ| and the worst ratio |Δ| / (1e-5·|ref| + 1e-6·s), s the scale of element j. */
export function compare(ref: ArrayLike<number>, got: ArrayLike<number>, scale: (j: number) => number): { maxAbs: number; worst: number; at: number } {
  if (ref.length !== got.length) throw new Error(`lengths differ: ${ref.length} vs ${got.length}`);
  let maxAbs = 0, worst = 0, at = -1;
  for (let j = 0; j < ref.length; j++) {
    const d = Math.abs(ref[j]! - got[j]!);
    const ratio = Number.isNaN(d) ? Infinity : d / (1e-5 * Math.abs(ref[j]!) + 1e-6 * scale(j));
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? NaN : d;
    if (ratio > worst) {
      worst = ratio;
      at = j;
    }
  }
  return { maxAbs, worst, at };
}

/**
 * The scale s of each element of predict's outputs: the target's training std for a
 * regression output or expert output (column k = j mod K), 1 for probabilities, the gate
 * and classification outputs.
 */
export function scaleOf(m: Mixture, what: 'output' | 'gate' | 'experts'): (j: number) => number {
  if (what === 'gate' || m.config.task !== 'regression') return () => 1;
  const std = m.targetScaler!.std, K = m.config.outputs;
  return (j) => std[j % K]!;
}

/**
 * Whether the trainer's Adam state has the layout regionSlots reads: after one step from
 * zero state without weight decay, m = (1−β₁)g and v = (1−β₂)g², so v = 0.1·m² for every
 * parameter whatever g is; any other pairing of the values breaks that. Returns the first
 * mismatch, or undefined when every block (gate and each expert) reads right.
 */
export async function adamLayoutMismatch(workers = 0): Promise<string | undefined> {
  const data = regressionData(64, 3);
  const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 3, expert: 'mlp:4', gate: 'mlp:3', seed: 2 });
  await m.fit(data, { epochs: 1, batchSize: 64, shuffle: false, workers });
  const slots = regionSlots(m.config, 'adam', m.params);
  const blocks = [['gate', slots.gate] as const, ...slots.experts.map((e, i) => [`expert ${i}`, e] as const)];
  for (const [who, s] of blocks) {
    const mm = s.find((x) => x.name === 'exp_avg')!.values, vv = s.find((x) => x.name === 'exp_avg_sq')!.values;
    for (let j = 0; j < mm.length; j++) {
      const expected = 0.1 * mm[j]! * mm[j]!;
      if (!(Math.abs(vv[j]! - expected) <= 1e-5 * expected + 1e-30)) return `${who}: exp_avg_sq[${j}] = ${vv[j]} but exp_avg[${j}] = ${mm[j]} (expected ${expected})`;
    }
  }
  return undefined;
}
