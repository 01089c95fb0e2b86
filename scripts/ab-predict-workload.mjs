#!/usr/bin/env node
// The predict workload of scripts/ab-baseline.mjs, through the public API of the build in
// DIST: a medium mixture (8 experts mlp:512, 256→256, dense, seed 1, one training step on 512 of the rows to fit its scalers) predicts
// 4,096 rows (a Float32Array) again and again for about TIME ms after one warm-up call.
// Prints {"rowsPerSecond": …} as its last line.
// Usage: node scripts/ab-predict-workload.mjs DIST [TIME]
const [dist, time = '2000'] = process.argv.slice(2);
const { Mixture, datasetFromArrays } = await import(`${dist}/src/index.js`);
const D = 256, K = 256, N = 4096;
const m = await Mixture.create({ task: 'regression', inputs: D, outputs: K, experts: 8, expert: 'mlp:512', seed: 1 });
const x = new Float32Array(N * D);
let seed = 7;
for (let i = 0; i < x.length; i++) x[i] = ((seed = (seed * 16807) % 2147483647), seed / 2147483647 - 0.5);
const rowsOf = (a, w, n) => Array.from({ length: n }, (_, r) => Array.from(a.subarray(r * w, (r + 1) * w)));
await m.fit(datasetFromArrays('regression', rowsOf(x, D, 512), rowsOf(x, D, 512)), { epochs: 1, batchSize: 512 });
m.predict(x);
let rows = 0;
const t0 = performance.now();
while (performance.now() - t0 < Number(time)) {
  m.predict(x);
  rows += N;
}
console.log(JSON.stringify({ rowsPerSecond: rows / ((performance.now() - t0) / 1000) }));
await m.close?.();
