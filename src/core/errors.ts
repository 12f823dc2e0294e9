/**
 * One error root with a closed set of codes. Subclasses exist only where callers need data beyond the message.
 * Every message says what went wrong and what to do next.
 */

export const ERROR_CODES = [
  'invalid_argument',
  'not_found',
  'invalid_state',
  'resource_exhausted',
  'timeout',
  'unsupported',
  'cancelled',
  'host_tool_missing',
  'boot_failed',
  'vmm_failed',
  'agent_lost',
  'protocol',
  'guest_error',
  'image_build_failed',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Root of every error jitvm throws on purpose. */
export class JitvmError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A value given by the caller is wrong; the message names the field and the accepted range. */
export class InvalidArgumentError extends JitvmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid_argument', message, options);
  }
}

/** A host program jitvm needs (qemu-system-*, gcc, busybox…) is absent; `install` says how to get it. */
export class HostToolMissingError extends JitvmError {
  constructor(
    readonly tool: string,
    readonly install: string,
  ) {
    super('host_tool_missing', `${tool} is not installed on this host. Install it with: ${install}`);
  }
}

/** The VM did not come up: the VMM exited, or the agent never answered. Carries the console tail. */
export class SandboxBootError extends JitvmError {
  constructor(
    message: string,
    readonly consoleTail: string,
    readonly consoleLogPath: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(
      'boot_failed',
      consoleTail ? `${message}\n--- guest console (last lines) ---\n${consoleTail}` : message,
      options,
    );
  }
}

/** The guest command ran past its timeout and its whole process group was killed. Carries what it printed. */
export class ExecTimeoutError extends JitvmError {
  constructor(
    readonly timeoutMs: number,
    readonly stdout: Buffer,
    readonly stderr: Buffer,
  ) {
    super('timeout', `command timed out after ${timeoutMs} ms and was killed with its children`);
  }
}

/** The agent channel closed (VMM died, guest powered off, host disconnected) while a request was open. */
export class ChannelClosedError extends JitvmError {
  constructor(message = 'the agent channel closed: the VM stopped or crashed', options?: { cause?: unknown }) {
    super('agent_lost', message, options);
  }
}

/** The peer broke the wire protocol (malformed, oversized or unexpected frame). */
export class ProtocolError extends JitvmError {
  constructor(message: string) {
    super('protocol', message);
  }
}

/** Agent error codes that have a jitvm code of their own; the rest are `guest_error`. */
const GUEST_CODES: Partial<Record<string, ErrorCode>> = {
  NOT_FOUND: 'not_found',
  INVALID_ARGUMENT: 'invalid_argument',
  UNSUPPORTED: 'unsupported',
};

/** The agent refused a request; `guestCode` is the protocol error code name (NOT_FOUND, PERMISSION…). */
export class GuestError extends JitvmError {
  constructor(
    readonly guestCode: string,
    message: string,
  ) {
    super(GUEST_CODES[guestCode] ?? 'guest_error', message);
  }
}

/** The VMM process failed or refused a command. */
export class VmmError extends JitvmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('vmm_failed', message, options);
  }
}

/** The operation was cancelled through an AbortSignal. */
export class CancelledError extends JitvmError {
  constructor(message = 'the operation was cancelled') {
    super('cancelled', message);
  }
}
