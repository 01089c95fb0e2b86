/**
 * A mixture as an ONNX model that computes what {@link Mixture.predict} computes, from
 * raw inputs in the data's units:
 *
 *   input    x        float32 [N, D]      raw inputs (N symbolic)
 *   output   output   float32 [N, K]      Σ g_i softmax(z_i) (categorical) or Σ g_i o_i,
 *                                         in target units for regression
 *   output   gate     float32 [N, E]      gate probabilities
 *   output   experts  float32 [E, N, K]   each expert's output (target units for
 *                                         regression; logits/outputs for classification)
 *
 * Standardisation and unstandardisation run in float64 (Cast, Sub, Div / Mul, Add,
 * Cast), which is what predict does in JavaScript, so those steps agree bit for bit; the
 * networks run in float32. The experts run as one batched MatMul per layer on stacked
 * weights [E, n_l, n_{l+1}]. IR version 8, opset 17, default domain only.
 */
import { OptionError } from '../../errors.js';
import { expertShape, gateShape, type MixtureConfig } from '../../model/config.js';
import { mlpParamCount, type Activation, type MlpShape } from '../../model/mlp.js';
import { routingRule, type RoutingRule } from '../../engine/routing-plan.js';
import type { ModelState } from '../../model/state.js';
import { checkArrays } from '../export-state.js';
import { ONNX_IR_VERSION, ONNX_OPSET, OnnxGraphBuilder } from './graph.js';

/** Every operator the exporter may emit (all of the default `ai.onnx` domain, opset 17). */
export const ONNX_OPERATORS: readonly string[] = [
  'Cast', 'Sub', 'Div', 'Mul', 'Add', 'MatMul', 'Tanh', 'Relu', 'Sigmoid', 'Softmax', 'Transpose', 'Unsqueeze', 'ReduceSum',
  'TopK', 'GatherElements', 'ScatterElements', 'Concat', 'Slice',
];

export { ONNX_IR_VERSION, ONNX_OPSET };

/**
 * Most initialiser bytes one ONNX file may hold: a protobuf message stops at 2 GiB, and
 * the graph itself needs a little room (external-data files are not written).
 */
export const ONNX_MAX_INITIALIZER_BYTES = 2 ** 31 - 2 ** 24;

const FLOAT = 1, DOUBLE = 11; // TensorProto.DataType

const ACTIVATION_OPS: Record<Activation, string> = { tanh: 'Tanh', relu: 'Relu', sigmoid: 'Sigmoid' };

/** Bytes of the initialisers an export of `config` writes (float32 weights, float64 scalers). */
export function onnxInitializerBytes(config: MixtureConfig): number {
  const weights = mlpParamCount(gateShape(config)) + config.experts * mlpParamCount(expertShape(config));
  return 4 * weights + 8 * 2 * (config.inputs + config.outputs) + 64;
}

/** Per layer l of an MLP whose parameters start at `base` in `flat`: W_l (n_l × n_{l+1}) and b_l. */
function layers(shape: MlpShape, flat: Float32Array, base = 0): { w: Float32Array; b: Float32Array; nin: number; nout: number }[] {
  const out = [];
  let o = base;
  for (let l = 0; l + 1 < shape.sizes.length; l++) {
    const nin = shape.sizes[l]!, nout = shape.sizes[l + 1]!;
    out.push({ w: flat.subarray(o, o + nin * nout), b: flat.subarray(o + nin * nout, o + nin * nout + nout), nin, nout });
    o += nin * nout + nout;
  }
  return out;
}

/** The gate: z [N, D] → logits [N, E], one MatMul + Add per layer, activation between. */
function gateLogits(g: OnnxGraphBuilder, shape: MlpShape, params: Float32Array, z: string): string {
  const ls = layers(shape, params);
  let h = z;
  ls.forEach((L, l) => {
    h = g.node('MatMul', [h, g.initializer(`gate.layers.${l}.weight`, [L.nin, L.nout], L.w.slice())]);
    h = g.node('Add', [h, g.initializer(`gate.layers.${l}.bias`, [L.nout], L.b.slice())]);
    if (l < ls.length - 1) h = g.node(ACTIVATION_OPS[shape.activation], [h]);
  });
  return h;
}

/**
 * All E experts at once: z [N, D] → [E, N, K]. Layer l's weights are stacked into
 * [E, n_l, n_{l+1}] (MatMul broadcasts [N, n_l] over E) and its biases into [E, 1, n_{l+1}].
 */
