/**
 * `moe bench`: the scaling benchmark (`moe bench scaling`), the peer benchmark against
 * PyTorch (`moe bench peers`), the sparse-routing benchmark (`moe bench sparse`) and the
 * element-wise kernel benchmark (`moe bench kernels`). Only the command line lives here:
 * the benchmarks are in the top-level bench/ folder (compiled to dist/bench, shipped for
 * this command only, not API). Reports go to stdout (markdown, or one JSON line with --json),
 * progress to stderr, and with --out to `<dir>/<name>.json` and `.md`, written atomically.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { formatKernelJson, formatKernelMarkdown, runKernelBenchmark, type KernelBenchOptions } from '../../bench/kernels.js';
import { BENCH_SIZES, checkChoices, defaultExperts, defaultWorkers, machineSlug, type BenchSize } from '../../bench/harness.js';
import { PEER_EXPERTS, runPeerBenchmark, type PeerOptions } from '../../bench/peers.js';
import { formatPeersJson, formatPeersMarkdown } from '../../bench/peers-report.js';
import { PYTORCH_CONFIGS, type PytorchConfigName } from '../../bench/peers/pytorch.js';
import { BENCH_DATA, DENORMAL_MODES, type BenchData, type DenormalMode } from '../../bench/problem.js';
import { MPI_BENCH_LOSSES, runMpiScalingBenchmark, type MpiBenchLoss, type MpiScalingOptions } from '../../bench/mpi-scaling.js';
import { formatMpiScalingJson, formatMpiScalingMarkdown, formatScalingJson, formatScalingMarkdown } from '../../bench/report.js';
import { runScalingBenchmark, type ScalingOptions } from '../../bench/scaling.js';
import { formatSparseJson, formatSparseMarkdown, runSparseBenchmark, SPARSE_ROUTINGS, type SparseOptions } from '../../bench/sparse.js';
import { OptionError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkWorkerCount } from '../engine/plan.js';
import { joinMpi, sameOnEveryRank, writesFiles } from './mpi.js';
import { EXIT_CODES_HELP_NO_SAVE, backendOf, backendOption, checkOutputDir, forceOption, intArg, noteWorkers, verboseOption, warn } from './common.js';

/** A comma-separated list of positive integers. */
function intList(text: string, option: string): number[] {
  try {
    return text.split(',').map((s) => intArg(1)(s));
  } catch {
    throw new OptionError(option, `expected a comma-separated list of positive integers, got ${JSON.stringify(text)}`);
  }
}

/** A comma-separated list of positive numbers (or ≥ 0 with `zero`). */
function positiveList(text: string, option: string, zero = false): number[] {
  const xs = text.split(',').map((s) => Number(s.trim()));
  if (text.trim() === '' || xs.some((x) => !Number.isFinite(x) || x < 0 || (!zero && x === 0))) throw new OptionError(option, `expected a comma-separated list of numbers ${zero ? '≥ 0' : '> 0'}, got ${JSON.stringify(text)}`);
  return xs;
}

/** `--sizes`: a comma-separated list of benchmark sizes. */
function sizeList(text: string): BenchSize[] {
  return checkChoices(
    text.split(',').map((s) => s.trim()),
    BENCH_SIZES,
    '--sizes',
    'size',
  );
}

/** A comma-separated list of names, none empty or repeated. */
function nameList(text: string, option: string): string[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((p) => p === '')) throw new OptionError(option, `expected a comma-separated list, got ${JSON.stringify(text)}`);
  if (new Set(parts).size !== parts.length) throw new OptionError(option, `a value is given twice in ${JSON.stringify(text)}`);
  return parts;
}

/** `--time`: milliseconds ≥ 0. */
function timeOf(text: string): number {
  const t = Number(text);
  if (!(text.trim() !== '' && Number.isFinite(t) && t >= 0)) throw new OptionError('--time', `must be a number of milliseconds ≥ 0, got ${JSON.stringify(text)}`);
  return t;
}

