/**
 * The model file's schema (zod): every field's type and range, and the configuration's
 * consistency with the lengths of the parameter arrays, checked before anything is
 * trusted. zod because it gives typed results and a path for every issue ("config.experts:
 * …"), which becomes the one-line error; hand-written checks missed fields before.
 */
import { z } from 'zod';
import { ACTIVATIONS } from '../model/mlp.js';
import { LOSSES, MAX_HIDDEN_LAYERS, MAX_WIDTH, tooManyLayers, tooWide, type LossName } from '../model/config.js';
import { denseRouting, resolveRouting, type RoutingConfig } from '../model/routing.js';
import { OptionError } from '../errors.js';
import { OPTIMIZERS } from '../optim/config.js';

// MAX_WIDTH: largest layer width or count a model file may declare (sizes are checked again in total).
const count = z.number().int().min(1).max(MAX_WIDTH, { error: (iss) => tooWide(iss.input as number) });
const finite = z.number().refine(Number.isFinite, { message: 'must be a finite number' });

const netSpec = z.object({
  kind: z.enum(['linear', 'mlp']),
  hidden: z.array(count).max(MAX_HIDDEN_LAYERS, { error: (iss) => tooManyLayers((iss.input as unknown[]).length) }),
  activation: z.enum(ACTIVATIONS as unknown as [string, ...string[]]),
});

const weight = finite.refine((v) => v >= 0, { message: 'must be ≥ 0' });
const routing = z.object({
  kind: z.enum(['dense', 'topk', 'switch', 'expert-choice']),
  k: finite.refine((v) => v > 0, { message: 'must be > 0' }),
  noise: z.boolean(),
  balanceLoss: weight,
  zLoss: weight,
  balanceBias: weight,
  blockRows: z.number().int().min(1).max(1 << 20),
});

export const configSchema = z
  .object({
    task: z.enum(['regression', 'classification']),
    inputs: count,
    outputs: count,
    experts: count,
    expert: netSpec,
    gate: netSpec,
    loss: z.enum(LOSSES as unknown as [string, ...string[]]),
    // Files from before sparse routing: the paper's dense softmax.
    routing: routing.optional(),
  })
  .superRefine((c, ctx) => {
    if (c.routing) {
      // The same rules as for a new mixture (K within 1..E, the losses one expert allows, …).
      const r = c.routing as RoutingConfig;
      try {
        const spelled = r.kind === 'topk' || r.kind === 'expert-choice' ? `${r.kind}:${r.k}` : r.kind;
        const again = resolveRouting(
          { routing: spelled, noise: r.noise, balanceLoss: r.balanceLoss, zLoss: r.zLoss, balanceBias: r.balanceBias, ...(r.kind === 'dense' ? {} : { blockRows: r.blockRows }) },
          c.experts,
          c.loss as LossName,
        );
        // Every field as a new mixture would have it (a switch with k 3 would route as top-3).
        for (const key of Object.keys(again) as (keyof RoutingConfig)[]) {
          if (key === 'blockRows' && r.kind === 'dense') continue;
          if (again[key] !== r[key]) ctx.addIssue({ code: 'custom', path: ['routing', key], message: `is ${String(r[key])}; ${spelled} has ${String(again[key])}` });
        }
      } catch (err) {
        if (!(err instanceof OptionError)) throw err;
        ctx.addIssue({ code: 'custom', path: ['routing', err.option === 'loss' ? 'kind' : err.option === 'routing' ? 'k' : err.option], message: err.message.slice(err.option.length + 2) });
      }
    }
    for (const key of ['expert', 'gate'] as const) {
      const n = c[key];
      if (n.kind === 'mlp' && n.hidden.length === 0) ctx.addIssue({ code: 'custom', path: [key, 'hidden'], message: 'an mlp needs at least one hidden layer' });
      if (n.kind === 'linear' && n.hidden.length > 0) ctx.addIssue({ code: 'custom', path: [key, 'hidden'], message: 'a linear net has no hidden layers' });
    }
    if (c.loss === 'categorical' && c.task !== 'classification') ctx.addIssue({ code: 'custom', path: ['loss'], message: 'categorical needs task classification' });
    if (c.task === 'classification' && c.outputs < 2) ctx.addIssue({ code: 'custom', path: ['outputs'], message: 'classification needs at least 2 classes' });
  });

