/**
 * The daemon's overhead, against the SDK in this process on another sandbox of the same run: `exec true` through
 * `POST /v1/sandboxes/:id/exec` and through the SDK's remote mode, a line echoed by `cat` through the exec WebSocket,
 * and a 16 MiB download.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createDaemon } from '../src/daemon/server.js';
import type { RunningCommand, SandboxApi } from '../src/sandbox/api.js';
import { Sandbox } from '../src/sandbox/sandbox.js';
import { timeEach } from './stats.js';

export const DOWNLOAD_MIB = 16;
const DOWNLOAD_RUNS = 5;
const WARMUP = 20;

/** Samples of the daemon's paths (`jitvm`) and of the same operations on a local sandbox (`sdk`). */
export interface DaemonSamples {
  readonly rest: number[];
  readonly remoteExec: number[];
  readonly sdkExec: number[];
  readonly remoteEcho: number[];
  readonly sdkEcho: number[];
  readonly remoteDownload: number[];
  readonly sdkDownload: number[];
}

/** Round trips of one line through `cat`: written to its stdin, read back from its stdout. */
async function echoRoundTrips(command: RunningCommand, runs: number): Promise<number[]> {
  await command.pid;
  const roundTrip = async (): Promise<void> => {
    const echoed = once(command.stdout, 'data');
    await command.sendStdin('x\n');
    await echoed;
  };
  await timeEach(WARMUP, roundTrip);
  const samples = await timeEach(runs, roundTrip);
  command.closeStdin();
  await command.wait();
  return samples;
}

async function downloads(sandbox: SandboxApi): Promise<number[]> {
  await sandbox.files.write('/tmp/bench-download', randomBytes(DOWNLOAD_MIB * 1024 * 1024));
  return timeEach(DOWNLOAD_RUNS, () => sandbox.files.read('/tmp/bench-download'));
}

export async function daemonSamples(runs: number, bootTimeoutMs: number): Promise<DaemonSamples> {
  const token = randomBytes(32).toString('base64url');
  const daemon = createDaemon({ token });
  const base = await daemon.listen({ kind: 'tcp', host: '127.0.0.1', port: 0, loopback: true });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const sdk = await Sandbox.create({ backend: 'qemu', bootTimeoutMs });
  try {
    const remote = await Sandbox.create({ daemon: base, token, backend: 'qemu', bootTimeoutMs });
    const restExec = async (): Promise<void> => {
      const reply = await fetch(`${base}/v1/sandboxes/${remote.id}/exec`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ command: ['true'] }),
      });
      if (!(await reply.text()).includes('"exit"')) throw new Error('no exit line from the daemon');
    };
    for (const exec of [restExec, () => remote.exec(['true']), () => sdk.exec(['true'])]) await timeEach(WARMUP, exec);
    return {
      rest: await timeEach(runs, restExec),
      remoteExec: await timeEach(runs, () => remote.exec(['true'])),
      sdkExec: await timeEach(runs, () => sdk.exec(['true'])),
      remoteEcho: await echoRoundTrips(remote.spawn(['cat']), runs),
      sdkEcho: await echoRoundTrips(sdk.spawn(['cat']), runs),
      remoteDownload: await downloads(remote),
      sdkDownload: await downloads(sdk),
    };
  } finally {
    await sdk.destroy();
    await daemon.close();
  }
}
