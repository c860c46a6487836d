/** Which ONNX file each module of a Florence-2 folder loads, by dtype (no onnxruntime import: the server uses it too). */
import { join } from 'node:path';

/** The export's modules (transformers.js session names). */
export const MODULES = ['vision_encoder', 'embed_tokens', 'encoder_model', 'decoder_model_merged'] as const;
export type ModuleName = (typeof MODULES)[number];

/** File suffix per dtype, as transformers.js names the variants (contract §5.1). */
export const DTYPE_SUFFIX = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
} as const;
export type Dtype = keyof typeof DTYPE_SUFFIX;

export function isDtype(s: string): s is Dtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SUFFIX, s);
}

/** A dtype for each of the four modules (what the server configures and the Hub fetches). */
export type DtypeByModule = Readonly<Record<ModuleName, Dtype>>;

/** onnxruntime execution providers a device can use. */
export const PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'webgpu'] as const;
export type Provider = (typeof PROVIDERS)[number];

export function isProvider(s: string): s is Provider {
  return (PROVIDERS as readonly string[]).includes(s);
}

/** Whether a provider runs on a GPU. */
export const isGpuProvider = (p: Provider): boolean => p !== 'cpu';

/** One dtype for every module, or one per module (missing modules: fp32). */
export type DtypeChoice = Dtype | Partial<Record<ModuleName, Dtype>>;

/** The dtype a module gets from a choice (modules a partial table does not name: fp32). */
export function moduleDtype(dtype: DtypeChoice | undefined, module: ModuleName): Dtype {
  return typeof dtype === 'string' ? dtype : (dtype?.[module] ?? 'fp32');
}

/** The file a module loads from, for a dtype choice. */
export function moduleFile(dir: string, module: ModuleName, dtype: DtypeChoice | undefined): string {
  return join(dir, 'onnx', `${module}${DTYPE_SUFFIX[moduleDtype(dtype, module)]}.onnx`);
}
