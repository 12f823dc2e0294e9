/**
 * The messages of `GET /v1/sandboxes/:id/exec/ws`, an exec over a WebSocket for commands that need stdin while they
 * run. Text frames carry the JSON messages below; binary frames carry bytes:
 *
 * - client → daemon: first a `start` text message; then binary frames are stdin bytes, `stdin_end` closes stdin, and
 *   `signal` signals the command's process group. Closing the socket before the exit kills the command.
 * - daemon → client: `started` (the guest pid) once it runs; `stdin_credit` grants; binary frames whose first byte
 *   is the stream (`OUTPUT_STREAM_ID`: 1 stdout, 2 stderr) followed by the bytes; `exit` last, after all output, and
 *   then the daemon closes the socket (1000). A request that fails (bad message, no such sandbox or program, stdin
 *   past the credit) gets one `error` message carrying the problem, then the close.
 *
 * Flow control: output — the daemon stops reading the guest's output while more than `WS_OUTPUT_HIGH_WATER` bytes it
 * sent are unflushed. Stdin is credit-based, like the agent channel: right after `started` the daemon grants
 * `WS_STDIN_WINDOW` bytes, and grants each chunk again once the guest took it; a client sends no more stdin bytes than
 * it was granted. So the daemon never holds more than a window of stdin and never stops reading the socket: a
 * `signal`, `stdin_end` or close always arrives at once, even while the command reads no stdin.
 */
import { z } from 'zod';
import { ExecOptionsSchema } from '../sandbox/options.js';
import { ExecExitEvent, ProblemSchema } from './schemas.js';

export const OUTPUT_STREAM_ID = { stdout: 1, stderr: 2 } as const;

/** Unflushed output bytes past which the daemon pauses the command's output. */
export const WS_OUTPUT_HIGH_WATER = 1024 * 1024;

/** Stdin bytes a client may send before the guest took any: the first `stdin_credit`. */
export const WS_STDIN_WINDOW = 1024 * 1024;

const CommandSchema = z.union([z.string().min(1), z.array(z.string()).min(1)]);

/** First client message: the command (a string runs through `/bin/sh -c`, an array is argv) and its options. */
export const ExecWsStart = ExecOptionsSchema.extend({ type: z.literal('start'), command: CommandSchema }).strict();
export type ExecWsStart = z.infer<typeof ExecWsStart>;

/** Client messages after `start`. */
export const ExecWsControl = z.discriminatedUnion('type', [
  z.object({ type: z.literal('stdin_end') }).strict(),
  z
    .object({ type: z.literal('signal'), signal: z.string().regex(/^SIG[A-Z0-9]+$/, 'a signal name, like SIGTERM') })
    .strict(),
]);
export type ExecWsControl = z.infer<typeof ExecWsControl>;

/** Daemon text messages. */
export const ExecWsEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), pid: z.number().int() }),
  z.object({ type: z.literal('stdin_credit'), bytes: z.number().int().positive() }),
  ExecExitEvent,
  z.object({ type: z.literal('error'), problem: ProblemSchema }),
]);
export type ExecWsEvent = z.infer<typeof ExecWsEvent>;
