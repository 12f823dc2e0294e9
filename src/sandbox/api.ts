import type { Readable } from 'node:stream';
import type { ExecExit } from '../channel/exec-process.js';
import type { FileEntry } from '../channel/files.js';
import type { Command, ExecOptions, SpawnOptions } from './command.js';
import type { ExecResult } from './exec-result.js';
import type { PortForwardInput, PublishedPort } from './ports.js';

/** Options of `sandbox.files.write`. */
export interface WriteFileOptions {
  /** Permission bits of the file (default 0o644). */
  readonly mode?: number;
  /** Create missing parent directories (default true). */
  readonly mkdirs?: boolean;
}

/** File operations inside a sandbox, local or through a daemon. Paths are guest paths; relative ones start at `/`. */
export interface SandboxFilesApi {
  /** Writes bytes, text or a byte stream to `path`, streaming in chunks. Resolves with the bytes written. */
  write(
    path: string,
    data: string | Buffer | Readable | AsyncIterable<Buffer>,
    options?: WriteFileOptions,
  ): Promise<number>;
  /** Reads a whole file into memory. */
  read(path: string): Promise<Buffer>;
  /** Opens a file as a stream (for files too big to hold in memory), with its size and mode. */
  readStream(path: string): Promise<{ size: number; mode: number; content: Readable }>;
  list(path: string): Promise<FileEntry[]>;
  stat(path: string): Promise<FileEntry>;
  /** Creates a directory and its missing parents. */
  mkdir(path: string, mode?: number): Promise<void>;
  /** Removes a file or empty directory; `recursive` removes a whole tree. */
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
}

/** A command running in a sandbox (`sandbox.spawn`): streaming output, writable stdin, signals, its exit. */
export interface RunningCommand {
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** The guest pid, once the program is running; rejects if it could not start. */
  readonly pid: Promise<number>;
  /** Writes to the command's stdin; resolves once the bytes were taken (flow-controlled end to end). */
  sendStdin(data: string | Buffer): Promise<void>;
  closeStdin(): void;
  /** Signals the command's whole process group (SIGKILL by default). */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves with the exit once the command ended and all its output was sent (it may still be unread). */
  wait(): Promise<ExecExit>;
  readonly elapsedMs: number;
}

/**
 * What every sandbox offers, whether this process holds its VM (`Sandbox`) or a daemon does (`RemoteSandbox`,
 * from `Sandbox.create({ daemon })`): code written against this interface runs with either.
 */
export interface SandboxApi extends AsyncDisposable {
  readonly id: string;
  readonly files: SandboxFilesApi;
  /** Runs a command to completion and returns its exit code and output. A non-zero exit is not an error. */
  exec(command: Command, options?: ExecOptions): Promise<ExecResult>;
  /** Starts a command whose stdin stays open for `sendStdin` until `closeStdin`. */
  spawn(command: Command, options?: SpawnOptions): RunningCommand;
  /** `127.0.0.1:<host port>` where the host reaches a published guest TCP port. */
  getHost(guestPort: number): string;
  /** Publishes guest TCP port `guest` on the host's 127.0.0.1; resolves with the host port. */
  publishPort(forward: PortForwardInput): Promise<number>;
  readonly ports: PublishedPort[];
  /** Round trip to the agent, in milliseconds (through the daemon for a remote sandbox). */
  ping(): Promise<number>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stores a snapshot under `name` (see `Sandbox.create({ fromSnapshot })`), then resumes or destroys the sandbox. */
  snapshot(options: {
    readonly name: string;
    readonly then?: 'resume' | 'destroy';
  }): Promise<{ readonly name: string }>;
  /** Ends the VM and removes everything it left on the host. */
  destroy(options?: { graceful?: boolean }): Promise<void>;
  /** Lets go of the sandbox without destroying it; `Sandbox.connect(id)` (with the same daemon) reaches it again. */
  detach(): void;
}
