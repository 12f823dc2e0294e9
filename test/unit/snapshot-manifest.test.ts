import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { parseVmConfig } from '../../src/core/config.js';
import { SnapshotRejectedError } from '../../src/snapshot/errors.js';
import {
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  type ManifestBody,
  SNAPSHOT_FORMAT_VERSION,
  parseManifest,
  readManifest,
  serializeManifest,
} from '../../src/snapshot/manifest.js';
import { tempDir } from '../helpers/temp.js';

const body: ManifestBody = {
  name: 'base',
  jitvmVersion: '0.1.0',
  createdAt: '2026-01-02T03:04:05.678Z',
  backend: 'qemu',
  vmmVersion: '7.2.0',
  arch: 'x86_64',
  config: parseVmConfig({ kernel: '/boot/vmlinuz', initrd: '/boot/initrd', arch: 'x86_64', kernelArgs: ['quiet'] }),
  files: [
    { name: 'vmstate', role: 'state', size: 58_000, sha256: 'a'.repeat(64) },
    { name: 'memory', role: 'memory', size: 268_435_456, sha256: 'b'.repeat(64) },
    { name: 'disk0.qcow2', role: 'other', size: 196_608, sha256: 'c'.repeat(64) },
  ],
};

/** Asserts that `action` throws a SnapshotRejectedError of `problem` whose message matches `message`. */
function assertRejected(action: () => unknown, problem: 'corrupt' | 'incompatible', message: RegExp): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof SnapshotRejectedError, String(error));
    assert.equal(error.problem, problem);
    assert.equal(error.code, problem === 'corrupt' ? 'invalid_state' : 'unsupported');
    assert.match(error.message, message);
    return true;
  });
}

/** The manifest text of `body` with `edit` applied to its parsed JSON (the checksum is not recomputed). */
function edited(edit: (fields: Record<string, unknown>) => void): string {
  const fields = JSON.parse(serializeManifest(body)) as Record<string, unknown>;
  edit(fields);
  return JSON.stringify(fields);
}

it('serializes a manifest that parses back to the same fields, whatever the key order', () => {
  const text = serializeManifest(body);
  const manifest = parseManifest('base', text);
  const { format, formatVersion, manifestSha256, ...fields } = manifest;
  assert.deepEqual(fields, body);
  assert.deepEqual([format, formatVersion], ['jitvm-snapshot', SNAPSHOT_FORMAT_VERSION]);
  assert.match(manifestSha256, /^[0-9a-f]{64}$/);
  const reordered = Object.fromEntries(Object.entries(JSON.parse(text) as Record<string, unknown>).reverse());
  assert.deepEqual(parseManifest('base', JSON.stringify(reordered)), manifest);
});

const changes: Record<string, (fields: Record<string, unknown>) => void> = {
  'config.memoryMiB changed': (fields) => ((fields.config as { memoryMiB: number }).memoryMiB = 512),
  'vmmVersion changed': (fields) => (fields.vmmVersion = '8.0.0'),
  'a file sha256 changed': (fields) => ((fields.files as { sha256: string }[])[1]!.sha256 = 'd'.repeat(64)),
  'a field added': (fields) => (fields.note = 'hi'),
  'manifestSha256 removed': (fields) => delete fields.manifestSha256,
};
for (const [what, change] of Object.entries(changes)) {
  it(`refuses a manifest edited after it was written: ${what}`, () => {
    assertRejected(() => parseManifest('base', edited(change)), 'corrupt', /manifestSha256 does not match/);
  });
}

it('refuses an unknown format version as incompatible, naming the writer', () => {
  const text = edited((fields) => {
    fields.formatVersion = SNAPSHOT_FORMAT_VERSION + 1;
    fields.jitvmVersion = '9.9.9';
  });
  assertRejected(
    () => parseManifest('base', text),
    'incompatible',
    /by jitvm 9\.9\.9 in format version 2; .*reads version 1/,
  );
});

it('refuses what is not a jitvm snapshot manifest, and invalid content even with a matching checksum', () => {
  assertRejected(() => parseManifest('base', '{not json'), 'corrupt', /not a JSON object/);
  assertRejected(() => parseManifest('base', '[]'), 'corrupt', /not a JSON object/);
  assertRejected(
    () =>
      parseManifest(
        'base',
        edited((f) => (f.format = 'other')),
      ),
    'corrupt',
    /another format/,
  );
  const twoStates = { ...body, files: body.files.map((file) => ({ ...file, role: 'state' as const })) };
  assertRejected(() => parseManifest('base', serializeManifest(twoStates)), 'corrupt', /role memory/);
  const escaping = { ...body, files: [...body.files, { ...body.files[2]!, name: '../etc' }] };
  assertRejected(() => parseManifest('base', serializeManifest(escaping)), 'corrupt', /files\.3\.name/);
  const otherArch = { ...body, arch: 'aarch64' as const };
  assertRejected(() => parseManifest('base', serializeManifest(otherArch)), 'corrupt', /arch: differs/);
});

it('reads a manifest only as a regular file under the size cap, of the snapshot it is in', async (t) => {
  const root = tempDir(t);
  const dirWith = (name: string, write: (path: string) => void): string => {
    mkdirSync(join(root, name));
    write(join(root, name, MANIFEST_FILE));
    return join(root, name);
  };
  const good = dirWith('base', (path) => writeFileSync(path, serializeManifest(body)));
  assert.equal((await readManifest('base', good)).name, 'base');
  const renamed = dirWith('renamed', (path) => writeFileSync(path, serializeManifest(body)));
  await assert.rejects(readManifest('renamed', renamed), /holds the manifest of snapshot "base"/);
  const huge = dirWith('huge', (path) => writeFileSync(path, ' '.repeat(MAX_MANIFEST_BYTES + 1)));
  await assert.rejects(readManifest('huge', huge), /over the 262144-byte cap/);
  const linked = dirWith('linked', (path) => symlinkSync(join(good, MANIFEST_FILE), path));
  await assert.rejects(readManifest('linked', linked), SnapshotRejectedError);
  await assert.rejects(readManifest('none', join(root, 'none')), /no readable manifest\.json \(ENOENT\)/);
});
