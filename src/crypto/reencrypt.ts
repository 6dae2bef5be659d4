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
import { timingSafeEqual } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { type Capsule, decodeCapsule } from './capsule';
import { CryptoError } from './errors';
import type { Group, GroupPoint } from './group';
import { type Recipient, assertKeyId } from './keys';
import { LABEL } from './labels';
import type { Rng } from './random';
import {
  SCALAR_LENGTH,
  addScalar,
  bytesToBigint,
  decodeScalar,
  encodeScalar,
  hashToScalar,
  invertScalar,
  isValidScalar,
  mulScalar,
  randomScalar,
} from './scalar';

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
export function blindForReencryption(
  group: Group,
  capsule: Capsule,
  rng: Rng,
): { request: BlindedCapsule; blinding: ReencryptionBlinding } {
  const { e, f } = decodeCapsule(group, capsule);
  const k = randomScalar(rng);
  return {
    request: { e: group.encodeUncompressed(group.mul(e, k)), f: group.encodeUncompressed(group.mul(f, k)) },
    blinding: { kInverse: invertScalar(k) },
  };
}

/** The key-service half's inputs, decoded and checked: x, the blinded capsule's E' and F', the target's Y. */
function transformInput(
  group: Group,
  privateKey: Uint8Array,
  request: BlindedCapsule,
  targetPublicKey: Uint8Array,
): { x: bigint; e: GroupPoint; f: GroupPoint; Y: GroupPoint } {
  if (request === null || typeof request !== 'object')
    throw new CryptoError('bad-capsule', 'Cannot parse blinded capsule: expected an object');
  return {
    x: decodeScalar(privateKey, 'private key'),
    e: group.decode(request.e, "blinded capsule point E'"),
    f: group.decode(request.f, "blinded capsule point F'"),
    Y: group.decode(targetPublicKey, 'target public key'),
  };
}

/** Key-service half: re-encrypt the blinded capsule from x to the target public key. */
export function transformBlinded(
  group: Group,
  privateKey: Uint8Array,
  request: BlindedCapsule,
  targetPublicKey: Uint8Array,
  rng: Rng,
): TransformedCapsule {
  const { x, e, f, Y } = transformInput(group, privateKey, request, targetPublicKey);
  const Q = group.sub(f, group.mul(e, x));
  const u = randomScalar(rng);
  return { u: group.encodeUncompressed(group.mulBase(u)), v: group.encodeUncompressed(group.add(Q, group.mul(Y, u))) };
}

/** Gateway half, step 2: unblind the key service's answer into a capsule for the target. */
export function unblindReencryption(
  group: Group,
  blinding: ReencryptionBlinding,
  response: TransformedCapsule,
  target: Pick<Recipient, 'keyId'>,
): Capsule {
  assertKeyId(target.keyId, 'target key id');
  if (response === null || typeof response !== 'object')
    throw new CryptoError('bad-capsule', 'Cannot parse key service answer: expected an object');
  const U = group.decode(response.u, 'key service answer point U');
  const V = group.decode(response.v, 'key service answer point V');
  return { keyId: target.keyId, e: group.encode(group.mul(U, blinding.kInverse)), f: group.encode(group.mul(V, blinding.kInverse)) };
}

/**
 * Proof that a re-encryption answer was computed with the organisation key
 * (docs/format.md, "The re-encryption proof"): knowledge of x and u with
 * X = x·G, U = u·G and V = F′ − x·E′ + u·Y, for the X the verifier takes from
 * the organisation's bundle and the target Y it asked for.
 *
 *   prove:  r1, r2 random; T1 = r1·G, T2 = r2·G, T3 = r2·Y − r1·E′;
 *           c = H(G, X, E′, F′, Y, U, V, T1, T2, T3); s1 = r1 + c·x, s2 = r2 + c·u
 *   verify: T1 = s1·G − c·X, T2 = s2·G − c·U, T3 = s2·Y − s1·E′ − c·(V − F′);
 *           accept iff c = H(…) over these
 */
export interface ReencryptionProof {
  readonly c: Uint8Array;
  readonly s1: Uint8Array;
  readonly s2: Uint8Array;
}

