import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { GuestError } from '../../src/core/errors.js';
import { explained, sharedSandbox } from '../helpers/sandbox.js';
import type { SandboxOptions } from '../../src/sandbox/options.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const guestError = (code: string) => (error: unknown) => error instanceof GuestError && error.guestCode === code;

/**
 * The file-transfer behaviour every guest must show, run against a sandbox booted with `options` (x86_64 and aarch64
 * guests share it). `skip` names why the suite cannot run on this host.
 */
export function filesSuite(name: string, options: SandboxOptions = {}, skip?: string): void {
  describe(name, { timeout: 600_000, skip }, () => {
    const sandbox = sharedSandbox(options);
    it(
      'round-trips a multi-MiB random file byte for byte, checked by sha256 on both sides',
      explained(sandbox, async (sb) => {
        const data = randomBytes(8 * 1024 * 1024 + 13);
        assert.equal(await sb.files.write('/root/data/blob.bin', data, { mode: 0o600 }), data.length);
        const guestSum = await sb.exec(['sha256sum', '/root/data/blob.bin']);
        assert.equal(guestSum.stdout.split(' ')[0], sha256(data));
        const back = await sb.files.read('/root/data/blob.bin');
        assert.equal(sha256(back), sha256(data));
        const info = await sb.files.stat('/root/data/blob.bin');
        assert.deepEqual([info.type, info.size, info.mode], ['file', data.length, 0o600]);
      }),
    );

    it(
      'writes from a stream and reads as a stream',
      explained(sandbox, async (sb) => {
        const parts = Array.from({ length: 50 }, () => randomBytes(100_000));
        await sb.files.write('/tmp/streamed', Readable.from(parts));
        const { size, content } = await sb.files.readStream('/tmp/streamed');
        assert.equal(size, 5_000_000);
        const chunks: Buffer[] = [];
        for await (const chunk of content) chunks.push(chunk as Buffer);
        assert.ok(Buffer.concat(chunks).equals(Buffer.concat(parts)));
      }),
    );

    it(
      'makes, lists, stats and removes directories',
      explained(sandbox, async (sb) => {
        await sb.files.mkdir('/srv/a/b/c');
        await sb.files.write('/srv/a/file.txt', 'x');
        const names = (await sb.files.list('/srv/a')).map((entry) => `${entry.name}:${entry.type}`).sort();
        assert.deepEqual(names, ['b:directory', 'file.txt:file']);
        await assert.rejects(sb.files.remove('/srv/a'), guestError('NOT_EMPTY'));
        await sb.files.remove('/srv/a', { recursive: true });
        await assert.rejects(sb.files.stat('/srv/a'), guestError('NOT_FOUND'));
      }),
    );

    it(
      'writes an empty file and reads it back',
      explained(sandbox, async (sb) => {
        await sb.files.write('/tmp/empty', Buffer.alloc(0));
        assert.equal((await sb.files.read('/tmp/empty')).length, 0);
      }),
    );

    it(
      'gives typed errors for missing paths and wrong kinds',
      explained(sandbox, async (sb) => {
        await assert.rejects(sb.files.read('/nope'), guestError('NOT_FOUND'));
        await assert.rejects(sb.files.read('/tmp'), (error: unknown) => error instanceof GuestError);
        await assert.rejects(sb.files.write('/missing/dir/x', 'y', { mkdirs: false }), guestError('NOT_FOUND'));
        await assert.rejects(sb.files.list('/etc/hostname'), guestError('NOT_A_DIRECTORY'));
      }),
    );

    it(
      'refuses to write into a FIFO (which could block the agent) and keeps serving',
      explained(sandbox, async (sb) => {
        await sb.exec(['mkfifo', '/tmp/fifo']);
        // Hold the FIFO open (read-write never blocks on Linux) so that opening it for writing succeeds.
        const holder = sb.spawn(['sh', '-c', 'exec 3<>/tmp/fifo; echo holding; exec sleep 1000']);
        await new Promise((resolve) => holder.stdout.once('data', resolve));
        await assert.rejects(sb.files.write('/tmp/fifo', 'x'), guestError('INVALID_ARGUMENT'));
        assert.ok((await sb.ping()) >= 0);
        holder.kill();
        holder.stdout.resume();
        holder.stderr.resume();
        assert.equal((await holder.wait()).signal, 'SIGKILL');
      }),
    );
  });
}
