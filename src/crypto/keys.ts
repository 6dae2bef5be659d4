/**
 * Encryption key pairs on secp256k1 (org keys, user encryption keys) and their
 * key ids. A private key is a 32-byte scalar in [1, n-1]; a public key is the
 * 33-byte compressed point. Key ids are opaque tokens on the wire; `keyIdOf`
 * gives the default one, a fingerprint of the public key.
 */
import { createHash } from 'node:crypto';
import { CryptoError, quote } from './errors';
import type { Group } from './group';
import { LABEL } from './labels';
import type { Rng } from './random';
import { decodeScalar, encodeScalar, randomScalar } from './scalar';

export const PRIVATE_KEY_LENGTH = 32;
export const PUBLIC_KEY_LENGTH = 33;

/** Key ids on the wire: 1–64 characters of [A-Za-z0-9._:-]. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

export interface EncryptionKeyPair {
  /** 32-byte scalar. Secret: never log, never store unwrapped. */
  readonly privateKey: Uint8Array;
  /** 33-byte compressed point. */
  readonly publicKey: Uint8Array;
}

/** A public key with the id capsules made for it carry. */
export interface Recipient {
  readonly keyId: string;
  readonly publicKey: Uint8Array;
}

export function generateEncryptionKeyPair(group: Group, rng: Rng): EncryptionKeyPair {
  const x = randomScalar(rng);
  return { privateKey: encodeScalar(x), publicKey: group.encode(group.mulBase(x)) };
}

export function publicKeyOf(group: Group, privateKey: Uint8Array): Uint8Array {
  return group.encode(group.mulBase(decodeScalar(privateKey, 'private key')));
}

/** The default key id: base64url of the first 16 bytes of SHA-256(label || public key). */
export function keyIdOf(group: Group, publicKey: Uint8Array): string {
  group.decode(publicKey, 'public key');
  return createHash('sha256').update(LABEL.keyId).update(publicKey).digest().subarray(0, 16).toString('base64url');
}

export function assertKeyId(keyId: unknown, what = 'key id'): asserts keyId is string {
  if (typeof keyId !== 'string' || !KEY_ID_PATTERN.test(keyId)) {
    throw new CryptoError('bad-input', `Cannot use ${what} ${quote(keyId)}: expected 1-64 characters of [A-Za-z0-9._:-]`);
  }
}
