/**
 * Work per step grows linearly with the number of experts (issue 16, defect 10: an epoch of
 * 200 rows took 1.2 s at 3,000 experts and 41 s at 30,000, because UPDATE scanned the
 * whole block list once per owned expert). Checked by counting reads of the block list,
 * not by timing: the count is deterministic and does not depend on the machine's load.
 */
import { describe, expect, it } from 'vitest';
import { datasetFromArrays } from '../src/data/dataset.js';
import { fitStandardizer } from '../src/data/standardize.js';
import { ExpertSide } from '../src/engine/expert-side.js';
import { createKernels, kernelSetFromEnv } from '../src/kernels/index.js';
import { CTRL, type MixtureViews } from '../src/memory/layout.js';
import { Mixture } from '../src/mixture.js';
import { trainingData } from '../src/train/data.js';
import { TrainingSession } from '../src/train/session.js';

/** `a` behind a proxy that counts element reads into `counter.reads`. */
function counted(a: Int32Array, counter: { reads: number }): Int32Array {
  return new Proxy(a, {
    get(target, p) {
      if (typeof p === 'string' && /^\d+$/.test(p)) counter.reads++;
      return Reflect.get(target, p) as unknown;
    },
  });
}

describe('work linear in the number of experts', () => {
  it.each([
    ['dense', 2000],
    ['topk:2', 2000],
  ] as const)('%s with %i experts: one step reads the block list O(blocks + experts) times', async (routing, E) => {
    const n = 64;
    const xs = Array.from({ length: n }, (_, i) => [Math.sin(i), Math.cos(i * 0.7)]);
    const data = datasetFromArrays('regression', xs, xs.map(([a, b]) => [a! - b!]));
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: E, expert: 'linear', routing, seed: 1 });
    m.state.inputScaler = fitStandardizer(data.x, data.n, 2);
    m.state.targetScaler = fitStandardizer(data.y!, data.n, 1);
    const s = await TrainingSession.start(m.state, m.provider, trainingData(m.state, data), { maxBatch: n, workers: 0, kernels: kernelSetFromEnv() });
    try {
      const batch = Int32Array.from({ length: n }, (_, r) => r);
      await s.step.run(batch, 1e-3, 1); // writes the step's block list
      const counter = { reads: 0 };
      const v = s.views;
      const views: MixtureViews = {
        ...v,
        blockExpert: counted(v.blockExpert, counter),
        blockStart: counted(v.blockStart, counter),
        blockRows: counted(v.blockRows, counter),
        blockSlot: counted(v.blockSlot, counter),
        blockWorker: counted(v.blockWorker, counter),
      };
      const side = new ExpertSide(m.provider.sgemm, createKernels(s.memory, kernelSetFromEnv()), { config: m.state.config, optimizer: m.state.optimizer, layout: s.layout, shard: 0, owns: { first: 0, count: E } }, views);
      const blocks = Atomics.load(v.control, CTRL.BLOCKS);
      expect(blocks).toBeGreaterThan(0);
      side.forward();
      side.backward();
      side.update(1e-3, 2);
      // A constant number of reads per block and per expert; the quadratic scan read E·blocks.
      expect(counter.reads).toBeLessThanOrEqual(8 * (blocks + E));
    } finally {
      await s.close();
    }
  });
});
