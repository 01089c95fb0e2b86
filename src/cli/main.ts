#!/usr/bin/env node
/**
 * `moe`: train, evaluate, inspect and predict with mixtures of local experts from the
 * command line. Every failure is one line on stderr and an exit code by kind (see
 * EXIT_CODES_HELP); --verbose adds the stack trace.
 */
import { endMpiAfter, reportsError } from './mpi.js';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { benchCommand } from './bench-command.js';
import { EXIT, EXIT_CODES_HELP, configureTree, exitCodeOf, formatError, setVerbose } from './common.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
import { inspectCommand } from './inspect.js';
import { predictCommand } from './predict.js';
import { reproduceCommand } from './reproduce-command.js';
import { OutputStreamError, flushStdio, guardStdio, markReported, settleExitCode } from './streams.js';
import { trainCommand } from './train.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The whole `moe` command tree, with the CLI's error handling applied. */
export function buildProgram(): Command {
  const program = new Command('moe')
    .description('Adaptive mixtures of local experts (Jacobs, Jordan, Nowlan & Hinton 1991), trained on every core')
    .version(version(), '-V, --version')
    .addHelpText(
      'after',
      `
Examples:
  $ moe train --dataset vowels --workers 2 --save vowels.moe --plot vowels.svg
  $ moe eval --model vowels.moe --dataset vowels
  $ moe predict --model vowels.moe --data formants.csv --out predictions.csv
  $ moe inspect vowels.moe
  $ moe export --model vowels.moe --format onnx --out vowels.onnx
  $ moe bench scaling --quick
  $ moe reproduce jacobs1991 --runs 5
  $ moe help train
${EXIT_CODES_HELP}`,
    );
  program.addCommand(trainCommand());
  program.addCommand(evalCommand());
  program.addCommand(predictCommand());
  program.addCommand(inspectCommand());
  program.addCommand(exportCommand());
  program.addCommand(benchCommand());
  program.addCommand(reproduceCommand());
  configureTree(program);
  return program;
}

/** Run the CLI on `argv` (process.argv form); resolves to the exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const verbose = argv.includes('--verbose');
  setVerbose(verbose);
  try {
    process.exitCode = undefined;
    await buildProgram().parseAsync([...argv]);
    return settleExitCode(typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK);
  } catch (err) {
    const code = exitCodeOf(err);
    const silent = code === EXIT.OK || (err as { code?: string }).code === 'commander.help' || (err as { code?: string }).code === 'commander.helpDisplayed';
    if (!silent && reportsError(err)) process.stderr.write(formatError(err, verbose) + '\n');
    if (err instanceof OutputStreamError) markReported();
    endMpiAfter(err, code);
    return settleExitCode(code);
  }
}

// stdout or stderr failing (a full disk, a closed stdout) costs the run its text, never its
// files: the run goes on and exits 74. A reader that stops early (`moe predict … | head`)
// closes the pipe: that is not an error.
guardStdio();

// No top-level await: require() of the package's ES modules refuses any.
void main().then((code) => {
  // Wait until stdout is handed over, then exit: a provider or a closed worker pool must
  // not keep the process alive, and the exit code must be the one chosen here.
  // A write that failed while being handed over still turns exit 0 into 74.
  flushStdio(() => process.exit(settleExitCode(code)));
});
