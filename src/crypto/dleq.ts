/**
 * Chaum–Pedersen proof of equality of discrete logarithms (DLEQ), made
 * non-interactive with a hash (Fiat–Shamir): proves log_G X = log_B Z without
 * revealing x. The key service attaches it to a blinded decryption so the
 * inspector detects a wrong key or a wrong answer (docs/protocol.md, "Blinded
 * decryption for inspection").
 *
 *   prove:  r random; A₁ = r·G, A₂ = r·B; c = H(G, X, B, Z, A₁, A₂); s = r + c·x
 *   verify: A₁ = s·G − c·X, A₂ = s·B − c·Z; accept iff c = H(G, X, B, Z, A₁, A₂)
 */
import { timingSafeEqual } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { CryptoError } from './errors';
import type { Group, GroupPoint } from './group';
import { LABEL } from './labels';
import type { Rng } from './random';
import { SCALAR_LENGTH, addScalar, bytesToBigint, encodeScalar, hashToScalar, isValidScalar, mulScalar, randomScalar } from './scalar';

export interface DleqProof {
  /** Challenge c, 32 bytes. */
  readonly c: Uint8Array;
  /** Response s, 32 bytes. */
  readonly s: Uint8Array;
}

const G_BYTES: Uint8Array = secp256k1.Point.BASE.toBytes(true);

function challenge(group: Group, X: GroupPoint, B: GroupPoint, Z: GroupPoint, A1: GroupPoint, A2: GroupPoint): bigint {
  return hashToScalar(LABEL.dleq, G_BYTES, group.encode(X), group.encode(B), group.encode(Z), group.encode(A1), group.encode(A2));
}

/** Proves log_G X = log_B Z = x. */
export function proveDleq(group: Group, x: bigint, X: GroupPoint, B: GroupPoint, Z: GroupPoint, rng: Rng): DleqProof {
  for (;;) {
    const r = randomScalar(rng);
    const c = challenge(group, X, B, Z, group.mulBase(r), group.mul(B, r));
    const s = addScalar(r, mulScalar(c, x));
    if (s !== 0n) return { c: encodeScalar(c), s: encodeScalar(s) };
  }
}

/** True iff the proof shows log_G X = log_B Z. Never throws on a malformed proof. */
export function verifyDleq(group: Group, X: GroupPoint, B: GroupPoint, Z: GroupPoint, proof: DleqProof): boolean {
  if (proof === null || typeof proof !== 'object') return false;
  const { c: cBytes, s: sBytes } = proof;
  if (!(cBytes instanceof Uint8Array) || !(sBytes instanceof Uint8Array)) return false;
  if (cBytes.length !== SCALAR_LENGTH || sBytes.length !== SCALAR_LENGTH) return false;
  const c = bytesToBigint(cBytes);
  const s = bytesToBigint(sBytes);
  if (!isValidScalar(c) || !isValidScalar(s)) return false;
  let expected: bigint;
  try {
    // c and s travel in the clear: variable-time multiplication is safe here
    const A1 = group.sub(group.mulBase(s), group.mulPublic(X, c));
    const A2 = group.sub(group.mulPublic(B, s), group.mulPublic(Z, c));
    expected = challenge(group, X, B, Z, A1, A2);
  } catch (err) {
    if (err instanceof CryptoError) return false; // an identity along the way: not a valid proof
    throw err;
  }
  return timingSafeEqual(encodeScalar(expected), cBytes);
}
