/**
 * Network modes on real QEMU guests; every server is one this test starts on the host's loopback.
 * `none`: no NIC at all. `nat`: QEMU user-mode networking, the gateway 10.0.2.2 being the host's loopback.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { startOrigin } from '../helpers/origin.js';
import { BOOT_TIMEOUT_MS, withSandbox } from '../helpers/sandbox.js';
import { tempDir, withEnv } from '../helpers/temp.js';

/** busybox wget bounded by `timeout` (Debian's static busybox wget crashes on its own `-T`): the body, or a failure. */
function fetchIn(url: string): string[] {
  return ['timeout', '10', 'wget', '-q', '-O', '-', url];
}

it('mode none (the default): the guest has only lo, which is up, and reaches nothing', async (t) => {
  const origin = await startOrigin(t);
  await withSandbox(async (sandbox) => {
    const nics = await sandbox.exec(['ls', '/sys/class/net']);
    assert.deepEqual(nics.stdout.split(/\s+/).filter(Boolean), ['lo']);
    const lo = await sandbox.exec(['cat', '/sys/class/net/lo/operstate', '/sys/class/net/lo/flags']);
    assert.match(lo.stdout, /0x9/, 'lo is up (IFF_UP|IFF_LOOPBACK)');
    const out = await sandbox.exec(fetchIn(`http://10.0.2.2:${origin.port}/`));
    assert.notEqual(out.exitCode, 0);
    assert.equal(origin.requests.length, 0);
  });
});

it('mode nat: the agent configures eth0 and DNS, and the guest fetches from the host loopback via 10.0.2.2', async (t) => {
  const origin = await startOrigin(t, 'via nat');
  await withSandbox(
    async (sandbox) => {
      const address = await sandbox.exec(['ip', '-4', 'addr', 'show', 'eth0']);
      assert.match(address.stdout, /inet 10\.0\.2\.15\/24/);
      const route = await sandbox.exec(['ip', 'route']);
      assert.match(route.stdout, /default via 10\.0\.2\.2/);
      assert.equal((await sandbox.files.read('/etc/resolv.conf')).toString(), 'nameserver 10.0.2.3\n');
      const out = await sandbox.exec(fetchIn(`http://10.0.2.2:${origin.port}/hello`));
      assert.equal(out.stdout, 'via nat /hello', out.stderr);
      assert.equal(origin.requests.length, 1);
    },
    { network: { mode: 'nat' } },
  );
});

it('mode nat with DHCP (what vfkit uses): udhcpc gets the same lease from QEMU', async (t) => {
  const origin = await startOrigin(t, 'dhcp');
  await withSandbox(
    async (sandbox) => {
      const address = await sandbox.exec(['ip', '-4', 'addr', 'show', 'eth0']);
      assert.match(address.stdout, /inet 10\.0\.2\.15\/24/);
      const out = await sandbox.exec(fetchIn(`http://10.0.2.2:${origin.port}/d`));
      assert.equal(out.stdout, 'dhcp /d', out.stderr);
    },
    { network: { mode: 'nat' }, kernelArgs: ['jitvm.net=dhcp'] },
  );
});

/** Whether /proc/net/tcp shows a listener on `port` at an address other than 127.0.0.1. */
function listensBeyondLoopback(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const rows = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((path) => readFileSync(path, 'utf8').split('\n').slice(1));
  const listeners = rows.map((row) => row.trim().split(/\s+/)).filter((cols) => cols[3] === '0A');
  const local = listeners.map((cols) => cols[1] ?? '').filter((address) => address.endsWith(`:${hexPort}`));
  assert.ok(local.length > 0, `something listens on ${port}`);
  return local.some((address) => !address.startsWith('0100007F:'));
}

it('publishes a guest port on the host loopback only, in network mode none, and reports it', async () => {
  await withSandbox(
    async (sandbox) => {
      const [published] = sandbox.ports;
      assert.equal(published?.guest, 8080);
      assert.equal(sandbox.getHost(8080), `127.0.0.1:${published.host}`);
      assert.equal(listensBeyondLoopback(published.host), false);
      const server = sandbox.spawn([
        'sh',
        '-c',
        'echo guest-web > /tmp/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp',
      ]);
      try {
        const body = await fetchWithRetry(`http://${sandbox.getHost(8080)}/index.html`);
        assert.equal(body, 'guest-web\n');
        const extra = await sandbox.publishPort({ guest: 8080 + 1 });
        assert.notEqual(extra, published.host);
        assert.throws(() => sandbox.getHost(9999), /guest port 9999 is not published/);
      } finally {
        server.kill();
      }
    },
    { ports: [{ guest: 8080 }] },
  );
});

