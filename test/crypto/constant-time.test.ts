/**
 * Multiplying an arbitrary point by a secret scalar (keyd's organisation key
 * times a blinded capsule, the proof's nonces, a gateway's blinding factor, a
 * recipient's key in decapsulation) takes the same time whatever the scalar,
 * in every backend: `Group.mul`. `Group.mulPublic`, for the public scalars of
 * a proof check, may not.
 *
 * Before this test, the native and WebAssembly backends multiplied with
 * libsecp256k1's ec_pubkey_tweak_mul, which uses its variable-time ecmult:
 * the scalar 3 took a third of the time of a random one (src/crypto/group-native.ts);
 * and a secret blinding factor was inverted by the extended Euclidean
 * algorithm, a few steps for 3 (src/crypto/scalar.ts).
 *
 * Method: calls with the scalar 3 and with fresh random scalars alternate, in
 * small batches, and the medians are compared, so a slower or busier machine
 * slows both alike. The same measure must see the difference in `mulPublic`
 * (where libsecp256k1 has it), so it is able to fail.
 *
 * The band, 0.7 to 2 (a measure outside it is taken again, up to four more
 * times: bandRatio): the variable-time algorithms measured 0.03 (Euclid's
 * inversion) to 0.4 (libsecp256k1's ecmult) here, far below it: a shortcut
 * for small scalars is what the lower bound catches. Above 1,
 * @noble/curves' constant-time multiplication (the WebAssembly fallback's and
 * the reference's `mul`) took up to about 1.25 times as long for 3 as for a
 * random scalar under a loaded CI run, with 40 samples a side: its steps are
 * fixed, but JavaScript's big-integer arithmetic takes time that depends on
 * the values (the limit docs/security.md names). The upper bound (1.4 until
 * that offset and the sampling noise came within 15% of it) only guards
 * against a measure gone wrong.
 */
import { randomBytes } from 'node:crypto';
import { type Group, ORDER, groups } from '../../src/crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { invertScalar } from '../../src/crypto/scalar';

jest.setTimeout(120_000);

function randomScalar(): bigint {
  return (BigInt(`0x${randomBytes(32).toString('hex')}`) % (ORDER - 1n)) + 1n;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

/** Median time of k·P for k = 3 divided by that for random k, over `rounds` alternating batches of `batch` calls. */
function smallOverRandom(mul: (k: bigint) => unknown, rounds: number, batch: number): number {
  for (let i = 0; i < 20; i++) {
    mul(3n);
    mul(randomScalar());
  }
  const small: number[] = [];
  const random: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const ks = Array.from({ length: batch }, randomScalar);
    let t = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) mul(3n);
    small.push(Number(process.hrtime.bigint() - t));
    t = process.hrtime.bigint();
    for (const k of ks) mul(k);
    random.push(Number(process.hrtime.bigint() - t));
  }
  return median(small) / median(random);
}

/**
 * A ratio of `smallOverRandom` inside the band [0.7, 2], measured again, up to four more times, while it is
 * outside: noise (a collector pause, a busy neighbour during one batch) only now and then pushes one measure
 * out (a loaded CI run once measured 0.62 for noble's constant-time mul), while a shortcut for small scalars is
 * below the band in every measure (0.03 to 0.4, above). Returns the last ratio measured.
 */
/**
 * A ratio measured again, up to four more times, while it is not below `bound`: a shortcut for small scalars
 * measures below it every time (native mulPublic about 0.65, the WebAssembly one about 0.2), noise pushes one
 * measure above it now and then; a multiplication in constant time never gets below it. Returns the last ratio.
 */
function belowRatio(measure: () => number, bound: number): number {
  let ratio = measure();
  for (let i = 0; i < 4 && ratio >= bound; i++) ratio = measure();
  return ratio;
}

function bandRatio(measure: () => number): number {
  let ratio = measure();
  for (let i = 0; i < 4 && (ratio <= 0.7 || ratio >= 2); i++) ratio = measure();
  return ratio;
}

/** Rounds and batch size for about a second of work per measure (the constant-time paths in JavaScript take milliseconds). */
function effort(g: Group): [number, number] {
  return g.name === 'native' ? [300, 5] : [40, 1];
}

describe.each(Object.values(groups))('group $name', (g) => {
  const P = g.mulBase(987654321n);

  test('mul (secret scalars) takes the same time for the scalar 3 as for random scalars', () => {
    const ratio = bandRatio(() => smallOverRandom((k) => g.mul(P, k), ...effort(g)));
    expect(ratio).toBeGreaterThan(0.7);
    expect(ratio).toBeLessThan(2);
  });

  test('the same measure sees mulPublic (public scalars) take less time for the scalar 3', () => {
    const [rounds, batch] = g.name === 'native' ? [300, 5] : [40, 3];
    expect(belowRatio(() => smallOverRandom((k) => g.mulPublic(P, k), rounds, batch), 0.7)).toBeLessThan(0.7);
  });
});

describe('scalar inversion (of a secret blinding factor)', () => {
  test('takes the same time for the scalar 3 as for random scalars', () => {
    const ratio = bandRatio(() => smallOverRandom((k) => invertScalar(k), 300, 5));
    expect(ratio).toBeGreaterThan(0.7);
    expect(ratio).toBeLessThan(2);
  });

  test('the same measure sees the unblinded extended Euclid (what invertScalar blinds) take less time for the scalar 3', () => {
    expect(belowRatio(() => smallOverRandom((k) => secp256k1.Point.Fn.inv(k), 300, 5), 0.7)).toBeLessThan(0.7);
  });
});
