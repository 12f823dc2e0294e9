import type { AgentConnection } from '../channel/client.js';
import { type TcpTunnel, acceptTcp } from '../channel/tcp.js';
import { CancelledError, ChannelClosedError } from '../core/errors.js';
import { delay } from '../core/process.js';
import type { EgressDecision } from '../network/egress-options.js';
import type { EgressPolicy } from '../network/egress-policy.js';
import { serveEgress } from '../network/egress-proxy.js';
import { recordEgress } from '../metrics/sdk.js';

/** Where guest programs find the allowlist proxy: the agent listens on the guest's 127.0.0.1 at this port. */
export const GUEST_PROXY_PORT = 3128;

/** What commands in an allowlist sandbox get in their environment, so that curl, wget, pip, npm… use the proxy. */
export const PROXY_ENV: Readonly<Record<string, string>> = (() => {
  const proxy = `http://127.0.0.1:${GUEST_PROXY_PORT}`;
  const direct = 'localhost,127.0.0.1,::1';
  return {
    http_proxy: proxy,
    https_proxy: proxy,
    HTTP_PROXY: proxy,
    HTTPS_PROXY: proxy,
    no_proxy: direct,
    NO_PROXY: direct,
  };
})();

/** Accepts kept waiting in the agent at once: how many guest connections can arrive before the host answers. */
const PENDING_ACCEPTS = 4;
const RETRY_MS = 1000;

/**
 * The host side of allowlist mode: keeps a few accepts pending on the guest's proxy port and serves each guest
 * connection with the egress proxy, which lets through only what `policy` allows. The guest has no NIC, so this is
 * its only way out.
 */
export class EgressGateway {
  private readonly stopped = new AbortController();
  private readonly tunnels = new Set<TcpTunnel>();
  private readonly served = new Set<Promise<void>>();

  constructor(
    private readonly connection: AgentConnection,
    private readonly policy: EgressPolicy,
    private readonly onDecision?: (decision: EgressDecision) => void,
  ) {
    for (let i = 0; i < PENDING_ACCEPTS; i++) this.acceptNext();
  }

  /** Stops accepting and cuts every proxied connection. */
  async close(): Promise<void> {
    this.stopped.abort();
    for (const tunnel of this.tunnels) tunnel.destroy();
    await Promise.all(this.served);
  }

  private acceptNext(): void {
    if (this.stopped.signal.aborted || this.connection.closed) return;
    acceptTcp(this.connection, GUEST_PROXY_PORT, { signal: this.stopped.signal }).then(
      (tunnel) => {
        this.acceptNext();
        this.serve(tunnel);
      },
      async (error: unknown) => {
        if (error instanceof CancelledError || error instanceof ChannelClosedError) return;
        process.emitWarning(`jitvm: the allowlist proxy could not accept: ${(error as Error).message}`);
        await delay(RETRY_MS, this.stopped.signal).then(
          () => this.acceptNext(),
          () => undefined,
        );
      },
    );
  }

  private serve(tunnel: TcpTunnel): void {
    this.tunnels.add(tunnel);
    const served: Promise<void> = serveEgress(tunnel, this.policy, {
      onDecision: (decision) => {
        recordEgress(decision);
        this.onDecision?.(decision);
      },
      onError: (error) => process.emitWarning(`jitvm: allowlist proxy: ${error.message}`),
    })
      .catch(() => undefined)
      .finally(() => {
        this.tunnels.delete(tunnel);
        this.served.delete(served);
      });
    this.served.add(served);
  }
}
