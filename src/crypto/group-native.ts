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
 * paths (ec_pubkey_create: ecmult_gen; ec_pubkey_tweak_mul: ecmult_const),
 * as in the WebAssembly build; the context is randomised once at load
 * (side-channel blinding of ecmult_gen).
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
    mul: (p, k) => ecc.publicKeyTweakMul(p, k, false),
    add: (a, b) => ecc.publicKeyCombine([a, b], false),
    sub: (a, b) => ecc.publicKeyCombine([a, ecc.publicKeyNegate(b, false)], false),
  });
}

/** The native backend, or undefined where the addon does not load. */
export const nativeGroup: Group | undefined = binding ? make(binding) : undefined;
