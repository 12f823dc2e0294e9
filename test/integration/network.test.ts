/**
 * Network modes on real QEMU guests; every server is one this test starts on the host's loopback.
 * `none`: no NIC at all. `nat`: QEMU user-mode networking, the gateway 10.0.2.2 being the host's loopback.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { startOrigin } from '../helpers/origin.js';
import { withSandbox } from '../helpers/sandbox.js';

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
