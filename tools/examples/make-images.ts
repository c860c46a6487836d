/**
 * `npm run examples:images`: draws the sample images of examples/images (simple scenes, shapes and
 * text as SVG, rendered by sharp), so the README's commands and the examples have images the
 * project made itself. The outputs are committed; run this again only to change them.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';

const OUT = resolve(__dirname, '../../examples/images');

/** A side view of a car: body, cabin, windows and wheels, with its top-left corner at (x, y) and the given width. */
function car(x: number, y: number, w: number, colour: string): string {
  const h = w * 0.3;
  const wheel = w * 0.09;
  return `<g>
    <rect x="${x}" y="${y + h * 0.35}" width="${w}" height="${h * 0.45}" rx="${h * 0.12}" fill="${colour}"/>
    <path d="M ${x + w * 0.2} ${y + h * 0.36} L ${x + w * 0.3} ${y} L ${x + w * 0.68} ${y} L ${x + w * 0.8} ${y + h * 0.36} Z" fill="${colour}"/>
    <path d="M ${x + w * 0.27} ${y + h * 0.34} L ${x + w * 0.33} ${y + h * 0.08} L ${x + w * 0.47} ${y + h * 0.08} L ${x + w * 0.47} ${y + h * 0.34} Z" fill="#cfe8f5"/>
    <path d="M ${x + w * 0.51} ${y + h * 0.34} L ${x + w * 0.51} ${y + h * 0.08} L ${x + w * 0.65} ${y + h * 0.08} L ${x + w * 0.73} ${y + h * 0.34} Z" fill="#cfe8f5"/>
    <circle cx="${x + w * 0.22}" cy="${y + h * 0.8}" r="${wheel}" fill="#222"/>
    <circle cx="${x + w * 0.78}" cy="${y + h * 0.8}" r="${wheel}" fill="#222"/>
    <circle cx="${x + w * 0.22}" cy="${y + h * 0.8}" r="${wheel * 0.45}" fill="#999"/>
    <circle cx="${x + w * 0.78}" cy="${y + h * 0.8}" r="${wheel * 0.45}" fill="#999"/>
  </g>`;
}

/** A person: head, body, arms and legs, standing at (x, y) (the top of the head), h tall. */
function person(x: number, y: number, h: number, colour: string): string {
  const s = h / 10;
  return `<g stroke="${colour}" stroke-width="${s * 0.9}" stroke-linecap="round" fill="none">
    <circle cx="${x}" cy="${y + s}" r="${s}" fill="#e0b090" stroke="none"/>
    <line x1="${x}" y1="${y + 2.2 * s}" x2="${x}" y2="${y + 6 * s}"/>
    <line x1="${x}" y1="${y + 3 * s}" x2="${x - 1.6 * s}" y2="${y + 5 * s}"/>
    <line x1="${x}" y1="${y + 3 * s}" x2="${x + 1.6 * s}" y2="${y + 5 * s}"/>
    <line x1="${x}" y1="${y + 6 * s}" x2="${x - 1.2 * s}" y2="${y + 9.5 * s}"/>
    <line x1="${x}" y1="${y + 6 * s}" x2="${x + 1.2 * s}" y2="${y + 9.5 * s}"/>
  </g>`;
}

const svg = (width: number, height: number, body: string) =>
  Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${body}</svg>`);

/** A parking lot seen from the side: two cars in front of a wall, white bay lines. */
const parking = svg(
  1280,
  720,
  `<rect width="1280" height="720" fill="#9db8cc"/>
   <rect y="180" width="1280" height="200" fill="#b9a58c"/>
   <rect y="380" width="1280" height="340" fill="#5b5f63"/>
   ${[80, 400, 720, 1040].map((x) => `<rect x="${x}" y="600" width="12" height="120" fill="#eee"/>`).join('')}
   ${car(110, 330, 480, '#c0392b')}
   ${car(700, 360, 420, '#2e86c1')}`,
);

/** A street: a road, a pavement, a car, a person and a tree. */
const street = svg(
  640,
  480,
  `<rect width="640" height="480" fill="#bfe0f2"/>
   <circle cx="560" cy="70" r="36" fill="#f7dc6f"/>
   <rect y="300" width="640" height="40" fill="#b0b0b0"/>
   <rect y="340" width="640" height="140" fill="#444"/>
   ${[20, 180, 340, 500].map((x) => `<rect x="${x}" y="405" width="90" height="8" fill="#f4f4f4"/>`).join('')}
   <rect x="520" y="190" width="18" height="115" fill="#7b5432"/>
   <circle cx="529" cy="170" r="55" fill="#3b8d3b"/>
   ${person(455, 200, 105, '#34495e')}
   ${car(40, 250, 380, '#27ae60')}`,
);

/** A shop sign with two lines of text, for OCR. */
const sign = svg(
  640,
  360,
  `<rect width="640" height="360" fill="#f2efe6"/>
   <rect x="60" y="70" width="520" height="220" rx="18" fill="#1f3a5f"/>
   <text x="320" y="165" font-family="DejaVu Sans" font-weight="bold" font-size="64" fill="#ffffff" text-anchor="middle">OPEN DAILY</text>
   <text x="320" y="245" font-family="DejaVu Sans" font-size="44" fill="#f7dc6f" text-anchor="middle">8:00 - 20:00</text>`,
);

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const outputs: [string, sharp.Sharp][] = [
    ['parking.png', sharp(parking).png({ compressionLevel: 9, palette: true })],
    ['street.jpg', sharp(street).flatten().jpeg({ quality: 80, mozjpeg: true })],
    ['sign.png', sharp(sign).png({ compressionLevel: 9, palette: true })],
  ];
  for (const [name, image] of outputs) {
    const file = join(OUT, name);
    await image.toFile(file);
    process.stdout.write(`${file}: ${statSync(file).size} bytes\n`);
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
