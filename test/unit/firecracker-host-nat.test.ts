/**
 * The pure half of Firecracker's host NAT: names, the /30 it picks around the host's own networks, the guest's MAC and
 * DNS server, its boot argument and nftables ruleset; and the preconditions, on injected hosts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { natLeftovers, requireNatHost } from '../../src/backends/firecracker/host-nat.js';
import {
  type HostInterfaces,
  IpAddrSchema,
  firstNameserver,
  natBootArg,
  natRuleset,
  natTableName,
  natTapName,
  planHostNat,
} from '../../src/backends/firecracker/nat-plan.js';
import { JitvmError } from '../../src/core/errors.js';
import { VmRecordSchema } from '../../src/core/vm-record.js';

const iface = (ifname: string, ...cidrs: string[]): HostInterfaces[number] => ({
  ifname,
  addr_info: cidrs.map((cidr) => {
    const [local, prefix] = cidr.split('/');
    return { family: 'inet', local, prefixlen: Number(prefix) };
  }),
});
const plan = (id: string, interfaces: HostInterfaces = [], resolvConf = 'nameserver 192.0.2.53\n') =>
  planHostNat({ id, owner: 0, interfaces, resolvConf });

describe('host NAT plan', () => {
  it('names the TAP jv + 10 hex digits (within IFNAMSIZ) and the table after the id, the same every time', () => {
    for (const id of ['jv-0123456789', 'a', 'x'.repeat(64)]) {
      assert.match(natTapName(id), /^jv[0-9a-f]{10}$/);
      assert.equal(natTapName(id), natTapName(id));
    }
    assert.notEqual(natTapName('jv-0123456789'), natTapName('jv-0123456788'));
    assert.equal(natTableName('jv-0123456789'), 'jitvm_jv_0123456789');
  });

  it('gives a /30 of 172.30.0.0/16 with the host on .1 and the guest on .2, varying with the id', () => {
    const subnets = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const p = plan(`jv-${i}`);
      const [a, b, c, d] = p.subnet.replace('/30', '').split('.').map(Number);
      assert.deepEqual([a, b, d! % 4, p.subnet.endsWith('/30')], [172, 30, 0, true], p.subnet);
      assert.equal(p.host, `172.30.${c}.${d! + 1}`);
      assert.equal(p.guest, `172.30.${c}.${d! + 2}`);
      subnets.add(p.subnet);
    }
    assert.ok(subnets.size > 15, 'ids spread over the pool');
  });

  it('skips every /30 that overlaps a network on the host, whatever its prefix', () => {
    const first = plan('jv-a');
    const base = first.subnet.replace(/\.\d+\/30$/, '');
    const next = plan('jv-a', [iface('eth0', '10.0.0.5/8', `${base}.77/24`)]);
    assert.notEqual(next.subnet.replace(/\.\d+\/30$/, ''), base, `${next.subnet} is clear of ${base}.0/24`);
    assert.deepEqual(plan('jv-a', [iface('eth0', '192.168.1.9/24'), iface('lo', '127.0.0.1/8')]), first);
  });

  it('refuses when all of 172.30.0.0/16 is in use, and when the TAP name is already taken', () => {
    assert.throws(
      () => plan('jv-a', [iface('br0', '172.30.128.1/17'), iface('br1', '172.30.0.1/17')]),
      (error: unknown) =>
        error instanceof JitvmError && error.code === 'unsupported' && /every \/30/.test(error.message),
    );
    assert.throws(
      () => plan('jv-a', [iface(natTapName('jv-a'))]),
      (error: unknown) =>
        error instanceof JitvmError &&
        error.code === 'invalid_state' &&
        error.message.includes(`ip link del ${natTapName('jv-a')}`),
    );
  });

  it('derives a locally administered unicast MAC from the id unless the config gives one', () => {
    const mac = plan('jv-a').mac;
    assert.match(mac, /^06:00(:[0-9a-f]{2}){4}$/);
    assert.equal(plan('jv-a').mac, mac);
    const given = planHostNat({ id: 'jv-a', mac: '06:AA:00:00:00:01', owner: 0, interfaces: [], resolvConf: '' });
    assert.equal(given.mac, '06:aa:00:00:00:01');
  });

  it("takes the host's first IPv4 nameserver that is not loopback, and none rather than an invented one", () => {
    const conf = '# generated\nsearch example.test\nnameserver 127.0.0.53\nnameserver fd00::1\nnameserver 10.1.2.3\n';
    assert.equal(firstNameserver(conf), '10.1.2.3');
    assert.equal(firstNameserver('nameserver\t192.0.2.1 \nnameserver 192.0.2.2'), '192.0.2.1');
    assert.equal(firstNameserver('nameserver 127.0.0.53\noptions edns0 trust-ad\n'), undefined);
    assert.equal(firstNameserver(''), undefined);
  });

  it('tells the agent its address, gateway and DNS server, standing in the gateway when the host has none', () => {
    const p = plan('jv-a');
    assert.equal(natBootArg(p), `jitvm.net=${p.guest}/30,${p.host},192.0.2.53`);
    const none = plan('jv-a', [], 'nameserver 127.0.0.53\n');
    assert.equal(none.dns, undefined);
    assert.equal(natBootArg(none), `jitvm.net=${none.guest}/30,${none.host},${none.host}`);
  });

  it('writes one table that replaces a leftover, masquerades the guest, and keeps new connections off it and the host', () => {
    const p = plan('jv-a');
    const rules = natRuleset(p);
    const tap = `"${p.tap}"`;
    assert.ok(rules.startsWith(`add table ip jitvm_jv_a\ndelete table ip jitvm_jv_a\ntable ip jitvm_jv_a {\n`));
    for (const line of [
      'type nat hook postrouting priority srcnat; policy accept;',
      `ip saddr ${p.guest} oifname != ${tap} masquerade`,
      `iifname ${tap} ip saddr ${p.guest} accept`,
      `oifname ${tap} ct state established,related accept`,
      `oifname ${tap} drop`,
      'type filter hook input priority filter; policy accept;',
      `iifname ${tap} ip saddr ${p.guest} ip daddr 192.0.2.53 meta l4proto { tcp, udp } th dport 53 accept`,
    ]) {
      assert.ok(rules.includes(`    ${line}\n`), line);
    }
    const input = rules.slice(rules.indexOf('chain input'));
    assert.ok(input.indexOf('established,related accept') < input.indexOf(`iifname ${tap} drop`));
    assert.ok(!natRuleset(plan('jv-a', [], '')).includes('dport 53'), 'no DNS exception without a DNS server');
  });

  it("reads `ip -j addr`'s shape, ignoring what it does not need", () => {
    const parsed = IpAddrSchema.parse([
      {
        ifindex: 1,
        ifname: 'lo',
        flags: ['LOOPBACK'],
        addr_info: [
          { family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' },
          { family: 'inet6', local: '::1', prefixlen: 128 },
        ],
      },
      { ifindex: 2, ifname: 'eth0', addr_info: [] },
    ]);
    assert.deepEqual(
      parsed.map((i) => i.ifname),
      ['lo', 'eth0'],
    );
  });
});

describe("the NAT in a VM's record", () => {
  it("records the TAP and table for the reaper, and refuses names that are not jitvm's", () => {
    const cleanup = (leftovers: object) => VmRecordSchema.shape.cleanup.safeParse({ dirs: [], ...leftovers }).success;
    const p = plan('jv-0123456789');
    assert.deepEqual(natLeftovers(p), { tap: p.tap, nftTable: 'jitvm_jv_0123456789' });
    assert.equal(cleanup(natLeftovers(p)), true);
    for (const bad of [
      { tap: 'eth0' },
      { tap: 'jv0123456789abcd' },
      { nftTable: 'filter' },
      { nftTable: 'jitvm_x y' },
    ]) {
      assert.equal(cleanup(bad), false, JSON.stringify(bad));
    }
  });
});

describe('host NAT preconditions', () => {
  const host = (netAdmin: boolean, tools: string[]) => ({
    platform: 'linux' as const,
    netAdmin,
    findTool: (name: string) => (tools.includes(name) ? `/sbin/${name}` : undefined),
  });

  it('returns the tools when privileged with ip and nft, and names everything missing otherwise', () => {
    assert.deepEqual(requireNatHost(host(true, ['ip', 'nft'])), { ip: '/sbin/ip', nft: '/sbin/nft' });
    assert.throws(
      () => requireNatHost(host(false, [])),
      (error: unknown) =>
        error instanceof JitvmError &&
        error.code === 'unsupported' &&
        error.message.includes(
          'which needs CAP_NET_ADMIN (run jitvm as root), `ip` (Debian package iproute2), `nft` (Debian package nftables).',
        ) &&
        error.message.includes("mode 'allowlist' (it needs no NIC)"),
    );
  });
});