/** `--machine`: it names files. */
function machineOf(name: string): string {
  if (!/^[A-Za-z0-9][\w.-]*$/.test(name)) throw new OptionError('--machine', `must be letters, digits, '.', '_' or '-' (it names files), got ${JSON.stringify(name)}`);
  return name;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * The command line as given, rebuilt from the options that came from it (for the report);
 * --note is left out (it is printed with the report already), and so is --verbose.
 */
function commandLine(cmd: Command): string {
  const parts = ['moe', 'bench', cmd.name()];
  for (const o of cmd.options) {
    const key = o.attributeName();
    if (key === 'note' || key === 'verbose' || cmd.getOptionValueSource(key) !== 'cli') continue;
    const v: unknown = cmd.getOptionValue(key);
    const flag = o.long ?? o.short ?? key;
    if (typeof v === 'boolean') parts.push(flag);
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
  await writeFileAtomic(files[0]!, json + '\n', { option: '--out' });
  await writeFileAtomic(files[1]!, md, { option: '--out' });
  return files;
}

/**
 * Before minutes of measuring, not after: `--out`'s directory (created at the end where
 * it does not exist) and the report files `<name>.json` and `.md` in it can be written.
 * Creates nothing.
 */
async function checkReportDir(dir: string | undefined, name: string, force: boolean | undefined): Promise<void> {
  if (dir !== undefined) await checkOutputDir('--out', dir, [`${name}.json`, `${name}.md`], force === true);
}

/** Progress lines on stderr; a library's warnings (a provider fall-back) and the benchmarks' (`warning: …`, a busy machine) as one `moe: warning:` line each. */
const progress = (line: string): void => {
  if (line.startsWith('local-experts:')) warn(line);
  else if (line.startsWith('warning: ')) warn(line.slice('warning: '.length));
  else process.stderr.write(`${line}\n`);
};

interface ScalingCliOptions {
  force?: boolean;
  json?: boolean;
  sizes?: string;
  workers?: string;
  experts?: number;
  backend: string;
  out?: string;
  machine?: string;
  quick?: boolean;
  time?: string;
  note?: string[];
  mpi?: boolean;
  loss: string;
  rounds?: number;
  bandwidth: string;
  latency: string;
}

interface PeersCliOptions {
  force?: boolean;
  json?: boolean;
  sizes: string;
  rounds: number;
  steps?: number;
  time?: string;
  workers: number;
  pytorch: boolean;
  pytorchConfigs?: string;
  pytorchDenormals?: string;
  data: string;
  denormals: string;
  breakdown: boolean;
  backend: string;
  out?: string;
  machine?: string;
  note?: string[];
}

interface SparseCliOptions {
  force?: boolean;
  json?: boolean;
  routing?: string;
  experts: number;
  size: string;
  batch?: number;
  workers?: number;
  rounds: number;
  steps?: number;
  time?: string;
  skew: boolean;
  breakdown: boolean;
  predictRows: number;
  backend: string;
  out?: string;
  machine?: string;
  note?: string[];
}

interface KernelsCliOptions {
  force?: boolean;
  json?: boolean;
  time?: string;
  out?: string;
  machine?: string;
  note?: string[];
}

/** The `bench` command with its `scaling`, `peers`, `sparse` and `kernels` subcommands (commander 14). */
export function benchCommand(): Command {
  const bench = new Command('bench').description('benchmarks: parallel scaling, peers, sparse routing, element-wise kernels').addHelpText('after', EXIT_CODES_HELP_NO_SAVE);

  bench
    .command('scaling')
    .description('samples/s, speedup, efficiency and synchronisation cost of the parallel trainer at 1…W workers')
    .option('--json', 'print one JSON object (the last line of stdout) instead of the markdown table')
    .option('--sizes <list>', `comma-separated sizes among ${BENCH_SIZES.join(', ')}`, BENCH_SIZES.join(','))
    .option('--workers <list>', 'comma-separated worker counts (default 1, 2, 4, … up to min(cores, experts), and cores)')
    .addOption(new Option('--experts <n>', 'experts per mixture (default 8; 16 on machines with more than 8 cores)').argParser(intArg(1)))
    .addOption(backendOption())
    .option('--out <dir>', 'also write <dir>/<machine>.json and <dir>/<machine>.md')
    .option('--machine <name>', 'name of this machine in the report and file names (default: CPU model and cores)')
    .option('--quick', 'short measurements (a smoke run, not for publishing)')
    .option('--time <ms>', 'timed budget per measurement in milliseconds (default 3000, --quick 300)')
    .option('--note <text>', 'a remark to print with the report (repeatable)', collect)
    .option(
      '--mpi',
      'run as one rank of an MPI job (mpiexec -n R npx moe bench scaling --mpi --workers 1): rows of 1 rank × 1, 2, R·W workers and R ranks × W workers (--workers: per rank, default 1; --sizes default medium), the time and bytes of the MPI exchanges per step, the cost model checked against them and its PREDICTED rows for more ranks; rank 0 reports, --out writes <dir>/mpi-<machine>.json and .md',
    )
    .addOption(new Option('--loss <name>', 'with --mpi: the error function (its exchange differs)').choices(MPI_BENCH_LOSSES).default('gaussian'))
    .addOption(new Option('--rounds <n>', 'with --mpi: interleaved rounds per row, the median reported (default 3, --quick 1)').argParser(intArg(1)))
    .option('--bandwidth <list>', "with --mpi: the predictions' network bandwidths, Gb/s", '10,100')
    .option('--latency <list>', "with --mpi: the predictions' network latency, µs (one value, or one per bandwidth)", '20')
    .addOption(forceOption())
    .addOption(verboseOption())
    .addHelpText('after', EXIT_CODES_HELP_NO_SAVE)
    .action(async function (this: Command, o: ScalingCliOptions) {
      if (o.mpi) return mpiScaling(this, o);
      const opts: ScalingOptions = {
        sizes: sizeList(o.sizes ?? BENCH_SIZES.join(',')),
        backend: backendOf(o.backend),
        onProgress: progress,
        ...(o.quick ? { timeMs: 300, minSteps: 3, warmupSteps: 1, pings: 100 } : {}),
      };
      if (o.workers !== undefined) opts.workers = intList(o.workers, '--workers');
      if (o.experts !== undefined) opts.experts = o.experts;
      if (o.time !== undefined) opts.timeMs = timeOf(o.time);
      if (o.machine !== undefined) opts.machine = machineOf(o.machine);
      await checkReportDir(o.out, opts.machine ?? machineSlug(), o.force);
      if (opts.workers) {
        // As runScalingBenchmark checks them (its default experts), before the notice.
        for (const w of opts.workers) checkWorkerCount(w, opts.experts ?? defaultExperts());
        noteWorkers('--workers', Math.max(...opts.workers));
      }
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

  async function mpiScaling(cmd: Command, o: ScalingCliOptions): Promise<void> {
    // MPI first: the rank decides who prints and writes (ranks other than 0 print only errors).
    joinMpi();
    // The options are the same on every rank: rank 0 alone reports a bad one.
    const opts = await sameOnEveryRank(() => {
      const opts: MpiScalingOptions = {
        sizes: cmd.getOptionValueSource('sizes') === 'cli' ? sizeList(o.sizes ?? 'medium') : ['medium'],
        loss: o.loss as MpiBenchLoss,
        backend: backendOf(o.backend),
        bandwidthsGbps: positiveList(o.bandwidth, '--bandwidth'),
        latencyMicros: positiveList(o.latency, '--latency', true),
        onProgress: progress,
        ...(o.quick ? { timeMs: 300, minSteps: 3, warmupSteps: 1, rounds: 1 } : {}),
      };
      if (opts.latencyMicros!.length !== 1 && opts.latencyMicros!.length !== opts.bandwidthsGbps!.length) throw new OptionError('--latency', `one value, or one per bandwidth (${opts.bandwidthsGbps!.length})`);
      if (o.workers !== undefined) opts.workers = intList(o.workers, '--workers');
      if (o.experts !== undefined) opts.experts = o.experts;
      if (o.time !== undefined) opts.timeMs = timeOf(o.time);
      if (o.rounds !== undefined) opts.rounds = o.rounds;
      if (o.machine !== undefined) opts.machine = machineOf(o.machine);
      return opts;
    });
    const name = `mpi-${opts.machine ?? machineSlug()}`;
    if (writesFiles()) await checkReportDir(o.out, name, o.force);
    const report = await runMpiScalingBenchmark(opts);
    if (!writesFiles()) return;
    report.command = commandLine(cmd);
    if (o.note?.length) report.notes = o.note;
    const md = formatMpiScalingMarkdown(report);
    if (o.out !== undefined) {
      const files = await writeReport(o.out, name, formatMpiScalingJson(report, true), md);
      progress(`wrote ${files.join(', ')}`);
    }
    process.stdout.write(o.json ? formatMpiScalingJson(report) + '\n' : md);
  }

  bench
    .command('peers')
    .description('the same mixture on identical shapes in one run, interleaved: this library in-process and with workers against PyTorch; gemmShare and where the step goes')
    .option('--json', 'print one JSON object (the last line of stdout) instead of markdown')
    .option('--sizes <list>', `comma-separated sizes among ${BENCH_SIZES.join(', ')}`, BENCH_SIZES.join(','))
    .addOption(new Option('--rounds <n>', 'interleaved rounds: every system once per round, the median reported').argParser(intArg(1)).default(3))
    .option('--time <ms>', 'timed budget per measurement in milliseconds (default 3000; at least 3 steps)')
    .addOption(new Option('--steps <n>', 'exactly this many timed steps per measurement (instead of --time)').argParser(intArg(1)).conflicts('time'))
    .addOption(new Option('--workers <n>', "worker threads of this library's parallel system").argParser(intArg(1)).default(Math.min(defaultWorkers(), PEER_EXPERTS), `min(cores, 8): ${Math.min(defaultWorkers(), PEER_EXPERTS)} here`))
    .option('--no-pytorch', 'do not run the PyTorch peer')
    .option('--pytorch-configs <list>', `PyTorch thread configurations among ${PYTORCH_CONFIGS.map((c) => c.config).join(', ')} (default all)`)
    .option('--pytorch-denormals <list>', "PyTorch's subnormal modes, each configuration measured in each: ieee (as is), flush (FTZ/DAZ before import torch)", 'ieee,flush')
    .addOption(new Option('--data <kind>', 'learnable (targets copy inputs) or hard (independent random targets; at least 50 steps per measurement, and each row\'s slowdown)').choices(BENCH_DATA).default('learnable'))
    .addOption(new Option('--denormals <mode>', "subnormal floats in this library's compute").choices(DENORMAL_MODES).default('flush'))
    .option('--no-breakdown', 'do not measure where the step goes (gemmShare, breakdown)')
    .addOption(backendOption())
    .option('--out <dir>', 'also write <dir>/peers-<machine>.json and <dir>/peers-<machine>.md')
    .option('--machine <name>', 'name of this machine in the report and file names (default: CPU model and cores)')
    .option('--note <text>', 'a remark to print with the report (repeatable)', collect)
    .addOption(forceOption())
    .addOption(verboseOption())
    .addHelpText('after', EXIT_CODES_HELP_NO_SAVE)
    .action(async function (this: Command, o: PeersCliOptions) {
      const opts: PeerOptions = {
        sizes: sizeList(o.sizes),
        rounds: o.rounds,
        workers: o.workers,
        pytorch: o.pytorch,
        breakdown: o.breakdown,
        backend: backendOf(o.backend),
        data: o.data as BenchData,
        denormals: o.denormals as DenormalMode,
        onProgress: progress,
      };
      if (o.pytorchDenormals !== undefined) {
        opts.pytorchDenormals = checkChoices(nameList(o.pytorchDenormals, '--pytorch-denormals'), DENORMAL_MODES, '--pytorch-denormals', 'mode');
      }
      if (o.pytorchConfigs !== undefined) {
        opts.pytorchConfigs = checkChoices(
          nameList(o.pytorchConfigs, '--pytorch-configs'),
          PYTORCH_CONFIGS.map((c) => c.config),
          '--pytorch-configs',
          'configuration',
        ) as PytorchConfigName[];
      }
      if (o.steps !== undefined) opts.steps = o.steps;
      if (o.time !== undefined) opts.timeMs = timeOf(o.time);
      if (o.machine !== undefined) opts.machine = machineOf(o.machine);
      await checkReportDir(o.out, `peers-${opts.machine ?? machineSlug()}`, o.force);
      checkWorkerCount(o.workers, PEER_EXPERTS);
      noteWorkers('--workers', o.workers);
      const report = await runPeerBenchmark(opts);
      report.command = commandLine(this);
      if (o.note?.length) report.notes = o.note;
      const md = formatPeersMarkdown(report);
      if (o.out !== undefined) {
        const files = await writeReport(o.out, `peers-${report.machine}`, formatPeersJson(report, true), md);
        progress(`wrote ${files.join(', ')}`);
      }
      process.stdout.write(o.json ? formatPeersJson(report) + '\n' : md);
    });

  bench
    .command('sparse')
    .description('samples/s of full training steps under every routing (dense, topk, switch, expert-choice) with workers = cores, and the cost of a skewed load with and without splitting')
    .option('--json', 'print one JSON object (the last line of stdout) instead of markdown')
    .option('--routing <list>', `comma-separated routings (default ${SPARSE_ROUTINGS.join(',')})`)
    .addOption(new Option('--experts <n>', 'experts').argParser(intArg(1)).default(16))
    .option('--size <name>', `expert shape and batch: one of ${BENCH_SIZES.join(', ')}`, 'medium')
    .addOption(new Option('--batch <n>', "rows per step (default the size's)").argParser(intArg(1)))
    .addOption(new Option('--workers <n>', 'worker threads (default min(cores, experts))').argParser(intArg(1)))
    .addOption(new Option('--rounds <n>', 'interleaved rounds, the median reported').argParser(intArg(1)).default(3))
    .option('--time <ms>', 'timed budget per measurement in milliseconds (default 3000; at least 3 steps)')
    .addOption(new Option('--steps <n>', 'exactly this many timed steps per measurement (instead of --time)').argParser(intArg(1)).conflicts('time'))
    .option('--no-skew', 'do not measure the skewed-load case')
    .option('--no-breakdown', "do not measure where each routing's step goes (fixed and per-entry parts, Amdahl bound)")
    .addOption(new Option('--predict-rows <n>', 'rows of the predict measurement (0: skip it)').argParser(intArg(0)).default(4096))
    .addOption(backendOption())
    .option('--out <dir>', 'also write <dir>/sparse-<machine>.json and <dir>/sparse-<machine>.md')
    .option('--machine <name>', 'name of this machine in the report and file names (default: CPU model and cores)')
    .option('--note <text>', 'a remark to print with the report (repeatable)', collect)
    .addOption(forceOption())
    .addOption(verboseOption())
    .addHelpText('after', EXIT_CODES_HELP_NO_SAVE)
    .action(async function (this: Command, o: SparseCliOptions) {
      const opts: SparseOptions = {
        experts: o.experts,
        size: checkChoices([o.size], BENCH_SIZES, '--size', 'size')[0]!,
        rounds: o.rounds,
        skew: o.skew,
        breakdown: o.breakdown,
        predictRows: o.predictRows,
        backend: backendOf(o.backend),
        onProgress: progress,
      };
      if (o.routing !== undefined) opts.routings = nameList(o.routing, '--routing');
      if (o.batch !== undefined) opts.batch = o.batch;
      if (o.workers !== undefined) {
        checkWorkerCount(o.workers, o.experts);
        opts.workers = o.workers;
      }
      if (o.steps !== undefined) opts.steps = o.steps;
      if (o.time !== undefined) opts.timeMs = timeOf(o.time);
      if (o.machine !== undefined) opts.machine = machineOf(o.machine);
      await checkReportDir(o.out, `sparse-${opts.machine ?? machineSlug()}`, o.force);
      if (o.workers !== undefined) noteWorkers('--workers', o.workers);
      const report = await runSparseBenchmark(opts);
      report.command = commandLine(this);
      if (o.note?.length) report.notes = o.note;
      const md = formatSparseMarkdown(report);
      if (o.out !== undefined) {
        const files = await writeReport(o.out, `sparse-${report.machine}`, formatSparseJson(report, true), md);
        progress(`wrote ${files.join(', ')}`);
      }
      process.stdout.write(o.json ? formatSparseJson(report) + '\n' : md);
    });

  bench
    .command('kernels')
    .description('ns per element of every element-wise kernel on one thread: the wasm SIMD set, its JS mirror and the 0.1.0 loops, at a medium step’s sizes')
    .option('--json', 'print one JSON object (the last line of stdout) instead of markdown')
    .option('--time <ms>', 'timed budget per kernel and set in milliseconds (default 300)')
    .option('--out <dir>', 'also write <dir>/kernels-<machine>.json and <dir>/kernels-<machine>.md')
    .option('--machine <name>', 'name of this machine in the report and file names (default: CPU model and cores)')
    .option('--note <text>', 'a remark to print with the report (repeatable)', collect)
    .addOption(forceOption())
    .addOption(verboseOption())
    .addHelpText('after', EXIT_CODES_HELP_NO_SAVE)
    .action(async function (this: Command, o: KernelsCliOptions) {
      const opts: KernelBenchOptions = { onProgress: progress };
      if (o.time !== undefined) opts.timeMs = timeOf(o.time);
      if (o.machine !== undefined) opts.machine = machineOf(o.machine);
      await checkReportDir(o.out, `kernels-${opts.machine ?? machineSlug()}`, o.force);
      if (o.out !== undefined) await mkdir(o.out, { recursive: true });
      const report = await runKernelBenchmark(opts);
      report.command = commandLine(this);
      if (o.note?.length) report.notes = o.note;
      const md = formatKernelMarkdown(report);
      if (o.out !== undefined) {
        const files = await writeReport(o.out, `kernels-${report.machine}`, formatKernelJson(report, true), md);
        progress(`wrote ${files.join(', ')}`);
      }
      process.stdout.write(o.json ? formatKernelJson(report) + '\n' : md);
    });

  return bench;
}
