/** The VM config's scratch drives, network modes, shares, device limit and the helpers backends use with them. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  DriveSchema,
  NetworkSchema,
  ShareSchema,
  type VmConfigInput,
  attachOrder,
  hasNic,
  parseVmConfig,
  parseWith,
} from '../../src/core/config.js';
import { InvalidArgumentError } from '../../src/core/errors.js';

const base = { kernel: '/k', initrd: '/i' };

/** Asserts that `input` (merged into a minimal config) is refused with InvalidArgumentError matching `pattern`. */
function refused(input: Partial<VmConfigInput>, pattern: RegExp): void {
  assert.throws(
    () => parseVmConfig({ ...base, ...input }),
    (error: unknown) => error instanceof InvalidArgumentError && pattern.test(error.message),
  );
}

const drives = (count: number) => Array.from({ length: count }, (_, i) => ({ id: `d${i}`, path: `/d${i}.img` }));
const shares = (count: number) => Array.from({ length: count }, (_, i) => ({ tag: `s${i}`, path: `/s${i}` }));

describe('scratch drives', () => {
  it('takes `sizeMiB` instead of a path when writable', () => {
    const drive = parseWith(DriveSchema, { id: 'scratch', sizeMiB: 64, readOnly: false }, 'drive');
    assert.deepEqual(drive, { id: 'scratch', sizeMiB: 64, readOnly: false, root: false });
  });

  it('needs exactly one of `path` and `sizeMiB`', () => {
    const either = /drives\.0: a drive needs either `path` \(a disk image on the host\) or `sizeMiB`/;
    refused({ drives: [{ id: 'a', path: '/a.img', sizeMiB: 64, readOnly: false }] }, either);
    refused({ drives: [{ id: 'a', readOnly: false }] }, either);
  });

  it('refuses a read-only scratch disk, including by default, and says to set readOnly: false', () => {
    const writable = /drives\.0: a scratch disk \(`sizeMiB`\) is writable: set `readOnly: false`/;
    refused({ drives: [{ id: 'a', sizeMiB: 64 }] }, writable);
    refused({ drives: [{ id: 'a', sizeMiB: 64, readOnly: true }] }, writable);
  });

  it('bounds the scratch size to 8 MiB .. 1 TiB in whole MiB', () => {
    refused({ drives: [{ id: 'a', sizeMiB: 7, readOnly: false }] }, /drives\.0\.sizeMiB: .*>=8/);
    refused({ drives: [{ id: 'a', sizeMiB: 1_048_577, readOnly: false }] }, /drives\.0\.sizeMiB: .*<=1048576/);
    refused({ drives: [{ id: 'a', sizeMiB: 8.5, readOnly: false }] }, /drives\.0\.sizeMiB/);
    assert.equal(parseVmConfig({ ...base, drives: [{ id: 'a', sizeMiB: 8, readOnly: false }] }).drives[0]?.sizeMiB, 8);
  });
});

describe('network modes', () => {
  const parse = (network: unknown) => NetworkSchema.safeParse(network);

  it('accepts none, nat (hosts, mac), allowlist (allow, hosts) and tap', () => {
    const accepted = [
      { mode: 'none' },
      { mode: 'nat' },
      { mode: 'nat', hosts: { 'allowed.test': '127.0.0.1', 'v6.test': '::1' }, mac: '06:00:AC:10:00:02' },
      { mode: 'allowlist', allow: ['allowed.test'] },
      { mode: 'allowlist', allow: ['*.allowed.test', '10.0.0.0/8'], hosts: { 'allowed.test': '127.0.0.1' } },
      { mode: 'tap', tap: 'jv0' },
    ];
    for (const network of accepted) assert.deepEqual(parse(network).data, network, JSON.stringify(network));
  });

  it('refuses unknown modes and fields that belong to another mode', () => {
    for (const network of [
      { mode: 'bridge' },
      { mode: 'none', hosts: {} },
      { mode: 'nat', allow: ['allowed.test'] },
      { mode: 'nat', tap: 'jv0' },
      { mode: 'allowlist', allow: ['allowed.test'], mac: '06:00:ac:10:00:02' },
      { mode: 'nat', mac: '06-00-ac-10-00-02' },
    ]) {
      assert.equal(parse(network).success, false, JSON.stringify(network));
    }
  });

  it('allowlist mode needs 1 to 256 non-empty entries', () => {
    refused({ network: { mode: 'allowlist', allow: [] } }, /network\.allow: .*(at least one|>=1)/);
    refused({ network: { mode: 'allowlist' } as never }, /network\.allow/);
    refused({ network: { mode: 'allowlist', allow: [''] } }, /network\.allow\.0/);
    const many = Array.from({ length: 257 }, (_, i) => `h${i}.allowed.test`);
    refused({ network: { mode: 'allowlist', allow: many } }, /network\.allow: .*<=256/);
    assert.equal(parse({ mode: 'allowlist', allow: many.slice(0, 256) }).success, true);
  });

  it('accepts host names of letters, digits, `-` and `_` labels, with an optional final dot', () => {
    for (const name of ['allowed.test', 'allowed.test.', 'a', '_srv.allowed.test', 'x-1.y_2.test', 'a'.repeat(63)]) {
      assert.equal(parse({ mode: 'nat', hosts: { [name]: '127.0.0.1' } }).success, true, name);
    }
  });

  it('refuses bad host names, naming the field', () => {
    const longName = Array.from({ length: 64 }, () => 'abc').join('.');
    assert.equal(longName.length, 255);
    const bad = ['', 'has space.test', '-lead.test', 'trail-.test', 'a..b', '.lead', 'a/b', 'ü.test', longName];
    for (const name of [...bad, 'a'.repeat(64)]) {
      refused({ network: { mode: 'nat', hosts: { [name]: '127.0.0.1' } } }, /^invalid VM config: network\.hosts\./);
    }
  });

  it('refuses hosts entries that are not an IPv4 or IPv6 address', () => {
    for (const address of ['999.0.0.1', '10.0.0', 'localhost', '127.0.0.1/8', '', '::g']) {
      refused(
        { network: { mode: 'allowlist', allow: ['allowed.test'], hosts: { 'allowed.test': address } } },
        /network\.hosts\.allowed\.test: ".*" is not an IP address \(no port\)/,
      );
    }
  });

  it('takes at most 256 hosts entries', () => {
    const hosts = (count: number) =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`h${i}.test`, '127.0.0.1']));
    assert.equal(parse({ mode: 'nat', hosts: hosts(256) }).success, true);
    refused({ network: { mode: 'nat', hosts: hosts(257) } }, /network\.hosts: at most 256 hosts entries/);
  });

  it('gives a NIC only in nat and tap modes', () => {
    assert.equal(hasNic({ mode: 'nat' }), true);
    assert.equal(hasNic({ mode: 'tap', tap: 'jv0' }), true);
    assert.equal(hasNic({ mode: 'none' }), false);
    assert.equal(hasNic({ mode: 'allowlist', allow: ['allowed.test'] }), false);
  });
});

