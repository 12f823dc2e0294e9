import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { JitvmError } from '../../src/core/errors.js';
import { exitOf } from '../../src/remote/command.js';
import { parseDaemonEndpoint, resolveToken } from '../../src/remote/endpoint.js';

describe('daemon addresses', () => {
  it('takes unix:///path, unix:/path (as `jitvm serve` prints it) and http://host:port', () => {
    assert.deepEqual(parseDaemonEndpoint('unix:///run/jitvm.sock'), {
      kind: 'unix',
      socketPath: '/run/jitvm.sock',
      text: 'unix:///run/jitvm.sock',
    });
    assert.equal((parseDaemonEndpoint('unix:/tmp/j.sock') as { socketPath: string }).socketPath, '/tmp/j.sock');
    assert.deepEqual(parseDaemonEndpoint('http://127.0.0.1:8080'), {
      kind: 'tcp',
      origin: 'http://127.0.0.1:8080',
      text: 'http://127.0.0.1:8080',
    });
    assert.equal((parseDaemonEndpoint('http://[::1]:9/') as { origin: string }).origin, 'http://[::1]:9');
  });

  it('refuses anything else, naming the accepted forms', () => {
    for (const bad of [
      '',
      'unix:relative.sock',
      'https://127.0.0.1:1',
      'http://127.0.0.1:1/v1',
      'ftp://x',
      '127.0.0.1:80',
    ]) {
      assert.throws(
        () => parseDaemonEndpoint(bad),
        (error: JitvmError) => error.code === 'invalid_argument' && /unix:\/\/\/path/.test(error.message),
        bad,
      );
    }
  });
});

describe('daemon tokens', () => {
  const config = mkdtempSync(join(tmpdir(), 'jitvm-remote-token-'));
  after(() => rmSync(config, { recursive: true, force: true }));
  const tcp = parseDaemonEndpoint('http://127.0.0.1:1');
  const unix = parseDaemonEndpoint('unix:///tmp/x.sock');

  it('prefers the given token, then $JITVM_TOKEN, then the local token file (TCP only)', () => {
    const env = { XDG_CONFIG_HOME: config };
    assert.equal(resolveToken(tcp, undefined, env), undefined, 'no file yet');
    mkdirSync(join(config, 'jitvm'));
    writeFileSync(join(config, 'jitvm', 'token'), 'from-file\n');
    chmodSync(join(config, 'jitvm', 'token'), 0o600);
    assert.equal(resolveToken(tcp, undefined, env), 'from-file');
    assert.equal(resolveToken(tcp, undefined, { ...env, JITVM_TOKEN: 'from-env' }), 'from-env');
    assert.equal(resolveToken(tcp, 'given', { ...env, JITVM_TOKEN: 'from-env' }), 'given');
    assert.equal(resolveToken(unix, undefined, env), undefined, 'a Unix socket needs none');
  });
});

describe('exit messages', () => {
  it('map to the exits the local SDK reports', () => {
    assert.deepEqual(exitOf({ exitCode: 3, signal: null, timedOut: false }), {
      reason: 'exited',
      exitCode: 3,
      signal: undefined,
    });
    assert.deepEqual(exitOf({ exitCode: 143, signal: 'SIGTERM', timedOut: false }), {
      reason: 'signaled',
      exitCode: 143,
      signal: 'SIGTERM',
    });
    assert.equal(exitOf({ exitCode: 137, signal: 'SIGKILL', timedOut: true }).reason, 'timed_out');
  });
});
