import { join } from 'node:path';
import { backendByName } from '../backends/index.js';
import { vmsRoot } from '../core/paths.js';
import { delay, processMatches, provenProcess } from '../core/process.js';
import { type VmRecord, liveVmRecord } from '../core/vm-record.js';
import { Sandbox } from '../sandbox/sandbox.js';
import type { SavedSandbox } from './state.js';
import type { PublishedPort } from '../sandbox/ports.js';

/** Where adoption reports what it did (the daemon's pino logger fits). */
export interface AdoptionLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** A saved sandbox whose VM answered again. */
export interface Adopted {
  readonly saved: SavedSandbox;
  readonly sandbox: Sandbox;
}

/**
 * Re-attaches to every saved sandbox whose VM still runs (one agent reconnect each, up to 15 s when the guest does
 * not answer). One that cannot be re-attached is killed and its host state removed: none is left running untracked.
 */
export async function adoptSandboxes(saved: readonly SavedSandbox[], log: AdoptionLog): Promise<Adopted[]> {
  const adopted = await Promise.all(saved.map((entry) => adoptOne(entry, log)));
  return adopted.filter((entry): entry is Adopted => entry !== undefined);
}

async function adoptOne(saved: SavedSandbox, log: AdoptionLog): Promise<Adopted | undefined> {
  const record = liveVmRecord(saved.id);
  if (!record) {
    log.info({ sandboxId: saved.id }, 'sandbox of a previous daemon is gone');
    return undefined;
  }
  let sandbox: Sandbox | undefined;
  try {
    sandbox = await Sandbox.connect(saved.id);
    for (const port of saved.ports) await republish(sandbox, port, log);
    log.info({ sandboxId: saved.id }, 'sandbox re-adopted');
    return { saved, sandbox };
  } catch (error) {
    log.warn({ sandboxId: saved.id, err: error }, 'sandbox of a previous daemon could not be re-adopted: killing it');
    if (sandbox) await sandbox.destroy();
    else await killVm(record);
    return undefined;
  }
}

/**
 * Publishes a port the previous daemon had published: on the same host port, which its clients know, or on a free
 * one (logged) when something else took it meanwhile.
 */
async function republish(sandbox: Sandbox, port: PublishedPort, log: AdoptionLog): Promise<void> {
  const fields = { sandboxId: sandbox.id, guestPort: port.guest, hostPort: port.host };
  try {
    await sandbox.publishPort(port);
  } catch (error) {
    const host = await sandbox.publishPort({ guest: port.guest });
    log.warn({ ...fields, err: error, newHostPort: host }, 'host port taken: guest port published on another one');
  }
}

const KILL_WAIT_MS = 5_000;

/**
 * Kills a VM through its backend, or, when even attaching fails, its VMM process (only if provably that VMM), and
 * removes its runtime dir and host leftovers once the process is gone (waiting up to 5 s for it).
 */
async function killVm(record: VmRecord): Promise<void> {
  const instance = await backendByName(record.backend)
    .attach(record.id)
    .catch(() => undefined);
  if (instance) {
    await instance.kill();
    return;
  }
  const marker = record.processMarker ?? join(vmsRoot(), record.id);
  if (provenProcess(record.pid, marker)) process.kill(record.pid, 'SIGKILL');
  const deadline = Date.now() + KILL_WAIT_MS;
  while (processMatches(record.pid, marker) && Date.now() < deadline) await delay(50);
  liveVmRecord(record.id);
}
