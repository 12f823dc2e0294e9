/**
 * Firecracker's API contract for the fake: the vendored swagger (test/fixtures/firecracker-swagger.yaml) plus what
 * only the Rust structs say (field order, `deny_unknown_fields`, integer widths, enum variant order). Bodies are
 * decoded the way serde_json decodes them into those structs, with serde_json's error texts and positions, so a
 * refusal reads exactly like Firecracker's. Pinned sources: firecracker@81b38b9d, serde_json `src/de.rs`/`src/error.rs`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** The vendored swagger, found from dist/test/helpers/firecracker/ (compiled) via the repository root. */
const SWAGGER_FILE = fileURLToPath(new URL('../../../../test/fixtures/firecracker-swagger.yaml', import.meta.url));

export interface SchemaNode {
  readonly $ref?: string | undefined;
  readonly type?: string | undefined;
  readonly enum?: readonly string[] | undefined;
  readonly required?: readonly string[] | undefined;
  readonly properties?: Readonly<Record<string, SchemaNode>> | undefined;
  readonly items?: SchemaNode | undefined;
  readonly additionalProperties?: SchemaNode | boolean | undefined;
  readonly minimum?: number | undefined;
  readonly maximum?: number | undefined;
}

const SchemaNodeSchema: z.ZodType<SchemaNode> = z.lazy(() =>
  z.object({
    $ref: z.string().optional(),
    type: z.string().optional(),
    enum: z.array(z.string()).optional(),
    required: z.array(z.string()).optional(),
    properties: z.record(z.string(), SchemaNodeSchema).optional(),
    items: SchemaNodeSchema.optional(),
    additionalProperties: z.union([z.boolean(), SchemaNodeSchema]).optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
  }),
);

const SwaggerSchema = z.object({
  info: z.object({ version: z.string() }),
  paths: z.record(
    z.string(),
    z.record(
      z.string(),
      z.object({
        parameters: z
          .array(z.object({ name: z.string(), in: z.string(), schema: z.object({ $ref: z.string() }).optional() }))
          .optional(),
      }),
    ),
  ),
  definitions: z.record(z.string(), SchemaNodeSchema),
});
export type Swagger = z.infer<typeof SwaggerSchema>;

/** Parses the vendored swagger file. */
export function loadSwagger(): Swagger {
  return SwaggerSchema.parse(parseYaml(readFileSync(SWAGGER_FILE, 'utf8')));
}

type RustScalar = 'u8' | 'u16' | 'u32' | 'u64' | 'usize' | 'PathBuf' | 'MacAddr' | 'LevelFilter';

/** What serde sees of one struct that the swagger does not say. */
export interface RustStruct {
  /** For "expected struct X". */
  readonly name: string;
  /** Declaration order: serde checks missing fields and lists known ones in this order. */
  readonly fields: readonly string[];
  readonly denyUnknownFields: boolean;
  /** Non-`Option` `#[serde(default)]` fields: may be absent, but `null` is a type error. */
  readonly defaulted?: readonly string[];
  /** Replaces the swagger's `required` where serde disagrees. */
  readonly required?: readonly string[];
  readonly scalars?: Readonly<Record<string, RustScalar>>;
  /** Enum variants in Rust declaration order, where it differs from the swagger's. */
  readonly variants?: Readonly<Record<string, readonly string[]>>;
}

/** Space-separated names, in Rust declaration order. */
const w = (names: string): string[] => names.split(' ');
const PATHS = (names: string): Record<string, RustScalar> => Object.fromEntries(w(names).map((n) => [n, 'PathBuf']));

/**
 * Keyed by swagger definition; each mirrors its serde struct (src/vmm/src/vmm_config/*.rs, logger/logging.rs,
 * api_server/request/actions.rs). `denyUnknownFields: false` where the struct lacks #[serde(deny_unknown_fields)].
 */
