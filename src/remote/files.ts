import { Readable } from 'node:stream';
import type { FileEntry } from '../channel/files.js';
import { JitvmError } from '../core/errors.js';
import { FILE_MODE_HEADER, FileEntrySchema, FileList, WrittenFile } from '../daemon/schemas.js';
import type { SandboxFilesApi, WriteFileOptions } from '../sandbox/api.js';
import type { DaemonClient } from './daemon-client.js';

const DEFAULT_MODE = 0o644;

/** File operations in a daemon's sandbox, over `/v1/sandboxes/:id/files`: contents stream both ways. */
export class RemoteFiles implements SandboxFilesApi {
  private readonly base: string;

  constructor(
    private readonly client: DaemonClient,
    sandboxId: string,
  ) {
    this.base = `/v1/sandboxes/${encodeURIComponent(sandboxId)}/files`;
  }

  async write(
    path: string,
    data: string | Buffer | Readable | AsyncIterable<Buffer>,
    options: WriteFileOptions = {},
  ): Promise<number> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.isBuffer(data) ? data : Readable.from(data);
    const query = {
      path,
      mode: (options.mode ?? DEFAULT_MODE).toString(8).padStart(4, '0'),
      mkdirs: String(options.mkdirs ?? true),
    };
    return (await this.client.json(WrittenFile, 'PUT', this.base, { query, bytes })).bytes;
  }

  async read(path: string): Promise<Buffer> {
    const response = await this.client.send('GET', this.base, { query: { path } });
    return Buffer.from(await response.body.arrayBuffer());
  }

  async readStream(path: string): Promise<{ size: number; mode: number; content: Readable }> {
    const response = await this.client.send('GET', this.base, { query: { path } });
    const mode = Number.parseInt(String(response.headers[FILE_MODE_HEADER]), 8);
    if (Number.isNaN(mode)) {
      await response.body.dump();
      throw new JitvmError('protocol', `the daemon's download of ${path} has no ${FILE_MODE_HEADER} header`);
    }
    return { size: Number(response.headers['content-length'] ?? 0), mode, content: response.body };
  }

  async list(path: string): Promise<FileEntry[]> {
    return (await this.client.json(FileList, 'GET', `${this.base}/list`, { query: { path } })).entries;
  }

  async stat(path: string): Promise<FileEntry> {
    return this.client.json(FileEntrySchema, 'GET', `${this.base}/stat`, { query: { path } });
  }

  async mkdir(path: string, mode?: number): Promise<void> {
    await this.client.empty('POST', `${this.base}/mkdir`, { json: { path, mode } });
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    const query = { path, recursive: String(options.recursive ?? false) };
    await this.client.empty('DELETE', this.base, { query });
  }
}
