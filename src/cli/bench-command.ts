/**
 * `moe bench`: the scaling benchmark (`moe bench scaling`) and the CSV parsing benchmark
 * (`moe bench csv`). Reports go to stdout (markdown, or one JSON line with --json),
 * progress to stderr, and with --out to `<dir>/<name>.json` and `.md`, written atomically.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Command } from 'commander';
import { Bench } from 'tinybench';
import { parseBackend } from '../compute/load.js';
import { loadCsv } from '../data/csv.js';
import { OptionError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Mixture } from '../mixture.js';
import { Rng } from '../rng.js';
import { formatCsvJson, formatCsvMarkdown, formatScalingJson, formatScalingMarkdown, type CsvParseReport } from '../bench/report.js';
import { machineSlug, runScalingBenchmark, SCALING_SIZES, type ScalingOptions, type ScalingSize } from '../bench/scaling.js';

function positiveInt(text: string, option: string): number {
  const v = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(v) || v < 1) throw new OptionError(option, `must be a positive integer, got ${JSON.stringify(text)}`);
  return v;
}

function intList(text: string, option: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((s) => s === '')) throw new OptionError(option, `expected a comma-separated list of positive integers, got ${JSON.stringify(text)}`);
  return parts.map((s) => positiveInt(s, option));
}

function sizeList(text: string): ScalingSize[] {
  const parts = text.split(',').map((s) => s.trim());
  for (const p of parts) {
    if (!(SCALING_SIZES as readonly string[]).includes(p)) throw new OptionError('--sizes', `unknown size ${JSON.stringify(p)} (expected a comma-separated list of ${SCALING_SIZES.join(', ')})`);
  }
  return parts as ScalingSize[];
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * The command line as given, rebuilt from the options that came from it (for the report);
 * --note is left out: it is printed with the report already.
 */
function commandLine(cmd: Command): string {
  const parts = ['moe', 'bench', cmd.name()];
  for (const o of cmd.options) {
    const key = o.attributeName();
    if (key === 'note' || cmd.getOptionValueSource(key) !== 'cli') continue;
    const v: unknown = cmd.getOptionValue(key);
    const flag = o.long ?? o.short ?? key;
    if (v === true) parts.push(flag);
    else if (Array.isArray(v)) for (const x of v) parts.push(flag, quote(String(x)));
    else parts.push(flag, quote(String(v)));
  }
  return parts.join(' ');
}

