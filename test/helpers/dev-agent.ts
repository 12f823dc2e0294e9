import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConnection } from '../../src/channel/client.js';
import { AGENT_SOURCE_DIR, buildAgent } from '../../src/image/agent-build.js';

/**
 * The real C agent in dev mode (`agent --connect <socket>`) on this host, without a VM: built from guest/ into a temp
 * dir, connecting to a Unix socket served here. It runs commands and opens sockets on this host, so tests give it only
 * harmless work. In dev mode it reconnects every 100 ms after a disconnect and exits after 10 s without a host.
 */
export class DevAgent {
  private readonly server = createServer((socket) => this.accepted(socket));
  private readonly sockets = new Set<Socket>();
  private readonly ready: Socket[] = [];
  private readonly waiting: Array<(socket: Socket) => void> = [];
  private agent: ChildProcess | undefined;

  private constructor(
    /** The temp dir holding the agent and its socket; removed by stop(), so tests may put files there. */
    readonly dir: string,
  ) {}

  /**
   * Builds the agent with gcc (a few seconds) into a new temp dir named `prefix…`, serves `<dir>/agent.sock` and starts
   * the agent on it. A build or listen failure rejects, leaving nothing behind.
   */
  static async start(prefix = 'jitvm-agent-'): Promise<DevAgent> {
    const dev = new DevAgent(mkdtempSync(join(tmpdir(), prefix)));
    try {
      await buildAgent(AGENT_SOURCE_DIR, join(dev.dir, 'agent'));
      dev.server.listen(join(dev.dir, 'agent.sock'));
      await once(dev.server, 'listening');
      dev.agent = spawn(join(dev.dir, 'agent'), ['--connect', join(dev.dir, 'agent.sock')], { stdio: 'ignore' });
    } catch (error) {
      await dev.stop();
      throw error;
    }
    return dev;
  }

  /** The agent's process (to signal it or read its /proc entry). */
  get child(): ChildProcess {
    if (!this.agent) throw new Error('the dev agent was not started');
    return this.agent;
  }

  /** The agent's next connection, raw: nothing sent on it yet. Waits for the agent to connect if it has not. */
  nextConnection(): Promise<Socket> {
    const socket = this.ready.shift();
    return socket ? Promise.resolve(socket) : new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The agent's next connection after the HELLO handshake, with the socket under it. */
  async connect(): Promise<{ connection: AgentConnection; transport: Socket }> {
    const transport = await this.nextConnection();
    const connection = new AgentConnection(transport);
    await connection.handshake();
    return { connection, transport };
  }

  /**
   * Ends the agent (SIGTERM, waiting for its exit; nothing to do when it already exited), destroys every connection it
   * made, closes the server and removes the temp dir.
   */
  async stop(): Promise<void> {
    const agent = this.agent;
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      const exited = once(agent, 'exit');
      agent.kill('SIGTERM');
      await exited;
    }
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private accepted(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const waiter = this.waiting.shift();
    if (waiter) waiter(socket);
    else this.ready.push(socket);
  }
}
