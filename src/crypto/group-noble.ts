/** The reference backend: @noble/curves (pure TypeScript, audited). */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { type Group, type GroupPoint, checkEncoding, compress, encodeUncompressed, identityError, notOnCurve } from './group';
import { assertScalar } from './scalar';

type NoblePoint = InstanceType<typeof secp256k1.Point>;
const Point = secp256k1.Point;

function toGroup(p: NoblePoint, op: string): GroupPoint {
  if (p.is0()) throw identityError(op);
  return p.toBytes(false) as GroupPoint;
}

function fromGroup(p: GroupPoint): NoblePoint {
  return Point.fromBytes(p);
}

export const nobleGroup: Group = {
  name: 'noble',
  decode(bytes, what) {
    checkEncoding(bytes, what);
    let p: NoblePoint;
    try {
      p = Point.fromBytes(bytes); // checks the point is on the curve
    } catch {
      throw notOnCurve(what);
    }
    return toGroup(p, `${what} decoding`);
  },
  encode: compress,
  encodeUncompressed,
  mulBase(k) {
    assertScalar(k, 'scalar');
    return toGroup(Point.BASE.multiply(k), 'k·G');
  },
  mul(p, k) {
    assertScalar(k, 'scalar');
    return toGroup(fromGroup(p).multiply(k), 'k·P'); // constant time (noble's multiply)
  },
  mulPublic(p, k) {
    assertScalar(k, 'scalar');
    return toGroup(fromGroup(p).multiplyUnsafe(k), 'k·P');
  },
  add(a, b) {
    return toGroup(fromGroup(a).add(fromGroup(b)), 'A + B');
  },
  sub(a, b) {
    return toGroup(fromGroup(a).subtract(fromGroup(b)), 'A − B');
  },
};
