import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { AgentConnection } from '../../src/channel/client.js';
import { encodeFrame, type Frame } from '../../src/channel/codec.js';
import { encodeIdentity, setIdentity, type IdentityOptions } from '../../src/channel/identity.js';
import { Capability, ErrorCode, IdentityLimit, MsgType } from '../../src/channel/protocol.js';
import { PayloadReader, PayloadWriter } from '../../src/channel/wire.js';
import { GuestError, InvalidArgumentError, JitvmError } from '../../src/core/errors.js';
import { REQUIRED_CAPABILITIES, fakeAgent, handshaking, type Script } from '../helpers/fake-agent.js';

const WITH_IDENTITY = REQUIRED_CAPABILITIES | Capability.IDENTITY;

/** Splits a SET_IDENTITY payload the way docs/protocol.md lays it out: `u64 realtime_ns, str hostname, bytes entropy`. */
function decodeIdentity(payload: Buffer): { nowNs: bigint; hostname: string; entropy: Buffer } {
  const reader = new PayloadReader(payload, 'SET_IDENTITY');
  const nowNs = reader.u64();
  const hostname = reader.str();
  return { nowNs, hostname, entropy: payload.subarray(8 + 4 + Buffer.byteLength(hostname)) };
}

/** A fake agent offering `capabilities` that records every request and answers SET_IDENTITY with `answer`. */
async function recordingAgent(
  t: TestContext,
  capabilities: number,
  answer: (frame: Frame) => Buffer = (frame) =>
    encodeFrame(MsgType.OK, frame.stream, new PayloadWriter().u64(0n).finish()),
): Promise<{ connection: AgentConnection; seen: Frame[] }> {
  const seen: Frame[] = [];
  const script: Script = (frame, reply) => {
    seen.push(frame);
    if (frame.type === MsgType.PING) reply(encodeFrame(MsgType.PONG, frame.stream, frame.payload));
    if (frame.type === MsgType.SET_IDENTITY) reply(answer(frame));
  };
  const connection = await fakeAgent(t, handshaking(script, capabilities));
  await connection.handshake();
  return { connection, seen };
}

/** The request types the fake agent has received, once a PING behind them came back (frames arrive in order). */
async function typesSent(connection: AgentConnection, seen: Frame[]): Promise<number[]> {
  await connection.request(MsgType.PING, Buffer.from('sync'), MsgType.PONG);
  return seen.map((frame) => frame.type);
}

describe('SET_IDENTITY payload', () => {
  it('round-trips hostname, time and entropy in the documented layout', () => {
    const entropy = Buffer.from(Array.from({ length: 48 }, (_, i) => i * 5));
    const options = { hostname: 'clone-7.pool', entropy, nowNs: 1_700_000_000_123_456_789n };
    const payload = encodeIdentity(options);
    assert.equal(payload.length, 8 + 4 + 12 + 48);
    assert.deepEqual(decodeIdentity(payload), options);
  });

  it('defaults to 64 fresh random bytes, the host clock and an empty hostname (keep the guest one)', () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    const first = decodeIdentity(encodeIdentity());
    const after = BigInt(Date.now()) * 1_000_000n;
    const second = decodeIdentity(encodeIdentity());
    assert.equal(first.hostname, '');
    assert.ok(first.nowNs >= before && first.nowNs <= after, `${first.nowNs} not within [${before}, ${after}]`);
    assert.equal(first.entropy.length, 64);
    assert.notDeepEqual(first.entropy, second.entropy);
  });

  it('accepts the edges of every range', () => {
    for (const options of [
      { entropy: Buffer.alloc(IdentityLimit.MIN_ENTROPY, 1) },
      { entropy: Buffer.alloc(IdentityLimit.MAX_ENTROPY, 1) },
      { hostname: 'a'.repeat(IdentityLimit.MAX_HOSTNAME) },
      { hostname: 'A-9.z' },
      { nowNs: 1n },
      { nowNs: 2n ** 63n - 1n },
    ]) {
      assert.doesNotThrow(
        () => encodeIdentity(options),
        JSON.stringify(options, (_k, v: unknown) => String(v)),
      );
    }
  });

  it('refuses out-of-range values before anything is encoded', () => {
    const refused: IdentityOptions[] = [
      { entropy: Buffer.alloc(IdentityLimit.MIN_ENTROPY - 1) },
      { entropy: Buffer.alloc(IdentityLimit.MAX_ENTROPY + 1) },
      { entropy: Buffer.alloc(0) },
      { hostname: '' },
      { hostname: 'a'.repeat(IdentityLimit.MAX_HOSTNAME + 1) },
      { hostname: 'under_score' },
      { hostname: 'white space' },
      { hostname: 'nul\0byte' },
      { hostname: 'ümlaut' },
      { hostname: 'slash/name' },
      { nowNs: 0n },
      { nowNs: -1n },
      { nowNs: 2n ** 63n },
    ];
    for (const options of refused) {
      assert.throws(
        () => encodeIdentity(options),
        InvalidArgumentError,
        JSON.stringify(options, (_k, v: unknown) => String(v)),
      );
    }
  });
});

