#!/usr/bin/env node
// A/B of this checkout against a built baseline checkout (0.2.0: `git worktree add ../base020
// b0f1374 && cd ../base020 && npm ci && npm run build`), on the benchmarks both have:
// `moe bench peers` (this library's in-process and 2-worker rows, small, medium, large) and
// `moe bench sparse` (every routing, medium), and dense predict on 4,096 rows
// (scripts/ab-predict-workload.mjs, through each version's public API). Rounds are interleaved: in each round every
// benchmark runs once under each version, the order of the versions reversed every other
// round; each row's figure is the median over rounds, and its ratio the median of the
// rounds' ratios (this ÷ baseline), so that a drift of the machine's speed cancels.
// Both run IEEE float mode in peers (the baseline has no other); sparse has no float-mode
// option and runs the default of each version (this one flushes subnormals).
//
// Usage: node scripts/ab-baseline.mjs --base ../base020 [--rounds 5] [--time 2000] [--out bench/results]
//   [--only peers,sparse,predict] [--routing topk:2,switch] [--steps N (sparse: exactly N timed steps, the same work in both)]
import { execFileSync } from 'node:child_process';
import { writeFileSync, renameSync } from 'node:fs';
import { cpus, loadavg, availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    base: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    time: { type: 'string', default: '2000' },
    out: { type: 'string' },
    only: { type: 'string' },
    routing: { type: 'string' },
    steps: { type: 'string' },
  },
});
if (!o.base) {
  console.error('ab-baseline: --base DIR (a built checkout of the baseline) is required');
  process.exit(2);
}
const rounds = Number(o.rounds), time = o.time;
const versions = {
  baseline: { dir: resolve(o.base), peers: [], sparse: [], predict: [] },
  current: { dir: resolve('.'), peers: ['--denormals', 'ieee'], sparse: ['--no-breakdown', '--predict-rows', '0'], predict: [] },
};
const version = (dir) => JSON.parse(execFileSync('node', ['-p', 'JSON.stringify(require("./package.json").version)'], { cwd: dir, encoding: 'utf8' }));

function predictRun(dir) {
  const out = execFileSync('node', [join(versions.current.dir, 'scripts/ab-predict-workload.mjs'), join(dir, 'dist'), time], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out.trim().split('\n').at(-1));
}

function run(dir, args) {
  if (args[0] === 'predict') return predictRun(dir);
  const out = execFileSync('node', [join(dir, 'dist/src/cli/main.js'), 'bench', ...args, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 26 });
  return JSON.parse(out.trim().split('\n').at(-1));
}

const BENCHES = {
  peers: (extra) => ['peers', '--sizes', 'small,medium,large', '--no-pytorch', '--no-breakdown', '--rounds', '1', '--time', time, ...extra],
  sparse: (extra) => ['sparse', '--no-skew', '--rounds', '1', ...(o.steps ? ['--steps', o.steps] : ['--time', time]), ...(o.routing ? ['--routing', o.routing] : []), ...extra],
  predict: () => ['predict'],
};
const rowsOf = {
  peers: (r) => r.rows.filter((x) => x.system === 'in-process' || x.system === 'workers').map((x) => [`peers ${x.size} ${x.label}`, x.samplesPerSecond]),
  sparse: (r) => r.rows.map((x) => [`sparse medium ${x.routing} (${x.loss}), ${r.workers} workers`, x.samplesPerSecond]),
  predict: (r) => [['predict medium dense, 4,096 rows (rows/s)', r.rowsPerSecond]],
};

const samples = new Map(); // row → { baseline: [], current: [] }
const started = new Date().toISOString(), load0 = loadavg()[0];
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? ['baseline', 'current'] : ['current', 'baseline'];
  for (const bench of Object.keys(BENCHES).filter((b) => !o.only || o.only.split(',').includes(b))) {
    for (const v of order) {
      const report = run(versions[v].dir, BENCHES[bench](versions[v][bench]));
      for (const [row, sps] of rowsOf[bench](report)) {
        if (!samples.has(row)) samples.set(row, { baseline: [], current: [] });
        samples.get(row)[v][round] = sps;
      }
      process.stderr.write(`round ${round + 1}/${rounds}: ${bench} ${v} done\n`);
    }
  }
}
const load1 = loadavg()[0];
const median = (a) => {
  const s = a.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rows = [...samples].map(([row, s]) => ({
  row,
  baseline: median(s.baseline),
  current: median(s.current),
  ratio: median(s.current.map((c, i) => c / s.baseline[i])),
  ratios: s.current.map((c, i) => c / s.baseline[i]),
}));
const cpu = cpus()[0]?.model ?? 'unknown';
const report = {
  baseline: { dir: versions.baseline.dir, version: version(versions.baseline.dir) },
  current: { dir: versions.current.dir, version: version(versions.current.dir) },
  cpuModel: cpu,
  cores: availableParallelism(),
  node: process.version,
  date: started,
  loadAverage: { start: load0, end: load1 },
  rounds,
  timeMs: Number(time),
  command: `node scripts/ab-baseline.mjs --base ${o.base} --rounds ${rounds} --time ${time}${o.only ? ` --only ${o.only}` : ''}${o.routing ? ` --routing ${o.routing}` : ''}${o.steps ? ` --steps ${o.steps}` : ''}${o.out ? ` --out ${o.out}` : ''}`,
  rows,
};
const fmt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const md = [
  `# A/B: ${report.current.version} against ${report.baseline.version}`,
  '',
  `- Machine: ${cpu}, ${report.cores} cores, Node ${process.version}`,
  `- Date: ${started}; 1-minute load average ${load0.toFixed(2)} at the start, ${load1.toFixed(2)} at the end`,
  `- Command: \`${report.command}\``,
  `- ${rounds} interleaved rounds (each benchmark once per version per round, the versions' order reversed every other round), ${o.steps ? `sparse: exactly ${o.steps} timed steps per measurement (the same work in both)` : `${time} ms per measurement`}; the median round is reported, and the ratio is the median of the rounds' ratios.`,
  '- peers: IEEE float mode in both (`--denormals ieee` here); sparse: each version\'s default (this one flushes subnormals; the baseline cannot).',
  '',
  `| row | ${report.baseline.version} samples/s | ${report.current.version} samples/s | ratio (median of rounds) | rounds' ratios |`,
  '|---|---:|---:|---:|---|',
  ...rows.map((r) => `| ${r.row} | ${fmt(r.baseline)} | ${fmt(r.current)} | ${r.ratio.toFixed(3)} | ${r.ratios.map((x) => x.toFixed(2)).join(' ')} |`),
  '',
].join('\n');
process.stdout.write(md);
if (o.out) {
  const slug = `${cpu}-${report.cores}c`.toLowerCase().replace(/\(r\)|\(tm\)/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  const part = o.only ? `-${o.only.split(',').join('-')}` : '';
  const base = join(o.out, `ab-${report.baseline.version}${part}-${slug}`);
  for (const [ext, text] of [['json', `${JSON.stringify(report, null, 2)}\n`], ['md', md]]) {
    writeFileSync(`${base}.${ext}.tmp`, text);
    renameSync(`${base}.${ext}.tmp`, `${base}.${ext}`);
  }
}
