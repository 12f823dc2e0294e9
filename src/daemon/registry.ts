import { CancelledError, JitvmError } from '../core/errors.js';
import { listVmIds, liveVmRecord, readVmRecord } from '../core/vm-record.js';
import { Sandbox } from '../sandbox/sandbox.js';
import type { z } from 'zod';
import { type AdoptionLog, adoptSandboxes } from './lifecycle-adopt.js';
import {
  DEFAULT_SANDBOX_MEMORY_MIB,
  type Deadlines,
  type ExpiryReason,
  type Limits,
  checkLimits,
  expiryReason,
  idleExpiresAt,
  initialDeadlines,
} from './lifecycle.js';
import type { CreateSandboxBody, SandboxInfo } from './schemas.js';
import type { DaemonStateStore, SavedSandbox } from './state.js';
import { runsDetached } from './detach.js';
import type { PortForwardInput, PublishedPort } from '../sandbox/ports.js';

type CreateOptions = z.output<typeof CreateSandboxBody>;

interface Entry {
  readonly sandbox: Sandbox;
  readonly createdAt: Date;
  readonly config: SandboxInfo['config'];
  readonly memoryMiB: number;
  deadlines: Deadlines;
  lastActiveAt: number;
  /** Requests on this sandbox still open (a streaming exec counts until its response ends). */
  busy: number;
}

/** How a registry is set up. */
export interface RegistryOptions {
  readonly limits: Limits;
  /** Where the owned sandboxes are saved for a later daemon; without one nothing is saved or re-adopted. */
  readonly store?: DaemonStateStore;
  /** Told about expired, re-adopted and discarded sandboxes. */
  readonly log: AdoptionLog;
}

/**
 * The sandboxes one daemon created (or re-adopted) and still owns: their deadlines, the limits on creating more, and
 * the saved list a restarted daemon re-adopts. The daemon destroys them all when it stops.
 */
