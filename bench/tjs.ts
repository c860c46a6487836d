/**
 * transformers.js (dev dependency, offline, local folder) as the comparison point. Its sessions'
 * `run` calls are wrapped with timers so one generate() call splits into vision, encoder and decoder
 * time the same way our pipeline's stage timings do.
 */
import { performance } from 'node:perf_hooks';
import { basename, dirname } from 'node:path';
import { Florence2ForConditionalGeneration, Florence2Processor, RawImage, env } from '@huggingface/transformers';
import type { Sample } from './stats';
import type { Dtype, DtypeByModule } from '../src/runtime/model-files';

env.allowRemoteModels = false;
env.useFSCache = false;
env.useBrowserCache = false;

interface TimedSession {
  run: (...args: unknown[]) => Promise<unknown>;
}

interface SessionCall {
  session: string;
  start: number;
  end: number;
}

export interface TjsRunner {
  /** One image end to end: decode + processor, generate(), batch_decode + post-processing. */
  run(png: Uint8Array, width: number, height: number, maxNewTokens: number): Promise<Sample>;
  release(): Promise<void>;
}

/** `dtype`: one transformers.js dtype, or one per session (module). */
export async function loadTjs(dir: string, intraOpNumThreads: number, dtype: Dtype | DtypeByModule = 'fp32'): Promise<TjsRunner> {
  env.localModelPath = dirname(dir) + '/';
  const name = basename(dir);
  const model = await Florence2ForConditionalGeneration.from_pretrained(name, {
    dtype: typeof dtype === 'string' ? dtype : { ...dtype },
    device: 'cpu',
    session_options: { intraOpNumThreads, interOpNumThreads: 1, graphOptimizationLevel: 'all' },
  });
  const processor = (await Florence2Processor.from_pretrained(name)) as Florence2Processor;

  // Record every session call of the current generate().
  let calls: SessionCall[] = [];
  const sessions = (model as unknown as { sessions: Record<string, TimedSession> }).sessions;
  for (const [sessionName, session] of Object.entries(sessions)) {
    const original = session.run.bind(session);
    session.run = async (...args: unknown[]) => {
      const start = performance.now();
      try {
        return await original(...args);
      } finally {
        calls.push({ session: sessionName, start, end: performance.now() });
      }
    };
  }

  return {
    async run(png, width, height, maxNewTokens) {
      const t0 = performance.now();
      const image = await RawImage.fromBlob(new Blob([png as Uint8Array<ArrayBuffer>]));
      // transformers.js types the processor's output as any; these are the tensors generate() takes.
      const inputs = (await processor(image, '<OD>')) as { input_ids: { dims: number[] } } & Record<string, unknown>;
      const t1 = performance.now();
      calls = [];
      const out = await model.generate({ ...inputs, max_new_tokens: maxNewTokens, num_beams: 1, do_sample: false });
      const t2 = performance.now();
      const ids = (out as { tolist(): bigint[][] }).tolist()[0].map(Number);
      const text = processor.batch_decode([ids], { skip_special_tokens: false })[0];
      processor.post_process_generation(text, '<OD>', [width, height]);
      const t3 = performance.now();

      const vision = calls.filter((c) => c.session === 'vision_encoder').reduce((s, c) => s + (c.end - c.start), 0);
      const encoderCall = calls.find((c) => c.session === 'model');
      if (!encoderCall) throw new Error('transformers.js: no encoder session call seen in generate()');
      // Everything in generate() up to the end of the encoder run (prompt embedding, merge, encoder) minus vision.
      const encoder = encoderCall.end - t1 - vision;
      const promptTokens = inputs.input_ids.dims[1];
      return {
        preprocess: t1 - t0,
        vision,
        encoder,
        decoder: t2 - encoderCall.end,
        postprocess: t3 - t2,
        total: t3 - t0,
        tokens: ids.length - 1,
        ids,
        promptTokens,
      };
    },
    async release() {
      await model.dispose();
    },
  };
}