export interface ProvedTransform extends TransformedCapsule {
  readonly proof: ReencryptionProof;
}

const G_BYTES: Uint8Array = secp256k1.Point.BASE.toBytes(true);

function reencryptionChallenge(group: Group, points: readonly GroupPoint[]): bigint {
  return hashToScalar(LABEL.reencryptionProof, G_BYTES, ...points.map((p) => group.encode(p)));
}

/** Key-service half with a proof: as transformBlinded, and proves the answer was made with x. `publicKey` is X (saves a multiplication). */
export function transformBlindedWithProof(
  group: Group,
  privateKey: Uint8Array,
  request: BlindedCapsule,
  targetPublicKey: Uint8Array,
  rng: Rng,
  publicKey?: Uint8Array,
): ProvedTransform {
  const { x, e, f, Y } = transformInput(group, privateKey, request, targetPublicKey);
  const X = publicKey === undefined ? group.mulBase(x) : group.decode(publicKey, 'public key');
  const u = randomScalar(rng);
  const U = group.mulBase(u);
  const V = group.add(group.sub(f, group.mul(e, x)), group.mul(Y, u));
  for (;;) {
    const r1 = randomScalar(rng);
    const r2 = randomScalar(rng);
    const T1 = group.mulBase(r1);
    const T2 = group.mulBase(r2);
    const T3 = group.sub(group.mul(Y, r2), group.mul(e, r1));
    const c = reencryptionChallenge(group, [X, e, f, Y, U, V, T1, T2, T3]);
    const s1 = addScalar(r1, mulScalar(c, x));
    const s2 = addScalar(r2, mulScalar(c, u));
    if (s1 !== 0n && s2 !== 0n) {
      return {
        u: group.encodeUncompressed(U),
        v: group.encodeUncompressed(V),
        proof: { c: encodeScalar(c), s1: encodeScalar(s1), s2: encodeScalar(s2) },
      };
    }
  }
}

/** True iff the proof shows the answer (U, V) re-encrypts the blinded capsule under X to Y. Never throws on malformed input. */
export function verifyReencryption(
  group: Group,
  orgPublicKey: Uint8Array,
  request: BlindedCapsule,
  targetPublicKey: Uint8Array,
  response: { u: Uint8Array; v: Uint8Array; proof?: Partial<ReencryptionProof> },
): boolean {
  const proof = response.proof;
  if (!proof || typeof proof !== 'object') return false;
  const { c: cBytes, s1: s1Bytes, s2: s2Bytes } = proof;
  for (const b of [cBytes, s1Bytes, s2Bytes]) if (!(b instanceof Uint8Array) || b.length !== SCALAR_LENGTH) return false;
  const [c, s1, s2] = [cBytes!, s1Bytes!, s2Bytes!].map(bytesToBigint) as [bigint, bigint, bigint];
  if (!isValidScalar(c) || !isValidScalar(s1) || !isValidScalar(s2)) return false;
  let expected: bigint;
  try {
    const X = group.decode(orgPublicKey, 'org public key');
    const e = group.decode(request.e, "blinded capsule point E'");
    const f = group.decode(request.f, "blinded capsule point F'");
    const Y = group.decode(targetPublicKey, 'target public key');
    const U = group.decode(response.u, 'key service answer point U');
    const V = group.decode(response.v, 'key service answer point V');
    // c, s1 and s2 travel in the clear: variable-time multiplication is safe here
    const T1 = group.sub(group.mulBase(s1), group.mulPublic(X, c));
    const T2 = group.sub(group.mulBase(s2), group.mulPublic(U, c));
    const T3 = group.sub(group.sub(group.mulPublic(Y, s2), group.mulPublic(e, s1)), group.mulPublic(group.sub(V, f), c));
    expected = reencryptionChallenge(group, [X, e, f, Y, U, V, T1, T2, T3]);
  } catch (err) {
    if (err instanceof CryptoError) return false;
    throw err;
  }
  return timingSafeEqual(encodeScalar(expected), cBytes!);
}
