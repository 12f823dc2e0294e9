/**
 * From a parsed target to an open TCP connection: the policy verdict (reported as a decision), then a connection to
 * exactly the addresses that were checked, tried in order, all within one deadline that covers the lookup too.
 */
import { type Socket, connect } from 'node:net';

import type { EgressContext, EgressDecision } from './egress-options.js';
import { type EgressResolution, resolveEgressTarget } from './egress-resolve.js';
import type { EgressTarget } from './egress-target.js';
import type { IpAddress } from './ip-address.js';

/** An open upstream socket, or the status and sentence to answer the guest with. */
export type Upstream =
  | { readonly ok: true; readonly socket: Socket; readonly address: IpAddress }
  | { readonly ok: false; readonly status: 403 | 502 | 504; readonly why: string };

const TIMED_OUT = Symbol('timed out');

/**
 * Decides `target` for a `method` request and connects to it. The socket is destroyed when the guest connection
 * closes; it allows half-open (a tunnel passes each direction's end on separately).
 */
export async function openUpstream(context: EgressContext, target: EgressTarget, method: string): Promise<Upstream> {
  const deadline = Date.now() + context.connectTimeoutMs;
  const resolution = await beforeDeadline(resolveEgressTarget(context.policy, target, context.lookup), deadline);
  if (resolution === TIMED_OUT) return timedOut(context, target, 'resolving');
  if (resolution.kind === 'unresolved') return { ok: false, status: 502, why: resolution.why };
  context.decide(decision(target, method, resolution));
  if (resolution.kind === 'denied') return { ok: false, status: 403, why: resolution.why };
  let lastError = '';
  for (const address of resolution.addresses) {
    const attempt = await connectTo(address, target.port, deadline, context.closed);
    if (attempt === TIMED_OUT) return timedOut(context, target, 'connecting to');
    if (attempt instanceof Error) lastError = attempt.message;
    else return { ok: true, socket: attempt, address };
  }
  return { ok: false, status: 502, why: `cannot connect to ${target.host}:${target.port}: ${lastError}` };
}

/** The decision a resolution stands for, as onDecision receives it. */
function decision(
  target: EgressTarget,
  method: string,
  resolution: Extract<EgressResolution, { kind: 'allowed' | 'denied' }>,
): EgressDecision {
  const allowed = resolution.kind === 'allowed';
  const addresses = allowed ? resolution.addresses : resolution.address ? [resolution.address] : [];
  const verdict = allowed ? `allowed (${resolution.reason})` : `refused: ${resolution.why}`;
  return {
    host: target.host,
    port: target.port,
    method,
    allowed,
    reason: resolution.reason,
    addresses: addresses.map((address) => address.text),
    message: `${method} ${target.host}:${target.port} ${verdict}`,
  };
}

/**
 * Resolves with the connected socket, the connection error, or TIMED_OUT at `deadline` (ms since the epoch). The
 * socket keeps an error listener for its whole life: whoever pipes it sees its errors through the pipe, and an
 * abort of `closed` (which destroys it) never becomes an uncaught 'error' event.
 */
function connectTo(
  address: IpAddress,
  port: number,
  deadline: number,
  closed: AbortSignal,
): Promise<Socket | Error | typeof TIMED_OUT> {
  return new Promise((resolve) => {
    const socket = connect({ host: address.text, port, allowHalfOpen: true, signal: closed });
    const settle = (result: Socket | Error | typeof TIMED_OUT): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect).off('error', onError);
      if (result !== socket) socket.destroy();
      resolve(result);
    };
    const onConnect = (): void => settle(socket);
    const onError = (error: Error): void => settle(error);
    const timer = setTimeout(() => settle(TIMED_OUT), Math.max(deadline - Date.now(), 0));
    socket.on('error', () => undefined);
    socket.once('connect', onConnect).once('error', onError);
  });
}

/** `work`'s result, or TIMED_OUT once `deadline` (ms since the epoch) passes; a late result is dropped. */
async function beforeDeadline<T>(work: Promise<T>, deadline: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), Math.max(deadline - Date.now(), 0));
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function timedOut(context: EgressContext, target: EgressTarget, doing: string): Upstream {
  return {
    ok: false,
    status: 504,
    why: `${doing} ${target.host}:${target.port} took longer than ${context.connectTimeoutMs} ms`,
  };
}
