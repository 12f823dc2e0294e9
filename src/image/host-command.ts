import { execFile } from 'node:child_process';

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
        const tail = stderr.trim().split('\n').slice(-20).join('\n');
        reject(
          new ImageBuildError(
            `\`${program} ${args.join(' ')}\` failed (${describeExit(error)})${tail ? `:\n${tail}` : ''}`,
            spec.remedy ?? 'Fix the problem shown above, then build the image again.',
            { cause: error },
          ),
        );
      },
    );
  });
}

function describeExit(error: Error & { code?: unknown; signal?: unknown }): string {
  if (typeof error.code === 'number') return `exit code ${error.code}`;
  if (typeof error.signal === 'string') return `killed by ${error.signal}`;
  return error.message;
}
