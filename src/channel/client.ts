import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { ChannelClosedError, GuestError, JitvmError, ProtocolError } from '../core/errors.js';
import { type Frame, FrameDecoder, encodeHeader } from './codec.js';
import {
  Capability,
  ErrorCode,
  INITIAL_WINDOW,
  MAX_PAYLOAD,
  MAX_STREAMS,
  MIN_PROTOCOL_VERSION,
  MsgType,
  PROTOCOL_VERSION,
} from './protocol.js';
import { PayloadReader, PayloadWriter } from './wire.js';

/** Receives the frames of one open stream, and its end when the connection goes. */
export interface StreamHandler {
  onFrame(frame: Frame): void;
  onClose(error: Error): void;
}

/** What the agent said about itself in the handshake. */
export interface AgentInfo {
  readonly version: number;
  readonly capabilities: number;
  readonly maxPayload: number;
  readonly initialWindow: number;
  readonly agentVersion: string;
}

const errorNames = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

/** Turns an ERROR payload into a GuestError naming the agent's code. */
export function decodeGuestError(payload: Buffer): GuestError {
  const reader = new PayloadReader(payload, 'ERROR');
  const code = reader.u32();
  const message = reader.str();
  reader.end();
  return new GuestError(errorNames.get(code) ?? `code ${code}`, message);
}

/** Reads an OK payload's value. */
export function decodeOk(payload: Buffer): bigint {
  const reader = new PayloadReader(payload, 'OK');
  const value = reader.u64();
  reader.end();
  return value;
}

/**
 * One connection to the guest agent over any duplex byte stream: handshake, stream ids, frame dispatch.
 * Emits 'close' (Error) once, when the stream ends or breaks; every open stream is failed with that error.
 */
export class AgentConnection extends EventEmitter {
  private readonly decoder = new FrameDecoder();
  private readonly handlers = new Map<number, StreamHandler>();
  private nextStream = 1;
  private closedWith: Error | undefined;
  private agentInfo: AgentInfo | undefined;

  constructor(private readonly transport: Duplex) {
    super();
    transport.on('data', (data: Buffer) => this.receive(data));
    transport.on('error', (error) => this.shutdown(new ChannelClosedError(`agent channel failed: ${error.message}`)));
    transport.on('close', () => this.shutdown(new ChannelClosedError()));
  }

  /** Sends HELLO and waits for the agent's answer. Refuses a version this host did not offer. */
  async handshake(): Promise<AgentInfo> {
    const reply = new Promise<Frame>((resolve, reject) => {
      this.handlers.set(0, { onFrame: resolve, onClose: reject });
    });
    this.send(MsgType.HELLO, 0, new PayloadWriter().u32(MIN_PROTOCOL_VERSION).u32(PROTOCOL_VERSION).finish());
    const frame = await reply;
    this.handlers.delete(0);
    if (frame.type === MsgType.ERROR) throw decodeGuestError(frame.payload);
    if (frame.type !== MsgType.HELLO_OK) throw this.protocolFailure(`expected HELLO_OK, got type ${frame.type}`);
    const reader = new PayloadReader(frame.payload, 'HELLO_OK');
    const info: AgentInfo = {
      version: reader.u32(),
      capabilities: reader.u32(),
      maxPayload: reader.u32(),
      initialWindow: reader.u32(),
      agentVersion: reader.str(),
    };
    reader.end();
    if (info.version < MIN_PROTOCOL_VERSION || info.version > PROTOCOL_VERSION) {
      throw this.protocolFailure(`agent chose protocol version ${info.version}, which this host does not speak`);
    }
    // Limits are fixed per protocol version and capabilities are all required in version 1: check them once here.
    if (info.maxPayload !== MAX_PAYLOAD || info.initialWindow !== INITIAL_WINDOW) {
      throw this.protocolFailure(
        `agent limits (payload ${info.maxPayload}, window ${info.initialWindow}) differ from version ${info.version}'s`,
      );
    }
    const required = Capability.EXEC | Capability.FILES | Capability.SIGNAL | Capability.SHUTDOWN;
    if ((info.capabilities & required) !== required) {
      throw this.protocolFailure(`agent lacks required capabilities (has 0x${info.capabilities.toString(16)})`);
    }
    this.agentInfo = info;
    return info;
  }

