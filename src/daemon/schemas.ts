/**
 * The zod schemas of the REST API: the daemon parses every request with them and the OpenAPI document is generated
 * from them, so the two cannot disagree.
 */
import { z } from 'zod';
import { ERROR_CODES } from '../core/errors.js';
import { ExecOptionsSchema, SandboxOptionsSchema } from '../sandbox/options.js';
import { MAX_TIMEOUT_MS } from './lifecycle.js';

const TimeoutMs = z.number().int().min(1000).max(MAX_TIMEOUT_MS);

/**
 * `POST /v1/sandboxes`: the SDK's options, minus `detached` (the daemon decides: its VMs are detached so a restarted
 * daemon can re-adopt them), plus the sandbox's timeouts; unknown keys refused.
 */
export const CreateSandboxBody = SandboxOptionsSchema.omit({ detached: true })
  .extend({
    timeoutMs: TimeoutMs.optional().describe('destroyed this long after creation (default 1 h, at most 24 h)'),
    idleTimeoutMs: TimeoutMs.optional().describe('destroyed after this long without a request on it (default 5 min)'),
  })
  .strict();

/** `POST /v1/sandboxes/:id/timeout`: the sandbox now ends `timeoutMs` from now (at most 24 h). */
export const SetTimeoutBody = z.object({ timeoutMs: TimeoutMs }).strict();

export const SandboxIdParams = z.object({ id: z.string().min(1).max(128) }).strict();

/** A guest TCP port published on the host's 127.0.0.1 at `host`. */
export const PublishedPortSchema = z.object({ guest: z.number().int(), host: z.number().int() });

/** `POST /v1/sandboxes/:id/ports`: the SDK's port forward (`host` 0 or absent: a free port). */
export { PortForwardSchema as PublishPortBody } from '../sandbox/ports.js';

/** `POST /v1/sandboxes/:id/ping`: the agent's round trip as the daemon measured it. */
export const PingResult = z.object({ agentMs: z.number().describe('daemon ↔ guest agent round trip, in ms') });

/** Query of `DELETE /v1/sandboxes/:id`: `graceful=true` asks the guest to power off before the VMM is killed. */
export const DestroyQuery = z.object({ graceful: z.enum(['true', 'false']).optional() }).strict();

/** The options a sandbox was created with, as the daemon reports them. */
export const SandboxConfigInfo = z.object({
  cpus: z.number().int().optional(),
  memoryMiB: z.number().int().optional(),
  arch: z.string().optional(),
  network: z.string().describe('network mode: none, nat, allowlist or tap'),
  fromSnapshot: z.string().optional(),
});

/** What the daemon reports about one of its sandboxes. */
export const SandboxInfo = z.object({
  id: z.string(),
  backend: z.string(),
  createdAt: z.string().describe('ISO 8601 time the daemon created it'),
  expiresAt: z.string().describe('ISO 8601 time it will be destroyed (POST …/timeout moves it)'),
  idleExpiresAt: z.string().describe('ISO 8601 time it will be destroyed if no request touches it before'),
  config: SandboxConfigInfo,
  ports: z.array(PublishedPortSchema),
});
export type SandboxInfo = z.infer<typeof SandboxInfo>;

export const SandboxList = z.object({ sandboxes: z.array(SandboxInfo) });

/** Standard input of an exec: UTF-8 text or base64 bytes. */
const StdinSchema = z.union([z.object({ text: z.string() }).strict(), z.object({ base64: z.base64() }).strict()]);

/** `POST /v1/sandboxes/:id/exec`: a string runs through `/bin/sh -c`, an array is argv run without a shell. */
export const ExecBody = ExecOptionsSchema.extend({
  command: z.union([z.string().min(1), z.array(z.string()).min(1)]),
  stdin: StdinSchema.optional(),
}).strict();

/** How a command ended: the last line of an exec's NDJSON response, and the last message of its WebSocket. */
export const ExecExitEvent = z.object({
  type: z.literal('exit'),
  exitCode: z.number().int(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
});

/** One line of an exec's NDJSON response. Output chunks are base64; `exit` is always the last line. */
export const ExecEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('stdout'), data: z.base64() }),
  z.object({ type: z.literal('stderr'), data: z.base64() }),
  ExecExitEvent,
]);
export type ExecEvent = z.infer<typeof ExecEvent>;

const GuestPath = z.string().min(1).max(4096);

export const PathQuery = z.object({ path: GuestPath }).strict();

/** Query of `PUT …/files`: the file's mode in octal (default 0644). */
export const WriteFileQuery = z
  .object({
    path: GuestPath,
    mode: z
      .string()
      .regex(/^0?[0-7]{3,4}$/, 'mode must be octal permission bits, like 0644')
      .optional(),
    mkdirs: z.enum(['true', 'false']).optional().describe('create missing parent directories (default true)'),
  })
  .strict();

/** The response header of a file download that carries the file's permission bits, in octal. */
export const FILE_MODE_HEADER = 'x-jitvm-mode';

export const RemoveQuery = z.object({ path: GuestPath, recursive: z.enum(['true', 'false']).optional() }).strict();

export const MkdirBody = z.object({ path: GuestPath, mode: z.number().int().min(0).max(0o7777).optional() }).strict();

export const FileEntrySchema = z.object({
  name: z.string(),
  type: z.enum(['file', 'directory', 'symlink', 'other']),
  mode: z.number().int(),
  size: z.number().int(),
  mtimeMs: z.number(),
});

export const FileList = z.object({ entries: z.array(FileEntrySchema) });

export const WrittenFile = z.object({ path: z.string(), bytes: z.number().int() });

export const Health = z.object({ status: z.literal('ok') });

export const VersionInfo = z.object({ version: z.string(), apiVersion: z.string() });

export const ProblemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.enum(ERROR_CODES),
});