const optimizer = z.object({
  name: z.enum(OPTIMIZERS as unknown as [string, ...string[]]),
  lr: finite.refine((v) => v > 0, { message: 'must be > 0' }),
  momentum: finite.refine((v) => v >= 0 && v < 1, { message: 'must be in [0, 1)' }),
  beta1: finite.refine((v) => v >= 0 && v < 1, { message: 'must be in [0, 1)' }),
  beta2: finite.refine((v) => v >= 0 && v < 1, { message: 'must be in [0, 1)' }),
  epsilon: finite.refine((v) => v > 0, { message: 'must be > 0' }),
  weightDecay: finite.refine((v) => v >= 0, { message: 'must be ≥ 0' }),
});

/** Largest float32, the bound of any value a float32 column (and so its mean and spread) has. */
const FLOAT32_MAX = 3.4028234663852886e38;
/**
 * Smallest standard deviation of a column that is not constant: two float32 values differ
 * by at least 2⁻¹⁴⁹, so n < 2³² rows spread at least 2⁻¹⁴⁹·2⁻¹⁶. A smaller one (1e-300)
 * was never fitted on float32 data, and would standardise every input to ±Infinity.
 */
export const MIN_SCALER_STD = 2 ** -165;

const scaler = z.object({
  mean: z.array(finite.refine((v) => Math.abs(v) <= FLOAT32_MAX, { message: 'is outside float32 range (±3.4e38): no float32 column has this mean' })),
  std: z.array(
    finite
      .refine((v) => v > 0, { message: 'must be > 0' })
      .refine((v) => v >= MIN_SCALER_STD && v <= FLOAT32_MAX, { message: `is outside [${MIN_SCALER_STD.toPrecision(3)}, 3.4e38]: no float32 column has this spread` }),
  ),
});

const uint32 = z.number().int().min(0).max(0xffffffff);

const training = z.object({
  seed: uint32,
  step: z.number().int().min(0),
  epoch: z.number().int().min(0),
  rng: z.array(uint32).length(4),
  batch: z.number().int().min(0).optional(),
  batchSize: z.number().int().min(1).optional(),
  noiseRng: z.array(uint32).length(4).optional(),
  denormals: z.enum(['flush', 'ieee']).optional(),
  validationSplit: z.number().gt(0).lt(1).optional(),
  earlyStopping: z
    .object({ best: z.number().refine(Number.isFinite, { message: 'must be finite' }), bestEpoch: z.number().int().min(0), sinceBest: z.number().int().min(0) })
    .optional(),
});

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, { message: 'must be base64' });

/** The fields of a model's state, as every file format stores them (besides the arrays). */
const stateShape = {
  config: configSchema,
  optimizer,
  inputScaler: scaler.optional(),
  targetScaler: scaler.optional(),
  featureNames: z.array(z.string().max(10_000)).optional(),
  targetNames: z.array(z.string().max(10_000)).optional(),
  classNames: z.array(z.string().max(10_000)).optional(),
  training,
};

type StateFields = z.infer<z.ZodObject<typeof stateShape>>;

