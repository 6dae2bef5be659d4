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

export function limitError(what: string, limit: number, met: number | string): CryptoError {
  return new CryptoError('limit', `Cannot process message: ${what} exceeds the limit of ${limit} (got ${met})`);
}
