import { readFileSync } from 'node:fs';
const { Mixture, datasetFromArrays } = await import('../dist/src/index.js');
const xs = [], ys = [];
for (let i = 0; i < 120; i++) { const a = Math.sin(i * 1.37) * 3, b = Math.cos(i * 0.71) * 2; xs.push([a, b]); ys.push([a > 0 ? 2 * a - b : a * b]); }
const data = datasetFromArrays('regression', xs, ys);
const threads = () => /Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1];
const mode = process.argv[2] ?? 'fit';
for (let f = 1; f <= 300; f++) {
  const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, expert: 'mlp:8', seed: f, backend: process.argv[3] ?? 'auto' });
  await m.fit(data, { epochs: 1, batchSize: 40, workers: 2 });
  if (f % 50 === 0) { for (let i=0;i<3;i++){gc(); await new Promise(r=>setTimeout(r,20));} const u = process.memoryUsage(); console.log(f, (u.rss/2**20).toFixed(1), 'heap', (u.heapUsed/2**20).toFixed(1), 'ext', (u.external/2**20).toFixed(1), 'ab', (u.arrayBuffers/2**20).toFixed(1), 'threads', threads()); }
}
