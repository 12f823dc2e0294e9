/**
 * What the caller of serveEgress can set and observe: limits on the guest's request heads, the upstream connect
 * deadline, the resolver, and the decision and error callbacks.
 */
import { z } from 'zod';

import { parseWith } from '../core/config.js';
import { JitvmError } from '../core/errors.js';
import type { EgressPolicy } from './egress-policy.js';
import { type EgressLookup, type EgressResolution, systemLookup } from './egress-resolve.js';

/** Why a connection was allowed or refused: the policy reasons, plus the TLS checks made on CONNECT tunnels. */
export type EgressDecisionReason =
  | Extract<EgressResolution, { kind: 'allowed' | 'denied' }>['reason']
  /** The ClientHello names another server than the CONNECT target (domain fronting). */
  | 'sni_mismatch'
  /** The tunnel began with a TLS handshake record that is not one well-formed ClientHello. */
  | 'invalid_tls';

/** One verdict, for logs and metrics. A CONNECT tunnel can get two: allowed, then refused at its ClientHello. */
export interface EgressDecision {
  /** The target as checked: a lower-case name, or an address's canonical text. */
  readonly host: string;
  readonly port: number;
  /** The request method (`CONNECT`, `GET`…). */
  readonly method: string;
  readonly allowed: boolean;
  readonly reason: EgressDecisionReason;
  /** The addresses to be tried (allowed), or the one that was refused (address reasons). */
  readonly addresses: readonly string[];
  /** One line for a log: `CONNECT internal.example:443 refused: resolves to a non-public (private) address`. */
  readonly message: string;
}

export interface EgressProxyOptions {
  /** Most bytes in one request head, request line and headers together (default 16384): past it, 431. */
  readonly maxHeadBytes?: number;
  /**
   * Time the guest has to send a complete request head, from connecting or from the end of the last response
   * (default 10000 ms): past it, 408 and the connection closes.
   */
  readonly headTimeoutMs?: number;
  /** Time to resolve an allowed name and connect to it (default 10000 ms): past it, 504. */
  readonly connectTimeoutMs?: number;
  /** The resolver for allowed names without a `hosts` override (default: the system's, getaddrinfo). */
  readonly lookup?: EgressLookup;
  /**
   * Called with every verdict. A name whose lookup fails (502) or times out (504) got none. Must not throw; if it
   * does, the error goes to `onError` and the proxy goes on.
   */
  readonly onDecision?: (decision: EgressDecision) => void;
  /** Called with failures of the proxy itself (a bug, a throwing onDecision), never with the guest's mistakes. */
  readonly onError?: (error: Error) => void;
}

const isFunction = (value: unknown): boolean => typeof value === 'function';

const EgressProxyOptionsSchema = z
  .object({
    maxHeadBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024)
      .default(16 * 1024),
    headTimeoutMs: z.number().int().min(1).max(600_000).default(10_000),
    connectTimeoutMs: z.number().int().min(1).max(600_000).default(10_000),
    lookup: z.custom<EgressLookup>(isFunction, 'must be a function').default(() => systemLookup),
    onDecision: z.custom<(decision: EgressDecision) => void>(isFunction, 'must be a function').optional(),
    onError: z.custom<(error: Error) => void>(isFunction, 'must be a function').optional(),
  })
  .strict();

/** Everything one proxied connection needs, shared by its requests. */
export interface EgressContext {
  readonly policy: EgressPolicy;
  readonly maxHeadBytes: number;
  readonly headTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly lookup: EgressLookup;
  /** Aborted when the guest connection closes: every upstream socket listens to it. */
  readonly closed: AbortSignal;
  /** Passes a decision to onDecision; never throws. */
  decide(decision: EgressDecision): void;
  /** Passes an internal failure to onError; never throws. */
  fail(error: unknown): void;
}

/** Validates `options` (InvalidArgumentError naming each wrong field) into a context bound to `closed`. */
export function egressContext(policy: EgressPolicy, options: EgressProxyOptions, closed: AbortSignal): EgressContext {
  const { onDecision, onError, ...settings } = parseWith(EgressProxyOptionsSchema, options, 'invalid egress options');
  const fail = (error: unknown): void => {
    try {
      onError?.(error instanceof Error ? error : new JitvmError('internal', String(error)));
    } catch {
      // A throwing onError must not take the proxy down with it.
    }
  };
  const decide = (decision: EgressDecision): void => {
    try {
      onDecision?.(decision);
    } catch (error) {
      fail(error);
    }
  };
  return { policy, ...settings, closed, decide, fail };
}
