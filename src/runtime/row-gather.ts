/**
 * Row operations on tensors as ONNX graphs: `Gather(x, rows, axis=0)` for several tensors at once,
 * run on the same execution provider as the model. Beam reordering, dropping finished rows and
 * laying encoder states out per decoder row are all this one operation; as a graph it runs where
 * the tensors live, so decoder state on a GPU never has to come to the host to be reordered.
 */
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';

/** Element types a row gather handles (the decoder's K/V, encoder states and masks). */
export type RowTensorType = 'float32' | 'float16' | 'int64' | 'bool';

const ELEM_TYPE: Record<RowTensorType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
};

/** Gather is unchanged since opset 13; IR 8 loads on every onnxruntime the server supports. */
const IR_VERSION = 8;
const OPSET = 17;

/**
 * An ONNX model taking `rows` (int64 [R]) and one input per entry of `types` (`x0`, `x1`, ...; any
 * rank, first axis the rows) and giving `y{i} = Gather(x{i}, rows, axis=0)`.
 */
export function rowGatherModel(types: readonly RowTensorType[]): Uint8Array {
  const tensor = (name: string, elemType: number, rank: number | null): onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType,
        ...(rank === null ? {} : { shape: { dim: Array.from({ length: rank }, (_, d) => ({ dimParam: `${name}_d${d}` })) } }),
      },
    },
  });
  const graph: onnx.IGraphProto = {
    name: 'row_gather',
    input: [tensor('rows', onnx.TensorProto.DataType.INT64, 1), ...types.map((t, i) => tensor(`x${i}`, ELEM_TYPE[t], null))],
    output: types.map((t, i) => tensor(`y${i}`, ELEM_TYPE[t], null)),
    node: types.map((_, i) => ({
      name: `gather${i}`,
      opType: 'Gather',
      input: [`x${i}`, 'rows'],
      output: [`y${i}`],
      attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
    })),
  };
  return onnx.ModelProto.encode({
    irVersion: IR_VERSION,
    producerName: 'florence2-server',
    opsetImport: [{ domain: '', version: OPSET }],
    graph,
  }).finish();
}

/** Where a session leaves its outputs: host memory, or (WebGPU) GPU buffers. */
export type OutputLocation = 'cpu' | 'gpu-buffer';

/** Runs row gathers as graphs on one execution provider; one session per tensor-type signature. */
export class RowGatherer {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  constructor(
    private readonly sessionOptions: ort.InferenceSession.SessionOptions,
    private readonly outputLocation: OutputLocation,
    /** Called around each run with its feeds and outputs (the transfer count). */
    private readonly observe: (feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor>) => void = () => {},
  ) {}

  private session(types: RowTensorType[]): Promise<ort.InferenceSession> {
    const key = types.join(',');
    let s = this.sessions.get(key);
    if (!s) {
      s = ort.InferenceSession.create(rowGatherModel(types), { ...this.sessionOptions, preferredOutputLocation: this.outputLocation });
      // A failed creation is not cached, so a later call can try again.
      s.catch(() => this.sessions.delete(key));
      this.sessions.set(key, s);
    }
    return s;
  }

  /** `tensors[i]` with its first-axis rows picked (and repeated) by `rows`, in one run. */
  async gather(tensors: readonly ort.Tensor[], rows: readonly number[]): Promise<ort.Tensor[]> {
    if (tensors.length === 0) return [];
    const types = tensors.map((t) => t.type as RowTensorType);
    const session = await this.session(types);
    const feeds: Record<string, ort.Tensor> = { rows: new ort.Tensor('int64', BigInt64Array.from(rows, BigInt), [rows.length]) };
    tensors.forEach((t, i) => (feeds[`x${i}`] = t));
    const out = (await session.run(feeds)) as Record<string, ort.Tensor>;
    this.observe(feeds, out);
    return tensors.map((_, i) => out[`y${i}`]);
  }

  async release(): Promise<void> {
    const sessions = await Promise.allSettled([...this.sessions.values()]);
    this.sessions.clear();
    await Promise.all(sessions.flatMap((s) => (s.status === 'fulfilled' ? [s.value.release()] : [])));
  }
}

/** The JavaScript alternative for host tensors: one typed-array copy per row. */
export function copyRows(t: ort.Tensor, rows: readonly number[]): ort.Tensor {
  const [, ...rest] = t.dims;
  const rowSize = rest.reduce((a, b) => a * b, 1);
  const src = t.data as Float32Array | Uint16Array | BigInt64Array | Uint8Array;
  const Ctor = src.constructor as new (n: number) => typeof src;
  const out = new Ctor(rows.length * rowSize);
  rows.forEach((r, i) => out.set(src.subarray(r * rowSize, (r + 1) * rowSize) as never, i * rowSize));
  return new ort.Tensor(t.type, out as never, [rows.length, ...rest]);
}

/**
 * Why onnxruntime cannot run the WebGPU provider here (no Vulkan loader, no adapter), or null when
 * it can: a one-node graph is opened on it.
 */
export async function webgpuUnavailable(): Promise<string | null> {
  try {
    const s = await ort.InferenceSession.create(rowGatherModel(['float32']), { executionProviders: ['webgpu'] });
    await s.release();
    return null;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return (message.split('\n').find((l) => /adapter/i.test(l)) ?? message).replace(/^.*?(Failed to get)/, '$1').trim();
  }
}
