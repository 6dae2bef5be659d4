/**
 * Blinded decryption for inspection, both halves (docs/protocol.md, SSMAX §3.2/3.3,
 * Fig.6). The inspector never holds the org key; the key service never sees
 * the capsule's F, so it cannot learn the message key.
 *
 *   inspector:   k random; sends E' = k·E
 *   key service: returns Z' = x·E' and a DLEQ proof that log_G X = log_E' Z'
 *   inspector:   verifies the proof, x·E = k⁻¹·Z', P = F − x·E
 */
import { type Capsule, decodeCapsule } from './capsule';
import { CryptoError } from './errors';
import type { Group, GroupPoint } from './group';
import { type DleqProof, proveDleq, verifyDleq } from './dleq';
import type { Rng } from './random';
import { decodeScalar, invertScalar, randomScalar } from './scalar';

export interface BlindedDecryptionRequest {
  /** E' = k·E, 65-byte uncompressed. */
  readonly e: Uint8Array;
}

export interface BlindedDecryptionResponse {
  /** Z' = x·E', 65-byte uncompressed. */
  readonly z: Uint8Array;
  readonly proof: DleqProof;
}

/** The inspector's secret between the two calls. */
export interface DecryptionBlinding {
  readonly kInverse: bigint;
  readonly blindedE: GroupPoint;
  readonly f: GroupPoint;
}

export type BlindedDecryptionResult =
  { readonly ok: true; readonly messageKey: Uint8Array } | { readonly ok: false; readonly reason: string };

/** Inspector half, step 1. */
export function blindForDecryption(
  group: Group,
  capsule: Capsule,
  rng: Rng,
): { request: BlindedDecryptionRequest; blinding: DecryptionBlinding } {
  const { e, f } = decodeCapsule(group, capsule);
  const k = randomScalar(rng);
  const blindedE = group.mul(e, k);
  return { request: { e: group.encodeUncompressed(blindedE) }, blinding: { kInverse: invertScalar(k), blindedE, f } };
}

/**
 * Key-service half. `publicKey` is X = x·G, which the key service has on
 * record; passing it saves a multiplication.
 */
export function answerBlindedDecryption(
  group: Group,
  privateKey: Uint8Array,
  publicKey: Uint8Array | undefined,
  request: BlindedDecryptionRequest,
  rng: Rng,
): BlindedDecryptionResponse {
  if (request === null || typeof request !== 'object')
    throw new CryptoError('bad-capsule', 'Cannot parse blinded decryption request: expected an object');
  const x = decodeScalar(privateKey, 'private key');
  const B = group.decode(request.e, "blinded point E'");
  const X = publicKey === undefined ? group.mulBase(x) : group.decode(publicKey, 'public key');
  const Z = group.mul(B, x);
  return { z: group.encodeUncompressed(Z), proof: proveDleq(group, x, X, B, Z, rng) };
}

/**
 * Inspector half, step 2: checks the proof against the org public key the
 * capsule was made for, then recovers P. A wrong key or a wrong answer is
 * reported, never used.
 */
export function completeBlindedDecryption(
  group: Group,
  blinding: DecryptionBlinding,
  response: BlindedDecryptionResponse,
  orgPublicKey: Uint8Array,
): BlindedDecryptionResult {
  if (response === null || typeof response !== 'object') return { ok: false, reason: 'Key service answer is not an object' };
  let X: GroupPoint;
  let Z: GroupPoint;
  try {
    X = group.decode(orgPublicKey, 'org public key');
    Z = group.decode(response.z, "key service answer point Z'");
  } catch (err) {
    if (err instanceof CryptoError) return { ok: false, reason: err.message };
    throw err;
  }
  if (!verifyDleq(group, X, blinding.blindedE, Z, response.proof)) {
    return { ok: false, reason: 'Key service proof does not verify: wrong key or wrong answer' };
  }
  try {
    return { ok: true, messageKey: group.encode(group.sub(blinding.f, group.mul(Z, blinding.kInverse))) };
  } catch (err) {
    if (err instanceof CryptoError) return { ok: false, reason: err.message };
    throw err;
  }
}