describe('shares', () => {
  it('defaults to read-only and makes the path absolute', () => {
    assert.deepEqual(parseWith(ShareSchema, { tag: 'work', path: 'src' }, 'share'), {
      tag: 'work',
      path: join(process.cwd(), 'src'),
      readOnly: true,
    });
  });

  it('takes tags of 1-32 letters, digits, `_` or `-`', () => {
    for (const tag of ['a', 'jitvm_share0', 'x-y', 'T'.repeat(32)]) {
      assert.equal(ShareSchema.safeParse({ tag, path: '/s' }).success, true, tag);
    }
    for (const tag of ['', 'has space', 'a/b', 'a.b', 'a,b', 'T'.repeat(33)]) {
      refused({ shares: [{ tag, path: '/s' }] }, /shares\.0\.tag: a share tag is 1-32 letters, digits, `_` or `-`/);
    }
  });

  it('needs a path, and refuses unknown fields', () => {
    refused({ shares: [{ tag: 'a', path: '' }] }, /shares\.0\.path: a share needs the path of a host directory/);
    refused({ shares: [{ tag: 'a', path: '/s', cache: 'auto' } as never] }, /shares\.0/);
  });

  it('refuses two shares with one tag, and more than four shares', () => {
    refused(
      {
        shares: [
          { tag: 'same', path: '/a' },
          { tag: 'same', path: '/b' },
        ],
      },
      /shares: share tags must be unique/,
    );
    refused({ shares: shares(5) }, /shares: .*<=4/);
  });
});

describe('virtio device limit', () => {
  const limit = /drives, shares and a NIC together take at most 7 virtio devices/;

  it('allows seven devices in all', () => {
    assert.doesNotThrow(() => parseVmConfig({ ...base, drives: drives(6), shares: shares(1) }));
    assert.doesNotThrow(() => parseVmConfig({ ...base, drives: drives(6), network: { mode: 'nat' } }));
    assert.doesNotThrow(() => parseVmConfig({ ...base, drives: drives(3), shares: shares(4) }));
    assert.doesNotThrow(() =>
      parseVmConfig({ ...base, drives: drives(2), shares: shares(4), network: { mode: 'tap', tap: 'jv0' } }),
    );
  });

  it('counts the NIC of nat and tap modes, and refuses an eighth device', () => {
    refused({ drives: drives(6), shares: shares(1), network: { mode: 'nat' } }, limit);
    refused({ drives: drives(3), shares: shares(4), network: { mode: 'tap', tap: 'jv0' } }, limit);
    refused({ drives: drives(4), shares: shares(4) }, limit);
  });

  it('does not count a NIC for allowlist mode, which has none', () => {
    const config = parseVmConfig({
      ...base,
      drives: drives(6),
      shares: shares(1),
      network: { mode: 'allowlist', allow: ['allowed.test'] },
    });
    assert.equal(config.drives.length + config.shares.length, 7);
  });
});

describe('attach order', () => {
  it('puts the root drive first and keeps the others as given', () => {
    const given = [
      { id: 'a', root: false },
      { id: 'b', root: false },
      { id: 'r', root: true },
      { id: 'c', root: false },
    ];
    assert.deepEqual(
      attachOrder(given).map((drive) => drive.id),
      ['r', 'a', 'b', 'c'],
    );
    assert.deepEqual(
      given.map((drive) => drive.id),
      ['a', 'b', 'r', 'c'],
      'the input is not reordered',
    );
  });

  it('keeps the given order without a root drive', () => {
    const given = [
      { id: 'z', root: false },
      { id: 'a', root: false },
    ];
    assert.deepEqual(attachOrder(given), given);
    assert.deepEqual(attachOrder([]), []);
  });
});
