/**
 * Clone identity. A VM restored from a memory snapshot resumes with the snapshot's kernel RNG state, clock and
 * hostname, so every clone of one snapshot would draw the same "random" bytes. SET_IDENTITY gives one guest fresh host
 * entropy (mixed into its kernel pool, then a forced CRNG reseed), the host's wall-clock time and its own hostname.
 * See docs/protocol.md#identity.
 */
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '../core/errors.js';
import type { AgentConnection } from './client.js';
import { Capability, IdentityLimit, MsgType } from './protocol.js';
import { PayloadWriter } from './wire.js';

/** What SET_IDENTITY gives the guest. Every field has a default, so `{}` reseeds the RNG and corrects the clock. */
export interface IdentityOptions {
  /** The guest's new hostname: 1 to 64 letters, digits, '-' and '.'. Absent, the guest keeps its hostname. */
  readonly hostname?: string;
  /** Entropy for the guest kernel's RNG, 32 to 512 bytes. Default: 64 fresh bytes from crypto.randomBytes. */
  readonly entropy?: Buffer;
  /** The guest's new wall-clock time, in nanoseconds since the Unix epoch. Default: the host's clock at the call. */
  readonly nowNs?: bigint;
}

const HOSTNAME_CHARS = /^[A-Za-z0-9.-]+$/;
/** Twice the kernel's 256-bit input pool: more than enough, and cheap. */
const DEFAULT_ENTROPY_BYTES = 64;
/** The kernel keeps wall-clock time as signed 64-bit nanoseconds. */
const MAX_NOW_NS = 2n ** 63n - 1n;

/** Refuses a hostname the agent would refuse: empty, longer than 64 bytes, or with a character outside [A-Za-z0-9.-]. */
function checkHostname(hostname: string): void {
  if (hostname.length === 0 || hostname.length > IdentityLimit.MAX_HOSTNAME || !HOSTNAME_CHARS.test(hostname)) {
    throw new InvalidArgumentError(
      `hostname ${JSON.stringify(hostname)} is not valid: use 1 to ${IdentityLimit.MAX_HOSTNAME} letters, digits, '-' and '.'`,
    );
  }
}

function checkEntropy(entropy: Buffer): void {
  if (entropy.length < IdentityLimit.MIN_ENTROPY || entropy.length > IdentityLimit.MAX_ENTROPY) {
    throw new InvalidArgumentError(
      `entropy of ${entropy.length} bytes is out of range: give ${IdentityLimit.MIN_ENTROPY} to ${IdentityLimit.MAX_ENTROPY} bytes`,
    );
  }
}

function checkNow(nowNs: bigint): void {
  if (nowNs <= 0n || nowNs > MAX_NOW_NS) {
    throw new InvalidArgumentError(`nowNs ${nowNs} is out of range: give nanoseconds since 1970, from 1 to 2^63 - 1`);
  }
}

/**
 * Builds a SET_IDENTITY payload, `u64 realtime_ns, str hostname, bytes entropy` (an empty hostname keeps the guest's),
 * filling in the defaults. Refuses an out-of-range value with InvalidArgumentError, before anything is sent.
 */
export function encodeIdentity(options: IdentityOptions = {}): Buffer {
  const { hostname, entropy = randomBytes(DEFAULT_ENTROPY_BYTES), nowNs = BigInt(Date.now()) * 1_000_000n } = options;
  if (hostname !== undefined) checkHostname(hostname);
  checkEntropy(entropy);
  checkNow(nowNs);
  return new PayloadWriter()
    .u64(nowNs)
    .str(hostname ?? '')
    .bytes(entropy)
    .finish();
}

/**
 * Gives the guest behind `connection` a fresh identity: mixes the entropy into its kernel RNG (crediting it) and forces
 * a CRNG reseed, sets its clock and, when given, its hostname; send it to every clone right after a restore, before
 * anything runs in it. Refuses with `unsupported` when the agent lacks the IDENTITY capability (dev mode, an old
 * image), with `invalid_argument` for a bad option; a step the guest fails rejects with a GuestError naming the step.
 * The steps before a failed one stay applied.
 */
export async function setIdentity(connection: AgentConnection, options: IdentityOptions = {}): Promise<void> {
  connection.requireCapability(Capability.IDENTITY, 'set the guest identity (entropy, clock, hostname)');
  await connection.request(MsgType.SET_IDENTITY, encodeIdentity(options), MsgType.OK);
}
