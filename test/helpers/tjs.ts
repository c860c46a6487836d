/** transformers.js (dev dependency) as an offline, independent consumer of our model folders. */
import { basename, dirname } from 'node:path';
import { Florence2ForConditionalGeneration, Florence2Processor, RawImage, env } from '@huggingface/transformers';
import { type Dtype } from '../../src/runtime/model-files';

env.allowRemoteModels = false;
env.useFSCache = false;
env.useBrowserCache = false;

/** A deterministic test image with structure (gradients and stripes) so images differ meaningfully. */
export function testImage(width: number, height: number, seed: number): RawImage {
  const data = new Uint8ClampedArray(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = (x * 255) / width + seed * 40;
      data[i + 1] = (y * 255) / height;
      data[i + 2] = ((x + y * seed) >> 3) % 2 ? 230 : 20;
    }
  }
  return new RawImage(data, width, height, 3);
}

/** Points transformers.js' local model path at the folder's parent and returns the folder's name. */
function localName(dir: string): string {
  env.localModelPath = dirname(dir) + '/';
  return basename(dir);
}

export async function loadTjsProcessor(dir: string): Promise<Florence2Processor> {
  return (await Florence2Processor.from_pretrained(localName(dir))) as Florence2Processor;
}

/** `dtype` is one transformers.js dtype name for every module (the folder must hold that variant). */
export async function loadTjsModel(dir: string, dtype: Dtype = 'fp32'): Promise<Florence2ForConditionalGeneration> {
  return (await Florence2ForConditionalGeneration.from_pretrained(localName(dir), {
    dtype,
    device: 'cpu',
  })) as Florence2ForConditionalGeneration;
}
