import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { renderProtocolHeader } from '../../src/channel/protocol-header.js';

it('guest/protocol.h matches src/channel/protocol.ts (run `npm run gen:protocol` after changing the protocol)', () => {
  const checkedIn = readFileSync(new URL('../../../guest/protocol.h', import.meta.url), 'utf8');
  assert.equal(checkedIn, renderProtocolHeader());
});
