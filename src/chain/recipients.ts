/**
 * Recipient binding (docs/chain.md, "Recipient binding"; docs/security.md):
 * a seal binds the envelope recipients of the copy it seals without naming
 * them.
 *
 * The sealer draws a fresh 32-byte key K per copy and computes, per envelope
 * recipient r (lowercased), the tag HMAC-SHA256(K, "SSMAX-RCPT-1" 0x00 ‖ r).
 * The seal signs only `rc=` = base64url SHA-256("SSMAX-RC-1" 0x00 ‖ u32(n) ‖
 * the n tags sorted bytewise). K and the tags travel beside the seal, in the
 * unsigned `SSMAX-Recipients: v=1; k=…; r=tag,tag,…` field, to the next hop
 * only: the receiving gateway checks that the field hashes to `rc=` and that
 * the tag of each envelope recipient is in it, then removes the field; a copy
 * it delivers carries its own seal over that single recipient and a field
 * with that recipient's tag. A reader of a delivered copy sees the earlier
 * seal's `rc=` — a hash under a key K it never saw — so it cannot test a
 * guessed address (a Bcc recipient) against it, nor learn how many
 * recipients the copy had.
 *
 * Guarantees: parsing is linear in the field's length and strict (canonical
 * base64url, sorted distinct tags, at most MAX_RECIPIENTS); every check is a
 * constant-size hash comparison per recipient.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { decodeBase64url, encodeBase64url } from './tags';
import { isField, splitHeaderBlock, withoutField } from '../mail/header-block';
import { MAX_RECIPIENTS_FIELD_BYTES } from '../envelope/limits';

export const RECIPIENTS_HEADER = 'SSMAX-Recipients';
/** The most envelope recipients one sealed copy may bind (SMTP servers commonly allow 100 to 1000 per transaction). */
export const MAX_RECIPIENTS = 1000;

const RCPT_LABEL = Buffer.from('SSMAX-RCPT-1\0', 'latin1');
const RC_LABEL = Buffer.from('SSMAX-RC-1\0', 'latin1');

export class RecipientsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecipientsError';
  }
}

/** HMAC-SHA256(K, "SSMAX-RCPT-1" 0x00 ‖ lowercase address). */
export function recipientTag(key: Uint8Array, address: string): Buffer {
  return createHmac('sha256', key).update(RCPT_LABEL).update(address.toLowerCase(), 'utf8').digest();
}

/** `rc=`: base64url SHA-256("SSMAX-RC-1" 0x00 ‖ u32(n) ‖ tags sorted bytewise). */
export function recipientCommitment(tags: readonly Uint8Array[]): string {
  const sorted = [...tags].map((t) => Buffer.from(t)).sort(Buffer.compare);
  const n = Buffer.alloc(4);
  n.writeUInt32BE(sorted.length);
  const h = createHash('sha256').update(RC_LABEL).update(n);
  for (const t of sorted) h.update(t);
  return encodeBase64url(h.digest());
}

/**
 * The width (characters, without CRLF) up to which bindRecipients folds the SSMAX-Recipients field.
 * Under the 998 of RFC 5322; folding is not covered by any hash (the field is unsigned, rc= hashes the tags).
 */
export const RECIPIENTS_FOLD_WIDTH = 900;

export interface RecipientBinding {
  /** The `rc=` value the seal signs. */
  readonly commitment: string;
  /** The SSMAX-Recipients field (no final line break) that opens it. */
  readonly field: string;
}

/** A fresh binding of `addresses` (the envelope recipients of one copy). `key` is for test vectors only. */
export function bindRecipients(addresses: readonly string[], key: Uint8Array = randomBytes(32)): RecipientBinding {
  const unique = [...new Set(addresses.map((a) => a.toLowerCase()))];
  if (unique.length === 0) throw new RecipientsError('Cannot bind recipients: there are none');
  if (unique.length > MAX_RECIPIENTS) throw new RecipientsError(`Cannot bind recipients: more than ${MAX_RECIPIENTS} in one copy`);
  if (key.length !== 32) throw new RecipientsError('Cannot bind recipients: the key must be 32 bytes');
  const tags = unique.map((a) => recipientTag(key, a)).sort(Buffer.compare);
  const list = tags.map((t) => encodeBase64url(t));
  // folded between tags, lines up to RECIPIENTS_FOLD_WIDTH characters: about 20 tags a line, so that a
  // copy to 1,000 recipients takes about 50 header lines, far from the 1,000 lines Haraka keeps of a header
  const lines: string[] = [];
  let line = `${RECIPIENTS_HEADER}: v=1; k=${encodeBase64url(key)}; r=`;
  list.forEach((t, i) => {
    const piece = `${t}${i < list.length - 1 ? ',' : ''}`;
    if (i > 0 && line.length + piece.length > RECIPIENTS_FOLD_WIDTH) {
      lines.push(line);
      line = ` ${piece}`;
    } else {
      line += piece;
    }
  });
  lines.push(line);
  return { commitment: recipientCommitment(tags), field: lines.join('\r\n') };
}

