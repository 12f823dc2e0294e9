import { z } from 'zod';
import { InvalidArgumentError } from '../core/errors.js';
import type { SandboxOptions } from '../sandbox/options.js';
import { SNAPSHOT_NAME } from '../snapshot/manifest.js';

/** Longest command run_command accepts (a script passed to `/bin/sh -c`, or all argv entries together). */
export const MAX_COMMAND_CHARS = 100_000;
/** Default and largest run_command timeout. */
export const DEFAULT_TIMEOUT_MS = 60_000;
export const MAX_TIMEOUT_MS = 600_000;
/** Largest stdin text for run_command. */
export const MAX_STDIN_CHARS = 1024 * 1024;
/** Largest write_file content, as sent (text, or base64 of about 3 MiB). */
export const MAX_WRITE_CHARS = 4 * 1024 * 1024;
/** Largest file read_file returns. */
export const MAX_READ_BYTES = 1024 * 1024;
/** Most entries list_files returns. */
export const MAX_LIST_ENTRIES = 1000;

const MAX_PATH_CHARS = 4096;
const MAX_ENV_ENTRIES = 256;
const MAX_ALLOW_ENTRIES = 64;

const guestPath = z.string().min(1).max(MAX_PATH_CHARS);
const sandboxId = z
  .string()
  .regex(/^[a-z0-9-]{1,64}$/, 'a sandbox id is what create_sandbox returned')
  .describe('The id create_sandbox returned.');

/** create_sandbox's arguments. */
export const CreateSandboxInput = {
  cpus: z.number().int().min(1).max(16).optional().describe('Virtual CPUs (default 1).'),
  memoryMiB: z.number().int().min(64).max(16384).optional().describe('Guest RAM in MiB (default 256).'),
  network: z
    .enum(['none', 'nat', 'allowlist'])
    .optional()
    .describe('none (default): no network at all; nat: full outbound access; allowlist: only the `allow` targets.'),
  allow: z
    .array(z.string().min(1).max(253))
    .min(1)
    .max(MAX_ALLOW_ENTRIES)
    .optional()
    .describe('With network "allowlist": domains (`*.example.com` for subdomains), IPs or CIDRs the guest may reach.'),
  rootfs: z
    .string()
    .min(1)
    .max(MAX_PATH_CHARS)
    .optional()
    .describe('Host path of an ext4 root filesystem image (from `jitvm image build`); default: a busybox system.'),
  fromSnapshot: z
    .string()
    .regex(SNAPSHOT_NAME, 'a snapshot name as given to snapshot_sandbox')
    .optional()
    .describe('Start from this snapshot (see snapshot_sandbox) instead of booting; excludes every other option.'),
};

/** run_command's arguments. */
export const RunCommandInput = {
  sandboxId,
  command: z
    .union([z.string().min(1).max(MAX_COMMAND_CHARS), z.array(z.string().max(MAX_COMMAND_CHARS)).min(1).max(1024)])
    .refine((command) => typeof command === 'string' || command.join('').length <= MAX_COMMAND_CHARS, {
      message: `a command is at most ${MAX_COMMAND_CHARS} characters`,
    })
    .describe(
      'A shell script run by `/bin/sh -c` (pipes, &&, redirections work), or an argv array run without a shell.',
    ),
  cwd: guestPath.optional().describe('Working directory in the guest (default /).'),
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().max(MAX_COMMAND_CHARS))
    .refine((env) => Object.keys(env).length <= MAX_ENV_ENTRIES, `at most ${MAX_ENV_ENTRIES} variables`)
    .optional()
    .describe('Extra environment variables.'),
  timeoutMs: z
    .number()
    .int()
    .min(1)
    .max(MAX_TIMEOUT_MS)
    .default(DEFAULT_TIMEOUT_MS)
    .describe(
      `Kill the command and its children after this long (default ${DEFAULT_TIMEOUT_MS}, max ${MAX_TIMEOUT_MS}).`,
    ),
  stdin: z.string().max(MAX_STDIN_CHARS).optional().describe('Text fed to the command on standard input.'),
};

