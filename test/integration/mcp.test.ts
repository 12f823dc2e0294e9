import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { vmsRoot } from '../../src/core/paths.js';
import { readVmRecord } from '../../src/core/vm-record.js';
import { alive } from '../helpers/process.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

const TOOLS = [
  'create_sandbox',
  'destroy_sandbox',
  'list_files',
  'list_sandboxes',
  'read_file',
  'run_command',
  'snapshot_sandbox',
  'write_file',
];

/** An MCP client speaking to `jitvm mcp` in a child process, as an agent's host would start it. */
async function connect(): Promise<{ client: Client; transport: StdioClientTransport }> {
  const env = { ...getDefaultEnvironment() };
  if (process.env.JITVM_RUNTIME_DIR) env.JITVM_RUNTIME_DIR = process.env.JITVM_RUNTIME_DIR;
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'mcp', '--boot-timeout', String(BOOT_TIMEOUT_MS)],
    env,
    stderr: 'inherit',
  });
  const client = new Client({ name: 'jitvm-test', version: '0' });
  await client.connect(transport);
  return { client, transport };
}

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

function text(result: CallToolResult): string {
  return result.content.map((part) => (part.type === 'text' ? part.text : '')).join('');
}

/** Calls a tool that must succeed and returns its structured content. */
async function ok(client: Client, name: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const result = await call(client, name, args);
  assert.ok(!result.isError, `${name} failed: ${text(result)}`);
  return result.structuredContent!;
}

