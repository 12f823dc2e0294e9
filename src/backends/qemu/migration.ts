/**
 * A VM's device state in and out of QEMU through its migration stream, carried over a Unix socket this process
 * serves or dials: `exec:` would make QEMU spawn a shell, which its seccomp sandbox (`spawn=deny`) forbids, and
 * QEMU 7.2 has no `file:` URI. With `x-ignore-shared` the stream holds no RAM (that lives in a file, guest-ram.ts),
 * so it is tens of kilobytes.
 */
import { createWriteStream, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { connectLocal } from '../../channel/local-endpoint.js';
import { JitvmError, VmmError } from '../../core/errors.js';
import { beforeDeadline, delay } from '../../core/process.js';
import type { QmpClient } from './qmp.js';

const POLL_MS = 5;
const MigrationStatus = z.object({ status: z.string().optional(), 'error-desc': z.string().optional() });

async function ignoreSharedRam(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
}

/** Polls `query-migrate` until the migration completed; a failed or cancelled one, or the deadline, is an error. */
async function migrationDone(qmp: QmpClient, deadline: number, what: string): Promise<void> {
  for (;;) {
    const { status, 'error-desc': error } = MigrationStatus.parse(await qmp.execute('query-migrate'));
    if (status === 'completed') return;
    if (status === 'failed' || status === 'cancelled') {
      throw new VmmError(`QEMU could not ${what}: ${error ?? status}`);
    }
    if (Date.now() > deadline) throw new JitvmError('timeout', `QEMU did not ${what} in time (status ${status})`);
    await delay(POLL_MS);
  }
}

/**
 * Writes the device state of a stopped VM into `stateFile` (mode 0600): QEMU connects to `socketPath`, which this
 * function serves for the duration. The VM is left in QEMU's `postmigrate` state; `cont` resumes it.
 */
export async function saveDeviceState(
  qmp: QmpClient,
  socketPath: string,
  stateFile: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await ignoreSharedRam(qmp);
  const server = createServer();
  const written = new Promise<void>((resolve, reject) => {
    server.once('connection', (socket: Socket) => {
      pipeline(socket, createWriteStream(stateFile, { mode: 0o600 })).then(resolve, reject);
    });
    server.once('error', reject);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  try {
    await qmp.execute('migrate', { uri: `unix:${socketPath}` });
    await migrationDone(qmp, deadline, 'save the device state');
    await beforeDeadline(written, deadline, 'writing the device state took too long');
  } finally {
    server.close();
    rmSync(socketPath, { force: true });
  }
}

/**
 * Loads device state from `stateFile` into a QEMU started with `-incoming defer`: QEMU listens on `socketPath`, and
 * this function writes the file into it. The VM is then paused (it was started with `-S`).
 */
export async function loadDeviceState(
  qmp: QmpClient,
  socketPath: string,
  stateFile: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // Device state is small (no RAM in it): read whole, so a missing file fails before QEMU waits for it.
  const state = await readFile(stateFile);
  await ignoreSharedRam(qmp);
  await qmp.execute('migrate-incoming', { uri: `unix:${socketPath}` });
  try {
    const socket = await connectLocal(socketPath);
    // QEMU closes its end once it has read the stream's end marker, possibly before our end is flushed: whether
    // the load worked is QEMU's to say (query-migrate), not the socket's.
    socket.on('error', () => undefined);
    socket.end(state);
    await migrationDone(qmp, deadline, 'load the device state');
  } finally {
    rmSync(socketPath, { force: true });
  }
}
