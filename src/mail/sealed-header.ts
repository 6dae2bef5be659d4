/**
 * What a plain-client recipient sees of a message the gateway decrypted for
 * it (transparent delivery, src/gateway/local-copies.ts; docs/security.md,
 * "A header the seals never covered"). The seals, sender-domain alignment and
 * the user signature cover the outer header of the encrypted message; the
 * inner header (inside the ciphertext) is covered by none of them, and anyone
 * who can encrypt to the organisation's key chooses it. So the display fields
 * of the delivered copy — the ones the sender side copies outside
 * (src/envelope/encrypt.ts OUTER_HEADERS: From, Sender, Reply-To, To, Cc,
 * Date, Message-ID, Subject, In-Reply-To, References) — are the sealed outer
 * ones, always:
 *
 *  - inner and outer agree (every message an SSMAX client or this gateway
 *    encrypts, whose outer fields are copies of the inner ones): the inner
 *    message as it is, byte for byte;
 *  - From and Sender agree, another display field does not (or is missing
 *    inside, as a Date or Message-ID the sending gateway added): the inner
 *    message with those fields replaced by the sealed outer ones;
 *  - the inner From or Sender is not the sealed one (a forward, which keeps
 *    the original message with its author's From inside a new sealed header,
 *    or a forgery): the sealed outer header over a short note and the inner
 *    message attached as message/rfc822, so the author shown is the one the
 *    seals vouch for, and the inner one is visibly an attachment's. The note
 *    names the organisation whose seal covers that header: the newest
 *    sealer's (a list's organisation that re-sealed the post, say), not
 *    necessarily the author's.
 *
 * In the first two cases the inner header's own fields stay, except those
 * that claim a verdict of this gateway or of a sealer (Authentication-Results,
 * ARC-Authentication-Results, Received-SPF, SSMAX-* and X-SSMAX-* fields,
 * Resent-*): no seal covers them, and a sender could otherwise plant them
 * beneath this gateway's real Authentication-Results. A message holding one
 * is never delivered byte for byte.
 *
 * Time is linear in the size of the message (one header split of each, one
 * scan for 8-bit bytes, one search for the boundary).
 */
import { randomBytes } from 'node:crypto';
import { OUTER_HEADERS } from '../envelope/encrypt';
import { fieldValue } from '../chain/canonicalize';
import { SEAL_HEADER, parseSeal } from '../chain/tags';
import { isField, splitHeaderBlock } from './header-block';

/** The fields whose disagreement means another author: the inner message is attached, never shown as the sealed one's. */
const AUTHOR_FIELDS: readonly string[] = ['from', 'sender'];

/** Inner fields that claim a verdict of ours or a sealer's: dropped from the copy whose header is shown (see above). */
const VERDICT_FIELDS: readonly string[] = ['authentication-results', 'arc-authentication-results', 'received-spf'];
const VERDICT_PREFIXES: readonly string[] = ['ssmax-', 'x-ssmax-', 'resent-'];

/**
 * Whether the header field `field` (name: value) claims a verdict no seal covers inside a decrypted message.
 * `ssmax: false` leaves the SSMAX-* fields out (`ssmax user open`, which reads the inner SSMAX-User-Signature itself).
 */
export function claimsVerdict(field: string, opts: { readonly ssmax?: boolean } = {}): boolean {
  const name = field
    .slice(0, Math.max(0, field.indexOf(':')))
    .trim()
    .toLowerCase();
  const prefixes = opts.ssmax === false ? VERDICT_PREFIXES.filter((p) => !p.includes('ssmax-')) : VERDICT_PREFIXES;
  return VERDICT_FIELDS.includes(name) || prefixes.some((p) => name.startsWith(p));
}