/** The state's fields against each other: names and scalers of the configuration's widths. */
function refineState(d: StateFields, ctx: z.RefinementCtx): void {
  const c = d.config;
  const widths: ['featureNames' | 'targetNames' | 'classNames', number, string][] = [
    ['featureNames', c.inputs, 'inputs'],
    ['targetNames', c.task === 'classification' ? 1 : c.outputs, c.task === 'classification' ? 'label column' : 'outputs'],
    ['classNames', c.outputs, 'classes'],
  ];
  for (const [key, n, what] of widths) {
    const names = d[key];
    if (names !== undefined && names.length !== n) ctx.addIssue({ code: 'custom', path: [key], message: `has ${names.length} names, the model has ${n} ${what}` });
  }
  if (d.classNames !== undefined && c.task !== 'classification') ctx.addIssue({ code: 'custom', path: ['classNames'], message: 'only a classification model has class names' });
  if (d.classNames !== undefined && new Set(d.classNames).size !== d.classNames.length) ctx.addIssue({ code: 'custom', path: ['classNames'], message: 'a class is named twice' });
  if ((d.inputScaler === undefined) !== (d.targetScaler === undefined)) ctx.addIssue({ code: 'custom', path: ['targetScaler'], message: 'inputScaler and targetScaler come together' });
  const scalers: ['inputScaler' | 'targetScaler', number][] = [
    ['inputScaler', c.inputs],
    ['targetScaler', c.outputs],
  ];
  for (const [key, n] of scalers) {
    const sc = d[key];
    if (sc && (sc.mean.length !== n || sc.std.length !== n)) ctx.addIssue({ code: 'custom', path: [key], message: `needs ${n} means and ${n} standard deviations` });
  }
  if ((d.training.batch ?? 0) > 0 && d.training.batchSize === undefined) ctx.addIssue({ code: 'custom', path: ['training', 'batchSize'], message: 'a mid-epoch checkpoint needs its batch size' });
  if (d.config.routing?.noise && d.training.noiseRng === undefined) ctx.addIssue({ code: 'custom', path: ['training', 'noiseRng'], message: 'a noisy top-k model needs the state of its noise generator' });
}

/** A checked configuration's routing, the paper's dense softmax for files from before routing existed. */
export function routingOf(c: { experts: number; routing?: RoutingConfig | undefined }): RoutingConfig {
  return c.routing ?? denseRouting(c.experts);
}

/** A model's state fields alone (formats that keep the arrays elsewhere: safetensors). */
export const stateFieldsSchema = z.object(stateShape).superRefine(refineState);

/** The JSON model file of versions 1 and 2 (version 1 has no `kernels`; its checksum covers the arrays only). */
export const modelDocumentSchema = z
  .object({
    ...stateShape,
    format: z.literal('local-experts-model'),
    version: z.number().int().min(1),
    writer: z.string().max(200).optional(),
    backend: z.string().max(200).optional(),
    kernels: z.string().max(20).optional(),
    params: z.object({
      gateParams: base64,
      expertParams: base64,
      gateOpt: base64,
      expertOpt: base64,
      noiseParams: base64.optional(),
      noiseOpt: base64.optional(),
      routerBias: base64.optional(),
    }),
    checksum: z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be 64 hex digits' }),
  })
  .superRefine((d, ctx) => {
    refineState(d, ctx);
    // Version 1 (0.1.0) had none of these; its checksum would not cover them.
    if (d.version === 1) {
      const late: [unknown, (string | number)[]][] = [
        [d.config.routing, ['config', 'routing']],
        [d.kernels, ['kernels']],
        [d.training.noiseRng, ['training', 'noiseRng']],
        [d.params.noiseParams, ['params', 'noiseParams']],
        [d.params.noiseOpt, ['params', 'noiseOpt']],
        [d.params.routerBias, ['params', 'routerBias']],
      ];
      for (const [v, path] of late) if (v !== undefined) ctx.addIssue({ code: 'custom', path, message: 'is not part of a version 1 model file' });
    }
  });

/** A parsed, schema-checked model document. */
export type ModelDocumentData = z.infer<typeof modelDocumentSchema>;
/** Parsed, schema-checked state fields. */
export type StateFieldsData = z.infer<typeof stateFieldsSchema>;

/** The first issue of a failed parse as `path: message` (values cut to keep it one line). */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
  const message = issue.message.replace(/\s+/g, ' ').slice(0, 200);
  return path ? `${path}: ${message}` : message;
}
