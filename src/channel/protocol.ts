/**
 * The one definition of the host↔agent protocol: message types, flags, error codes and limits.
 * `guest/protocol.h` is generated from this module (`npm run gen:protocol`); a unit test fails when they drift.
 * See docs/protocol.md for the wire format and the semantics of each message.
 */

export const PROTOCOL_VERSION = 1;
export const MIN_PROTOCOL_VERSION = 1;

export const FRAME_HEADER_SIZE = 12;
/** Largest payload either side accepts; a bigger length is a protocol error, never an allocation. */
export const MAX_PAYLOAD = 262144;
/** Data chunk size used for stdin, stdout, file bodies and TCP data. */
export const DATA_CHUNK = 65536;
/** Credit each data channel starts with, in bytes. */
export const INITIAL_WINDOW = 1048576;
/** Requests open at once on one connection. */
export const MAX_STREAMS = 64;

/** The virtio-serial port name the agent looks for. */
export const AGENT_PORT_NAME = 'jitvm.agent';
/** The AF_VSOCK port the agent listens on when the VM has a vsock device (Firecracker). */
export const AGENT_VSOCK_PORT = 1024;
/**
 * Kernel arguments naming the agent's transport. Without one the agent serves whichever it finds first; vfkit needs
 * the vsock one, because its console is a virtio console device as well.
 */
export const AGENT_CHANNEL_ARG = { SERIAL: 'jitvm.channel=serial', VSOCK: 'jitvm.channel=vsock' } as const;

/**
 * Kernel arguments (`name=value`) the agent reads as PID 1 before it serves: the NIC's address (`<ip>/<prefix>,<gateway>,<dns>`
 * or `dhcp`), the root drive and the overlay it writes to, extra mounts, and the order drives were attached in.
 * docs/protocol.md ("Boot arguments") gives each value's format.
 */
export const BOOT_ARG = {
  NET: 'jitvm.net',
  ROOT: 'jitvm.root',
  OVERLAY: 'jitvm.overlay',
  MOUNT: 'jitvm.mount',
  DRIVES: 'jitvm.drives',
} as const;

export const FLAG_FIN = 0x01;

export const MsgType = {
  HELLO: 0x01,
  HELLO_OK: 0x02,
  PING: 0x03,
  PONG: 0x04,
  ERROR: 0x05,
  OK: 0x06,
  EXEC: 0x10,
  EXEC_STARTED: 0x11,
  STDIN: 0x12,
  STDOUT: 0x13,
  STDERR: 0x14,
  SIGNAL: 0x15,
  EXIT: 0x16,
  WINDOW: 0x17,
  CANCEL: 0x18,
  FILE_WRITE: 0x20,
  FILE_READ: 0x21,
  FILE_DATA: 0x22,
  FILE_READ_OK: 0x23,
  MKDIR: 0x24,
  STAT: 0x25,
  STAT_RESULT: 0x26,
  LIST: 0x27,
  LIST_RESULT: 0x28,
  REMOVE: 0x29,
  SHUTDOWN: 0x30,
  SET_IDENTITY: 0x31,
  TCP_CONNECT: 0x40,
  TCP_ACCEPT: 0x41,
  TCP_CONNECTED: 0x42,
  TCP_ACCEPTED: 0x43,
  TCP_DATA: 0x44,
} as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

export const ErrorCode = {
  PROTOCOL: 1,
  UNSUPPORTED_VERSION: 2,
  NOT_FOUND: 3,
  PERMISSION: 4,
  INVALID_ARGUMENT: 5,
  ALREADY_EXISTS: 6,
  IO: 7,
  RESOURCE_LIMIT: 8,
  NOT_A_DIRECTORY: 9,
  IS_A_DIRECTORY: 10,
  NOT_EMPTY: 11,
  UNSUPPORTED: 12,
  INTERNAL: 13,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const Capability = {
  EXEC: 1 << 0,
  FILES: 1 << 1,
  SIGNAL: 1 << 2,
  SHUTDOWN: 1 << 3,
  /** SET_IDENTITY: only an agent running as PID 1 of a VM offers it (never dev mode, which would touch its host). */
  IDENTITY: 1 << 4,
  /** TCP_CONNECT / TCP_ACCEPT: TCP connections to and from 127.0.0.1 in the guest, carried over the channel. */
  TCP: 1 << 5,
} as const;

/**
 * Bounds of a SET_IDENTITY request: host entropy in bytes (32 fill the kernel's 256-bit input pool) and the hostname
 * in bytes (Linux's HOST_NAME_MAX).
 */
export const IdentityLimit = { MIN_ENTROPY: 32, MAX_ENTROPY: 512, MAX_HOSTNAME: 64 } as const;

export const ExecFlag = { STDIN: 1 << 0 } as const;
export const FileWriteFlag = { MKDIRS: 1 << 0 } as const;
export const RemoveFlag = { RECURSIVE: 1 << 0 } as const;

export const ExitReason = { EXITED: 0, SIGNALED: 1, TIMED_OUT: 2 } as const;
export type ExitReason = (typeof ExitReason)[keyof typeof ExitReason];

export const WindowChannel = { STDIN: 0, STDOUT: 1, STDERR: 2, FILE: 3, TCP: 4 } as const;
export type WindowChannel = (typeof WindowChannel)[keyof typeof WindowChannel];

export const EntryType = { FILE: 0, DIRECTORY: 1, SYMLINK: 2, OTHER: 3 } as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];