const encoding = z.enum(['utf8', 'base64']);

/** write_file's arguments. */
export const WriteFileInput = {
  sandboxId,
  path: guestPath.describe('Guest path; missing parent directories are created.'),
  content: z.string().max(MAX_WRITE_CHARS).describe('The file content: text, or base64 with encoding "base64".'),
  encoding: encoding.default('utf8').describe('utf8 (default) or base64 for binary content.'),
  mode: z.number().int().min(0).max(0o7777).optional().describe('Permission bits as a number, e.g. 493 for 0755.'),
};

/** read_file's arguments. */
export const ReadFileInput = {
  sandboxId,
  path: guestPath.describe('Guest path of a regular file.'),
  encoding: encoding
    .optional()
    .describe('utf8 or base64; by default text comes back as utf8 and anything else (binary) as base64.'),
};

/** list_files's arguments. */
export const ListFilesInput = { sandboxId, path: guestPath.describe('Guest directory.') };

/** snapshot_sandbox's arguments. */
export const SnapshotSandboxInput = {
  sandboxId,
  name: z
    .string()
    .regex(SNAPSHOT_NAME, 'a letter or digit, then up to 63 letters, digits, `_`, `.` or `-`')
    .describe('Name to store the snapshot under; an existing snapshot of that name is refused.'),
};

/** destroy_sandbox's arguments. */
export const SandboxIdInput = { sandboxId };

type Parsed<Shape extends z.ZodRawShape> = z.output<z.ZodObject<Shape>>;
export type CreateSandboxArgs = Parsed<typeof CreateSandboxInput>;
export type RunCommandArgs = Parsed<typeof RunCommandInput>;
export type WriteFileArgs = Parsed<typeof WriteFileInput>;
export type ReadFileArgs = Parsed<typeof ReadFileInput>;

function networkFrom(network: CreateSandboxArgs['network'], allow: string[] | undefined): SandboxOptions['network'] {
  if (network === 'allowlist') {
    if (!allow) throw new InvalidArgumentError('network "allowlist" needs `allow` entries');
    return { mode: network, allow };
  }
  if (allow) throw new InvalidArgumentError('`allow` needs network "allowlist"');
  return network ? { mode: network } : undefined;
}

/** The SDK options create_sandbox's arguments ask for; refuses `allow` without allowlist mode, and the reverse. */
export function sandboxOptionsFrom(args: CreateSandboxArgs): SandboxOptions {
  const { network, allow, rootfs, ...rest } = args;
  return { ...rest, network: networkFrom(network, allow), rootfs: rootfs ? { image: rootfs } : undefined };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** write_file's content as bytes; refuses base64 that is not canonical base64 (Node would silently skip bad input). */
export function contentBytes(content: string, encoding: 'utf8' | 'base64'): Buffer {
  if (encoding === 'utf8') return Buffer.from(content, 'utf8');
  const compact = content.replace(/\s+/g, '');
  if (!BASE64.test(compact))
    throw new InvalidArgumentError('content is not valid base64 (A-Z a-z 0-9 + / and = padding)');
  return Buffer.from(compact, 'base64');
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** File bytes as read_file returns them: as asked, else UTF-8 when they are text (valid UTF-8, no NUL), else base64. */
export function encodeContent(
  bytes: Buffer,
  asked?: 'utf8' | 'base64',
): { encoding: 'utf8' | 'base64'; content: string } {
  if (asked) return { encoding: asked, content: bytes.toString(asked) };
  if (!bytes.includes(0)) {
    try {
      return { encoding: 'utf8', content: strictUtf8.decode(bytes) };
    } catch {
      // not UTF-8: binary
    }
  }
  return { encoding: 'base64', content: bytes.toString('base64') };
}