export const RUST_STRUCTS: Readonly<Record<string, RustStruct>> = {
  BootSource: {
    name: 'BootSourceConfig',
    fields: w('kernel_image_path initrd_path boot_args'),
    denyUnknownFields: true,
  },
  MachineConfiguration: {
    name: 'MachineConfig',
    fields: w('vcpu_count mem_size_mib smt cpu_template track_dirty_pages huge_pages'),
    denyUnknownFields: true,
    defaulted: w('smt track_dirty_pages huge_pages'),
    scalars: { vcpu_count: 'u8', mem_size_mib: 'usize' },
    // x86_64's StaticCpuTemplate (cpu_config/x86_64/static_cpu_templates/mod.rs); V1N1 is aarch64's.
    variants: { cpu_template: w('C3 T2 T2S None T2CL T2A') },
  },
  Drive: {
    name: 'BlockDeviceConfig',
    fields: w('drive_id partuuid is_root_device cache_type is_read_only path_on_host rate_limiter io_engine socket'),
    denyUnknownFields: true,
    defaulted: ['cache_type'],
    variants: { io_engine: w('Async Sync') },
  },
  PartialDrive: {
    name: 'BlockDeviceUpdateConfig',
    fields: w('drive_id path_on_host rate_limiter'),
    denyUnknownFields: true,
  },
  NetworkInterface: {
    name: 'NetworkInterfaceConfig',
    fields: w('iface_id host_dev_name guest_mac mtu rx_rate_limiter tx_rate_limiter'),
    denyUnknownFields: true,
    scalars: { guest_mac: 'MacAddr', mtu: 'u16' },
  },
  PartialNetworkInterface: {
    name: 'NetworkInterfaceUpdateConfig',
    fields: w('iface_id rx_rate_limiter tx_rate_limiter'),
    denyUnknownFields: true,
  },
  RateLimiter: { name: 'RateLimiterConfig', fields: w('bandwidth ops'), denyUnknownFields: true },
  TokenBucket: {
    name: 'TokenBucketConfig',
    fields: w('size one_time_burst refill_time'),
    denyUnknownFields: false,
    scalars: { size: 'u64', one_time_burst: 'u64', refill_time: 'u64' },
  },
  Vsock: {
    name: 'VsockDeviceConfig',
    fields: w('vsock_id guest_cid uds_path'),
    denyUnknownFields: true,
    scalars: { guest_cid: 'u32' },
  },
  Logger: {
    name: 'LoggerConfig',
    fields: w('log_path level show_level show_log_origin module'),
    denyUnknownFields: true,
    scalars: { log_path: 'PathBuf', level: 'LevelFilter' },
  },
  Metrics: {
    name: 'MetricsConfig',
    fields: w('metrics_path emit_id properties'),
    denyUnknownFields: false,
    defaulted: ['emit_id'],
    scalars: PATHS('metrics_path'),
  },
  InstanceActionInfo: { name: 'ActionBody', fields: ['action_type'], denyUnknownFields: true },
  Vm: { name: 'Vm', fields: ['state'], denyUnknownFields: true },
  SnapshotCreateParams: {
    name: 'CreateSnapshotParams',
    fields: w('snapshot_type snapshot_path mem_file_path'),
    denyUnknownFields: true,
    defaulted: ['snapshot_type'],
    scalars: PATHS('snapshot_path mem_file_path'),
    variants: { snapshot_type: w('Diff Full') },
  },
  SnapshotLoadParams: {
    name: 'LoadSnapshotConfig',
    fields: w(
      'snapshot_path mem_file_path mem_backend enable_diff_snapshots track_dirty_pages resume_vm network_overrides vsock_override clock_realtime huge_pages',
    ),
    denyUnknownFields: true,
    defaulted: w('enable_diff_snapshots track_dirty_pages resume_vm network_overrides clock_realtime huge_pages'),
    scalars: PATHS('snapshot_path mem_file_path'),
  },
  MemoryBackend: {
    name: 'MemBackendConfig',
    fields: w('backend_path backend_type'),
    denyUnknownFields: true,
    scalars: PATHS('backend_path'),
  },
  NetworkOverride: { name: 'NetworkOverride', fields: w('iface_id host_dev_name'), denyUnknownFields: false },
  VsockOverride: { name: 'VsockOverride', fields: ['uds_path'], denyUnknownFields: false },
};

/** PATCH /machine-config decodes into MachineConfigUpdate: the same fields, all optional (machine_config.rs). */
const MACHINE_CONFIG_UPDATE: RustStruct = {
  ...RUST_STRUCTS.MachineConfiguration!,
  name: 'MachineConfigUpdate',
  required: [],
  defaulted: [],
};

