// What the float mode's switches cost per training step, against the small in-process
// step (issue: under 2%). Per step the caller's thread sets the mode once and puts it back
// once (one fesetenv each); the step itself is measured with both modes, interleaved.
// Usage: node scripts/float-mode-cost.mjs   (after npm run build)
import { FloatMode } from '../dist/src/compute/float-mode.js';
import { Mixture, datasetFromArrays } from '../dist/src/index.js';

const pairs = 200_000;
const fm = new FloatMode('flush');
let best = Infinity;
for (let round = 0; round < 5; round++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < pairs; i++) { fm.enter(); fm.leave(); }
  best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e3 / pairs);
}

// The `small` benchmark size: linear 2→4, 8 experts, batch 32.
const n = 4096, xs = [], ys = [];
for (let i = 0; i < n; i++) { const a = Math.sin(i * 1.3), b = Math.cos(i * 0.7); xs.push([a, b]); ys.push([a + b, a - b, a * b, a > 0 ? 1 : -1]); }
const data = datasetFromArrays('regression', xs, ys);
const stepUs = { flush: [], ieee: [] };
for (let round = 0; round < 6; round++) {
  for (const mode of ['flush', 'ieee']) {
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 4, experts: 8, seed: 1 });
    const r = await m.fit(data, { epochs: 3, batchSize: 32, denormals: mode });
    const steps = r.history.reduce((s, e) => s + Math.ceil(n / 32), 0);
    stepUs[mode].push((r.history.reduce((s, e) => s + e.seconds, 0) * 1e6) / steps);
    await m.close();
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const out = { switchPairMicros: best, smallStepMicros: { flush: median(stepUs.flush), ieee: median(stepUs.ieee) } };
out.switchShareOfSmallStep = best / out.smallStepMicros.ieee;
console.log(JSON.stringify(out, null, 2));
