import fc from 'fast-check';
import { countCardNumbers, countMyNumbers, luhnValid, myNumberValid } from '../../src/inspect/detectors';

// Reference values computed independently of this code (by hand / a separate script).
test('Luhn: known valid and invalid card numbers', () => {
  expect(luhnValid('4111111111111111')).toBe(true);
  expect(luhnValid('5500005555555559')).toBe(true);
  expect(luhnValid('4111111111111112')).toBe(false);
});

test('My Number: known valid numbers, and every other check digit refused', () => {
  for (const n of ['123456789018', '987654321093', '314159265352']) {
    expect(myNumberValid(n)).toBe(true);
    for (let d = 0; d <= 9; d++) if (String(d) !== n[11]) expect(myNumberValid(n.slice(0, 11) + d)).toBe(false);
  }
  expect(myNumberValid('12345678901')).toBe(false);
});

test('property: changing any single digit of a valid card number breaks Luhn', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 1, max: 9 }), (i, delta) => {
      const n = '4111111111111111';
      const changed = n.slice(0, i) + String((Number(n[i]) + delta) % 10) + n.slice(i + 1);
      expect(luhnValid(changed)).toBe(false);
    }),
  );
});

test('finds numbers in text with separators and full-width digits, not inside longer digit runs', () => {
  expect(countCardNumbers('card: 4111 1111 1111 1111, exp 12/29')).toBe(1);
  expect(countCardNumbers('card: 4111-1111-1111-1111')).toBe(1);
  expect(countCardNumbers('order 41111111111111119999')).toBe(0);
  expect(countMyNumbers('個人番号は１２３４ ５６７８ ９０１８です')).toBe(1);
  expect(countMyNumbers('phone 0312345678 and 123456789019')).toBe(0);
});