/** One request the fake serves: its swagger path template and body definition. */
export interface Operation {
  readonly method: string;
  readonly template: string;
  /** The swagger definition of the body, when the operation takes one. */
  readonly definition?: string;
}

/** The operations the fake emulates: swagger path template → methods. */
const EMULATED_OPERATIONS: Readonly<Record<string, readonly string[]>> = {
  '/': ['GET'],
  '/version': ['GET'],
  '/vm/config': ['GET'],
  '/machine-config': ['GET', 'PUT', 'PATCH'],
  '/boot-source': ['PUT'],
  '/drives/{drive_id}': ['PUT', 'PATCH'],
  '/network-interfaces/{iface_id}': ['PUT', 'PATCH'],
  '/vsock': ['PUT'],
  '/logger': ['PUT'],
  '/metrics': ['PUT'],
  '/actions': ['PUT'],
  '/snapshot/create': ['PUT'],
  '/snapshot/load': ['PUT'],
  '/vm': ['PATCH'],
};

/** The emulated operations as the swagger describes them; throws if the swagger lacks one. */
export function emulatedOperations(swagger: Swagger): Operation[] {
  return Object.entries(EMULATED_OPERATIONS).flatMap(([template, methods]) =>
    methods.map((method) => {
      const spec = swagger.paths[template]?.[method.toLowerCase()];
      if (!spec) throw new Error(`the swagger has no ${method} ${template}`);
      const ref = spec.parameters?.find((p) => p.in === 'body')?.schema?.$ref;
      return { method, template, ...(ref ? { definition: refName(ref) } : {}) };
    }),
  );
}

function refName(ref: string): string {
  return ref.replace('#/definitions/', '');
}

// ---------------------------------------------------------------------------------------------------------------
// JSON text with positions, as serde_json reads it (src/read.rs position_of_index: column = bytes since the newline).

type JsonNode =
  | { kind: 'object'; start: number; end: number; entries: { key: string; keyEnd: number; value: JsonNode }[] }
  | { kind: 'array'; start: number; end: number; items: JsonNode[] }
  | { kind: 'string'; start: number; end: number; value: string }
  | { kind: 'number'; start: number; end: number; raw: string }
  | { kind: 'bool'; start: number; end: number; value: boolean }
  | { kind: 'null'; start: number; end: number };

/** A serde_json error: its Display is "<message> at line L column C" (error.rs), or the message alone. */
export class SerdeError extends Error {}

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

class JsonText {
  private i = 0;
  constructor(readonly text: string) {}

  /** serde_json's `error` (at index) and `peek_error` (at index + 1) positions. */
  fail(message: string, index: number): SerdeError {
    const bytes = Buffer.from(this.text.slice(0, index));
    let line = 1;
    let lineStart = 0;
    bytes.forEach((b, i) => {
      if (b === 0x0a) [line, lineStart] = [line + 1, i + 1];
    });
    return new SerdeError(`${message} at line ${line} column ${bytes.length - lineStart}`);
  }

  parseDocument(): JsonNode {
    const node = this.value();
    this.ws();
    if (this.i < this.text.length) throw this.fail('trailing characters', this.i + 1);
    return node;
  }

  private ws(): void {
    while (/[ \t\n\r]/.test(this.text[this.i] ?? '')) this.i++;
  }

  private eof(what: string): SerdeError {
    return this.fail(`EOF while parsing ${what}`, this.text.length);
  }

  private value(): JsonNode {
    this.ws();
    const start = this.i;
    const c = this.text[this.i];
    if (c === undefined) throw this.eof('a value');
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return { kind: 'string', start, value: this.string(), end: this.i };
    if (c === '-' || /[0-9]/.test(c)) return this.number();
    for (const [word, node] of [
      ['true', { kind: 'bool', value: true }],
      ['false', { kind: 'bool', value: false }],
      ['null', { kind: 'null' }],
    ] as const) {
      if (c !== word[0]) continue;
      for (const ch of word) {
        if (this.i >= this.text.length) throw this.eof('a value');
        if (this.text[this.i++] !== ch) throw this.fail('expected ident', this.i);
      }
      return { ...node, start, end: this.i };
    }
    throw this.fail('expected value', this.i + 1);
  }

