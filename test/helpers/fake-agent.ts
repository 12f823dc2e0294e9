import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { AgentConnection } from '../../src/channel/client.js';
import { FrameDecoder, encodeFrame, type Frame } from '../../src/channel/codec.js';
import { Capability, INITIAL_WINDOW, MAX_PAYLOAD, MsgType, PROTOCOL_VERSION } from '../../src/channel/protocol.js';
import { PayloadWriter } from '../../src/channel/wire.js';
import { tempDir } from './temp.js';

/** How a fake agent answers one frame from the host. */
export type Script = (frame: Frame, reply: (bytes: Buffer) => void, socket: Socket) => void;

/** The capabilities every agent must offer (a version-1 agent in dev mode offers exactly these). */
export const REQUIRED_CAPABILITIES = Capability.EXEC | Capability.FILES | Capability.SIGNAL | Capability.SHUTDOWN;

/** A HELLO_OK frame with version-1 limits. */
export const helloOk = (version = PROTOCOL_VERSION, capabilities = REQUIRED_CAPABILITIES): Buffer =>
  encodeFrame(
    MsgType.HELLO_OK,
    0,
    new PayloadWriter().u32(version).u32(capabilities).u32(MAX_PAYLOAD).u32(INITIAL_WINDOW).str('fake').finish(),
  );

/** A fake agent speaking the real codec on a Unix socket, answering each frame with `script`; closed after the test. */
export async function fakeAgent(t: TestContext, script: Script): Promise<AgentConnection> {
  const path = join(tempDir(t), 'agent.sock');
  const server = createServer((socket) => {
    const decoder = new FrameDecoder();
    socket.on('data', (data) => {
      for (const frame of decoder.push(data)) script(frame, (bytes) => socket.write(bytes), socket);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => server.close());
  const socket = connect(path);
  await new Promise((resolve) => socket.once('connect', resolve));
  const connection = new AgentConnection(socket);
  t.after(() => connection.close());
  return connection;
}

/** A script that answers HELLO with `capabilities` and passes every other frame to `next`. */
export const handshaking =
  (next: Script = () => undefined, capabilities = REQUIRED_CAPABILITIES): Script =>
  (frame, reply, socket) =>
    frame.type === MsgType.HELLO ? reply(helloOk(PROTOCOL_VERSION, capabilities)) : next(frame, reply, socket);
