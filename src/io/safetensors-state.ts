/**
 * A mixture as a safetensors file that a PyTorch module `LocalExperts(nn.Module)` with
 * `nn.Linear` layers loads as its state dict (examples/pytorch/local_experts.py):
 *
 *   gate.layers.{l}.weight          [n_{l+1}, n_l]   (nn.Linear: out × in, our W_l transposed)
 *   gate.layers.{l}.bias            [n_{l+1}]
 *   experts.{i}.layers.{l}.weight   [n_{l+1}, n_l]
 *   experts.{i}.layers.{l}.bias     [n_{l+1}]
 *   optimizer.exp_avg.<name>, optimizer.exp_avg_sq.<name>   (adam: m, v of parameter <name>)
 *   optimizer.momentum_buffer.<name>                        (momentum: velocity)
 *
 * Our momentum (v ← μv + g; θ ← θ − lr·v) is torch.optim.SGD(momentum=μ, dampening=0,
 * nesterov=False), whose first step also sets the buffer to g; our Adam with L2 weight
 * decay λ (g ← ∂E/∂θ + λθ) is torch.optim.Adam(weight_decay=λ) (not AdamW), step count
 * = training.step. `__metadata__` holds the configuration, optimiser, standardisation,
 * names and training position as JSON strings, so the file alone rebuilds the model.
 * A file without optimiser tensors (weights only, e.g. written by PyTorch) loads too,
 * with zeroed optimiser state and `hasOptimizerState: false`.
 */
import { ModelFormatError } from '../errors.js';
import { expertShape, gateShape, type MixtureConfig } from '../model/config.js';
import { mlpParamCount, type MlpShape } from '../model/mlp.js';
import { allocateParams, noiseSeed, type MixtureParams, type ModelState } from '../model/state.js';
import { Rng } from '../rng.js';
import type { OptimizerConfig, OptimizerName } from '../optim/config.js';
import { regionSlots, slotNames, type RegionSlots } from './export-state.js';
import { tooDeep, tooDeepMessage } from './json-depth.js';
import { checkLoadable } from './loadable.js';
import { decodeSafetensors, encodeSafetensors, SafetensorsLimitError, type F32Tensor, type HeaderPlan } from './safetensors.js';
import type { StateFieldsData } from './model-schema.js';
import { checkFinite, configOf, impliedCounts, paramsFor, parseStateFields, stateFromFields } from './state-fields.js';

/** `__metadata__.format` of a local-experts safetensors file. */
export const SAFETENSORS_FORMAT = 'local-experts';
/** Newest `__metadata__.format_version` this library writes and reads. */
export const SAFETENSORS_FORMAT_VERSION = 1;

/** One parameter tensor of an MLP: its name, shape (PyTorch's) and where it lives in our flat layout. */
interface ParamTensor {
  name: string;
  shape: number[];
  /** Offset of W_l (row-major in × out) or b_l in the network's flat vector. */
  offset: number;
  /** Weight: in (n_l) and out (n_{l+1}); bias: undefined. */
  weight?: { nin: number; nout: number };
}

/** The parameter tensors of one MLP under `prefix` (`gate` or `experts.{i}`), in layout order. */
function mlpTensors(prefix: string, shape: MlpShape): ParamTensor[] {
  const out: ParamTensor[] = [];
  let o = 0;
  for (let l = 0; l + 1 < shape.sizes.length; l++) {
    const nin = shape.sizes[l]!, nout = shape.sizes[l + 1]!;
    out.push({ name: `${prefix}.layers.${l}.weight`, shape: [nout, nin], offset: o, weight: { nin, nout } });
    out.push({ name: `${prefix}.layers.${l}.bias`, shape: [nout], offset: o + nin * nout });
    o += nin * nout + nout;
  }
  return out;
}