  private number(): JsonNode {
    const start = this.i;
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(start));
    if (!match || /^-?0[0-9]/.test(this.text.slice(start))) throw this.fail('invalid number', start + 1);
    this.i += match[0].length;
    return { kind: 'number', start, end: this.i, raw: match[0] };
  }

  private string(): string {
    this.i++;
    let out = '';
    for (;;) {
      const c = this.text[this.i++];
      if (c === undefined) throw this.eof('a string');
      if (c === '"') return out;
      if (c < ' ') throw this.fail('control character (\\u0000-\\u001F) found while parsing a string', this.i);
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.text[this.i++];
      if (e === undefined) throw this.eof('a string');
      const escaped = ESCAPES[e];
      if (escaped !== undefined) out += escaped;
      else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(this.text.slice(this.i, this.i + 4))) {
        out += String.fromCharCode(parseInt(this.text.slice(this.i, this.i + 4), 16));
        this.i += 4;
      } else throw this.fail('invalid escape', this.i);
    }
  }

  private object(): JsonNode {
    const start = this.i++;
    const entries: { key: string; keyEnd: number; value: JsonNode }[] = [];
    this.ws();
    if (this.text[this.i] === '}') return { kind: 'object', start, end: ++this.i, entries };
    for (;;) {
      this.ws();
      if (this.i >= this.text.length) throw this.eof('an object');
      if (this.text[this.i] === '}') throw this.fail('trailing comma', this.i + 1);
      if (this.text[this.i] !== '"') throw this.fail('key must be a string', this.i + 1);
      const key = this.string();
      const keyEnd = this.i;
      this.ws();
      if (this.i >= this.text.length) throw this.eof('an object');
      if (this.text[this.i] !== ':') throw this.fail('expected `:`', this.i + 1);
      this.i++;
      entries.push({ key, keyEnd, value: this.value() });
      this.ws();
      const next = this.text[this.i++];
      if (next === '}') return { kind: 'object', start, end: this.i, entries };
      if (next === undefined) throw this.eof('an object');
      if (next !== ',') throw this.fail('expected `,` or `}`', this.i);
    }
  }

  private array(): JsonNode {
    const start = this.i++;
    const items: JsonNode[] = [];
    this.ws();
    if (this.text[this.i] === ']') return { kind: 'array', start, end: ++this.i, items };
    for (;;) {
      this.ws();
      if (this.text[this.i] === ']') throw this.fail('trailing comma', this.i + 1);
      items.push(this.value());
      this.ws();
      const next = this.text[this.i++];
      if (next === ']') return { kind: 'array', start, end: this.i, items };
      if (next === undefined) throw this.eof('a list');
      if (next !== ',') throw this.fail('expected `,` or `]`', this.i);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// serde's derive + serde_json's Deserializer, for the shapes the emulated bodies use.

/** serde's OneOf (de/mod.rs): "`a`", "`a` or `b`", "one of `a`, `b`, `c`". */
function oneOf(names: readonly string[]): string {
  const quoted = names.map((n) => `\`${n}\``);
  if (quoted.length === 1) return quoted[0]!;
  if (quoted.length === 2) return `${quoted[0]} or ${quoted[1]}`;
  return `one of ${quoted.join(', ')}`;
}

/** serde_json's JsonUnexpected (error.rs): how the offending value is named. */
function unexpected(node: JsonNode): string {
  switch (node.kind) {
    case 'null':
      return 'null';
    case 'bool':
      return `boolean \`${node.value}\``;
    case 'string':
      return `string ${JSON.stringify(node.value)}`;
    case 'array':
      return 'sequence';
    case 'object':
      return 'map';
    case 'number': {
      if (isInteger(node.raw)) return `integer \`${BigInt(node.raw)}\``;
      const value = Number(node.raw);
      const text = Number.isInteger(value) && Math.abs(value) < 1e16 ? `${value}.0` : String(value).replace('e+', 'e');
      return `floating point \`${text}\``;
    }
  }
}

/** serde_json keeps an integer that fits in u64/i64; anything else is an f64. */
function isInteger(raw: string): boolean {
  if (/[.eE]/.test(raw)) return false;
  const n = BigInt(raw);
  return n >= -(2n ** 63n) && n < 2n ** 64n;
}

const INT_MAX: Record<string, bigint> = {
  u8: 255n,
  u16: 65535n,
  u32: 2n ** 32n - 1n,
  u64: 2n ** 64n - 1n,
  usize: 2n ** 64n - 1n,
};
const LEVELS = ['off', 'trace', 'debug', 'info', 'warn', 'warning', 'error'];

export type Decoded = null | string | number | boolean | Decoded[] | { [key: string]: Decoded };

class Decoder {
  constructor(
    private readonly json: JsonText,
    private readonly swagger: Swagger,
  ) {}

  /** Where serde_json stands after reading `node` (the position `fix_position` reports). */
  private after(node: JsonNode, message: string): SerdeError {
    // peek_invalid_type does not consume `[` or `{`: it reports the position before them.
    return this.json.fail(message, node.kind === 'array' || node.kind === 'object' ? node.start : node.end);
  }

  private invalidType(node: JsonNode, expected: string): SerdeError {
    return this.after(node, `invalid type: ${unexpected(node)}, expected ${expected}`);
  }

  struct(node: JsonNode, definition: string, rust: RustStruct): { [key: string]: Decoded } {
    if (node.kind !== 'object') throw this.invalidType(node, `struct ${rust.name}`);
    const schema = this.definition(definition);
    const out: { [key: string]: Decoded } = {};
    for (const { key, keyEnd, value } of node.entries) {
      if (!rust.fields.includes(key)) {
        if (rust.denyUnknownFields) {
          throw this.json.fail(`unknown field \`${key}\`, expected ${oneOf(rust.fields)}`, keyEnd);
        }
        // serde skips it; kept so that contractViolations can name it.
        out[key] = plain(value);
        continue;
      }
      if (key in out) throw this.json.fail(`duplicate field \`${key}\``, keyEnd);
      const optional = !(rust.required ?? schema.required ?? []).includes(key) && !rust.defaulted?.includes(key);
      if (value.kind === 'null' && optional) continue;
      out[key] = this.field(value, schema.properties?.[key] ?? {}, rust, key);
    }
    const missing = (rust.required ?? schema.required ?? []).filter((f) => !(f in out));
    const first = rust.fields.find((f) => missing.includes(f));
    if (first) throw this.json.fail(`missing field \`${first}\``, node.end);
    return out;
  }

  private definition(name: string): SchemaNode {
    const schema = this.swagger.definitions[name];
    if (!schema) throw new Error(`the swagger has no definition ${name}`);
    return schema;
  }

  private field(node: JsonNode, schema: SchemaNode, rust: RustStruct, key: string): Decoded {
    if (schema.$ref) {
      const name = refName(schema.$ref);
      const target = this.definition(name);
      if (target.enum) return this.variant(node, rust.variants?.[key] ?? target.enum);
      return this.struct(node, name, structOf(name));
    }
    if (schema.enum) return this.variant(node, rust.variants?.[key] ?? schema.enum);
    const scalar = rust.scalars?.[key];
    switch (schema.type) {
      case 'string':
        return this.string(node, scalar);
      case 'boolean':
        if (node.kind !== 'bool') throw this.invalidType(node, 'a boolean');
        return node.value;
      case 'integer':
        return this.integer(node, scalar ?? 'u64');
      case 'array': {
        if (node.kind !== 'array') throw this.invalidType(node, 'a sequence');
        const items = schema.items ?? {};
        return node.items.map((item) => this.field(item, items, rust, key));
      }
      case 'object': {
        if (node.kind !== 'object') throw this.invalidType(node, 'a map');
        const values = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : {};
        return Object.fromEntries(node.entries.map((e) => [e.key, this.field(e.value, values, rust, key)]));
      }
      default:
        throw new Error(`the contract cannot decode swagger type ${schema.type ?? '(none)'} of ${key}`);
    }
  }

  private string(node: JsonNode, scalar: RustScalar | undefined): string {
    if (node.kind !== 'string') throw this.invalidType(node, scalar === 'PathBuf' ? 'path string' : 'a string');
    // Custom Deserialize impls: utils/net/mac.rs MacAddr and logger/logging.rs LevelFilter.
    if (scalar === 'MacAddr' && !isMac(node.value)) throw this.after(node, 'The provided MAC address is invalid.');
    if (scalar === 'LevelFilter' && !LEVELS.includes(node.value.toLowerCase())) {
      throw this.after(node, 'Invalid LevelFilter');
    }
    return node.value;
  }

  private integer(node: JsonNode, scalar: RustScalar): number {
    if (node.kind !== 'number' || !isInteger(node.raw)) throw this.invalidType(node, scalar);
    const value = BigInt(node.raw);
    if (value < 0n || value > (INT_MAX[scalar] ?? 0n)) {
      throw this.after(node, `invalid value: ${unexpected(node)}, expected ${scalar}`);
    }
    return Number(value);
  }

  /** serde_json deserialize_enum: a unit variant is a string; anything else is "expected value" (peek position). */
  private variant(node: JsonNode, variants: readonly string[]): string {
    if (node.kind !== 'string') throw this.json.fail('expected value', node.start + 1);
    if (!variants.includes(node.value)) {
      throw this.after(node, `unknown variant \`${node.value}\`, expected ${oneOf(variants)}`);
    }
    return node.value;
  }
}

function plain(node: JsonNode): Decoded {
  switch (node.kind) {
    case 'object':
      return Object.fromEntries(node.entries.map((e) => [e.key, plain(e.value)]));
    case 'array':
      return node.items.map(plain);
    case 'number':
      return Number(node.raw);
    case 'null':
      return null;
    default:
      return node.value;
  }
}

function isMac(text: string): boolean {
  const parts = text.split(':');
  return parts.length === 6 && parts.every((p) => p.length === 2 && /^\+?[0-9a-fA-F]+$/.test(p));
}

function structOf(definition: string): RustStruct {
  const rust = RUST_STRUCTS[definition];
  if (!rust) throw new Error(`the contract has no Rust struct for swagger definition ${definition}`);
  return rust;
}

/**
 * Decodes a request body as Firecracker's serde_json does (`serde_json::from_slice::<Struct>`), or throws a
 * SerdeError whose message is serde_json's Display, e.g. "unknown field `x`, expected one of … at line 1 column 5".
 */
export function decodeBody(swagger: Swagger, operation: Operation, body: string): { [key: string]: Decoded } {
  const definition = operation.definition;
  if (!definition) throw new Error(`${operation.method} ${operation.template} takes no body`);
  const rust =
    operation.method === 'PATCH' && operation.template === '/machine-config'
      ? MACHINE_CONFIG_UPDATE
      : structOf(definition);
  const json = new JsonText(body);
  return new Decoder(json, swagger).struct(json.parseDocument(), definition, rust);
}

/**
 * What the swagger forbids in a body serde accepted: values outside `minimum`/`maximum`, and fields the swagger
 * does not know in the structs that serde lets them through (TokenBucket, Metrics, NetworkOverride, VsockOverride).
 */
export function contractViolations(swagger: Swagger, definition: string, value: Decoded, where = definition): string[] {
  const schema = swagger.definitions[definition];
  if (!schema?.properties || typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  const properties = schema.properties;
  return Object.entries(value).flatMap(([key, v]) => {
    const property = properties[key];
    if (!property) return [`${where}.${key} is not in the swagger definition ${definition}`];
    return propertyViolations(swagger, property, v, `${where}.${key}`);
  });
}

function propertyViolations(swagger: Swagger, property: SchemaNode, value: Decoded, where: string): string[] {
  if (property.$ref) return contractViolations(swagger, refName(property.$ref), value, where);
  if (Array.isArray(value) && property.items) {
    return value.flatMap((item, i) => propertyViolations(swagger, property.items!, item, `${where}[${i}]`));
  }
  if (typeof value !== 'number') return [];
  const { minimum, maximum } = property;
  if (minimum !== undefined && value < minimum) return [`${where} is ${value}, below the minimum ${minimum}`];
  if (maximum !== undefined && value > maximum) return [`${where} is ${value}, above the maximum ${maximum}`];
  return [];
}
