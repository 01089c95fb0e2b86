/**
 * Benchmark reports as markdown (for people and the repository's bench/results) and JSON
 * (for tools). Formatting only: the numbers come from the benchmark runners.
 */
import { formatJson, num, pct, type BenchHeader, type LoadAverage } from './harness.js';
import { IDLE_GAP_MS, type ScalingReport, type ScalingRow } from './scaling.js';

export type { BenchHeader };

/** What the CSV parsing benchmark measures (see `moe bench csv`). */
export interface CsvParseReport extends BenchHeader {
  /** Data rows of the generated file. */
  rows: number;
  /** Feature columns of the generated file (plus one target). */
  features: number;
  /** Size of the generated file, bytes. */
  fileBytes: number;
  /** Timed loadCsv calls. */
  runs: number;
  /** Mean time of one loadCsv call, seconds. */
  parseSeconds: number;
  /** Relative margin of error of `parseSeconds` (tinybench, %). */
  rmePercent: number;
  /** Rows parsed per second. */
  rowsPerSecond: number;
  /** File megabytes (10⁶ bytes) parsed per second. */
  megabytesPerSecond: number;
  /** The process's peak resident set before generating the file, MiB. */
  rssBeforeMiB: number;
  /** The process's peak resident set after the parses, MiB. */
  peakRssMiB: number;
  /** The float32 size of the parsed dataset, MiB (what the loader aims to cost). */
  datasetMiB: number;
  /** One epoch of training on the parsed data. */
  training: {
    /** Compute provider it ran on. */
    backend: string;
    /** Worker threads (0 = in-process). */
    workers: number;
    /** Experts E. */
    experts: number;
    /** Expert net as the CLI spells it. */
    expert: string;
    /** Rows per step. */
    batch: number;
    /** Wall time of the epoch, seconds. */
    epochSeconds: number;
    /** Training rows per second in the epoch. */
    samplesPerSecond: number;
  };
  /** Parse time ÷ one epoch's time: how many epochs of training the parse costs. */
  parseEpochs: number;
  /**
   * loadCsv on a file with a very wide header (every column a feature but the target),
   * which a column lookup quadratic in the column count makes slow; absent when skipped.
   */
  wideHeader?: {
    /** Columns of the header (features + 1 target). */
    columns: number;
    /** Data rows of the file. */
    rows: number;
    /** Wall time of one loadCsv call, seconds (the best of the calls). */
    seconds: number;
    /** loadCsv calls timed. */
    runs: number;
  };
  /** The 1-minute load average at the start and the end of the run. */
  loadAverage: LoadAverage;
  /** One sentence: whether parsing is the bottleneck. */
  verdict: string;
}

/** The scaling report as one JSON line (or indented, for files). */
export function formatScalingJson(report: ScalingReport, pretty = false): string {
  return formatJson(report, pretty);
}

/** The scaling report as markdown: a short header, the table, definitions and the in-process comparison. */
export function formatScalingMarkdown(report: ScalingReport): string {
  const out: string[] = [];
  out.push(`# Scaling benchmark: ${report.machine}`, '');
  out.push(`- Machine: ${report.machine} (${report.cpuModel}, ${report.cores} cores)`);
  out.push(`- Backend: ${report.backend}${report.backendDetail ? ` (${report.backendDetail})` : ''}`);
  out.push(`- Node: ${report.node}`);
  out.push(`- Date: ${report.date}; 1-minute load average ${report.loadAverage.start.toFixed(2)} at the start, ${report.loadAverage.end.toFixed(2)} at the end (${report.cores} cores)`);
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
      `| ${r.size} | ${r.workers} | ${num(r.samplesPerSecond)} | ${r.speedup.toFixed(2)} | ${pct(r.efficiency)} | ${num(r.syncMicros)} | ${num(r.atomicsRoundTripMicros)} | ${num(r.idleRoundTripMicros)} | ${num(r.shardComputeMicros)} | ${num(r.stepMicros)} (±${r.rmePercent.toFixed(1)}%) | ${r.steps} | ${num(r.inProcessSamplesPerSecond)} |`,
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
  out.push(
    '- sync µs/phase: per phase (forward, backward, update), the main thread’s wall time from signalling the shards to resuming after the wait, minus the longer of the slowest shard’s compute in that phase (from the shards’ busy-time counters) and the main thread’s own overlapping work; the mean over every phase of the timed steps.',
  );
  out.push('- ping µs: the mean of `ParallelPool.ping()` on the same pool right after its steps: the trainer’s own signal and wait with no work, back to back.');
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

/** The CSV parsing report as one JSON line (or indented, for files). */
export function formatCsvJson(report: CsvParseReport, pretty = false): string {
  return formatJson(report, pretty);
}

/** The CSV parsing report as markdown. */
export function formatCsvMarkdown(r: CsvParseReport): string {
  const t = r.training;
  const out = [
    `# CSV parsing benchmark: ${r.machine}`,
    '',
    `- Machine: ${r.machine} (${r.cpuModel}, ${r.cores} cores), Node ${r.node}`,
    `- Date: ${r.date}; 1-minute load average ${r.loadAverage.start.toFixed(2)} at the start, ${r.loadAverage.end.toFixed(2)} at the end`,
    ...(r.command ? [`- Command: \`${r.command}\``] : []),
    `- File: ${r.rows.toLocaleString('en-US')} rows × ${r.features} features + 1 target, ${num(r.fileBytes / 2 ** 20)} MiB, generated with random values`,
    ...(r.notes ?? []).map((n) => `- Note: ${n}`),
    '',
    '| measure | value |',
    '|---|---:|',
    `| loadCsv time (mean of ${r.runs}, ±${r.rmePercent.toFixed(1)}%) | ${num(r.parseSeconds)} s |`,
    `| rows/s | ${num(r.rowsPerSecond)} |`,
    `| MB/s (10⁶ bytes) | ${num(r.megabytesPerSecond)} |`,
    `| peak RSS of the process (before: ${num(r.rssBeforeMiB)} MiB) | ${num(r.peakRssMiB)} MiB |`,
    `| parsed dataset, float32 | ${num(r.datasetMiB)} MiB |`,
    `| one training epoch (${t.experts} × ${t.expert} experts, batch ${t.batch}, ${t.workers} workers, ${t.backend}) | ${num(t.epochSeconds)} s |`,
    `| training samples/s | ${num(t.samplesPerSecond)} |`,
    `| parse time in epochs of training | ${num(r.parseEpochs)} |`,
    ...(r.wideHeader
      ? [`| loadCsv of a ${r.wideHeader.columns.toLocaleString('en-US')}-column header + ${r.wideHeader.rows} rows (best of ${r.wideHeader.runs}) | ${num(r.wideHeader.seconds)} s |`]
      : []),
    '',
    r.verdict,
    '',
  ];
  return out.join('\n');
}
