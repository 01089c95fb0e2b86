/**
 * The CSV parsing benchmark behind `moe bench csv`: loadCsv's throughput and peak memory
 * on a generated file, set against one epoch of training on the parsed data, so the
 * report can say whether parsing is ever the bottleneck.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Bench } from 'tinybench';
import type { BackendRequest } from '../compute/provider.js';
import { loadCsv } from '../data/csv.js';
import { Mixture } from '../mixture.js';
import { Rng } from '../rng.js';
import type { CsvParseReport } from './report.js';
import { benchHeader, checkNonNegativeInt, checkPositiveInt, endLoad, startLoad } from './harness.js';

/** Options of {@link runCsvParseBenchmark}. */
export interface CsvParseOptions {
  /** Rows of the generated file (default 200 000). */
  rows?: number;
  /** Feature columns of the generated file, plus one target `y` (default 32). */
  features?: number;
  /** Timed loadCsv calls (default 3). */
  runs?: number;
  /** Workers for the training epoch, 0 for in-process (default min(cores, 8)). */
  workers?: number;
  /** Compute provider for the training epoch (default auto). */
  backend?: BackendRequest;
  /** Name of this machine in the report (default: CPU model and cores). */
  machine?: string;
  /** Keep the generated file's temporary folder. */
  keepDir?: boolean;
  /** Columns of the wide-header file also timed (default 100 000; 0 skips it). */
  wideColumns?: number;
  /** One line per phase, for a progress display. */
  onProgress?: (line: string) => void;
}

