/**
 * Reading proxy targets and deciding them: which names are looked up at all, and which answers are refused. The
 * resolver is always injected and records its calls; no real lookup happens and nothing is connected to.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import { compileEgressPolicy } from '../../src/network/egress-policy.js';
import { type EgressLookup, resolveEgressTarget } from '../../src/network/egress-resolve.js';
import { type EgressTarget, parseConnectTarget, parseProxyUrl } from '../../src/network/egress-target.js';

function connectTarget(authority: string): EgressTarget {
  const parsed = parseConnectTarget(authority);
  assert.ok(parsed.ok, `${authority}: ${parsed.ok ? '' : parsed.why}`);
  return parsed.target;
}

/** A resolver that answers from `answers` and records what it was asked. */
function fakeDns(answers: Record<string, string[]>): EgressLookup & { asked: string[] } {
  const asked: string[] = [];
  const lookup = async (name: string) => {
    asked.push(name);
    const addresses = answers[name];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(lookup, { asked });
}

describe('parseConnectTarget and parseProxyUrl', () => {
  it('read names, IPv4 and IPv6 targets into one canonical host', () => {
    assert.deepEqual(connectTarget('API.Example.test.:443'), { host: 'api.example.test', ip: undefined, port: 443 });
    assert.equal(connectTarget('[::FFFF:127.0.0.1]:443').host, '127.0.0.1');
    assert.equal(connectTarget('[2001:DB8::1]:443').host, '2001:db8::1');
    assert.equal(connectTarget('0x7f.1:443').host, '127.0.0.1', 'the URL parser reads IPv4 shorthand as IPv4');
    const url = parseProxyUrl('http://Allowed.test:8080/a%20b/../c?q=1#frag');
    assert.ok(url.ok);
    assert.deepEqual(url.target, { host: 'allowed.test', ip: undefined, port: 8080 });
    assert.equal(url.path, '/c?q=1');
    assert.equal(url.authority, 'allowed.test:8080');
    const v6 = parseProxyUrl('http://[::1]/');
    assert.ok(v6.ok);
    assert.equal(v6.authority, '[::1]');
    assert.equal(v6.target.port, 80);
  });

  it('refuse what is not a target, saying why', () => {
    for (const authority of [
      'allowed.test',
      'user@allowed.test:443',
      'a.test:0',
      'a.test:65536',
      'a.test/x:443',
      'bücher.de:443',
      '',
    ]) {
      assert.equal(parseConnectTarget(authority).ok, false, authority);
    }
    const cases: Array<[string, RegExp]> = [
      ['/relative', /request an absolute URL/],
      ['https://allowed.test/', /use CONNECT for https:/],
      ['ftp://allowed.test/', /use CONNECT for ftp:/],
      ['http://a.123/', /not a valid URL/],
      ['http://a_b%00.test/', /not a valid URL/],
      ['http://a..b/', /not a valid host name/],
    ];
    for (const [url, why] of cases) {
      const parsed = parseProxyUrl(url);
      assert.ok(!parsed.ok && why.test(parsed.why), `${url}: ${parsed.ok ? 'accepted' : parsed.why}`);
    }
  });

  it('never throw', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.webUrl(), fc.webAuthority({ withPort: true })), (text) => {
        parseConnectTarget(text);
        parseProxyUrl(text);
      }),
    );
  });
});

