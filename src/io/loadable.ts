/**
 * Write only what loads. Every file the library writes (the JSON model file, safetensors
 * saves, checkpoints and exports, ONNX exports) passes the loader's own checks first: the
 * state's fields as they would be written against the loader's schema (types, ranges,
 * architecture and counter limits, names, scalers), its arrays against the configuration
 * and the size limit, and every parameter finite. A state that fails is refused before
 * a byte is written, with one typed error that says what the loader would refuse:
 *
 * - a parameter or optimiser value that is NaN or ±Infinity (training diverged):
 *   MoeError `DIVERGED`;
 * - anything else (a field edited out of range, an architecture over the limits):
 *   ModelFormatError.
 *
 * The same schema checks a new mixture's configuration when it is created
 * ({@link checkCreatable}), so that a model the loader would refuse is never trained.
 */
import type { ZodError } from 'zod';
import { ModelFormatError, MoeError, OptionError } from '../errors.js';
import type { MixtureConfig } from '../model/config.js';
import { checkModelSize, type ModelState } from '../model/state.js';
import type { OptimizerConfig } from '../optim/config.js';
import { checkArrays } from './export-state.js';
import { configSchema, firstIssue, stateFieldsSchema } from './model-schema.js';
import { checkFinite, impliedCounts } from './state-fields.js';

/** The state's fields as a file holds them (JSON: NaN and ±Infinity become null, as they would on disk). */
function fieldsAsWritten(state: ModelState): unknown {
  const fields = {
    config: state.config,
    optimizer: state.optimizer,
    training: state.training,
    inputScaler: state.inputScaler,
    targetScaler: state.targetScaler,
    featureNames: state.featureNames,
    targetNames: state.targetNames,
    classNames: state.classNames,
  };
  return JSON.parse(JSON.stringify(fields)) as unknown;
}

/**
 * Throw unless a file holding `state` would load: ModelFormatError (`where: not written:
 * <what the loader would say>`) for fields or sizes, MoeError DIVERGED for a value that
 * is not finite. `where` names the file (or the export) in the message.
 */
export function checkLoadable(state: ModelState, where: string): void {
  const parsed = stateFieldsSchema.safeParse(fieldsAsWritten(state));
  if (!parsed.success) {
    throw new ModelFormatError(`${where}: not written: ${firstIssue(parsed.error)} (the loader would refuse the file)`);
  }
  checkArrays(state, `${where}: not written`);
  impliedCounts(state.config, state.optimizer, `${where}: not written`);
  try {
    checkFinite(state.params, '', state.optimizer.name);
  } catch (err) {
    if (!(err instanceof ModelFormatError)) throw err;
    throw new MoeError(
      'DIVERGED',
      `${where}: not written: ${err.message.replace(/^: /, '')}; a file holding it would not load (training diverged: lower the learning rate or the loss weights, or keep an earlier checkpoint)`,
    );
  }
}

/**
 * Throw an OptionError naming the option (`expert`, `gate`, `experts`, …) when a new
 * mixture's configuration is one the loader would refuse, with the loader's message
 * (`expert: hidden: …`), and when its arrays would pass the size limit.
 */
export function checkCreatable(config: MixtureConfig, optimizer: Required<OptimizerConfig>): void {
  // The size first: for a billion experts, the GiB they need says more than a width limit.
  checkModelSize(config, optimizer);
  refuseAsOption(configSchema.safeParse(JSON.parse(JSON.stringify(config))), config);
}

/**
 * Throw an OptionError naming the field (`featureNames`, `classNames`, …) when a new
 * mixture's state, names included, would make a file the loader refuses.
 */
export function checkCreatedState(state: ModelState): void {
  const parsed = stateFieldsSchema.safeParse(fieldsAsWritten(state));
  if (!parsed.success && parsed.error.issues[0]!.path[0] === 'config') {
    refuseAsOption(configSchema.safeParse(JSON.parse(JSON.stringify(state.config))), state.config);
  }
  refuseAsOption(parsed, state.config);
}

function refuseAsOption(parsed: { success: true } | { success: false; error: ZodError }, config: MixtureConfig): void {
  if (parsed.success) return;
  const issue = parsed.error.issues[0]!;
  const [head, ...rest] = issue.path.map(String);
  const message = firstIssue(parsed.error);
  if (head === undefined) throw new OptionError('config', message);
  const option = head === 'outputs' && config.task === 'classification' ? 'classes' : head;
  // `head.rest: message` (or `head[1]: message`) → `rest: message`; `head: message` → `message`.
  throw new OptionError(option, rest.length > 0 ? message.slice(head.length).replace(/^\./, '') : message.slice(head.length + 2));
}
