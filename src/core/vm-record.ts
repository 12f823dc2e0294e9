import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { VmConfig } from './config.js';
import { JitvmError } from './errors.js';
import { parseJsonOrUndefined } from './json.js';
import { vmsRoot } from './paths.js';
import { processMatches, provenProcess } from './process.js';

/** What a runtime dir's state.json says about a VM, so another process can find and drive it. */
export const VmRecordSchema = z.object({
  id: z.string().regex(/^[a-z0-9-]{1,64}$/),
  backend: z.string(),
  pid: z.number().int().positive(),
  createdAt: z.string(),
  detached: z.boolean(),
  /**
   * The process the VM belongs to, which it must not outlive: always for a VM that is not detached; for a detached
   * one only until the process creating it has it ready (`disownVmRecord`), so one that dies mid-create leaves no VM.
   */
  ownerPid: z.number().int().positive().optional(),
  controlSocket: z.string(),
  agentSocket: z.string(),
  consoleLog: z.string(),
  cpus: z.number().int(),
  memoryMiB: z.number().int(),
  arch: z.string(),
  accelerator: z.string(),
  /** What the VMM's command line contains, to tell it from a reused pid (default: the runtime dir). */
  processMarker: z.string().optional(),
  /** The chroot the VMM sees as `/`, when it runs jailed. */
  vmmRoot: z.string().optional(),
  /**
   * Host state outside the runtime dir to remove once the VMM is gone: directories, a cgroup (rmdir), and a host
   * NAT's TAP device and nftables table (family `ip`). Only jitvm's own names are accepted, so a damaged record cannot
   * make the reaper delete someone else's interface or firewall table.
   */
  cleanup: z
    .object({
      dirs: z.array(z.string()),
      cgroup: z.string().optional(),
      tap: z
        .string()
        .regex(/^jv[0-9a-f]{1,13}$/)
        .optional(),
      nftTable: z
        .string()
        .regex(/^jitvm_[a-z0-9_]{1,64}$/)
        .optional(),
    })
    .optional(),
  /** The VM's full config (a VmConfig, parsed where it is used: another jitvm version may have written it). */
  config: z.unknown().optional(),
  vmmVersion: z.string().optional(),
});
export type VmRecord = z.infer<typeof VmRecordSchema>;

const STATE_FILE = 'state.json';

/** Writes the record atomically into the VM's runtime dir. */
export function writeVmRecord(runtimeDir: string, record: VmRecord): void {
  const temp = join(runtimeDir, `${STATE_FILE}.tmp`);
  writeFileSync(temp, JSON.stringify(record, null, 2), { mode: 0o600 });
  renameSync(temp, join(runtimeDir, STATE_FILE));
}

/** A fresh VM id: `jv-` and 10 random hex digits. */
export function newVmId(): string {
  return `jv-${randomBytes(5).toString('hex')}`;
}

/** What a backend knows of a VM it just started; the rest of its record follows from the config and the moment. */
export type StartedVm = Omit<VmRecord, 'createdAt' | 'ownerPid' | 'cpus' | 'memoryMiB' | 'arch' | 'config'> & {
  readonly config: VmConfig;
};

/**
 * Writes the record of a VM that is already running, now, owned by this process (a detached VM until
 * `disownVmRecord`). If that fails
 * (disk full…), the VM is killed first, so no VMM is left running without the record `jitvm ls` and clean-up need.
 */
export async function recordRunningVm(
  vm: { kill(): Promise<unknown> },
  runtimeDir: string,
  started: StartedVm,
): Promise<void> {
  const { config } = started;
  try {
    writeVmRecord(runtimeDir, {
      ...started,
      createdAt: new Date().toISOString(),
      ownerPid: process.pid,
      cpus: config.cpus,
      memoryMiB: config.memoryMiB,
      arch: config.arch,
    });
  } catch (error) {
    await vm.kill();
    throw error;
  }
}

/** A detached VM is ready: from now on it outlives the process that created it (its record loses `ownerPid`). */
export function disownVmRecord(id: string): void {
  const record = readVmRecord(id);
  if (!record.detached) throw new JitvmError('internal', `VM ${id} is not detached: it cannot outlive its owner`);
  writeVmRecord(join(vmsRoot(), id), { ...record, ownerPid: undefined });
}

/** Reads a VM's record; not_found when no such VM exists, invalid_state when the file is damaged. */
export function readVmRecord(id: string): VmRecord {
  const path = join(vmsRoot(), id, STATE_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new JitvmError('not_found', `no sandbox with id ${id}; \`jitvm ls\` lists the running ones`);
  }
  const parsed = VmRecordSchema.safeParse(parseJsonOrUndefined(text));
  if (!parsed.success) throw new JitvmError('invalid_state', `${path} is damaged; \`jitvm ls\` removes it`);
  return parsed.data;
}

/**
 * The record of a VM whose VMM still runs. A VM that exited (or a damaged entry) has its runtime dir removed and
 * gives undefined. An entry without a record yet is a VM still starting in another process: undefined, kept.
 */
export function liveVmRecord(id: string): VmRecord | undefined {
  const runtimeDir = join(vmsRoot(), id);
  let record: VmRecord | undefined;
  try {
    record = readVmRecord(id);
  } catch (error) {
    if (error instanceof JitvmError && error.code === 'not_found') return undefined;
  }
  const marker = record?.processMarker ?? runtimeDir;
  if (record && processMatches(record.pid, marker)) {
    if (!orphaned(record)) return record;
    // Its owner died without taking it down (a jailed VMM loses the parent-death signal when it drops privileges).
    // A pid that cannot be proven to be that VMM (Windows reuses pids quickly) is left alone: only the record goes.
    if (provenProcess(record.pid, marker)) process.kill(record.pid, 'SIGKILL');
  }
  rmSync(runtimeDir, { recursive: true, force: true });
  if (record?.cleanup) removeHostLeftovers(record.cleanup);
  return undefined;
}

function orphaned(record: VmRecord): boolean {
  if (record.ownerPid === undefined) return false;
  try {
    process.kill(record.ownerPid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export type HostLeftovers = NonNullable<VmRecord['cleanup']>;

/**
 * Removes what a VM left outside its runtime dir; never throws for what is gone already. A cgroup can only be
 * rmdir'ed, and only once empty. A NAT's table and TAP cost one `nft` and one `ip` process.
 */
export function removeHostLeftovers(leftovers: HostLeftovers): void {
  for (const dir of leftovers.dirs) rmSync(dir, { recursive: true, force: true });
  if (leftovers.cgroup) {
    try {
      rmdirSync(leftovers.cgroup);
    } catch {
      // already gone, or the kernel still counts a dying process in it
    }
  }
  if (leftovers.nftTable) runQuietly('nft', ['delete', 'table', 'ip', leftovers.nftTable]);
  if (leftovers.tap) runQuietly('ip', ['link', 'del', leftovers.tap]);
}

/** Runs a removal whose only failures are "already gone" or "cannot be done here", neither of which is ours to fix. */
function runQuietly(program: string, args: readonly string[]): void {
  spawnSync(program, args, { stdio: 'ignore', timeout: 5000 });
}

/** The record of a running VM, or not_found saying it is not running. */
export function requireLiveVmRecord(id: string): VmRecord {
  const record = liveVmRecord(id);
  if (!record) {
    throw new JitvmError('not_found', `sandbox ${id} is not running (unknown id, or its VM exited and was cleaned up)`);
  }
  return record;
}

/** Ids of every runtime dir, live or stale. */
export function listVmIds(): string[] {
  try {
    return readdirSync(vmsRoot(), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  } catch {
    return [];
  }
}
