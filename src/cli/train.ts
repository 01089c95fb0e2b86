/**
 * `moe train`: load data, create (or resume) a mixture, fit it with progress, checkpoints
 * and Ctrl-C handling, then report metrics as text or one JSON line.
 */
import { joinMpi, readOnRankZero, writesFiles } from './mpi.js';
import { readModelBytes } from '../io/model-file.js';
import type { DenormalMode } from '../compute/float-mode.js';
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import { loadCsv } from '../data/csv.js';
import { subset, type Dataset } from '../data/dataset.js';
import { loadVowels } from '../data/vowels.js';
import { MoeError, OptionError } from '../errors.js';
import { checkJsonModelSize } from '../io/model-file.js';
import { LOSSES, type LossName } from '../model/config.js';
import { Mixture, type Evaluation } from '../mixture.js';
import { formatNetSpec, parseNetSpec, resolveLoss, type Task } from '../model/config.js';
import { OPTIMIZERS, type OptimizerName } from '../optim/config.js';
import { checkWorkerCount } from '../engine/plan.js';
import { chooseWorkers } from '../train/fit.js';
import type { EpochInfo, FitResult, RoutingMetrics } from '../train/options.js';
import { formatRouting, parseRoutingSpec } from '../model/routing.js';
import { renderTrainingPlot, type PlotEpoch } from '../plot/training-plot.js';
import { renderGatePlot } from '../plot/gate-plot.js';
import { plotFormat, writePlot as writePlotFile } from '../plot/output.js';
import { cosineDecay, stepDecay, type LrSchedule } from '../optim/config.js';
import { InvalidArgumentError } from 'commander';
import { parseNumber } from '../data/csv.js';
import {
  EXIT,
  EXIT_CODES_HELP,
  backendOf,
  backendOption,
  checkOutputPath,
  fmt,
  forceOption,
  fractionArg,
  given,
  intArg,
  jsonLine,
  listArg,
  columnsOf,
  loadCsvForModel,
  netSpecArg,
  nonNegativeArg,
  routingArg,
  noteWorkers,
  pct,
  positiveArg,
  realFile,
  seedArg,
  splitValidation,
  verboseOption,
  warn,
  workersArg,
  writeStdout,
  type ModelView,
} from './common.js';
import { metricsJson, summaryLines } from './metrics-text.js';
import { columnList, listItems } from './lists.js';
import { openModel, readModelFile, type ModelFile, type ModelInfo } from './model-input.js';
import { createProgress, type Progress } from './progress.js';

/** Parsed `moe train` options (commander's camelCase keys). */
export interface TrainOptions {
  data?: string;
  dataset?: 'vowels';
  target?: string[];
  task?: Task;
  features?: string[];
  experts: number;
  expert: string;
  gate: string;
  loss: string;
  workers: number | 'auto';
  denormals?: string;
  mpi?: boolean;
  epochs: number;
  batchSize: number;
  lr?: number;
  optimizer: OptimizerName;
  seed: number;
  valSplit: number;
  testData?: string;
  save?: string;
  checkpointEvery?: number;
  resume?: string;
  json?: boolean;
  routing: string;
  noise?: boolean;
  balanceLoss?: number;
  zLoss?: number;
  balanceBias?: number;
  blockRows?: number;
  split: boolean;
  stallTimeout?: number;
  plot?: string;
  force?: boolean;
  plotGate?: string;
  delimiter?: string;
  earlyStoppingPatience?: number;
  stopAtLoss?: number;
  lrSchedule?: LrScheduleSpec;
  weightDecay?: number;
  backend: string;
  logEvery?: number;
  verbose?: boolean;
}

/** A parsed `--lr-schedule`. */
export type LrScheduleSpec = { kind: 'step'; every: number; factor: number } | { kind: 'cosine'; floor: number };

/** `--lr-schedule step:EVERY:FACTOR` (rate × FACTOR every EVERY epochs) or `cosine[:FLOOR]`. */
export function lrScheduleArg(value: string): LrScheduleSpec {
  const v = value.trim();
  const step = /^step:([^:]+):([^:]+)$/.exec(v);
  if (step) {
    const every = parseNumber(step[1]!), factor = parseNumber(step[2]!);
    if (!(Number.isInteger(every) && every >= 1)) throw new InvalidArgumentError('step:EVERY:FACTOR needs EVERY an integer ≥ 1 (epochs).');
    if (!(factor > 0 && factor <= 1)) throw new InvalidArgumentError('step:EVERY:FACTOR needs FACTOR in (0, 1].');
    return { kind: 'step', every, factor };
  }
  const cos = /^cosine(?::([^:]+))?$/.exec(v);
  if (cos) {
    const floor = cos[1] === undefined ? 0 : parseNumber(cos[1]);
    if (!(floor >= 0 && floor < 1)) throw new InvalidArgumentError('cosine:FLOOR needs FLOOR in [0, 1).');
    return { kind: 'cosine', floor };
  }
  throw new InvalidArgumentError('expected step:EVERY:FACTOR (e.g. step:30:0.5) or cosine[:FLOOR] (e.g. cosine or cosine:0.01).');
}

