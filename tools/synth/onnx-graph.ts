/**
 * A small builder for ONNX graphs on top of the `onnx-proto` message classes, plus a streaming
 * writer: initializer data is produced lazily, one tensor at a time, while the file is written, so
 * a Florence-2-large sized graph (over a gigabyte of weights) never sits in memory as one buffer.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { onnx } from 'onnx-proto';
import { float32ToFloat16Bits } from './fp16';

export const DataType = onnx.TensorProto.DataType;
export type Dim = number | string;

/** A typed array whose bytes become a TensorProto's raw_data. */
export type TensorData = Float32Array | BigInt64Array | Uint8Array | Uint16Array | Int32Array;

/** An attribute value with its ONNX type made explicit (ints and floats look alike in JS). */
export type Attr =
  | { int: number }
  | { float: number }
  | { ints: number[] }
  | { floats: number[] }
  | { str: string }
  | { graph: GraphBuilder }
  | { tensor: onnx.ITensorProto };

export const int = (v: number): Attr => ({ int: v });
export const float = (v: number): Attr => ({ float: v });
export const ints = (v: number[]): Attr => ({ ints: v });
export const graphAttr = (g: GraphBuilder): Attr => ({ graph: g });

interface LazyInitializer {
  name: string;
  dataType: number;
  dims: number[];
  data: () => TensorData;
}

/** `dims: null` leaves the shape unspecified (an empty list would mean a scalar). */
function valueInfo(name: string, elemType: number, dims: Dim[] | null): onnx.IValueInfoProto {
  const shape = dims === null ? undefined : { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) };
  return { name, type: { tensorType: { elemType, shape } } };
}

function toAttributeProto(name: string, a: Attr): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('int' in a) return { name, type: T.INT, i: a.int };
  if ('float' in a) return { name, type: T.FLOAT, f: a.float };
  if ('ints' in a) return { name, type: T.INTS, ints: a.ints };
  if ('floats' in a) return { name, type: T.FLOATS, floats: a.floats };
  if ('str' in a) return { name, type: T.STRING, s: Buffer.from(a.str, 'utf8') };
  if ('tensor' in a) return { name, type: T.TENSOR, t: a.tensor };
  return { name, type: T.GRAPH, g: a.graph.toProto() };
}

function rawBytes(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Node names must be unique across a graph and its subgraphs, so all builders of one model share a counter. */
class NameSource {
  private n = 0;
  next(prefix: string): string {
    this.n += 1;
    return `/${prefix}_${this.n}`;
  }
}

/**
 * Builds one ONNX graph. Subgraphs (the branches of an `If`) are made with {@link subgraph}; they
 * may read any value of the enclosing graph by name, as ONNX outer-scope references allow.
 */
export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly smallInits: onnx.ITensorProto[] = [];
  readonly lazyInits: LazyInitializer[] = [];
  private readonly names: NameSource;
  /** Store float weights as float16 (with a Cast to float32 after them), for the `_fp16` variants. */
  readonly fp16Weights: boolean;

  constructor(
    readonly name: string,
    options: { fp16Weights?: boolean; names?: NameSource } = {},
  ) {
    this.names = options.names ?? new NameSource();
    this.fp16Weights = options.fp16Weights ?? false;
  }

  /** True for the branches of an `If`: they read weights from the main graph and hold none. */
  private isSubgraph = false;

  subgraph(name: string): GraphBuilder {
    const g = new GraphBuilder(name, { names: this.names, fp16Weights: this.fp16Weights });
    g.isSubgraph = true;
    return g;
  }

  input(name: string, elemType: number, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** Declares a graph output; `from` is the value to expose under `name` (an Identity is added if they differ). */
  output(name: string, elemType: number, dims: Dim[] | null, from: string = name): void {
    if (from !== name) this.nodes.push({ opType: 'Identity', input: [from], output: [name], name: this.names.next('Identity') });
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** Adds a node and returns its output names (`outputs` fixes them; otherwise fresh names). */
  node(opType: string, inputs: string[], attrs: Record<string, Attr> = {}, outputs: number | string[] = 1, domain = ''): string[] {
    const nodeName = this.names.next(opType);
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, i) => `${nodeName}_o${i}`) : outputs;
    this.nodes.push({
      opType,
      name: nodeName,
      domain,
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => toAttributeProto(k, v)),
    });
    return outs;
  }

  /** Adds a single-output node and returns its output name. */
  op(opType: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    return this.node(opType, inputs, attrs, 1)[0];
  }

  /** A small constant stored inline in this graph (shape tensors, scalars). */
  constI64(values: number[], dims: number[] = [values.length]): string {
    const name = this.names.next('c_i64');
    this.smallInits.push({ name, dataType: DataType.INT64, dims, rawData: rawBytes(BigInt64Array.from(values.map(BigInt))) });
    return name;
  }

  constF32(values: number[], dims: number[] = [values.length]): string {
    const name = this.names.next('c_f32');
    this.smallInits.push({ name, dataType: DataType.FLOAT, dims, rawData: rawBytes(Float32Array.from(values)) });
    return name;
  }

  /** A Constant node (used where an initializer is not allowed to be a branch output, e.g. empty tensors). */
  constantNode(dataType: number, dims: number[], data: TensorData): string {
    return this.op('Constant', [], { value: { tensor: { dataType, dims, rawData: rawBytes(data) } } });
  }

  /**
   * A float weight. Its data is generated when the file is written. Returns the name of the float32
   * value to use: the initializer itself, or a Cast of it when weights are stored as float16.
   */
  weight(name: string, dims: number[], data: () => Float32Array): string {
    // Both branches of an If ask for the same weights; declare each once.
    const known = this.weightValues.get(name);
    if (known !== undefined) return known;
    const value = this.declareWeight(name, dims, data);
    this.weightValues.set(name, value);
    return value;
  }

  private readonly weightValues = new Map<string, string>();

  private declareWeight(name: string, dims: number[], data: () => Float32Array): string {
    if (!this.fp16Weights) {
      this.lazyInits.push({ name, dataType: DataType.FLOAT, dims, data });
      return name;
    }
    this.lazyInits.push({ name, dataType: DataType.FLOAT16, dims, data: () => float32ToFloat16Bits(data()) });
    return this.node('Cast', [name], { to: int(DataType.FLOAT) }, [`${name}_f32`])[0];
  }

  /** An int64 initializer (lookup tables), generated lazily. */
  weightI64(name: string, dims: number[], data: () => BigInt64Array): string {
    this.lazyInits.push({ name, dataType: DataType.INT64, dims, data });
    return name;
  }

  /** The graph without its lazy initializers (they are streamed by {@link writeModel}). */
  toProto(): onnx.IGraphProto {
    if (this.lazyInits.length > 0 && this.isSubgraph) {
      throw new Error(`subgraph ${this.name} declares lazy weights; declare weights on the top-level graph`);
    }
    return {
      name: this.name,
      node: this.nodes,
      input: this.inputs,
      output: this.outputs,
      initializer: this.smallInits,
    };
  }

  /** Total bytes of the streamed weights (for reports). */
  weightBytes(): number {
    return this.lazyInits.reduce((s, t) => s + t.dims.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[t.dataType], 0);
  }

  /** Number of weight elements (parameters). */
  parameterCount(): number {
    return this.lazyInits.reduce((s, t) => s + t.dims.reduce((a, b) => a * b, 1), 0);
  }
}

