/**
 * Sends fuzz cases to the server as raw bytes (a generic client whose serializers are the identity,
 * so nothing is parsed on the way), checks each status against the case's allowlist, and keeps the
 * outcome table (family × status → count) and the failures.
 */
import * as grpc from '@grpc/grpc-js';
import { codec, RPCS, type Rpc, SERVICE_PATH, type Status } from './requests';

const identity = (b: Buffer) => b;

/** A client of every Florence2 method that sends and receives bytes as they are. */
export type RawClient = grpc.Client & Record<Rpc, Function>;

const RawFlorence2 = grpc.makeGenericClientConstructor(
  Object.fromEntries(
    RPCS.map((rpc) => [
      rpc,
      {
        path: SERVICE_PATH + rpc,
        requestStream: rpc === 'Stream',
        responseStream: rpc === 'Stream',
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
        originalName: rpc,
      },
    ]),
  ),
  'Florence2',
);

/** A raw client; with `gzip` every request message is gzip-compressed ('grpc.default_compression_algorithm': 2). */
export function rawClient(address: string, options: { gzip?: boolean } = {}): RawClient {
  return new RawFlorence2(address, grpc.credentials.createInsecure(), {
    // The client must not refuse what the server is there to refuse.
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
    ...(options.gzip ? { 'grpc.default_compression_algorithm': 2 } : {}),
  }) as unknown as RawClient;
}

/** One unary call with raw bytes; resolves with the response bytes. */
export function rawCall(client: RawClient, rpc: Exclude<Rpc, 'Stream'>, bytes: Buffer, deadlineMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client[rpc](bytes, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, out?: Buffer) =>
      err ? reject(err) : resolve(out!),
    ),
  );
}

/** One stream message and what it may get in band (keyed by the request_id it decodes to). */
export interface StreamMessage {
  bytes: Buffer;
  /** The request_id the server answers it under, or null when the message does not decode. */
  id: string | null;
  allowed: Status[];
  /** The server may refuse it on the wire (INVALID_ARGUMENT) under whatever request_id it read, or end the call. */
  lenient?: boolean;
}

interface CaseBase {
  family: string;
  /** The RPC (and oneof member or variant), for coverage: e.g. `Run.segment`. */
  target: string;
  /** A short description of the input, printed with a failure. */
  what: string;
  gzip?: boolean;
}
export interface UnaryCase extends CaseBase {
  kind: 'unary';
  rpc: Exclude<Rpc, 'Stream'>;
  bytes: Buffer;
  allowed: Status[];
  /** Checks an OK response (decoded); returns a problem or null. */
  checkOk?: (response: any) => string | null;
}
export interface StreamCase extends CaseBase {
  kind: 'stream';
  messages: StreamMessage[];
  /** The call's own status. */
  callAllowed: Status[];
}
export type FuzzCase = UnaryCase | StreamCase;

export interface Failure {
  family: string;
  index: number;
  target: string;
  what: string;
  expected: string;
  got: string;
  details: string;
  ms: number;
}

/** What one case got. */
interface Result {
  status: Status;
  details: string;
  inBand: Status[];
  problems: string[];
  ms: number;
}

const statusName = (code: number): Status => (grpc.status[code] as Status | undefined) ?? (`CODE_${code}` as Status);

function callUnary(client: RawClient, c: UnaryCase, deadlineMs: number): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    client[c.rpc](c.bytes, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, out?: Buffer) => {
      const ms = Date.now() - started;
      if (err) return resolve({ status: statusName(err.code), details: err.details, inBand: [], problems: [], ms });
      const problems: string[] = [];
      try {
        const decoded = codec.decodeResponse(c.rpc, out!);
        const p = c.checkOk?.(decoded);
        if (p) problems.push(p);
      } catch (e) {
        problems.push(`the OK response does not decode: ${(e as Error).message}`);
      }
      resolve({ status: 'OK', details: '', inBand: [], problems, ms });
    });
  });
}

