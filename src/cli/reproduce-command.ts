/**
 * `moe reproduce jacobs1991 [--runs 25] [--jobs auto] [--json] [--out results/] [--seed S]`:
 * the paper's Table 1 and Figure 2 on the Peterson & Barney vowels. Progress goes to
 * stderr (a bar on a terminal, one line per run otherwise); stdout gets the table, or
 * with --json one line of JSON as the last line.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Argument, Command, Option } from 'commander';
import { OptionError } from '../errors.js';
import cliProgress from 'cli-progress';
import { loadProvider } from '../compute/load.js';
import { ACTIVATIONS, type Activation } from '../model/mlp.js';
import { commandLine, DEFAULTS, jsonSummary, reproduceJacobs1991, type Jacobs1991Report, type ReproduceOptions } from '../reproduce/jacobs1991.js';
import type { RunResult } from '../reproduce/run.js';
import {
  EXIT_CODES_HELP_NO_SAVE,
  backendOf,
  backendOption,
  checkOutputDir,
  forceOption,
  given,
  intArg,
  intOrAutoArg,
  noteWorkers,
  positiveArg,
  seedArg,
  shareArg,
  verboseOption,
  warn,
} from './common.js';

/** The files `moe reproduce jacobs1991 --out DIR` writes into DIR. */
const OUT_FILES = ['jacobs1991.svg', 'jacobs1991-curves.svg', 'jacobs1991.png', 'jacobs1991-curves.png', 'jacobs1991.md', 'jacobs1991.json'];

const PAPERS = ['jacobs1991'] as const;

interface Flags {
  runs: number;
  jobs: number | 'auto';
  json?: boolean;
  out: string;
  force?: boolean;
  seed: number;
  epochs: number;
  criterion: number;
  lr: number;
  batchSize: number;
  bpActivation: Activation;
  backend: string;
  verbose?: boolean;
}

function progressReporter(): { onProgress: NonNullable<ReproduceOptions['onProgress']>; stop: () => void } {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: 'reproduce |{bar}| {value}/{total} runs | {last} | eta {eta_formatted}', stream: process.stderr, hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      onProgress: ({ done, total: t, result }) => {
        if (!started) {
          bar.start(t, 0, { last: '' });
          started = true;
        }
        bar.update(done, { last: describe(result) });
      },
      stop: () => {
        if (started) bar.stop();
      },
    };
  }
  return {
    onProgress: ({ done, total: t, result }) => process.stderr.write(`[${done}/${t}] ${describe(result)}\n`),
    stop: () => {},
  };
}

function describe(r: RunResult): string {
  const crit = r.reachedCriterion ? `criterion at epoch ${r.epochs}` : `criterion not met in ${r.epochs} epochs`;
  return `${r.key} run ${r.run + 1}: ${crit}, test ${(100 * r.testAccuracy).toFixed(1)}%`;
}

function printTable(r: Jacobs1991Report): void {
  const pct = (f: number): string => (100 * f).toFixed(1).padStart(5);
  const out: string[] = [];
  out.push(`Jacobs et al. (1991) Table 1 on the vowels: ${r.runs} runs per system, seed ${r.seed}, backend ${r.backend}, ${r.seconds.toFixed(1)} s`);
  out.push(`criterion: >= ${(100 * r.settings.criterion).toFixed(0)}% of training cases correct after an epoch (cap ${r.settings.epochs}); accuracies at the criterion epoch`);
  out.push('');
  out.push(`${'system'.padEnd(18)} ${'train %'.padStart(13)} ${'test %'.padStart(13)} ${'epochs'.padStart(15)} reached`);
  for (const [k, s] of Object.entries(r.systems)) {
    out.push(
      `${k.padEnd(18)} ${pct(s.trainAccuracy)} ± ${pct(s.trainAccuracySd)} ${pct(s.testAccuracy)} ± ${pct(s.testAccuracySd)} ${s.epochsMean.toFixed(1).padStart(7)} ± ${s.epochsSd.toFixed(1).padStart(5)} ${s.reachedCriterion}/${s.runs}`,
    );
  }
  out.push('');
  for (const v of r.verdicts) out.push(`[${v.comparison}] ${v.claim}\n  ${v.text}`);
  if (r.files.length) out.push('', `wrote ${r.files.join(', ')}`);
  process.stdout.write(out.join('\n') + '\n');
}