/** The library schedule of a `--lr-schedule` over the run's total `epochs` (the model's life, so resume continues it). */
function scheduleOf(spec: LrScheduleSpec | undefined, epochs: number): LrSchedule | undefined {
  if (spec === undefined) return undefined;
  return spec.kind === 'step' ? stepDecay(spec.every, spec.factor) : cosineDecay(epochs, spec.floor);
}

const EXAMPLES = `
Examples:
  # the paper's vowel task: 4 linear experts, speaker-disjoint test set
  $ moe train --dataset vowels --workers 2 --save vowels.moe --plot vowels.svg

  # regression on a CSV: 8 MLP experts sharded over the cores, 20% validation
  $ moe train --data houses.csv --target price --task regression \\
      --experts 8 --expert mlp:64,64 --workers auto --val-split 0.2 --save houses.moe

  # checkpoint every 10 epochs; after a Ctrl-C, continue to 200 epochs in total
  $ moe train --data d.csv --target y --task classification --epochs 200 \\
      --save m.moe --checkpoint-every 10
  $ moe train --data d.csv --resume m.moe --epochs 200 --save m.moe

  # the library's training controls: early stopping on the validation loss, a
  # cosine learning rate over the 300 epochs, L2 weight decay
  $ moe train --data d.csv --target y --task regression --val-split 0.2 --epochs 300 \\
      --early-stopping-patience 20 --lr-schedule cosine --weight-decay 1e-4 --save m.moe

  # what the gate learned, on two inputs: each expert's region
  $ moe train --dataset vowels --plot-gate gate.png

  # machine-readable: the last stdout line is one JSON object
  $ moe train --dataset vowels --epochs 50 --json | tail -n 1

Notes:
  --epochs is the total in the model's life: --resume continues from the epoch the
  model file records up to --epochs. The model file's architecture, optimiser and seed
  win on --resume; giving a different --experts, --expert, --gate, --loss, --task,
  --target, --features, --optimizer, --lr, --weight-decay or --seed is an error. The
  model records its --val-split, and a resumed run holds out the same rows (a different
  --val-split is an error); give the same --batch-size, --lr-schedule and
  --early-stopping-patience again to match an uninterrupted run (early stopping's
  counters are in the file and continue). --resume needs --save (else the run's work
  would be lost). A checkpoint written on Ctrl-C holds the last
  completed step and its place in the epoch; resuming finishes that epoch exactly
  (with the same --batch-size, else it is an error).
  Progress goes to stderr (a bar on a terminal, a line every --log-every epochs
  otherwise); the summary, or with --json one JSON line, goes to stdout.`;

