import { JitvmError, type ErrorCode } from '../core/errors.js';

/** Exit statuses of the CLI itself; a guest command's own status is passed through unchanged. */
const EXIT_BY_CODE: Partial<Record<ErrorCode, number>> = {
  invalid_argument: 2,
  host_tool_missing: 3,
  boot_failed: 4,
  unsupported: 5,
  not_found: 6,
  resource_exhausted: 7,
  timeout: 124,
  cancelled: 130,
};

/** 127, like a shell, when the guest could not find the program. */
const COMMAND_NOT_FOUND = 127;

/** Prints an error the way every command does, and returns the process exit status for it. */
export function reportError(error: unknown): number {
  // The agent's NOT_FOUND for a missing program, directly or as a daemon relays it.
  if (error instanceof JitvmError && error.code === 'not_found' && /^command not found/.test(error.message)) {
    process.stderr.write(`jitvm: ${error.message}\n`);
    return COMMAND_NOT_FOUND;
  }
  if (error instanceof JitvmError) {
    process.stderr.write(`jitvm: ${error.message}\n`);
    return EXIT_BY_CODE[error.code] ?? 1;
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`jitvm: unexpected error (please report it): ${message}\n`);
  return 1;
}
