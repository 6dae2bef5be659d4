/** Secrets compared in constant time (src/crypto/compare.ts): equal bytes only; strings as UTF-8; unequal lengths unequal. */
import { secretsEqual } from '../../src/crypto/compare';

test('equal only for the same bytes, whatever the types or lengths', () => {
  expect(secretsEqual('a1b2', 'a1b2')).toBe(true);
  expect(secretsEqual('a1b2', Buffer.from('a1b2'))).toBe(true);
  expect(secretsEqual('a1b2', 'a1b3')).toBe(false);
  expect(secretsEqual('a1b2', 'a1b')).toBe(false);
  expect(secretsEqual('', '')).toBe(true);
  expect(secretsEqual('é', Buffer.from([0xc3, 0xa9]))).toBe(true);
  expect(secretsEqual('é', Buffer.from([0xe9]))).toBe(false);
});
