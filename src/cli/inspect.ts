/**
 * `moe inspect`: what a model file holds (architecture, parameter counts, optimiser,
 * training state, standardisation) and, given data, how the gate uses each expert on it.
 */
import { Command, Option } from 'commander';
import { expertShape, formatNetSpec, gateShape } from '../model/config.js';
import { formatRouting } from '../model/routing.js';
import { mlpParamCount } from '../model/mlp.js';
import { optimizerStateSize } from '../optim/config.js';
import {
  EXIT,
  EXIT_CODES_HELP,
  backendOf,
  backendOption,
  columnOptions,
  columnsOf,
  fmt,
  jsonLine,
  loadInputsForModel,
  pct,
  verboseOption,
  warn,
  writeStdout,
  type PredictInput,
} from './common.js';
import { listItems } from './lists.js';
import { openModel, readModelFile } from './model-input.js';

interface InspectOptions {
  data?: string;
  target?: string[];
  features?: string[];
  json?: boolean;
  backend: string;
  verbose?: boolean;
}

const EXAMPLES = `
Examples:
  $ moe inspect vowels.moe
  $ moe inspect vowels.moe --data formants.csv --json

With --data, utilisation is each expert's mean gate probability over the rows and the
fraction of rows on which it has the largest gate probability (it "wins"); the file
needs the model's feature columns only.`;

/** The `inspect` command. */
export function inspectCommand(): Command {
  const cmd = new Command('inspect')
    .description('show a model file: architecture, parameter counts, training state, expert utilisation on data')
    .argument('<model>', 'model file written by moe train')
    .addOption(new Option('--data <file>', "CSV with the model's feature columns, for expert utilisation"));
  for (const opt of columnOptions()) cmd.addOption(opt);
  return cmd
    .addOption(new Option('--json', 'print one JSON object'))
    .addOption(backendOption())
    .addOption(verboseOption())
    .addHelpText('after', EXAMPLES + '\n' + EXIT_CODES_HELP)
    .action(async (model: string, o: InspectOptions) => {
      process.exitCode = await runInspect(model, o);
    });
}

/** The model file and the data are checked before the compute provider loads. */
async function runInspect(path: string, o: InspectOptions): Promise<number> {
  const load = { backend: backendOf(o.backend), onWarning: warn };
  const file = await readModelFile(path);
  const input: PredictInput | undefined = o.data !== undefined ? await loadInputsForModel(file.info, o.data, columnsOf(o)) : undefined;
  const m = await openModel(file, load);
  const doc = { version: file.version, backend: file.backend, format: file.format };
  const c = m.config;
  const gateParams = mlpParamCount(gateShape(c));
  const expertParams = mlpParamCount(expertShape(c));
  const totalParams = gateParams + c.experts * expertParams;
  const optState = optimizerStateSize(m.optimizer.name) * totalParams;

  let utilisation: { rows: number; gateShare: number[]; winShare: number[]; rowsPerExpert: number[] } | undefined;
  if (input !== undefined) {
    const p = m.predict(input.x);
    const E = c.experts;
    const gateShare = new Array<number>(E).fill(0);
    const winShare = new Array<number>(E).fill(0);
    // The load: rows each expert computes under the model's routing (weight > 0).
    const rowsPerExpert = new Array<number>(E).fill(0);
    for (let r = 0; r < p.n; r++) {
      for (let i = 0; i < E; i++) {
        gateShare[i]! += p.gate[r * E + i]! / p.n;
        if (c.routing.kind === 'dense' || p.gate[r * E + i]! > 0) rowsPerExpert[i]!++;
      }
      winShare[p.winner[r]!]! += 1 / p.n;
    }
    utilisation = { rows: p.n, gateShare, winShare, rowsPerExpert };
  }

  const report = {
    command: 'inspect',
    model: path,
    format: doc.format,
    formatVersion: doc.version,
    trainedOn: doc.backend ?? null,
    task: c.task,
    inputs: c.inputs,
    outputs: c.outputs,
    featureNames: m.featureNames ?? null,
    targetNames: m.targetNames ?? null,
    classNames: m.classNames ?? null,
    experts: c.experts,
    expert: formatNetSpec(c.expert),
    gate: formatNetSpec(c.gate),
    loss: c.loss,
    routing: { rule: formatRouting(c.routing), ...c.routing, ...(m.params.routerBias.length > 0 ? { bias: Array.from(m.params.routerBias) } : {}) },
    parameters: { gate: gateParams, perExpert: expertParams, total: totalParams, optimizerState: optState },
    optimizer: m.optimizer,
    training: { epoch: m.training.epoch, step: m.training.step, seed: m.training.seed },
    standardised: m.inputScaler !== undefined,
    inputScaler: m.inputScaler ?? null,
    targetScaler: c.task === 'regression' ? (m.targetScaler ?? null) : null,
    ...(utilisation ? { data: o.data, utilisation } : {}),
  };
  if (o.json) {
    await writeStdout(jsonLine(report) + '\n');
    return EXIT.OK;
  }
  const names = (xs: string[] | undefined): string => (xs ? ` (${listItems(xs)})` : '');
  const lines = [
    `${path}: local-experts model, ${doc.format === 'safetensors' ? 'safetensors' : 'JSON'} format version ${doc.version}${doc.backend ? `, trained on ${doc.backend} backend` : ''}`,
    `  task         ${c.task}: ${c.inputs} inputs${names(m.featureNames)} -> ${c.outputs} ${c.task === 'classification' ? `classes${names(m.classNames)}` : `targets${names(m.targetNames)}`}`,
    `  mixture      ${c.experts} experts ${formatNetSpec(c.expert)}, gate ${formatNetSpec(c.gate)}, loss ${c.loss}`,
    `  routing      ${formatRouting(c.routing)}${c.routing.noise ? ' with learned noise' : ''}${c.routing.kind !== 'dense' ? `, blocks of ${c.routing.blockRows} rows` : ''}${c.routing.balanceLoss ? `, balance loss ${c.routing.balanceLoss}` : ''}${c.routing.zLoss ? `, z-loss ${c.routing.zLoss}` : ''}${c.routing.balanceBias ? `, balancing bias step ${c.routing.balanceBias} (bias ${listItems(Array.from(m.params.routerBias, (b) => fmt(b)))})` : ''}`,
    `  parameters   ${totalParams.toLocaleString('en-US')} (gate ${gateParams.toLocaleString('en-US')}, ${expertParams.toLocaleString('en-US')} per expert), optimiser state ${optState.toLocaleString('en-US')}`,
    `  optimiser    ${m.optimizer.name}, lr ${m.optimizer.lr}`,
    `  training     ${m.training.epoch} epochs, ${m.training.step} steps, seed ${m.training.seed}`,
    m.inputScaler
      ? `  inputs       mean ${listItems(m.inputScaler.mean.map((v) => fmt(v)))}; std ${listItems(m.inputScaler.std.map((v) => fmt(v)))}`
      : '  inputs       not standardised yet (the model has not been trained)',
  ];
  if (utilisation) {
    lines.push(`  utilisation  on ${o.data} (${utilisation.rows} rows):`);
    for (let i = 0; i < c.experts; i++) {
      lines.push(`    expert ${i}   gate weight ${pct(utilisation.gateShare[i])}, wins ${pct(utilisation.winShare[i])} of rows, computes ${utilisation.rowsPerExpert[i]} rows`);
    }
  }
  await writeStdout(lines.join('\n') + '\n');
  return EXIT.OK;
}
