import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultTokenPath, loadOrCreateToken, rotateToken } from '../../src/daemon/token-store.js';
import { tempDir } from '../helpers/temp.js';

describe('daemon token store', () => {
  it('lives in $XDG_CONFIG_HOME/jitvm, else ~/.config/jitvm', () => {
    assert.equal(defaultTokenPath({ XDG_CONFIG_HOME: '/cfg' }), '/cfg/jitvm/token');
    assert.match(defaultTokenPath({}), /\/\.config\/jitvm\/token$/);
  });

  it('creates a 32-byte base64url token with mode 0600 on first use, then keeps it', (t) => {
    const file = join(tempDir(t), 'jitvm', 'token');
    const token = loadOrCreateToken(file);
    assert.equal(Buffer.from(token, 'base64url').length, 32);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(file, '..')).mode & 0o777, 0o700);
    assert.equal(loadOrCreateToken(file), token);
  });

  it('rotation replaces the token, still 0600', (t) => {
    const file = join(tempDir(t), 'token');
    const first = loadOrCreateToken(file);
    const second = rotateToken(file);
    assert.notEqual(second, first);
    assert.equal(readFileSync(file, 'utf8').trim(), second);
    assert.equal(loadOrCreateToken(file), second);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  it('refuses a token file others can read, and one that holds no token', (t) => {
    const file = join(tempDir(t), 'token');
    loadOrCreateToken(file);
    chmodSync(file, 0o644);
    assert.throws(() => loadOrCreateToken(file), { code: 'invalid_state', message: /chmod 600/ });
    writeFileSync(file, 'short\n', { mode: 0o600 });
    chmodSync(file, 0o600);
    assert.throws(() => loadOrCreateToken(file), { code: 'invalid_state', message: /--rotate-token/ });
  });
});