/** The `train` command. */
export function trainCommand(): Command {
  return new Command('train')
    .description('train a mixture of local experts on a CSV file or the vowel data')
    .addOption(new Option('--data <file>', 'training data: CSV with a header row').conflicts('dataset'))
    .addOption(new Option('--dataset <name>', 'a built-in data set (Peterson & Barney vowels, F1/F2)').choices(['vowels']))
    .addOption(new Option('--target <cols>', 'target column(s), comma-separated (one for classification); a name with a comma in double quotes: \'"a,b",c\'').argParser(listArg))
    .addOption(new Option('--task <task>', 'learning task (required with --data)').choices(['regression', 'classification']))
    .addOption(new Option('--features <cols>', 'input columns, comma-separated (default: every non-target column); quoted as --target').argParser(listArg))
    .addOption(new Option('--delimiter <char>', "the CSV's field delimiter (default ,; e.g. ';' or $'\\t')"))
    .addOption(new Option('--experts <n>', 'number of experts').argParser(intArg(1)).default(4))
    .addOption(new Option('--expert <spec>', 'expert network: linear or mlp:H1,H2[:tanh|relu|sigmoid]').argParser(netSpecArg).default('linear'))
    .addOption(new Option('--gate <spec>', 'gating network: linear or mlp:H[:tanh|relu|sigmoid]').argParser(netSpecArg).default('linear'))
    .addOption(new Option('--loss <name>', 'error function (nll: gaussian for regression, categorical for classification)').choices(['nll', ...LOSSES]).default('nll'))
    .addOption(new Option('--routing <rule>', 'which experts compute a row: dense (the paper), topk:K, switch or expert-choice:C').argParser(routingArg).default('dense'))
    .addOption(new Option('--noise', 'topk: learned noise on the gate logits in training (the noisy top-k gate)'))
    .addOption(new Option('--balance-loss <w>', 'weight of the Switch load-balancing loss (0: off)').argParser(nonNegativeArg))
    .addOption(new Option('--z-loss <w>', 'weight of the router z-loss (0: off)').argParser(nonNegativeArg))
    .addOption(new Option('--balance-bias <g>', 'topk/switch: step of the auxiliary-loss-free balancing bias (0: off)').argParser(nonNegativeArg))
    .addOption(new Option('--block-rows <n>', 'sparse routing: rows per block of an expert\'s work (default 64; saved with the model)').argParser(intArg(1)))
    .addOption(new Option('--no-split', 'sparse routing with workers: keep each expert\'s blocks on its own worker (same results)'))
    .addOption(new Option('--workers <n>', 'worker threads for the experts: N, auto, or 0 for in-process').argParser(workersArg).default(0))
    .addOption(new Option('--mpi', 'run as one rank of an MPI job (mpiexec -n R npx moe train … --mpi): experts partitioned across ranks, then --workers threads each; rank 0 prints and writes files; bit-identical to one process'))
    .addOption(new Option('--denormals <mode>', 'float mode: flush (default; subnormals read and written as 0, fast on every CPU) or ieee (gradual underflow, up to 100x slower on Intel when values underflow); a resumed model keeps its mode unless given').choices(['flush', 'ieee']))
    .addOption(new Option('--stall-timeout <ms>', 'workers: give up on a phase after this many ms (default max(60000, 20 x the longest phase))').argParser(positiveArg))
    .addOption(new Option('--epochs <n>', 'TOTAL epochs over the model\'s life: a resumed run continues up to this (the library\'s fit({ epochs }) counts one call)').argParser(intArg(0)).default(100))
    .addOption(new Option('--batch-size <n>', 'rows per optimisation step').argParser(intArg(1)).default(32))
    .addOption(new Option('--lr <rate>', 'learning rate (default: 0.01 for adam, 0.1 for sgd and momentum)').argParser(positiveArg))
    .addOption(new Option('--optimizer <name>', 'optimiser').choices([...OPTIMIZERS]).default('adam'))
    .addOption(new Option('--weight-decay <l>', 'L2 weight decay: l x parameter ADDED TO THE GRADIENT before the optimiser step (torch.optim.Adam(weight_decay=l)), not decoupled decay (AdamW, Keras weight_decay); saved with the model').argParser(nonNegativeArg))
    .addOption(new Option('--lr-schedule <rule>', 'learning rate by epoch of the model\'s life: step:EVERY:FACTOR (x FACTOR every EVERY epochs) or cosine[:FLOOR] (to FLOOR x lr at --epochs)').argParser(lrScheduleArg))
    .addOption(new Option('--early-stopping-patience <n>', 'stop when the validation loss (training loss without --val-split) has not improved for N epochs, and keep the best epoch\'s weights').argParser(intArg(1)))
    .addOption(new Option('--stop-at-loss <loss>', "stop once an epoch's mean training loss (standardised units, as the progress line shows) is at or below this").argParser(anyNumberArg))
    .addOption(new Option('--seed <n>', 'seed of initialisation, splits and shuffles: an integer in [0, 2^32-1]').argParser(seedArg).default(1))
    .addOption(new Option('--val-split <fraction>', 'fraction of the training rows held out for validation (recorded in the model: --resume keeps it)').argParser(fractionArg).default(0))
    .addOption(new Option('--test-data <file>', 'held-out test data (CSV with the same columns), evaluated at the end: its metrics in the summary and --json').conflicts('dataset'))
    .addOption(new Option('--save <file>', 'write the model here at the end (atomically), at checkpoints and on Ctrl-C'))
    .addOption(new Option('--checkpoint-every <n>', 'also save every N epochs (needs --save)').argParser(intArg(1)))
    .addOption(new Option('--resume <file>', 'continue training the model in this file'))
    .addOption(new Option('--json', 'print one JSON object as the last stdout line'))
    .addOption(new Option('--plot <file>', 'write learning curves (loss, and accuracy or MSE) and expert utilisation: .svg or .png by the extension'))
    .addOption(new Option('--plot-gate <file>', "two inputs: draw each expert's region under the gate over the training rows (.svg or .png); more inputs: moe inspect MODEL --data FILE"))
    .addOption(forceOption())
    .addOption(backendOption())
    .addOption(new Option('--log-every <n>', 'without a terminal: a progress line every N epochs (default: about 10 lines a run)').argParser(intArg(1)))
    .addOption(verboseOption())
    .addHelpText('after', EXAMPLES + '\n' + EXIT_CODES_HELP)
    .action(async (opts: TrainOptions, cmd: Command) => {
      process.exitCode = await runTrain(opts, cmd);
    });
}

/** Any finite number. */
function anyNumberArg(value: string): number {
  const v = parseNumber(value.trim());
  if (!Number.isFinite(v)) throw new InvalidArgumentError('expected a number.');
  return v;
}

