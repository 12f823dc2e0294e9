import type { ExecExit } from '../channel/exec-process.js';

/** The outcome of a finished guest command. Output is kept as bytes; the string forms decode UTF-8 on access. */
export class ExecResult {
  constructor(
    private readonly exit: ExecExit,
    readonly stdoutBytes: Buffer,
    readonly stderrBytes: Buffer,
    readonly durationMs: number,
  ) {}

  /** The exit status; 128 + signal number when the process was killed by a signal (137 for SIGKILL). */
  get exitCode(): number {
    return this.exit.exitCode;
  }

  /** The signal that ended the process, if one did. */
  get signal(): NodeJS.Signals | undefined {
    return this.exit.signal;
  }

  get stdout(): string {
    return this.stdoutBytes.toString('utf8');
  }

  get stderr(): string {
    return this.stderrBytes.toString('utf8');
  }
}
