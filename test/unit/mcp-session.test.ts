import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CancelledError, JitvmError } from '../../src/core/errors.js';
import type { SandboxOptions } from '../../src/sandbox/options.js';
import type { SandboxApi } from '../../src/sandbox/api.js';
import { SandboxSession } from '../../src/mcp/session.js';
import { SandboxBudget } from '../../src/mcp/budget.js';

/** A boot that never finishes by itself: it ends only when its signal aborts, as Sandbox.create does. */
function bootUntilAborted(started: SandboxOptions[]): (options: SandboxOptions) => Promise<SandboxApi> {
  return (options) => {
    started.push(options);
    return new Promise((_, reject) =>
      options.signal!.addEventListener('abort', () => reject(new CancelledError('boot cancelled'))),
    );
  };
}

const hasCode = (code: string) => (error: unknown) => error instanceof JitvmError && error.code === code;

describe('SandboxSession', () => {
  it('counts boots under way against its cap, and close cancels them', async () => {
    const started: SandboxOptions[] = [];
    const session = new SandboxSession({ createSandbox: bootUntilAborted(started), maxSandboxes: 2 });
    const first = session.create({ cpus: 1 });
    const second = session.create({ cpus: 2 });
    await assert.rejects(session.create({}), /already holds 2 sandboxes.*destroy_sandbox/);
    assert.deepEqual(
      started.map((options) => options.cpus),
      [1, 2],
    );
    await session.close();
    await assert.rejects(first, hasCode('cancelled'));
    await assert.rejects(second, hasCode('cancelled'));
    await assert.rejects(session.create({}), /closing/);
  });

  it("cancels a boot when the request's own signal aborts", async () => {
    const session = new SandboxSession({ createSandbox: bootUntilAborted([]) });
    const request = new AbortController();
    const booting = session.create({}, request.signal);
    request.abort();
    await assert.rejects(booting, hasCode('cancelled'));
    await session.close();
  });

  it('refuses an id it does not hold, saying what to call instead', async () => {
    const session = new SandboxSession({ createSandbox: bootUntilAborted([]) });
    assert.throws(() => session.get('vm-unknown'), /no sandbox "vm-unknown".*list_sandboxes/);
    await assert.rejects(session.destroy('vm-unknown'), hasCode('not_found'));
    assert.deepEqual(session.list(), []);
  });

  it('shares a budget with other sessions: past it, resource_exhausted; destroys, failed boots and close give back', async () => {
    const budget = new SandboxBudget(2);
    let next = 0;
    const destroyed: string[] = [];
    const createSandbox = async (options: SandboxOptions): Promise<SandboxApi> => {
      if (options.fromSnapshot === 'broken') throw new JitvmError('boot_failed', 'no boot');
      const id = `vm-${next++}`;
      return { id, destroy: async () => void destroyed.push(id) } as SandboxApi;
    };
    const [one, two] = [new SandboxSession({ createSandbox, budget }), new SandboxSession({ createSandbox, budget })];
    const first = await one.create({});
    await two.create({});
    await assert.rejects(two.create({}), hasCode('resource_exhausted'));
    await assert.rejects(one.create({}), /holds 2 sandboxes across its sessions/);
    await one.destroy(first.id);
    await assert.rejects(two.create({ fromSnapshot: 'broken' }), hasCode('boot_failed'));
    await two.create({});
    await assert.rejects(one.create({}), hasCode('resource_exhausted'), 'the failed boot gave its place back, no more');
    await two.close();
    await one.create({});
    assert.deepEqual(destroyed.sort(), ['vm-0', 'vm-1', 'vm-2']);
    await one.close();
  });
});