/** Our flat block → PyTorch tensor (weights transposed to out × in). */
function gather(t: ParamTensor, flat: Float32Array): Float32Array {
  if (!t.weight) return flat.slice(t.offset, t.offset + t.shape[0]!);
  const { nin, nout } = t.weight;
  const out = new Float32Array(nin * nout);
  for (let i = 0; i < nin; i++) for (let j = 0; j < nout; j++) out[j * nin + i] = flat[t.offset + i * nout + j]!;
  return out;
}

/** PyTorch tensor → our flat block (the inverse of {@link gather}). */
function scatter(t: ParamTensor, data: Float32Array, flat: Float32Array): void {
  if (!t.weight) {
    flat.set(data, t.offset);
    return;
  }
  const { nin, nout } = t.weight;
  for (let i = 0; i < nin; i++) for (let j = 0; j < nout; j++) flat[t.offset + i * nout + j] = data[j * nin + i]!;
}

/** Every network of the mixture: its tensors, its parameter block and its optimiser slots. */
function networks(config: MixtureConfig, params: MixtureParams, slots: RegionSlots) {
  const P = mlpParamCount(expertShape(config));
  const nets = [{ tensors: mlpTensors('gate', gateShape(config)), params: params.gateParams, slots: slots.gate }];
  for (let i = 0; i < config.experts; i++) {
    nets.push({ tensors: mlpTensors(`experts.${i}`, expertShape(config)), params: params.expertParams.subarray(i * P, (i + 1) * P), slots: slots.experts[i]! });
  }
  // Noisy top-k: the noise network, nn.Linear(D, E) as `gate_noise.layers.0`.
  if (params.noiseParams.length > 0) nets.push({ tensors: mlpTensors('gate_noise', noiseShape(config)), params: params.noiseParams, slots: slots.noise });
  // topk and switch: the balancing bias, a buffer [E] (no optimiser state: it is not trained by gradient).
  if (params.routerBias.length > 0) nets.push({ tensors: [{ name: 'router_bias', shape: [config.experts], offset: 0 }], params: params.routerBias, slots: [] });
  return nets;
}

/** The noise network's shape: linear D → E. */
function noiseShape(config: MixtureConfig): MlpShape {
  return { sizes: [config.inputs, config.experts], activation: 'tanh' };
}

/** A tensor's name and shape in a mixture's safetensors file. */
export interface TensorLayout {
  /** Name, e.g. `experts.0.layers.1.weight` or `optimizer.exp_avg.gate.layers.0.bias`. */
  name: string;
  /** Shape as PyTorch's module has it (weights out × in). */
  shape: number[];
}

/**
 * The tensor names and shapes a mixture's file holds, parameters first (gate, then
 * experts in order), then the optimiser's (slot by slot). For documentation and tests.
 */
export function safetensorsLayout(config: MixtureConfig, optimizer: OptimizerName): TensorLayout[] {
  const empty = allocateParams(config, { ...DEFAULT_ADAM, name: optimizer });
  const nets = networks(config, empty, regionSlots(config, optimizer, empty));
  const params = nets.flatMap((n) => n.tensors.map(({ name, shape }) => ({ name, shape })));
  const trained = nets.filter((n) => n.slots.length > 0).flatMap((n) => n.tensors.map(({ name, shape }) => ({ name, shape })));
  return [...params, ...slotNames(optimizer).flatMap((s) => trained.map(({ name, shape }) => ({ name: `optimizer.${s}.${name}`, shape })))];
}

const DEFAULT_ADAM = { name: 'adam', lr: 0.01, momentum: 0.9, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 } as const;

const json = (v: unknown): string => JSON.stringify(v);

/**
 * The state as a safetensors file (parameters and optimiser state as F32 tensors, the
 * rest as `__metadata__` JSON strings). Checked first against what the reader accepts
 * (src/io/loadable.ts; `where` names the file in the error): a state the reader would
 * refuse is a ModelFormatError (a header over the reader's 100 MB too), a parameter
 * that is not finite a MoeError DIVERGED.
 */
