import type { Duplex } from 'node:stream';
import { AgentConnection } from '../channel/client.js';
import { CancelledError, ChannelClosedError, JitvmError, SandboxBootError } from '../core/errors.js';
import { delay } from '../core/process.js';
import type { VmInstance } from '../core/hypervisor.js';

/**
 * Connects to the agent of a just-started VM and completes the handshake within `timeoutMs`. Fails with
 * SandboxBootError (carrying the console tail) when the VMM exits first or the agent never answers.
 */
export async function connectAgentWithin(
  instance: VmInstance,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<AgentConnection> {
  const consoleLog = instance.consoleLogPath;
  let connection: AgentConnection | undefined;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const failures = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new SandboxBootError(
            `the guest agent did not answer within ${timeoutMs} ms`,
            instance.consoleTail(),
            consoleLog,
          ),
        ),
      timeoutMs,
    );
    instance
      .wait()
      .then(
        (exit) =>
          reject(
            new SandboxBootError(
              `the VM exited during boot (code ${exit.code ?? 'unknown'}, signal ${exit.signal ?? 'none'})`,
              instance.consoleTail(),
              consoleLog,
            ),
          ),
        reject,
      );
    onAbort = () => reject(new CancelledError('sandbox creation was cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  let gaveUp = false;
  const handshake = (async () => {
    connection = new AgentConnection(await openAgentStream(instance, signal, () => gaveUp));
    await connection.handshake();
    return connection;
  })();
  try {
    return await Promise.race([handshake, failures]);
  } catch (error) {
    gaveUp = true;
    connection?.close();
    // A connection that completes after we gave up must not stay open (it would keep this process alive).
    handshake.then(
      (late) => late.close(),
      () => undefined,
    );
    if (error instanceof JitvmError) throw error;
    throw new SandboxBootError(
      `could not reach the guest agent: ${(error as Error).message}`,
      instance.consoleTail(),
      consoleLog,
      {
        cause: error,
      },
    );
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** Pause between attempts to reach an agent that does not listen yet. */
const LISTEN_RETRY_MS = 20;

/**
 * A byte stream to the agent. Over vsock the guest refuses connections until its agent listens (ChannelClosedError),
 * so those are retried while the VM runs and the caller still waits.
 */
async function openAgentStream(
  instance: VmInstance,
  signal: AbortSignal | undefined,
  gaveUp: () => boolean,
): Promise<Duplex> {
  for (;;) {
    try {
      return await instance.connectAgent(signal);
    } catch (error) {
      const transient = error instanceof ChannelClosedError && instance.state.kind !== 'exited';
      if (!transient || gaveUp()) throw error;
      await delay(LISTEN_RETRY_MS, signal);
    }
  }
}

/** How long one reconnect attempt waits for the handshake before trying a fresh connection. */
const RECONNECT_ATTEMPT_MS = 3000;

/**
 * Reaches the agent of a VM that is already up (a detached sandbox). A host that disconnected and reconnected in
 * quick succession can race the agent's reset, so an unanswered handshake is retried on a fresh connection
 * (each new connection makes the agent start over) until `timeoutMs` has passed.
 */
export async function reconnectAgent(instance: VmInstance, timeoutMs: number): Promise<AgentConnection> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const attemptMs = Math.max(1000, Math.min(RECONNECT_ATTEMPT_MS, deadline - Date.now()));
    try {
      return await connectAgentWithin(instance, attemptMs);
    } catch (error) {
      const retriable = error instanceof SandboxBootError && instance.state.kind !== 'exited';
      if (!retriable || Date.now() + 1000 > deadline) throw error;
    }
  }
}
