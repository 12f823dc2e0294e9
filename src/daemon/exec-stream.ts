import { Readable } from 'node:stream';
import type { ExecExit } from '../channel/exec-process.js';
import type { CommandHandle } from '../sandbox/command.js';
import type { ExecEvent } from './schemas.js';

const line = (event: ExecEvent): string => `${JSON.stringify(event)}\n`;

/** The `exit` event of a command's exit, as both exec transports (NDJSON, WebSocket) send it. */
export function exitEvent(exit: ExecExit): Extract<ExecEvent, { type: 'exit' }> {
  return { type: 'exit', exitCode: exit.exitCode, signal: exit.signal ?? null, timedOut: exit.reason === 'timed_out' };
}

/**
 * A command's output as NDJSON lines (`stdout`/`stderr` chunks in base64, then one `exit` line), produced only as
 * fast as the reader takes them: when the consumer's buffer is full both outputs are paused, which in turn stops the
 * guest through the channel's credit window. Destroying the stream before the exit kills the command.
 */
export function execEvents(handle: CommandHandle): Readable {
  const sources = [
    { stream: handle.stdout, type: 'stdout' as const },
    { stream: handle.stderr, type: 'stderr' as const },
  ];
  let open = sources.length;
  let exited = false;
  const output = new Readable({
    read: () => sources.forEach(({ stream }) => stream.resume()),
    destroy: (error, callback) => {
      if (!exited) handle.kill();
      callback(error);
    },
  });
  const finish = async (): Promise<void> => {
    const exit = await handle.wait();
    exited = true;
    output.push(line(exitEvent(exit)));
    output.push(null);
  };
  for (const { stream, type } of sources) {
    stream.pause();
    stream.on('data', (chunk: Buffer) => {
      if (!output.push(line({ type, data: chunk.toString('base64') }))) sources.forEach((s) => s.stream.pause());
    });
    stream.once('end', () => {
      if (--open === 0) finish().catch((error: unknown) => output.destroy(error as Error));
    });
    stream.once('error', (error) => output.destroy(error));
  }
  return output;
}
