/**
 * Checksum detectors for DLP (SSMAX §3.2): payment card numbers (13-19
 * digits, Luhn) and the Japanese My Number (個人番号: 12 digits, check digit
 * per the Ministry of Internal Affairs ordinance). Text is NFKC-normalised
 * first, so full-width digits (１２３…) count, and invisible format characters
 * are removed. A number next to other digits (an expiry date, a CVV, a line
 * number) is still found. Only a count is reported, never the number.
 */

export function luhnValid(digits: string): boolean {
  if (!/^[0-9]{2,}$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** The My Number check digit: P_n the n-th digit from the right before it, Q_n = n+1 (n ≤ 6) or n−5 (n ≥ 7). */
export function myNumberValid(digits: string): boolean {
  if (!/^[0-9]{12}$/.test(digits)) return false;
  let sum = 0;
  for (let n = 1; n <= 11; n++) {
    const p = digits.charCodeAt(11 - n) - 48;
    const q = n <= 6 ? n + 1 : n - 5;
    sum += p * q;
  }
  const r = sum % 11;
  const check = r <= 1 ? 0 : 11 - r;
  return check === digits.charCodeAt(11) - 48;
}

/**
 * Runs of digit groups: digits joined by single spaces or hyphens, bounded by
 * anything else. Format characters (Unicode Cf: soft hyphen, zero-width space,
 * joiners, direction marks) are invisible to a reader and are removed first,
 * so `4111&shy;1111…` is the number a reader sees.
 */
const RUN = /[0-9]+(?:[ -][0-9]+)*/g;
/** The most groups one candidate can span (each group holds a digit at least). */
const MAX_GROUPS = 19;

/** A card brand's number: its issuer prefix and a length it issues (Visa, Mastercard, Amex, Diners, JCB, Discover, UnionPay). */
export function cardBrandPlausible(digits: string): boolean {
  const n = digits.length;
  const p2 = Number(digits.slice(0, 2));
  const p4 = Number(digits.slice(0, 4));
  if (digits[0] === '4') return n === 13 || n === 16 || n === 19;
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return n === 16;
  if (p2 === 34 || p2 === 37) return n === 15;
  if (p2 === 36 || (p4 >= 3000 && p4 <= 3059)) return n >= 14 && n <= 19;
  if (p2 === 35 || p2 === 38 || p2 === 39 || p2 === 62 || p2 === 65 || p4 === 6011 || (p4 >= 6440 && p4 <= 6499)) return n >= 16 && n <= 19;
  return false;
}

/**
 * How many numbers of `min`-`max` digits that `valid` accepts the text holds.
 * A number is a run of whole groups: the whole run first, then, when it is
 * not one, the runs of consecutive groups inside it (so a card number
 * written next to an expiry date, a CVV or a line number is still found), a
 * group never split (a longer unbroken digit string is not a number inside
 * it). A number inside a run is taken only where its edges are plain: each
 * group left over next to it is of another length than the number's own
 * group beside it (`0312 3456 7890 1234 5678` is one grouping, not a number
 * and a spare group), or `plausible` accepts it (a card brand's prefix and
 * length); and only when its groups have three digits or more (a list of
 * small numbers is not one). Found numbers do not overlap. Each group starts at most
 * MAX_GROUPS candidates of at most `max` digits: linear in the text.
 */
function countNumbers(
  text: string,
  min: number,
  max: number,
  valid: (digits: string) => boolean,
  plausible: (digits: string) => boolean = () => false,
): number {
  let count = 0;
  const clean = text.normalize('NFKC').replace(/\p{Cf}/gu, '');
  for (const m of clean.matchAll(RUN)) {
    const groups = m[0].split(/[ -]/);
    const whole = groups.join('');
    if (whole.length >= min && whole.length <= max) {
      if (valid(whole)) {
        count++;
        continue;
      }
    }
    if (groups.length === 1) continue;
    const len = (k: number) => groups[k]?.length ?? -1; // -1: no group there
    let i = 0;
    while (i < groups.length) {
      let digits = '';
      let found = -1;
      for (let j = i; j < groups.length && j < i + MAX_GROUPS; j++) {
        if (groups[j]!.length < 3) break; // a group of fewer than three digits: no number inside the run spans it
        digits += groups[j];
        if (digits.length > max) break;
        if (digits.length < min || (i === 0 && j === groups.length - 1)) continue;
        const plain = len(i - 1) !== len(i) && len(j + 1) !== len(j);
        if ((plain || plausible(digits)) && valid(digits)) {
          found = j;
          break;
        }
      }
      if (found >= 0) {
        count++;
        i = found + 1;
      } else i++;
    }
  }
  return count;
}

/** How many Luhn-valid card numbers (13-19 digits) the text holds. */
export function countCardNumbers(text: string): number {
  return countNumbers(text, 13, 19, luhnValid, cardBrandPlausible);
}

/** How many valid My Numbers (12 digits with a correct check digit) the text holds. */
export function countMyNumbers(text: string): number {
  return countNumbers(text, 12, 12, myNumberValid);
}
