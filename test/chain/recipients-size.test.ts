/**
 * The SSMAX-Recipients field of a copy to many recipients: a copy may bind
 * 1,000 (the gateway's limit per message, 452 4.5.3 beyond it), and its field
 * — about 44 KB folded — must parse and pass the header limits at the next
 * hop, where max_header_length (16 KiB) would refuse it (5.3.4: a message
 * to more than about 350 recipients of one domain bounced). It folds at
 * about 900 characters: a line a tag kept a copy to 1,000 over the 1,000
 * header lines Haraka keeps, which dropped every later field.
 */
import { DEFAULT_LIMITS, MAX_RECIPIENTS_FIELD_BYTES } from '../../src/envelope/limits';
import { parseHead } from '../../src/envelope/source';
import { MAX_RECIPIENTS, RECIPIENTS_FOLD_WIDTH, bindRecipients, checkRecipients, parseRecipients } from '../../src/chain/recipients';

const addresses = (n: number) => Array.from({ length: n }, (_, i) => `"rcpt ${i}"@b.example`);
const valueOf = (field: string) => field.slice(field.indexOf(':') + 1);

test.each([354, 600, MAX_RECIPIENTS])('a field binding %d recipients parses, and passes the header limits of a message', (n) => {
  const b = bindRecipients(addresses(n));
  expect(parseRecipients(valueOf(b.field)).tags).toHaveLength(n);
  expect(b.field.length).toBeLessThanOrEqual(MAX_RECIPIENTS_FIELD_BYTES);
  const head = Buffer.from(`${b.field}\r\nFrom: a@a.example\r\nTo: b@b.example\r\n\r\n`);
  expect(parseHead(head, DEFAULT_LIMITS).getList()).toHaveLength(3);
  const last = addresses(n).slice(-1);
  expect(checkRecipients(parseRecipients(valueOf(b.field)), b.commitment, [...last, 'other@b.example'])).toEqual({
    bound: last,
    unbound: ['other@b.example'],
  });
});

test('every other field keeps max_header_length; the Recipients field its own bound', () => {
  const long = `X-Other: ${'a'.repeat(DEFAULT_LIMITS.maxHeaderLength)}`;
  expect(() => parseHead(Buffer.from(`${long}\r\n\r\n`), DEFAULT_LIMITS)).toThrow(
    /header "x-other" of the message exceeds the limit of 16384/,
  );
  const huge = `SSMAX-Recipients: v=1; k=${'A'.repeat(43)}; r=${'A'.repeat(MAX_RECIPIENTS_FIELD_BYTES)}`;
  expect(() => parseHead(Buffer.from(`${huge}\r\n\r\n`), DEFAULT_LIMITS)).toThrow(
    /"ssmax-recipients" of the message exceeds the limit of 65536/,
  );
  expect(() => parseRecipients(valueOf(huge))).toThrow(/longer than 65536 bytes/);
});

test('the field folds at RECIPIENTS_FOLD_WIDTH: 1,000 recipients take about 50 lines, each under 998 characters', () => {
  const b = bindRecipients(addresses(MAX_RECIPIENTS));
  const lines = b.field.split('\r\n');
  expect(lines.length).toBeLessThanOrEqual(60);
  expect(lines.length).toBeGreaterThan(40);
  for (const l of lines) expect(l.length).toBeLessThanOrEqual(RECIPIENTS_FOLD_WIDTH);
  expect(RECIPIENTS_FOLD_WIDTH).toBeLessThan(998);
  // every line but the last is full: the next tag would not have fitted
  for (const l of lines.slice(0, -1)) expect(l.length + 45).toBeGreaterThan(RECIPIENTS_FOLD_WIDTH);
  expect(lines.slice(1).every((l) => l.startsWith(' '))).toBe(true);
});
