/**
 * `moe predict`: the mixture's prediction for each row of a CSV, each expert's gate
 * probability and the winning expert, as CSV on stdout or written atomically to --out.
 */
import { Command, Option } from 'commander';
import { OptionError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import {
  EXIT,
  EXIT_CODES_HELP,
  backendOf,
  backendOption,
  checkOutputPath,
  jsonLine,
  columnOptions,
  columnsOf,
  forceOption,
  loadInputsForModel,
  realFile,
  verboseOption,
  warn,
  writeStdout,
  locate,
} from './common.js';
import { openModel, readModelFile } from './model-input.js';
import { predictionCsv, predictionJson } from './predict-output.js';

interface PredictOptions {
  model: string;
  data: string;
  out?: string;
  json?: boolean;
  force?: boolean;
  target?: string[];
  features?: string[];
  backend: string;
  verbose?: boolean;
}

const EXAMPLES = `
Examples:
  $ moe predict --model vowels.moe --data new-formants.csv --out predictions.csv
  $ moe predict --model houses.moe --data houses.csv | head
  $ moe predict --model vowels.moe --data new-formants.csv --json --out -

Output columns: the prediction (the class label for classification, one column per
target for regression, named after the training target columns); for a classifier
prob_<class> per class, named after the classes (the mixture's class probabilities;
output_<class> where the outputs are not probabilities: a loss other than categorical,
or switch, topk:1 and expert-choice routing, whose gate weights sum to less than 1);
gate_0 … gate_E-1 (each expert's gate probability) and expert (the expert with the
largest gate probability). --json prints one JSON object instead: the model's classes or
targets and, per row, the prediction, the probabilities by class name, the gate and the
expert. --out - is stdout. The input needs the model's feature columns by name; the target
column(s), where present, are checked (a label must be a trained class, a regression
target a finite number) and otherwise ignored.`;

/** The `predict` command. */
export function predictCommand(): Command {
  const cmd = new Command('predict')
    .description('predict with a trained model: mixture output, gate probabilities, winning expert')
    .addOption(new Option('--model <file>', 'model file written by moe train').makeOptionMandatory())
    .addOption(new Option('--data <file>', 'CSV with the model\'s feature columns').makeOptionMandatory())
    .addOption(new Option('--out <file>', 'write the predictions here (atomically); - or none: stdout'))
    .addOption(new Option('--json', 'print one JSON object (classes or targets, and per row the prediction, probabilities by class, gate, expert)'));
  for (const opt of columnOptions()) cmd.addOption(opt);
  return cmd
    .addOption(forceOption())
    .addOption(backendOption())
    .addOption(verboseOption())
    .addHelpText('after', EXAMPLES + '\n' + EXIT_CODES_HELP)
    .action(async (o: PredictOptions) => {
      process.exitCode = await runPredict(o);
    });
}

/** Options, the output path, the model file and the data are checked before the compute provider loads. */
async function runPredict(o: PredictOptions): Promise<number> {
  // `--out -` is stdout, as the convention goes (a file named "-" would be ./-).
  if (o.out === '-') delete o.out;
  if (o.out !== undefined) {
    const target = await checkOutputPath('--out', o.out, o.force === true);
    for (const [flag, p] of [['--data', o.data], ['--model', o.model]] as const) {
      if ((await realFile(p)) === target) throw new OptionError('--out', `would overwrite ${flag} ${p}`);
    }
  }
  const load = { backend: backendOf(o.backend), onWarning: warn };
  const file = await readModelFile(o.model);
  const input = await loadInputsForModel(file.info, o.data, columnsOf(o));
  const m = await openModel(file, load);
  const p = locate(() => m.predict(input.x), o.data);
  const text = o.json
    ? jsonLine({ command: 'predict', model: o.model, data: o.data, ...predictionJson(m, p, o.target) }) + '\n'
    : predictionCsv(m, p, o.target);
  if (o.out !== undefined) {
    await writeFileAtomic(o.out, text, { option: '--out' });
    process.stderr.write(`moe: wrote ${p.n} predictions to ${o.out}\n`);
  } else {
    await writeStdout(text);
  }
  return EXIT.OK;
}
