/**
 * SET_IDENTITY in real VMs (the agent as PID 1, QEMU TCG): the guest takes the host's entropy, clock and hostname, and
 * clones of one snapshot stop drawing the same random bytes.
 *
 * Why the fork test below is not a tautology. Debian's 6.1 kernel (drivers/char/random.c, Linux 5.18 and later):
 *  - /dev/urandom output comes from a per-CPU ChaCha key advanced on every use (`crng_make_state`, fast key erasure),
 *    which a restored clone resumes with, identical in every clone. It changes only when the base key is replaced
 *    (`crng_reseed`: a key extracted from the input pool plus the cycle counter, generation bumped), which the kernel
 *    does by itself only once the previous reseed is `max(1 s, uptime / 2)` old (60 s after the first two minutes).
 *  - Until the CRNG is ready, each read re-extracts from the pool with cycle-counter jitter, so clones differ anyway.
 *    Under TCG without RDRAND this image's CRNG is still not ready two minutes after boot (entropy_avail 23): the
 *    source is therefore given SET_IDENTITY first, which credits 256+ bits (ready) and reseeds, and it is snapshotted
 *    once uptime / 2 leaves seconds of margin before the kernel's own next reseed.
 *  So the clones' first reads are asserted identical (the hazard, shown), then each clone gets its own entropy and its
 *  reads are asserted pairwise different. SET_IDENTITY's RNDADDENTROPY hashes the bytes into the input pool
 *  (`write_pool_user`, which fails unless all were taken) and RNDRESEEDCRNG replaces the base key with one extracted
 *  from that pool: every byte read after the OK depends on the clone's own entropy.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { backendByName } from '../../src/backends/index.js';
import type { AgentConnection } from '../../src/channel/client.js';
import { setIdentity } from '../../src/channel/identity.js';
import { Capability, MsgType } from '../../src/channel/protocol.js';
import { PayloadWriter } from '../../src/channel/wire.js';
import { GuestError } from '../../src/core/errors.js';
import type { VmInstance } from '../../src/core/hypervisor.js';
import { reconnectAgent } from '../../src/sandbox/boot.js';
import { runCommand } from '../../src/sandbox/command.js';
import type { Sandbox } from '../../src/sandbox/sandbox.js';
import { BOOT_TIMEOUT_MS, explained, sharedSandbox, withSandbox } from '../helpers/sandbox.js';

const sandbox = sharedSandbox();

/**
 * The sandbox's agent connection. Sandbox has no public way to send SET_IDENTITY yet (restore will call setIdentity
 * itself); until it has, the test reaches the private field it keeps the connection in.
 */
function agentOf(box: Sandbox): AgentConnection {
  return (box as unknown as { connection: AgentConnection }).connection;
}

async function output(box: Sandbox, command: string): Promise<string> {
  const result = await box.exec(command);
  assert.equal(result.exitCode, 0, `${command}: ${result.stderr}`);
  return result.stdout.trim();
}

async function urandom32(connection: AgentConnection): Promise<string> {
  const result = await runCommand(connection, ['head', '-c', '32', '/dev/urandom']);
  assert.equal(result.stdoutBytes.length, 32);
  return result.stdoutBytes.toString('hex');
}

async function guestSeconds(box: Sandbox): Promise<number> {
  return Number(await output(box, 'date +%s'));
}

