/**
 * A small builder for ONNX graphs over the compiled ONNX protobuf schema (`onnx-buf`,
 * generated from onnx/onnx's onnx.proto with `@bufbuild/protobuf`): initialisers, nodes
 * of the default `ai.onnx` domain, float inputs and outputs with symbolic dimensions, and
 * the serialised ModelProto.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';

/** ONNX IR version written (ONNX 1.10+). */
export const ONNX_IR_VERSION = 8;
/** Opset of the default domain the graphs use. */
export const ONNX_OPSET = 17;

/** A node attribute: an integer or a list of integers (all this exporter needs). */
export type AttributeValue = number | readonly number[];

/** A dimension: a fixed size or a symbolic name (e.g. `N`). */
export type Dim = number | string;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Bytes of little-endian values of a typed array (ONNX raw_data is little-endian). */
function rawBytes(values: Float32Array | Float64Array | BigInt64Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(values.byteLength);
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return out;
  }
  const dv = new DataView(out.buffer);
  const w = values.BYTES_PER_ELEMENT;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (values instanceof BigInt64Array) dv.setBigInt64(i * w, v as bigint, true);
    else if (values instanceof Float64Array) dv.setFloat64(i * w, v as number, true);
    else dv.setFloat32(i * w, v as number, true);
  }
  return out;
}

function valueInfo(name: string, elemType: TensorProto_DataType, dims: readonly Dim[]): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: 'tensorType',
        value: create(TypeProto_TensorSchema, {
          elemType,
          shape: create(TensorShapeProtoSchema, {
            dim: dims.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
              }),
            ),
          }),
        }),
      },
    }),
  });
}

function attribute(name: string, v: AttributeValue): AttributeProto {
  return typeof v === 'number'
    ? create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) })
    : create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map((x) => BigInt(x)) });
}

/** Builds one graph: add initialisers and nodes in topological order, then {@link toBytes}. */
export class OnnxGraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  /** A fresh value name starting with `hint`. */
  private fresh(hint: string): string {
    let name = hint;
    while (this.names.has(name)) name = `${hint}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  /** A float32 graph input of shape `dims`. */
  input(name: string, dims: readonly Dim[]): string {
    if (this.names.has(name)) throw new Error(`ONNX value ${name} defined twice`);
    this.names.add(name);
    this.inputs.push(valueInfo(name, TensorProto_DataType.FLOAT, dims));
    return name;
  }

  /** Declare `name` (already produced by a node) a float32 graph output of shape `dims`. */
  output(name: string, dims: readonly Dim[]): void {
    this.outputs.push(valueInfo(name, TensorProto_DataType.FLOAT, dims));
  }

  /** A constant tensor (float32, float64 or int64), stored as raw little-endian bytes. */
  initializer(hint: string, dims: readonly number[], values: Float32Array | Float64Array | BigInt64Array): string {
    const name = this.fresh(hint);
    const dataType =
      values instanceof BigInt64Array ? TensorProto_DataType.INT64 : values instanceof Float64Array ? TensorProto_DataType.DOUBLE : TensorProto_DataType.FLOAT;
    this.initializers.push(create(TensorProtoSchema, { name, dims: dims.map((d) => BigInt(d)), dataType, rawData: rawBytes(values) }));
    return name;
  }

  /** An int64 vector constant (axes of Unsqueeze, ReduceSum). */
  ints(hint: string, values: readonly number[]): string {
    return this.initializer(hint, [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
  }

  /**
   * A node of the default domain with one output; `out` names the output exactly (a
   * graph output), otherwise a fresh name from the op type is used. Returns the output.
   */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttributeValue> = {}, out?: string): string {
    if (out !== undefined) {
      if (this.names.has(out)) throw new Error(`ONNX value ${out} defined twice`);
      this.names.add(out);
    }
    return this.push(opType, inputs, [out ?? this.fresh(opType.toLowerCase())], attrs)[0]!;
  }

  private push(opType: string, inputs: readonly string[], outputs: string[], attrs: Record<string, AttributeValue>): string[] {
    this.nodes.push(
      create(NodeProtoSchema, {
        name: `${opType}_${this.nodes.length}`,
        opType,
        domain: '',
        input: [...inputs],
        output: outputs,
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
    return outputs;
  }

  /** A node with several outputs (TopK: values, indices); returns their fresh names. */
  nodeN(opType: string, inputs: readonly string[], outputs: number, attrs: Record<string, AttributeValue> = {}): string[] {
    return this.push(opType, inputs, Array.from({ length: outputs }, (_, j) => this.fresh(`${opType.toLowerCase()}_${j}`)), attrs);
  }

  /** The model: IR {@link ONNX_IR_VERSION}, opset {@link ONNX_OPSET} of the default domain, serialised. */
  toBytes(graphName: string, meta: { producer: string; producerVersion: string; doc: string; props: Record<string, string> }): Uint8Array {
    const model = create(ModelProtoSchema, {
      irVersion: BigInt(ONNX_IR_VERSION),
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(ONNX_OPSET) })],
      producerName: meta.producer,
      producerVersion: meta.producerVersion,
      docString: meta.doc,
      graph: create(GraphProtoSchema, {
        name: graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      }),
      metadataProps: Object.entries(meta.props).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
    });
    return toBinary(ModelProtoSchema, model);
  }
}
