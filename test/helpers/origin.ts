import { type IncomingMessage, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

/** An HTTP server on the host's 127.0.0.1 that answers `origin <path>` and remembers every request it got. */
export interface Origin {
  readonly port: number;
  readonly requests: IncomingMessage[];
}

/** Starts an origin server on loopback, closed when the test ends. */
export async function startOrigin(t: TestContext, body = 'origin'): Promise<Origin> {
  const requests: IncomingMessage[] = [];
  const server = createServer((request, response) => {
    requests.push(request);
    response.end(`${body} ${request.url}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.unref();
  return { port: (server.address() as AddressInfo).port, requests };
}
