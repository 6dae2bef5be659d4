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
import { type Group, type GroupPoint, checkEncoding, compress, encodeUncompressed, identityError, notOnCurve } from './group';
import { assertScalar, bigintTo32 } from './scalar';

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
  // libsecp256k1 refuses a result at infinity (and an out-of-range scalar, which assertScalar rules out first) by throwing.
  const at = <T>(op: string, f: () => T): T => {
    try {
      return f();
    } catch {
      throw identityError(op);
    }
  };
  return {
    name: 'native',
    decode(bytes, what) {
      checkEncoding(bytes, what);
      try {
        // Parsing checks the point is on the curve (decompressing a compressed one); the result is a fresh array.
        return ecc.publicKeyConvert(bytes, false) as GroupPoint;
      } catch {
        throw notOnCurve(what);
      }
    },
    encode: compress,
    encodeUncompressed,
    mulBase(k) {
      assertScalar(k, 'scalar');
      return at('k·G', () => ecc.publicKeyCreate(bigintTo32(k), false)) as GroupPoint;
    },
    mul(p, k) {
      assertScalar(k, 'scalar');
      return at('k·P', () => ecc.publicKeyTweakMul(p, bigintTo32(k), false)) as GroupPoint;
    },
    add(a, b) {
      return at('A + B', () => ecc.publicKeyCombine([a, b], false)) as GroupPoint;
    },
    sub(a, b) {
      return at('A − B', () => ecc.publicKeyCombine([a, ecc.publicKeyNegate(b, false)], false)) as GroupPoint;
    },
  };
}

/** The native backend, or undefined where the addon does not load. */
export const nativeGroup: Group | undefined = binding ? make(binding) : undefined;
