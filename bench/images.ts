/**
 * Deterministic benchmark images: gradients, a checkerboard and seeded noise, encoded as PNG with
 * sharp. The same bytes go to every implementation.
 */
import { Rng } from '../tools/synth/rng';
import sharp from 'sharp';

export interface BenchImage {
  name: string;
  width: number;
  height: number;
  png: Buffer;
}

/** Reproducible noise from the synth tool's seeded generator. */
const mulberry32 = (seed: number): (() => number) => {
  const rng = new Rng(seed, 'bench-image');
  return () => rng.next();
};

async function makeImage(width: number, height: number, seed: number): Promise<BenchImage> {
  const rand = mulberry32(seed);
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const checker = ((x >> 5) + (y >> 5)) & 1 ? 60 : -60;
      const noise = (rand() - 0.5) * 50;
      rgb[i] = Math.max(0, Math.min(255, (x * 255) / width + noise));
      rgb[i + 1] = Math.max(0, Math.min(255, (y * 255) / height + checker + noise));
      rgb[i + 2] = Math.max(0, Math.min(255, 128 + 100 * Math.sin((x + y * seed) / 40) + noise));
    }
  }
  const png = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  return { name: `${width}x${height}`, width, height, png };
}

/** The two benchmark images: 640×480 and 1280×720. */
export async function benchImages(): Promise<BenchImage[]> {
  return [await makeImage(640, 480, 1), await makeImage(1280, 720, 2)];
}
