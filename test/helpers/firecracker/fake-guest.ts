/**
 * The fake Firecracker's guest and its hybrid vsock device. The "guest" is the real jitvm agent in dev mode
 * (`--connect <internal socket>`): each connection the agent makes stands for one connection accepted on its guest
 * vsock port AGENT_VSOCK_PORT. Host side, the muxer speaks Firecracker's CONNECT/OK protocol on `uds_path`.
 * Pinned source: firecracker@81b38b9d src/vmm/src/devices/virtio/vsock/unix/muxer.rs (and device.rs for resets).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { constants } from 'node:os';
import { AGENT_VSOCK_PORT } from '../../../src/channel/protocol.js';

export interface GuestOptions {
  /** The agent executable; without one the guest runs no init that listens on vsock. */
  readonly agent: string | undefined;
  /** Where the agent's dev-mode socket goes (a path the fake owns). */
  readonly agentSocket: string;
  /** The serial console; undefined when the kernel has none (no `console=ttyS0`, or `8250.nr_uarts=0`). */
  readonly console: ((text: string) => void) | undefined;
  readonly quiet: boolean;
  readonly ignoreCtrlAltDel: boolean;
  /** The guest rebooted (with `reboot=k`, Firecracker then exits). */
  readonly onReboot: () => void;
}

/** A booted (or restored) guest: the agent process and the connections it offered. */
export class FakeGuest {
  private agent: ChildProcess | undefined;
  private agentAlive = false;
  private readonly server: Server;
  /** The agent connected once: a real agent listens on its vsock port from then on (its listen socket survives). */
  private listening = false;
  private readonly idle: Socket[] = [];
  private readonly waiting: ((socket: Socket) => void)[] = [];
  private stopping = false;
  private uptimeStart = Date.now();

  constructor(private readonly options: GuestOptions) {
    this.server = createServer((socket) => {
      this.listening = true;
      socket.on('error', () => socket.destroy());
      const waiter = this.waiting.shift();
      if (waiter) waiter(socket);
      else {
        this.idle.push(socket);
        socket.once('close', () => {
          const index = this.idle.indexOf(socket);
          if (index >= 0) this.idle.splice(index, 1);
        });
      }
    });
  }

  /** Boots (prints the kernel's lines unless `quiet`) or restores, and starts the agent as PID 1 would. */
  async start(commandLine: string, restored: boolean): Promise<void> {
    this.uptimeStart = Date.now();
    if (!restored && !this.options.quiet) {
      this.print('Linux version 6.1.0-fake (jitvm fake firecracker) #1 SMP');
      this.print(`Command line: ${commandLine}`);
      this.print('Run /init as init process');
    }
    rmSync(this.options.agentSocket, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.agentSocket, () => resolve());
    });
    if (this.options.agent) this.spawnAgent(this.options.agent);
  }

  private spawnAgent(agent: string): void {
    const out = this.options.console ? 'pipe' : 'ignore';
    // The guest dies with the VMM even on SIGKILL: the agent gets SIGKILL when this process goes (setpriv(1)).
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', agent, '--connect', this.options.agentSocket], {
      stdio: ['ignore', out, out],
    });
    const console = this.options.console;
    if (console) {
      child.stdout?.on('data', (data: Buffer) => console(data.toString()));
      child.stderr?.on('data', (data: Buffer) => console(data.toString()));
    }
    this.agentAlive = true;
    child.on('exit', (code, signal) => {
      this.agentAlive = false;
      if (this.stopping) return;
      // PID 1 ended: a clean exit is the agent's reboot(RB_AUTOBOOT); anything else panics the kernel (panic=1).
      if (code !== 0) {
        const status = signal ? constants.signals[signal] : (code ?? 0) << 8;
        this.print(
          `Kernel panic - not syncing: Attempted to kill init! exitcode=0x${status.toString(16).padStart(8, '0')}`,
        );
      }
      this.print('reboot: Restarting system');
      this.options.onReboot();
    });
    this.agent = child;
  }

  private print(line: string): void {
    const seconds = ((Date.now() - this.uptimeStart) / 1000).toFixed(6).padStart(12);
    this.options.console?.(`[${seconds}] ${line}\n`);
  }

  /** One connection to the agent's vsock port, or undefined when nothing listens there (the guest answers RST). */
  connectAgent(): Promise<Socket> | undefined {
    if (!this.listening || !this.agentAlive) return undefined;
    const ready = this.idle.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** vCPUs stop: the guest (the agent) does not run. */
  pause(): void {
    if (this.agentAlive) this.agent?.kill('SIGSTOP');
  }

  resume(): void {
    if (this.agentAlive) this.agent?.kill('SIGCONT');
  }

  /**
   * i8042 Ctrl-Alt-Del: the agent as PID 1 disabled the kernel's immediate reboot, so it gets SIGINT and shuts down
   * (guest/init.c); a guest without that init reboots at once.
   */
  ctrlAltDel(): void {
    if (this.options.ignoreCtrlAltDel) return;
    if (this.agentAlive) this.agent?.kill('SIGINT');
    else {
      this.print('reboot: Restarting system');
      this.options.onReboot();
    }
  }

  /** The VMM is going away: the guest goes with it. */
  stop(): void {
    this.stopping = true;
    if (this.agentAlive) this.agent?.kill('SIGKILL');
    for (const socket of this.idle.splice(0)) socket.destroy();
    this.server.close();
    rmSync(this.options.agentSocket, { force: true });
  }
}

