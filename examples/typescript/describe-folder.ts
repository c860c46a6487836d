/**
 * Captions and detects every image of a folder through florence2-client and prints one JSON line
 * per image: `{"image", "caption", "boxes": [{label, x1, y1, x2, y2}]}`.
 *
 *   npx tsx examples/typescript/describe-folder.ts examples/images
 *
 * The server address comes from --address HOST:PORT, else $FLORENCE2_ADDRESS, else 127.0.0.1:50051.
 */
import { readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Florence2Client, Florence2Error } from 'florence2-client';

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.bmp']);

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ options: { address: { type: 'string' } }, allowPositionals: true });
  if (positionals.length !== 1) {
    process.stderr.write('usage: describe-folder.ts [--address HOST:PORT] FOLDER\n');
    return 2;
  }
  const folder = positionals[0];
  const address = values.address ?? (process.env.FLORENCE2_ADDRESS || '127.0.0.1:50051');
  const images = (await readdir(folder)).filter((name) => IMAGE_EXTENSIONS.has(extname(name).toLowerCase())).sort();

  const client = new Florence2Client({ address, defaultDeadlineMs: 60_000 });
  try {
    await client.waitForReady(10_000);
    for (const name of images) {
      const path = join(folder, name);
      // The two calls of one image go out together; the server's scheduler may batch them.
      const [caption, detection] = await Promise.all([client.caption(path), client.detect(path)]);
      const boxes = detection.boxes.map(({ label, x1, y1, x2, y2 }) => ({
        label,
        x1: Math.round(x1),
        y1: Math.round(y1),
        x2: Math.round(x2),
        y2: Math.round(y2),
      }));
      process.stdout.write(JSON.stringify({ image: path, caption: caption.text, boxes }) + '\n');
    }
    return 0;
  } catch (err) {
    // Florence2Error subclasses name the gRPC status, e.g. InvalidArgumentError for a bad image.
    process.stderr.write(`${err instanceof Florence2Error ? `${err.name}: ` : ''}${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

// A reader that stops early (`| head -1`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));

void main().then((code) => process.exit(code));
