/**
 * What a mixture is: task, widths, the gate and expert architectures and the error
 * function. Checked once here, at the boundary; everything past it may trust it.
 */
import { OptionError, quoteValue } from '../errors.js';
import { ACTIVATIONS, type Activation, type MlpShape } from './mlp.js';
import { resolveRouting, type RoutingConfig, type RoutingOptions } from './routing.js';

/** An error function's name; `nll` is an alias resolved by `resolveLoss`. */
export type LossName = 'cooperative' | 'competitive' | 'gaussian' | 'categorical';
/** Every {@link LossName} (without the `nll` alias). */
export const LOSSES: readonly LossName[] = ['cooperative', 'competitive', 'gaussian', 'categorical'];

/** Regression (real targets) or classification (integer labels 0..classes−1). */
export type Task = 'regression' | 'classification';

/** A network: `linear` (one layer) or `mlp` with hidden widths. */
export interface NetSpec {
  /** `linear`: one affine layer; `mlp`: hidden layers then an affine output layer. */
  kind: 'linear' | 'mlp';
  /** Hidden widths for `mlp` (non-empty); empty (or left out) for `linear`. */
  hidden: number[];
  /** Hidden nonlinearity for `mlp` (default tanh). */
  activation: Activation;
}

/** A fully resolved mixture configuration (what a model file stores). */
export interface MixtureConfig {
  /** Regression or classification. */
  task: Task;
  /** Input width D. */
  inputs: number;
  /** Output width K: target width for regression, number of classes for classification. */
  outputs: number;
  /** Number of experts E ≥ 1. */
  experts: number;
  /** Architecture of each expert (D → … → K). */
  expert: NetSpec;
  /** Architecture of the gate (D → … → E). */
  gate: NetSpec;
  /** The error function (`nll` already resolved). */
  loss: LossName;
  /** Which experts compute which cases, and the balancing (dense: the paper's). */
  routing: RoutingConfig;
}

/** What a caller may give; strings like `mlp:64,64` or `mlp:16:relu` are accepted for nets. */
export interface MixtureOptions extends RoutingOptions {
  /** Regression or classification. */
  task: Task;
  /** Input width D (positive integer). */
  inputs: number;
  /** Output width K: target width for regression, number of classes (≥ 2) for classification. */
  outputs: number;
  /** Number of experts E (positive integer). */
  experts: number;
  /** Expert architecture, e.g. `linear` (default) or `mlp:64,64:relu`. */
  expert?: NetSpec | string;
  /** Gate architecture, e.g. `linear` (default) or `mlp:16`. */
  gate?: NetSpec | string;
  /** An error function, or `nll` (gaussian for regression, categorical for classification). Default nll. */
  loss?: LossName | 'nll';
}

/** Parse `linear`, `mlp:64,64` or `mlp:64,64:relu`. */
export function parseNetSpec(value: NetSpec | string | undefined, option: string): NetSpec {
  if (value === undefined || value === 'linear') return { kind: 'linear', hidden: [], activation: 'tanh' };
  if (typeof value !== 'string') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new OptionError(option, `expected linear, mlp:H1,H2[:activation] or { kind, hidden, activation }, got ${quote(value)}`);
    }
    const activation = value.activation ?? 'tanh';
    // A spec without `kind` (JavaScript callers) is an mlp when it names hidden widths.
    const kind: unknown = value.kind ?? (Array.isArray(value.hidden) && value.hidden.length > 0 ? 'mlp' : 'linear');
    if (kind === 'linear') {
      if (!ACTIVATIONS.includes(activation)) throw new OptionError(option, `unknown activation ${quote(activation)} (expected ${ACTIVATIONS.join(', ')})`);
      if (value.hidden !== undefined && (!Array.isArray(value.hidden) || value.hidden.length > 0)) {
        throw new OptionError(option, `a linear network has no hidden layers, got hidden ${quote(value.hidden)}`);
      }
      return { kind: 'linear', hidden: [], activation };
    }
    if (kind !== 'mlp') throw new OptionError(option, `kind must be linear or mlp, got ${quote(kind)}`);
    return checkMlp(value.hidden, activation, option, quote(value));
  }
  const m = /^mlp:([0-9,\s]+)(?::(\w+))?$/.exec(value.trim());
  if (!m) throw new OptionError(option, `expected linear or mlp:H1,H2[:activation], got ${quote(value)}`);
  const hidden = m[1]!.split(',').map((s) => Number(s.trim()));
  return checkMlp(hidden, (m[2] ?? 'tanh') as Activation, option, value);
}

