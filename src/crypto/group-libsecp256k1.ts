/**
 * The fallback backend where the native addon does not load: tiny-secp256k1,
 * which is libsecp256k1 compiled to WebAssembly. It validates every point it
 * is given (on curve) and returns null for the identity, which we turn into
 * an error.
 *
 * Its arbitrary-point multiplication (`pointMultiply`, libsecp256k1's
 * ec_pubkey_tweak_mul) runs in variable time: measured here, 90 µs for the
 * scalar 3 against 500 µs for a random one. It serves only public scalars
 * (`mulPublic`: checking proofs). A secret scalar times an arbitrary point
 * goes to @noble/curves' constant-time `multiply` (about 3 ms here: this
 * backend is the slow fallback); base-point multiplication stays in
 * libsecp256k1 (ec_pubkey_create: constant time).
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import * as ecc from 'tiny-secp256k1';
import { type GroupPoint, checkEncoding, libsecp256k1Backed, negate, notOnCurve } from './group';
import { bytesToBigint } from './scalar';

export const libsecp256k1Group = libsecp256k1Backed('libsecp256k1', {
  decode(bytes, what) {
    if (!checkEncoding(bytes, what)) {
      if (!ecc.isPoint(bytes)) throw notOnCurve(what); // cheap for the uncompressed form
      return Uint8Array.from(bytes) as GroupPoint;
    }
    let p: Uint8Array | null;
    try {
      p = ecc.pointCompress(bytes, false); // decompression checks the curve
    } catch {
      throw notOnCurve(what);
    }
    if (p === null) throw notOnCurve(what);
    return p as GroupPoint;
  },
  mulBase: (k) => ecc.pointFromScalar(k, false),
  mul: (p, k) => secp256k1.Point.fromBytes(p).multiply(bytesToBigint(k)).toBytes(false),
  mulPublic: (p, k) => ecc.pointMultiply(p, k, false),
  add: (a, b) => ecc.pointAdd(a, b, false),
  sub: (a, b) => ecc.pointAdd(a, negate(b), false),
});