/** The guest's server starts in the background: retry until it answers (bounded). */
async function fetchWithRetry(url: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(url);
      return await response.text();
    } catch (error) {
      if (attempt > 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

it('mode allowlist: a listed name is reachable through the proxy; an unlisted name, a raw IP and the host loopback are not', async (t) => {
  const origin = await startOrigin(t, 'allowed');
  const decisions: string[] = [];
  await withSandbox(
    async (sandbox) => {
      const nics = await sandbox.exec(['ls', '/sys/class/net']);
      assert.deepEqual(nics.stdout.split(/\s+/).filter(Boolean), ['lo'], 'no NIC: the proxy is the only way out');
      const listed = await sandbox.exec(fetchIn(`http://allowed.test:${origin.port}/get`));
      assert.equal(listed.stdout, 'allowed /get', listed.stderr);
      const tunnel = await sandbox.exec([
        'sh',
        '-c',
        `printf 'CONNECT allowed.test:${origin.port} HTTP/1.1\\r\\n\\r\\nGET /tunnel HTTP/1.0\\r\\n\\r\\n' | timeout 10 nc 127.0.0.1 3128`,
      ]);
      assert.match(tunnel.stdout, /^HTTP\/1\.1 200/);
      assert.match(tunnel.stdout, /allowed \/tunnel$/);
      for (const url of [
        `http://unlisted.test:${origin.port}/`,
        `http://127.0.0.1:${origin.port}/`,
        `http://10.0.2.2:${origin.port}/`,
      ]) {
        const refused = await sandbox.exec(fetchIn(url));
        assert.notEqual(refused.exitCode, 0, url);
        assert.match(refused.stderr, /403 Forbidden/, url);
      }
      const direct = await sandbox.exec([
        'sh',
        '-c',
        `unset http_proxy; ${fetchIn(`http://10.0.2.2:${origin.port}/`).join(' ')}`,
      ]);
      assert.match(direct.stderr, /Network is unreachable/);
      assert.deepEqual(
        origin.requests.map((request) => request.url),
        ['/get', '/tunnel'],
      );
      assert.ok(
        decisions.some((line) => /unlisted\.test.*not in the allowlist/.test(line)),
        decisions.join('\n'),
      );
    },
    {
      network: { mode: 'allowlist', allow: ['allowed.test'], hosts: { 'allowed.test': '127.0.0.1' } },
      onEgressDecision: (decision) => decisions.push(decision.message),
    },
  );
});

it('mode nat with hosts: the names go to the guest /etc/hosts', async (t) => {
  const origin = await startOrigin(t, 'named');
  await withSandbox(
    async (sandbox) => {
      const hosts = (await sandbox.files.read('/etc/hosts')).toString();
      assert.match(hosts, /10\.0\.2\.2\torigin\.test/);
      const out = await sandbox.exec(fetchIn(`http://origin.test:${origin.port}/n`));
      assert.equal(out.stdout, 'named /n', out.stderr);
    },
    { network: { mode: 'nat', hosts: { 'origin.test': '10.0.2.2' } } },
  );
});

it('clones keep their network: a fork of an allowlist sandbox gets its own proxy, a nat clone its own NAT', async (t) => {
  withEnv(t, 'JITVM_SNAPSHOT_DIR', tempDir(t));
  const origin = await startOrigin(t, 'clone');
  const source = await Sandbox.create({
    network: { mode: 'allowlist', allow: ['allowed.test'], hosts: { 'allowed.test': '127.0.0.1' } },
    bootTimeoutMs: BOOT_TIMEOUT_MS,
  });
  await source.snapshot({ name: 'allowlisted', then: 'destroy' });
  const [clone] = await Sandbox.fork('allowlisted', { count: 1 });
  try {
    const out = await clone!.exec(fetchIn(`http://allowed.test:${origin.port}/fork`));
    assert.equal(out.stdout, 'clone /fork', out.stderr);
    assert.match((await clone!.exec(fetchIn(`http://other.test:${origin.port}/`))).stderr, /403 Forbidden/);
  } finally {
    await clone?.destroy();
  }
  const nat = await Sandbox.create({ network: { mode: 'nat' }, bootTimeoutMs: BOOT_TIMEOUT_MS });
  await nat.snapshot({ name: 'natted', then: 'destroy' });
  await using restored = await Sandbox.create({ fromSnapshot: 'natted' });
  const out = await restored.exec(fetchIn(`http://10.0.2.2:${origin.port}/nat`));
  assert.equal(out.stdout, 'clone /nat', out.stderr);
});