/** A field's value for comparison: unfolded, each run of spaces and tabs one space, trimmed. */
function comparable(field: string): string {
  return field
    .slice(field.indexOf(':') + 1)
    .replace(/\r?\n(?=[ \t])/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
}

function valuesOf(fields: readonly string[], name: string, foldCase = false): string[] {
  return fields.filter((f) => isField(f, name)).map((f) => (foldCase ? comparable(f).toLowerCase() : comparable(f)));
}

function sameValues(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** How the inner header of a decrypted message stands to the sealed outer one. */
export interface HeaderComparison {
  /** Display fields (lowercase names) whose inner values are not the sealed outer ones. */
  readonly differing: readonly string[];
  /** Whether From or Sender is among them: the inner message is another author's. */
  readonly otherAuthor: boolean;
  /** Those of `differing` the inner header does not have at all (e.g. a Date the sending gateway added before sealing). */
  readonly missingInside: readonly string[];
}

/**
 * Compares the display fields of `inner` (the decrypted message) with those
 * of `outer` (the sealed encrypted message). `authorCase: 'ignore'` compares
 * From and Sender without regard to case (what `ssmax user open` warns about:
 * an address's case is no other author); the gateway compares exactly.
 */
export function compareHeaders(outer: Uint8Array, inner: Uint8Array, options: { authorCase?: 'exact' | 'ignore' } = {}): HeaderComparison {
  const out = splitHeaderBlock(outer).fields;
  const inn = splitHeaderBlock(inner, { bareLf: true }).fields;
  const differing = OUTER_HEADERS.filter((name) => {
    const fold = options.authorCase === 'ignore' && AUTHOR_FIELDS.includes(name);
    return !sameValues(valuesOf(out, name, fold), valuesOf(inn, name, fold));
  });
  return {
    differing,
    otherAuthor: differing.some((n) => AUTHOR_FIELDS.includes(n)),
    missingInside: differing.filter((n) => valuesOf(inn, n).length === 0),
  };
}

/**
 * The copy of the decrypted `inner` a plain-client recipient gets, its display
 * fields the sealed ones of `outer` (see above). Returns `inner` itself when
 * they already are.
 */
export function underSealedHeader(outer: Uint8Array, inner: Uint8Array): Buffer {
  const raw = Buffer.isBuffer(inner) ? inner : Buffer.from(inner.buffer, inner.byteOffset, inner.byteLength);
  const { differing, otherAuthor } = compareHeaders(outer, raw);
  const outerFields = splitHeaderBlock(outer).fields;
  if (differing.length === 0 && !splitHeaderBlock(raw, { bareLf: true }).fields.some((f) => claimsVerdict(f))) return raw;
  const sealed = outerFields.filter((f) => OUTER_HEADERS.some((name) => isField(f, name)));
  return otherAuthor ? attached(sealed, raw, newestSealer(outerFields)) : replaced(sealed, raw);
}

/** The domain (d=) of the newest SSMAX-Seal among `fields` (the highest i=), or undefined when none reads. */
function newestSealer(fields: readonly string[]): string | undefined {
  let best: { instance: number; domain: string } | undefined;
  for (const f of fields.filter((x) => isField(x, SEAL_HEADER))) {
    try {
      const seal = parseSeal(fieldValue({ name: SEAL_HEADER.toLowerCase(), raw: f }));
      if (!best || seal.instance > best.instance) best = { instance: seal.instance, domain: seal.domain };
    } catch {
      // a seal that does not parse names no one (the chain was verified before this copy is made)
    }
  }
  return best?.domain;
}

/** `inner` with every display field removed and the sealed ones put on top (in the inner message's line-ending style). */
function replaced(sealed: readonly string[], inner: Buffer): Buffer {
  const { fields, bodyStart, separated } = splitHeaderBlock(inner, { bareLf: true });
  const firstLf = inner.indexOf(0x0a);
  const eol = firstLf > 0 && inner[firstLf - 1] !== 0x0d ? '\n' : '\r\n';
  const kept = fields.filter((f) => !OUTER_HEADERS.some((name) => isField(f, name)) && !claimsVerdict(f));
  const lines = [...sealed.map((f) => f.replace(/\r\n/g, eol)), ...kept].map((f) => `${f}${eol}`).join('');
  return Buffer.concat([Buffer.from(`${lines}${eol}`, 'latin1'), separated ? inner.subarray(bodyStart) : Buffer.alloc(0)]);
}

/** The note above the attached message; `sealer`: the organisation whose seal covers the header shown. */
function note(sealer: string | undefined): string {
  return (
    `${sealer ? `The organisation ${sealer} sealed` : "The sender's organisation sealed"} the header of this message (From, To, Subject, ...).\r\n` +
    'The message the sender encrypted names another author or sender in its own header,\r\n' +
    'which no seal covers: it is attached below as it was written (a forwarded message\r\n' +
    'looks like this). Trust its header no more than that of any attachment.\r\n'
  );
}

/** The sealed header over a note and `inner` as an attached message/rfc822 part. */
function attached(sealed: readonly string[], inner: Buffer, sealer: string | undefined): Buffer {
  let boundary = `ssmax-attached-${randomBytes(12).toString('hex')}`;
  while (inner.includes(boundary)) boundary = `ssmax-attached-${randomBytes(12).toString('hex')}`;
  // RFC 2046 §5.2.1: a message/rfc822 part is 7bit or 8bit (as the inner message was delivered before: as it is)
  const eightBit = inner.some((b) => b >= 0x80);
  const head = [
    ...sealed,
    'MIME-Version: 1.0',
    // the multipart is 8bit when its part is (RFC 2045 §6.4: a composite's encoding is 7bit, 8bit or binary, and covers its parts)
    ...(eightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    note(sealer),
    `--${boundary}`,
    'Content-Type: message/rfc822',
    `Content-Transfer-Encoding: ${eightBit ? '8bit' : '7bit'}`,
    'Content-Disposition: attachment; filename="message.eml"',
    '',
    '',
  ].join('\r\n');
  // the line break before a delimiter is the delimiter's (RFC 2046 §5.1.1): the part is `inner` to its last byte
  return Buffer.concat([Buffer.from(head, 'latin1'), inner, Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1')]);
}
