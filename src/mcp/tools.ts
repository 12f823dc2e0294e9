import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import {
  CreateSandboxInput,
  DEFAULT_TIMEOUT_MS,
  ListFilesInput,
  MAX_LIST_ENTRIES,
  MAX_READ_BYTES,
  MAX_TIMEOUT_MS,
  ReadFileInput,
  RunCommandInput,
  SandboxIdInput,
  SnapshotSandboxInput,
  WriteFileInput,
  contentBytes,
  encodeContent,
  sandboxOptionsFrom,
} from './inputs.js';
import { type CappedRun, readCapped, runCapped } from './guest-ops.js';
import { MAX_STREAM_BYTES } from './output-cap.js';
import { toolError, toolResult } from './results.js';
import type { SandboxSession } from './session.js';

const SESSION_LIFETIME = 'Sandboxes are destroyed when this MCP session ends.';

/** Turns a thrown error into a tool error, so the agent reads what went wrong instead of a protocol failure. */
async function answer(run: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await run();
  } catch (error) {
    return toolError(error);
  }
}

function runText(run: CappedRun, timeoutMs: number): string {
  const status = run.timedOut
    ? `timed out after ${timeoutMs} ms: the command and its children were killed (exit code ${run.exitCode}). ` +
      `Rerun with a larger timeoutMs (max ${MAX_TIMEOUT_MS}), or start long jobs in the background ` +
      '(`nohup cmd > /tmp/log 2>&1 &`) and poll the log.'
    : `exit code ${run.exitCode}${run.signal ? ` (killed by ${run.signal})` : ''} after ${run.durationMs} ms`;
  return `${status}\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
}

/** Registers jitvm's sandbox tools on `server`; every sandbox they create belongs to `session`. */
export function registerSandboxTools(server: McpServer, session: SandboxSession): void {
  server.registerTool(
    'create_sandbox',
    {
      title: 'Create a sandbox',
      description:
        'Starts a fresh Linux micro-VM (a sandbox) for running untrusted code, and returns its id for the other ' +
        'tools. Cost: a cold boot takes about 2.5 s under emulation; starting fromSnapshot takes about 0.2 s. By ' +
        'default the guest is a minimal busybox system with no network; ask for network "nat" (or "allowlist" with ' +
        '`allow`) only when the task needs it, and pass rootfs for a fuller distribution. At most ' +
        `${session.maxSandboxes} sandboxes per session: destroy_sandbox the ones you are done with. Next: ` +
        `run_command, write_file. ${SESSION_LIFETIME}`,
      inputSchema: CreateSandboxInput,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: true },
    },
    (args, extra) =>
      answer(async () => {
        const started = performance.now();
        const sandbox = await session.create(sandboxOptionsFrom(args), extra.signal);
        const bootMs = Math.round(performance.now() - started);
        return toolResult(`sandbox ${sandbox.id} is running (started in ${bootMs} ms)`, {
          sandboxId: sandbox.id,
          bootMs,
        });
      }),
  );

  server.registerTool(
    'run_command',
    {
      title: 'Run a command',
      description:
        'Runs a command in a sandbox and waits for it to end; returns its exit code, stdout and stderr. A string ' +
        'runs through `/bin/sh -c`; an array is argv, run without a shell. A non-zero exit code is a normal result, ' +
        `not a tool error. Each stream keeps its first and last ${MAX_STREAM_BYTES / 2048} KiB; the middle of longer ` +
        'output is replaced by "[truncated N bytes]", so redirect big output to a file and inspect it with grep, ' +
        `head or tail. The command and its children are killed after timeoutMs (default ${DEFAULT_TIMEOUT_MS} ms, ` +
        `max ${MAX_TIMEOUT_MS} ms). Files and processes persist between calls in the same sandbox.`,
      inputSchema: RunCommandInput,
      annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
    },
    (args, extra) =>
      answer(async () => {
        const run = await runCapped(session.get(args.sandboxId), args, extra.signal);
        return toolResult(runText(run, args.timeoutMs), { ...run });
      }),
  );

  server.registerTool(
    'write_file',
    {
      title: 'Write a file',
      description:
        'Creates or replaces a file in a sandbox, creating missing parent directories. Send text as is, or binary ' +
        'content as base64 with encoding "base64" (about 3 MiB at most per call; append larger files in parts with ' +
        'run_command). Cheaper and safer than echoing content through run_command: no shell quoting.',
      inputSchema: WriteFileInput,
      annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: false },
    },
    (args) =>
      answer(async () => {
        const bytes = contentBytes(args.content, args.encoding);
        await session.get(args.sandboxId).files.write(args.path, bytes, { mode: args.mode });
        return toolResult(`wrote ${bytes.length} bytes to ${args.path}`, { path: args.path, bytes: bytes.length });
      }),
  );

  server.registerTool(
    'read_file',
    {
      title: 'Read a file',
      description:
        `Returns the content of a regular file in a sandbox (at most ${MAX_READ_BYTES / 1024 / 1024} MiB): text as ` +
        'is, binary as base64 (the result says which encoding it used). For larger files, or only part of one, ' +
        'use run_command with head, tail, sed -n or grep.',
      inputSchema: ReadFileInput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) =>
      answer(async () => {
        const bytes = await readCapped(session.get(args.sandboxId), args.path);
        const { encoding, content } = encodeContent(bytes, args.encoding);
        const text = encoding === 'utf8' ? content : `(${bytes.length} bytes, base64)\n${content}`;
        return toolResult(text, { path: args.path, size: bytes.length, encoding, content });
      }),
  );

  server.registerTool(
    'list_files',
    {
      title: 'List a directory',
      description:
        `Lists a directory in a sandbox: name, type (file, directory, symlink, other), size in bytes and permission ` +
        `mode (octal), up to ${MAX_LIST_ENTRIES} entries. Use run_command with find for recursive listings.`,
      inputSchema: ListFilesInput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) =>
      answer(async () => {
        const all = await session.get(args.sandboxId).files.list(args.path);
        const entries = all.slice(0, MAX_LIST_ENTRIES).map(({ name, type, size, mode }) => ({
          name,
          type,
          size,
          mode: mode.toString(8).padStart(4, '0'),
        }));
        const omitted = all.length - entries.length;
        const lines = entries.map((entry) => `${entry.mode} ${entry.type.padEnd(9)} ${entry.size} ${entry.name}`);
        if (omitted > 0) lines.push(`[${omitted} more entries not shown]`);
        return toolResult(lines.join('\n') || '(empty directory)', { path: args.path, entries, omitted });
      }),
  );

  server.registerTool(
    'snapshot_sandbox',
    {
      title: 'Snapshot a sandbox',
      description:
        "Saves a sandbox's whole state (memory, processes, files) under a name; the sandbox pauses while it is " +
        'saved, then keeps running. create_sandbox with fromSnapshot starts new sandboxes from it in about ' +
        '0.2 s, each with that state: set up an environment once (install, build), snapshot it, then start fresh ' +
        'copies instead of repeating the setup. Snapshots stay on the host after this session ends.',
      inputSchema: SnapshotSandboxInput,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    (args) =>
      answer(async () => {
        await session.get(args.sandboxId).snapshot({ name: args.name });
        return toolResult(`snapshot ${args.name} saved; create_sandbox with fromSnapshot "${args.name}" to use it`, {
          name: args.name,
        });
      }),
  );

  server.registerTool(
    'destroy_sandbox',
    {
      title: 'Destroy a sandbox',
      description:
        'Stops a sandbox at once and deletes everything in it (files not saved by snapshot_sandbox are lost). Frees ' +
        'its slot in this session. Call it as soon as you no longer need the sandbox.',
      inputSchema: SandboxIdInput,
      annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: false },
    },
    (args) =>
      answer(async () => {
        await session.destroy(args.sandboxId);
        return toolResult(`sandbox ${args.sandboxId} destroyed`, { sandboxId: args.sandboxId });
      }),
  );

  server.registerTool(
    'list_sandboxes',
    {
      title: 'List sandboxes',
      description:
        'Lists the sandboxes this session created and has not destroyed yet, with their ids and start times. Use it ' +
        `to recover an id, or to see which to destroy when create_sandbox refuses past ${session.maxSandboxes}.`,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    () =>
      answer(async () => {
        const sandboxes = session.list();
        const lines = sandboxes.map(
          (s) => `${s.id} created ${s.createdAt}${s.fromSnapshot ? ` from ${s.fromSnapshot}` : ''}`,
        );
        return toolResult(lines.join('\n') || 'no sandboxes; call create_sandbox', { sandboxes });
      }),
  );
}
