import { JitvmError } from '../core/errors.js';
import type { SandboxApi } from '../sandbox/api.js';
import type { SandboxOptions } from '../sandbox/options.js';
import { Sandbox } from '../sandbox/sandbox.js';
import type { SandboxBudget } from './budget.js';

/**
 * How the session starts a sandbox; tests and embedders pass their own (e.g. to set `bootTimeoutMs`, or to start
 * sandboxes through a daemon).
 */
export type CreateSandbox = (options: SandboxOptions) => Promise<SandboxApi>;

/** Sandboxes one MCP session may hold at once, booting ones included. */
export const DEFAULT_MAX_SANDBOXES = 8;

export interface SandboxSessionOptions {
  readonly createSandbox?: CreateSandbox;
  readonly maxSandboxes?: number;
  /** A cap shared with other sessions (`jitvm mcp --listen`'s `--max-sandboxes-total`). */
  readonly budget?: SandboxBudget;
}

/** What list_sandboxes reports of one sandbox. */
export interface SessionSandboxInfo {
  readonly id: string;
  readonly createdAt: string;
  readonly fromSnapshot?: string;
}

interface Held {
  readonly sandbox: SandboxApi;
  readonly info: SessionSandboxInfo;
  /** Gives its place in the shared budget back. */
  readonly release: () => void;
}

/**
 * The sandboxes one MCP session created, by id. Refuses a sandbox past its cap; `close()` cancels the boots under
 * way and destroys every sandbox, and from then on refuses new ones.
 */
export class SandboxSession {
  private readonly held = new Map<string, Held>();
  private readonly booting = new Set<Promise<unknown>>();
  private readonly closing = new AbortController();
  private closed: Promise<void> | undefined;
  private readonly createSandbox: CreateSandbox;
  private readonly budget: SandboxBudget | undefined;
  readonly maxSandboxes: number;

  constructor(options: SandboxSessionOptions = {}) {
    this.createSandbox = options.createSandbox ?? ((sandboxOptions) => Sandbox.create(sandboxOptions));
    this.maxSandboxes = options.maxSandboxes ?? DEFAULT_MAX_SANDBOXES;
    this.budget = options.budget;
  }

  /** Starts a sandbox owned by this session; `signal` cancels its boot (as does `close()`). */
  async create(options: SandboxOptions, signal?: AbortSignal): Promise<SandboxApi> {
    if (this.closed) throw new JitvmError('invalid_state', 'this MCP session is closing: it starts no more sandboxes');
    if (this.held.size + this.booting.size >= this.maxSandboxes) {
      throw new JitvmError(
        'invalid_state',
        `this session already holds ${this.maxSandboxes} sandboxes, the most it may; ` +
          'destroy_sandbox one you no longer need (list_sandboxes shows them), then create again',
      );
    }
    const release = this.budget?.take() ?? (() => undefined);
    const booting = this.boot(options, signal, release);
    this.booting.add(booting);
    try {
      return await booting;
    } catch (error) {
      release();
      throw error;
    } finally {
      this.booting.delete(booting);
    }
  }

  /** Boots and registers a sandbox, or destroys it when the session closed meanwhile. */
  private async boot(
    options: SandboxOptions,
    signal: AbortSignal | undefined,
    release: () => void,
  ): Promise<SandboxApi> {
    const signals = signal ? [this.closing.signal, signal] : [this.closing.signal];
    const sandbox = await this.createSandbox({ ...options, signal: AbortSignal.any(signals) });
    if (this.closed) {
      await sandbox.destroy();
      throw new JitvmError('cancelled', 'this MCP session closed while the sandbox booted; it was destroyed');
    }
    const info = { id: sandbox.id, createdAt: new Date().toISOString(), fromSnapshot: options.fromSnapshot };
    this.held.set(sandbox.id, { sandbox, info, release });
    return sandbox;
  }

  /** The sandbox `id` of this session; refuses an id it did not create (or already destroyed). */
  get(id: string): SandboxApi {
    return this.entry(id).sandbox;
  }

  /** Destroys the sandbox `id` and forgets it. */
  async destroy(id: string): Promise<void> {
    const { sandbox, release } = this.entry(id);
    this.held.delete(id);
    await sandbox.destroy().finally(release);
  }

  private entry(id: string): Held {
    const held = this.held.get(id);
    if (!held) {
      throw new JitvmError(
        'not_found',
        `no sandbox "${id}" in this MCP session (destroyed, or never created here); ` +
          'call list_sandboxes for the live ids, or create_sandbox for a new one',
      );
    }
    return held;
  }

  list(): SessionSandboxInfo[] {
    return [...this.held.values()].map((held) => held.info);
  }

  /** Cancels the boots under way and destroys every sandbox of the session; idempotent, never rejects. */
  close(): Promise<void> {
    this.closed ??= this.destroyAll();
    return this.closed;
  }

  private async destroyAll(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled([...this.booting]);
    const held = [...this.held.values()];
    this.held.clear();
    await Promise.allSettled(held.map(({ sandbox, release }) => sandbox.destroy().finally(release)));
  }
}
