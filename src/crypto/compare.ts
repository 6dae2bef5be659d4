/**
 * Comparing secrets (tokens, passwords, CSRF values) in constant time: the
 * time taken depends on the lengths only, never on where the values differ.
 */
import { timingSafeEqual } from 'node:crypto';

/** True iff `a` and `b` are the same bytes (strings as UTF-8); unequal lengths are unequal, at once. */
export function secretsEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const x = typeof a === 'string' ? Buffer.from(a) : a;
  const y = typeof b === 'string' ? Buffer.from(b) : b;
  return x.length === y.length && timingSafeEqual(x, y);
}
