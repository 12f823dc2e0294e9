import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseVmConfig } from '../../src/core/config.js';
import { InvalidArgumentError } from '../../src/core/errors.js';

describe('VM config', () => {
  it('fills defaults', () => {
    const config = parseVmConfig({ kernel: '/k', initrd: '/i' });
    assert.equal(config.cpus, 1);
    assert.equal(config.memoryMiB, 256);
    assert.deepEqual(config.kernelArgs, []);
    assert.equal(config.accelerator, undefined);
  });

  it('names every wrong field and its limit', () => {
    assert.throws(
      () => parseVmConfig({ kernel: '', initrd: '/i', cpus: 0, memoryMiB: 10 ** 9 }),
      (error: unknown) =>
        error instanceof InvalidArgumentError &&
        error.code === 'invalid_argument' &&
        /cpus: .*>=1/.test(error.message) &&
        /memoryMiB: .*<=65536/.test(error.message) &&
        /kernel: kernel must be a path/.test(error.message),
    );
  });

  it('refuses kernel arguments that would split or inject', () => {
    assert.throws(
      () => parseVmConfig({ kernel: '/k', initrd: '/i', kernelArgs: ['a b'] }),
      /kernelArgs.0: a kernel argument/,
    );
  });

  it('refuses unknown accelerators and non-integer cpus', () => {
    assert.throws(() => parseVmConfig({ kernel: '/k', initrd: '/i', accelerator: 'xen' }), /accelerator/);
    assert.throws(() => parseVmConfig({ kernel: '/k', initrd: '/i', cpus: 1.5 }), /cpus/);
  });

  it('defaults to no drives and no network, and checks drives and TAP names', () => {
    const base = { kernel: '/k', initrd: '/i' };
    const config = parseVmConfig(base);
    assert.deepEqual(config.drives, []);
    assert.deepEqual(config.network, { mode: 'none' });
    const drive = parseVmConfig({ ...base, drives: [{ id: 'd1', path: '/x.img' }] }).drives[0];
    assert.deepEqual(drive, { id: 'd1', path: '/x.img', readOnly: true, root: false });
    const refused = (input: object, pattern: RegExp): void =>
      assert.throws(
        () => parseVmConfig({ ...base, ...input }),
        (e: Error) => e instanceof InvalidArgumentError && pattern.test(e.message),
      );
    refused(
      {
        drives: [
          { id: 'a', path: '/1' },
          { id: 'a', path: '/2' },
        ],
      },
      /drive ids must be unique/,
    );
    refused(
      {
        drives: [
          { id: 'a', path: '/1', root: true },
          { id: 'b', path: '/2', root: true },
        ],
      },
      /at most one drive/,
    );
    refused({ drives: [{ id: 'bad id', path: '/1' }] }, /drives\.0\.id: a drive id is/);
    refused({ drives: [{ id: 'a', path: '/1', rateLimiter: {} }] }, /needs `bandwidth`, `ops` or both/);
    refused({ drives: [{ id: 'a', path: '/1', cache: 'x' }] }, /drives\.0/);
    refused({ network: { mode: 'tap', tap: 'a-name-longer-than-15' } }, /network\.tap: a TAP device name/);
    refused({ network: { mode: 'bridge' } }, /network/);
  });

  it('makes host paths absolute, since a VMM resolves relative ones against its own working directory', () => {
    const config = parseVmConfig({ kernel: 'k/vmlinuz', initrd: './initrd', drives: [{ id: 'd', path: 'disk.img' }] });
    assert.equal(config.kernel, join(process.cwd(), 'k/vmlinuz'));
    assert.equal(config.initrd, join(process.cwd(), 'initrd'));
    assert.equal(config.drives[0]?.path, join(process.cwd(), 'disk.img'));
  });
});
