/**
 * Benchmark reports as markdown (for people and the repository's bench/results) and JSON
 * (for tools). Formatting only: the numbers come from the benchmark runners.
 */
import { BUSY_LOAD_PER_CORE, busyLine, formatJson, loadText, machineLine, num, pct, type BenchHeader } from './harness.js';
import { IDLE_GAP_MS, SUSPECT_EFFICIENCY, type ScalingReport, type ScalingRow } from './scaling.js';

export type { BenchHeader };


/** The scaling report as one JSON line (or indented, for files). */
export function formatScalingJson(report: ScalingReport, pretty = false): string {
  return formatJson(report, pretty);
}

/** The scaling report as markdown: a short header, the table, definitions and the in-process comparison. */
export function formatScalingMarkdown(report: ScalingReport): string {
  const out: string[] = [];
  out.push(`# Scaling benchmark: ${report.machine}`, '');
  out.push(`- Machine: ${machineLine(report)}`);
  out.push(`- Backend: ${report.backend}${report.backendDetail ? ` (${report.backendDetail})` : ''}`);
  out.push(`- Node: ${report.node}`);
  out.push(`- Date: ${report.date}; ${loadText(report.loadAverage, report.cores)}`);
  if (report.loadAverage.busy) out.push(`- **Warning:** ${busyLine(report.loadAverage, report.cores)}.`);
  if (report.command) out.push(`- Command: \`${report.command}\``);
  out.push(
    `- Mixtures: ${report.experts} experts, dense, linear gate, regression on random data, Gaussian-mixture NLL, Adam; the same expert count at every worker count.`,
  );
  for (const s of report.sizes) {
    out.push(`- ${s.size}: ${s.note}, batch ${s.batch}; ${s.expertParams.toLocaleString('en-US')} parameters per expert, ~${num(s.flopsPerStep / 1e6)} Mflop of expert compute per step.`);
  }
  for (const n of report.notes ?? []) out.push(`- Note: ${n}`);
  out.push('');
  out.push(`| size | workers | samples/s | speedup | efficiency | sync µs/phase | ping µs | ping after ${IDLE_GAP_MS} ms idle, µs | shard compute µs/phase | µs/step (±rme) | steps | in-process samples/s |`);
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of report.rows) {
    out.push(
      `| ${r.size}${r.busy ? ' (busy)' : ''} | ${r.workers} | ${num(r.samplesPerSecond)} | ${r.speedup.toFixed(2)} | ${pct(r.efficiency)}${r.suspect ? ' ⚠ suspect' : ''} | ${num(r.syncMicros)} | ${num(r.atomicsRoundTripMicros)} | ${num(r.idleRoundTripMicros)} | ${num(r.shardComputeMicros)} | ${num(r.stepMicros)} (±${r.rmePercent.toFixed(1)}%) | ${r.steps} | ${num(r.inProcessSamplesPerSecond)} |`,
    );
  }
  out.push('');
  out.push('Per phase, µs: slowest shard’s compute / synchronisation.');
  out.push('');
  out.push('| size | workers | forward | backward | update |');
  out.push('|---|---:|---:|---:|---:|');
  for (const r of report.rows) {
    const c = r.shardComputeMicrosByPhase, y = r.syncMicrosByPhase;
    out.push(`| ${r.size} | ${r.workers} | ${num(c.forward)} / ${num(y.forward)} | ${num(c.backward)} / ${num(y.backward)} | ${num(c.update)} / ${num(y.update)} |`);
  }
  out.push('');
  out.push('Definitions:');
  out.push('- speedup = samples/s with W workers ÷ samples/s with 1 worker; efficiency = samples/s with W ÷ (samples/s with 1 worker × min(W, cores)).');
  out.push(`- ⚠ suspect: an efficiency above ${pct(SUSPECT_EFFICIENCY)}, more than W cores can give: the 1-worker measurement was probably slowed by other work on the machine. (busy): other processes' load (the 1-minute load average less this benchmark's own threads) was above ${BUSY_LOAD_PER_CORE} per core when the measurement ended.`);
  out.push(
    '- sync µs/phase: per phase (forward, backward, update), the main thread’s wall time from signalling the shards to resuming after the wait, minus the longer of the slowest shard’s compute in that phase (from the shards’ busy-time counters) and the main thread’s own overlapping work; the mean over every phase of the timed steps.',
  );
  out.push('- ping µs: the mean of `ThreadRunner.ping()` on the same runner right after its steps: the trainer’s own signal and wait with no work, back to back.');
  out.push(
    `- ping after ${IDLE_GAP_MS} ms idle: the same round trip with every thread idle for ${IDLE_GAP_MS} ms before each one, as after a phase of milliseconds of compute; the waiting threads' wake-up then costs more than in back-to-back pings.`,
  );
  const inProc = inProcessComparison(report.rows);
  if (inProc.length) {
    out.push('');
    out.push('Parallel (1 worker) against in-process, same step code and data:');
    out.push(...inProc);
  }
  return out.join('\n') + '\n';
}

function inProcessComparison(rows: ScalingRow[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    if (r.workers !== 1 || r.inProcessSamplesPerSecond === undefined) continue;
    const inProcMicros = (r.batch * 1e6) / r.inProcessSamplesPerSecond;
    const extra = r.stepMicros - inProcMicros;
    const sync = 3 * r.syncMicros;
    const within = extra <= sync;
    out.push(
      `- ${r.size}: in-process ${num(inProcMicros)} µs/step, 1 worker ${num(r.stepMicros)} µs/step: ${extra >= 0 ? `${num(extra)} µs slower` : `${num(-extra)} µs faster`} per step, against 3 × sync = ${num(sync)} µs (${within ? 'within' : 'beyond'} the synchronisation cost).`,
    );
  }
  return out;
}
