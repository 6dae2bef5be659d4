/**
 * Blinded re-encryption, both halves (docs/protocol.md, "Blinded re-encryption").
 *
 *   gateway:     k random; sends (E', F') = (k·E, k·F) and the target Y
 *   key service: Q = F' − x·E' (= k·P); u random; returns (U, V) = (u·G, Q + u·Y)
 *   gateway:     new capsule (k⁻¹·U, k⁻¹·V) for Y; then F₂ − y·E₂ = P
 *
 * The key service sees only k·P, uniform and unlinkable to P; the gateway sees
 * only ElGamal ciphertexts. Target authorisation is the key service's job
 * (keyd), not this module's: this is the arithmetic.
 */
import { type Capsule, decodeCapsule } from './capsule';
import { CryptoError } from './errors';
import type { Group } from './group';
import { type Recipient, assertKeyId } from './keys';
import type { Rng } from './random';
import { decodeScalar, invertScalar, randomScalar } from './scalar';

/** What the gateway sends to the key service: a blinded capsule (65-byte uncompressed points; see group.ts). */
export interface BlindedCapsule {
  readonly e: Uint8Array;
  readonly f: Uint8Array;
}

/** What the key service returns: (U, V), 65-byte uncompressed points. */
export interface TransformedCapsule {
  readonly u: Uint8Array;
  readonly v: Uint8Array;
}

/** The gateway's secret between the two calls. Never sent, never logged. */
export interface ReencryptionBlinding {
  readonly kInverse: bigint;
}

/** Gateway half, step 1: blind a capsule with a fresh k. */
export function blindForReencryption(group: Group, capsule: Capsule, rng: Rng): { request: BlindedCapsule; blinding: ReencryptionBlinding } {
  const { e, f } = decodeCapsule(group, capsule);
  const k = randomScalar(rng);
  return {
    request: { e: group.encodeUncompressed(group.mul(e, k)), f: group.encodeUncompressed(group.mul(f, k)) },
    blinding: { kInverse: invertScalar(k) },
  };
}

/** Key-service half: re-encrypt the blinded capsule from x to the target public key. */
export function transformBlinded(group: Group, privateKey: Uint8Array, request: BlindedCapsule, targetPublicKey: Uint8Array, rng: Rng): TransformedCapsule {
  if (request === null || typeof request !== 'object') throw new CryptoError('bad-capsule', 'Cannot parse blinded capsule: expected an object');
  const x = decodeScalar(privateKey, 'private key');
  const e = group.decode(request.e, "blinded capsule point E'");
  const f = group.decode(request.f, "blinded capsule point F'");
  const Y = group.decode(targetPublicKey, 'target public key');
  const Q = group.sub(f, group.mul(e, x));
  const u = randomScalar(rng);
  return { u: group.encodeUncompressed(group.mulBase(u)), v: group.encodeUncompressed(group.add(Q, group.mul(Y, u))) };
}

/** Gateway half, step 2: unblind the key service's answer into a capsule for the target. */
export function unblindReencryption(group: Group, blinding: ReencryptionBlinding, response: TransformedCapsule, target: Pick<Recipient, 'keyId'>): Capsule {
  assertKeyId(target.keyId, 'target key id');
  if (response === null || typeof response !== 'object') throw new CryptoError('bad-capsule', 'Cannot parse key service answer: expected an object');
  const U = group.decode(response.u, 'key service answer point U');
  const V = group.decode(response.v, 'key service answer point V');
  return { keyId: target.keyId, e: group.encode(group.mul(U, blinding.kInverse)), f: group.encode(group.mul(V, blinding.kInverse)) };
}
