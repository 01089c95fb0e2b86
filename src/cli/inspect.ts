/**
 * `moe inspect`: what a model file holds (architecture, parameter counts, optimiser,
 * training state, standardisation) and, given data, how the gate uses each expert on it.
 */
import { Command, Option } from 'commander';
import { OptionError } from '../errors.js';
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
  model?: string;
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
  $ moe inspect --model vowels.moe --data formants.csv --json

With --data, utilisation is each expert's mean gate probability over the rows and the
fraction of rows on which it has the largest gate probability (it "wins"), and each
expert's region: the mean and range of every input over the rows it wins (what the gate
learned, for any number of inputs; on two inputs moe train --plot-gate draws it). The
file needs the model's feature columns only.`;

/** Inputs shown per expert region in the text summary (all of them in --json). */
const REGION_INPUTS_SHOWN = 8;

/** The `inspect` command. */
export function inspectCommand(): Command {
  const cmd = new Command('inspect')
    .description('show a model file: architecture, parameter counts, training state, expert utilisation on data')
    .argument('[model]', 'model file written by moe train (or --model)')
    .addOption(new Option('--model <file>', 'the model file, as the other commands take it'))
    .addOption(new Option('--data <file>', "CSV with the model's feature columns, for expert utilisation and regions"));
  for (const opt of columnOptions()) cmd.addOption(opt);
  return cmd
    .addOption(new Option('--json', 'print one JSON object'))
    .addOption(backendOption())
    .addOption(verboseOption())
    .addHelpText('after', EXAMPLES + '\n' + EXIT_CODES_HELP)
    .action(async (model: string | undefined, o: InspectOptions) => {
      if (model !== undefined && o.model !== undefined && model !== o.model) throw new OptionError('--model', `${o.model} and the argument ${model} name two model files; give one`);
      const path = model ?? o.model;
      if (path === undefined) throw new OptionError('--model', 'give the model file: moe inspect MODEL (or --model MODEL)');
      process.exitCode = await runInspect(path, o);
    });
}

/** Where an expert wins under the gate: the rows it wins and each input's mean and range over them (data units). */
export interface ExpertRegion {
  rows: number;
  mean: number[];
  min: number[];
  max: number[];
}

/** Each expert's region over n×D inputs `x`, from each row's winning expert. */
export function expertRegions(x: Float32Array, D: number, winner: Int32Array, E: number): ExpertRegion[] {
  const regions = Array.from({ length: E }, () => ({ rows: 0, sum: new Float64Array(D), min: new Array<number>(D).fill(Infinity), max: new Array<number>(D).fill(-Infinity) }));
  for (let r = 0; r < winner.length; r++) {
    const g = regions[winner[r]!]!;
    g.rows++;
    for (let j = 0; j < D; j++) {
      const v = x[r * D + j]!;
      g.sum[j]! += v;
      if (v < g.min[j]!) g.min[j] = v;
      if (v > g.max[j]!) g.max[j] = v;
    }
  }
  return regions.map((g) =>
    g.rows === 0 ? { rows: 0, mean: [], min: [], max: [] } : { rows: g.rows, mean: Array.from(g.sum, (s) => s / g.rows), min: g.min, max: g.max },
  );
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

  let utilisation: { rows: number; gateShare: number[]; winShare: number[]; rowsPerExpert: number[]; regions: ExpertRegion[] } | undefined;
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
    utilisation = { rows: p.n, gateShare, winShare, rowsPerExpert, regions: expertRegions(input.x, c.inputs, p.winner, E) };
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
    lines.push(`  utilisation  on ${o.data} (${utilisation.rows} rows); region: each input's mean [min, max] over the rows the expert wins`);
    const width = `expert ${c.experts - 1}`.length;
    const featureNames = m.featureNames ?? input!.featureNames;
    for (let i = 0; i < c.experts; i++) {
      const label = `expert ${i}`.padEnd(width);
      lines.push(`    ${label}  gate weight ${pct(utilisation.gateShare[i])}, wins ${pct(utilisation.winShare[i])} of rows, computes ${utilisation.rowsPerExpert[i]} rows`);
      const r = utilisation.regions[i]!;
      if (r.rows === 0) {
        lines.push(`    ${' '.repeat(width)}  region: wins no row`);
        continue;
      }
      const shown = Math.min(c.inputs, REGION_INPUTS_SHOWN);
      const parts = Array.from({ length: shown }, (_, j) => `${featureNames[j] ?? `#${j + 1}`} ${fmt(r.mean[j])} [${fmt(r.min[j])}, ${fmt(r.max[j])}]`);
      const more = c.inputs > shown ? `, … ${c.inputs - shown} more inputs in --json` : '';
      lines.push(`    ${' '.repeat(width)}  region: ${parts.join(', ')}${more}`);
    }
  }
  await writeStdout(lines.join('\n') + '\n');
  return EXIT.OK;
}