/** Architecture and optimiser flags that must agree with a resumed model when given. */
function checkResumeConflicts(m: ModelInfo, o: TrainOptions, cmd: Command): void {
  const c = m.config;
  const conflict = (flag: string, value: string, model: string): never => {
    throw new OptionError(flag, `${value} conflicts with the resumed model's ${model}; a resumed run keeps the model's configuration (leave the flag out)`);
  };
  if (given(cmd, 'task') && o.task !== c.task) conflict('--task', o.task!, `task ${c.task}`);
  if (given(cmd, 'experts') && o.experts !== c.experts) conflict('--experts', String(o.experts), `${c.experts} experts`);
  if (given(cmd, 'expert') && formatNetSpec(parseNetSpec(o.expert, '--expert')) !== formatNetSpec(c.expert)) {
    conflict('--expert', o.expert, `expert ${formatNetSpec(c.expert)}`);
  }
  if (given(cmd, 'gate') && formatNetSpec(parseNetSpec(o.gate, '--gate')) !== formatNetSpec(c.gate)) {
    conflict('--gate', o.gate, `gate ${formatNetSpec(c.gate)}`);
  }
  if (given(cmd, 'loss') && resolveLoss(o.loss, c.task) !== c.loss) conflict('--loss', o.loss, `loss ${c.loss}`);
  if (given(cmd, 'optimizer') && o.optimizer !== m.optimizer.name) conflict('--optimizer', o.optimizer, `optimizer ${m.optimizer.name}`);
  if (given(cmd, 'lr') && o.lr !== m.optimizer.lr) conflict('--lr', String(o.lr), `learning rate ${m.optimizer.lr}`);
  if (given(cmd, 'weightDecay') && o.weightDecay !== m.optimizer.weightDecay) conflict('--weight-decay', String(o.weightDecay), `weight decay ${m.optimizer.weightDecay}`);
  const split = m.training.validationSplit;
  if (given(cmd, 'valSplit') && split !== undefined && o.valSplit !== split) {
    conflict('--val-split', String(o.valSplit), `validation split ${split} (the same rows stay held out; leave --val-split out)`);
  }
  if (given(cmd, 'seed') && o.seed !== m.training.seed) conflict('--seed', String(o.seed), `seed ${m.training.seed}`);
  if (given(cmd, 'routing')) {
    const r = parseRoutingSpec(o.routing, c.experts);
    if (r.kind !== c.routing.kind || r.k !== c.routing.k) conflict('--routing', o.routing, `routing ${formatRouting(c.routing)}`);
  }
  const routingFlags: [string, keyof TrainOptions, number | boolean][] = [
    ['--noise', 'noise', c.routing.noise],
    ['--balance-loss', 'balanceLoss', c.routing.balanceLoss],
    ['--z-loss', 'zLoss', c.routing.zLoss],
    ['--balance-bias', 'balanceBias', c.routing.balanceBias],
    ['--block-rows', 'blockRows', c.routing.blockRows],
  ];
  for (const [flag, key, value] of routingFlags) {
    if (given(cmd, key) && o[key] !== value) conflict(flag, String(o[key]), `${flag.slice(2)} ${String(value)}`);
  }
  const same = (a: string[] | undefined, b: string[] | undefined): boolean => a !== undefined && b !== undefined && a.join('\u0000') === b.join('\u0000');
  if (o.target && m.targetNames && !same(o.target, m.targetNames)) conflict('--target', columnList(o.target), `target ${columnList(m.targetNames)}`);
  if (o.features && m.featureNames && !same(o.features, m.featureNames)) {
    conflict('--features', columnList(o.features), `features ${columnList(m.featureNames)}`);
  }
}

/**
 * Flag checks that read no data: every usage error is reported before any work, and
 * every output is checked writable now (a long run must not fail at its end).
 */
async function checkFlags(o: TrainOptions): Promise<void> {
  if (o.data === undefined && o.dataset === undefined) throw new OptionError('--data', 'give training data: --data FILE or --dataset vowels');
  if (o.workers === 0) {
    // Both act on worker threads; with none they would be silently ignored.
    if (o.stallTimeout !== undefined) throw new OptionError('--stall-timeout', 'watches worker threads; --workers 0 (the default) trains on the main thread: give --workers N or auto');
    if (!o.split) throw new OptionError('--no-split', 'places blocks on worker threads; --workers 0 (the default) trains on the main thread: give --workers N or auto');
  }
  if (o.dataset === 'vowels') {
    if (o.target) throw new OptionError('--target', 'cannot be used with --dataset vowels (its target is the vowel)');
    if (o.task !== undefined && o.task !== 'classification') throw new OptionError('--task', `--dataset vowels is a classification task, not ${o.task}`);
  } else if (o.resume === undefined) {
    if (!o.target) throw new OptionError('--target', 'name the target column(s) of --data');
    if (!o.task) throw new OptionError('--task', 'give --task regression or --task classification for --data');
  }
  if (o.checkpointEvery !== undefined && o.save === undefined) throw new OptionError('--checkpoint-every', 'needs --save FILE');
  if (o.resume === undefined && o.epochs < 1) throw new OptionError('--epochs', 'a new model needs at least 1 epoch');
  if (o.resume !== undefined && o.save === undefined) {
    throw new OptionError('--resume', `the continued training would be lost: give --save <file> (--save ${o.resume} continues in place)`);
  }
  // 0 is in-process; 'auto' is resolved (and capped at the experts) by fit.
  if (o.resume === undefined && typeof o.workers === 'number' && o.workers > 0) checkWorkerCount(o.workers, o.experts);
  // Inputs and outputs compared as the files they are (symbolic links resolved).
  const inputs = await Promise.all(
    [o.data, o.testData, o.resume].filter((p): p is string => p !== undefined).map(async (p) => ({ path: p, real: await realFile(p) })),
  );
  const targets = new Map<string, string>();
  const outputs: [string, string | undefined][] = [['--save', o.save], ['--plot', o.plot], ['--plot-gate', o.plotGate]];
  for (const [flag, p] of outputs) {
    if (p === undefined) continue;
    const target = await checkOutputPath(flag, p, o.force === true);
    targets.set(flag, target);
    // --save over --resume is how a run continues in place; anything else over an input loses it.
    const clash = inputs.find((i) => i.real === target && !(flag === '--save' && i.path === o.resume));
    if (clash !== undefined) throw new OptionError(flag, `would overwrite the input file ${clash.path}`);
  }
  // The format by extension, once the paths are known to be files that can be written.
  if (o.plot !== undefined) plotFormat(o.plot, '--plot');
  if (o.plotGate !== undefined) plotFormat(o.plotGate, '--plot-gate');
  if (targets.has('--save') && targets.get('--save') === targets.get('--plot')) throw new OptionError('--plot', `is the same file as --save (${o.plot})`);
  if (targets.has('--plot-gate') && [targets.get('--save'), targets.get('--plot')].includes(targets.get('--plot-gate'))) {
    throw new OptionError('--plot-gate', `is the same file as ${targets.get('--save') === targets.get('--plot-gate') ? '--save' : '--plot'} (${o.plotGate})`);
  }
}

