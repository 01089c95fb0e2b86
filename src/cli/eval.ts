/**
 * `moe eval`: a trained model's metrics on labelled data (scikit-learn's definitions):
 * loss and gate shares; accuracy, log-loss, confusion matrix and per-class precision and
 * recall, or R², RMSE, MAE and MSE with the training-mean baseline's.
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
import { classLabels, evaluationLines, metricsJson } from './metrics-text.js';
import { listItems } from './lists.js';
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
ignored. A class label the model never saw in training is an error.

Metrics are scikit-learn's (sklearn.metrics). Classification: accuracy; log-loss of the
class probabilities (categorical loss only; probabilities clipped to [2^-52, 1-2^-52]);
the confusion matrix, rows the true class and columns the predicted (printed in full up
to 20 classes, the largest confusions beyond; --json always has it whole); per-class
precision and recall (0 where the class is never predicted, or absent: scikit-learn's
zero_division default). Regression, in the target's units and averaged over targets:
R² (1 perfect, 0 no better than the mean, negative worse), RMSE, MAE and MSE, each also
for the baseline that predicts the training mean (stored in the model).`;

/** The `eval` command. */
export function evalCommand(): Command {
  const cmd = new Command('eval')
    .description("evaluate a trained model on labelled data: accuracy, log-loss, confusion matrix, precision/recall, or R², RMSE, MAE against the training-mean baseline; each expert's mean gate weight")
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
        ...metricsJson(ev),
        ...(m.config.task === 'classification' ? { classNames: classLabels(m.classNames, m.config.outputs) } : {}),
        ...(m.config.task === 'regression' && m.targetNames ? { targetNames: m.targetNames } : {}),
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
      ...evaluationLines(ev, m.classNames),
      `  gate weight ${listItems(ev.gateShare.map((s, i) => `expert ${i} ${pct(s)}`))}`,
      `  backend    ${m.backend}`,
    ].join('\n') + '\n',
  );
  return EXIT.OK;
}
