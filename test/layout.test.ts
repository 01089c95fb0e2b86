/**
 * The session's memory is declared once (src/memory/layout.ts's region table): offsets,
 * views and groups come from it, and the routing stage writes only the groups
 * PHASE_WRITES names for it.
 */
import { describe, expect, it } from 'vitest';
import { datasetFromArrays } from '../src/data/dataset.js';
import { fitStandardizer } from '../src/data/standardize.js';
import { denseSizes, sparseSizes } from '../src/engine/plan.js';
import { kernelSetFromEnv } from '../src/kernels/index.js';
import { groupViews, mapViews, PHASE_WRITES, planLayout, regionGroup, type MixtureViews, type RegionName } from '../src/memory/layout.js';
import { Mixture } from '../src/mixture.js';
import { resolveMixtureConfig } from '../src/model/config.js';
import { resolveOptimizer } from '../src/optim/config.js';
import { trainingData } from '../src/train/data.js';
import { TrainingSession } from '../src/train/session.js';

describe('the region table', () => {
  it('lays out every region once, 64-byte aligned, without overlap, and maps views of its kind and length', () => {
    const config = resolveMixtureConfig({ task: 'regression', inputs: 3, outputs: 2, experts: 5, expert: 'mlp:4', routing: 'topk:2', noise: true });
    for (const sizes of [sparseSizes(config, resolveOptimizer({ name: 'adam' }), 32, 2), denseSizes(config, resolveOptimizer({ name: 'sgd' }), 32, 1)]) {
      const layout = planLayout(sizes);
      const names = layout.regions.map((r) => r.name);
      expect(new Set(names).size).toBe(names.length);
      let end = 0;
      for (const r of layout.regions) {
        expect(r.offset % 64).toBe(0);
        expect(r.offset).toBeGreaterThanOrEqual(end);
        end = r.offset + r.length * (r.kind === 'f64' ? 8 : 4);
      }
      expect(layout.byteLength).toBeGreaterThanOrEqual(end);
      const v = mapViews(new SharedArrayBuffer(layout.byteLength), layout);
      for (const r of layout.regions) {
        const view = v[r.name];
        expect(view.length, r.name).toBe(r.length);
        expect(view.constructor, r.name).toBe(r.kind === 'f32' ? Float32Array : r.kind === 'i32' ? Int32Array : Float64Array);
      }
      // Every region has one owner; a group's views are exactly its regions.
      const plan = groupViews(v, 'plan');
      for (const name of names) expect(name in plan, name).toBe(regionGroup(name) === 'plan');
    }
  });

  it('the routing stage writes only the groups PHASE_WRITES gives it (noisy topk: the plan and the gate\'s noise)', async () => {
    const n = 40;
    const xs = Array.from({ length: n }, (_, i) => [Math.sin(i), Math.cos(i * 0.7), Math.sin(i * 0.3)]);
    const data = datasetFromArrays('regression', xs, xs.map(([a, b]) => [a! - b!, a! * b!]));
    const m = await Mixture.create({ task: 'regression', inputs: 3, outputs: 2, experts: 4, expert: 'mlp:4', routing: 'topk:2', noise: true, balanceBias: 0.1, seed: 2 });
    m.state.inputScaler = fitStandardizer(data.x, data.n, 3);
    m.state.targetScaler = fitStandardizer(data.y!, data.n, 2);
    const s = await TrainingSession.start(m.state, m.provider, trainingData(m.state, data), { maxBatch: n, workers: 0, kernels: kernelSetFromEnv() });
    try {
      await s.step.run(Int32Array.from({ length: n }, (_, r) => r), 1e-3, 1);
      const v = s.views, names = s.layout.regions.map((r) => r.name);
      // Scribble over every region the stage may write, so that writing it shows.
      const writes = new Set(PHASE_WRITES.route);
      const before = new Map<RegionName, MixtureViews[RegionName]>();
      for (const name of names) {
        if (name === 'control' || name === 'busy') continue; // the handshake and timings
        if (writes.has(regionGroup(name))) v[name].fill(7);
        before.set(name, v[name].slice());
      }
      s.router.route(n);
      const changed = names.filter((name) => before.has(name) && v[name].some((x, i) => !Object.is(x, before.get(name)![i])));
      for (const name of changed) expect(writes.has(regionGroup(name)), `${name} (${regionGroup(name)}) written by the routing stage`).toBe(true);
      // It did write: the entries and the noisy logits.
      expect(changed).toEqual(expect.arrayContaining(['entryRow', 'entryGateWeight', 'blockExpert', 'noisyLogits', 'expertLoad']));
    } finally {
      await s.close();
    }
  });
});
