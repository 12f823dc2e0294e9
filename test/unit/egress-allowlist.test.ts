/**
 * The pure parts of the egress policy: IP and name parsing, the allowlist matcher, the non-public address table and
 * the policy schema. Nothing here touches the network.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import { InvalidArgumentError } from '../../src/core/errors.js';
import { nonPublicRange } from '../../src/network/address-ranges.js';
import { Allowlist, AllowlistSchema, parseAllowEntry } from '../../src/network/allowlist.js';
import { normalizeDomainName } from '../../src/network/domain-name.js';
import { compileEgressPolicy } from '../../src/network/egress-policy.js';
import { type IpAddress, parseCidr, parseIpAddress } from '../../src/network/ip-address.js';

function ip(text: string): IpAddress {
  const parsed = parseIpAddress(text);
  assert.ok(parsed, `${text} parses`);
  return parsed;
}

function allowlist(...entries: string[]): Allowlist {
  return new Allowlist(AllowlistSchema.parse(entries));
}

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
const domain = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.stringMatching(/^[a-z]{2,6}$/))
  .map(([labels, tld]) => [...labels, tld].join('.'));

describe('parseIpAddress', () => {
  it('gives one canonical text per address and turns IPv4-mapped IPv6 into IPv4', () => {
    assert.equal(ip('192.0.2.1').text, '192.0.2.1');
    assert.equal(ip('2001:DB8:0:0:0:0:0:1').text, '2001:db8::1');
    assert.equal(ip('[2001:db8::1]').text, '2001:db8::1');
    assert.equal(ip('2001:0:0:1:0:0:0:1').text, '2001:0:0:1::1', 'the longest zero run is the one compressed');
    assert.equal(ip('1:0:0:2:0:0:3:4').text, '1::2:0:0:3:4', 'the first of equal runs is compressed');
    assert.equal(ip('1:2:3:4:5:6:7:0').text, '1:2:3:4:5:6:7:0', 'a single zero group stays');
    assert.equal(ip('::').text, '::');
    assert.deepEqual(ip('::ffff:10.0.0.1'), ip('10.0.0.1'));
    assert.deepEqual(ip('::FFFF:a00:1'), ip('10.0.0.1'));
    assert.equal(ip('64:ff9b::10.0.0.1').text, '64:ff9b::a00:1');
  });

  it('refuses zone ids, shorthand and padded IPv4 forms, and names', () => {
    for (const text of [
      'fe80::1%eth0',
      '127.1',
      '0x7f.0.0.1',
      '2130706433',
      '010.0.0.1',
      '1.2.3.4.5',
      'example.com',
      '',
    ]) {
      assert.equal(parseIpAddress(text), undefined, text);
    }
  });

  it('never throws, and its text parses back to itself', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.ipV4(), fc.ipV6(), fc.ipV4Extended()), (text) => {
        const parsed = parseIpAddress(text);
        if (parsed) assert.deepEqual(parseIpAddress(parsed.text), parsed);
      }),
    );
    fc.assert(fc.property(fc.ipV6(), (text) => assert.ok(parseIpAddress(text), text)));
  });
});

describe('parseCidr', () => {
  it('reads addresses and ranges, and says what is wrong with the rest', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { ip: ip('10.0.0.0'), prefix: 8 });
    assert.deepEqual(parseCidr('fd00::/8'), { ip: ip('fd00::'), prefix: 8 });
    assert.deepEqual(parseCidr('::1'), { ip: ip('::1'), prefix: 128 });
    assert.deepEqual(parseCidr('::ffff:192.0.2.1'), { ip: ip('192.0.2.1'), prefix: 32 });
    assert.equal(parseCidr('10.0.0.1/8'), 'host bits are set past the /8 prefix: write 10.0.0.0/8');
    assert.equal(parseCidr('fd00::1/8'), 'host bits are set past the /8 prefix: write fd00::/8');
    assert.equal(parseCidr('10.0.0.0/33'), 'the prefix length must be a number from 0 to 32');
    assert.equal(parseCidr('10.0.0.0/08'), 'the prefix length must be a number from 0 to 32');
    assert.equal(parseCidr('10.0.0.0/'), 'the prefix length must be a number from 0 to 32');
    assert.equal(parseCidr('::ffff:10.0.0.0/104'), 'write IPv4-mapped ranges in IPv4 form (10.0.0.0/8)');
    assert.equal(parseCidr('example.com/8'), 'not an IP address');
  });
});

describe('normalizeDomainName', () => {
  it('lower-cases, drops the trailing dot, and refuses what is not a host name', () => {
    assert.equal(normalizeDomainName('Api.Example.COM.'), 'api.example.com');
    assert.equal(normalizeDomainName('_dmarc.xn--bcher-kva.de'), '_dmarc.xn--bcher-kva.de');
    for (const bad of ['', '.', 'a..b', '-a.com', 'a-.com', 'a b.com', 'bücher.de', '\u212a.com', '10.1', 'a.123']) {
      assert.equal(normalizeDomainName(bad), undefined, bad);
    }
    assert.equal(normalizeDomainName(`${'a'.repeat(63)}.com`), `${'a'.repeat(63)}.com`);
    assert.equal(normalizeDomainName(`${'a'.repeat(64)}.com`), undefined);
    assert.equal(normalizeDomainName(`${'a.'.repeat(126)}com`), undefined, '255 characters is over 253');
  });

  it('never throws and is idempotent', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.domain(), fc.string({ unit: 'binary' })), (text) => {
        const name = normalizeDomainName(text);
        if (name !== undefined) assert.equal(normalizeDomainName(name), name);
      }),
    );
  });
});

describe('Allowlist', () => {
  it('matches names exactly, in any case and with a trailing dot', () => {
    const list = allowlist('Example.COM', 'api.test.');
    assert.ok(list.allowsName('example.com'));
    assert.ok(list.allowsName('api.test'));
    assert.ok(!list.allowsName('www.example.com'));
    assert.ok(!list.allowsName('badexample.com'));
    assert.ok(!list.allowsName('com'));
  });

  it('matches *.name at any depth below the name, never the name itself', () => {
    const list = allowlist('*.example.com');
    assert.ok(list.allowsName('api.example.com'));
    assert.ok(list.allowsName('a.b.c.example.com'));
    assert.ok(!list.allowsName('example.com'));
    assert.ok(!list.allowsName('badexample.com'));
    assert.ok(!list.allowsName('example.com.evil.test'));
    fc.assert(
      fc.property(label, domain, (sub, parent) => {
        const wild = allowlist(`*.${parent}`);
        assert.ok(wild.allowsName(`${sub}.${parent}`));
        assert.ok(!wild.allowsName(parent));
        assert.ok(!wild.allowsName(`${sub}${parent}`));
      }),
    );
  });

  it('contains listed addresses and ranges per family, IPv4-mapped IPv6 counting as IPv4', () => {
    const list = allowlist('10.0.0.0/8', '192.0.2.7', 'fd00::/8', '::/0');
    assert.ok(list.containsAddress(ip('10.255.0.1')));
    assert.ok(list.containsAddress(ip('::ffff:10.1.1.1')));
    assert.ok(list.containsAddress(ip('192.0.2.7')));
    assert.ok(!list.containsAddress(ip('192.0.2.8')));
    assert.ok(!list.containsAddress(ip('11.0.0.1')));
    assert.ok(list.containsAddress(ip('fd12::1')));
    assert.ok(!allowlist('::/0').containsAddress(ip('10.0.0.1')), 'an IPv6 range never holds an IPv4 address');
    assert.ok(!allowlist('10.0.0.0/8').allowsName('10.0.0.1'), 'an address never allows a name');
  });

  it('refuses wildcards anywhere but the whole first label, and says which forms it takes', () => {
    for (const entry of ['*', '*.*.example.com', 'api.*.com', 'ex*ample.com', '*example.com', 'example.*']) {
      const parsed = parseAllowEntry(entry);
      assert.equal(parsed, 'a wildcard may only be the whole first label, as in *.example.com', entry);
    }
    assert.throws(
      () => compileEgressPolicy({ allow: ['example.com', 'example.com:443'] }),
      (error: unknown) =>
        error instanceof InvalidArgumentError &&
        error.message.startsWith('invalid egress policy: allow.1: "example.com:443" is not an allowlist entry (') &&
        error.message.includes('*.example.com') &&
        error.message.includes('10.0.0.0/8'),
    );
  });

  it('never throws on any name or entry', () => {
    const list = allowlist('*.example.com', 'a.test', '10.0.0.0/8');
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.domain(), fc.ipV4()), (text) => {
        const name = normalizeDomainName(text);
        if (name !== undefined) list.allowsName(name);
        const address = parseIpAddress(text);
        if (address) list.containsAddress(address);
        const entry = parseAllowEntry(text);
        assert.ok(typeof entry === 'string' || ['name', 'wildcard', 'range'].includes(entry.kind));
      }),
    );
  });
});

describe('nonPublicRange', () => {
  it('names the special-purpose range of loopback, private, link-local and the rest', () => {
    const cases: Array<[string, string | undefined]> = [
      ['0.0.0.0', 'unspecified'],
      ['127.0.0.1', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['172.31.255.255', 'private'],
      ['172.15.255.255', undefined],
      ['172.32.0.0', undefined],
      ['192.168.0.1', 'private'],
      ['100.64.0.1', 'shared (carrier-grade NAT)'],
      ['100.128.0.1', undefined],
      ['169.254.169.254', 'link-local'],
      ['224.0.0.1', 'multicast'],
      ['255.255.255.255', 'broadcast'],
      ['240.0.0.1', 'reserved'],
      ['192.0.2.1', 'documentation'],
      ['198.18.0.1', 'benchmarking'],
      ['8.8.8.8', undefined],
      ['::', 'unspecified'],
      ['::1', 'loopback'],
      ['fe80::1', 'link-local'],
      ['fc00::1', 'private'],
      ['fd12:3456::1', 'private'],
      ['ff02::1', 'multicast'],
      ['2001:db8::1', 'documentation'],
      ['2002:a00:1::1', 'IPv6-transition'],
      ['::127.0.0.1', 'reserved'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:169.254.169.254', 'link-local'],
      ['64:ff9b::10.0.0.1', 'private'],
      ['64:ff9b::8.8.8.8', undefined],
      ['2606:4700::1111', undefined],
    ];
    for (const [text, range] of cases) assert.equal(nonPublicRange(ip(text)), range, text);
  });
});

describe('compileEgressPolicy', () => {
  it('compiles hosts overrides with names normalised and addresses canonical', () => {
    const policy = compileEgressPolicy({
      allow: ['api.test'],
      hosts: { 'API.test.': '127.0.0.1', 'v6.test': '[::1]', 'mapped.test': '::ffff:127.0.0.2' },
    });
    assert.deepEqual(
      [...policy.hosts].map(([name, address]) => [name, address.text]),
      [
        ['api.test', '127.0.0.1'],
        ['v6.test', '::1'],
        ['mapped.test', '127.0.0.2'],
      ],
    );
    assert.equal(compileEgressPolicy({ allow: [] }).hosts.size, 0);
  });

  it('names each wrong override and each unknown field', () => {
    assert.throws(
      () => compileEgressPolicy({ allow: [], hosts: { 'bad name': '127.0.0.1', 'ok.test': 'localhost' } }),
      (error: unknown) =>
        error instanceof InvalidArgumentError &&
        error.message.includes('hosts.bad name: "bad name" is not a host name') &&
        error.message.includes('hosts.ok.test: "localhost" is not an IP address'),
    );
    assert.throws(() => compileEgressPolicy({ allow: [], deny: [] }), InvalidArgumentError);
    assert.throws(() => compileEgressPolicy({ hosts: {} }), /allow/);
  });
});
