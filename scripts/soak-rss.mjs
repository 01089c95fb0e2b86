#!/usr/bin/env node
// Soak test: repeated parallel fits must not grow the process's resident memory.
// Usage: node scripts/soak-rss.mjs [fits=900] [from=100] [limitMiB=10] [workers=2]
// Runs `fits` small fits with `workers` worker threads each, samples RSS after a GC at
// fit `from` and at the last one, prints one JSON line, and exits 1 when RSS grew by
// more than `limitMiB` between them. Re-executes itself with --expose-gc and V8's young
// generation pinned at 2 MiB semi-spaces: left to its heuristics V8 grows the young
// generation once, to 2 × 16 MiB, somewhere after a few hundred fits (measured: +15 MiB
// between fits 300 and 500, flat from 500 to 900; the new 256 KiB mappings are exactly
// its pages). That is bounded sizing, not a leak; the soak looks for leaks.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-semi-space-size=2', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { Mixture, datasetFromArrays } = await import('../dist/src/index.js');
const [fits = 900, from = 100, limitMiB = 10, workers = 2] = process.argv.slice(2).map(Number);

const xs = [], ys = [];
for (let i = 0; i < 120; i++) {
  const a = Math.sin(i * 1.37) * 3, b = Math.cos(i * 0.71) * 2;
  xs.push([a, b]);
  ys.push([a > 0 ? 2 * a - b : a * b]);
}
const data = datasetFromArrays('regression', xs, ys);

const rssMiB = async () => {
  // Let finalisers and closed ports settle before measuring.
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  return process.memoryUsage().rss / 2 ** 20;
};

let atFrom = 0;
const samples = [];
for (let f = 1; f <= fits; f++) {
  const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, expert: 'mlp:8', seed: f });
  await m.fit(data, { epochs: 1, batchSize: 40, workers });
  if (f === from) atFrom = await rssMiB();
  if (f % 100 === 0 || f === fits) {
    const rss = Math.round((await rssMiB()) * 10) / 10;
    const u = process.memoryUsage();
    const threads = Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN);
    samples.push({ fit: f, rssMiB: rss, heapMiB: Math.round(u.heapUsed / 2 ** 17) / 8, externalMiB: Math.round(u.external / 2 ** 17) / 8, threads });
  }
}
const atEnd = await rssMiB();
const grew = atEnd - atFrom;
const ok = grew <= limitMiB;
console.log(JSON.stringify({ fits, workers, from, rssAtFromMiB: +atFrom.toFixed(1), rssAtEndMiB: +atEnd.toFixed(1), grewMiB: +grew.toFixed(1), limitMiB, ok, samples }));
process.exit(ok ? 0 : 1);
