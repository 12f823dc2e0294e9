import { type ErrorCode, JitvmError } from '../core/errors.js';

/** An RFC 7807 problem document, as every error response of the daemon carries it (`application/problem+json`). */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: ErrorCode;
}

/** HTTP status and title of each SDK error code. */
const BY_CODE: Record<ErrorCode, { status: number; title: string }> = {
  invalid_argument: { status: 400, title: 'Invalid argument' },
  not_found: { status: 404, title: 'Not found' },
  invalid_state: { status: 409, title: 'Invalid state' },
  guest_error: { status: 422, title: 'The guest refused the request' },
  resource_exhausted: { status: 429, title: 'A limit of the daemon is reached' },
  internal: { status: 500, title: 'Internal error' },
  unsupported: { status: 501, title: 'Unsupported' },
  boot_failed: { status: 502, title: 'The sandbox did not boot' },
  vmm_failed: { status: 502, title: 'The VMM failed' },
  agent_lost: { status: 502, title: 'The guest agent was lost' },
  protocol: { status: 502, title: 'The guest agent broke the protocol' },
  host_tool_missing: { status: 503, title: 'A host tool is missing' },
  image_build_failed: { status: 503, title: 'The guest image could not be built' },
  cancelled: { status: 503, title: 'Cancelled' },
  timeout: { status: 504, title: 'Timed out' },
};

/** The content type of problem documents. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The problem for an SDK error code, with `detail` as its message. */
export function problemFor(code: ErrorCode, detail: string): Problem {
  const { status, title } = BY_CODE[code];
  return { type: `urn:jitvm:error:${code}`, title, status, detail, code };
}

/**
 * The problem for anything a handler threw: a JitvmError keeps its code; an HTTP-level client error from fastify
 * (bad JSON, unknown content type, body too large: it carries a 4xx `statusCode`) keeps its status as
 * `invalid_argument`; anything else is `internal`, with a detail that hides the host-side message.
 */
export function problemFromError(error: unknown): Problem {
  if (error instanceof JitvmError) return problemFor(error.code, error.message);
  const status = (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { ...problemFor('invalid_argument', (error as Error).message), status };
  }
  return problemFor('internal', 'the daemon failed unexpectedly; its log has the details');
}
