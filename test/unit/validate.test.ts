/** Request validation on the main thread: the image probe it shares with the worker refuses bad images before they queue. */
import { strict as assert } from 'node:assert';
import sharp from 'sharp';
import { InvalidArgumentError } from '../../src/common/errors';
import { validateDetect, validateRun, type RequestLimits } from '../../src/server/validate';
import { decodeImage, ImageDecodeError } from '../../src/florence/preprocess';

const LIMITS: RequestLimits = {
  maxImagePixels: 10_000,
  maxNumBeams: 4,
  maxNewTokens: 64,
  maxTextChars: 100,
  maxClasses: 3,
  maxRequestTokens: 10_000,
};
const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');

async function invalid(p: Promise<unknown>, field: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, String(err));
    assert.equal(err.field, field);
    assert.match(err.message, message);
    return true;
  });
}

describe('request validation: images', () => {
  it('refuses SVG at validation, as the worker would', async () => {
    await invalid(
      validateDetect({ image: { data: SVG } } as never, LIMITS),
      'image.data',
      /`image\.data` is not a decodable image: Image format 'svg' is not supported/,
    );
    await assert.rejects(
      decodeImage(SVG, { maxPixels: LIMITS.maxImagePixels }),
      (e: unknown) => e instanceof ImageDecodeError && e.reason === 'unsupported_format',
    );
  });

  it('refuses an image over the pixel limit from its header, naming the field under the oneof', async () => {
    const big = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    await invalid(
      validateRun({ task: 'detect', detect: { image: { data: big } } } as never, LIMITS),
      'detect.image.data',
      /200x100 = 20000 pixels; the limit is 10000 pixels/,
    );
  });

  it('accepts an allowed format within the limit and passes the bytes on without a copy', async () => {
    const ok = await sharp({ create: { width: 50, height: 40, channels: 3, background: '#808080' } })
      .webp()
      .toBuffer();
    const v = await validateDetect({ image: { data: ok } } as never, LIMITS);
    assert.equal(v.task, '<OD>');
    assert.equal(v.requests[0].image.buffer, ok.buffer);
  });
});
