/**
 * Benchmark reports as markdown (for people and the repository's bench/results) and JSON
 * (for tools). Formatting only: the numbers come from the benchmark runners.
 */
import { BUSY_LOAD_PER_CORE, busyLine, formatJson, headerLines, loadText, machineLine, markdownTable, num, pct, ratio, type BenchHeader } from './harness.js';
import type { MpiScalingReport } from './mpi-scaling.js';
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

// ---------------------------------------------------------------------------------------
// moe bench scaling --mpi

/** The MPI scaling report as one JSON line (or indented, for files). */
export function formatMpiScalingJson(report: MpiScalingReport, pretty = false): string {
  return formatJson(report, pretty);
}

const bytes = (b: number | undefined): string => (b === undefined || !Number.isFinite(b) ? '–' : b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : b >= 1e4 ? `${(b / 1e3).toFixed(1)} kB` : `${Math.round(b)} B`);

/** The MPI scaling report as markdown: rows, exchanges, the cost model's check and its PREDICTED rows. */
export function formatMpiScalingMarkdown(report: MpiScalingReport): string {
  const out: string[] = [`# Scaling across MPI ranks: ${report.machine}`, ''];
  out.push(
    ...headerLines(report, [
      `- MPI: ${report.ranks} rank${report.ranks > 1 ? 's' : ''} on this host, ${report.mpiLibrary}`,
      `- Backend: ${report.backend}${report.backendDetail ? ` (${report.backendDetail})` : ''}`,
      `- uptime load averages (1, 5, 15 min): ${report.uptime.start.map((x) => x.toFixed(2)).join(', ')} at the start, ${report.uptime.end.map((x) => x.toFixed(2)).join(', ')} at the end`,
      `- Mixtures: ${report.experts} experts, dense, linear gate, regression on random data, ${report.loss} error, Adam; ${report.rounds} interleaved round${report.rounds > 1 ? 's' : ''} per row, the median reported.`,
      ...report.sizes.map((s) => `- ${s.size}: ${s.note}, batch ${s.batch}; ${s.expertParams.toLocaleString('en-US')} parameters per expert.`),
    ]),
  );
  out.push('');
  out.push(
    ...markdownTable(
      ['size', 'ranks × workers', 'samples/s', 'µs/step', 'MPI exchange µs/step', 'exchange share', 'bytes/step (job)', 'bytes/step received, per rank', 'collectives/step', 'steps', 'rounds samples/s'],
      report.rows.map((r) => [
        `${r.size}${r.busy ? ' (busy)' : ''}`,
        `${r.ranks} × ${r.workers}`,
        num(r.samplesPerSecond),
        num(r.stepMicros),
        num(r.exchangeMicrosPerStep),
        r.exchangeMicrosPerStep !== undefined ? pct(r.exchangeMicrosPerStep / r.stepMicros) : '–',
        bytes(r.bytesPerStep),
        r.byRank ? r.byRank.map((x) => bytes(x.bytesReceivedPerStep)).join(' / ') : '–',
        r.byRank ? num(r.byRank[0]!.exchangesPerStep) : '–',
        String(r.steps),
        r.roundSamplesPerSecond.map((x) => num(x)).join(', '),
      ]),
    ),
  );
  for (const o of report.overhead) {
    out.push('', `**Overhead (${o.size}):** ${o.ranks} ranks × 1 worker reach ${ratio(o.ratio)} the samples/s of 1 rank × ${o.ranks} workers (target ≥ ${o.target}×: ${o.ratio >= o.target ? 'met' : 'NOT met'}${report.loadAverage.busy ? ', on a busy machine' : ''}); round by round ${o.roundRatios.map((x) => x.toFixed(3)).join(', ')}.`);
  }
  const mpiRows = report.rows.filter((r) => r.byExchange?.length);
  if (mpiRows.length) {
    out.push('', 'Exchanges of rank 0, per step:', '');
    out.push(...markdownTable(['size', 'ranks × workers', 'exchange', 'times', 'bytes received', 'µs'], mpiRows.flatMap((r) => r.byExchange!.map((x) => [r.size, `${r.ranks} × ${r.workers}`, x.what, num(x.perStep), bytes(x.bytesReceivedPerStep), num(x.microsPerStep)])), ['l', 'r', 'l', 'r', 'r', 'r']));
  }
  for (const x of report.exchange) {
    out.push('', `Cost model, bytes per step (${x.size}, ${x.ranks} ranks × ${x.workers} workers, experts per rank ${x.rankExperts.join(', ')}): job total ${x.formula} = ${x.bytes.total.toLocaleString('en-US')} B (f = ${x.floatsPerEntry} floats per entry); per rank received ${x.bytes.receivedByRank.map((b) => b.toLocaleString('en-US')).join(' / ')} B.`);
  }
  if (report.probe) {
    const p = report.probe;
    out.push('', `One-host network, probed through the communicator (allgatherv, every rank contributing the same; each size's fastest repetition; α from 8 bytes, β the best rate beyond α from 64 kB up): latency α = ${num(p.latencyMicros)} µs per round, bandwidth β = ${num(p.gbps)} Gb/s.`, '');
    out.push(...markdownTable(['bytes received per rank', 'µs (fastest)', 'µs (median)', 'reps'], p.points.map((x) => [bytes(x.bytesReceived), num(x.minMicros), num(x.micros), String(x.reps)])));
  }
  if (report.checks.length) {
    out.push('', 'Cost model against the measurement (this host, the probe’s α and β; κ for ranks × workers busy cores):', '');
    out.push(
      ...markdownTable(
        ['size', 'ranks × workers', 'predicted µs/step', 'measured µs/step', 'measured ÷ predicted', 'predicted exchange µs', 'measured exchange µs', 'predicted bytes/step', 'measured bytes/step'],
        report.checks.map((c) => [c.size, `${c.ranks} × ${c.workers}`, num(c.predicted.stepMicros), num(c.measuredStepMicros), ratio(c.measuredStepMicros / c.predicted.stepMicros), num(c.predicted.exchangeMicros), num(c.measuredExchangeMicros), c.predicted.bytesPerStep.toLocaleString('en-US'), Number.isFinite(c.measuredBytesPerStep) ? c.measuredBytesPerStep.toLocaleString('en-US') : '–']),
      ),
    );
    out.push('', 'The measured exchange time includes the wait for the slowest rank (skew, other load), which the model leaves out.');
  }
  if (report.predictions.length) {
    out.push('', '**PREDICTED** (cost model, not measured): one rank per host, its W workers on that host’s cores.', '');
    out.push(
      ...markdownTable(
        ['', 'size', 'ranks × workers', 'experts', 'network', 'bytes/step (job)', 'busiest rank receives', 'exchange µs/step', 'µs/step', 'samples/s', 'speed-up over 1 rank'],
        report.predictions.map((p) => ['PREDICTED', p.size, `${p.ranks} × ${p.workers}`, String(p.experts), `${p.network.gbps} Gb/s, ${p.network.latencyMicros} µs`, bytes(p.bytesPerStep), bytes(p.maxRankBytesPerStep), num(p.exchangeMicros), num(p.stepMicros), num(p.samplesPerSecond), ratio(p.speedup)]),
        ['l', 'l', 'r', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
  }
  out.push('', 'Definitions:');
  out.push('- MPI exchange µs/step: the wall time of the communicator’s collectives per step, from the start call to MPI_Test’s completion, the mean over ranks: the transfer and the wait for the slowest rank. 1-rank rows are rank 0 alone in a plain session (no MPI), the others waiting.');
  out.push('- bytes/step: payload (an allgatherv’s slices; 8 B of the step agreement per rank); the job’s is the sum over ranks of what each receives.');
  return out.join('\n') + '\n';
}
