/** Reads a tar stream entry by entry with node-tar's parser, handing each entry on only after the last one is done. */

import { once } from 'node:events';

import { Parser, type ReadEntry } from 'tar';

/** A tar stream node-tar's parser rejected; `code` is node-tar's (`TAR_BAD_ARCHIVE`, `TAR_ENTRY_INVALID`…). */
export class TarFormatError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'TarFormatError';
  }
}

/**
 * Calls `handle` on each entry of the tar stream `source`, one at a time and in order: the next entry waits until
 * `handle` resolves (whatever of its data `handle` left unread is skipped), and the source waits while it does.
 * Every node-tar warning (bad checksum, truncated entry, not a tar) rejects with TarFormatError, except that an
 * empty stream or one of only zero blocks is an empty archive. Reads `source` to its end.
 */
export async function forEachTarEntry(
  source: AsyncIterable<Buffer>,
  handle: (entry: ReadEntry) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const parser = new Parser();
  let fail: (error: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {});
  let onlyZeros = true;
  parser.on('warn', (code: string, message: string) => {
    if (!(code === 'TAR_BAD_ARCHIVE' && onlyZeros)) fail(new TarFormatError(code, message));
  });
  parser.on('error', fail);
  let queue = Promise.resolve();
  parser.on('entry', (entry: ReadEntry) => {
    queue = queue.then(async () => {
      signal?.throwIfAborted();
      await handle(entry);
      entry.resume();
    });
    queue.catch(fail);
  });
  const ended = new Promise((resolve) => parser.on('end', resolve));
  for await (const chunk of source) {
    onlyZeros &&= chunk.every((byte) => byte === 0);
    if (!parser.write(chunk)) await Promise.race([failed, once(parser, 'drain')]);
  }
  // The parser may warn and end within end(): `failed` goes first so that, both settled, the failure wins.
  parser.end();
  await Promise.race([failed, ended]);
  await Promise.race([failed, queue]);
}
