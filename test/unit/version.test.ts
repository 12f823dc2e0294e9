import assert from 'node:assert/strict';
import { it } from 'node:test';
import { versionAtLeast } from '../../src/core/version.js';

it('compares dotted versions part by part, missing parts counting as 0', () => {
  assert.equal(versionAtLeast([1, 16, 0], [1, 8]), true);
  assert.equal(versionAtLeast([1, 8], [1, 8, 0]), true);
  assert.equal(versionAtLeast([1, 7, 9], [1, 8]), false);
  assert.equal(versionAtLeast([0, 6, 0], [0, 6, 1]), false);
  assert.equal(versionAtLeast([2], [1, 99, 99]), true);
});
