/**
 * The secp256k1 group operations behind one small interface, with three
 * backends that agree byte for byte: @noble/curves (the audited reference),
 * tiny-secp256k1 (libsecp256k1 compiled to WebAssembly) and the secp256k1
 * package's native addon (libsecp256k1 itself, the default where it loads;
 * src/crypto/backend.ts).
 *
 * Points cross this interface as `GroupPoint`: the 65-byte uncompressed
 * encoding, validated (on the curve, not the identity) when it was made.
 * Keeping points uncompressed between operations saves a square root per call
 * (point addition is ~6x faster in the WASM backend).
 *
 * Wire encodings (SEC1): capsules in mail headers use the 33-byte compressed
 * form (`encode`); the blinded messages between gateway/inspector and key
 * service use the 65-byte uncompressed form (`encodeUncompressed`), because
 * decompressing costs a square root (about a third of a multiplication here)
 * while checking an uncompressed point is nearly free. `decode` accepts both
 * and checks either fully.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { CryptoError, quote } from './errors';
import { assertScalar, bigintTo32, bytesToBigint } from './scalar';

declare const pointBrand: unique symbol;
/** A validated, non-identity secp256k1 point (65-byte uncompressed form). */
export type GroupPoint = Uint8Array & { readonly [pointBrand]: true };

export const POINT_LENGTH = 33;
export const UNCOMPRESSED_POINT_LENGTH = 65;

export type GroupName = 'noble' | 'libsecp256k1' | 'native';

export interface Group {
  readonly name: GroupName;
  /**
   * Decodes a SEC1 point, 33-byte compressed or 65-byte uncompressed; throws
   * `bad-point` naming `what` unless it is a valid non-identity point.
   */
  decode(bytes: Uint8Array, what: string): GroupPoint;
  /** The 33-byte compressed encoding. */
  encode(p: GroupPoint): Uint8Array;
  /** The 65-byte uncompressed encoding (a copy). */
  encodeUncompressed(p: GroupPoint): Uint8Array;
  /** k·G for a scalar k in [1, n-1]. */
  mulBase(k: bigint): GroupPoint;
  /**
   * k·P for a scalar k in [1, n-1], in time that does not depend on k: for
   * every secret scalar (private keys, blinding factors, nonces).
   */
  mul(p: GroupPoint, k: bigint): GroupPoint;
  /**
   * k·P for a PUBLIC scalar k in [1, n-1] (a proof's challenge or responses,
   * which travel in the clear): may take time that depends on k, and is
   * faster. Never for a secret.
   */
  mulPublic(p: GroupPoint, k: bigint): GroupPoint;
  /** a + b; throws `bad-point` if the sum is the identity. */
  add(a: GroupPoint, b: GroupPoint): GroupPoint;
  /** a − b; throws `bad-point` if the difference is the identity. */
  sub(a: GroupPoint, b: GroupPoint): GroupPoint;
}

const FIELD_P: bigint = secp256k1.Point.Fp.ORDER;

/** Compresses a 65-byte uncompressed point (pure byte work, no curve arithmetic). */
export function compress(p: GroupPoint): Uint8Array {
  const out = new Uint8Array(POINT_LENGTH);
  out[0] = ((p[64] ?? 0) & 1) === 1 ? 0x03 : 0x02;
  out.set(p.subarray(1, 33), 1);
  return out;
}

/** −P: the same x, y replaced by p − y. */
export function negate(p: GroupPoint): GroupPoint {
  const y = bytesToBigint(p.subarray(33, 65));
  const out = new Uint8Array(65);
  out[0] = 0x04;
  out.set(p.subarray(1, 33), 1);
  out.set(bigintTo32((FIELD_P - y) % FIELD_P), 33);
  return out as GroupPoint;
}

/**
 * Checks the wire form before any backend sees it: type, length, prefix.
 * Returns whether the point is compressed.
 */
export function checkEncoding(bytes: Uint8Array, what: string): boolean {
  if (!(bytes instanceof Uint8Array)) throw new CryptoError('bad-input', `Cannot parse ${what} ${quote(bytes)}: expected a Uint8Array`);
  const prefix = (bytes[0] ?? 0).toString(16).padStart(2, '0');
  if (bytes.length === POINT_LENGTH) {
    if (bytes[0] !== 0x02 && bytes[0] !== 0x03)
      throw new CryptoError('bad-point', `Cannot parse ${what}: compressed point prefix must be 02 or 03, got ${prefix}`);
    return true;
  }
  if (bytes.length === UNCOMPRESSED_POINT_LENGTH) {
    if (bytes[0] !== 0x04) throw new CryptoError('bad-point', `Cannot parse ${what}: uncompressed point prefix must be 04, got ${prefix}`);
    return false;
  }
  throw new CryptoError(
    'bad-point',
    `Cannot parse ${what}: expected a ${POINT_LENGTH}- or ${UNCOMPRESSED_POINT_LENGTH}-byte SEC1 point, got ${bytes.length} bytes`,
  );
}

export function notOnCurve(what: string): CryptoError {
  return new CryptoError('bad-point', `Cannot parse ${what}: not a point on secp256k1`);
}

export function encodeUncompressed(p: GroupPoint): Uint8Array {
  return Uint8Array.from(p);
}

export function identityError(op: string): CryptoError {
  return new CryptoError('bad-point', `Cannot compute ${op}: the result is the point at infinity`);
}

/**
 * The point operations of a libsecp256k1 build (the WebAssembly one or the
 * native addon) on 32-byte big-endian scalars. An identity result comes back
 * as null or as a throw, as each binding has it.
 */
export interface Secp256k1Ops {
  /** Checks and decodes a SEC1 point (throws `bad-point` naming `what`). */
  decode(bytes: Uint8Array, what: string): GroupPoint;
  /** k·G in constant time. */
  mulBase(k: Uint8Array): Uint8Array | null;
  /** k·P in time independent of k (a secret scalar). */
  mul(p: GroupPoint, k: Uint8Array): Uint8Array | null;
  /** k·P, possibly in variable time (a public scalar). */
  mulPublic(p: GroupPoint, k: Uint8Array): Uint8Array | null;
  add(a: GroupPoint, b: GroupPoint): Uint8Array | null;
  sub(a: GroupPoint, b: GroupPoint): Uint8Array | null;
}

/** A Group over a libsecp256k1 build: scalars range-checked before they reach it, an identity result refused naming the operation. */
export function libsecp256k1Backed(name: GroupName, ops: Secp256k1Ops): Group {
  const at = (op: string, f: () => Uint8Array | null): GroupPoint => {
    let r: Uint8Array | null;
    try {
      r = f();
    } catch {
      throw identityError(op);
    }
    if (r === null) throw identityError(op);
    return r as GroupPoint;
  };
  return {
    name,
    decode: ops.decode,
    encode: compress,
    encodeUncompressed,
    mulBase(k) {
      assertScalar(k, 'scalar');
      return at('k·G', () => ops.mulBase(bigintTo32(k)));
    },
    mul(p, k) {
      assertScalar(k, 'scalar');
      return at('k·P', () => ops.mul(p, bigintTo32(k)));
    },
    mulPublic(p, k) {
      assertScalar(k, 'scalar');
      return at('k·P', () => ops.mulPublic(p, bigintTo32(k)));
    },
    add: (a, b) => at('A + B', () => ops.add(a, b)),
    sub: (a, b) => at('A − B', () => ops.sub(a, b)),
  };
}