function quote(s: string): string {
  return /^[\w.,/:=@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

async function writeReport(dir: string, name: string, json: string, md: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = [join(dir, `${name}.json`), join(dir, `${name}.md`)];
  await writeFileAtomic(files[0]!, json + '\n');
  await writeFileAtomic(files[1]!, md);
  return files;
}

const progress = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

interface ScalingCliOptions {
  json?: boolean;
  sizes?: string;
  workers?: string;
  experts?: string;
  backend?: string;
  out?: string;
  machine?: string;
  quick?: boolean;
  time?: string;
  note?: string[];
}

interface CsvCliOptions {
  json?: boolean;
  rows: string;
  features: string;
  runs: string;
  workers?: string;
  backend?: string;
  out?: string;
  machine?: string;
  note?: string[];
  keep?: boolean;
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

/**
 * Time `loadCsv` on a generated rows × features CSV (tinybench, `runs` calls), with the
 * process's peak RSS, and one epoch of training on the parsed data for comparison.
 */
export async function runCsvParseBenchmark(o: {
  rows?: number;
  features?: number;
  runs?: number;
  workers?: number;
  backend?: ReturnType<typeof parseBackend>;
  machine?: string;
  keepDir?: boolean;
  onProgress?: (line: string) => void;
}): Promise<CsvParseReport> {
  const rows = o.rows ?? 200_000;
  const features = o.features ?? 32;
  const runs = o.runs ?? 3;
  const say = o.onProgress ?? (() => {});
  const loadStart = loadavg()[0]!;
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
    const fit = await m.fit(data, { epochs: 1, batchSize: batch, workers });
    const epoch = fit.history[0]!;
    const parseEpochs = parseSeconds / epoch.seconds;
    // A one-off cost is more than 10% of a run of n epochs while n < 9 × parseEpochs.
    const verdict =
      parseEpochs < 1
        ? `Parsing is not the bottleneck: loading the file once takes ${(parseEpochs * 100).toFixed(0)}% of one training epoch on the same data.`
        : `Parsing the file once costs as much as ${parseEpochs.toFixed(1)} epochs of training: it is more than 10% of a run shorter than ${Math.ceil(9 * parseEpochs)} epochs, and negligible for long runs.`;
    return {
      machine: o.machine ?? machineSlug(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cores: availableParallelism(),
      node: process.version,
      date: new Date().toISOString(),
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
      loadAverage: { start: loadStart, end: loadavg()[0]! },
      verdict,
    };
  } finally {
    if (!o.keepDir) await rm(dir, { recursive: true, force: true });
  }
}

/** The `bench` command with its `scaling` and `csv` subcommands (commander 14). */
export function benchCommand(): Command {
  const bench = new Command('bench').description('benchmarks: parallel scaling, CSV parsing');

  bench
    .command('scaling')
    .description('samples/s, speedup, efficiency and synchronisation cost of the parallel trainer at 1…W workers')
    .option('--json', 'print one JSON object (the last line of stdout) instead of the markdown table')
    .option('--sizes <list>', `comma-separated sizes among ${SCALING_SIZES.join(', ')}`, SCALING_SIZES.join(','))
    .option('--workers <list>', 'comma-separated worker counts (default 1, 2, 4, … up to min(cores, experts), and cores)')
    .option('--experts <n>', 'experts per mixture (default 8; 16 on machines with more than 8 cores)')
    .option('--backend <name>', 'compute provider: auto, blas, tensorflow, wasm, cpu', 'auto')
    .option('--out <dir>', 'also write <dir>/<machine>.json and <dir>/<machine>.md')
    .option('--machine <name>', 'name of this machine in the report and file names (default: CPU model and cores)')
    .option('--quick', 'short measurements (a smoke run, not for publishing)')
    .option('--time <ms>', 'timed budget per measurement in milliseconds (default 3000, --quick 300)')
    .option('--note <text>', 'a remark to print with the report (repeatable)', collect)
    .action(async function (this: Command, o: ScalingCliOptions) {
      const opts: ScalingOptions = {
        sizes: sizeList(o.sizes ?? SCALING_SIZES.join(',')),
        backend: parseBackend(o.backend, '--backend'),
        onProgress: progress,
        ...(o.quick ? { timeMs: 300, minSteps: 3, warmupSteps: 1, pings: 100 } : {}),
      };
      if (o.workers !== undefined) opts.workers = intList(o.workers, '--workers');
      if (o.experts !== undefined) opts.experts = positiveInt(o.experts, '--experts');
      if (o.time !== undefined) {
        const t = Number(o.time);
        if (!(Number.isFinite(t) && t >= 0)) throw new OptionError('--time', `must be a number of milliseconds ≥ 0, got ${JSON.stringify(o.time)}`);
        opts.timeMs = t;
      }
      if (o.machine !== undefined) {
        if (!/^[A-Za-z0-9][\w.-]*$/.test(o.machine)) throw new OptionError('--machine', `must be letters, digits, '.', '_' or '-' (it names files), got ${JSON.stringify(o.machine)}`);
        opts.machine = o.machine;
      }
      // Before minutes of measuring, not after.
      if (o.out !== undefined) await mkdir(o.out, { recursive: true });
      const report = await runScalingBenchmark(opts);
      report.command = commandLine(this);
      if (o.note?.length) report.notes = o.note;
      const md = formatScalingMarkdown(report);
      if (o.out !== undefined) {
        const files = await writeReport(o.out, report.machine, formatScalingJson(report, true), md);
        progress(`wrote ${files.join(', ')}`);
      }
      process.stdout.write(o.json ? formatScalingJson(report) + '\n' : md);
    });

  bench
    .command('csv')
    .description('loadCsv throughput and peak memory on a generated CSV, against one epoch of training on it')
    .option('--json', 'print one JSON object (the last line of stdout) instead of markdown')
    .option('--rows <n>', 'rows of the generated file', '200000')
    .option('--features <n>', 'feature columns of the generated file (plus one target)', '32')
    .option('--runs <n>', 'timed loadCsv calls', '3')
    .option('--workers <n>', 'workers for the training epoch, 0 for in-process (default min(cores, 8))')
    .option('--backend <name>', 'compute provider: auto, blas, tensorflow, wasm, cpu', 'auto')
    .option('--out <dir>', 'also write <dir>/csv-parse.json and <dir>/csv-parse.md')
    .option('--machine <name>', 'name of this machine in the report (default: CPU model and cores)')
    .option('--note <text>', 'a remark to print with the report (repeatable)', collect)
    .option('--keep', 'keep the generated CSV (its path is printed)')
    .action(async function (this: Command, o: CsvCliOptions) {
      if (o.out !== undefined) await mkdir(o.out, { recursive: true });
      const report = await runCsvParseBenchmark({
        rows: positiveInt(o.rows, '--rows'),
        features: positiveInt(o.features, '--features'),
        runs: positiveInt(o.runs, '--runs'),
        ...(o.workers !== undefined ? { workers: o.workers.trim() === '0' ? 0 : positiveInt(o.workers, '--workers') } : {}),
        backend: parseBackend(o.backend, '--backend'),
        ...(o.machine !== undefined ? { machine: o.machine } : {}),
        ...(o.keep ? { keepDir: true } : {}),
        onProgress: progress,
      });
      report.command = commandLine(this);
      if (o.note?.length) report.notes = o.note;
      const md = formatCsvMarkdown(report);
      if (o.out !== undefined) {
        const files = await writeReport(o.out, 'csv-parse', formatCsvJson(report, true), md);
        progress(`wrote ${files.join(', ')}`);
      }
      process.stdout.write(o.json ? formatCsvJson(report) + '\n' : md);
    });

  return bench;
}
