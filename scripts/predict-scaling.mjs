#!/usr/bin/env node
// PREDICTED scaling beyond the cores measured: reads a `moe bench scaling --workers 1,2`
// report (JSON) and prints, as markdown, the cost model's step time, speed-up and parallel
// efficiency (bench/cost-model.ts) at more workers, with its inputs. Build first.
//
//   node scripts/predict-scaling.mjs bench/results/amd-epyc-2c.json [--experts 16] [--workers 8,16] [--sizes medium,large]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { costModelInputs, predictScaling, predictStepMicros } from '../dist/bench/cost-model.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    experts: { type: 'string', default: '16' },
    workers: { type: 'string', default: '8,16' },
    sizes: { type: 'string', default: 'medium,large' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node scripts/predict-scaling.mjs <scaling report .json> [--experts 16] [--workers 8,16] [--sizes medium,large]');
  process.exit(2);
}
const report = JSON.parse(readFileSync(positionals[0], 'utf8'));
const experts = Number(values.experts);
const workers = values.workers.split(',').map(Number);
const sizes = values.sizes.split(',');
const f = (v) => (v >= 1000 ? Math.round(v).toLocaleString('en-US') : v >= 100 ? v.toFixed(0) : v.toPrecision(3));

console.log(`Inputs from ${positionals[0]} (${report.machine}, ${report.date}, ${report.experts} experts), µs:\n`);
console.log('| size | T(1) | T(2) measured | T(2) model | compute at 1 worker C: fwd / bwd / upd | contention κ at 2 workers: fwd / bwd / upd | sync at 1 worker: fwd / bwd / upd | sync at 2 workers: fwd / bwd / upd | M (main thread) |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
const inputs = sizes.map((s) => costModelInputs(report, s));
for (const m of inputs) {
  const t2 = predictStepMicros(m, 2, m.experts, 'constant');
  const p = (x) => `${f(x.forward)} / ${f(x.backward)} / ${f(x.update)}`;
  const k = m.contention;
  console.log(`| ${m.size} | ${f(m.step1Micros)} | ${f(m.step2Micros)} | ${f(t2)} | ${p(m.compute1)} | ${k.forward.toFixed(3)} / ${k.backward.toFixed(3)} / ${k.update.toFixed(3)} | ${p(m.sync1)} | ${p(m.sync2)} | ${f(m.mainMicros)} |`);
}
console.log(`\nPREDICTED, ${experts} experts (not measured):\n`);
console.log('| size | workers | T(W) µs, sync constant / linear | speed-up | efficiency (sync constant) | efficiency (sync linear in W) |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const m of inputs) {
  for (const w of workers) {
    const lo = predictScaling(m, w, experts, 'linear'), hi = predictScaling(m, w, experts, 'constant');
    console.log(`| ${m.size} | ${w} | ${f(hi.stepMicros)} / ${f(lo.stepMicros)} | ${hi.speedup.toFixed(2)}–${lo.speedup.toFixed(2)}× | ${(hi.efficiency * 100).toFixed(1)}% | ${(lo.efficiency * 100).toFixed(1)}% |`);
  }
}
