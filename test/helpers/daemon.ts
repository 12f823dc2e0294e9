/** Test helpers for `jitvm serve`: start the CLI's daemon, and talk to it with every response checked. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SavedSandbox } from '../../src/daemon/state.js';
import { OpenApiValidator } from './openapi-validator.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface Served {
  readonly child: ChildProcess;
  readonly address: string;
  readonly stopped: Promise<number | null>;
  /** The JSON log lines it wrote on stderr so far. */
  readonly logs: Record<string, unknown>[];
}

/**
 * Starts `jitvm serve` with `args`; resolves once it prints where it serves. Its JSON log lines are collected, other
 * stderr lines passed through. `onCleanup` gets a function that kills it if it still runs (for the test's end).
 */
export async function serveDaemon(
  args: string[],
  env: NodeJS.ProcessEnv,
  onCleanup: (kill: () => void) => void,
): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => void (child.exitCode === null && child.kill('SIGKILL')));
  const logs: Record<string, unknown>[] = [];
  let partial = '';
  child.stderr!.on('data', (data: Buffer) => {
    const lines = (partial + data.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
      else if (line.trim()) process.stderr.write(`${line}\n`);
    }
  });
  const stopped = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let printed = '';
  const address = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (data: Buffer) => {
      printed += data.toString();
      const match = /serving on (\S+?);?\s/.exec(printed);
      if (match) resolve(match[1]!);
    });
    void stopped.then((code) => reject(new Error(`jitvm serve exited with ${code}: ${printed}`)));
  });
  return { child, address, stopped, logs };
}

/** The served OpenAPI document of the daemon at `base`, as a validator. */
export async function validatorOf(base: string): Promise<OpenApiValidator> {
  return new OpenApiValidator((await (await fetch(`${base}/v1/openapi.json`)).json()) as Record<string, unknown>);
}

/**
 * A client of the TCP daemon at `base()`: each request carries the token and its (whole) response is checked against
 * the served OpenAPI document.
 */
export function client(base: () => string, token: () => string, validator: () => OpenApiValidator) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const json = body !== undefined && !Buffer.isBuffer(body);
    const response = await fetch(`${base()}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token()}`,
        ...(json ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: json ? JSON.stringify(body) : (body as Buffer | undefined),
    });
    const bytes = Buffer.from(await response.arrayBuffer());
    const type = response.headers.get('content-type') ?? undefined;
    validator().check(method, path, response.status, type, type?.includes('octet-stream') ? '' : bytes.toString());
    return { status: response.status, headers: response.headers, bytes, json: () => JSON.parse(bytes.toString()) };
  };
}

/** The ids `jitvm ls --json` lists: the VMs of this runtime dir, whoever started them. */
export async function liveIds(): Promise<string[]> {
  const child = spawn(process.execPath, [CLI, 'ls', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (data: Buffer) => (out += data.toString()));
  await new Promise((resolve) => child.once('close', resolve));
  return (JSON.parse(out) as { id: string }[]).map((record) => record.id);
}

/** The bearer token a TCP daemon created under `env`'s config dir. */
export const tokenOf = (env: NodeJS.ProcessEnv): string =>
  readFileSync(join(env.XDG_CONFIG_HOME!, 'jitvm', 'token'), 'utf8').trim();

/** A daemon state-file entry for VM `id`, as a daemon that created it with default timeouts would have saved it. */
export const savedSandbox = (id: string): SavedSandbox => ({
  id,
  createdAt: '2026-01-01T00:00:00.000Z',
  expiresAt: 1_900_000_000_000,
  idleTimeoutMs: 3000,
  memoryMiB: 256,
  config: { memoryMiB: 256, network: 'none' },
  ports: [],
});

/** Runs `command` in sandbox `id` through the daemon's NDJSON exec (asserting a 200); its stdout and exit code. */
export async function execOutput(
  call: ReturnType<typeof client>,
  id: string,
  command: string | string[],
): Promise<{ stdout: string; exitCode: number }> {
  const response = await call('POST', `/v1/sandboxes/${id}/exec`, { command });
  assert.equal(response.status, 200, response.bytes.toString());
  const events = response.bytes
    .toString()
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; data?: string; exitCode?: number });
  const stdout = events.filter((e) => e.type === 'stdout').map((e) => Buffer.from(e.data!, 'base64').toString());
  return { stdout: stdout.join(''), exitCode: events.at(-1)!.exitCode! };
}
