/**
 * The OpenAPI 3.1 document of the HTTP/JSON API, made from the descriptor set that `npm run gen`
 * builds from proto/ (src/generated/florence2.binpb), with the proto comments as descriptions.
 * `npm run gen` writes it to src/generated/openapi.json, which the server serves; `gen:check` fails
 * when the committed file differs from what the proto gives.
 *
 *   tsx tools/gen/openapi.ts [--check]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type DescEnum,
  type DescEnumValue,
  type DescField,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
  type FileRegistry,
  ScalarType,
} from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { generatedRegistry } from '../../src/server/descriptors';
import { HTTP_STATUS } from '../../src/server/http-api';

const SERVICE = 'florence2.v1.Florence2';
export const OPENAPI_FILE = join(__dirname, '../../src/generated/openapi.json');

type Schema = Record<string, unknown>;
type Described = DescMessage | DescEnum | DescEnumValue | DescField | DescService | DescMethod;

/** The source path of a descriptor in its file (descriptor.proto's field numbers), for its comments. */
function sourcePath(desc: Described): number[] {
  const file = desc.kind === 'field' || desc.kind === 'rpc' || desc.kind === 'enum_value' ? null : desc.file;
  switch (desc.kind) {
    case 'message':
      return desc.parent
        ? [...sourcePath(desc.parent), 3, desc.parent.proto.nestedType.indexOf(desc.proto)]
        : [4, file!.proto.messageType.indexOf(desc.proto)];
    case 'enum':
      return desc.parent
        ? [...sourcePath(desc.parent), 4, desc.parent.proto.enumType.indexOf(desc.proto)]
        : [5, file!.proto.enumType.indexOf(desc.proto)];
    case 'enum_value':
      return [...sourcePath(desc.parent), 2, desc.parent.proto.value.indexOf(desc.proto)];
    case 'field':
      return [...sourcePath(desc.parent), 2, desc.parent.proto.field.indexOf(desc.proto)];
    case 'service':
      return [6, file!.proto.service.indexOf(desc.proto)];
    case 'rpc':
      return [...sourcePath(desc.parent), 2, desc.parent.proto.method.indexOf(desc.proto)];
  }
}

function fileOf(desc: Described): DescFile {
  if (desc.kind === 'field' || desc.kind === 'enum_value') return desc.parent.file;
  if (desc.kind === 'rpc') return desc.parent.file;
  return desc.file;
}

/** The leading comment of a descriptor, as written in the .proto (trimmed), or undefined. */
function comment(desc: Described): string | undefined {
  const path = sourcePath(desc).join(',');
  const location = fileOf(desc).proto.sourceCodeInfo?.location.find((l) => l.path.join(',') === path);
  const text = (location?.leadingComments || location?.trailingComments || '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ');
  return text === '' ? undefined : text;
}

const described = (schema: Schema, text: string | undefined): Schema => (text ? { ...schema, description: text } : schema);

/** The proto3 JSON form of a scalar. */
function scalarSchema(t: ScalarType): Schema {
  switch (t) {
    case ScalarType.DOUBLE:
      return { type: 'number', format: 'double' };
    case ScalarType.FLOAT:
      return { type: 'number', format: 'float' };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: 'integer', format: 'int32' };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: 'integer', format: 'uint32', minimum: 0 };
    // 64-bit integers are decimal strings in proto3 JSON (readers also accept numbers).
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: ['string', 'integer'], format: 'int64', pattern: '^-?[0-9]+$' };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: ['string', 'integer'], format: 'uint64', pattern: '^[0-9]+$' };
    case ScalarType.BOOL:
      return { type: 'boolean' };
    case ScalarType.STRING:
      return { type: 'string' };
    case ScalarType.BYTES:
      return { type: 'string', format: 'byte', contentEncoding: 'base64' };
  }
}

const schemaName = (typeName: string) => typeName.replace(/^florence2\.v1\./, '');
const ref = (typeName: string): Schema => ({ $ref: `#/components/schemas/${schemaName(typeName)}` });

function fieldSchema(f: DescField, wanted: Set<DescMessage | DescEnum>): Schema {
  const single = (kind: 'scalar' | 'enum' | 'message', scalar?: ScalarType, e?: DescEnum, m?: DescMessage): Schema => {
    if (kind === 'enum') {
      wanted.add(e!);
      return ref(e!.typeName);
    }
    if (kind === 'message') {
      wanted.add(m!);
      return ref(m!.typeName);
    }
    return scalarSchema(scalar!);
  };
  switch (f.fieldKind) {
    case 'scalar':
      return single('scalar', f.scalar);
    case 'enum':
      return single('enum', undefined, f.enum);
    case 'message':
      return single('message', undefined, undefined, f.message);
    case 'list':
      return {
        type: 'array',
        items:
          f.listKind === 'scalar'
            ? single('scalar', f.scalar)
            : f.listKind === 'enum'
              ? single('enum', undefined, f.enum)
              : single('message', undefined, undefined, f.message),
      };
    case 'map':
      return {
        type: 'object',
        additionalProperties:
          f.mapKind === 'scalar'
            ? single('scalar', f.scalar)
            : f.mapKind === 'enum'
              ? single('enum', undefined, f.enum)
              : single('message', undefined, undefined, f.message),
      };
  }
}