export class SandboxRegistry {
  private readonly entries = new Map<string, Entry>();
  /** Creations in flight: memory reserved before booting, so concurrent creates cannot pass the limits together. */
  private readonly reserved = new Set<{ memoryMiB: number }>();
  private reaper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: RegistryOptions) {}

  /**
   * Boots a sandbox (detached where the backend can, so it can outlive a daemon that dies and be re-adopted) and
   * takes ownership of it.
   * Refused before booting (LimitExceededError) when it would pass the count or memory limit; once `destroyAll`
   * ran, or when `signal` aborts (the client went away), the new sandbox is destroyed and the call refused.
   */
  async create(body: CreateOptions, signal?: AbortSignal): Promise<SandboxInfo> {
    const { timeoutMs, idleTimeoutMs, ...options } = body;
    const reservation = { memoryMiB: options.memoryMiB ?? DEFAULT_SANDBOX_MEMORY_MIB };
    checkLimits(this.usage(), reservation.memoryMiB, this.options.limits);
    this.reserved.add(reservation);
    let sandbox: Sandbox;
    try {
      sandbox = await Sandbox.create({ ...options, detached: await runsDetached(options), signal });
    } finally {
      this.reserved.delete(reservation);
    }
    if (this.closed || signal?.aborted) {
      await sandbox.destroy();
      const why = this.closed ? 'the daemon is shutting down' : 'the client went away';
      throw new CancelledError(`${why}; the sandbox being created for it was destroyed`);
    }
    const now = Date.now();
    const entry: Entry = {
      sandbox,
      createdAt: new Date(now),
      config: configInfo(options),
      memoryMiB: readVmRecord(sandbox.id).memoryMiB,
      deadlines: initialDeadlines(now, { timeoutMs, idleTimeoutMs }),
      lastActiveAt: now,
      busy: 0,
    };
    this.entries.set(sandbox.id, entry);
    this.save();
    return describe(entry);
  }

  /** The sandbox `id`, counted as activity; refuses (not_found) one this daemon does not own. */
  get(id: string): Sandbox {
    return this.touch(id).sandbox;
  }

  /** What the daemon reports about `id` (counted as activity). */
  info(id: string): SandboxInfo {
    return describe(this.touch(id));
  }

  list(): SandboxInfo[] {
    return [...this.entries.values()].map((entry) => describe(entry));
  }

  /** Publishes a guest port of `id` (see `Sandbox.publishPort`) and saves it, so a re-adopting daemon publishes it too. */
  async publishPort(id: string, forward: PortForwardInput): Promise<PublishedPort> {
    const host = await this.touch(id).sandbox.publishPort(forward);
    this.save();
    return { guest: forward.guest, host };
  }

  /** Sets the absolute deadline of `id` to `timeoutMs` from now (shorter or longer than before). */
  setTimeout(id: string, timeoutMs: number): SandboxInfo {
    const entry = this.touch(id);
    entry.deadlines = { ...entry.deadlines, expiresAt: Date.now() + timeoutMs };
    this.save();
    return describe(entry);
  }

  /**
   * Marks a request on `id` as open until the returned function is called: the sandbox is not idle meanwhile. An id
   * this daemon does not own is ignored (the route answers 404 itself).
   */
  beginActivity(id: string): () => void {
    const entry = this.entries.get(id);
    if (!entry) return () => undefined;
    entry.busy++;
    return () => {
      entry.busy--;
      entry.lastActiveAt = Date.now();
    };
  }

  /**
   * Destroys the sandbox `id` (`graceful`: the guest is asked to power off first) and forgets it; refuses
   * (not_found) one this daemon does not own.
   */
  async destroy(id: string, options: { graceful?: boolean } = {}): Promise<void> {
    const { sandbox } = this.entry(id);
    this.entries.delete(id);
    this.save();
    await sandbox.destroy(options);
  }

  /**
   * Re-adopts the sandboxes saved by daemons that died (see DaemonStateStore), with their deadlines; those whose VM
   * cannot be reached again are killed. Their idle clock restarts now. First, VMs of this runtime dir whose owner
   * died before they were ready are killed. Without a store, does nothing.
   */
  async adoptOrphans(): Promise<void> {
    const { store, log } = this.options;
    if (!store) return;
    for (const id of listVmIds()) liveVmRecord(id);
    const saved = store.claimOrphans((file, problem) => log.warn({ file }, problem));
    for (const { saved: entry, sandbox } of await adoptSandboxes(saved, log)) {
      this.entries.set(sandbox.id, {
        sandbox,
        createdAt: new Date(entry.createdAt),
        config: entry.config,
        memoryMiB: entry.memoryMiB,
        deadlines: { expiresAt: entry.expiresAt, idleTimeoutMs: entry.idleTimeoutMs },
        lastActiveAt: Date.now(),
        busy: 0,
      });
    }
    this.save();
  }

  /**
   * Checks every `intervalMs` (unref'd: it never keeps the process alive) for expired sandboxes and destroys them,
   * telling `onExpired`. Stopped by `destroyAll`.
   */
  startReaper(intervalMs: number, onExpired: (id: string, reason: ExpiryReason) => void): void {
    this.reaper = setInterval(() => void this.reap(Date.now(), onExpired), intervalMs);
    this.reaper.unref();
  }

  /** Destroys the sandboxes expired at `now`; resolves when they are gone (a failed destroy is ignored). */
  async reap(now: number, onExpired: (id: string, reason: ExpiryReason) => void): Promise<void> {
    const expired = [...this.entries].flatMap(([id, entry]) => {
      const reason = expiryReason(entry.deadlines, entry, now);
      return reason ? [{ id, reason }] : [];
    });
    await Promise.allSettled(
      expired.map(async ({ id, reason }) => {
        onExpired(id, reason);
        await this.destroy(id);
      }),
    );
  }

  /**
   * Destroys every sandbox still owned, all at once; resolves when all are gone. The saved list is removed, or keeps
   * only those whose destroy failed, for the next daemon to kill.
   */
  async destroyAll(): Promise<void> {
    this.closed = true;
    clearInterval(this.reaper);
    const entries = [...this.entries];
    this.entries.clear();
    const results = await Promise.allSettled(entries.map(([, entry]) => entry.sandbox.destroy()));
    const failed = entries.filter((_, i) => results[i]!.status === 'rejected');
    if (failed.length > 0) this.options.store?.save(failed.map(([id, entry]) => saved(id, entry)));
    else this.options.store?.remove();
  }

  private usage(): { sandboxes: number; memoryMiB: number } {
    const held = [...this.entries.values(), ...this.reserved];
    return { sandboxes: held.length, memoryMiB: held.reduce((sum, { memoryMiB }) => sum + memoryMiB, 0) };
  }

  private touch(id: string): Entry {
    const entry = this.entry(id);
    entry.lastActiveAt = Date.now();
    return entry;
  }

  private entry(id: string): Entry {
    const entry = this.entries.get(id);
    if (!entry) throw new JitvmError('not_found', `no sandbox ${id} in this daemon; GET /v1/sandboxes lists them`);
    return entry;
  }

  /** Saves the owned sandboxes for a later daemon (a no-op without a store). */
  private save(): void {
    this.options.store?.save([...this.entries].map(([id, entry]) => saved(id, entry)));
  }
}

function configInfo(options: Omit<CreateOptions, 'timeoutMs' | 'idleTimeoutMs'>): SandboxInfo['config'] {
  return {
    cpus: options.cpus,
    memoryMiB: options.memoryMiB,
    arch: options.arch,
    network: options.network?.mode ?? 'none',
    fromSnapshot: options.fromSnapshot,
  };
}

function saved(id: string, entry: Entry): SavedSandbox {
  const { createdAt, deadlines, memoryMiB, config } = entry;
  return { id, createdAt: createdAt.toISOString(), ...deadlines, memoryMiB, config, ports: entry.sandbox.ports };
}

function describe(entry: Entry, now = Date.now()): SandboxInfo {
  const { sandbox, createdAt, config, deadlines } = entry;
  return {
    id: sandbox.id,
    backend: sandbox.instance.backend,
    createdAt: createdAt.toISOString(),
    expiresAt: new Date(deadlines.expiresAt).toISOString(),
    idleExpiresAt: new Date(idleExpiresAt(deadlines, entry, now)).toISOString(),
    config,
    ports: sandbox.ports,
  };
}
