import type { SandboxApi } from '../sandbox/api.js';
import type { SandboxOptions } from '../sandbox/options.js';
import { Sandbox } from '../sandbox/sandbox.js';
import type { DaemonConnectOptions } from '../remote/sandbox.js';

/** The daemon the CLI works through: `$JITVM_DAEMON` (token: `$JITVM_TOKEN` or the local token file), if set. */
export function daemonFromEnv(env: NodeJS.ProcessEnv = process.env): DaemonConnectOptions | undefined {
  return env.JITVM_DAEMON ? { daemon: env.JITVM_DAEMON } : undefined;
}

/**
 * Starts a sandbox: in a daemon when `$JITVM_DAEMON` is set (the daemon decides detachment, and builds the image
 * itself), else in this process.
 */
export function createSandbox(options: SandboxOptions): Promise<SandboxApi> {
  const daemon = daemonFromEnv();
  if (!daemon) return Sandbox.create(options);
  return Sandbox.create({ ...forDaemon(options), ...daemon });
}

/** The options a daemon takes: it builds the image itself, and keeps its sandboxes detached. */
const forDaemon = ({ onImageProgress: _progress, detached: _detached, ...rest }: SandboxOptions) => rest;

/** Reaches a running sandbox: the daemon's when `$JITVM_DAEMON` is set, else a detached one of this host. */
export function connectSandbox(id: string): Promise<SandboxApi> {
  const daemon = daemonFromEnv();
  return daemon ? Sandbox.connect(id, daemon) : Sandbox.connect(id);
}