/** A value as it should appear in a one-line message, whatever it is (JSON.stringify throws on BigInt and cycles). */
function quote(v: unknown): string {
  if (typeof v === 'string') return quoteValue(v);
  try {
    const s = JSON.stringify(v);
    if (s !== undefined) return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    // fall through
  }
  return String(v);
}

/** Most hidden layers a network may have (the loader's limit too). */
export const MAX_HIDDEN_LAYERS = 64;
/** Widest layer, and most inputs, outputs or experts, a model may have (the loader's limit too). */
export const MAX_WIDTH = 1 << 24;

/** The one message for a network deeper than {@link MAX_HIDDEN_LAYERS}, at creation and at load. */
export function tooManyLayers(n: number): string {
  return `has ${n} hidden layers; at most ${MAX_HIDDEN_LAYERS} are supported`;
}

/** The one message for a width over {@link MAX_WIDTH}, at creation and at load. */
export function tooWide(n: number): string {
  return `${n} is over ${MAX_WIDTH}, the widest layer a model may have`;
}

function checkMlp(hidden: number[] | undefined, activation: Activation, option: string, text: string): NetSpec {
  if (!Array.isArray(hidden) || hidden.length === 0 || hidden.some((h) => !Number.isInteger(h) || h < 1)) {
    throw new OptionError(option, `mlp needs positive integer hidden widths, got ${text}`);
  }
  if (hidden.length > MAX_HIDDEN_LAYERS) throw new OptionError(option, `hidden: ${tooManyLayers(hidden.length)}`);
  const wide = hidden.findIndex((h) => h > MAX_WIDTH);
  if (wide >= 0) throw new OptionError(option, `hidden[${wide}]: ${tooWide(hidden[wide]!)}`);
  if (!ACTIVATIONS.includes(activation)) {
    throw new OptionError(option, `unknown activation ${quote(activation)} (expected ${ACTIVATIONS.join(', ')})`);
  }
  return { kind: 'mlp', hidden: [...hidden], activation };
}

/** Resolve `nll` and check that the loss fits the task. */
export function resolveLoss(loss: string | undefined, task: Task): LossName {
  const name = loss ?? 'nll';
  if (name === 'nll') return task === 'classification' ? 'categorical' : 'gaussian';
  if (!(LOSSES as readonly string[]).includes(name)) {
    throw new OptionError('loss', `unknown loss ${JSON.stringify(name)} (expected nll, ${LOSSES.join(', ')})`);
  }
  if (name === 'categorical' && task !== 'classification') {
    throw new OptionError('loss', 'categorical needs task classification');
  }
  return name as LossName;
}

function positiveInt(v: unknown, option: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new OptionError(option, `must be a positive integer, got ${String(v)}`);
  return v;
}

/** Validate a caller's options into a {@link MixtureConfig}. */
export function resolveMixtureConfig(o: MixtureOptions): MixtureConfig {
  if (o.task !== 'regression' && o.task !== 'classification') {
    throw new OptionError('task', `expected regression or classification, got ${JSON.stringify(o.task)}`);
  }
  const outputs = positiveInt(o.outputs, o.task === 'classification' ? 'classes' : 'outputs');
  if (o.task === 'classification' && outputs < 2) throw new OptionError('classes', `classification needs at least 2 classes, got ${outputs}`);
  const experts = positiveInt(o.experts, 'experts');
  const loss = resolveLoss(o.loss, o.task);
  return {
    task: o.task,
    inputs: positiveInt(o.inputs, 'inputs'),
    outputs,
    experts,
    expert: parseNetSpec(o.expert, 'expert'),
    gate: parseNetSpec(o.gate, 'gate'),
    loss,
    routing: resolveRouting(o, experts, loss),
  };
}

/** The expert network's shape: D → hidden… → K (logits for categorical). */
export function expertShape(c: MixtureConfig): MlpShape {
  return { sizes: [c.inputs, ...c.expert.hidden, c.outputs], activation: c.expert.activation };
}

/** The gate network's shape: D → hidden… → E logits. */
export function gateShape(c: MixtureConfig): MlpShape {
  return { sizes: [c.inputs, ...c.gate.hidden, c.experts], activation: c.gate.activation };
}

/** Print a net as the CLI spells it. */
export function formatNetSpec(n: NetSpec): string {
  return n.kind === 'linear' ? 'linear' : `mlp:${n.hidden.join(',')}${n.activation === 'tanh' ? '' : `:${n.activation}`}`;
}
