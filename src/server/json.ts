/**
 * proto3 JSON ↔ the binary messages of the Florence2 service, for the HTTP/JSON front end.
 * @bufbuild/protobuf does the mapping (both field spellings accepted, lowerCamelCase written, bytes
 * as base64, enums by name, 64-bit integers as strings, unknown keys refused) over the descriptor set
 * that reflection serves. The binary form then goes through the gRPC method's own guarded
 * deserializer (http-api.ts), so a JSON request meets the same wire scan and limits as a gRPC one.
 */
import { type DescMessage, type DescService, type FileRegistry, fromBinary, fromJson, toBinary, toJson } from '@bufbuild/protobuf';
import { InvalidArgumentError } from '../common/errors';

/** What a JSON request body is named as in errors when no field can be blamed. */
export const BODY_FIELD = 'body';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The path (proto field names, `[i]` for list items) from the root to the first object of message
 * type `typeName` for which `pick` names a key, e.g. `detect.options.num_beams`.
 */
function locate(
  desc: DescMessage,
  value: unknown,
  path: string,
  typeName: string,
  pick: (desc: DescMessage, obj: Record<string, unknown>) => string | undefined,
): string | undefined {
  if (!isObject(value)) return undefined;
  const join = (name: string) => (path === '' ? name : `${path}.${name}`);
  if (desc.typeName === typeName) {
    const key = pick(desc, value);
    if (key !== undefined) return join(key);
  }
  for (const f of desc.fields) {
    const v = value[f.jsonName] ?? value[f.name];
    if (f.fieldKind === 'message') {
      const hit = locate(f.message, v, join(f.name), typeName, pick);
      if (hit) return hit;
    } else if (f.fieldKind === 'list' && f.listKind === 'message' && Array.isArray(v)) {
      for (const [i, item] of v.entries()) {
        const hit = locate(f.message, item, `${join(f.name)}[${i}]`, typeName, pick);
        if (hit) return hit;
      }
    } else if (f.fieldKind === 'map' && f.mapKind === 'message' && isObject(v)) {
      for (const [k, item] of Object.entries(v)) {
        const hit = locate(f.message, item, `${join(f.name)}[${JSON.stringify(k)}]`, typeName, pick);
        if (hit) return hit;
      }
    }
  }
  return undefined;
}

/**
 * A @bufbuild/protobuf JSON error → INVALID_ARGUMENT naming the request field. Its messages name the
 * message type and field (`cannot decode field florence2.v1.Options.num_beams from JSON: ...`,
 * `cannot decode message florence2.v1.DetectRequest from JSON: key "foo" is unknown`); the path from
 * the root is found in the body itself.
 */
function jsonError(root: DescMessage, body: unknown, err: Error): InvalidArgumentError {
  const byField = /^cannot decode field ([\w.]+)\.(\w+) from JSON: (.*)$/s.exec(err.message);
  if (byField) {
    const [, typeName, fieldName, reason] = byField;
    const field =
      locate(root, body, '', typeName, (desc, obj) => {
        const f = desc.fields.find((x) => x.name === fieldName);
        return f && (f.jsonName in obj || f.name in obj) ? f.name : undefined;
      }) ?? fieldName;
    return new InvalidArgumentError(field, `\`${field}\`: ${reason}`);
  }
  const unknownKey = /^cannot decode message ([\w.]+) from JSON: key "(.*)" is unknown$/s.exec(err.message);
  if (unknownKey) {
    const [, typeName, key] = unknownKey;
    const field = locate(root, body, '', typeName, (_desc, obj) => (key in obj ? key : undefined)) ?? key;
    return new InvalidArgumentError(field, `\`${field}\` is not a field of ${typeName}`);
  }
  const byEnum = /^cannot decode enum ([\w.]+) from JSON: (.*)$/s.exec(err.message);
  if (byEnum) {
    const [, typeName, value] = byEnum;
    // Found in any message: the pick sees the message, so match every type through its fields.
    let field: string | undefined;
    const visit = (desc: DescMessage, obj: unknown, path: string): void => {
      if (field !== undefined || !isObject(obj)) return;
      for (const f of desc.fields) {
        const v = obj[f.jsonName] ?? obj[f.name];
        const name = path === '' ? f.name : `${path}.${f.name}`;
        if (v === undefined) continue;
        if ((f.fieldKind === 'enum' || (f.fieldKind === 'list' && f.listKind === 'enum')) && f.enum.typeName === typeName) field ??= name;
        else if (f.fieldKind === 'message') visit(f.message, v, name);
        else if (f.fieldKind === 'list' && f.listKind === 'message' && Array.isArray(v))
          v.forEach((item, i) => visit(f.message, item, `${name}[${i}]`));
      }
    };
    visit(root, body, '');
    const at = field ?? BODY_FIELD;
    return new InvalidArgumentError(at, `\`${at}\` has no such value: ${value} (allowed: ${registryEnumValues(root, typeName)})`);
  }
  const byMessage = /^cannot decode message ([\w.]+) from JSON: (.*)$/s.exec(err.message);
  const reason = byMessage ? `expected a JSON object for ${byMessage[1]}, got ${byMessage[2]}` : err.message;
  return new InvalidArgumentError(BODY_FIELD, `\`${BODY_FIELD}\`: ${reason}`);
}

/** The value names of an enum reachable from `root`, for an error message. */
function registryEnumValues(root: DescMessage, typeName: string): string {
  const seen = new Set<DescMessage>();
  const find = (desc: DescMessage): string | undefined => {
    if (seen.has(desc)) return undefined;
    seen.add(desc);
    for (const f of desc.fields) {
      if ((f.fieldKind === 'enum' || (f.fieldKind === 'list' && f.listKind === 'enum')) && f.enum.typeName === typeName)
        return f.enum.values.map((v) => v.name).join(', ');
      if (f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message')) {
        const hit = find(f.message);
        if (hit) return hit;
      }
    }
    return undefined;
  };
  return find(root) ?? 'see the proto';
}

export class JsonCodec {
  private readonly methods: Map<string, { input: DescMessage; output: DescMessage }>;

  constructor(registry: FileRegistry, serviceName: string) {
    const service: DescService | undefined = registry.getService(serviceName);
    if (!service) throw new Error(`no service ${serviceName} in the descriptor set`);
    this.methods = new Map(service.methods.map((m) => [m.name, { input: m.input, output: m.output }]));
  }

  private method(rpc: string) {
    const m = this.methods.get(rpc);
    if (!m) throw new Error(`no method ${rpc}`);
    return m;
  }

  /** A JSON request body → its binary message; an empty body is the empty message. */
  decodeRequest(rpc: string, text: string): Uint8Array {
    const { input } = this.method(rpc);
    let body: unknown = {};
    if (text.trim() !== '') {
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new InvalidArgumentError(BODY_FIELD, `\`${BODY_FIELD}\` is not JSON: ${(err as Error).message}`);
      }
    }
    try {
      // Typed as JsonValue by the library; JSON.parse only makes JSON values.
      return toBinary(input, fromJson(input, body as never));
    } catch (err) {
      throw jsonError(input, body, err as Error);
    }
  }

  /**
   * A binary response → proto3 JSON. Fields at their default value are written too (a box at x1 = 0
   * keeps its `x1`), which proto3 JSON allows and readers of partial objects need.
   */
  encodeResponse(rpc: string, binary: Uint8Array): string {
    const { output } = this.method(rpc);
    return JSON.stringify(toJson(output, fromBinary(output, binary), { alwaysEmitImplicit: true }));
  }
}
