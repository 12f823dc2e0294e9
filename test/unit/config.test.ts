import assert from 'node:assert/strict';
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
});