interface TrainData {
  /** Everything --data or the vowel training speakers held (before the validation split). */
  all: Dataset;
  test?: Dataset;
  /** Where it came from, for the summary. */
  name: string;
}

async function loadTrainData(o: TrainOptions, m: ModelView | undefined, seed: number): Promise<TrainData> {
  if (o.dataset === 'vowels') {
    const split = await loadVowels({
      seed,
      ...(m?.classNames ? { vowels: m.classNames } : {}),
      ...((o.features ?? m?.featureNames) ? { features: o.features ?? m?.featureNames } : {}),
    });
    return { all: split.train, test: split.test, name: `vowels (${split.trainSpeakers.length} training speakers, ${split.testSpeakers.length} test speakers)` };
  }
  const path = o.data!;
  const all = m
    ? await loadCsvForModel(m, path, columnsOf(o))
    : await loadCsv(path, { target: o.target!, task: o.task!, ...(o.features ? { features: o.features } : {}), ...(o.delimiter !== undefined ? { delimiter: o.delimiter } : {}), onWarning: warn });
  let test: Dataset | undefined;
  if (o.testData !== undefined) {
    const classNames = m?.classNames ?? all.classNames;
    test = await loadCsv(o.testData, {
      target: all.targetNames!,
      task: all.task,
      features: all.featureNames!,
      ...(all.task === 'classification' && classNames ? { classNames } : {}),
      ...(o.delimiter !== undefined ? { delimiter: o.delimiter } : {}),
    });
  }
  return { all, ...(test ? { test } : {}), name: path };
}

/** Evenly spaced rows (at most `max`) for cheap per-epoch metrics; touches no RNG, so training is unchanged. */
function sampleRows(d: Dataset, max: number): Dataset {
  return d.n <= max ? d : subset(d, Array.from({ length: max }, (_, i) => Math.floor((i * d.n) / max)));
}

const SIGNAL_EXIT: Record<string, number> = { SIGINT: EXIT.INTERRUPTED, SIGTERM: 143 };

/** Save the model where --save names, an unwritable path reported as --save's. */
async function saveTo(m: Mixture, path: string): Promise<void> {
  if (!writesFiles()) return;
  try {
    await m.save(path);
  } catch (err) {
    if (err instanceof OptionError && err.option === 'path') throw new OptionError('--save', err.message.slice('path: '.length));
    throw err;
  }
}

/**
 * Run `moe train`; returns the exit code. The order is the contract: options, output
 * paths, the resumed model file and the data are all checked before a compute provider
 * loads, so bad input gets exactly one line on stderr (no provider notice before it).
 */