  /** What the agent said in the handshake; undefined before it. */
  get info(): AgentInfo | undefined {
    return this.agentInfo;
  }

  /** Whether the agent offered `capability` (a `Capability` bit) in its handshake; false before the handshake. */
  hasCapability(capability: number): boolean {
    return ((this.agentInfo?.capabilities ?? 0) & capability) !== 0;
  }

  /**
   * Throws `unsupported` unless the agent offered `capability` (a `Capability` bit beyond the required ones) in the
   * handshake; `what` names the operation in the message. Refuses with `invalid_state` before the handshake.
   */
  requireCapability(capability: number, what: string): void {
    const info = this.agentInfo;
    if (!info) throw new JitvmError('invalid_state', `${what} needs a completed handshake with the guest agent`);
    if ((info.capabilities & capability) === 0) {
      throw new JitvmError(
        'unsupported',
        `the guest agent (${info.agentVersion}, capabilities 0x${info.capabilities.toString(16)}) cannot ${what}: ` +
          'it runs in dev mode or predates this feature; boot the VM with the image of this jitvm version',
      );
    }
  }

  /** Allocates a stream id and routes its frames to `handler`. */
  open(handler: StreamHandler): number {
    if (this.closedWith) throw this.closedWith;
    if (this.handlers.size >= MAX_STREAMS) {
      throw new JitvmError('invalid_state', `at most ${MAX_STREAMS} requests may be open on one sandbox at once`);
    }
    const id = this.nextStream;
    this.nextStream = this.nextStream >= 0xffffffff ? 1 : this.nextStream + 1;
    this.handlers.set(id, handler);
    return id;
  }

  /** Forgets a finished stream; later frames for it are dropped. */
  release(stream: number): void {
    this.handlers.delete(stream);
  }

  /** Queues one frame. Header and payload are written separately (one writev), so bulk data is never copied. */
  send(type: number, stream: number, payload?: Buffer, flags = 0): void {
    if (this.closedWith) throw this.closedWith;
    const header = encodeHeader(type, stream, payload?.length ?? 0, flags);
    if (!payload || payload.length === 0) {
      this.transport.write(header);
      return;
    }
    this.transport.cork();
    this.transport.write(header);
    this.transport.write(payload);
    process.nextTick(() => this.transport.uncork());
  }

  /**
   * Sends a one-shot request and resolves with its terminal reply of type `reply` (`collect` sees each reply and
   * says which is the last); ERROR rejects, any other type is a protocol error.
   */
  request(type: number, payload: Buffer, reply: MsgType, collect?: (frame: Frame) => boolean): Promise<Frame> {
    return new Promise<Frame>((resolve, reject) => {
      const stream = this.open({
        onFrame: (frame) => {
          if (frame.type === MsgType.ERROR) {
            this.release(stream);
            reject(decodeGuestError(frame.payload));
          } else if (frame.type !== reply) {
            throw new ProtocolError(`expected message type ${reply} in reply to ${type}, got ${frame.type}`);
          } else if (!collect || collect(frame)) {
            this.release(stream);
            resolve(frame);
          }
        },
        onClose: reject,
      });
      this.send(type, stream, payload);
    });
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  close(): void {
    this.shutdown(new ChannelClosedError('the agent connection was closed by jitvm'));
  }

  private receive(data: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(data);
    } catch (error) {
      this.shutdown(error as Error);
      return;
    }
    for (const frame of frames) {
      if (frame.stream === 0 && frame.type === MsgType.ERROR && !this.handlers.has(0)) {
        const error = decodeGuestError(frame.payload);
        this.shutdown(new ProtocolError(`agent reported a connection error: ${error.message}`));
        return;
      }
      try {
        this.handlers.get(frame.stream)?.onFrame(frame);
      } catch (error) {
        // A handler throws only when the agent's frame broke the protocol: the connection cannot be trusted.
        this.shutdown(error as Error);
        return;
      }
    }
  }

  private protocolFailure(message: string): ProtocolError {
    const error = new ProtocolError(message);
    this.shutdown(error);
    return error;
  }

  private shutdown(error: Error): void {
    if (this.closedWith) return;
    this.closedWith = error;
    this.transport.destroy();
    const handlers = [...this.handlers.values()];
    this.handlers.clear();
    for (const handler of handlers) handler.onClose(error);
    this.emit('close', error);
  }
}
