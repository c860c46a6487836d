/**
 * Bearer-token authentication. The tokens file has one token per line, optionally followed by
 * whitespace and a client name (used for per-client limits and in logs; default `token-<line>`);
 * blank lines and lines starting with `#` are skipped. Tokens are compared in constant time: every
 * known token's SHA-256 is compared with the presented one's, with no early exit.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Metadata } from '@grpc/grpc-js';

interface Entry {
  digest: Buffer;
  name: string;
}

const digest = (token: string) => createHash('sha256').update(token, 'utf8').digest();

/** Parses the tokens file's text; throws on a file that would lock every client out or holds duplicates. */
export function parseTokens(text: string, source: string): Entry[] {
  const entries: Entry[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [token, ...rest] = line.split(/\s+/);
    if (seen.has(token)) throw new Error(`${source}:${i + 1}: the same token appears twice`);
    seen.add(token);
    entries.push({ digest: digest(token), name: rest.join(' ') || `token-${i + 1}` });
  });
  if (entries.length === 0) throw new Error(`${source}: no tokens (one per line, optionally followed by a client name)`);
  return entries;
}

export class TokenAuth {
  private entries: Entry[];

  constructor(readonly file: string) {
    this.entries = parseTokens(readFileSync(file, 'utf8'), file);
  }

  /** Reads the file again; on an error (thrown) the tokens in use stay. Returns how many tokens are known. */
  reload(): number {
    this.entries = parseTokens(readFileSync(this.file, 'utf8'), this.file);
    return this.entries.length;
  }

  /** The client name of a call's `authorization: Bearer <token>`, or null. */
  identify(metadata: Metadata): string | null {
    const values = metadata.get('authorization');
    if (values.length !== 1 || typeof values[0] !== 'string') return null;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(values[0]);
    if (!m) return null;
    const presented = digest(m[1]);
    let found: string | null = null;
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, presented) && found === null) found = e.name;
    }
    return found;
  }
}
