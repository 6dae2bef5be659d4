/**
 * The fast backend: tiny-secp256k1, which is libsecp256k1 compiled to
 * WebAssembly (about 11x the reference's arbitrary-point multiplication here).
 * It validates every point it is given (on curve) and returns null for the
 * identity, which we turn into an error.
 */
import * as ecc from 'tiny-secp256k1';
import { type GroupPoint, checkEncoding, libsecp256k1Backed, negate, notOnCurve } from './group';

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
  mul: (p, k) => ecc.pointMultiply(p, k, false),
  add: (a, b) => ecc.pointAdd(a, b, false),
  sub: (a, b) => ecc.pointAdd(a, negate(b), false),
});
