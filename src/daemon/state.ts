/**
 * The daemon's record of the VMs it owns, so a daemon started after one that died (kill -9, crash) can re-adopt them
 * or clean them up. Each daemon writes its own file, `<runtime dir>/daemon/<pid>.json` (0600, replaced atomically);
 * a file whose daemon is gone is claimed by renaming it, so two daemons starting at once never both take it.
 */
import { readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ensurePrivateDir, runtimeRoot } from '../core/paths.js';
import { parseJsonOrUndefined } from '../core/json.js';
import { PublishedPortSchema, SandboxConfigInfo } from './schemas.js';

/** One owned sandbox as saved: enough to re-adopt it with its deadlines and to describe it again. */
export const SavedSandboxSchema = z.object({
  id: z.string().regex(/^[a-z0-9-]{1,64}$/),
  createdAt: z.string(),
  expiresAt: z.number().int(),
  idleTimeoutMs: z.number().int().positive(),
  memoryMiB: z.number().int().positive(),
  config: SandboxConfigInfo,
  /** Its published ports, published again (on the same host ports when free) by the daemon that re-adopts it. */
  ports: z.array(PublishedPortSchema).default([]),
});
export type SavedSandbox = z.infer<typeof SavedSandboxSchema>;

const StateFileSchema = z.object({ version: z.literal(1), sandboxes: z.array(SavedSandboxSchema) });

/** `<runtime dir>/daemon`, created private (0700). */
export function defaultStateDir(): string {
  return ensurePrivateDir(path.join(runtimeRoot(), 'daemon'));
}

/** `<pid>.json`, or `<pid>.from-<old pid>.json` once claimed: the owner's pid comes first. */
const STATE_NAME = /^(\d+)(?:\.from-\d+)?\.json$/;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One daemon's state file, and the files it claimed from daemons that died. */
export class DaemonStateStore {
  private readonly file: string;
  private claimed: string[] = [];

  /** `pid`: this daemon's (a parameter so tests can play two daemons). */
  constructor(
    private readonly dir: string,
    private readonly pid: number = process.pid,
  ) {
    this.file = path.join(dir, `${pid}.json`);
  }

  /** Writes the owned sandboxes (atomically, 0600), then drops the files claimed from dead daemons. */
  save(sandboxes: readonly SavedSandbox[]): void {
    const temp = `${this.file}.tmp`;
    writeFileSync(temp, JSON.stringify({ version: 1, sandboxes }), { mode: 0o600 });
    renameSync(temp, this.file);
    for (const file of this.claimed) rmSync(file, { force: true });
    this.claimed = [];
  }

  /**
   * Takes over the files of daemons no longer running (and one left under this daemon's own pid by an earlier
   * process) and returns the sandboxes they list, each once. A damaged file is reported to `warn` and ignored; the
   * claimed files stay until the next `save`, so a crash in between leaves them for the next daemon.
   */
  claimOrphans(warn: (file: string, problem: string) => void): SavedSandbox[] {
    const found = new Map<string, SavedSandbox>();
    for (const name of this.orphanNames()) {
      const claimed = path.join(this.dir, `${this.pid}.from-${name.replace(STATE_NAME, '$1')}.json`);
      try {
        renameSync(path.join(this.dir, name), claimed);
      } catch {
        continue; // another daemon claimed it first
      }
      this.claimed.push(claimed);
      const parsed = StateFileSchema.safeParse(parseJsonOrUndefined(readText(claimed)));
      if (!parsed.success) {
        warn(claimed, 'not a daemon state file (damaged or from another version); its VMs are not re-adopted');
        continue;
      }
      for (const sandbox of parsed.data.sandboxes) found.set(sandbox.id, sandbox);
    }
    return [...found.values()];
  }

  /** Removes this daemon's file (after a graceful stop, once it owns nothing). */
  remove(): void {
    rmSync(this.file, { force: true });
  }

  private orphanNames(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names.filter((name) => {
      const owner = Number(STATE_NAME.exec(name)?.[1] ?? NaN);
      return Number.isInteger(owner) && (owner === this.pid || !pidAlive(owner));
    });
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
