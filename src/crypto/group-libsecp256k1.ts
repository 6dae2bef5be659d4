/**
 * The fast backend: tiny-secp256k1, which is libsecp256k1 compiled to
 * WebAssembly (about 11x the reference's arbitrary-point multiplication here).
 * It validates every point it is given (on curve) and returns null for the
 * identity, which we turn into an error.
 */
import * as ecc from 'tiny-secp256k1';
import { type Group, type GroupPoint, checkEncoding, compress, encodeUncompressed, identityError, negate, notOnCurve } from './group';
import { assertScalar, bigintTo32 } from './scalar';

function toGroup(p: Uint8Array | null, op: string): GroupPoint {
  if (p === null) throw identityError(op);
  return p as GroupPoint;
}

export const libsecp256k1Group: Group = {
  name: 'libsecp256k1',
  decode(bytes, what) {
    if (!checkEncoding(bytes, what)) {
      if (!ecc.isPoint(bytes)) throw notOnCurve(what); // cheap for the uncompressed form
      return Uint8Array.from(bytes) as GroupPoint;
    }
    try {
      return toGroup(ecc.pointCompress(bytes, false), `${what} decoding`); // decompression checks the curve
    } catch {
      throw notOnCurve(what);
    }
  },
  encode: compress,
  encodeUncompressed,
  mulBase(k) {
    assertScalar(k, 'scalar');
    return toGroup(ecc.pointFromScalar(bigintTo32(k), false), 'k·G');
  },
  mul(p, k) {
    assertScalar(k, 'scalar');
    return toGroup(ecc.pointMultiply(p, bigintTo32(k), false), 'k·P');
  },
  add(a, b) {
    return toGroup(ecc.pointAdd(a, b, false), 'A + B');
  },
  sub(a, b) {
    return toGroup(ecc.pointAdd(a, negate(b), false), 'A − B');
  },
};
