/**
 * `moe eval`: a trained model's loss, accuracy or MSE and gate shares on labelled data.
 */
import { Command, Option } from 'commander';
import type { Dataset } from '../data/dataset.js';
import { loadVowels } from '../data/vowels.js';
import { OptionError } from '../errors.js';
import {
  EXIT,
  EXIT_CODES_HELP,
  backendOf,
  backendOption,
  columnOptions,
  columnsOf,
  fmt,
  jsonLine,
  loadCsvForModel,
  pct,
  verboseOption,
  warn,
  writeStdout,
  locate,
} from './common.js';
import { openModel, readModelFile } from './model-input.js';

interface EvalOptions {
  model: string;
  data?: string;
  dataset?: 'vowels';
  target?: string[];
  features?: string[];
  json?: boolean;
  backend: string;
  verbose?: boolean;
}

const EXAMPLES = `
Examples:
  $ moe eval --model vowels.moe --dataset vowels          # the speaker-disjoint test set
  $ moe eval --model houses.moe --data houses-test.csv --json

The data needs the model's feature and target columns (by name); other columns are
ignored. A class label the model never saw in training is an error.`;

/** The `eval` command. */
export function evalCommand(): Command {
  const cmd = new Command('eval')
    .description("evaluate a trained model on labelled data: loss, accuracy or MSE, each expert's mean gate weight")
    .addOption(new Option('--model <file>', 'model file written by moe train').makeOptionMandatory())
    .addOption(new Option('--data <file>', 'labelled CSV with the model\'s columns').conflicts('dataset'))
    .addOption(new Option('--dataset <name>', "a built-in data set's test split (the model's seed picks the speakers)").choices(['vowels']));
  for (const opt of columnOptions()) cmd.addOption(opt);
  return cmd
    .addOption(new Option('--json', 'print one JSON object'))
    .addOption(backendOption())
    .addOption(verboseOption())
    .addHelpText('after', EXAMPLES + '\n' + EXIT_CODES_HELP)
    .action(async (o: EvalOptions) => {
      process.exitCode = await runEval(o);
    });
}

/** Options, the model file and the data are checked before the compute provider loads. */
async function runEval(o: EvalOptions): Promise<number> {
  if (o.data === undefined && o.dataset === undefined) throw new OptionError('--data', 'give labelled data: --data FILE or --dataset vowels');
  const load = { backend: backendOf(o.backend), onWarning: warn };
  const file = await readModelFile(o.model);
  const info = file.info;
  let data: Dataset;
  if (o.dataset === 'vowels') {
    if (info.config.task !== 'classification') throw new OptionError('--dataset', `vowels is a classification set; ${o.model} is a ${info.config.task} model`);
    data = (
      await loadVowels({ seed: info.training.seed, ...(info.classNames ? { vowels: info.classNames } : {}), ...(info.featureNames ? { features: info.featureNames } : {}) })
    ).test;
  } else {
    data = await loadCsvForModel(info, o.data!, columnsOf(o));
  }
  const m = await openModel(file, load);
  const ev = locate(() => m.evaluate(data), o.data);
  const source = o.dataset === 'vowels' ? 'vowels (test speakers)' : o.data!;
  if (o.json) {
    await writeStdout(
      jsonLine({
        command: 'eval',
        model: o.model,
        data: source,
        task: m.config.task,
        n: ev.n,
        loss: ev.loss,
        ...(ev.accuracy !== undefined ? { accuracy: ev.accuracy } : {}),
        ...(ev.mse !== undefined ? { mse: ev.mse } : {}),
        gateShare: ev.gateShare,
        backend: m.backend,
      }) + '\n',
    );
    return EXIT.OK;
  }
  await writeStdout(
    [
      `${o.model} on ${source}: ${ev.n} rows`,
      `  loss       ${fmt(ev.loss)}`,
      ev.accuracy !== undefined ? `  accuracy   ${pct(ev.accuracy)}` : `  mse        ${fmt(ev.mse)}`,
      `  gate weight ${ev.gateShare.map((s, i) => `expert ${i} ${pct(s)}`).join(', ')}`,
      `  backend    ${m.backend}`,
    ].join('\n') + '\n',
  );
  return EXIT.OK;
}