describe('resolveEgressTarget', () => {
  it('never looks up a name the allowlist does not allow', async () => {
    const dns = fakeDns({ 'secret-data.evil.test': ['192.0.2.1'] });
    const policy = compileEgressPolicy({ allow: ['*.allowed.test'] });
    const resolution = await resolveEgressTarget(policy, connectTarget('secret-data.evil.test:443'), dns);
    assert.deepEqual(resolution, { kind: 'denied', reason: 'not_allowlisted', why: 'not in the allowlist' });
    assert.deepEqual(dns.asked, []);
  });

  it('takes a hosts override before DNS and trusts its address', async () => {
    const dns = fakeDns({});
    const policy = compileEgressPolicy({ allow: ['api.test'], hosts: { 'api.test': '127.0.0.1' } });
    const resolution = await resolveEgressTarget(policy, connectTarget('api.test:443'), dns);
    assert.equal(resolution.kind, 'allowed');
    assert.equal(resolution.kind === 'allowed' && resolution.reason, 'hosts_override');
    assert.deepEqual(resolution.kind === 'allowed' && resolution.addresses.map((a) => a.text), ['127.0.0.1']);
    assert.deepEqual(dns.asked, []);
  });

  it('allows a name whose every answer is public, in the resolver order', async () => {
    const dns = fakeDns({ 'api.test': ['2606:4700::1111', '8.8.8.8'] });
    const policy = compileEgressPolicy({ allow: ['api.test'] });
    const resolution = await resolveEgressTarget(policy, connectTarget('api.test:443'), dns);
    assert.equal(resolution.kind === 'allowed' && resolution.reason, 'listed_name');
    assert.deepEqual(resolution.kind === 'allowed' && resolution.addresses.map((a) => a.text), [
      '2606:4700::1111',
      '8.8.8.8',
    ]);
    assert.deepEqual(dns.asked, ['api.test']);
  });

  it('refuses the whole name when any answer is not public and not listed (DNS rebinding)', async () => {
    const policy = compileEgressPolicy({ allow: ['api.test'] });
    const cases: Array<[string[], string, string]> = [
      [['8.8.8.8', '10.0.0.5'], '10.0.0.5', 'private'],
      [['::ffff:169.254.169.254'], '169.254.169.254', 'link-local'],
      [['fd00::1'], 'fd00::1', 'private'],
      [['100.64.1.1'], '100.64.1.1', 'shared (carrier-grade NAT)'],
      [['0.0.0.0'], '0.0.0.0', 'unspecified'],
    ];
    for (const [answers, refused, range] of cases) {
      const resolution = await resolveEgressTarget(
        policy,
        connectTarget('api.test:443'),
        fakeDns({ 'api.test': answers }),
      );
      assert.equal(resolution.kind, 'denied', answers.join());
      assert.equal(resolution.kind === 'denied' && resolution.reason, 'non_public_address');
      assert.equal(resolution.kind === 'denied' && resolution.address?.text, refused);
      assert.equal(resolution.kind === 'denied' && resolution.why, `resolves to a non-public (${range}) address`);
    }
    const listed = compileEgressPolicy({ allow: ['api.test', '10.0.0.0/8'] });
    const inRange = await resolveEgressTarget(
      listed,
      connectTarget('api.test:443'),
      fakeDns({ 'api.test': ['10.0.0.5'] }),
    );
    assert.equal(inRange.kind, 'allowed');
  });

  it('allows a raw IP only inside a listed address or range, whatever its kind', async () => {
    const dns = fakeDns({});
    const policy = compileEgressPolicy({ allow: ['api.test', '192.0.2.0/24', '2001:db8::/32'] });
    const decide = (authority: string) => resolveEgressTarget(policy, connectTarget(authority), dns);
    assert.equal((await decide('192.0.2.9:443')).kind, 'allowed');
    assert.equal((await decide('[2001:db8::9]:443')).kind, 'allowed');
    assert.equal((await decide('[::ffff:192.0.2.9]:443')).kind, 'allowed');
    const outside = await decide('8.8.8.8:443');
    assert.equal(outside.kind === 'denied' && outside.reason, 'address_not_listed');
    assert.deepEqual(dns.asked, []);
  });

  it('reports a failed or useless lookup as unresolved, not as a verdict', async () => {
    const policy = compileEgressPolicy({ allow: ['*.test'] });
    const decide = (name: string, answers: Record<string, string[]>) =>
      resolveEgressTarget(policy, connectTarget(`${name}:80`), fakeDns(answers));
    assert.deepEqual(await decide('gone.test', {}), { kind: 'unresolved', why: 'cannot resolve gone.test: ENOTFOUND' });
    assert.equal((await decide('empty.test', { 'empty.test': [] })).kind, 'unresolved');
    assert.equal((await decide('junk.test', { 'junk.test': ['not-an-ip'] })).kind, 'unresolved');
  });
});
