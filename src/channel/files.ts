import type { Readable } from 'node:stream';
import { ProtocolError } from '../core/errors.js';
import type { Frame } from './codec.js';
import { type AgentConnection, decodeGuestError, decodeOk } from './client.js';
import { CreditedReadable, SendCredit, decodeWindow, encodeWindow } from './credit.js';
import {
  DATA_CHUNK,
  EntryType,
  FLAG_FIN,
  FileWriteFlag,
  INITIAL_WINDOW,
  MsgType,
  RemoveFlag,
  WindowChannel,
} from './protocol.js';
import { PayloadReader, PayloadWriter } from './wire.js';

/** One directory entry or stat result from the guest. */
export interface FileEntry {
  readonly name: string;
  readonly type: 'file' | 'directory' | 'symlink' | 'other';
  /** Permission bits (e.g. 0o644). */
  readonly mode: number;
  readonly size: number;
  readonly mtimeMs: number;
}

const entryTypes = {
  [EntryType.FILE]: 'file',
  [EntryType.DIRECTORY]: 'directory',
  [EntryType.SYMLINK]: 'symlink',
} as const;

function readEntry(reader: PayloadReader): FileEntry {
  const type = reader.u8();
  const mode = reader.u32();
  const size = reader.u64();
  const mtimeMs = reader.i64();
  const name = reader.str();
  return {
    name,
    type: entryTypes[type as keyof typeof entryTypes] ?? 'other',
    mode,
    size: Number(size),
    mtimeMs: Number(mtimeMs),
  };
}

const pathPayload = (path: string): Buffer => new PayloadWriter().str(path).finish();

/**
 * Writes `source` to `path` in the guest, streaming within the agent's credit. Resolves with the bytes written.
 * If `source` fails, the upload is cancelled (the guest closes the partial file) and the source's error is thrown.
 */
export async function writeFile(
  connection: AgentConnection,
  path: string,
  source: AsyncIterable<Buffer> | Iterable<Buffer>,
  options: { mode?: number; mkdirs?: boolean } = {},
): Promise<number> {
  const flags = options.mkdirs ? FileWriteFlag.MKDIRS : 0;
  const request = new PayloadWriter()
    .u32(options.mode ?? 0o644)
    .u32(flags)
    .str(path)
    .finish();
  const credit = new SendCredit(INITIAL_WINDOW);
  let settle!: { resolve: (bytes: number) => void; reject: (error: Error) => void };
  const done = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
  // The agent can refuse while we are still sending; the caller sees that when it awaits `done` below.
  done.catch(() => undefined);
  const fail = (error: Error): void => {
    connection.release(stream);
    credit.fail(error);
    settle.reject(error);
  };
  const stream = connection.open({
    onFrame: (frame) => {
      if (frame.type === MsgType.WINDOW) credit.grant(decodeWindow(frame.payload, WindowChannel.FILE));
      else if (frame.type === MsgType.ERROR) fail(decodeGuestError(frame.payload));
      else if (frame.type === MsgType.OK) {
        connection.release(stream);
        settle.resolve(Number(decodeOk(frame.payload)));
      } else throw new ProtocolError(`unexpected message type ${frame.type} on a file write`);
    },
    onClose: fail,
  });
  connection.send(MsgType.FILE_WRITE, stream, request);
  try {
    for await (const chunk of source) {
      for (let offset = 0; offset < chunk.length;) {
        const size = await credit.take(Math.min(DATA_CHUNK, chunk.length - offset));
        connection.send(MsgType.FILE_DATA, stream, chunk.subarray(offset, offset + size));
        offset += size;
      }
    }
    connection.send(MsgType.FILE_DATA, stream, undefined, FLAG_FIN);
  } catch (error) {
    // A refusal from the agent or a lost channel already failed the credit: `done` carries that error.
    if (!credit.failed) {
      if (!connection.closed) connection.send(MsgType.CANCEL, stream);
      fail(error as Error);
    }
  }
  return done;
}

/**
 * Opens a guest file for reading: its size and mode, and its bytes as a flow-controlled stream. Destroying the
 * stream before its end cancels the read in the guest.
 */
export async function readFile(
  connection: AgentConnection,
  path: string,
): Promise<{ size: number; mode: number; content: Readable }> {
  const request = pathPayload(path);
  return new Promise((resolve, reject) => {
    let content: CreditedReadable | undefined;
    const abandon = (): void => {
      if (!content?.senderEnded && !connection.closed) connection.send(MsgType.CANCEL, stream);
      connection.release(stream);
    };
    const stream = connection.open({
      onFrame: (frame: Frame) => {
        if (frame.type === MsgType.FILE_READ_OK && !content) {
          const reader = new PayloadReader(frame.payload, 'FILE_READ_OK');
          const size = Number(reader.u64());
          const mode = reader.u32();
          reader.end();
          content = new CreditedReadable('file data', (bytes) => {
            if (!connection.closed && !content?.senderEnded) {
              connection.send(MsgType.WINDOW, stream, encodeWindow(WindowChannel.FILE, bytes));
            }
          });
          content.once('close', abandon);
          resolve({ size, mode, content });
        } else if (frame.type === MsgType.FILE_DATA && content) {
          content.deliver(frame.payload);
          if (frame.flags & FLAG_FIN) {
            connection.release(stream);
            content.receiveEnd();
          }
        } else if (frame.type === MsgType.ERROR) {
          connection.release(stream);
          if (content) content.destroy(decodeGuestError(frame.payload));
          else reject(decodeGuestError(frame.payload));
        } else throw new ProtocolError(`unexpected message type ${frame.type} on a file read`);
      },
      onClose: (error) => (content ? content.destroy(error) : reject(error)),
    });
    connection.send(MsgType.FILE_READ, stream, request);
  });
}

/** Creates a directory and its missing parents (mkdir -p). */
export async function mkdir(connection: AgentConnection, path: string, mode = 0o755): Promise<void> {
  await connection.request(MsgType.MKDIR, new PayloadWriter().u32(mode).str(path).finish(), MsgType.OK);
}

/** Stats a path without following a final symlink. */
export async function stat(connection: AgentConnection, path: string): Promise<FileEntry> {
  const frame = await connection.request(MsgType.STAT, pathPayload(path), MsgType.STAT_RESULT);
  const reader = new PayloadReader(frame.payload, 'STAT_RESULT');
  const entry = readEntry(reader);
  reader.end();
  return entry;
}

/** Lists a directory's entries (without . and ..). */
export async function list(connection: AgentConnection, path: string): Promise<FileEntry[]> {
  const entries: FileEntry[] = [];
  await connection.request(MsgType.LIST, pathPayload(path), MsgType.LIST_RESULT, (frame) => {
    const reader = new PayloadReader(frame.payload, 'LIST_RESULT');
    const count = reader.u32();
    for (let i = 0; i < count; i++) entries.push(readEntry(reader));
    reader.end();
    return (frame.flags & FLAG_FIN) !== 0;
  });
  return entries;
}

/** Removes a file, symlink or empty directory; with `recursive`, a whole tree. */
export async function remove(connection: AgentConnection, path: string, recursive = false): Promise<void> {
  await connection.request(
    MsgType.REMOVE,
    new PayloadWriter()
      .u32(recursive ? RemoveFlag.RECURSIVE : 0)
      .str(path)
      .finish(),
    MsgType.OK,
  );
}
