import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { JitvmError } from '../../src/core/errors.js';
import {
  CreateSandboxInput,
  RunCommandInput,
  WriteFileInput,
  contentBytes,
  encodeContent,
  sandboxOptionsFrom,
} from '../../src/mcp/inputs.js';

const createArgs = z.object(CreateSandboxInput);
const runArgs = z.object(RunCommandInput);

describe('MCP tool inputs', () => {
  it('turns create_sandbox arguments into SDK options', () => {
    assert.deepEqual(sandboxOptionsFrom(createArgs.parse({ cpus: 2, network: 'nat', rootfs: '/images/debian.ext4' })), {
      cpus: 2,
      network: { mode: 'nat' },
      rootfs: { image: '/images/debian.ext4' },
    });
    assert.deepEqual(sandboxOptionsFrom(createArgs.parse({ network: 'allowlist', allow: ['allowed.test'] })), {
      network: { mode: 'allowlist', allow: ['allowed.test'] },
      rootfs: undefined,
    });
  });

  it('refuses allow without allowlist mode and allowlist mode without allow', () => {
    assert.throws(
      () => sandboxOptionsFrom(createArgs.parse({ allow: ['allowed.test'] })),
      /`allow` needs network "allowlist"/,
    );
    assert.throws(() => sandboxOptionsFrom(createArgs.parse({ network: 'allowlist' })), /needs `allow` entries/);
  });

  it('bounds run_command: timeout, command size, env names', () => {
    assert.equal(runArgs.parse({ sandboxId: 'vm-1', command: 'true' }).timeoutMs, 60_000);
    assert.equal(runArgs.safeParse({ sandboxId: 'vm-1', command: 'true', timeoutMs: 600_001 }).success, false);
    assert.equal(runArgs.safeParse({ sandboxId: 'vm-1', command: [] }).success, false);
    assert.equal(
      runArgs.safeParse({ sandboxId: 'vm-1', command: ['x'.repeat(60_000), 'y'.repeat(60_000)] }).success,
      false,
    );
    assert.equal(runArgs.safeParse({ sandboxId: 'vm-1', command: 'env', env: { 'A=B': '1' } }).success, false);
    assert.equal(runArgs.safeParse({ sandboxId: '../etc', command: 'true' }).success, false);
  });

  it('bounds write_file content and mode', () => {
    const write = z.object(WriteFileInput);
    assert.equal(write.safeParse({ sandboxId: 'vm-1', path: '/a', content: 'x', mode: 0o10000 }).success, false);
    assert.equal(
      write.safeParse({ sandboxId: 'vm-1', path: '/a', content: 'x'.repeat(4 * 1024 * 1024 + 1) }).success,
      false,
    );
  });

  it('decodes base64 content strictly', () => {
    assert.deepEqual(contentBytes('AAH+/w==', 'base64'), Buffer.from([0, 1, 254, 255]));
    assert.deepEqual(contentBytes('AAH+\n/w==', 'base64'), Buffer.from([0, 1, 254, 255]));
    assert.deepEqual(contentBytes('héllo', 'utf8'), Buffer.from('héllo'));
    assert.throws(
      () => contentBytes('not base64!', 'base64'),
      (error: unknown) => error instanceof JitvmError && error.code === 'invalid_argument',
    );
  });

  it('returns text as UTF-8 and anything else as base64, unless told', () => {
    assert.deepEqual(encodeContent(Buffer.from('héllo\n')), { encoding: 'utf8', content: 'héllo\n' });
    assert.deepEqual(encodeContent(Buffer.from([0x61, 0])), { encoding: 'base64', content: 'YQA=' });
    assert.deepEqual(encodeContent(Buffer.from([0xff, 0xfe])), { encoding: 'base64', content: '//4=' });
    assert.deepEqual(encodeContent(Buffer.from('hi'), 'base64'), { encoding: 'base64', content: 'aGk=' });
  });
});