function callStream(client: RawClient, c: StreamCase, deadlineMs: number): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    const call: grpc.ClientDuplexStream<Buffer, Buffer> = client.Stream(new grpc.Metadata(), { deadline: Date.now() + deadlineMs });
    const responses: { id: string; status: Status; message: string }[] = [];
    const problems: string[] = [];
    call.on('data', (b: Buffer) => {
      try {
        const r = codec.decodeResponse('Stream', b);
        if (r.outcome === 'error') responses.push({ id: r.request_id, status: statusName(r.error.code), message: r.error.message });
        else if (r.outcome === 'result') responses.push({ id: r.request_id, status: 'OK', message: '' });
        else problems.push(`a stream response without an outcome for ${JSON.stringify(r.request_id).slice(0, 40)}`);
      } catch (e) {
        problems.push(`a stream response does not decode: ${(e as Error).message}`);
      }
    });
    // A stream that the server ends early (a status while we still write) must not throw here.
    call.on('error', () => {});
    call.on('status', (s: grpc.StatusObject) => {
      const ms = Date.now() - started;
      const status = statusName(s.code);
      // In-band outcomes: each response's code must be allowed for its request_id.
      const allowedById = new Map<string, Set<Status>>();
      const sent = new Map<string, number>();
      for (const m of c.messages) {
        if (m.id === null) continue;
        const set = allowedById.get(m.id) ?? new Set<Status>();
        m.allowed.forEach((a) => set.add(a));
        allowedById.set(m.id, set);
        sent.set(m.id, (sent.get(m.id) ?? 0) + 1);
      }
      // A duplicate request_id while the first is in flight is refused in band.
      for (const [id, n] of sent) if (n > 1) allowedById.get(id)!.add('INVALID_ARGUMENT');
      // A message refused on the wire is answered under the request_id the scan read, if any.
      const lenient = c.messages.some((m) => m.id === null || m.lenient);
      const got = new Map<string, number>();
      for (const r of responses) {
        got.set(r.id, (got.get(r.id) ?? 0) + 1);
        const allowed = lenient ? new Set<Status>([...(allowedById.get(r.id) ?? []), 'INVALID_ARGUMENT']) : allowedById.get(r.id);
        if (!allowed) problems.push(`an in-band answer for an id never sent: ${JSON.stringify(r.id).slice(0, 40)}`);
        else if (!allowed.has(r.status))
          problems.push(
            `in band for id ${JSON.stringify(r.id).slice(0, 40)}: ${r.status} (allowed ${[...allowed].join('|')}): ${r.message.slice(0, 300)}`,
          );
      }
      // A stream that ended OK answered every request it could read, exactly once.
      if (status === 'OK' && !lenient) {
        for (const [id, n] of sent)
          if ((got.get(id) ?? 0) !== n) problems.push(`id ${JSON.stringify(id).slice(0, 40)} sent ${n}x, answered ${got.get(id) ?? 0}x`);
      }
      resolve({ status, details: s.details, inBand: responses.map((r) => r.status), problems, ms });
    });
    for (const m of c.messages) call.write(m.bytes);
    call.end();
  });
}

/** The outcome table and failures of a run. */
export class Outcomes {
  readonly table = new Map<string, Map<string, number>>();
  readonly failures: Failure[] = [];
  readonly coverage = new Map<string, Set<string>>();
  readonly slowest = new Map<string, { ms: number; what: string }>();
  /** Cases per allowlist (`OK`, `INVALID_ARGUMENT`, `OK|INVALID_ARGUMENT`, ...): how exact the oracle was. */
  readonly allowlists = new Map<string, number>();
  total = 0;

  count(family: string, status: string): void {
    const row = this.table.get(family) ?? new Map<string, number>();
    row.set(status, (row.get(status) ?? 0) + 1);
    this.table.set(family, row);
  }

  /** Runs one case and records it. */
  async run(client: RawClient, c: FuzzCase, index: number, deadlineMs: number): Promise<void> {
    const r = c.kind === 'unary' ? await callUnary(client, c, deadlineMs) : await callStream(client, c, deadlineMs);
    this.total++;
    this.count(c.family, r.status);
    for (const s of r.inBand) this.count(`${c.family} (stream, in band)`, s);
    const cov = this.coverage.get(c.family) ?? new Set<string>();
    cov.add(c.target);
    this.coverage.set(c.family, cov);
    const slow = this.slowest.get(c.family);
    if (!slow || r.ms > slow.ms) this.slowest.set(c.family, { ms: r.ms, what: `${c.target} ${c.what}` });
    const allowed = c.kind === 'unary' ? c.allowed : c.callAllowed;
    const key = allowed.join('|');
    this.allowlists.set(key, (this.allowlists.get(key) ?? 0) + 1);
    const problems = [...r.problems];
    if (!allowed.includes(r.status)) problems.unshift(`status ${r.status} not in ${allowed.join('|')}`);
    if (problems.length > 0) {
      this.failures.push({
        family: c.family,
        index,
        target: c.target,
        what: c.what,
        expected: allowed.join('|'),
        got: r.status,
        details: `${problems.join('; ')}${r.details ? ` [details: ${r.details.slice(0, 300)}]` : ''}`,
        ms: r.ms,
      });
    }
  }

  /** The table as compact text: one row per family, one column per status seen. */
  format(): string {
    const statuses = [...new Set([...this.table.values()].flatMap((row) => [...row.keys()]))].sort((a, b) =>
      a === 'OK' ? -1 : b === 'OK' ? 1 : a.localeCompare(b),
    );
    const families = [...this.table.keys()];
    const w0 = Math.max(6, ...families.map((f) => f.length));
    const widths = statuses.map((s) => Math.max(s.length, 5));
    const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w0) : c.padStart(widths[i - 1]))).join('  ');
    const rows = [line(['family', ...statuses])];
    for (const f of families) rows.push(line([f, ...statuses.map((s) => String(this.table.get(f)!.get(s) ?? 0))]));
    return rows.join('\n');
  }
}

/** Runs `cases` with at most `concurrency` in flight, calling `between` every `every` cases (the canary). */
export async function runAll(
  outcomes: Outcomes,
  clientFor: (c: FuzzCase) => RawClient,
  cases: FuzzCase[],
  options: { concurrency: number; deadlineMs: number; every?: number; between?: () => Promise<void> },
): Promise<void> {
  let next = 0;
  let sinceCanary = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      if (options.between && options.every && ++sinceCanary >= options.every) {
        sinceCanary = 0;
        await options.between();
      }
      await outcomes.run(clientFor(cases[i]), cases[i], i, options.deadlineMs);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, cases.length) }, worker));
}