/** Write an n × features CSV of random values plus a target `y`; resolves to its size in bytes. */
export async function writeRandomCsv(path: string, rows: number, features: number, seed = 1): Promise<number> {
  const rng = new Rng(seed);
  const out = createWriteStream(path);
  const header = [...Array.from({ length: features }, (_, j) => `f${j}`), 'y'].join(',') + '\n';
  out.write(header);
  const CHUNK = 2000;
  const line = new Array<string>(features + 1);
  for (let r = 0; r < rows; r += CHUNK) {
    let text = '';
    for (let i = r; i < Math.min(rows, r + CHUNK); i++) {
      let y = 0;
      for (let j = 0; j < features; j++) {
        const v = rng.normal();
        if (j < 4) y += v;
        line[j] = v.toFixed(5);
      }
      line[features] = (y + 0.1 * rng.normal()).toFixed(5);
      text += line.join(',') + '\n';
    }
    if (!out.write(text)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return (await stat(path)).size;
}

/** Write a CSV with a header of `columns` names (the last `y`) and `rows` rows of small integers. */
export async function writeWideCsv(path: string, columns: number, rows: number): Promise<number> {
  const out = createWriteStream(path);
  const names = Array.from({ length: columns }, (_, j) => (j === columns - 1 ? 'y' : `feature_${j}`));
  out.write(names.join(',') + '\n');
  const row = Array.from({ length: columns }, (_, j) => String(j % 10)).join(',') + '\n';
  for (let r = 0; r < rows; r++) if (!out.write(row)) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
  return (await stat(path)).size;
}

/**
 * Time `loadCsv` on a CSV with a `columns`-wide header (best of `runs` calls): the header
 * lookup must stay linear in the column count.
 */
export async function timeWideHeader(dir: string, columns: number, rows = 2, runs = 3): Promise<NonNullable<CsvParseReport['wideHeader']>> {
  const file = join(dir, `wide-${columns}.csv`);
  await writeWideCsv(file, columns, rows);
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const ds = await loadCsv(file, { target: ['y'], task: 'regression' });
    best = Math.min(best, (performance.now() - t0) / 1000);
    if (ds.inputs !== columns - 1 || ds.n !== rows) throw new Error(`loadCsv read ${ds.n} × ${ds.inputs}, expected ${rows} × ${columns - 1}`);
  }
  return { columns, rows, seconds: best, runs };
}

/**
 * Time `loadCsv` on a generated rows × features CSV (tinybench, `runs` calls), with the
 * process's peak RSS, and one epoch of training on the parsed data for comparison.
 */
export async function runCsvParseBenchmark(o: CsvParseOptions = {}): Promise<CsvParseReport> {
  const rows = o.rows ?? 200_000;
  const features = o.features ?? 32;
  const runs = o.runs ?? 3;
  const wideColumns = o.wideColumns ?? 100_000;
  for (const [name, v] of [['rows', rows], ['features', features], ['runs', runs]] as const) checkPositiveInt(v, name);
  checkNonNegativeInt(o.workers ?? 0, 'workers');
  checkNonNegativeInt(wideColumns, 'wideColumns');
  const say = o.onProgress ?? (() => {});
  const header = benchHeader(o.machine);
  const load = startLoad();
  const rssBefore = process.resourceUsage().maxRSS / 1024;
  const dir = await mkdtemp(join(tmpdir(), 'moe-bench-csv-'));
  try {
    const file = join(dir, 'data.csv');
    say(`writing ${rows} × ${features} CSV to ${file}`);
    const bytes = await writeRandomCsv(file, rows, features);
    const target = ['y'];
    let loaded: Awaited<ReturnType<typeof loadCsv>> | undefined;
    const bench = new Bench({ name: 'loadCsv', iterations: runs, time: 0, warmup: false, throws: true });
    bench.add('loadCsv', async () => {
      // Drop the previous result first, so that the peak RSS is one parse's, not two.
      loaded = undefined;
      loaded = await loadCsv(file, { target, task: 'regression' });
    });
    say(`parsing ${(bytes / 2 ** 20).toFixed(1)} MiB ${runs} times`);
    await bench.run();
    const result = bench.tasks[0]!.result;
    if (result.state !== 'completed' || !loaded) throw new Error(`loadCsv benchmark ended ${result.state}`);
    const parseSeconds = result.period / 1000;
    const peakRss = process.resourceUsage().maxRSS / 1024;
    const data = loaded;
    if (data.n !== rows || data.inputs !== features) throw new Error(`loadCsv read ${data.n} × ${data.inputs}, expected ${rows} × ${features}`);

    const experts = 8, expert = 'mlp:256', batch = 512;
    const workers = o.workers ?? Math.min(availableParallelism(), experts);
    const m = await Mixture.create({
      task: 'regression',
      inputs: features,
      outputs: 1,
      experts,
      expert,
      loss: 'gaussian',
      optimizer: 'adam',
      lr: 1e-3,
      backend: o.backend ?? 'auto',
      onWarning: say,
    });
    say(`training one epoch: ${experts} × ${expert} experts, batch ${batch}, ${workers} workers, ${m.provider.name}`);
    const fit = await m.fit(data, { epochs: 1, batchSize: batch, workers }).finally(() => m.close());
    const epoch = fit.history[0]!;
    let wideHeader: CsvParseReport['wideHeader'];
    if (wideColumns > 0) {
      say(`parsing a ${wideColumns}-column header`);
      wideHeader = await timeWideHeader(dir, Math.max(2, wideColumns));
    }
    const parseEpochs = parseSeconds / epoch.seconds;
    endLoad(load);
    // A one-off cost is more than 10% of a run of n epochs while n < 9 × parseEpochs.
    const verdict =
      parseEpochs < 1
        ? `Parsing is not the bottleneck: loading the file once takes ${(parseEpochs * 100).toFixed(0)}% of one training epoch on the same data.`
        : `Parsing the file once costs as much as ${parseEpochs.toFixed(1)} epochs of training: it is more than 10% of a run shorter than ${Math.ceil(9 * parseEpochs)} epochs, and negligible for long runs.`;
    return {
      ...header,
      rows,
      features,
      fileBytes: bytes,
      runs: bench.tasks[0]!.runs,
      parseSeconds,
      rmePercent: result.latency.rme,
      rowsPerSecond: rows / parseSeconds,
      megabytesPerSecond: bytes / 1e6 / parseSeconds,
      rssBeforeMiB: rssBefore,
      peakRssMiB: peakRss,
      datasetMiB: ((data.x.length + (data.y?.length ?? 0)) * 4) / 2 ** 20,
      training: { backend: fit.backend, workers: fit.workers, experts, expert, batch, epochSeconds: epoch.seconds, samplesPerSecond: epoch.samplesPerSecond },
      parseEpochs,
      ...(wideHeader ? { wideHeader } : {}),
      loadAverage: load,
      verdict,
    };
  } finally {
    if (!o.keepDir) await rm(dir, { recursive: true, force: true });
  }
}