export function stateToSafetensors(state: ModelState, where = 'safetensors export'): Uint8Array {
  checkLoadable(state, where);
  try {
    return encodeState(state);
  } catch (err) {
    if (!(err instanceof SafetensorsLimitError)) throw err;
    throw new ModelFormatError(`${where}: not written: ${err.message}; save this model as a JSON model file (a path not ending in .safetensors)`);
  }
}

function encodeState(state: ModelState): Uint8Array {
  const nets = networks(state.config, state.params, regionSlots(state.config, state.optimizer.name, state.params));
  const tensors: [string, F32Tensor][] = [];
  for (const net of nets) for (const t of net.tensors) tensors.push([t.name, { shape: t.shape, data: gather(t, net.params) }]);
  for (const slot of slotNames(state.optimizer.name)) {
    for (const net of nets) {
      const values = net.slots.find((s) => s.name === slot)?.values;
      if (!values) continue; // the router bias: no optimiser state
      for (const t of net.tensors) tensors.push([`optimizer.${slot}.${t.name}`, { shape: t.shape, data: gather(t, values) }]);
    }
  }
  const metadata: Record<string, string> = {
    format: SAFETENSORS_FORMAT,
    format_version: String(SAFETENSORS_FORMAT_VERSION),
    writer: 'local-experts',
    config: json(state.config),
    optimizer: json(state.optimizer),
    // Fixed key order, so that one state always gives the same bytes.
    training: json(trainingJson(state)),
  };
  if (state.inputScaler) metadata.input_scaler = json({ mean: state.inputScaler.mean, std: state.inputScaler.std });
  if (state.targetScaler) metadata.target_scaler = json({ mean: state.targetScaler.mean, std: state.targetScaler.std });
  if (state.featureNames) metadata.feature_names = json(state.featureNames);
  if (state.targetNames) metadata.target_names = json(state.targetNames);
  if (state.classNames) metadata.class_names = json(state.classNames);
  return encodeSafetensors(tensors, metadata);
}

/** The metadata's format, version and state fields, checked by the same schema as the JSON model file. */
function checkMetadata(metadata: Record<string, string>, where: string): { fields: StateFieldsData; version: number } {
  const fail = (msg: string): never => {
    throw new ModelFormatError(`${where}: ${msg}`);
  };
  if (metadata.format !== SAFETENSORS_FORMAT) {
    fail(`not a local-experts model: __metadata__.format is ${metadata.format === undefined ? 'undefined' : JSON.stringify(metadata.format.slice(0, 80))}, expected "${SAFETENSORS_FORMAT}" (the configuration, standardisation and names travel there)`);
  }
  // Exactly as written: a version is digits, nothing else ("0x1", " 1 " and "1.0" are not).
  const text = metadata.format_version;
  if (text === undefined || !/^[1-9][0-9]{0,8}$/.test(text)) fail(`__metadata__.format_version ${text === undefined ? 'undefined' : JSON.stringify(text.slice(0, 80))} is not a version number`);
  const version = Number(text);
  if (version > SAFETENSORS_FORMAT_VERSION) {
    throw new ModelFormatError(
      `${where}: safetensors format version ${version} was written by a newer local-experts; this one reads versions up to ${SAFETENSORS_FORMAT_VERSION}`,
      'MODEL_VERSION',
    );
  }
  const parse = (key: string, required: boolean): unknown => {
    const text = metadata[key];
    if (text === undefined) return required ? fail(`__metadata__.${key} is missing`) : undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return fail(`__metadata__.${key} is not valid JSON`);
    }
    const deep = tooDeep(value);
    if (deep !== undefined) fail(`__metadata__.${key}: ${tooDeepMessage(deep)}`);
    return value;
  };
  // A file written elsewhere (PyTorch) may lack the noise generator's state: a noisy top-k
  // model then draws from the stream its seed starts.
  const config = parse('config', true) as { routing?: { noise?: unknown } } | null;
  const training = parse('training', true) as { seed?: unknown; noiseRng?: unknown } | null;
  if (config?.routing?.noise === true && training && typeof training === 'object' && training.noiseRng === undefined && typeof training.seed === 'number') {
    training.noiseRng = new Rng(noiseSeed(training.seed)).state();
  }
  const fields = parseStateFields(
    {
      config,
      optimizer: parse('optimizer', true),
      training,
      inputScaler: parse('input_scaler', false),
      targetScaler: parse('target_scaler', false),
      featureNames: parse('feature_names', false),
      targetNames: parse('target_names', false),
      classNames: parse('class_names', false),
    },
    `${where}: __metadata__`,
  );
  return { fields, version };
}