export async function runTrain(o: TrainOptions, cmd: Command): Promise<number> {
  // MPI first: the rank decides who prints and writes.
  if (o.mpi) joinMpi();
  await checkFlags(o);
  const backend = backendOf(o.backend);
  let resumed: ModelFile | undefined;
  if (o.resume !== undefined) {
    // With MPI, rank 0 reads the file and broadcasts it.
    resumed = await readModelFile(o.resume, await readOnRankZero(o.resume, readModelBytes));
    const info = resumed.info;
    checkResumeConflicts(info, o, cmd);
    if (typeof o.workers === 'number' && o.workers > 0) checkWorkerCount(o.workers, info.config.experts);
    if (o.epochs < info.training.epoch) {
      throw new OptionError('--epochs', `${o.epochs} is fewer than the ${info.training.epoch} epochs ${o.resume} has already trained (--epochs is the total)`);
    }
  }
  const seed = resumed?.info.training.seed ?? o.seed;
  const data = await loadTrainData(o, resumed?.info, seed);
  // A resumed model holds out the rows it was trained with holding out.
  const valSplit = given(cmd, 'valSplit') ? o.valSplit : (resumed?.info.training.validationSplit ?? o.valSplit);
  const { train, val } = splitValidation(data.all, valSplit, seed);
  if (o.plotGate !== undefined && data.all.inputs !== 2) {
    throw new OptionError('--plot-gate', `draws the gate over two inputs; ${data.name} has ${data.all.inputs} (for more, moe inspect MODEL --data FILE summarises each expert's region)`);
  }
  // A checkpoint taken mid-epoch finishes that epoch with its own batch size (fit checks it too, after the provider).
  const stopped = resumed?.info.training;
  if (stopped?.batch !== undefined && stopped.batch > 0 && stopped.batchSize !== undefined && stopped.batchSize !== Math.min(o.batchSize, train.n)) {
    throw new OptionError('--batch-size', `${o.resume} stopped mid-epoch after ${stopped.batch} batches of ${stopped.batchSize}; resume with --batch-size ${stopped.batchSize} to finish that epoch exactly`);
  }
  if (typeof o.workers === 'number') noteWorkers('--workers', o.workers);
  if (!o.split && (resumed?.info.config.routing.kind ?? o.routing.split(':')[0]) === 'dense') {
    warn('--no-split has no effect with dense routing: every expert computes every row, on its own worker');
  }

  let m: Mixture;
  if (resumed) {
    m = await openModel(resumed, { backend, onWarning: warn });
  } else {
    m = await Mixture.create({
      task: data.all.task,
      inputs: data.all.inputs,
      outputs: data.all.outputs,
      experts: o.experts,
      expert: o.expert,
      gate: o.gate,
      loss: o.loss as LossName | 'nll',
      routing: o.routing,
      ...(o.noise ? { noise: true } : {}),
      ...(o.balanceLoss !== undefined ? { balanceLoss: o.balanceLoss } : {}),
      ...(o.zLoss !== undefined ? { zLoss: o.zLoss } : {}),
      ...(o.balanceBias !== undefined ? { balanceBias: o.balanceBias } : {}),
      ...(o.blockRows !== undefined ? { blockRows: o.blockRows } : {}),
      optimizer: o.weightDecay !== undefined ? { name: o.optimizer, weightDecay: o.weightDecay } : o.optimizer,
      ...(o.lr !== undefined ? { lr: o.lr } : {}),
      seed,
      backend,
      onWarning: warn,
      ...(data.all.featureNames ? { featureNames: data.all.featureNames } : {}),
      ...(data.all.targetNames ? { targetNames: data.all.targetNames } : {}),
      ...(data.all.classNames ? { classNames: data.all.classNames } : {}),
    });
  }
  const model = m;
  // A model too large for a JSON model file is refused now, not after the training.
  if (o.save !== undefined && !/\.safetensors$/i.test(o.save)) checkJsonModelSize(model.params, '--save');
  const startEpoch = model.training.epoch;
  const remaining = o.epochs - startEpoch;

  const sample = sampleRows(train, 256);
  const plotHistory: PlotEpoch[] = [];
  const tty = process.stderr.isTTY === true;
  const progress: Progress = createProgress({
    startEpoch,
    totalEpochs: o.epochs,
    every: o.logEvery ?? Math.max(1, Math.round(remaining / 10)),
    tty,
  });

  // Ctrl-C: abort after the current step (the trainer closes its workers), checkpoint, exit 130.
  const controller = new AbortController();
  let signalled: string | undefined;
  const onSignal = (sig: string): void => {
    if (signalled !== undefined) {
      progress.stop();
      process.stderr.write(`moe: ${sig} again, exiting without a checkpoint\n`);
      process.exit(SIGNAL_EXIT[sig] ?? EXIT.INTERRUPTED);
    }
    signalled = sig;
    controller.abort(new MoeError('ABORTED', `interrupted by ${sig}`));
  };
  const sigint = (): void => onSignal('SIGINT');
  const sigterm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);

  let lastRouting: RoutingMetrics | undefined;
  const sparse = model.config.routing.kind !== 'dense';
  const onEpoch = async (e: EpochInfo): Promise<void> => {
    lastRouting = e.routing;
    const ev = model.evaluate(sample);
    const valMetric = e.valAccuracy ?? e.valMse;
    plotHistory.push({
      epoch: e.epoch,
      loss: e.loss,
      ...(e.valLoss !== undefined ? { valLoss: e.valLoss } : {}),
      ...((ev.accuracy ?? ev.mse) !== undefined ? { metric: (ev.accuracy ?? ev.mse)! } : {}),
      ...(valMetric !== undefined ? { valMetric } : {}),
      gateShare: ev.gateShare,
    });
    progress.update({
      epoch: e.epoch,
      loss: e.loss,
      ...(ev.accuracy !== undefined ? { accuracy: ev.accuracy } : {}),
      ...(ev.mse !== undefined ? { mse: ev.mse } : {}),
      ...(e.valLoss !== undefined ? { valLoss: e.valLoss } : {}),
      ...(e.valAccuracy !== undefined ? { valAccuracy: e.valAccuracy } : {}),
      ...(e.valMse !== undefined ? { valMse: e.valMse } : {}),
      samplesPerSecond: e.samplesPerSecond,
      ...(sparse ? { loadCv: e.routing.loadCv, dropped: e.routing.droppedRows } : {}),
    });
    if (o.save !== undefined && o.checkpointEvery !== undefined && e.epoch % o.checkpointEvery === 0 && e.epoch < o.epochs) {
      await saveTo(model, o.save);
    }
  };

  const t0 = performance.now();
  let result: FitResult | undefined;
  try {
    if (remaining > 0) {
      const schedule = scheduleOf(o.lrSchedule, o.epochs);
      // fit draws the same split from the seed (splitRows) and records it in the model.
      result = await model.fit(valSplit > 0 ? data.all : train, {
        epochs: remaining,
        batchSize: o.batchSize,
        workers: o.workers,
        ...(valSplit > 0 ? { validationSplit: valSplit } : {}),
        ...(o.earlyStoppingPatience !== undefined ? { earlyStopping: { patience: o.earlyStoppingPatience } } : {}),
        ...(o.stopAtLoss !== undefined ? { stopAtLoss: o.stopAtLoss } : {}),
        ...(schedule ? { schedule } : {}),
        signal: controller.signal,
        onEpoch,
        splitExperts: o.split,
        ...(o.denormals !== undefined ? { denormals: o.denormals as DenormalMode } : {}),
        ...(o.mpi ? { mpi: true } : {}),
        ...(o.stallTimeout !== undefined ? { stallTimeout: o.stallTimeout } : {}),
      });
    }
  } catch (err) {
    if (!(err instanceof MoeError && err.code === 'ABORTED')) throw err;
    signalled ??= 'SIGINT';
  } finally {
    progress.stop();
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
  }
  if (signalled !== undefined) return interrupted(model, o, plotHistory, signalled);

  if (remaining === 0) warn(`${o.resume} has already trained ${startEpoch} epochs (--epochs ${o.epochs}); nothing to train`);
  const evTrain = model.evaluate(train);
  const evVal = val ? model.evaluate(val) : undefined;
  const evTest = data.test ? model.evaluate(data.test) : undefined;
  if (o.save !== undefined) await saveTo(model, o.save);
  if (o.plot !== undefined && plotHistory.length > 0) await writePlot(o.plot, plotHistory, model, o.data ?? o.dataset ?? '');
  if (o.plotGate !== undefined) await writeGatePlot(o.plotGate, model, train, o.data ?? o.dataset ?? '');
  // Workers asked for on a mixture too small for threads: say that it is a demonstration.
  const batch = Math.min(o.batchSize, train.n);
  const demo = result && result.workers > 0 && result.workersNote === undefined && chooseWorkers(model.config, 'auto', batch)[0] === 0
    ? `a demonstration: one step's expert compute is below the cost of synchronising threads, so in-process (--workers auto) is faster here`
    : undefined;
  const workersNote = result?.workersNote ?? demo;
  const seconds = result?.seconds ?? 0;
  const samples = (result?.epochs ?? 0) * train.n;

  // Loss and every metric of Evaluation per set: trainAccuracy, valConfusionMatrix, testR2, testBaseline, …
  const metric = (prefix: string, ev: Evaluation | undefined): Record<string, unknown> => (ev === undefined ? {} : { [`${prefix}Loss`]: ev.loss, ...metricsJson(ev, prefix) });
  const report = {
    command: 'train',
    task: model.config.task,
    data: data.name,
    rows: { train: train.n, ...(val ? { val: val.n } : {}), ...(data.test ? { test: data.test.n } : {}) },
    ...metric('train', evTrain),
    ...metric('val', evVal),
    ...metric('test', evTest),
    finalLoss: result?.finalLoss ?? null,
    epochs: model.training.epoch,
    epochsRun: result?.epochs ?? 0,
    steps: model.training.step,
    stopReason: result?.stopReason ?? 'epochs',
    experts: model.config.experts,
    expert: formatNetSpec(model.config.expert),
    gate: formatNetSpec(model.config.gate),
    loss: model.config.loss,
    routing: formatRouting(model.config.routing),
    ...(lastRouting ? { routingStats: lastRouting } : {}),
    optimizer: model.optimizer.name,
    lr: model.optimizer.lr,
    batchSize: Math.min(o.batchSize, train.n),
    seed: model.training.seed,
    workers: result?.workers ?? 0,
    ...(workersNote ? { workersNote } : {}),
    backend: model.backend,
    denormals: model.training.denormals ?? 'flush',
    seconds,
    samplesPerSecond: seconds > 0 ? samples / seconds : null,
    gateShare: evTrain.gateShare,
    ...(o.resume !== undefined ? { resumedFrom: o.resume, resumedAtEpoch: startEpoch } : {}),
    ...(o.save !== undefined ? { saved: o.save } : {}),
    ...(o.plot !== undefined ? { plot: o.plot } : {}),
    ...(o.plotGate !== undefined ? { plotGate: o.plotGate } : {}),
    ...(result?.bestEpoch !== undefined ? { bestEpoch: result.bestEpoch } : {}),
    ...(valSplit > 0 ? { valSplit } : {}),
    totalSeconds: (performance.now() - t0) / 1000,
  };
  if (o.json) {
    await writeStdout(jsonLine(report) + '\n');
    return EXIT.OK;
  }
  const c = model.config;
  const lines = [
    `Trained ${c.experts} ${formatNetSpec(c.expert)} expert${c.experts === 1 ? '' : 's'} (gate ${formatNetSpec(c.gate)}${sparse ? `, routing ${formatRouting(c.routing)}` : ''}, loss ${c.loss}, ${model.optimizer.name} lr ${model.optimizer.lr}) on ${data.name}`,
    `  rows       train ${train.n}${val ? `, validation ${val.n}` : ''}${data.test ? `, test ${data.test.n}` : ''}; ${plural(c.inputs, 'input')} -> ${c.task === 'classification' ? `${plural(c.outputs, 'class', 'classes')} (${listItems(model.classNames ?? [])})` : plural(c.outputs, 'target')}`,
    `  run        backend ${model.backend}, ${model.training.denormals ?? 'flush'} subnormals, workers ${report.workers}${workersNote ? ` (${workersNote})` : ''}, epochs ${model.training.epoch} (${report.epochsRun} this run), ${seconds.toFixed(2)} s${report.samplesPerSecond ? `, ${Math.round(report.samplesPerSecond).toLocaleString('en-US')} samples/s` : ''}`,
    `  loss       ${lossUnits(c)}: last epoch's running mean ${fmt(result?.finalLoss)}; after training: train ${fmt(evTrain.loss)}${evVal ? `, validation ${fmt(evVal.loss)}` : ''}${evTest ? `, test ${fmt(evTest.loss)}` : ''}`,
    ...(result && result.stopReason !== 'epochs' ? [`  stopped    ${stopText(result)}`] : []),
    c.task === 'classification'
      ? `  accuracy   train ${pct(evTrain.accuracy)}${evVal ? `, validation ${pct(evVal.accuracy)}` : ''}${evTest ? `, test ${pct(evTest.accuracy)}` : ''}`
      : `  mse        train ${fmt(evTrain.mse)}${evVal ? `, validation ${fmt(evVal.mse)}` : ''}${evTest ? `, test ${fmt(evTest.mse)}` : ''}`,
    ...summaryLines([{ name: 'train', ev: evTrain }, ...(evVal ? [{ name: 'validation', ev: evVal }] : []), ...(evTest ? [{ name: 'test', ev: evTest }] : [])], model.classNames),
    `  gate weight ${listItems(evTrain.gateShare.map((s, i) => `expert ${i} ${pct(s)}`))}`,
    ...(sparse && lastRouting
      ? [
          `  routing    ${formatRouting(c.routing)}: last epoch's rows per expert ${listItems(lastRouting.rowsPerExpert.map(String))}; load CV ${fmt(lastRouting.loadCv)}; ${lastRouting.droppedRows} dropped, ${lastRouting.unusedExperts} unused; gate entropy ${fmt(lastRouting.gateEntropy)}`,
        ]
      : []),
    ...(o.save !== undefined ? [`  saved      ${o.save}`] : []),
    ...(o.plot !== undefined ? [`  plot       ${o.plot}`] : []),
    ...(o.plotGate !== undefined ? [`  gate plot  ${o.plotGate}`] : []),
  ];
  await writeStdout(lines.join('\n') + '\n');
  return EXIT.OK;
}