function messageSchema(m: DescMessage, wanted: Set<DescMessage | DescEnum>): Schema {
  const properties: Record<string, Schema> = {};
  for (const f of m.fields) {
    const own = fieldSchema(f, wanted);
    const text = [
      comment(f),
      f.oneof ? `One of \`${f.oneof.name}\`: set at most one of ${f.oneof.fields.map((o) => o.jsonName).join(', ')}.` : '',
    ]
      .filter(Boolean)
      .join(' ');
    // A $ref with siblings is allowed in 3.1; the proto field name is accepted too, as proto3 JSON says.
    properties[f.jsonName] = described(own, text || undefined);
  }
  return described({ type: 'object', properties }, comment(m));
}

function enumSchema(e: DescEnum): Schema {
  const values = e.values.map((v) => `\`${v.name}\`${comment(v) ? `: ${comment(v)}` : ''}`);
  return described(
    { type: 'string', enum: e.values.map((v) => v.name) },
    [comment(e), `Values: ${values.join('; ')}.`].filter(Boolean).join(' '),
  );
}

const errorSchema: Schema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'status', 'message'],
      properties: {
        code: { type: 'integer', description: 'The HTTP status.' },
        status: { type: 'string', description: 'The gRPC status name (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...).' },
        message: { type: 'string' },
        field: { type: 'string', description: 'The request field at fault (proto field names, dotted), on INVALID_ARGUMENT.' },
        retryAfterMs: { type: 'integer', description: 'When a retry may succeed (also in the Retry-After header, in seconds).' },
      },
    },
  },
};

/** The gRPC statuses the server sends, by HTTP status, for the responses table. */
function errorResponses(): Record<string, Schema> {
  const byHttp = new Map<number, string[]>();
  const sent = [
    'INVALID_ARGUMENT',
    'UNAUTHENTICATED',
    'RESOURCE_EXHAUSTED',
    'CANCELLED',
    'INTERNAL',
    'UNAVAILABLE',
    'DEADLINE_EXCEEDED',
  ] as const;
  for (const name of sent) {
    const http = HTTP_STATUS[grpc.status[name]];
    byHttp.set(http, [...(byHttp.get(http) ?? []), name]);
  }
  const extra: Record<number, string> = {
    404: 'No such route.',
    405: 'Wrong HTTP method.',
    413: 'The body is over --http-max-body-bytes, or its message over --max-message-bytes.',
    415: 'The body is not application/json.',
  };
  const out: Record<string, Schema> = {};
  for (const code of [...new Set([...byHttp.keys(), ...Object.keys(extra).map(Number)])].sort((a, b) => a - b)) {
    const statuses = byHttp.get(code);
    out[String(code)] = {
      description: [statuses ? statuses.join(' or ') : '', extra[code] ?? ''].filter(Boolean).join('. '),
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  return out;
}

export function openApiDocument(registry: FileRegistry, version: string): Schema {
  const service = registry.getService(SERVICE);
  if (!service) throw new Error(`no ${SERVICE} in the descriptor set`);
  const wanted = new Set<DescMessage | DescEnum>();
  const paths: Record<string, Schema> = {};
  for (const m of service.methods) {
    if (m.methodKind !== 'unary') continue;
    wanted.add(m.input);
    wanted.add(m.output);
    paths[`/v1/${m.name}`] = {
      post: described(
        {
          operationId: m.name,
          summary: `${SERVICE}/${m.name}`,
          parameters: [
            {
              name: 'grpc-timeout',
              in: 'header',
              required: false,
              description: 'Deadline in gRPC form (`2S`, `500m`); the server also bounds requests by --max-request-ms.',
              schema: { type: 'string', pattern: '^[0-9]{1,8}[HMSmun]$' },
            },
          ],
          requestBody: {
            required: false,
            content: { 'application/json': { schema: ref(m.input.typeName) } },
          },
          responses: {
            '200': { description: 'OK', content: { 'application/json': { schema: ref(m.output.typeName) } } },
            ...errorResponses(),
          },
        },
        comment(m),
      ),
    };
  }
  paths['/openapi.json'] = {
    get: {
      operationId: 'OpenApi',
      summary: 'This document.',
      responses: { '200': { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
  };
  // Messages and enums reachable from the RPCs, each once, sorted by name.
  const schemas: Record<string, Schema> = { Error: errorSchema };
  const done = new Set<DescMessage | DescEnum>();
  while (done.size < wanted.size) {
    for (const d of [...wanted]) {
      if (done.has(d)) continue;
      done.add(d);
      schemas[schemaName(d.typeName)] = d.kind === 'message' ? messageSchema(d, wanted) : enumSchema(d);
    }
  }
  const sorted = Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b)));
  return {
    openapi: '3.1.0',
    info: {
      title: 'Florence-2 server: HTTP/JSON API',
      version,
      description: `Every unary RPC of ${SERVICE} as POST /v1/<Rpc>, with the proto3 JSON mapping: image bytes in base64, enums by name, 64-bit integers as strings; fields may be spelt lowerCamelCase (as written) or as in the proto. Generated from proto/ by tools/gen/openapi.ts.`,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    paths,
    components: {
      schemas: sorted,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Needed when the server runs with --auth-tokens-file.' } },
    },
    security: [{}, { bearer: [] }],
  };
}

/** The document as committed: 2-space JSON and a final newline. */
export function openApiText(): string {
  const version = (JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: string }).version;
  return `${JSON.stringify(openApiDocument(generatedRegistry('florence2'), version), null, 2)}\n`;
}

if (require.main === module) {
  const text = openApiText();
  if (process.argv.includes('--check')) {
    const committed = readFileSync(OPENAPI_FILE, 'utf8');
    if (committed !== text) {
      console.error(`${OPENAPI_FILE} differs from what proto/ gives: run npm run gen and commit`);
      process.exit(1);
    }
    console.log('openapi.json is up to date');
  } else {
    writeFileSync(OPENAPI_FILE, text);
  }
}