describe('jitvm mcp (stdio)', { timeout: 300_000 }, () => {
  let client: Client;
  let sandboxId: string;

  before(async () => {
    ({ client } = await connect());
    sandboxId = (await ok(client, 'create_sandbox')).sandboxId as string;
  });
  after(async () => {
    await client?.close();
  });

  it('lists every tool with a description and an input schema', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), TOOLS);
    for (const tool of tools) {
      assert.ok((tool.description ?? '').length > 80, `${tool.name} has a real description`);
      assert.equal(tool.inputSchema.type, 'object');
    }
    const run = tools.find((tool) => tool.name === 'run_command')!;
    assert.deepEqual(run.inputSchema.required?.sort(), ['command', 'sandboxId']);
  });

  it('run_command: a non-zero exit is a result with the exit code and output', async () => {
    const result = await ok(client, 'run_command', { sandboxId, command: 'echo hi; echo oops >&2; exit 3' });
    assert.equal(result.exitCode, 3);
    assert.equal(result.stdout, 'hi\n');
    assert.equal(result.stderr, 'oops\n');
    const argv = await ok(client, 'run_command', { sandboxId, command: ['cat'], stdin: 'fed', cwd: '/tmp' });
    assert.equal(argv.stdout, 'fed');
    const slow = await ok(client, 'run_command', { sandboxId, command: 'echo started; sleep 30', timeoutMs: 500 });
    assert.deepEqual([slow.timedOut, slow.exitCode, slow.stdout], [true, 137, 'started\n']);
  });

  it('run_command: caps each stream and says how much it left out', async () => {
    const result = await ok(client, 'run_command', {
      sandboxId,
      command: 'head -c 204800 /dev/zero | tr "\\0" a; echo END',
    });
    assert.equal(result.exitCode, 0);
    const left = 204800 + 'END\n'.length - 65536;
    assert.equal(result.stdoutTruncatedBytes, left);
    const stdout = result.stdout as string;
    const expected = `${'a'.repeat(32768)}\n[truncated ${left} bytes]\n${'a'.repeat(32768 - 4)}END\n`;
    assert.ok(stdout === expected, `stdout keeps both ends around the marker, got ${stdout.length} chars`);
  });

  it('write_file and read_file round-trip text and binary content', async () => {
    await ok(client, 'write_file', { sandboxId, path: '/tmp/work/note.txt', content: 'héllo\n' });
    const note = await ok(client, 'read_file', { sandboxId, path: '/tmp/work/note.txt' });
    assert.deepEqual([note.encoding, note.content], ['utf8', 'héllo\n']);
    const binary = Buffer.from([0, 1, 2, 254, 255, 0x80]);
    const written = await ok(client, 'write_file', {
      sandboxId,
      path: '/tmp/work/blob.bin',
      content: binary.toString('base64'),
      encoding: 'base64',
      mode: 0o600,
    });
    assert.equal(written.bytes, binary.length);
    const read = await ok(client, 'read_file', { sandboxId, path: '/tmp/work/blob.bin' });
    assert.equal(read.encoding, 'base64');
    assert.deepEqual(Buffer.from(read.content as string, 'base64'), binary);
    const listed = await ok(client, 'list_files', { sandboxId, path: '/tmp/work' });
    assert.deepEqual(listed.entries, [
      { name: 'blob.bin', type: 'file', size: 6, mode: '0600' },
      { name: 'note.txt', type: 'file', size: 7, mode: '0644' },
    ]);
  });

  it('refuses unknown sandbox ids, bad input and oversized reads as tool errors that say what to do', async () => {
    const unknown = await call(client, 'run_command', { sandboxId: 'no-such-sandbox', command: 'true' });
    assert.equal(unknown.isError, true);
    assert.match(text(unknown), /not_found: no sandbox "no-such-sandbox".*list_sandboxes/);
    const invalid = await call(client, 'run_command', { sandboxId, command: 'true', timeoutMs: 3_600_000 });
    assert.equal(invalid.isError, true);
    assert.match(text(invalid), /timeoutMs/);
    await ok(client, 'run_command', { sandboxId, command: 'head -c 1048577 /dev/zero > /tmp/big' });
    const big = await call(client, 'read_file', { sandboxId, path: '/tmp/big' });
    assert.equal(big.isError, true);
    assert.match(text(big), /1048577 bytes, over read_file's 1048576 byte limit.*run_command/);
  });

  it('destroy_sandbox ends the VM and forgets its id', async () => {
    assert.ok(existsSync(join(vmsRoot(), sandboxId)));
    await ok(client, 'destroy_sandbox', { sandboxId });
    assert.equal(existsSync(join(vmsRoot(), sandboxId)), false);
    assert.deepEqual((await ok(client, 'list_sandboxes')).sandboxes, []);
    const again = await call(client, 'run_command', { sandboxId, command: 'true' });
    assert.equal(again.isError, true);
  });
});

/** Starts a server holding one sandbox, ends it with `end`, and checks that the server and the VM are gone. */
async function endsWithItsSandboxes(end: (client: Client, transport: StdioClientTransport) => Promise<void>) {
  const { client, transport } = await connect();
  let id: string;
  let vmmPid: number;
  try {
    id = (await ok(client, 'create_sandbox')).sandboxId as string;
    vmmPid = readVmRecord(id).pid;
    const listed = (await ok(client, 'list_sandboxes')).sandboxes as { id: string }[];
    assert.deepEqual(
      listed.map((sandbox) => sandbox.id),
      [id],
    );
  } catch (error) {
    await client.close();
    throw error;
  }
  const pid = transport.pid!;
  await end(client, transport);
  assert.equal(alive(pid), false, 'the server process exited');
  assert.equal(alive(vmmPid), false, `the VMM of ${id} is gone`);
  assert.equal(existsSync(join(vmsRoot(), id)), false, `the runtime dir of ${id} is gone`);
}

describe('jitvm mcp: the end of the session destroys its sandboxes', { timeout: 300_000 }, () => {
  it('when the client closes stdin', () => endsWithItsSandboxes((client) => client.close()));

  it('on SIGTERM', () =>
    endsWithItsSandboxes(async (client, transport) => {
      const closed = new Promise<void>((resolve) => (client.onclose = resolve));
      process.kill(transport.pid!, 'SIGTERM');
      await closed;
    }));
});
