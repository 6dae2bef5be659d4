/**
 * systemRng (src/crypto/random.ts) serves bytes from a pool refilled by the
 * OS CSPRNG: no byte is ever handed out twice, sizes are exact, bad sizes
 * are refused, large draws bypass the pool.
 */
import { systemRng } from '../../src/crypto/random';

describe('systemRng', () => {
  test('draws are exactly the size asked, across many pool refills, and never repeat', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const size = [32, 12, 16, 33, 1][i % 5]!;
      const b = systemRng(size);
      expect(b).toBeInstanceOf(Uint8Array);
      expect(b.length).toBe(size);
      if (size >= 12) {
        const hex = Buffer.from(b).toString('hex');
        expect(seen.has(hex)).toBe(false);
        seen.add(hex);
      }
    }
  });

  test('the bytes look uniform (each byte value about equally often over 1 MiB)', () => {
    const counts = new Array<number>(256).fill(0);
    for (let i = 0; i < 32768; i++) for (const v of systemRng(32)) counts[v]!++;
    const expected = (32768 * 32) / 256;
    // chi-square with 255 degrees of freedom: 99.9999% of uniform samples stay below ~400
    const chi = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(chi).toBeLessThan(400);
  });

  test('large draws are filled whole; zero bytes is an empty array; bad sizes are refused', () => {
    expect(systemRng(100000).length).toBe(100000);
    expect(systemRng(0).length).toBe(0);
    for (const bad of [-1, 1.5, Number.NaN, Infinity]) expect(() => systemRng(bad)).toThrow(RangeError);
  });
});
