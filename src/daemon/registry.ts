import { CancelledError, JitvmError } from '../core/errors.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { z } from 'zod';
import type { CreateSandboxBody, SandboxInfo } from './schemas.js';

type CreateOptions = z.output<typeof CreateSandboxBody>;

interface Entry {
  readonly sandbox: Sandbox;
  readonly options: CreateOptions;
  readonly createdAt: Date;
}

/** The sandboxes one daemon created and still owns; the daemon destroys them all when it stops. */
export class SandboxRegistry {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  /** Takes ownership of `sandbox`, created from `options`; once `destroyAll` ran, destroys it and refuses instead. */
  add(sandbox: Sandbox, options: CreateOptions): SandboxInfo {
    if (this.closed) {
      void sandbox.destroy();
      throw new CancelledError('the daemon is shutting down; the sandbox it was creating was destroyed');
    }
    const entry = { sandbox, options, createdAt: new Date() };
    this.entries.set(sandbox.id, entry);
    return describe(entry);
  }

  /** The sandbox `id`; refuses (not_found) one this daemon does not own. */
  get(id: string): Sandbox {
    return this.entry(id).sandbox;
  }

  info(id: string): SandboxInfo {
    return describe(this.entry(id));
  }

  list(): SandboxInfo[] {
    return [...this.entries.values()].map(describe);
  }

  /** Destroys the sandbox `id` and forgets it; refuses (not_found) one this daemon does not own. */
  async destroy(id: string): Promise<void> {
    const { sandbox } = this.entry(id);
    this.entries.delete(id);
    await sandbox.destroy();
  }

  /** Destroys every sandbox still owned, all at once; resolves when all are gone (failures are ignored: best effort). */
  async destroyAll(): Promise<void> {
    this.closed = true;
    const sandboxes = [...this.entries.values()].map((entry) => entry.sandbox);
    this.entries.clear();
    await Promise.allSettled(sandboxes.map((sandbox) => sandbox.destroy()));
  }

  private entry(id: string): Entry {
    const entry = this.entries.get(id);
    if (!entry) throw new JitvmError('not_found', `no sandbox ${id} in this daemon; GET /v1/sandboxes lists them`);
    return entry;
  }
}

function describe({ sandbox, options, createdAt }: Entry): SandboxInfo {
  return {
    id: sandbox.id,
    backend: sandbox.instance.backend,
    createdAt: createdAt.toISOString(),
    config: {
      cpus: options.cpus,
      memoryMiB: options.memoryMiB,
      arch: options.arch,
      network: options.network?.mode ?? 'none',
      fromSnapshot: options.fromSnapshot,
    },
    ports: sandbox.ports,
  };
}
