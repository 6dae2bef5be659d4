/**
 * Hard limits on what the message format will parse. Every limit has a clear
 * error (code `limit`) naming the limit and the value met; the defaults are
 * also written out in config/ssmax-format.ini.
 */
import { CryptoError } from '../crypto/errors';

export interface MimeLimits {
  /** MIME parts (nodes) in one message. */
  readonly maxParts: number;
  /** Nesting depth of multiparts (the root is depth 0). */
  readonly maxDepth: number;
  /** Header fields in one header block. */
  readonly maxHeaders: number;
  /** Bytes of one header field, folded lines included. */
  readonly maxHeaderLength: number;
  /** Bytes of one header block. */
  readonly maxHeaderBlock: number;
  /** Capsules on one message. */
  readonly maxCapsules: number;
}

export const DEFAULT_LIMITS: MimeLimits = {
  maxParts: 500,
  maxDepth: 16,
  maxHeaders: 400,
  maxHeaderLength: 16 * 1024,
  maxHeaderBlock: 256 * 1024,
  maxCapsules: 256,
};

/**
 * The one header field that max_header_length does not bound: SSMAX-Recipients
 * carries one tag per envelope recipient of the copy, up to 1,000 (about 44 KB
 * folded: docs/chain.md), and is bounded by this instead, whatever the
 * configured field limit. Its parser (src/chain/recipients.ts) holds it to
 * the same bound.
 */
export const RECIPIENTS_FIELD_KEY = 'ssmax-recipients';
export const MAX_RECIPIENTS_FIELD_BYTES = 64 * 1024;

export function limitError(what: string, limit: number, met: number | string): CryptoError {
  return new CryptoError('limit', `Cannot process message: ${what} exceeds the limit of ${limit} (got ${met})`);
}
