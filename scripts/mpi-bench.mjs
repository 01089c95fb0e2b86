#!/usr/bin/env node
// MPI overhead on one host, the target of "Past one machine": on the medium size, 2 ranks
// × 1 worker against 1 rank × 2 workers (samples/s, ≥ 0.85× wanted). A/B rounds of
// separate jobs, interleaved (A B, B A, A B, …), each job one round of
// `moe bench scaling --mpi` (rank 0's JSON report):
//   A: mpiexec -n 2 node bin/moe bench scaling --mpi --sizes SIZE --workers 1 --rounds 1
//      (rows 1×1, 1×2 — rank 0 alone, in the same job — and 2×1, with the exchange's
//      time and bytes, the probe, the cost model's check and its PREDICTED rows);
//   B: mpiexec -n 1 node bin/moe bench scaling --mpi --sizes SIZE --workers 2 --rounds 1
//      (rows 1×1 and 1×2: one rank, no exchange).
// The load average (`uptime`) is recorded before every job. Writes OUT/mpi-overhead-<cpu>.json
// and .md (the CPU named from lscpu): every round, the medians, the ratio A's 2×1 ÷ B's 1×2
// (and within A's jobs, 2×1 ÷ 1×2), and the last A report in full.
// Usage: node scripts/mpi-bench.mjs [--rounds 3] [--size medium] [--time 3000] [--out bench/results] [--note TEXT]
// Build first (npm run build); for a quiet measurement: scripts/wait-quiet.sh && node scripts/mpi-bench.mjs
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { formatMpiScalingMarkdown } from '../dist/bench/report.js';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const rounds = Number(opt('rounds', '3'));
const size = opt('size', 'medium');
const time = opt('time', '3000');
const out = opt('out', 'bench/results');
const note = opt('note', undefined);
const TARGET = 0.85;
/** A 1-minute load average from which the machine is loaded (scripts/wait-quiet.sh's threshold). */
const QUIET_LOAD = 1.2;