export interface ModelMeta {
  producerName: string;
  producerVersion: string;
  opset: number;
  irVersion: number;
  docString?: string;
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** Field tags of the two messages we assemble by hand (wire type 2: length-delimited). */
const MODEL_GRAPH_TAG = Buffer.from([(7 << 3) | 2]);
const GRAPH_INITIALIZER_TAG = Buffer.from([(5 << 3) | 2]);

/**
 * Writes `graph` as an ONNX model file. Protobuf messages are concatenations of fields, so the
 * GraphProto is emitted as (graph without weights) + one `initializer` field per weight, each
 * generated, encoded and written before the next one exists. Returns the file size in bytes.
 */
export async function writeModel(path: string, graph: GraphBuilder, meta: ModelMeta): Promise<number> {
  const head = onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: meta.irVersion,
      producerName: meta.producerName,
      producerVersion: meta.producerVersion,
      docString: meta.docString ?? '',
      opsetImport: [{ domain: '', version: meta.opset }],
    }),
  ).finish();
  const graphHead = onnx.GraphProto.encode(onnx.GraphProto.create(graph.toProto())).finish();

  // The graph's length prefix must be known before the weights exist: compute each encoded
  // initializer's length from its header and element count.
  const initLengths = graph.lazyInits.map(encodedInitializerLength);
  const graphLength = graphHead.length + initLengths.reduce((s, n) => s + GRAPH_INITIALIZER_TAG.length + varint(n).length + n, 0);

  const out = createWriteStream(path);
  let written = 0;
  const write = async (buf: Uint8Array) => {
    written += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
  };
  await write(head);
  await write(MODEL_GRAPH_TAG);
  await write(varint(graphLength));
  await write(graphHead);
  for (let i = 0; i < graph.lazyInits.length; i++) {
    const bytes = encodeInitializer(graph.lazyInits[i]);
    if (bytes.length !== initLengths[i])
      throw new Error(`weight ${graph.lazyInits[i].name}: encoded length differs from its declared shape`);
    await write(GRAPH_INITIALIZER_TAG);
    await write(varint(bytes.length));
    await write(bytes);
  }
  out.end();
  await once(out, 'finish');
  return written;
}

const BYTES_PER_ELEMENT: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.FLOAT16]: 2,
  [DataType.INT64]: 8,
  [DataType.INT32]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.BOOL]: 1,
};
const RAW_DATA_TAG_LENGTH = 1; // field 9, wire type 2

function encodedInitializerLength(init: LazyInitializer): number {
  const header = onnx.TensorProto.encode(onnx.TensorProto.create({ name: init.name, dataType: init.dataType, dims: init.dims })).finish()
    .length;
  const raw = init.dims.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[init.dataType];
  return header + RAW_DATA_TAG_LENGTH + varint(raw).length + raw;
}

function encodeInitializer(init: LazyInitializer): Uint8Array {
  const data = init.data();
  const expected = init.dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) throw new Error(`weight ${init.name}: ${data.length} values for dims [${init.dims.join(', ')}]`);
  return onnx.TensorProto.encode(
    onnx.TensorProto.create({ name: init.name, dataType: init.dataType, dims: init.dims, rawData: rawBytes(data) }),
  ).finish();
}
