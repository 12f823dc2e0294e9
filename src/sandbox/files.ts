import { Readable } from 'node:stream';
import type { AgentConnection } from '../channel/client.js';
import * as files from '../channel/files.js';
import type { FileEntry } from '../channel/files.js';

import type { SandboxFilesApi, WriteFileOptions } from './api.js';

export type { FileEntry, WriteFileOptions };

/** File operations inside a sandbox this process holds. Paths are guest paths; relative ones are relative to `/`. */
export class SandboxFiles implements SandboxFilesApi {
  constructor(private readonly connection: () => AgentConnection) {}

  /** Writes bytes, text or a byte stream to `path`, streaming in chunks. Resolves with the bytes written. */
  async write(
    path: string,
    data: string | Buffer | Readable | AsyncIterable<Buffer>,
    options: WriteFileOptions = {},
  ): Promise<number> {
    const source = typeof data === 'string' ? [Buffer.from(data)] : Buffer.isBuffer(data) ? [data] : data;
    return files.writeFile(this.connection(), path, source, { mode: options.mode, mkdirs: options.mkdirs ?? true });
  }

  /** Reads a whole file into memory. */
  async read(path: string): Promise<Buffer> {
    const { size, content } = await files.readFile(this.connection(), path);
    // Sized from the agent's answer, so each byte is copied once; bytes past it (a growing file, or a /proc file
    // that reports size 0) are appended in order.
    const sized = Buffer.allocUnsafe(size);
    let filled = 0;
    const overflow: Buffer[] = [];
    for await (const chunk of content as AsyncIterable<Buffer>) {
      if (overflow.length === 0 && filled + chunk.length <= size) filled += chunk.copy(sized, filled);
      else overflow.push(chunk);
    }
    return overflow.length === 0 ? sized.subarray(0, filled) : Buffer.concat([sized.subarray(0, filled), ...overflow]);
  }

  /** Opens a file as a stream (for files too big to hold in memory), with its size and mode. */
  async readStream(path: string): Promise<{ size: number; mode: number; content: Readable }> {
    return files.readFile(this.connection(), path);
  }

  async list(path: string): Promise<FileEntry[]> {
    return files.list(this.connection(), path);
  }

  async stat(path: string): Promise<FileEntry> {
    return files.stat(this.connection(), path);
  }

  /** Creates a directory and its missing parents. */
  async mkdir(path: string, mode?: number): Promise<void> {
    return files.mkdir(this.connection(), path, mode);
  }

  /** Removes a file or empty directory; `recursive` removes a whole tree. */
  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    return files.remove(this.connection(), path, options.recursive ?? false);
  }
}
