/**
 * invertScalar (src/crypto/scalar.ts) computes k⁻¹ mod n blinded, as (k·m)⁻¹·m
 * with a fresh random m: whatever m is, the answer is the one inverse of k.
 * Its timing is measured in constant-time.test.ts.
 */
import fc from 'fast-check';
import { ORDER, mulScalar } from '../../src/crypto';
import { invertScalar } from '../../src/crypto/scalar';

const scalar = fc.bigInt({ min: 1n, max: ORDER - 1n });

test('k · invertScalar(k) = 1 mod n, for any k in [1, n-1]', () => {
  fc.assert(
    fc.property(scalar, (k) => mulScalar(k, invertScalar(k)) === 1n),
    { numRuns: 2000 },
  );
});

test('the same k gives the same inverse each time (the blinding factor does not show)', () => {
  fc.assert(
    fc.property(scalar, (k) => invertScalar(k) === invertScalar(k) && invertScalar(invertScalar(k)) === k),
    { numRuns: 500 },
  );
});

test('the edges: 1, 2, n-1', () => {
  expect(invertScalar(1n)).toBe(1n);
  expect(invertScalar(ORDER - 1n)).toBe(ORDER - 1n);
  expect(mulScalar(2n, invertScalar(2n))).toBe(1n);
});

test('0 and n are refused, not inverted', () => {
  expect(() => invertScalar(0n)).toThrow(/out of range/);
  expect(() => invertScalar(ORDER)).toThrow(/out of range/);
});
