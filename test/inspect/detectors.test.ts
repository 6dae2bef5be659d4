import fc from 'fast-check';
import { countCardNumbers, countMyNumbers, luhnValid, myNumberValid } from '../../src/inspect/detectors';
import { growth, LINEAR_BOUND } from '../chain/linear-time-cases';

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

describe('a card number next to other digits, or split by characters a reader never sees', () => {
  const hits: [string, number][] = [
    ['Card 4111 1111 1111 1111 12/28 cvv 123', 1], // expiry and CVV after it
    ['4111 1111 1111 1111 12/28', 1],
    ['4111 1111 1111 1111 2028', 1], // a four-digit year, grouped like the number: a card brand's prefix and length
    ['1 4111 1111 1111 1111', 1], // a line number before it
    ['12 4111-1111-1111-1111', 1],
    ['4111111111111111 0526', 1], // unbroken, then an expiry
    ['4111 1111 1111 1111 5500 0000 0000 0004', 2], // two numbers in one run
    ['4111\u00ad1111\u00ad1111\u00ad1111', 1], // soft hyphens (&shy;)
    ['4111\u200b1111\u200b1111\u200b1111', 1], // zero-width spaces
    ['\u200e4111 1111\u2060 1111 1111', 1], // a direction mark, a word joiner
  ];
  test.each(hits)('%j holds %i', (text, n) => expect(countCardNumbers(text)).toBe(n));

  const misses: string[] = [
    'order 41111111111111119999', // a number inside a longer unbroken digit string is not one
    '0312 3456 7890 1234 5678', // one grouping of five groups: no brand's number, edges not plain
    '4111 1111 1111 1112 12/28', // Luhn wrong, expiry after
    '1 4111 1111 1111 1112',
    'Call +81 3 1234 5678 or 090-1234-5678, meet 2026-12-06 10:30, invoice INV-2026-000123.',
    'Parcel 1Z 9999 9999 9999 9990 is on its way.',
    'lines 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20',
  ];
  test.each(misses)('%j holds none', (text) => expect(countCardNumbers(text)).toBe(0));

  test('My Number: next to a shorter group found; inside a card number or a longer grouping not', () => {
    expect(countMyNumbers('個人番号 1234 5678 9018 12/07')).toBe(1);
    expect(countMyNumbers('No. 7 1234-5678-9018')).toBe(1);
    expect(countMyNumbers('4111 1111 1111 1111')).toBe(0);
    expect(countMyNumbers('1234 5678 9018 1234')).toBe(0);
  });

  test('a long run of digit groups costs its length', async () => {
    const shapes: ((size: number) => string)[] = [(size) => '4111 '.repeat(size / 5), (size) => '4111\u00ad'.repeat(size / 5)];
    for (const shape of shapes) {
      const g = await growth(countCardNumbers, shape);
      expect(g.ratio).toBeLessThan(LINEAR_BOUND);
    }
  });
});
