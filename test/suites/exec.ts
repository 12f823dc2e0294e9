import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { CancelledError, ExecTimeoutError, GuestError } from '../../src/core/errors.js';
import { explained, sharedSandbox } from '../helpers/sandbox.js';
import type { SandboxOptions } from '../../src/sandbox/options.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * The exec behaviour every guest must show, run against a sandbox booted with `options` (x86_64 and aarch64 guests
 * share it). `skip` names why the suite cannot run on this host.
 */
export function execSuite(name: string, options: SandboxOptions = {}, skip?: string): void {
  describe(name, { timeout: 600_000, skip }, () => {
    const sandbox = sharedSandbox(options);
    it(
      'passes exit codes through: 0, 1, 3, and 137 for SIGKILL',
      explained(sandbox, async (sb) => {
        assert.equal((await sb.exec(['true'])).exitCode, 0);
        assert.equal((await sb.exec(['false'])).exitCode, 1);
        assert.equal((await sb.exec('exit 3')).exitCode, 3);
        const killed = await sb.exec('kill -9 $$');
        assert.equal(killed.exitCode, 137);
        assert.equal(killed.signal, 'SIGKILL');
      }),
    );

    it(
      'keeps stdout and stderr apart',
      explained(sandbox, async (sb) => {
        const result = await sb.exec('echo out; echo err >&2; echo out2');
        assert.equal(result.stdout, 'out\nout2\n');
        assert.equal(result.stderr, 'err\n');
      }),
    );

    it(
      'is binary safe for several MiB of arbitrary output',
      explained(sandbox, async (sb) => {
        const data = randomBytes(6 * 1024 * 1024);
        await sb.files.write('/tmp/random.bin', data);
        const result = await sb.exec(['cat', '/tmp/random.bin']);
        assert.equal(result.stdoutBytes.length, data.length);
        assert.ok(result.stdoutBytes.equals(data), 'stdout bytes differ from the file');
      }),
    );

    it(
      'pipes stdin through, from a buffer and from a stream',
      explained(sandbox, async (sb) => {
        const data = randomBytes(3 * 1024 * 1024);
        const fromBuffer = await sb.exec(['sha256sum'], { stdin: data });
        assert.equal(fromBuffer.stdout.split(' ')[0], sha256(data));
        const chunks = [Buffer.from('line one\n'), Buffer.from('line two\n')];
        const fromStream = await sb.exec(['wc', '-l'], { stdin: Readable.from(chunks) });
        assert.equal(fromStream.stdout.trim(), '2');
      }),
    );

    it(
      'honours env and cwd',
      explained(sandbox, async (sb) => {
        const result = await sb.exec('echo "$GREETING $HOME"; pwd', { env: { GREETING: 'hello there' }, cwd: '/tmp' });
        assert.equal(result.stdout, 'hello there /root\n/tmp\n');
      }),
    );

    it(
      'kills a timed-out command together with its children',
      explained(sandbox, async (sb) => {
        await assert.rejects(
          sb.exec('sleep 1000 & echo $! > /tmp/child.pid; echo started; sleep 1000', { timeoutMs: 1500 }),
          (error: unknown) => error instanceof ExecTimeoutError && error.stdout.toString() === 'started\n',
        );
        const check = await sb.exec('kill -0 "$(cat /tmp/child.pid)" 2>/dev/null && echo alive || echo dead');
        assert.equal(check.stdout, 'dead\n');
      }),
    );

    it(
      'runs many commands concurrently on one VM',
      explained(sandbox, async (sb) => {
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, i) => sb.exec(`sleep 0.$((RANDOM % 5)); echo ${i}; echo e${i} >&2`)),
        );
        results.forEach((result, i) => {
          assert.equal(result.stdout, `${i}\n`);
          assert.equal(result.stderr, `e${i}\n`);
        });
      }),
    );

    it(
      'reports a missing program as a typed NOT_FOUND error',
      explained(sandbox, async (sb) => {
        await assert.rejects(
          sb.exec(['no-such-program']),
          (error: unknown) =>
            error instanceof GuestError && error.guestCode === 'NOT_FOUND' && /no-such-program/.test(error.message),
        );
        await assert.rejects(
          sb.exec(['true'], { cwd: '/no/such/dir' }),
          (error: unknown) => error instanceof GuestError && error.guestCode === 'NOT_FOUND',
        );
      }),
    );

    it(
      'kills the command when the AbortSignal fires',
      explained(sandbox, async (sb) => {
        const controller = new AbortController();
        const running = sb.exec(['sleep', '1000'], { signal: controller.signal, onStdout: () => undefined });
        setTimeout(() => controller.abort(), 300);
        await assert.rejects(running, CancelledError);
      }),
    );

    it(
      'streams output and takes stdin while a spawned command runs',
      explained(sandbox, async (sb) => {
        const handle = sb.spawn(['cat']);
        await handle.sendStdin('ping\n');
        const first = await new Promise<Buffer>((resolve) => handle.stdout.once('data', resolve));
        assert.equal(first.toString(), 'ping\n');
        handle.closeStdin();
        handle.stdout.resume();
        handle.stderr.resume();
        assert.equal((await handle.wait()).exitCode, 0);
        assert.ok((await handle.pid) > 1);
      }),
    );

    it(
      'streams large output through for-await without buffering it all',
      explained(sandbox, async (sb) => {
        const handle = sb.spawn('head -c 20000000 /dev/zero');
        handle.stderr.resume();
        let total = 0;
        for await (const chunk of handle.stdout) total += (chunk as Buffer).length;
        assert.equal(total, 20_000_000);
        assert.equal((await handle.wait()).exitCode, 0);
      }),
    );

    it(
      'answers pings',
      explained(sandbox, async (sb) => {
        assert.ok((await sb.ping(Buffer.from('abc'))) >= 0);
      }),
    );
  });
}