export interface RecipientOpening {
  readonly key: Uint8Array;
  readonly tags: readonly Buffer[];
}

/** Parses the value of an SSMAX-Recipients field (after the colon). Throws RecipientsError. */
export function parseRecipients(value: string): RecipientOpening {
  // the folded value may be longer than the tags it holds (a CRLF and a space every line); both are bounded, the folded one first
  if (value.length > MAX_RECIPIENTS_FIELD_BYTES)
    throw new RecipientsError(`Cannot parse ${RECIPIENTS_HEADER}: longer than ${MAX_RECIPIENTS_FIELD_BYTES} bytes`);
  const unfolded = value.replace(/\r?\n(?=[ \t])/g, '').replace(/[ \t]+/g, '');
  if (unfolded.length > 64 + MAX_RECIPIENTS * 46)
    throw new RecipientsError(`Cannot parse ${RECIPIENTS_HEADER}: longer than ${MAX_RECIPIENTS} recipients`);
  const m = /^v=1;k=([A-Za-z0-9_-]{43});r=([A-Za-z0-9_,-]+)$/.exec(unfolded);
  if (!m) throw new RecipientsError(`Cannot parse ${RECIPIENTS_HEADER}: expected "v=1; k=<key>; r=<tag>,<tag>…"`);
  const key = decodeBase64url(m[1]!);
  if (!key || key.length !== 32)
    throw new RecipientsError(`Cannot parse ${RECIPIENTS_HEADER}: tag "k" is not 32 bytes of canonical base64url`);
  const items = m[2]!.split(',');
  if (items.length > MAX_RECIPIENTS) throw new RecipientsError(`Cannot parse ${RECIPIENTS_HEADER}: more than ${MAX_RECIPIENTS} recipients`);
  const tags: Buffer[] = [];
  for (const item of items) {
    const t = decodeBase64url(item);
    if (!t || t.length !== 32)
      throw new RecipientsError(`Cannot parse ${RECIPIENTS_HEADER}: a recipient tag is not 32 bytes of canonical base64url`);
    const b = Buffer.from(t);
    if (tags.length > 0 && Buffer.compare(tags[tags.length - 1]!, b) >= 0)
      throw new RecipientsError(`Cannot parse ${RECIPIENTS_HEADER}: the recipient tags are not sorted and distinct`);
    tags.push(b);
  }
  return { key, tags };
}

/**
 * Which of `addresses` the opening binds under the seal's `rc=` commitment:
 * `{ bound, unbound }`; throws RecipientsError when the opening does not hash
 * to `commitment` (the field was altered or belongs to another seal).
 */
export function checkRecipients(
  opening: RecipientOpening,
  commitment: string,
  addresses: readonly string[],
): { bound: string[]; unbound: string[] } {
  if (recipientCommitment(opening.tags) !== commitment)
    throw new RecipientsError(`The ${RECIPIENTS_HEADER} field does not match the seal's rc= commitment`);
  const set = new Set(opening.tags.map((t) => t.toString('hex')));
  const bound: string[] = [];
  const unbound: string[] = [];
  for (const a of addresses) (set.has(recipientTag(opening.key, a).toString('hex')) ? bound : unbound).push(a);
  return { bound, unbound };
}

/** The raw values of the SSMAX-Recipients fields in a root header block (unfolded text after the colon). */
export function recipientFieldsIn(message: Uint8Array): string[] {
  const raw = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  return splitHeaderBlock(raw, { bareLf: true })
    .fields.filter((f) => isField(f, 'ssmax-recipients'))
    .map((f) => f.slice(f.indexOf(':') + 1));
}

/** The message without any SSMAX-Recipients field in its root header block; every other byte kept. */
export function removeRecipientFields(message: Uint8Array): Buffer {
  return withoutField(message, 'ssmax-recipients');
}
