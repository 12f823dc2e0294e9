import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { z } from 'zod';
import { connectLocal } from '../../channel/local-endpoint.js';
import { ChannelClosedError, ProtocolError, VmmError } from '../../core/errors.js';

/** A QMP line longer than this is refused rather than buffered: QEMU's replies here are small. */
const MAX_LINE = 1 << 20;

const greetingSchema = z.object({
  QMP: z.object({ version: z.object({ qemu: z.object({ major: z.number(), minor: z.number(), micro: z.number() }) }) }),
});
const replySchema = z.union([
  z.object({ return: z.unknown(), id: z.number().optional() }),
  z.object({ error: z.object({ class: z.string(), desc: z.string() }), id: z.number().optional() }),
  z.object({ event: z.string(), data: z.unknown().optional(), timestamp: z.unknown().optional() }),
]);

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/**
 * A small typed QEMU Machine Protocol client over any byte stream (a Unix socket, a Windows named pipe): greeting,
 * capabilities negotiation, commands matched to replies by id. Emits 'close' once the connection is gone.
 */
export class QmpClient extends EventEmitter {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;
  version: string | undefined;

  private constructor(private readonly socket: Duplex) {
    super();
  }

  /** Connects to the QMP endpoint at `address`, reads the greeting and leaves capabilities negotiation done. */
  static async connect(address: string): Promise<QmpClient> {
    return QmpClient.open(await connectLocal(address));
  }

  /**
   * Speaks QMP on a stream that is already connected (one opened while QEMU was still starting): waits for the
   * greeting, negotiates capabilities. A stream that closes first rejects with ChannelClosedError.
   */
  static async open(socket: Duplex): Promise<QmpClient> {
    const client = new QmpClient(socket);
    const greeting = await client.start();
    const { major, minor, micro } = greeting.QMP.version.qemu;
    client.version = `${major}.${minor}.${micro}`;
    await client.execute('qmp_capabilities');
    return client;
  }

  private start(): Promise<z.infer<typeof greetingSchema>> {
    return new Promise((resolve, reject) => {
      let greeted = false;
      this.socket.setEncoding('utf8');
      this.socket.on('data', (chunk: string) => {
        try {
          for (const line of this.takeLines(chunk)) {
            if (!greeted) {
              greeted = true;
              resolve(greetingSchema.parse(JSON.parse(line)));
            } else {
              this.dispatch(line);
            }
          }
        } catch (error) {
          reject(error);
          this.fail(new ProtocolError(`malformed QMP message: ${(error as Error).message}`));
        }
      });
      this.socket.on('error', (error) => this.fail(new VmmError(`QMP socket error: ${error.message}`)));
      this.socket.on('close', () => {
        if (!greeted) reject(new ChannelClosedError('QEMU closed QMP before greeting'));
        this.fail(new ChannelClosedError('QEMU closed its QMP socket (the VM exited)'));
      });
    });
  }

  private takeLines(chunk: string): string[] {
    this.buffer += chunk;
    if (this.buffer.length > MAX_LINE && !this.buffer.includes('\n')) {
      throw new Error(`line longer than ${MAX_LINE} bytes`);
    }
    const lines = this.buffer.split('\n');
    this.buffer = lines.pop() ?? '';
    return lines.filter((line) => line.trim().length > 0);
  }

  private dispatch(line: string): void {
    const message = replySchema.parse(JSON.parse(line));
    // Asynchronous events (SHUTDOWN, POWERDOWN…) need no handling: process exit is what jitvm watches.
    if ('event' in message || message.id === undefined) return;
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    if ('error' in message) waiter.reject(new VmmError(`QMP ${message.error.class}: ${message.error.desc}`));
    else waiter.resolve(message.return);
  }

  private fail(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    this.socket.destroy();
    this.emit('close');
  }

  /** Runs one QMP command and resolves with its `return` value; a QMP error rejects with VmmError. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new ChannelClosedError('QMP connection is closed'));
    const id = this.nextId++;
    const promise = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.socket.write(
      JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n',
    );
    return promise;
  }

  /** `query-status`: the run state name (running, paused, shutdown…). */
  async status(): Promise<string> {
    const result = z.object({ status: z.string() }).parse(await this.execute('query-status'));
    return result.status;
  }

  /** Freezes the vCPUs (`stop`). */
  async pause(): Promise<void> {
    await this.execute('stop');
  }

  /** Lets the vCPUs run again (`cont`). */
  async resume(): Promise<void> {
    await this.execute('cont');
  }

  /** ACPI power button press: the guest agent powers off when it sees it. */
  async powerdown(): Promise<void> {
    await this.execute('system_powerdown');
  }

  /** Asks QEMU to exit now. Resolves when QEMU acknowledged or closed the socket. */
  async quit(): Promise<void> {
    await this.execute('quit').catch((error: unknown) => {
      if (!(error instanceof ChannelClosedError)) throw error;
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.fail(new ChannelClosedError('QMP connection closed by jitvm'));
  }
}