describe('clone identity in a real VM', () => {
  it(
    'offers the IDENTITY capability when the agent runs as PID 1',
    explained(sandbox, async (box) => {
      assert.notEqual(agentOf(box).info!.capabilities & Capability.IDENTITY, 0);
    }),
  );

  it(
    "sets the guest clock: to a time far from the host's, then back to the host's",
    explained(sandbox, async (box) => {
      await setIdentity(agentOf(box), { nowNs: 1_000_000_000n * 1_000_000_000n });
      const set = await guestSeconds(box);
      assert.ok(set >= 1_000_000_000 && set < 1_000_000_030, `guest clock reads ${set}, expected ~1000000000`);
      await setIdentity(agentOf(box));
      const drift = (await guestSeconds(box)) - Date.now() / 1000;
      assert.ok(Math.abs(drift) < 5, `guest clock is ${drift.toFixed(1)} s off the host's`);
    }),
  );

  it(
    'sets the hostname in the kernel and in /etc/hostname',
    explained(sandbox, async (box) => {
      assert.equal(await output(box, 'hostname'), box.id, 'Sandbox.create names the guest after the sandbox');
      await setIdentity(agentOf(box), { hostname: 'clone-a1.pool' });
      assert.equal(await output(box, 'hostname'), 'clone-a1.pool');
      assert.equal(await output(box, 'cat /proc/sys/kernel/hostname'), 'clone-a1.pool');
      assert.equal((await box.files.read('/etc/hostname')).toString(), 'clone-a1.pool\n');
    }),
  );

  it(
    'reseeds the kernel RNG: the ioctls succeed and credit the entropy',
    explained(sandbox, async (box) => {
      const before = await urandom32(agentOf(box));
      // Reaching OK means RNDADDENTROPY and RNDRESEEDCRNG both returned 0 in the guest kernel; the credit made the
      // CRNG ready, which it is not by itself in this image (entropy_avail stays far below 256 under TCG).
      await setIdentity(agentOf(box), { entropy: randomBytes(32) });
      assert.equal(await output(box, 'cat /proc/sys/kernel/random/entropy_avail'), '256');
      await setIdentity(agentOf(box), { entropy: randomBytes(512) });
      assert.notEqual(await urandom32(agentOf(box)), before);
    }),
  );

  it(
    "refuses out-of-range values in the agent itself, changing nothing (the host's checks bypassed)",
    explained(sandbox, async (box) => {
      const hostname = await output(box, 'hostname');
      const send = (name: string, entropyBytes: number) =>
        agentOf(box).request(
          MsgType.SET_IDENTITY,
          new PayloadWriter().u64(1n).str(name).bytes(randomBytes(entropyBytes)).finish(),
          MsgType.OK,
        );
      const invalid = (error: unknown) => error instanceof GuestError && error.guestCode === 'INVALID_ARGUMENT';
      await assert.rejects(send('ok-name', 31), invalid);
      await assert.rejects(send('ok-name', 513), invalid);
      await assert.rejects(send('bad name', 64), invalid);
      await assert.rejects(send('x'.repeat(65), 64), invalid);
      // Each refusal came before any step: the hostname stands and the clock was not set to 1 ns after 1970.
      assert.equal(await output(box, 'hostname'), hostname);
      assert.ok((await guestSeconds(box)) > 1_600_000_000);
    }),
  );

  it('gives clones of one snapshot, which read identical /dev/urandom bytes, different ones', async (t) => {
    const qemu = backendByName('qemu');
    if (!qemu.capabilities.snapshot) return t.skip(`the qemu backend cannot snapshot on ${process.platform}`);
    const dir = mkdtempSync(join(tmpdir(), 'jitvm-clone-identity-'));
    const instances: VmInstance[] = [];
    const connections: AgentConnection[] = [];
    try {
      await withSandbox(
        async (source) => {
          await source.exec(['sh', '-c', 'while [ $(cut -d. -f1 /proc/uptime) -lt 10 ]; do sleep 1; done']);
          await setIdentity(agentOf(source));
          const snapshot = await source.instance.snapshot(join(dir, 'snapshot'));
          // Each clone reads right after its restore, well within the 5 s before its kernel would reseed by itself.
          const before: string[] = [];
          for (let i = 0; i < 3; i++) {
            instances.push(await qemu.restore(snapshot));
            connections.push(await reconnectAgent(instances[i]!, BOOT_TIMEOUT_MS));
            before.push(await urandom32(connections[i]!));
          }
          assert.equal(new Set(before).size, 1, `clones read ${before.join(', ')}: expected the same bytes`);
          for (const connection of connections) await setIdentity(connection);
          const after = await Promise.all(connections.map(urandom32));
          assert.equal(new Set(after).size, 3, `clones read ${after.join(', ')} after SET_IDENTITY`);
        },
        { backend: 'qemu' },
      );
    } finally {
      for (const connection of connections) connection.close();
      await Promise.all(instances.map((instance) => instance.kill()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
