/**
 * Checksum detectors for DLP (SSMAX §3.2): payment card numbers (13-19
 * digits, Luhn) and the Japanese My Number (個人番号: 12 digits, check digit
 * per the Ministry of Internal Affairs ordinance). Text is NFKC-normalised
 * first, so full-width digits (１２３…) count. Only a count is reported,
 * never the number.
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

/** Digit runs bounded by non-digits, allowing single spaces or hyphens between groups. */
function digitRuns(text: string, min: number, max: number): string[] {
  const out: string[] = [];
  const re = /(?<![0-9])[0-9](?:[ -]?[0-9]){11,22}(?![0-9])/g;
  for (const m of text.normalize('NFKC').matchAll(re)) {
    const digits = m[0].replace(/[ -]/g, '');
    if (digits.length >= min && digits.length <= max) out.push(digits);
  }
  return out;
}

/** How many Luhn-valid card numbers (13-19 digits) the text holds. */
export function countCardNumbers(text: string): number {
  return digitRuns(text, 13, 19).filter(luhnValid).length;
}

/** How many valid My Numbers (12 digits with a correct check digit) the text holds. */
export function countMyNumbers(text: string): number {
  return digitRuns(text, 12, 12).filter(myNumberValid).length;
}