const TENSOR_NAME = /^(?:optimizer\.(exp_avg|exp_avg_sq|momentum_buffer)\.)?(?:(gate|gate_noise)|experts\.(0|[1-9][0-9]{0,8}))\.layers\.(0|[1-9][0-9]{0,2})\.(?:weight|bias)$/;

/**
 * What a configuration's file may hold, known before any tensor is read: its size against
 * the library's limit and the file's data (a small file cannot ask for gigabytes), the
 * most tensors it can list, and which names it can have.
 */
function headerPlan(config: MixtureConfig, optimizer: Required<OptimizerConfig>, dataBytes: number, where: string): HeaderPlan {
  const counts = impliedCounts(config, optimizer, where);
  const weights = counts.gateParams + counts.expertParams + counts.noiseParams + counts.routerBias;
  if (4 * weights > dataBytes) {
    throw new ModelFormatError(
      `${where}: config: ${config.experts.toLocaleString('en-US')} experts (gate ${gateShape(config).sizes.join('→')}, experts ${expertShape(config).sizes.join('→')}) need ${(4 * weights).toLocaleString('en-US')} bytes of parameter tensors; the file holds ${dataBytes.toLocaleString('en-US')}`,
    );
  }
  const layers = { gate: gateShape(config).sizes.length - 1, gate_noise: config.routing.noise ? 1 : 0, experts: expertShape(config).sizes.length - 1 };
  const tensorsPerCopy = 2 * (layers.gate + layers.gate_noise + config.experts * layers.experts);
  const slots = slotNames(optimizer.name);
  const hasBias = counts.routerBias > 0;
  const describe = `(${config.experts} experts, gate ${gateShape(config).sizes.join('→')}, experts ${expertShape(config).sizes.join('→')})`;
  return {
    maxTensors: tensorsPerCopy * (1 + slots.length) + (hasBias ? 1 : 0),
    checkName(name: string): string | undefined {
      if (name === 'router_bias') return hasBias ? undefined : `is not part of this configuration ${describe}`;
      const m = TENSOR_NAME.exec(name);
      const slot = m?.[1], net = m?.[2], expert = m?.[3], layer = Number(m?.[4]);
      const known = m !== null && (expert !== undefined ? Number(expert) < config.experts && layer < layers.experts : layer < layers[net as 'gate' | 'gate_noise']);
      if (!known) return `is not part of this configuration ${describe}`;
      if (slot !== undefined && !(slots as readonly string[]).includes(slot)) return `is not part of a ${optimizer.name} checkpoint of this configuration`;
      return undefined;
    },
  };
}

/** What {@link stateFromSafetensors} returns. */
export interface SafetensorsState {
  /** The model, checked against its configuration. */
  state: ModelState;
  /**
   * False for a weights-only file (no optimiser tensors): the optimiser state is zero and
   * a fit restarts the optimiser. True when every optimiser tensor was there (always for sgd).
   */
  hasOptimizerState: boolean;
  /** The file's format version. */
  version: number;
}