/** The `reproduce` command for commander 14; the CLI entry adds it to the program. */
export function reproduceCommand(): Command {
  return new Command('reproduce')
    .description("reproduce a paper's experiment: jacobs1991 = Table 1 and Figure 2 of Jacobs, Jordan, Nowlan & Hinton (1991) on the vowels")
    .addArgument(new Argument('<paper>', 'which experiment').choices(PAPERS))
    .option('--runs <n>', 'independent runs per system', intArg(1), DEFAULTS.runs)
    .option('--jobs <n|auto>', 'runs trained at once, one worker thread each (auto: os.availableParallelism())', intOrAutoArg(1), 'auto' as number | 'auto')
    .option('--json', 'print one line of JSON (the last stdout line) instead of the table')
    .option('--out <dir>', 'folder for jacobs1991.{md,json,svg,png} and jacobs1991-curves.{svg,png} (relative to the current directory)', 'results/')
    .option('--seed <s>', 'base seed: the speaker split and every run seed derive from it (an integer in [0, 2^32-1])', seedArg, DEFAULTS.seed)
    .option('--epochs <n>', 'epochs each run trains for, and the criterion cap', intArg(1), DEFAULTS.epochs)
    .option('--criterion <fraction>', 'training accuracy that counts as reaching the criterion', shareArg, DEFAULTS.criterion)
    .option('--lr <rate>', 'Adam learning rate, the same for every system', positiveArg, DEFAULTS.lr)
    .option('--batch-size <n>', 'batch size, the same for every system', intArg(1), DEFAULTS.batchSize)
    .addOption(new Option('--bp-activation <name>', 'hidden units of the backprop nets').choices(ACTIVATIONS).default(DEFAULTS.bpActivation))
    .addOption(backendOption())
    .addOption(forceOption())
    .addOption(verboseOption())
    .addHelpText('after', EXIT_CODES_HELP_NO_SAVE)
    .action(async (_paper: string, flags: Flags, cmd: Command) => {
      // Only a --backend the user gave goes into the report's command line.
      const backend = given(cmd, 'backend') ? flags.backend : undefined;
      // Before the runs, not after them: the output folder and files can be written.
      await checkOutputDir('--out', flags.out, OUT_FILES, flags.force === true);
      // A repository's committed results (or an earlier run's) are not replaced by accident.
      const existing = OUT_FILES.filter((f) => existsSync(join(flags.out, f)));
      if (existing.length > 0 && !flags.force) {
        throw new OptionError('--out', `${join(flags.out, existing[0]!)}${existing.length > 1 ? ` and ${existing.length - 1} more of its files` : ''} already exist${existing.length > 1 ? '' : 's'}: give --force to overwrite, or another --out`);
      }
      if (typeof flags.jobs === 'number') noteWorkers('--jobs', flags.jobs);
      // The runs load their provider in worker threads; loading it here first prints a
      // fall-back notice once, as this command's warning, and the workers stay quiet.
      await loadProvider(backendOf(backend), { onWarning: warn });
      const progress = progressReporter();
      let report: Jacobs1991Report;
      try {
        report = await reproduceJacobs1991({
          runs: flags.runs,
          jobs: flags.jobs,
          seed: flags.seed,
          epochs: flags.epochs,
          criterion: flags.criterion,
          lr: flags.lr,
          batchSize: flags.batchSize,
          bpActivation: flags.bpActivation,
          ...(backend ? { backend: backendOf(backend) } : {}),
          out: flags.out,
          command: commandLine({ ...flags, backend }),
          onProgress: progress.onProgress,
        });
      } finally {
        progress.stop();
      }
      if (flags.json) process.stdout.write(JSON.stringify(jsonSummary(report)) + '\n');
      else printTable(report);
    });
}
