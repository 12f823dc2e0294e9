/** One HTTP/1.1 request to a VMM's REST API on a Unix socket (Firecracker, vfkit), with a bounded reply. */
import { request } from 'node:http';
import { JitvmError, VmmError } from '../core/errors.js';

export interface UnixHttpRequest {
  readonly socketPath: string;
  readonly method: string;
  readonly path: string;
  /** A JSON body, sent with its Content-Type and Content-Length; none when undefined. */
  readonly body?: string;
  /** Who answers, for error messages: "Firecracker", "vfkit". */
  readonly peer: string;
  /** A longer reply is an error: an untrusted VMM must not make us buffer without bound. */
  readonly maxResponseBytes: number;
  readonly timeoutMs: number;
}

export interface UnixHttpResponse {
  readonly status: number;
  readonly body: string;
}

/**
 * Sends the request on a fresh connection and resolves with the status and the whole body. Rejects with the socket's
 * own error (ENOENT, ECONNREFUSED… while the VMM is still creating its socket), VmmError for an oversized reply, and a
 * `timeout` JitvmError when no answer comes within `timeoutMs`.
 */
export function unixHttpRequest(options: UnixHttpRequest): Promise<UnixHttpResponse> {
  const { method, path, body, peer, maxResponseBytes } = options;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: options.socketPath,
        method,
        path,
        agent: false,
        timeout: options.timeoutMs,
        headers: {
          Accept: 'application/json',
          ...(body === undefined
            ? {}
            : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxResponseBytes) {
            req.destroy(new VmmError(`${peer}'s answer to ${method} ${path} exceeds ${maxResponseBytes} bytes`));
          } else chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new JitvmError('timeout', `${peer} did not answer ${method} ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}
