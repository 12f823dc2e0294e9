import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bearerMatches } from '../../src/daemon/auth.js';
import { parseListen } from '../../src/daemon/listen.js';
import { createDaemon } from '../../src/daemon/server.js';
import { OpenApiValidator } from '../helpers/openapi-validator.js';

const TOKEN = 'k'.repeat(43);

describe('daemon auth', () => {
  it('accepts exactly "Bearer <token>"', () => {
    assert.equal(bearerMatches(`Bearer ${TOKEN}`, TOKEN), true);
    assert.equal(bearerMatches(`bearer ${TOKEN}`, TOKEN), true);
    for (const header of [undefined, '', 'Bearer', `Bearer ${TOKEN}x`, `Basic ${TOKEN}`, `Bearer ${TOKEN.slice(1)}`]) {
      assert.equal(bearerMatches(header, TOKEN), false, String(header));
    }
  });

  it('answers 401 with WWW-Authenticate without or with a wrong token; health and the document are public', async (t) => {
    const daemon = createDaemon({ token: TOKEN });
    t.after(() => daemon.close());
    const served = await daemon.app.inject({ url: '/v1/openapi.json' });
    const validator = new OpenApiValidator(served.json());
    const call = async (url: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'GET') => {
      const response = await daemon.app.inject({ method, url, headers, ...(method === 'POST' ? { payload: {} } : {}) });
      validator.check(method, url, response.statusCode, String(response.headers['content-type']), response.body);
      return response;
    };
    for (const headers of [{}, { authorization: 'Bearer wrong' }] as Record<string, string>[]) {
      const denied = await call('/v1/sandboxes', headers);
      assert.equal(denied.statusCode, 401);
      assert.match(String(denied.headers['www-authenticate']), /^Bearer/);
      assert.match(String(denied.headers['content-type']), /^application\/problem\+json/);
    }
    assert.equal((await call('/v1/health')).json().status, 'ok');
    assert.equal((await call('/v1/sandboxes', { authorization: `Bearer ${TOKEN}` })).statusCode, 200);
    const unknown = await call('/v1/sandboxes/nope', { authorization: `Bearer ${TOKEN}` });
    assert.deepEqual([unknown.statusCode, unknown.json().code], [404, 'not_found']);
    assert.equal(validator.checked, 5);
    assert.deepEqual(served.json().paths['/v1/health'].get.security, []);
    assert.deepEqual(served.json().security, [{ bearer: [] }]);
  });

  it('a daemon without a token (Unix socket) demands none, and refuses TCP', async (t) => {
    const daemon = createDaemon();
    t.after(() => daemon.close());
    assert.equal((await daemon.app.inject({ url: '/v1/sandboxes' })).statusCode, 200);
    await assert.rejects(daemon.listen(parseListen('127.0.0.1:0')), { code: 'invalid_argument' });
  });
});

describe('daemon --listen', () => {
  it('takes IP literals and tells loopback from the rest', () => {
    assert.deepEqual(parseListen('127.0.0.1:8080'), { kind: 'tcp', host: '127.0.0.1', port: 8080, loopback: true });
    assert.deepEqual(parseListen('[::1]:0'), { kind: 'tcp', host: '::1', port: 0, loopback: true });
    assert.equal(parseListen('10.1.2.3:80').loopback, false);
    assert.equal(parseListen('[::ffff:127.0.0.2]:80').loopback, true);
    assert.equal(parseListen('0.0.0.0:80').loopback, false);
    for (const bad of ['localhost:80', 'daemon.test:80', '127.0.0.1', '127.0.0.1:70000', ':80']) {
      assert.throws(() => parseListen(bad), { code: 'invalid_argument' }, bad);
    }
  });
});
