/**
 * Authentication-Results fields in this gateway's name that it did not write
 * (RFC 8601 §5): a mail client trusts the results a field names when its
 * authserv-id is that of its own organisation's server, so a field such as
 * `Authentication-Results: b.example; ssmax-chain=pass; ssmax-mode=transparent`
 * written by a sender must never reach b.example's users. Every message that
 * enters the gateway (the Haraka plugin's queue hooks: arrivals, submissions,
 * a trusted relay's notices) loses, before anything reads it, each
 * Authentication-Results and ARC-Authentication-Results field of its root
 * header whose authserv-id is ours: one of this organisation's domains or a
 * name below one (mx.b.example), or the gateway's server name (Haraka's
 * `me`), compared in one spelling (src/chain/alignment.ts canonicalDomain).
 * The gateway's own results are added after that (src/gateway/inspection.ts,
 * src/gateway/local-copies.ts). Fields of other authserv-ids stay. The inner
 * header of a message the gateway decrypts loses every such field anyway
 * (src/mail/sealed-header.ts).
 *
 * Time is linear in the size of the header block (one split, one scan of
 * each field's first characters; comments are skipped with a depth counter).
 */
import { canonicalDomain, withinDomain } from '../chain/alignment';
import { findHeaderEnd, isField } from './header-block';

const RESULT_FIELDS = ['authentication-results', 'arc-authentication-results'] as const;

/** The index after the CFWS (spaces, tabs, line breaks, nested comments) starting at `at`. */
function skipCfws(text: string, at: number): number {
  let i = at;
  let depth = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    } else if (c === '(') depth = 1;
    else if (c !== ' ' && c !== '\t' && c !== '\r' && c !== '\n') break;
    i++;
  }
  return i;
}

/**
 * The authserv-id of an Authentication-Results value (after the colon), or of
 * an ARC-Authentication-Results value (after its `i=N;`), unquoted and
 * lowercased; '' when there is none.
 */
export function authservIdOf(value: string, arc = false): string {
  let i = skipCfws(value, 0);
  if (arc) {
    const semi = value.indexOf(';', i);
    if (semi < 0) return '';
    i = skipCfws(value, semi + 1);
  }
  if (value[i] === '"') {
    let out = '';
    for (i++; i < value.length && value[i] !== '"'; i++) out += value[i] === '\\' ? (value[++i] ?? '') : value[i];
    return out.trim().toLowerCase();
  }
  let end = i;
  while (end < value.length && !/[\s;(]/.test(value[end]!)) end++;
  return value.slice(i, end).toLowerCase();
}

/** Whether `id` names this gateway: one of `ours` (domains and the server name) or a name below one, in any spelling. */
function isOurs(id: string, ours: readonly string[]): boolean {
  const name = canonicalDomain(id.replace(/\.$/, ''));
  return name !== '' && ours.some((d) => withinDomain(name, d));
}

/**
 * `message` without the result fields in our name (see above): every other
 * byte is kept, and the message itself is returned when it has none.
 * `ours`: this organisation's domains and the gateway's server name.
 */
export function withoutOwnResults(message: Buffer, ours: readonly string[]): Buffer {
  const { headEnd } = findHeaderEnd(message, { bareLf: true });
  // each field with its folds and its own line break, so that joining them gives the bytes back
  const fields = message
    .subarray(0, headEnd)
    .toString('latin1')
    .split(/(?<=\n)(?![ \t])/);
  const forged = (f: string): boolean => {
    const name = RESULT_FIELDS.find((n) => isField(f, n));
    if (!name) return false;
    // the value as the client reads it: UTF-8 (an internationalised authserv-id in its Unicode spelling)
    const value = Buffer.from(f.slice(f.indexOf(':') + 1), 'latin1').toString('utf8');
    return isOurs(authservIdOf(value, name === 'arc-authentication-results'), ours);
  };
  const kept = fields.filter((f) => !forged(f));
  if (kept.length === fields.length) return message;
  return Buffer.concat([Buffer.from(kept.join(''), 'latin1'), message.subarray(headEnd)]);
}