/** `5 inputs`, `1 target`. */
function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** What the loss is measured in. */
function lossUnits(c: { task: Task; loss: LossName }): string {
  if (c.loss === 'categorical') return 'cross-entropy';
  return c.task === 'classification' ? `${c.loss}, one-hot targets` : `${c.loss}, standardised targets`;
}

function stopText(r: FitResult): string {
  if (r.stopReason === 'early-stopping') return `early stopping: no improvement for the patience${r.bestEpoch !== undefined ? `; weights of the best epoch ${r.bestEpoch} kept` : ''}`;
  if (r.stopReason === 'criterion') return `--stop-at-loss reached after ${r.epochs} epochs`;
  return 'by the callback';
}

async function writePlot(path: string, history: PlotEpoch[], m: Mixture, dataName: string): Promise<void> {
  if (!writesFiles()) return;
  const c = m.config;
  const svg = await renderTrainingPlot(history, {
    title: `${basename(dataName)}: ${c.experts} ${formatNetSpec(c.expert)} experts, gate ${formatNetSpec(c.gate)}, loss ${c.loss}`,
    metric: c.task === 'classification' ? 'accuracy' : 'mse',
    lossLabel: `mean loss (${lossUnits(c)})`,
  });
  await writePlotFile(path, svg, '--plot');
}