/**
 * Read a local-experts safetensors file. `where` (the file name) starts every error: one
 * ModelFormatError line for a malformed container (see src/io/safetensors.ts), missing or
 * foreign metadata, a newer format version (code MODEL_VERSION), an invalid
 * configuration, routing, standardisation or training state, a missing, extra or
 * wrongly shaped tensor, or optimiser tensors present for some parameters only.
 */
export function stateFromSafetensors(bytes: Uint8Array, where: string): SafetensorsState {
  let fields: StateFieldsData | undefined;
  let version = 0;
  const { tensors } = decodeSafetensors(bytes, where, (metadata, dataBytes) => {
    const checked = checkMetadata(metadata, where);
    fields = checked.fields;
    version = checked.version;
    return headerPlan(configOf(fields), fields.optimizer as Required<OptimizerConfig>, dataBytes, where);
  });
  const fail = (msg: string): never => {
    throw new ModelFormatError(`${where}: ${msg}`);
  };
  if (fields === undefined) return fail('no __metadata__');
  const state = stateFromFields(fields, paramsFor(configOf(fields), fields.optimizer as Required<OptimizerConfig>, where));
  const { optimizer } = state;
  const cfg = state.config;
  const nets = networks(cfg, state.params, regionSlots(cfg, optimizer.name, state.params));
  const used = new Set<string>();
  const take = (name: string, shape: number[], optional: boolean): F32Tensor | undefined => {
    const t = tensors.get(name);
    if (!t) return optional ? undefined : fail(`tensor ${name} is missing (the configuration needs shape [${shape.join(', ')}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, k) => d !== shape[k])) {
      fail(`tensor ${name} has shape [${t.shape.join(', ')}], the configuration needs [${shape.join(', ')}]`);
    }
    used.add(name);
    return t;
  };
  for (const net of nets) for (const t of net.tensors) scatter(t, take(t.name, t.shape, false)!.data, net.params);
  // Optimiser tensors: all of them (a checkpoint) or none (weights only).
  const firstSlot = slotNames(optimizer.name)[0];
  const hasOptimizerState = firstSlot === undefined || tensors.has(`optimizer.${firstSlot}.${nets[0]!.tensors[0]!.name}`);
  if (hasOptimizerState) {
    for (const slot of slotNames(optimizer.name)) {
      for (const net of nets) {
        const values = net.slots.find((s) => s.name === slot)?.values;
        if (!values) continue;
        for (const t of net.tensors) scatter(t, take(`optimizer.${slot}.${t.name}`, t.shape, false)!.data, values);
      }
    }
  }
  for (const name of tensors.keys()) {
    if (!used.has(name)) {
      fail(
        name.startsWith('optimizer.')
          ? `tensor ${name} is not part of ${hasOptimizerState ? 'a' : 'this weights-only'} ${optimizer.name} checkpoint of this configuration`
          : `tensor ${name} is not part of this configuration (${cfg.experts} experts, gate ${gateShape(cfg).sizes.join('→')}, experts ${expertShape(cfg).sizes.join('→')})`,
      );
    }
  }
  checkFinite(state.params, where, state.optimizer.name);
  return { state, hasOptimizerState, version };
}

/** The training position with a fixed key order. */
function trainingJson(state: ModelState): Record<string, unknown> {
  const t = state.training;
  return {
    seed: t.seed, step: t.step, epoch: t.epoch, rng: [...t.rng],
    ...(t.batch !== undefined ? { batch: t.batch } : {}),
    ...(t.batchSize !== undefined ? { batchSize: t.batchSize } : {}),
    ...(t.noiseRng !== undefined ? { noiseRng: [...t.noiseRng] } : {}),
    ...(t.denormals !== undefined ? { denormals: t.denormals } : {}),
    ...(t.validationSplit !== undefined ? { validationSplit: t.validationSplit } : {}),
    ...(t.earlyStopping !== undefined ? { earlyStopping: { ...t.earlyStopping } } : {}),
  };
}
