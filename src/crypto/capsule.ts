/**
 * Capsules: EC-ElGamal encryption of a message key (docs/protocol.md, "Encryption
 * chain"). The message key is a random point P = p·G; a capsule for X = x·G is
 * (E, F) = (e·G, P + e·X) with the key id of X; decryption is P = F − x·E.
 * The content key is derived from P (see kdf.ts), so the content ciphertext
 * never changes along the chain: only capsules are replaced.
 */
import { CryptoError } from './errors';
import type { Group, GroupPoint } from './group';
import { type Recipient, assertKeyId } from './keys';
import type { Rng } from './random';
import { decodeScalar, randomScalar } from './scalar';

export interface Capsule {
  /** Which public key this capsule is for. */
  readonly keyId: string;
  /** E = e·G, 33-byte compressed. */
  readonly e: Uint8Array;
  /** F = P + e·X, 33-byte compressed. */
  readonly f: Uint8Array;
}

/** The decoded, validated points of a capsule. */
export interface CapsulePoints {
  readonly e: GroupPoint;
  readonly f: GroupPoint;
}

/** Validates a capsule's shape and points; throws `bad-capsule` naming the problem. */
export function decodeCapsule(group: Group, capsule: Capsule): CapsulePoints {
  if (capsule === null || typeof capsule !== 'object') throw new CryptoError('bad-capsule', 'Cannot parse capsule: expected an object');
  try {
    assertKeyId(capsule.keyId, 'capsule key id');
    return { e: group.decode(capsule.e, 'capsule point E'), f: group.decode(capsule.f, 'capsule point F') };
  } catch (err) {
    if (err instanceof CryptoError) throw new CryptoError('bad-capsule', err.message);
    throw err;
  }
}

/** A fresh message key: the 33-byte encoding of a random point P. Secret. */
export function newMessageKey(group: Group, rng: Rng): Uint8Array {
  return group.encode(group.mulBase(randomScalar(rng)));
}

/** Encapsulates `messageKey` (P) to the recipient's public key. */
export function encapsulate(group: Group, messageKey: Uint8Array, recipient: Recipient, rng: Rng): Capsule {
  assertKeyId(recipient.keyId, 'recipient key id');
  const P = group.decode(messageKey, 'message key');
  const X = group.decode(recipient.publicKey, 'recipient public key');
  const e = randomScalar(rng);
  return {
    keyId: recipient.keyId,
    e: group.encode(group.mulBase(e)),
    f: group.encode(group.add(P, group.mul(X, e))),
  };
}

/** Recovers the message key P = F − x·E with the private key x. */
export function decapsulate(group: Group, capsule: Capsule, privateKey: Uint8Array): Uint8Array {
  const { e, f } = decodeCapsule(group, capsule);
  const x = decodeScalar(privateKey, 'private key');
  return group.encode(group.sub(f, group.mul(e, x)));
}