function expertOutputs(g: OnnxGraphBuilder, shape: MlpShape, E: number, params: Float32Array, z: string, out?: string): string {
  const P = mlpParamCount(shape);
  const per = Array.from({ length: E }, (_, i) => layers(shape, params, i * P));
  const L = per[0]!.length;
  let h = z;
  for (let l = 0; l < L; l++) {
    const { nin, nout } = per[0]![l]!;
    const W = new Float32Array(E * nin * nout), b = new Float32Array(E * nout);
    for (let i = 0; i < E; i++) {
      W.set(per[i]![l]!.w, i * nin * nout);
      b.set(per[i]![l]!.b, i * nout);
    }
    h = g.node('MatMul', [h, g.initializer(`experts.layers.${l}.weight`, [E, nin, nout], W)]);
    h = g.node('Add', [h, g.initializer(`experts.layers.${l}.bias`, [E, 1, nout], b)], {}, l === L - 1 ? out : undefined);
    if (l < L - 1) h = g.node(ACTIVATION_OPS[shape.activation], [h]);
  }
  return h;
}

/**
 * A rule's choice as ONNX nodes: from the biased scores fround(u + b) [N, E] (ONNX's float32
 * Add), each row's kept experts [N, K] (int64). The scores arrive with one padding row
 * appended (ONNX Runtime's TopK dies with SIGFPE on an empty tensor; the padding row's
 * choice is dropped after), so a choice may assume at least one row.
 */
export type OnnxChoice = (g: OnnxGraphBuilder, scores: string) => string;

/**
 * The ONNX spelling of each routing rule's choice at predict (src/engine/routing-plan.ts):
 * topk and switch keep the K best by TopK, which puts the lower index first among equal
 * values, as the plan breaks ties. Dense keeps all (no choice); expert-choice is refused.
 */
function onnxChoice(state: ModelState): OnnxChoice | undefined {
  const r = state.config.routing;
  switch (r.kind) {
    case 'topk':
    case 'switch':
      return (g, scores) => g.nodeN('TopK', [scores, g.ints('k', [r.k])], 2, { axis: 1, largest: 1, sorted: 1 })[1]!;
    case 'dense':
    case 'expert-choice':
      return undefined;
  }
}

/** Each row's kept experts [N, K] by `choice` on the biased scores, with the padding row around it. */
function keptExperts(g: OnnxGraphBuilder, state: ModelState, u: string, choice: OnnxChoice): string {
  const E = state.config.experts;
  const scores = state.params.routerBias.length > 0 ? g.node('Add', [u, g.initializer('router_bias', [E], state.params.routerBias.slice())]) : u;
  const padded = g.node('Concat', [scores, g.initializer('pad_row', [1, E], new Float32Array(E))], { axis: 0 });
  return g.node('Slice', [choice(g, padded), g.ints('slice_start', [0]), g.ints('slice_end', [-1]), g.ints('slice_axis', [0])]);
}

/**
 * The combination weights ĝ [N, E] from the gate's logits u, as predict routes (no noise):
 * dense ĝ = softmax(u); otherwise the rule's kept experts, weighed as the rule weighs
 * them ('kept-softmax': softmax of u over the kept; 'probability': softmax(u) at the
 * kept), scattered into zeros.
 */
function combinationWeights(g: OnnxGraphBuilder, state: ModelState, u: string, rule: RoutingRule, choice: OnnxChoice | undefined): string {
  const p = g.node('Softmax', [u], { axis: 1 }, choice ? undefined : 'gate');
  if (!choice) return p;
  const kept = keptExperts(g, state, u, choice);
  const picked = rule.weights === 'kept-softmax' ? g.node('Softmax', [g.node('GatherElements', [u, kept], { axis: 1 })], { axis: 1 }) : g.node('GatherElements', [p, kept], { axis: 1 });
  const zeros = g.node('Mul', [p, g.initializer('zero', [1], Float32Array.of(0))]);
  return g.node('ScatterElements', [zeros, kept, picked], { axis: 1 }, 'gate');
}

/** The mixture: Σ_i ĝ[n, i] · y[i, n, :] → [N, K]. */
function combine(g: OnnxGraphBuilder, gate: string, perExpert: string, out?: string): string {
  const w = g.node('Unsqueeze', [g.node('Transpose', [gate], { perm: [1, 0] }), g.ints('axis_2', [2])]); // [E, N, 1]
  return g.node('ReduceSum', [g.node('Mul', [w, perExpert]), g.ints('axis_0', [0])], { keepdims: 0 }, out);
}