async function writeGatePlot(path: string, m: Mixture, train: Dataset, dataName: string): Promise<void> {
  const c = m.config;
  const svg = await renderGatePlot(m, train, `${basename(dataName)}: the gate's regions, ${c.experts} ${formatNetSpec(c.expert)} experts, gate ${formatNetSpec(c.gate)}`);
  await writePlotFile(path, svg, '--plot-gate');
}

/** After Ctrl-C: write the checkpoint (and plot) when asked, say where things stand, exit 130. */
async function interrupted(m: Mixture, o: TrainOptions, history: PlotEpoch[], sig: string): Promise<number> {
  const trained = m.inputScaler !== undefined && m.training.step > 0;
  if (o.save !== undefined && trained) await saveTo(m, o.save);
  if (o.plot !== undefined && history.length > 0) await writePlot(o.plot, history, m, o.data ?? o.dataset ?? '');
  const where = `epoch ${m.training.epoch}, step ${m.training.step}`;
  process.stderr.write(
    `moe: interrupted by ${sig} at ${where}; ${
      o.save === undefined
        ? 'no checkpoint written (no --save)'
        : trained
          ? `checkpoint written to ${o.save} (continue with --resume ${o.save})`
          : 'no checkpoint written (training had not started)'
    }\n`,
  );
  return SIGNAL_EXIT[sig] ?? EXIT.INTERRUPTED;
}
