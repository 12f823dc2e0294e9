import type { AgentConnection } from '../channel/client.js';
import type { Network } from '../core/config.js';
import { JitvmError } from '../core/errors.js';
import type { EgressDecision } from '../network/egress-options.js';
import { compileEgressPolicy } from '../network/egress-policy.js';
import { EgressGateway, PROXY_ENV } from './egress.js';
import type { SandboxFiles } from './files.js';
import { type PortForwardInput, PortForwards } from './ports.js';

/** What the host side of a sandbox's network needs besides its config. */
export interface SandboxNetworkOptions {
  /** Guest ports to publish on the host's loopback at once. */
  readonly ports?: readonly PortForwardInput[];
  /** Told every allow/deny verdict of the allowlist proxy. */
  readonly onEgressDecision?: (decision: EgressDecision) => void;
  /** A freshly booted guest (not a restored or re-attached one): `hosts` entries are written to its /etc/hosts. */
  readonly fresh: boolean;
}

/** /etc/hosts lines for the guest: the loopback names, then the caller's entries. */
function hostsFile(existing: string, hosts: Readonly<Record<string, string>>): string {
  const lines = Object.entries(hosts).map(([name, address]) => `${address}\t${name}`);
  const base = existing || '127.0.0.1\tlocalhost\n::1\tlocalhost\n';
  return `${base}${base.endsWith('\n') ? '' : '\n'}${lines.join('\n')}\n`;
}

/**
 * The host side of a sandbox's network: published ports (every mode), the allowlist proxy (allowlist mode), and
 * the guest's /etc/hosts entries (nat mode). Lives as long as the Sandbox object; `close()` ends it.
 */
export class SandboxNetwork {
  private constructor(
    readonly ports: PortForwards,
    private readonly egress: EgressGateway | undefined,
  ) {}

  /** Starts what `network` needs; on failure nothing it started is left running. */
  static async start(
    connection: AgentConnection,
    files: SandboxFiles,
    network: Network,
    options: SandboxNetworkOptions,
  ): Promise<SandboxNetwork> {
    if (options.fresh && network.mode === 'nat' && network.hosts && Object.keys(network.hosts).length > 0) {
      const existing = await files.read('/etc/hosts').then(
        (bytes) => bytes.toString(),
        (error: unknown) => {
          if (error instanceof JitvmError && error.code === 'not_found') return '';
          throw error;
        },
      );
      await files.write('/etc/hosts', Buffer.from(hostsFile(existing, network.hosts)));
    }
    const egress =
      network.mode === 'allowlist'
        ? new EgressGateway(
            connection,
            compileEgressPolicy({ allow: network.allow, hosts: network.hosts }),
            options.onEgressDecision,
          )
        : undefined;
    const ports = new PortForwards(() => connection);
    try {
      for (const port of options.ports ?? []) await ports.publish(port);
    } catch (error) {
      await Promise.all([ports.close(), egress?.close()]);
      throw error;
    }
    return new SandboxNetwork(ports, egress);
  }

  /** Environment every command gets by default: the proxy settings in allowlist mode. */
  commandEnv(): Readonly<Record<string, string>> {
    return this.egress ? PROXY_ENV : {};
  }

  /** Stops the published ports and the proxy, cutting their connections. */
  async close(): Promise<void> {
    await Promise.all([this.ports.close(), this.egress?.close()]);
  }
}
