/**
 * ECDSA P-256 with SHA-256 through node:crypto (native OpenSSL), for user
 * signatures, organisation seals and every X.509 signature (docs/protocol.md,
 * "Groups and primitives").
 *
 * Guarantees: signatures are the fixed 64-byte IEEE P1363 form r || s;
 * `verifyP256` never throws on malformed input (it returns false), while misuse
 * by the caller (a key that is not P-256) throws a precise error.
 */
import { type KeyObject, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';

export const P256_SIGNATURE_LENGTH = 64;

export interface P256KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export function generateP256KeyPair(): P256KeyPair {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

function assertP256(key: KeyObject, type: 'private' | 'public', what: string): void {
  if (!key || typeof key !== 'object' || typeof (key as KeyObject).asymmetricKeyType !== 'string') {
    throw new TypeError(`Cannot use ${what}: expected a KeyObject`);
  }
  if (key.type !== type) throw new TypeError(`Cannot use ${what}: expected a ${type} key, got a ${key.type} key`);
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw new TypeError(`Cannot use ${what}: expected an EC P-256 key, got "${key.asymmetricKeyType}${curve ? `/${curve}` : ''}"`);
  }
}

/** Signs `data` (hashed with SHA-256 inside); returns the 64-byte r || s. */
export function signP256(privateKey: KeyObject, data: Uint8Array): Uint8Array {
  assertP256(privateKey, 'private', 'signing key');
  if (!(data instanceof Uint8Array)) throw new TypeError('Cannot sign: data must be a Uint8Array');
  return new Uint8Array(sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
}

/** Verifies a 64-byte r || s signature; false for any malformed or wrong input. */
export function verifyP256(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  assertP256(publicKey, 'public', 'verification key');
  if (!(data instanceof Uint8Array) || !(signature instanceof Uint8Array)) return false;
  if (signature.length !== P256_SIGNATURE_LENGTH) return false;
  try {
    return verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

/** Imports a P-256 public key from SPKI DER or PEM. */
export function p256PublicKeyFrom(spki: Uint8Array | string): KeyObject {
  const key = typeof spki === 'string' ? createPublicKey(spki) : createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  assertP256(key, 'public', 'public key');
  return key;
}

/** Imports a P-256 private key from PKCS#8 DER or PEM. */
export function p256PrivateKeyFrom(pkcs8: Uint8Array | string): KeyObject {
  const key =
    typeof pkcs8 === 'string' ? createPrivateKey(pkcs8) : createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  assertP256(key, 'private', 'private key');
  return key;
}
