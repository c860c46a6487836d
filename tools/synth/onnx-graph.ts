/**
 * A small builder for ONNX graphs on top of the `onnx-proto` message classes, plus a streaming
 * writer: initializer data is produced lazily, one tensor at a time, while the file is written, so
 * a Florence-2-large sized graph (over a gigabyte of weights) never sits in memory as one buffer.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { onnx } from 'onnx-proto';
import { float32ToFloat16Bits } from './fp16';
import { quantize4, quantize8, quantizeBnb4, shared } from './quantize';

export const DataType = onnx.TensorProto.DataType;
export type Dim = number | string;

/** A typed array whose bytes become a TensorProto's raw_data. */
export type TensorData = Float32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array | Int32Array;

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

/**
 * How a graph stores its weights, which is what tells the variants apart (README "Variants"):
 * `fp16` stores float weights as float16, each followed by a Cast to float32; `quant` says what
 * becomes of MatMuls by a weight (and of Convs, for the 8-bit kinds).
 */
export interface WeightFormat {
  fp16: boolean;
  quant: 'none' | 'int8' | 'uint8' | 'q4' | 'bnb4';
}
export const FP32_FORMAT: WeightFormat = { fp16: false, quant: 'none' };

/** onnxruntime's contrib-operator domain (MatMulNBits, MatMulBnb4). */
export const MS_DOMAIN = 'com.microsoft';
/** MatMulNBits' block size in the `_q4`/`_q4f16` files; MatMulBnb4's in `_bnb4` (NF4). */
export const Q4_BLOCK = 32;
export const BNB4_BLOCK = 64;
export const BNB4_NF4 = 1;

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
  readonly format: WeightFormat;

  constructor(
    readonly name: string,
    options: { format?: WeightFormat; names?: NameSource } = {},
  ) {
    this.names = options.names ?? new NameSource();
    this.format = options.format ?? FP32_FORMAT;
  }

  /** True for the branches of an `If`: they read weights from the main graph and hold none. */
  private isSubgraph = false;

  subgraph(name: string): GraphBuilder {
    const g = new GraphBuilder(name, { names: this.names, format: this.format });
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
    if (!this.format.fp16) {
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

  /**
   * `x @ W` for a [K, N] weight declared on this (top-level) graph, with the node in `g` (this graph
   * or one of its branches), in the form the variant's files have:
   * - 8-bit: DynamicQuantizeLinear of `x`, MatMulInteger with the quantized weight, a Cast of the
   *   int32 sums and a Mul by the product of the two scales (onnxruntime's dynamic quantization);
   * - q4: MatMulNBits (4 bits, blocks of {@link Q4_BLOCK} along K), on float16 for `_q4f16`;
   * - bnb4: MatMulBnb4 (NF4, blocks of {@link BNB4_BLOCK}).
   */
  matMulWeight(g: GraphBuilder, x: string, name: string, k: number, n: number, data: () => Float32Array): string {
    const { quant, fp16 } = this.format;
    if (quant === 'none') return g.op('MatMul', [x, this.weight(name, [k, n], data)]);
    if (quant === 'int8' || quant === 'uint8') {
      const [wq, wScale, wZero] = this.quantized8(name, [k, n], data, quant === 'int8');
      const [xq, xScale, xZero] = g.node('DynamicQuantizeLinear', [x], {}, 3);
      const sums = g.op('MatMulInteger', [xq, wq, xZero, wZero]);
      return g.op('Mul', [g.op('Cast', [sums], { to: int(DataType.FLOAT) }), g.op('Mul', [xScale, wScale])]);
    }
    if (quant === 'q4') {
      const [b, scales] = this.quantizedOnce(name, () => {
        const q = shared(() => quantize4(data(), k, n, Q4_BLOCK), 2);
        const blocks = Math.ceil(k / Q4_BLOCK);
        this.lazyInits.push({ name: `${name}_Q4`, dataType: DataType.UINT8, dims: [n, blocks, Q4_BLOCK / 2], data: () => q().packed });
        this.lazyInits.push({
          name: `${name}_scales`,
          dataType: fp16 ? DataType.FLOAT16 : DataType.FLOAT,
          dims: [n * blocks],
          data: () => (fp16 ? float32ToFloat16Bits(q().scales) : q().scales),
        });
        return [`${name}_Q4`, `${name}_scales`];
      });
      const a = fp16 ? g.op('Cast', [x], { to: int(DataType.FLOAT16) }) : x;
      const attrs = { K: int(k), N: int(n), bits: int(4), block_size: int(Q4_BLOCK) };
      const y = g.node('MatMulNBits', [a, b, scales], attrs, 1, MS_DOMAIN)[0];
      return fp16 ? g.op('Cast', [y], { to: int(DataType.FLOAT) }) : y;
    }
    const [b, absmax] = this.quantizedOnce(name, () => {
      const q = shared(() => quantizeBnb4(data(), k, n, BNB4_BLOCK), 2);
      this.lazyInits.push({ name: `${name}_Bnb4`, dataType: DataType.UINT8, dims: [Math.ceil((k * n) / 2)], data: () => q().packed });
      this.lazyInits.push({
        name: `${name}_absmax`,
        dataType: DataType.FLOAT,
        dims: [Math.ceil((k * n) / BNB4_BLOCK)],
        data: () => q().absmax,
      });
      return [`${name}_Bnb4`, `${name}_absmax`];
    });
    const attrs = { K: int(k), N: int(n), block_size: int(BNB4_BLOCK), quant_type: int(BNB4_NF4) };
    return g.node('MatMulBnb4', [x, b, absmax], attrs, 1, MS_DOMAIN)[0];
  }

  /**
   * A convolution by a weight [C, Cin, kh, kw] plus bias [C]: Conv, or for the 8-bit variants
   * DynamicQuantizeLinear, ConvInteger, Cast, Mul by the scales and Add of the bias (the 4-bit
   * quantizers leave convolutions alone).
   */
  convWeight(x: string, name: string, dims: number[], data: () => Float32Array, bias: string, attrs: Record<string, Attr>): string {
    const { quant } = this.format;
    if (quant !== 'int8' && quant !== 'uint8') return this.op('Conv', [x, this.weight(name, dims, data), bias], attrs);
    const [wq, wScale, wZero] = this.quantized8(name, dims, data, quant === 'int8');
    const [xq, xScale, xZero] = this.node('DynamicQuantizeLinear', [x], {}, 3);
    const sums = this.op('ConvInteger', [xq, wq, xZero, wZero], attrs);
    const scaled = this.op('Mul', [this.op('Cast', [sums], { to: int(DataType.FLOAT) }), this.op('Mul', [xScale, wScale])]);
    return this.op('Add', [scaled, this.op('Reshape', [bias, this.constI64([1, -1, 1, 1])])]);
  }

  /**
   * Rows `ids` of a [rows, dim] table declared on this graph, with the node in `g`: Gather, or for
   * the 8-bit variants a Gather of the quantized table and a DequantizeLinear (onnxruntime's
   * dynamic quantizer treats Gather of a weight so; the 4-bit quantizers leave it alone).
   */
  gatherWeight(g: GraphBuilder, name: string, dims: number[], data: () => Float32Array, ids: string): string {
    const { quant } = this.format;
    if (quant !== 'int8' && quant !== 'uint8') return g.op('Gather', [this.weight(name, dims, data), ids], { axis: int(0) });
    const [q, scale, zero] = this.quantized8(name, dims, data, quant === 'int8');
    return g.op('DequantizeLinear', [g.op('Gather', [q, ids], { axis: int(0) }), scale, zero]);
  }

  private readonly quantizedValues = new Map<string, string[]>();

  /** Declares a weight's quantized initializers once (both branches of an If ask for them). */
  private quantizedOnce(name: string, declare: () => string[]): string[] {
    let values = this.quantizedValues.get(name);
    if (values === undefined) {
      values = declare();
      this.quantizedValues.set(name, values);
    }
    return values;
  }

  private quantized8(name: string, dims: number[], data: () => Float32Array, signed: boolean): string[] {
    return this.quantizedOnce(name, () => {
      const q = shared(() => quantize8(data(), signed), 3);
      const type = signed ? DataType.INT8 : DataType.UINT8;
      this.lazyInits.push({ name: `${name}_quantized`, dataType: type, dims, data: () => q().q });
      this.lazyInits.push({ name: `${name}_scale`, dataType: DataType.FLOAT, dims: [], data: () => Float32Array.of(q().scale) });
      this.lazyInits.push({
        name: `${name}_zero_point`,
        dataType: type,
        dims: [],
        data: () => (signed ? Int8Array.of(q().zeroPoint) : Uint8Array.of(q().zeroPoint)),
      });
      return [`${name}_quantized`, `${name}_scale`, `${name}_zero_point`];
    });
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
      opsetImport: [
        { domain: '', version: meta.opset },
        ...(usesDomain(graph.toProto(), MS_DOMAIN) ? [{ domain: MS_DOMAIN, version: 1 }] : []),
      ],
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

/** Whether any node of `graph` or of its subgraphs is in `domain`. */
function usesDomain(graph: onnx.IGraphProto, domain: string): boolean {
  return (graph.node ?? []).some(
    (n) => n.domain === domain || (n.attribute ?? []).some((a) => a.g !== null && a.g !== undefined && usesDomain(a.g, domain)),
  );
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
