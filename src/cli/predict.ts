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
  csvField,
  csvNumber,
  columnOptions,
  columnsOf,
  loadInputsForModel,
  realFile,
  verboseOption,
  warn,
  writeStdout,
  locate,
} from './common.js';
import { openModel, readModelFile } from './model-input.js';

interface PredictOptions {
  model: string;
  data: string;
  out?: string;
  target?: string[];
  features?: string[];
  backend: string;
  verbose?: boolean;
}

const EXAMPLES = `
Examples:
  $ moe predict --model vowels.moe --data new-formants.csv --out predictions.csv
  $ moe predict --model houses.moe --data houses.csv | head

Output columns: the prediction (the class label for classification, one column per
target for regression, named after the training target columns), gate_0 … gate_E-1
(each expert's gate probability) and expert (the expert with the largest gate
probability). The input needs the model's feature columns by name; the target
column(s), where present, are checked (a label must be a trained class, a regression
target a finite number) and otherwise ignored.`;

/** The `predict` command. */
export function predictCommand(): Command {
  const cmd = new Command('predict')
    .description('predict with a trained model: mixture output, gate probabilities, winning expert')
    .addOption(new Option('--model <file>', 'model file written by moe train').makeOptionMandatory())
    .addOption(new Option('--data <file>', 'CSV with the model\'s feature columns').makeOptionMandatory())
    .addOption(new Option('--out <file>', 'write the predictions here (atomically) instead of stdout'));
  for (const opt of columnOptions()) cmd.addOption(opt);
  return cmd
    .addOption(backendOption())
    .addOption(verboseOption())
    .addHelpText('after', EXAMPLES + '\n' + EXIT_CODES_HELP)
    .action(async (o: PredictOptions) => {
      process.exitCode = await runPredict(o);
    });
}

/** Options, the output path, the model file and the data are checked before the compute provider loads. */
async function runPredict(o: PredictOptions): Promise<number> {
  if (o.out !== undefined) {
    const target = await checkOutputPath('--out', o.out);
    for (const [flag, p] of [['--data', o.data], ['--model', o.model]] as const) {
      if ((await realFile(p)) === target) throw new OptionError('--out', `would overwrite ${flag} ${p}`);
    }
  }
  const load = { backend: backendOf(o.backend), onWarning: warn };
  const file = await readModelFile(o.model);
  const input = await loadInputsForModel(file.info, o.data, columnsOf(o));
  const m = await openModel(file, load);
  const p = locate(() => m.predict(input.x), o.data);
  const { experts: E, outputs: K, task } = m.config;
  const targets = m.targetNames ?? o.target;
  const head: string[] =
    task === 'classification'
      ? [targets?.[0] ?? 'prediction']
      : Array.from({ length: K }, (_, k) => (targets?.[k] !== undefined && targets.length === K ? targets[k]! : `output_${k}`));
  for (let i = 0; i < E; i++) head.push(`gate_${i}`);
  head.push('expert');

  const lines: string[] = [head.map(csvField).join(',')];
  for (let r = 0; r < p.n; r++) {
    const cells: string[] = [];
    if (task === 'classification') {
      const l = p.labels![r]!;
      cells.push(csvField(m.classNames?.[l] ?? String(l)));
    } else {
      for (let k = 0; k < K; k++) cells.push(csvNumber(p.output[r * K + k]!));
    }
    for (let i = 0; i < E; i++) cells.push(csvNumber(p.gate[r * E + i]!));
    cells.push(String(p.winner[r]!));
    lines.push(cells.join(','));
  }
  const text = lines.join('\n') + '\n';
  if (o.out !== undefined) {
    await writeFileAtomic(o.out, text, { option: '--out' });
    process.stderr.write(`moe: wrote ${p.n} predictions to ${o.out}\n`);
  } else {
    await writeStdout(text);
  }
  return EXIT.OK;
}
