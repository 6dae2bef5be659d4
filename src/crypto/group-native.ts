/**
 * The fastest backend: libsecp256k1 itself, as the N-API addon of the
 * `secp256k1` package (a prebuilt binary shipped inside the npm package, so
 * nothing is compiled or fetched at install). About 5x the WebAssembly
 * build's multiplications here. Only the binding is loaded — never the
 * package's pure-JavaScript fallback —, and if the addon cannot load on this
 * platform, `nativeGroup` is undefined and the WebAssembly backend is used
 * (src/crypto/backend.ts).
 *
 * Multiplications by secret scalars go through libsecp256k1's constant-time
 * paths: ec_pubkey_create (ecmult_gen) for k·G, and ECDH (ecmult_const) for
 * k·P, with a "hash" function that hands back the point itself. The addon's
 * ec_pubkey_tweak_mul is NOT constant time (it uses ecmult, the verifier's
 * variable-time multiplication: measured here, 43 µs for the scalar 3 against
 * 66 µs for a random one, while ECDH takes 90-96 µs for both), so it serves
 * only public scalars (`mulPublic`: checking proofs). The context is
 * randomised once at load (side-channel blinding of ecmult_gen).
 */
import { randomBytes } from 'node:crypto';
import { type Group, type GroupPoint, checkEncoding, libsecp256k1Backed, notOnCurve } from './group';

type Binding = typeof import('secp256k1/bindings');

function load(): Binding | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional native addon: absent on a platform without a prebuilt binary
    const b = require('secp256k1/bindings') as Binding;
    b.contextRandomize(randomBytes(32));
    return b;
  } catch {
    return undefined;
  }
}

const binding = load();

/** The uncompressed point handed back by ECDH's "hash" function (x, y: the product's coordinates). */
const product = new Uint8Array(65);
const xbuf = new Uint8Array(32);
const ybuf = new Uint8Array(32);
function asPoint(x: Uint8Array, y: Uint8Array): Uint8Array {
  product[0] = 0x04;
  product.set(x, 1);
  product.set(y, 33);
  return product;
}

/** k·P in constant time: libsecp256k1's ECDH (ecmult_const), returning the product point (a fresh array). */
function mulConstantTime(ecc: Binding, p: GroupPoint, k: Uint8Array): Uint8Array {
  const out = new Uint8Array(65);
  try {
    return ecc.ecdh(p, k, { hashfn: asPoint, xbuf, ybuf }, out);
  } finally {
    product.fill(0); // the product may be secret (a decapsulated message key point)
    xbuf.fill(0);
    ybuf.fill(0);
  }
}

function make(ecc: Binding): Group {
  // libsecp256k1 refuses a result at infinity (and an out-of-range scalar, which the range check rules out first) by throwing.
  return libsecp256k1Backed('native', {
    decode(bytes, what) {
      checkEncoding(bytes, what);
      try {
        // Parsing checks the point is on the curve (decompressing a compressed one); the result is a fresh array.
        return ecc.publicKeyConvert(bytes, false) as GroupPoint;
      } catch {
        throw notOnCurve(what);
      }
    },
    mulBase: (k) => ecc.publicKeyCreate(k, false),
    mul: (p, k) => mulConstantTime(ecc, p, k),
    mulPublic: (p, k) => ecc.publicKeyTweakMul(p, k, false),
    add: (a, b) => ecc.publicKeyCombine([a, b], false),
    sub: (a, b) => ecc.publicKeyCombine([a, ecc.publicKeyNegate(b, false)], false),
  });
}

/** The native backend, or undefined where the addon does not load. */
export const nativeGroup: Group | undefined = binding ? make(binding) : undefined;
