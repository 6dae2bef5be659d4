/**
 * The content key: HKDF-SHA256 from the message key P, bound to the content id
 * and the chunk size, so that a content ciphertext cannot be replayed under
 * another id or re-chunked (docs/protocol.md, "Encryption chain").
 */
import { hkdfSync } from 'node:crypto';
import { CryptoError, assertBytes } from './errors';
import { POINT_LENGTH, checkEncoding } from './group';
import { LABEL } from './labels';

export const CONTENT_ID_LENGTH = 16;
export const NONCE_PREFIX_LENGTH = 7;

export interface ContentKey {
  /** AES-256 key. Secret. */
  readonly key: Uint8Array;
  /** First 7 bytes of every chunk nonce. */
  readonly noncePrefix: Uint8Array;
  readonly chunkSize: number;
}

export const MIN_CHUNK_SIZE = 1024;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;

export function assertChunkSize(chunkSize: unknown): asserts chunkSize is number {
  if (typeof chunkSize !== 'number' || !Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new CryptoError(
      'bad-input',
      `Cannot use chunk size "${String(chunkSize)}": expected an integer from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE}`,
    );
  }
}

export function deriveContentKey(messageKey: Uint8Array, contentId: Uint8Array, chunkSize: number): ContentKey {
  assertBytes(messageKey, 'message key', POINT_LENGTH);
  checkEncoding(messageKey, 'message key'); // a compressed point (the group checked the curve when it made it)
  assertBytes(contentId, 'content id', CONTENT_ID_LENGTH);
  assertChunkSize(chunkSize);
  const size = new Uint8Array(4);
  new DataView(size.buffer).setUint32(0, chunkSize);
  const info = new Uint8Array(LABEL.contentKey.length + CONTENT_ID_LENGTH + 4);
  info.set(LABEL.contentKey, 0);
  info.set(contentId, LABEL.contentKey.length);
  info.set(size, LABEL.contentKey.length + CONTENT_ID_LENGTH);
  const okm = new Uint8Array(hkdfSync('sha256', messageKey, LABEL.contentSalt, info, 32 + NONCE_PREFIX_LENGTH));
  return { key: okm.subarray(0, 32), noncePrefix: okm.subarray(32), chunkSize };
}

/** Overwrites a content key (and its nonce prefix) in place: for the finally block of whoever derived it. */
export function wipeContentKey(key: ContentKey): void {
  key.key.fill(0);
  key.noncePrefix.fill(0);
}

/**
 * The secrets of one encryption or decryption run (content keys derived, a
 * message key it made or recovered), wiped together by `wipe()` in the run's
 * finally block (docs/security.md, "Key material in memory").
 */
export class SecretScope {
  private readonly held: Uint8Array[] = [];

  /** A content key derived from `messageKey`, to be wiped with the scope. */
  contentKey(messageKey: Uint8Array, contentId: Uint8Array, chunkSize: number): ContentKey {
    const k = deriveContentKey(messageKey, contentId, chunkSize);
    this.held.push(k.key, k.noncePrefix);
    return k;
  }

  /** Keeps `secret` to be wiped with the scope; returns it. */
  hold<T extends Uint8Array>(secret: T): T {
    this.held.push(secret);
    return secret;
  }

  wipe(): void {
    for (const s of this.held.splice(0)) s.fill(0);
  }
}