describe('setIdentity against a fake agent', () => {
  it('sends one SET_IDENTITY with the encoded payload and resolves on OK', async (t) => {
    const { connection, seen } = await recordingAgent(t, WITH_IDENTITY);
    const entropy = Buffer.alloc(40, 0xab);
    await setIdentity(connection, { hostname: 'clone-1', entropy, nowNs: 42_000_000_000n });
    assert.deepEqual(await typesSent(connection, seen), [MsgType.SET_IDENTITY, MsgType.PING]);
    assert.deepEqual(decodeIdentity(seen[0]!.payload), { hostname: 'clone-1', entropy, nowNs: 42_000_000_000n });
  });

  it('refuses with unsupported, sending nothing, when the agent lacks the IDENTITY capability', async (t) => {
    const { connection, seen } = await recordingAgent(t, REQUIRED_CAPABILITIES);
    await assert.rejects(
      setIdentity(connection, { hostname: 'clone-1' }),
      (error: unknown) =>
        error instanceof JitvmError && error.code === 'unsupported' && /IDENTITY|identity/.test(error.message),
    );
    assert.deepEqual(await typesSent(connection, seen), [MsgType.PING]);
  });

  it('refuses an oversized hostname or entropy on the host, sending nothing', async (t) => {
    const { connection, seen } = await recordingAgent(t, WITH_IDENTITY);
    await assert.rejects(setIdentity(connection, { hostname: 'h'.repeat(65) }), InvalidArgumentError);
    await assert.rejects(setIdentity(connection, { entropy: Buffer.alloc(4096) }), InvalidArgumentError);
    assert.deepEqual(await typesSent(connection, seen), [MsgType.PING]);
  });

  it("maps the agent's refusal to a typed error naming the failed step", async (t) => {
    const refusals: Array<[number, string]> = [
      [ErrorCode.PERMISSION, 'clock: clock_settime(CLOCK_REALTIME): Operation not permitted'],
      [ErrorCode.UNSUPPORTED, 'entropy: the guest kernel lacks RNDRESEEDCRNG'],
    ];
    for (const [code, message] of refusals) {
      const { connection } = await recordingAgent(t, WITH_IDENTITY, (frame) =>
        encodeFrame(MsgType.ERROR, frame.stream, new PayloadWriter().u32(code).str(message).finish()),
      );
      await assert.rejects(setIdentity(connection), (error: unknown) => {
        assert.ok(error instanceof GuestError);
        assert.equal(error.message, message);
        assert.equal(error.code, code === ErrorCode.UNSUPPORTED ? 'unsupported' : 'guest_error');
        return true;
      });
    }
  });

  it('refuses with invalid_state before the handshake', async (t) => {
    const connection = await fakeAgent(t, handshaking());
    await assert.rejects(
      setIdentity(connection),
      (error: unknown) => error instanceof JitvmError && error.code === 'invalid_state',
    );
  });
});
