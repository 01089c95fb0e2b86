/**
 * `moe export`: a trained model as ONNX (for serving with ONNX Runtime) or safetensors
 * (for PyTorch: examples/pytorch/local_experts.py), written atomically. The model file
 * and the output path are checked before a compute provider loads; a failure writes
 * nothing.
 */
import { Command, Option } from 'commander';
import { OptionError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { EXIT, EXIT_CODES_HELP, backendOf, backendOption, checkOutputPath, forceOption, realFile, verboseOption, warn } from './common.js';
import { openModel, readModelFile } from './model-input.js';

interface ExportOptions {
  model: string;
  format: 'onnx' | 'safetensors';
  out: string;
  force?: boolean;
  backend: string;
  verbose?: boolean;
}

const EXAMPLES = `
Examples:
  $ moe export --model vowels.moe --format onnx --out vowels.onnx
  $ moe export --model vowels.moe --format safetensors --out vowels.safetensors
  $ python3 examples/pytorch/local_experts.py vowels.safetensors formants.csv

onnx: input x float32 [N, D] in the data's units; outputs output [N, K], gate [N, E]
and experts [E, N, K], as moe predict computes them (opset 17, IR version 8, default-
domain operators only). Routings dense, topk:K and switch; expert-choice is refused.
safetensors: nn.Linear weights (out x in) and biases named as the PyTorch module of
examples/pytorch/local_experts.py, the optimiser state, and the configuration,
standardisation and training position in __metadata__: --model and --resume read it
back (by its header, whatever its name), and training continues bit for bit.`;

/** The `export` command. */
export function exportCommand(): Command {
  return new Command('export')
    .description('write a trained model as ONNX (serving) or safetensors (PyTorch)')
    .addOption(new Option('--model <file>', 'model file (written by moe train, or safetensors)').makeOptionMandatory())
    .addOption(new Option('--format <format>', 'onnx or safetensors').choices(['onnx', 'safetensors']).makeOptionMandatory())
    .addOption(new Option('--out <file>', 'where to write it (atomically)').makeOptionMandatory())
    .addOption(forceOption())
    .addOption(backendOption())
    .addOption(verboseOption())
    .addHelpText('after', EXAMPLES + '\n' + EXIT_CODES_HELP)
    .action(async (o: ExportOptions) => {
      process.exitCode = await runExport(o);
    });
}

async function runExport(o: ExportOptions): Promise<number> {
  const target = await checkOutputPath('--out', o.out, o.force === true);
  if ((await realFile(o.model)) === target) throw new OptionError('--out', `would overwrite --model ${o.model}`);
  const file = await readModelFile(o.model);
  if (o.format === 'onnx' && file.state.config.routing.kind === 'expert-choice') {
    throw new OptionError('--format', `onnx export of expert-choice routing is not supported (its predictions route each row to its ⌈C⌉ best experts; export dense, topk or switch models, or use --format safetensors)`);
  }
  const m = await openModel(file, { backend: backendOf(o.backend), onWarning: warn });
  const bytes = o.format === 'onnx' ? await m.toOnnx() : await m.toSafetensors();
  await writeFileAtomic(o.out, bytes, { option: '--out' });
  process.stderr.write(`moe: wrote ${o.format} (${bytes.byteLength.toLocaleString('en-US')} bytes) to ${o.out}\n`);
  return EXIT.OK;
}
