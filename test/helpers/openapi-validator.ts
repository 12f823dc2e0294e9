import assert from 'node:assert/strict';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';

type Json = Record<string, unknown>;

/**
 * Checks responses against an OpenAPI 3.1 document: the operation is found from method and URL, the response from
 * the status (an undeclared success status fails; errors fall back to `default`), its schema is compiled with ajv
 * (JSON Schema 2020-12) and applied to the body — to each line for `application/x-ndjson`.
 */
export class OpenApiValidator {
  private readonly ajv = new Ajv2020({ allErrors: true }).addFormat('base64', /^[A-Za-z0-9+/]*={0,2}$/);
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly operations: { pattern: RegExp; path: string }[];
  /** How many responses were checked, so a test can tell it checked some. */
  checked = 0;

  constructor(private readonly document: Json) {
    this.operations = Object.keys(document.paths as Json).map((path) => ({
      path,
      pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
    }));
  }

  /** Asserts that this response is one the document allows. */
  check(method: string, url: string, status: number, contentType: string | undefined, body: string): void {
    const pathname = url.split('?')[0]!;
    const path = this.operations.find(({ pattern }) => pattern.test(pathname))?.path;
    assert.ok(path, `${pathname} is not in the OpenAPI document`);
    const operation = (this.document.paths as Record<string, Record<string, Json>>)[path]![method.toLowerCase()];
    assert.ok(operation, `${method} ${path} is not in the OpenAPI document`);
    const responses = operation.responses as Record<string, Json>;
    const response = responses[String(status)] ?? (status >= 400 ? responses.default : undefined);
    assert.ok(response, `${method} ${path} does not declare status ${status}`);
    this.checked++;
    const content = response.content as Record<string, { schema?: Json }> | undefined;
    if (!content) return assert.equal(body, '', `${method} ${path} ${status} declares no body`);
    const mediaType = (contentType ?? '').split(';')[0]!.trim();
    const media = content[mediaType];
    assert.ok(media, `${method} ${path} ${status}: undeclared content type ${mediaType}`);
    if (mediaType === 'application/octet-stream') return;
    if (mediaType.startsWith('text/')) return assert.equal(typeof body, 'string');
    const values = mediaType === 'application/x-ndjson' ? body.split('\n').filter(Boolean) : [body];
    const validate = this.validator(media.schema!);
    for (const value of values) {
      assert.ok(validate(JSON.parse(value)), `${method} ${path} ${status}: ${this.ajv.errorsText(validate.errors)}`);
    }
  }

  private validator(schema: Json): ValidateFunction {
    const key = JSON.stringify(schema);
    let validate = this.compiled.get(key);
    if (!validate) this.compiled.set(key, (validate = this.ajv.compile(schema)));
    return validate;
  }
}
