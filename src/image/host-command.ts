import { execFile, spawn } from 'node:child_process';

import { HostToolMissingError } from '../core/errors.js';
import { ImageBuildError } from './errors.js';

/** What a host command printed. */
export interface CommandOutput {
  stdout: string;
  stderr: string;
}

/** How to run one host tool and what to tell the user when it is absent. */
export interface CommandSpec {
  /** Working directory of the command. */
  cwd?: string;
  /** Aborts the command (it is killed). */
  signal?: AbortSignal;
  /** Install hint shown when the program is not on this host, e.g. `apt-get install gcc libc6-dev`. */
  install: string;
  /** What to tell the user when the command fails. */
  remedy?: string;
}

const MAX_OUTPUT = 64 * 1024 * 1024;

/**
 * Runs `program args…` without a shell and resolves with its output.
 * A missing program throws HostToolMissingError; a non-zero exit throws ImageBuildError carrying stderr's tail.
 */
export function runHostCommand(program: string, args: readonly string[], spec: CommandSpec): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    execFile(
      program,
      args,
      {
        cwd: spec.cwd,
        signal: spec.signal,
        maxBuffer: MAX_OUTPUT,
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C' },
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr });
        if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !spec.signal?.aborted) {
          return reject(new HostToolMissingError(program, spec.install));
        }
        if (spec.signal?.aborted) return reject(spec.signal.reason ?? error);
        reject(failure(program, args, describeExit(error), stderr, spec, error));
      },
    );
  });
}

function describeExit(error: Error & { code?: unknown; signal?: unknown }): string {
  if (typeof error.code === 'number') return `exit code ${error.code}`;
  if (typeof error.signal === 'string') return `killed by ${error.signal}`;
  return error.message;
}

/**
 * Runs `program args…` (no shell) with `input` on stdin and resolves with its stdout as bytes: runHostCommand's
 * sibling for filters such as `xz -dc`. A missing program throws HostToolMissingError; a non-zero exit, or more than
 * `maxOutput` bytes of output (the program is then killed), throws ImageBuildError carrying stderr's tail; an abort
 * kills the program and rejects with the signal's reason.
 */
export function pipeThroughHostTool(
  program: string,
  args: readonly string[],
  input: Uint8Array,
  spec: CommandSpec & { maxOutput?: number },
): Promise<Buffer> {
  const maxOutput = spec.maxOutput ?? 1024 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      cwd: spec.cwd,
      signal: spec.signal,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    let overflow = false;
    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > maxOutput) {
        overflow = true;
        child.kill('SIGKILL');
      } else stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-8192);
    });
    // The program may exit before reading everything (corrupt input); its exit status tells what happened.
    child.stdin.on('error', () => {});
    child.stdin.end(input);

    child.on('error', (error: NodeJS.ErrnoException) => {
      if (spec.signal?.aborted) return reject(spec.signal.reason ?? error);
      if (error.code === 'ENOENT') return reject(new HostToolMissingError(program, spec.install));
      reject(failure(program, args, error.message, stderr, spec, error));
    });
    child.on('close', (code, signal) => {
      if (spec.signal?.aborted) return reject(spec.signal.reason);
      if (overflow) return reject(failure(program, args, `output exceeds ${maxOutput} bytes`, stderr, spec));
      if (code === 0) return resolve(Buffer.concat(stdout, stdoutBytes));
      const how = code !== null ? `exit code ${code}` : `killed by ${signal}`;
      reject(failure(program, args, how, stderr, spec));
    });
  });
}

function failure(
  program: string,
  args: readonly string[],
  how: string,
  stderr: string,
  spec: CommandSpec,
  cause?: unknown,
): ImageBuildError {
  const tail = stderr.trim().split('\n').slice(-20).join('\n');
  return new ImageBuildError(
    `\`${program} ${args.join(' ')}\` failed (${how})${tail ? `:\n${tail}` : ''}`,
    spec.remedy ?? 'Fix the problem shown above, then build the image again.',
    { cause },
  );
}
