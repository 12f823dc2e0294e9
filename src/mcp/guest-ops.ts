import type { Readable } from 'node:stream';
import { CancelledError, InvalidArgumentError } from '../core/errors.js';
import type { SandboxApi } from '../sandbox/api.js';
import { MAX_READ_BYTES, type RunCommandArgs } from './inputs.js';
import { OutputCap } from './output-cap.js';

/** A finished run_command: exit status and both streams, each capped (see OutputCap). */
export interface CappedRun {
  readonly exitCode: number;
  readonly signal: string | undefined;
  readonly timedOut: boolean;
  readonly durationMs: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly stdoutTruncatedBytes: number;
  readonly stderrTruncatedBytes: number;
}

async function drainInto(stream: Readable, cap: OutputCap): Promise<void> {
  for await (const chunk of stream) cap.push(chunk as Buffer);
}

/**
 * Runs a command to its end, keeping at most 64 KiB of each stream however much it prints (the rest is read and
 * dropped, so the guest never blocks on a full pipe). A timeout is a result (`timedOut`), not an error; `signal`
 * (the MCP request's cancellation) kills the command and rejects with CancelledError.
 */
export async function runCapped(sandbox: SandboxApi, args: RunCommandArgs, signal?: AbortSignal): Promise<CappedRun> {
  const started = performance.now();
  const handle = sandbox.spawn(args.command, {
    cwd: args.cwd,
    env: args.env,
    timeoutMs: args.timeoutMs,
    stdin: args.stdin ?? '',
    signal,
  });
  const stdout = new OutputCap();
  const stderr = new OutputCap();
  const output = Promise.all([drainInto(handle.stdout, stdout), drainInto(handle.stderr, stderr)]);
  output.catch(() => undefined);
  const exit = await handle.wait();
  await output;
  if (signal?.aborted) throw new CancelledError('the command was cancelled and killed');
  return {
    exitCode: exit.exitCode,
    signal: exit.signal,
    timedOut: exit.reason === 'timed_out',
    durationMs: Math.round(performance.now() - started),
    stdout: stdout.text(),
    stderr: stderr.text(),
    stdoutTruncatedBytes: stdout.truncatedBytes,
    stderrTruncatedBytes: stderr.truncatedBytes,
  };
}

function tooBig(path: string, size: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${path} is ${size}, over read_file's ${MAX_READ_BYTES} byte limit; ` +
      'read a part with run_command (head -c, tail -c, sed -n, grep) instead',
  );
}

/** Reads a regular file whole; refuses other file types and files over MAX_READ_BYTES (checked again while reading). */
export async function readCapped(sandbox: SandboxApi, path: string): Promise<Buffer> {
  const entry = await sandbox.files.stat(path);
  if (entry.type !== 'file') {
    throw new InvalidArgumentError(`${path} is a ${entry.type}, not a regular file; use list_files for a directory`);
  }
  if (entry.size > MAX_READ_BYTES) throw tooBig(path, `${entry.size} bytes`);
  const { content } = await sandbox.files.readStream(path);
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of content) {
    bytes += (chunk as Buffer).length;
    // Leaving the loop destroys the stream, which cancels the read in the guest.
    if (bytes > MAX_READ_BYTES) throw tooBig(path, 'growing while read');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
