import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  LimitExceededError,
  checkLimits,
  defaultLimits,
  expiryReason,
  idleExpiresAt,
  initialDeadlines,
} from '../../src/daemon/lifecycle.js';
import { createDaemon } from '../../src/daemon/server.js';
import { DaemonStateStore } from '../../src/daemon/state.js';
import { OpenApiValidator } from '../helpers/openapi-validator.js';
import { savedSandbox } from '../helpers/daemon.js';
import { tempDir } from '../helpers/temp.js';

const saved = savedSandbox;

/** A pid that is certainly not running: that of a child that already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

describe('daemon lifecycle deadlines', () => {
  it('defaults to 1 h absolute and 5 min idle, or takes the requested timeouts', () => {
    assert.deepEqual(initialDeadlines(1000, {}), {
      expiresAt: 1000 + DEFAULT_TIMEOUT_MS,
      idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
    });
    assert.deepEqual(initialDeadlines(1000, { timeoutMs: 5000, idleTimeoutMs: 2000 }), {
      expiresAt: 6000,
      idleTimeoutMs: 2000,
    });
  });

  it('expires idle sandboxes unless a request is open, and every sandbox at its absolute deadline', () => {
    const deadlines = { expiresAt: 10_000, idleTimeoutMs: 3000 };
    const idle = { lastActiveAt: 1000, busy: 0 };
    assert.equal(expiryReason(deadlines, idle, 3999), undefined);
    assert.equal(expiryReason(deadlines, idle, 4000), 'idle');
    assert.equal(idleExpiresAt(deadlines, idle, 3999), 4000);
    const busy = { lastActiveAt: 1000, busy: 1 };
    assert.equal(expiryReason(deadlines, busy, 9999), undefined, 'an open exec keeps it from going idle');
    assert.equal(idleExpiresAt(deadlines, busy, 9999), 12_999);
    assert.equal(expiryReason(deadlines, busy, 10_000), 'timeout', 'the absolute deadline is a hard cap');
  });
});

describe('daemon limits', () => {
  const limits = { maxSandboxes: 2, maxMemoryMiB: 600 };

  it('defaults to 16 sandboxes and half the host memory', () => {
    assert.deepEqual(defaultLimits(8 * 1024 ** 3), { maxSandboxes: 16, maxMemoryMiB: 4096 });
  });

  it('allows a create up to the limits and refuses past them: 429 for the count, 507 for memory', () => {
    checkLimits({ sandboxes: 1, memoryMiB: 300 }, 300, limits);
    const tooMany = captured(() => checkLimits({ sandboxes: 2, memoryMiB: 0 }, 64, limits));
    assert.equal(tooMany.status, 429);
    assert.match(tooMany.message, /--max-sandboxes/);
    const memory = captured(() => checkLimits({ sandboxes: 1, memoryMiB: 400 }, 256, limits));
    assert.equal(memory.status, 507);
    assert.match(memory.message, /656 MiB.*600 MiB.*--max-memory-mib/s);
    assert.deepEqual(
      { status: memory.problem().status, code: memory.problem().code, type: memory.problem().type },
      { status: 507, code: 'resource_exhausted', type: 'urn:jitvm:error:resource_exhausted' },
    );
  });

  it('answers a create past the memory limit with a 507 problem before booting anything', async (t) => {
    const daemon = createDaemon({ limits: { maxMemoryMiB: 100 } });
    t.after(() => daemon.close());
    const validator = new OpenApiValidator((await daemon.app.inject({ url: '/v1/openapi.json' })).json());
    const call = async (method: 'GET' | 'POST', url: string, payload?: object) => {
      const response = await daemon.app.inject({ method, url, ...(payload ? { payload } : {}) });
      validator.check(method, url, response.statusCode, String(response.headers['content-type']), response.body);
      return response;
    };
    const refused = await call('POST', '/v1/sandboxes', { memoryMiB: 256, idleTimeoutMs: 3000 });
    assert.equal(refused.statusCode, 507);
    assert.match(String(refused.headers['content-type']), /^application\/problem\+json/);
    assert.match(refused.json().detail, /--max-memory-mib/);
    const tooLong = await call('POST', '/v1/sandboxes/x/timeout', { timeoutMs: 25 * 3600_000 });
    assert.deepEqual([tooLong.statusCode, tooLong.json().code], [400, 'invalid_argument']);
    const unknown = await call('POST', '/v1/sandboxes/x/timeout', { timeoutMs: 60_000 });
    assert.deepEqual([unknown.statusCode, unknown.json().code], [404, 'not_found']);
    assert.equal(validator.checked, 3);
  });
});

function captured(run: () => void): LimitExceededError {
  try {
    run();
  } catch (error) {
    if (error instanceof LimitExceededError) return error;
    throw error;
  }
  assert.fail('expected a LimitExceededError');
}

describe('daemon state file', () => {
  it('round-trips: a dead daemon’s file is claimed by the next one, written 0600, then dropped on save', (t) => {
    const dir = tempDir(t);
    const dead = deadPid();
    new DaemonStateStore(dir, dead).save([saved('jv-aaaa'), saved('jv-bbbb')]);
    assert.equal(statSync(join(dir, `${dead}.json`)).mode & 0o777, 0o600);
    const next = new DaemonStateStore(dir);
    const warnings: string[] = [];
    assert.deepEqual(
      next.claimOrphans((file) => warnings.push(file)),
      [saved('jv-aaaa'), saved('jv-bbbb')],
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(readdirSync(dir), [`${process.pid}.from-${dead}.json`], 'claimed, kept until the next save');
    next.save([saved('jv-aaaa')]);
    assert.deepEqual(readdirSync(dir), [`${process.pid}.json`]);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, `${process.pid}.json`), 'utf8')).sandboxes, [saved('jv-aaaa')]);
    next.remove();
    assert.deepEqual(readdirSync(dir), []);
  });

  it('leaves a live daemon’s file alone', (t) => {
    const dir = tempDir(t);
    new DaemonStateStore(dir, process.ppid).save([saved('jv-cccc')]);
    assert.deepEqual(
      new DaemonStateStore(dir).claimOrphans(() => assert.fail('no warning')),
      [],
    );
    assert.deepEqual(readdirSync(dir), [`${process.ppid}.json`]);
  });

  it('ignores a damaged file with a warning', (t) => {
    const dir = tempDir(t);
    const dead = deadPid();
    writeFileSync(join(dir, `${dead}.json`), '{"version":1,"sandboxes":[{"id":"../../etc"}]}');
    writeFileSync(join(dir, `${deadPid()}.json`), 'not json');
    const warnings: string[] = [];
    const store = new DaemonStateStore(dir);
    assert.deepEqual(
      store.claimOrphans((file) => warnings.push(file)),
      [],
    );
    assert.equal(warnings.length, 2);
    store.save([]);
    assert.deepEqual(readdirSync(dir), [`${process.pid}.json`]);
  });
});
