/** The REST daemon's overhead: `exec true` through `POST /v1/sandboxes/:id/exec` against the SDK's own exec. */
import { randomBytes } from 'node:crypto';
import { createDaemon } from '../src/daemon/server.js';
import { Sandbox } from '../src/sandbox/sandbox.js';
import { timeEach } from './stats.js';

/** Samples of `exec true`: through an in-process daemon on loopback TCP (jitvm), and straight through the SDK (raw). */
export async function daemonExecSamples(
  runs: number,
  bootTimeoutMs: number,
): Promise<{ rest: number[]; sdk: number[] }> {
  const token = randomBytes(32).toString('base64url');
  const daemon = createDaemon({ token });
  const base = await daemon.listen({ kind: 'tcp', host: '127.0.0.1', port: 0, loopback: true });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const sdk = await Sandbox.create({ backend: 'qemu', bootTimeoutMs });
  try {
    const created = await fetch(`${base}/v1/sandboxes`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ bootTimeoutMs }),
    });
    if (created.status !== 201) throw new Error(`daemon create failed: ${created.status} ${await created.text()}`);
    const { id } = (await created.json()) as { id: string };
    const restExec = async (): Promise<void> => {
      const reply = await fetch(`${base}/v1/sandboxes/${id}/exec`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ command: ['true'] }),
      });
      if (!(await reply.text()).includes('"exit"')) throw new Error('no exit line from the daemon');
    };
    await timeEach(20, restExec);
    await timeEach(20, () => sdk.exec(['true']));
    return { rest: await timeEach(runs, restExec), sdk: await timeEach(runs, () => sdk.exec(['true'])) };
  } finally {
    await sdk.destroy();
    await daemon.close();
  }
}
