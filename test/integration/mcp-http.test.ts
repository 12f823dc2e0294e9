import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { vmsRoot } from '../../src/core/paths.js';
import { readVmRecord } from '../../src/core/vm-record.js';
import { alive } from '../helpers/process.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** `jitvm mcp --listen` in a child process, with a config dir (so a token file) of its own. */
interface Served {
  readonly child: ChildProcess;
  readonly url: string;
  readonly token: string;
  readonly exited: Promise<unknown>;
  /** Stops the server if it still runs (SIGTERM, so it destroys its sandboxes), and removes its config dir. */
  readonly cleanUp: () => Promise<void>;
}

async function startServer(...flags: string[]): Promise<Served> {
  const configHome = mkdtempSync(join(tmpdir(), 'jitvm-mcp-http-'));
  const child = spawn(
    process.execPath,
    [CLI, 'mcp', '--listen', '127.0.0.1:0', '--boot-timeout', String(BOOT_TIMEOUT_MS), ...flags],
    {
      env: { ...process.env, XDG_CONFIG_HOME: configHome },
      stdio: ['ignore', 'inherit', 'pipe'],
    },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const cleanUp = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), delay(30_000, false)]);
      if (!stopped) child.kill('SIGKILL');
    }
    rmSync(configHome, { recursive: true, force: true });
  };
  const banner = new Promise<RegExpExecArray>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      const match = /^jitvm: MCP on (\S+); bearer token in (.+)$/.exec(line);
      if (match) resolve(match);
      else process.stderr.write(`${line}\n`);
    });
    void exited.then(() => reject(new Error('jitvm mcp --listen exited before it listened')));
  });
  try {
    const [, url, tokenPath] = await banner;
    assert.equal(tokenPath, join(configHome, 'jitvm', 'token'));
    return { child, url: url!, token: readFileSync(tokenPath!, 'utf8').trim(), exited, cleanUp };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

async function connect(served: Served): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(served.url), {
    requestInit: { headers: { authorization: `Bearer ${served.token}` } },
  });
  const client = new Client({ name: 'jitvm-test', version: '0' });
  await client.connect(transport);
  return client;
}

const transportOf = (client: Client) => client.transport as StreamableHTTPClientTransport;

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

const text = (result: CallToolResult): string =>
  result.content.map((part) => (part.type === 'text' ? part.text : '')).join('');

/** Calls a tool that must succeed and returns its structured content. */
async function ok(client: Client, name: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const result = await call(client, name, args);
  assert.ok(!result.isError, `${name} failed: ${text(result)}`);
  return result.structuredContent!;
}

interface Created {
  readonly id: string;
  readonly vmmPid: number;
}

async function createSandbox(client: Client): Promise<Created> {
  const id = (await ok(client, 'create_sandbox')).sandboxId as string;
  return { id, vmmPid: readVmRecord(id).pid };
}

async function listedIds(client: Client): Promise<string[]> {
  return ((await ok(client, 'list_sandboxes')).sandboxes as { id: string }[]).map((sandbox) => sandbox.id);
}

/** Asserts that the sandbox's VMM process and runtime directory are gone. */
function assertDestroyed({ id, vmmPid }: Created): void {
  assert.equal(alive(vmmPid), false, `the VMM of ${id} is gone`);
  assert.equal(existsSync(join(vmsRoot(), id)), false, `the runtime dir of ${id} is gone`);
}

describe('jitvm mcp --listen (streamable HTTP)', { timeout: 300_000 }, () => {
  let served: Served;
  let first: Client;
  let second: Client;
  let ofFirst: Created;
  let ofSecond: Created;

  before(async () => {
    served = await startServer();
    [first, second] = await Promise.all([connect(served), connect(served)]);
    [ofFirst, ofSecond] = await Promise.all([createSandbox(first), createSandbox(second)]);
  });
  after(async () => {
    await Promise.allSettled([first?.close(), second?.close()]);
    await served?.cleanUp();
  });

  it('lists the tools, runs a command, writes and reads a file', async () => {
    const { tools } = await first.listTools();
    assert.ok(tools.some((tool) => tool.name === 'run_command'));
    const run = await ok(first, 'run_command', { sandboxId: ofFirst.id, command: 'echo hi; exit 3' });
    assert.deepEqual([run.exitCode, run.stdout], [3, 'hi\n']);
    await ok(first, 'write_file', { sandboxId: ofFirst.id, path: '/tmp/note.txt', content: 'héllo\n' });
    const read = await ok(first, 'read_file', { sandboxId: ofFirst.id, path: '/tmp/note.txt' });
    assert.deepEqual([read.encoding, read.content], ['utf8', 'héllo\n']);
  });

  it('refuses a request without the token or with a wrong one (401)', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    for (const authorization of [undefined, 'Bearer wrong-token', `Basic ${served.token}`]) {
      const response = await fetch(served.url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      });
      assert.equal(response.status, 401, `Authorization: ${authorization}`);
      await response.body?.cancel();
    }
  });

  it('keeps sessions apart: each lists and reaches only its own sandboxes', async () => {
    assert.deepEqual(await listedIds(first), [ofFirst.id]);
    assert.deepEqual(await listedIds(second), [ofSecond.id]);
    const foreign = await call(second, 'run_command', { sandboxId: ofFirst.id, command: 'true' });
    assert.equal(foreign.isError, true);
    assert.match(text(foreign), /not_found/);
  });

  it("ending a session (DELETE) destroys its sandboxes and leaves the other session's running", async () => {
    await transportOf(first).terminateSession();
    assertDestroyed(ofFirst);
    assert.equal(alive(ofSecond.vmmPid), true);
    const run = await ok(second, 'run_command', { sandboxId: ofSecond.id, command: 'echo still here' });
    assert.equal(run.stdout, 'still here\n');
  });

  it('SIGTERM destroys the remaining sandboxes and exits', async () => {
    served.child.kill('SIGTERM');
    assert.equal(await served.exited, 0);
    assertDestroyed(ofSecond);
  });
});

describe('jitvm mcp --listen: an idle session', { timeout: 300_000 }, () => {
  it('is ended with its sandboxes once no request came for --session-idle-timeout', async () => {
    const served = await startServer('--session-idle-timeout', '1000');
    const client = await connect(served);
    try {
      const created = await createSandbox(client);
      // Only time passing ends the session; poll the host (not the server, which would count as activity).
      for (const started = Date.now(); alive(created.vmmPid) && Date.now() - started < 30_000;) await delay(100);
      assertDestroyed(created);
      await assert.rejects(client.listTools(), { code: 404 });
    } finally {
      await client.close();
      await served.cleanUp();
    }
  });
});