/** A host connection spliced to a guest connection. */
interface Splice {
  readonly host: Socket;
  readonly localPort: number;
  guest?: Socket;
}

/** What the muxer reads from a fresh host connection (`read_local_stream_port`): 10 bytes, then up to `\n`, max 32. */
function parseConnect(data: Buffer): { port: number; rest: Buffer } | undefined {
  if (data.length < 10) return undefined;
  let length = 10;
  while (data[length - 1] !== 0x0a && length < 32) {
    if (length >= data.length) return undefined;
    length++;
  }
  const words = data.subarray(0, length).toString('utf8').trim().split(/\s+/);
  if (words[0]?.toLowerCase() !== 'connect' || !/^\+?[0-9]+$/.test(words[1] ?? '')) return undefined;
  const port = Number(words[1]);
  if (port > 0xffffffff) return undefined;
  return { port, rest: data.subarray(length) };
}

/** The hybrid vsock backend: bound at PUT /vsock (VsockUnixBackend::new binds), served once the device is active. */
export class VsockMuxer {
  private guest: FakeGuest | undefined;
  private active = false;
  private resetPending = false;
  private readonly held: Socket[] = [];
  private readonly splices = new Set<Splice>();
  private readonly usedPorts = new Set<number>();
  private localPortLast = 2 ** 30 - 1;

  private constructor(
    readonly udsPath: string,
    private readonly server: Server,
  ) {
    server.on('connection', (socket) => {
      socket.on('error', () => socket.destroy());
      if (this.active) this.readConnect(socket);
      else this.held.push(socket);
    });
  }

  /** Binds `hostPath` (the path as Firecracker sees it is `udsPath`); rejects with the bind error. */
  static bind(udsPath: string, hostPath: string): Promise<VsockMuxer> {
    const server = createServer({ pauseOnConnect: true });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(hostPath, () => resolve(new VsockMuxer(udsPath, server)));
    });
  }

  /** The guest's driver is up (boot, resume): host connections are accepted and routed. */
  activate(guest: FakeGuest): void {
    this.guest = guest;
    this.active = true;
    // kick(): a TRANSPORT_RESET queued by SnapshotCreate reaches the guest, whose driver drops every connection.
    if (this.resetPending) {
      this.resetPending = false;
      for (const splice of [...this.splices]) this.drop(splice);
    }
    for (const { host, guest } of this.splices) {
      if (!guest) continue; // still waiting for the agent: its bytes stay buffered until then
      host.resume();
      guest.resume();
    }
    for (const socket of this.held.splice(0)) this.readConnect(socket);
  }

  /** Paused: the event loop does not run devices, so nothing is read or routed. */
  deactivate(): void {
    this.active = false;
    for (const splice of this.splices) {
      splice.host.pause();
      splice.guest?.pause();
    }
  }

  /** SnapshotCreate sends VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (device.rs prepare_save). */
  transportReset(): void {
    this.resetPending = true;
  }

  /** Closes the listener and every connection. The socket file is not removed here (see the caller). */
  close(): void {
    for (const splice of [...this.splices]) this.drop(splice);
    for (const socket of this.held.splice(0)) socket.destroy();
    this.server.close();
  }

  private drop(splice: Splice): void {
    this.splices.delete(splice);
    this.usedPorts.delete(splice.localPort);
    splice.host.destroy();
    splice.guest?.destroy();
  }

  private readConnect(socket: Socket): void {
    socket.once('readable', () => {
      const data = socket.read() as Buffer | null;
      const request = data ? parseConnect(data) : undefined;
      if (request) this.route(socket, request.port, request.rest);
      else socket.destroy();
    });
  }

  /** Round robin in [1 << 30, 1 << 31) (allocate_local_port). */
  private allocateLocalPort(): number {
    do this.localPortLast = ((this.localPortLast + 1) & 0x7fffffff) | 0x40000000;
    while (this.usedPorts.has(this.localPortLast));
    this.usedPorts.add(this.localPortLast);
    return this.localPortLast;
  }

  private route(host: Socket, port: number, rest: Buffer): void {
    const pending = port === AGENT_VSOCK_PORT ? this.guest?.connectAgent() : undefined;
    if (!pending) {
      host.destroy(); // the guest answers RST: the muxer drops the host stream without a word
      return;
    }
    const splice: Splice = { host, localPort: this.allocateLocalPort() };
    this.splices.add(splice);
    host.write(`OK ${splice.localPort}\n`);
    host.on('close', () => this.drop(splice));
    void pending.then((guest) => {
      if (!this.splices.has(splice)) {
        guest.destroy();
        return;
      }
      splice.guest = guest;
      guest.on('error', () => guest.destroy());
      guest.on('close', () => this.drop(splice));
      if (rest.length > 0) guest.write(rest);
      const active = (): boolean => this.active;
      pipe(host, guest, active);
      pipe(guest, host, active);
      for (const socket of [host, guest]) {
        if (this.active) socket.resume();
        else socket.pause();
      }
    });
  }
}

/** One direction of a splice, with back-pressure; nothing flows while the device is inactive (paused VM). */
function pipe(from: Socket, to: Socket, active: () => boolean): void {
  from.on('data', (data: Buffer) => {
    if (!to.write(data)) from.pause();
  });
  to.on('drain', () => {
    if (active()) from.resume();
  });
  from.on('end', () => to.end());
}