const lscpu = (() => {
  try {
    return execFileSync('lscpu', { encoding: 'utf8' });
  } catch {
    return '';
  }
})();
const field = (name) => lscpu.match(new RegExp(`^${name}:\\s*(.+)$`, 'm'))?.[1]?.trim();
const cpu = { model: field('Model name') ?? 'unknown', cpus: Number(field('CPU\\(s\\)') ?? availableParallelism()), threadsPerCore: Number(field('Thread\\(s\\) per core') ?? 1), hypervisor: field('Hypervisor vendor') ?? null };
const slug = `${cpu.model}-${cpu.cpus}c`.toLowerCase().replace(/\(r\)|\(tm\)/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');

const uptime = () => {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
};

const common = ['bin/moe', 'bench', 'scaling', '--mpi', '--sizes', size, '--rounds', '1', '--time', time, '--json'];
const systems = {
  A: { label: '2 ranks × 1 worker', args: ['-n', '2', process.execPath, ...common, '--workers', '1'] },
  B: { label: '1 rank × 2 workers', args: ['-n', '1', process.execPath, ...common, '--workers', '2'] },
};

function run(which) {
  const s = systems[which];
  const before = { uptime: uptime(), loadavg: loadavg() };
  process.stderr.write(`${which} (${s.label}): mpiexec ${s.args.join(' ')}\n  ${before.uptime}\n`);
  const r = spawnSync('mpiexec', s.args, { encoding: 'utf8', timeout: 900_000, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`${which} exited ${r.status}: ${r.stdout}`);
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  const report = JSON.parse(line);
  const row = (ranks, workers) => report.rows.find((x) => x.size === size && x.ranks === ranks && x.workers === workers);
  return { which, before, report, row };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b), n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

const started = { uptime: uptime(), loadavg: loadavg(), date: new Date().toISOString() };
const results = [];
for (let i = 0; i < rounds; i++) {
  const order = i % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
  const got = {};
  for (const w of order) got[w] = run(w);
  const a = got.A, b = got.B;
  const a21 = a.row(2, 1), a12 = a.row(1, 2), b12 = b.row(1, 2);
  const r = {
    round: i + 1,
    order: order.join(''),
    A: { uptime: a.before.uptime, loadavg: a.before.loadavg, samplesPerSecond2x1: a21.samplesPerSecond, samplesPerSecond1x2: a12.samplesPerSecond, exchangeMicrosPerStep: a21.exchangeMicrosPerStep, bytesPerStep: a21.bytesPerStep, stepMicros: a21.stepMicros },
    B: { uptime: b.before.uptime, loadavg: b.before.loadavg, samplesPerSecond1x2: b12.samplesPerSecond, stepMicros: b12.stepMicros },
  };
  r.ratio = r.A.samplesPerSecond2x1 / r.B.samplesPerSecond1x2;
  r.ratioInJob = r.A.samplesPerSecond2x1 / r.A.samplesPerSecond1x2;
  results.push({ ...r, lastA: a.report });
  process.stderr.write(`round ${i + 1}: 2×1 ${r.A.samplesPerSecond2x1.toFixed(0)} samples/s, 1×2 ${r.B.samplesPerSecond1x2.toFixed(0)} (separate job), ratio ${r.ratio.toFixed(3)}; in A's job 1×2 ${r.A.samplesPerSecond1x2.toFixed(0)}, ratio ${r.ratioInJob.toFixed(3)}\n`);
}
const ended = { uptime: uptime(), loadavg: loadavg(), date: new Date().toISOString() };
const lastA = results.at(-1).lastA;
const maxLoad = Math.max(...[started, ended, ...results.flatMap((r) => [r.A, r.B])].map((x) => x.loadavg[0]));
const summary = {
  size,
  samplesPerSecond2x1: median(results.map((r) => r.A.samplesPerSecond2x1)),
  samplesPerSecond1x2: median(results.map((r) => r.B.samplesPerSecond1x2)),
  ratio: median(results.map((r) => r.ratio)),
  ratioInJob: median(results.map((r) => r.ratioInJob)),
  target: TARGET,
  // Other processes' load before the first job (scripts/wait-quiet.sh's threshold); the
  // loads before later jobs include the previous job's own.
  loaded: started.loadavg[0] >= QUIET_LOAD,
  maxLoadAverage: maxLoad,
};
summary.ratioOfMedians = summary.samplesPerSecond2x1 / summary.samplesPerSecond1x2;
const command = `node scripts/mpi-bench.mjs ${argv.join(' ')}`.trim();
const report = { kind: 'mpi-overhead', cpu, node: process.version, mpiLibrary: lastA.mpiLibrary, backend: lastA.backend, date: started.date, command, note, started, ended, rounds: results.map(({ lastA: _, ...r }) => r), summary, lastMpiReport: lastA };

const f = (x) => (x >= 1000 ? Math.round(x).toLocaleString('en-US') : x.toPrecision(3));
const md = [
  `# MPI overhead on one host: ${cpu.model}, ${cpu.cpus} CPUs`,
  '',
  `- CPU (lscpu): ${cpu.model}, ${cpu.cpus} CPUs, ${cpu.threadsPerCore} thread(s) per core${cpu.hypervisor ? `, ${cpu.hypervisor} guest` : ''}; Node ${process.version}; ${lastA.mpiLibrary}; backend ${lastA.backend}`,
  `- Date: ${started.date} to ${ended.date}`,
  `- uptime at the start: \`${started.uptime}\``,
  `- uptime at the end: \`${ended.uptime}\``,
  `- Command: \`${command}\` (A: \`mpiexec ${systems.A.args.slice(0, 2).join(' ')} node ${common.join(' ')} --workers 1\`; B: \`mpiexec ${systems.B.args.slice(0, 2).join(' ')} node ${common.join(' ')} --workers 2\`)`,
  ...(note ? [`- Note: ${note}`] : []),
  ...(summary.loaded ? [`- **Loaded machine:** the 1-minute load average was ${started.loadavg[0].toFixed(2)} before the first job (≥ ${QUIET_LOAD}: other processes) and up to ${maxLoad.toFixed(2)} before a job, on ${cpu.cpus} CPUs: these numbers are not a quiet measurement.`] : []),
  '',
  `**${size}: 2 ranks × 1 worker reach ${summary.ratio.toFixed(3)}× the samples/s of 1 rank × 2 workers** (median of the rounds' ratios; target ≥ ${TARGET}×: ${summary.ratio >= TARGET ? 'met' : 'NOT met'}${summary.loaded ? ', loaded' : ''}). Medians: 2×1 ${f(summary.samplesPerSecond2x1)} samples/s, 1×2 ${f(summary.samplesPerSecond1x2)}; within A's jobs (1×2 by rank 0 alone) ${summary.ratioInJob.toFixed(3)}×.`,
  '',
  '| round | order | load before A (1, 5, 15 min) | load before B | 2×1 samples/s (A) | 1×2 samples/s (B) | ratio | 1×2 in A’s job | ratio in job | MPI exchange µs/step (A) | bytes/step (A) |',
  '|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ...results.map((r) => `| ${r.round} | ${r.order} | ${r.A.loadavg.map((x) => x.toFixed(2)).join(', ')} | ${r.B.loadavg.map((x) => x.toFixed(2)).join(', ')} | ${f(r.A.samplesPerSecond2x1)} | ${f(r.B.samplesPerSecond1x2)} | ${r.ratio.toFixed(3)} | ${f(r.A.samplesPerSecond1x2)} | ${r.ratioInJob.toFixed(3)} | ${f(r.A.exchangeMicrosPerStep)} | ${r.A.bytesPerStep} |`),
  '',
  '## The last A job’s report',
  '',
  formatMpiScalingMarkdown(lastA).replace(/^# /m, '### '),
].join('\n');

mkdirSync(out, { recursive: true });
const base = join(out, `mpi-overhead-${slug}`);
writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
writeFileSync(`${base}.md`, md + '\n');
process.stderr.write(`wrote ${base}.json, ${base}.md\n`);
process.stdout.write(md + '\n');
