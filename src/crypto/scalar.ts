/**
 * Scalars modulo the secp256k1 group order n, as bigint. Every scalar that
 * crosses an API boundary is range-checked to [1, n-1] (docs/protocol.md, "Groups
 * and primitives").
 */
import { createHash } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { CryptoError, assertBytes } from './errors';
import { type Rng, systemRng } from './random';

const Fn = secp256k1.Point.Fn;

/** The order of the secp256k1 group. */
export const ORDER: bigint = Fn.ORDER;
export const SCALAR_LENGTH = 32;

/** Big-endian bytes as a bigint (Buffer's native hex: a loop of per-byte strings took 5% of keyd's crypto thread). */
export function bytesToBigint(bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n;
  return BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`);
}

/** 32 big-endian bytes of `value`, written straight into a fresh array of its own (not Buffer's shared pool: it may be a secret). */
export function bigintTo32(value: bigint): Uint8Array {
  if (value < 0n) throw new CryptoError('bad-scalar', 'Cannot encode scalar: it is negative');
  const hex = value.toString(16).padStart(64, '0');
  if (hex.length > 64) throw new CryptoError('bad-scalar', 'Cannot encode scalar: it does not fit in 32 bytes');
  const out = new Uint8Array(32);
  Buffer.from(out.buffer, out.byteOffset, 32).write(hex, 'hex');
  return out;
}

export function isValidScalar(k: bigint): boolean {
  return k > 0n && k < ORDER;
}

export function assertScalar(k: unknown, what: string): asserts k is bigint {
  if (typeof k !== 'bigint') throw new CryptoError('bad-input', `Cannot use ${what}: expected a bigint scalar`);
  if (!isValidScalar(k)) throw new CryptoError('bad-scalar', `Cannot use ${what}: scalar out of range [1, n-1]`);
}

/** Decodes a 32-byte big-endian scalar and checks it is in [1, n-1]. */
export function decodeScalar(bytes: Uint8Array, what: string): bigint {
  assertBytes(bytes, what, SCALAR_LENGTH);
  const k = bytesToBigint(bytes);
  if (!isValidScalar(k)) throw new CryptoError('bad-scalar', `Cannot parse ${what}: scalar out of range [1, n-1]`);
  return k;
}

export function encodeScalar(k: bigint): Uint8Array {
  assertScalar(k, 'scalar');
  return bigintTo32(k);
}

/** A uniform scalar in [1, n-1] by rejection sampling (the rejection rate is about 2^-128). */
export function randomScalar(rng: Rng): bigint {
  for (let attempt = 0; attempt < 64; attempt++) {
    const bytes = rng(SCALAR_LENGTH);
    assertBytes(bytes, 'random bytes', SCALAR_LENGTH);
    const k = bytesToBigint(bytes);
    if (isValidScalar(k)) return k;
  }
  throw new CryptoError('bad-input', 'Cannot draw a scalar: the random source keeps returning values out of range');
}

export function mulScalar(a: bigint, b: bigint): bigint {
  return Fn.mul(a, b);
}

export function addScalar(a: bigint, b: bigint): bigint {
  return Fn.add(a, b);
}

/**
 * k⁻¹ mod n, blinded: (k·m)⁻¹·m for a fresh uniform m from the system's
 * random source. The extended Euclid of `Fn.inv` takes steps that depend on
 * its input (a handful for k = 3), but its input here is k·m, uniform and
 * independent of k, so its time says nothing about k. k is secret where it is
 * inverted: the blinding factor of a re-encryption or decryption
 * (docs/security.md, "Timing of the curve arithmetic"). About a third of the
 * time of Fermat's k^(n−2), which earlier versions used; the result is the
 * same whatever m is.
 */
export function invertScalar(k: bigint): bigint {
  assertScalar(k, 'scalar to invert');
  const m = randomScalar(systemRng);
  return Fn.mul(Fn.inv(Fn.mul(k, m)), m);
}

/** Hashes a transcript to a scalar: SHA-512 reduced mod n (bias below 2^-256). */
export function hashToScalar(...parts: Uint8Array[]): bigint {
  // Every part length-prefixed (4 bytes, big-endian) so the transcript is unambiguous; one buffer, one call into
  // Node's (OpenSSL's) SHA-512 — the same digest as noble's, in about half the time here
  let size = 0;
  for (const p of parts) size += 4 + p.length;
  const transcript = Buffer.allocUnsafeSlow(size);
  try {
    let at = 0;
    for (const p of parts) {
      at = transcript.writeUInt32BE(p.length, at);
      transcript.set(p, at);
      at += p.length;
    }
    const k = bytesToBigint(createHash('sha512').update(transcript).digest()) % ORDER;
    return k === 0n ? 1n : k;
  } finally {
    transcript.fill(0); // a transcript may hold secret points (a decapsulation's)
  }
}
