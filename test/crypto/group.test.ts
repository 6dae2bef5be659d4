import fc from 'fast-check';
import { CryptoError, ORDER, defaultGroup, groupByName, groups } from '../../src/crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { nativeAddonBinary, platformName } from '../support/native-addon';

const backends = Object.values(groups);
const scalarArb = fc.bigInt({ min: 1n, max: ORDER - 1n });

describe('group backends agree byte for byte', () => {
  test.each(backends.filter((g) => g.name !== 'noble'))('k·G, k·P, A + B and A − B are identical in $name and the noble reference', (b) => {
    const a = groups.noble;
    fc.assert(
      fc.property(scalarArb, scalarArb, scalarArb, (k1, k2, k3) => {
        const pa = a.mulBase(k1);
        const pb = b.mulBase(k1);
        expect(a.encode(pa)).toEqual(b.encode(pb));
        const qa = a.mul(a.mulBase(k2), k3);
        const qb = b.mul(b.mulBase(k2), k3);
        expect(a.encodeUncompressed(qa)).toEqual(b.encodeUncompressed(qb));
        // the variable-time multiplication for public scalars gives the same point
        expect(a.encodeUncompressed(a.mulPublic(a.mulBase(k2), k3))).toEqual(a.encodeUncompressed(qa));
        expect(b.encodeUncompressed(b.mulPublic(b.mulBase(k2), k3))).toEqual(b.encodeUncompressed(qa));
        if (k1 !== (k2 * k3) % ORDER && (k1 + k2 * k3) % ORDER !== 0n) {
          expect(a.encode(a.add(pa, qa))).toEqual(b.encode(b.add(pb, qb)));
          expect(a.encode(a.sub(pa, qa))).toEqual(b.encode(b.sub(pb, qb)));
        }
        // decoding either wire form gives the same point in both
        expect(b.encodeUncompressed(b.decode(a.encode(qa), 'q'))).toEqual(a.encodeUncompressed(qa));
      }),
      { numRuns: 40 },
    );
  });

  const binary = nativeAddonBinary();
  test(`on ${platformName}, ${binary ? 'which has a native binary, the addon loads and is the default backend (no silent fallback to WebAssembly)' : 'which has no native binary, auto is the WebAssembly backend'}`, () => {
    if (binary) {
      expect(groups.native?.name).toBe('native');
      if (process.env.SSMAX_CRYPTO_BACKEND === undefined) expect(defaultGroup.name).toBe('native');
      expect(groupByName('auto')).toBe(groups.native);
    } else {
      expect(groups.native).toBeUndefined();
      if (process.env.SSMAX_CRYPTO_BACKEND === undefined) expect(defaultGroup.name).toBe('libsecp256k1');
      expect(groupByName('auto')).toBe(groups.libsecp256k1);
    }
  });

  test('an unknown backend name is refused, naming the ones there are', () => {
    expect(() => groupByName('openssl')).toThrow(/Unknown crypto backend "openssl" \(have: auto, noble, libsecp256k1/);
  });
});

describe.each(backends)('group $name: decoding checks every point', (g) => {
  const G = secp256k1.Point.BASE;
  test('compressed and uncompressed encodings decode to the same point', () => {
    const p = G.multiply(12345n);
    expect(g.encode(g.decode(p.toBytes(true), 'p'))).toEqual(p.toBytes(true));
    expect(g.encode(g.decode(p.toBytes(false), 'p'))).toEqual(p.toBytes(true));
  });
  test.each([
    ['an empty array', new Uint8Array(0), /expected a 33- or 65-byte SEC1 point, got 0 bytes/],
    ['a 32-byte x-only key', new Uint8Array(32).fill(1), /got 32 bytes/],
    ['a wrong prefix', Uint8Array.from([0x05, ...new Uint8Array(32).fill(1)]), /prefix must be 02 or 03, got 05/],
    ['an uncompressed prefix on 33 bytes', Uint8Array.from([0x04, ...new Uint8Array(32).fill(1)]), /prefix must be 02 or 03, got 04/],
    ['x = 0 (not on the curve)', Uint8Array.from([0x02, ...new Uint8Array(32)]), /not a point on secp256k1/],
    [
      'x = p (out of the field)',
      Uint8Array.from([0x02, ...Buffer.from(secp256k1.Point.Fp.ORDER.toString(16), 'hex')]),
      /not a point on secp256k1/,
    ],
    [
      'an off-curve uncompressed point',
      Uint8Array.from([0x04, ...G.toBytes(false).subarray(1, 33), ...new Uint8Array(32).fill(7)]),
      /not a point on secp256k1/,
    ],
    ['the SEC1 identity encoding', Uint8Array.from([0x00]), /got 1 bytes/],
  ])('rejects %s with a precise error', (_name, bytes, message) => {
    expect(() => g.decode(bytes, 'test point')).toThrow(CryptoError);
    expect(() => g.decode(bytes, 'test point')).toThrow(message);
  });
  test('rejects non-byte input as bad-input', () => {
    for (const v of [null, undefined, '02ab', 42, [2, 3], {}]) {
      try {
        g.decode(v as unknown as Uint8Array, 'test point');
        throw new Error('accepted');
      } catch (err) {
        expect(err).toBeInstanceOf(CryptoError);
        expect((err as CryptoError).code).toBe('bad-input');
      }
    }
  });
  test('a result at infinity is an error, never a point', () => {
    const p = g.mulBase(5n);
    expect(() => g.sub(p, p)).toThrow(/point at infinity/);
    expect(() => g.add(p, g.mulBase(ORDER - 5n))).toThrow(/point at infinity/);
  });
  test('scalars outside [1, n-1] are refused', () => {
    const p = g.mulBase(5n);
    for (const k of [0n, ORDER, ORDER + 1n, -1n]) {
      expect(() => g.mul(p, k)).toThrow(/out of range/);
      expect(() => g.mulBase(k)).toThrow(/out of range/);
    }
  });
});
