import { readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { JitvmError } from './errors.js';
import { vmsRoot } from './paths.js';

/** What a runtime dir's state.json says about a VM, so another process can find and drive it. */
export const VmRecordSchema = z.object({
  id: z.string().regex(/^[a-z0-9-]{1,64}$/),
  backend: z.string(),
  pid: z.number().int().positive(),
  createdAt: z.string(),
  detached: z.boolean(),
  controlSocket: z.string(),
  agentSocket: z.string(),
  consoleLog: z.string(),
  cpus: z.number().int(),
  memoryMiB: z.number().int(),
  arch: z.string(),
  accelerator: z.string(),
});
export type VmRecord = z.infer<typeof VmRecordSchema>;

const STATE_FILE = 'state.json';

/** Writes the record atomically into the VM's runtime dir. */
export function writeVmRecord(runtimeDir: string, record: VmRecord): void {
  const temp = join(runtimeDir, `${STATE_FILE}.tmp`);
  writeFileSync(temp, JSON.stringify(record, null, 2), { mode: 0o600 });
  renameSync(temp, join(runtimeDir, STATE_FILE));
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
  const parsed = VmRecordSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new JitvmError('invalid_state', `${path} is damaged; remove it with \`jitvm rm ${id}\``);
  return parsed.data;
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
