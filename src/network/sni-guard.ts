/**
 * The domain-fronting check on a CONNECT tunnel: the guest's first bytes are held back until it is clear whether
 * they open a TLS handshake, and a ClientHello whose server name (SNI) differs from the CONNECT host closes the
 * tunnel before any of it reaches the server. Bytes that are not TLS pass unchanged, and so does a ClientHello
 * without SNI (it asserts no name). This stops fronting through servers that route by SNI; it cannot see the Host
 * header inside the encrypted stream, nor in a plain-text protocol.
 */
import type { Duplex } from 'node:stream';

import { normalizeDomainName } from './domain-name.js';
import type { EgressTarget } from './egress-target.js';
import { inspectClientHello } from './tls-sni.js';

export type FirstFlight =
  /** Forward `bytes` (maybe empty: the guest ended first), then the rest of the stream. */
  | { readonly ok: true; readonly bytes: Buffer }
  | { readonly ok: false; readonly reason: 'sni_mismatch' | 'invalid_tls'; readonly why: string };

/**
 * Reads from `guest` (after `head`, the bytes that came with the CONNECT request) until its first TLS record is
 * complete or it is plainly not TLS; buffers at most one record (16 KiB + 5) beyond the chunk that completes it.
 * Leaves `guest` paused with its 'data' listener removed, ready to be piped.
 */
export function readFirstFlight(guest: Duplex, head: Buffer, target: EgressTarget): Promise<FirstFlight> {
  return new Promise((resolve) => {
    let bytes = head;
    const finish = (outcome: FirstFlight): void => {
      guest.off('data', onData).off('end', onEnd).off('close', onEnd);
      guest.pause();
      resolve(outcome);
    };
    const decide = (): boolean => {
      const outcome = judge(bytes, target);
      if (outcome) finish(outcome);
      return outcome !== undefined;
    };
    const onData = (chunk: Buffer): void => {
      bytes = Buffer.concat([bytes, chunk]);
      decide();
    };
    const onEnd = (): void =>
      finish(
        bytes.length === 0
          ? { ok: true, bytes }
          : { ok: false, reason: 'invalid_tls', why: 'the tunnel ended inside its first TLS record' },
      );
    if (decide()) return;
    if (guest.destroyed || guest.readableEnded) return onEnd();
    guest.on('data', onData).once('end', onEnd).once('close', onEnd);
  });
}

function judge(bytes: Buffer, target: EgressTarget): FirstFlight | undefined {
  const hello = inspectClientHello(bytes);
  switch (hello.kind) {
    case 'incomplete':
      return undefined;
    case 'not_tls':
      return { ok: true, bytes };
    case 'invalid':
      return { ok: false, reason: 'invalid_tls', why: `the tunnel opened with a malformed ClientHello: ${hello.why}` };
    case 'client_hello': {
      const sni = hello.serverName;
      const named = sni === undefined ? target.host : (normalizeDomainName(sni) ?? sni.toLowerCase());
      if (named === target.host) return { ok: true, bytes };
      return {
        ok: false,
        reason: 'sni_mismatch',
        why: `the TLS ClientHello names ${JSON.stringify(sni)}, not the CONNECT host (domain fronting)`,
      };
    }
  }
}
