import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tempDir } from './temp.js';

/** One command as a QMP client sends it. */
export interface QmpCommand {
  readonly execute: string;
  readonly arguments?: unknown;
  readonly id?: number;
}

/** Answers one command (other than `qmp_capabilities`, which the fake answers itself). */
export type QmpReply = (command: QmpCommand, socket: Socket) => void;

/** Writes one QMP message the way QEMU does: a JSON object and CRLF. */
export function sendQmp(socket: Socket, message: unknown): void {
  socket.write(JSON.stringify(message) + '\r\n');
}

export interface FakeQmpOptions {
  /** Where to listen; a fresh temp dir's `qmp.sock` when absent. */
  readonly path?: string;
  /** Greet only once this settles, as QEMU does when a Windows pipe chardev holds up its start-up. */
  readonly greetAfter?: Promise<unknown>;
}

/** A QMP server speaking QEMU's wire format: greeting, then one JSON object per line with ids echoed. */
export async function fakeQmp(t: TestContext, reply: QmpReply, options: FakeQmpOptions = {}): Promise<string> {
  const path = options.path ?? join(tempDir(t), 'qmp.sock');
  const server = createServer((socket) => {
    // QEMU outlives a client that hangs up mid-reply (ECONNRESET); so does the fake.
    socket.on('error', () => undefined);
    void (async () => {
      await options.greetAfter;
      sendQmp(socket, {
        QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: '' }, capabilities: ['oob'] },
      });
    })();
    let buffer = '';
    socket.on('data', (data) => {
      buffer += data.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const command = JSON.parse(line) as QmpCommand;
        if (command.execute === 'qmp_capabilities') sendQmp(socket, { return: {}, id: command.id });
        else reply(command, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => server.close());
  return path;
}
