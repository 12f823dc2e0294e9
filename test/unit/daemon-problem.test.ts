import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ChannelClosedError,
  ERROR_CODES,
  ExecTimeoutError,
  GuestError,
  InvalidArgumentError,
  JitvmError,
  SandboxBootError,
} from '../../src/core/errors.js';
import { problemFor, problemFromError } from '../../src/daemon/problem.js';

describe('daemon problem details', () => {
  it('maps SDK error codes to statuses', () => {
    const cases: [Error, number, string][] = [
      [new InvalidArgumentError('bad cpus'), 400, 'invalid_argument'],
      [new GuestError('NOT_FOUND', 'no such file'), 404, 'not_found'],
      [new JitvmError('invalid_state', 'destroyed'), 409, 'invalid_state'],
      [new JitvmError('resource_exhausted', 'too many sandboxes'), 429, 'resource_exhausted'],
      [new JitvmError('unsupported', 'no snapshots here'), 501, 'unsupported'],
      [new ExecTimeoutError(5, Buffer.alloc(0), Buffer.alloc(0)), 504, 'timeout'],
      [new SandboxBootError('no answer', '', undefined), 502, 'boot_failed'],
      [new ChannelClosedError(), 502, 'agent_lost'],
      [new JitvmError('vmm_failed', 'qemu died'), 502, 'vmm_failed'],
      [new JitvmError('host_tool_missing', 'no qemu'), 503, 'host_tool_missing'],
    ];
    for (const [error, status, code] of cases) {
      const problem = problemFromError(error);
      assert.deepEqual(
        { status: problem.status, code: problem.code, detail: problem.detail },
        { status, code, detail: error.message },
      );
      assert.equal(problem.type, `urn:jitvm:error:${code}`);
    }
  });

  it('has a status of at least 400 and a title for every code', () => {
    for (const code of ERROR_CODES) {
      const problem = problemFor(code, 'x');
      assert.ok(problem.status >= 400 && problem.title.length > 0, code);
    }
  });

  it('keeps the status of HTTP client errors, and hides the message of unexpected ones', () => {
    const tooLarge = Object.assign(new Error('Request body is too large'), { statusCode: 413 });
    assert.deepEqual(problemFromError(tooLarge), { ...problemFor('invalid_argument', tooLarge.message), status: 413 });
    const bug = problemFromError(new TypeError('secret host path /x/y'));
    assert.equal(bug.status, 500);
    assert.equal(bug.code, 'internal');
    assert.doesNotMatch(bug.detail, /secret/);
  });
});