/** v · std + mean per column in float64, as predict's unstandardise does, back to float32. */
function unstandardize(g: OnnxGraphBuilder, v: string, s: { mean: number[]; std: number[] }, out: string): string {
  const K = s.mean.length;
  const d = g.node('Cast', [v], { to: DOUBLE });
  const scaled = g.node('Mul', [d, g.initializer('target_std', [K], Float64Array.from(s.std))]);
  const shifted = g.node('Add', [scaled, g.initializer('target_mean', [K], Float64Array.from(s.mean))]);
  return g.node('Cast', [shifted], { to: FLOAT }, out);
}

/**
 * The model as an ONNX file (bytes of a ModelProto): input `x` [N, D] float32 raw inputs,
 * outputs `output` [N, K], `gate` [N, E], `experts` [E, N, K] as {@link Mixture.predict}
 * returns them. Refuses a mixture that has not been trained (no standardisation) or whose
 * weights exceed what one protobuf holds ({@link ONNX_MAX_INITIALIZER_BYTES}): an
 * OptionError naming `format`, as is expert-choice routing (not exported); a state that
 * does not fit its configuration: a ModelFormatError. `custom` (tests): a routing rule of
 * the caller's and its ONNX choice, in place of the configuration's.
 */
export function mixtureToOnnx(state: ModelState, custom?: { rule: RoutingRule; choice: OnnxChoice }): Uint8Array {
  const c = state.config;
  const bytes = onnxInitializerBytes(c);
  if (bytes > ONNX_MAX_INITIALIZER_BYTES) {
    throw new OptionError(
      'format',
      `onnx: the model's weights take ${(bytes / 2 ** 30).toFixed(2)} GiB, more than the 2 GiB one ONNX protobuf can hold; export it as safetensors instead`,
    );
  }
  checkArrays(state, 'onnx export');
  if (c.routing.kind === 'expert-choice') {
    throw new OptionError('format', `onnx: expert-choice routing is not exported (its predictions send each row to its ⌈C⌉ best experts); export it as safetensors`);
  }
  if (!state.inputScaler || !state.targetScaler) {
    throw new OptionError('model', 'the mixture has not been trained yet (no standardisation fitted): there is no predict to export');
  }
  const { inputs: D, outputs: K, experts: E } = c;
  const g = new OnnxGraphBuilder();
  const x = g.input('x', ['N', D]);
  // (x − mean) / std in float64, rounded to float32 once: what standardize() computes.
  const xd = g.node('Cast', [x], { to: DOUBLE });
  const centred = g.node('Sub', [xd, g.initializer('input_mean', [D], Float64Array.from(state.inputScaler.mean))]);
  const zd = g.node('Div', [centred, g.initializer('input_std', [D], Float64Array.from(state.inputScaler.std))]);
  const z = g.node('Cast', [zd], { to: FLOAT });

  // Tests export a rule of their own (`custom`); models, their configuration's.
  const rule = custom?.rule ?? routingRule(c.routing), choice = custom ? custom.choice : onnxChoice(state);
  const gate = combinationWeights(g, state, gateLogits(g, gateShape(c), state.params.gateParams, z), rule, choice);
  const regression = c.task === 'regression';
  // [E, N, K]: standardised outputs (regression) or, as predict returns them, logits/outputs.
  const raw = expertOutputs(g, expertShape(c), E, state.params.expertParams, z, regression ? undefined : 'experts');
  const perExpert = c.loss === 'categorical' ? g.node('Softmax', [raw], { axis: 2 }) : raw;
  const mixed = combine(g, gate, perExpert, regression ? undefined : 'output');
  if (regression) {
    unstandardize(g, mixed, state.targetScaler, 'output');
    unstandardize(g, raw, state.targetScaler, 'experts');
  }
  g.output('output', ['N', K]);
  g.output('gate', ['N', E]);
  g.output('experts', [E, 'N', K]);

  const props: Record<string, string> = {
    'local-experts.config': JSON.stringify(c),
    'local-experts.outputs': c.loss === 'categorical' ? 'class probabilities' : regression ? 'target units' : 'mixture of expert outputs',
  };
  if (state.featureNames) props['local-experts.feature_names'] = JSON.stringify(state.featureNames);
  if (state.targetNames) props['local-experts.target_names'] = JSON.stringify(state.targetNames);
  if (state.classNames) props['local-experts.class_names'] = JSON.stringify(state.classNames);
  return g.toBytes('local_experts', {
    producer: 'local-experts',
    producerVersion: '',
    doc: `Mixture of ${E} local experts (${c.task}, ${c.loss}); input x [N, ${D}] raw, outputs output [N, ${K}], gate [N, ${E}], experts [${E}, N, ${K}].`,
    props,
  });
}
