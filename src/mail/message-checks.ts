/**
 * Checks every message passes before any protocol step: header fields with a
 * bare CR or LF (header injection), raw 8-bit bytes in a header field that
 * are not UTF-8 (RFC 6532: no mail system on the way can keep them byte for
 * byte), duplicate singleton fields, and the format's hard limits. Each
 * failure is a final 5xx with its own reply.
 */
import { isUtf8 } from 'node:buffer';
import type { Headers } from '@zone-eu/mailsplit';
import addressparser from 'nodemailer/lib/addressparser';
import { canonicalDomain } from '../chain/alignment';
import { SINGLETON_HEADERS } from '../chain/protected-headers';
import { DEFAULT_LIMITS, listCapsulesIn, parseHead } from '../envelope';
import { CryptoError } from '../crypto/errors';
import { type Capsule, decodeCapsule } from '../crypto';
import { defaultGroup } from '../crypto/backend';
import { GatewayError, decided } from './replies';
import { findHeaderEnd, unfoldedValue } from '../mail/header-block';

function headBlock(message: Buffer): Buffer {
  return message.subarray(0, findHeaderEnd(message, { bareLf: true }).bodyStart);
}

export interface CheckedHead {
  readonly headers: Headers;
  /** The single From address, lowercased, its domain in its ASCII form (canonicalAddress). */
  readonly from: string;
  readonly messageId: string;
}

/**
 * Where in the header block `index` is, for a reply: `in "<field name>"` of the field holding it (its first line,
 * continuation lines walked back over), or `in a header field` when that line has no name as RFC 5322 spells one.
 * Never the field's value: the header checked may be a decrypted one, whose text must reach no reply or log line.
 */
function fieldAt(text: string, index: number): string {
  const lineStart = (at: number) => {
    const crlf = at <= 0 ? -1 : text.lastIndexOf('\r\n', at - 1);
    return crlf < 0 ? 0 : crlf + 2;
  };
  let start = lineStart(index);
  while (start > 0 && (text[start] === ' ' || text[start] === '\t')) start = lineStart(start - 2);
  const colon = text.indexOf(':', start);
  const name = colon < 0 || colon > index ? '' : text.slice(start, colon);
  return /^[\x21-\x39\x3b-\x7e]{1,40}$/.test(name) ? `in "${name}"` : 'in a header field';
}

export function checkMessage(message: Buffer): CheckedHead {
  const head = headBlock(message);
  const text = head.toString('latin1');
  const bare = /\r(?!\n)|(?<!\r)\n/.exec(text);
  if (bare) throw new GatewayError('headerLineBreak', fieldAt(text, bare.index));
  // a NUL in a field: the address parser drops it, so the From checked (alice@a.example from "alice\0@a.example")
  // would not be the one a reader stopping at the NUL shows
  const nul = head.indexOf(0);
  if (nul >= 0) throw new GatewayError('headerNul', fieldAt(text, nul));
  checkUtf8Fields(head);
  checkNoBareCr(message);
  let headers: Headers;
  try {
    headers = parseHead(head, DEFAULT_LIMITS);
  } catch (err) {
    throw decided(err); // a limit or parse failure of the header: final, by the one rule (replies.ts)
  }
  const counts = new Map<string, number>();
  for (const h of headers.getList()) counts.set(h.key, (counts.get(h.key) ?? 0) + 1);
  for (const [key, n] of counts) if (n > 1 && SINGLETON_HEADERS.has(key)) throw new GatewayError('duplicateHeader', `${n} "${key}" fields`);
  const fromLine = headers.get('from')[0];
  if (!fromLine) throw new GatewayError('badFormat', 'no From field');
  const boxes = addressparser(fromLine.slice(fromLine.indexOf(':') + 1), { flatten: true });
  if (boxes.length !== 1 || !boxes[0]?.address) throw new GatewayError('badFormat', 'From must hold exactly one address');
  // one spelling of a domain for every comparison (alignment, own domains, bundles): an internationalised
  // name in its ASCII form; a fully qualified "b.example.", an empty label or a name that maps to none would be
  // another name to every check, so it is malformed here (canonicalDomain)
  const from = canonicalAddress(boxes[0].address);
  if (!from) {
    const spelt = boxes[0].address.slice(boxes[0].address.lastIndexOf('@') + 1);
    throw new GatewayError(
      'badFormat',
      `From domain "${spelt.slice(0, 80)}" is not a domain name (no trailing dot, no empty label; an internationalised name must map to one)`,
    );
  }
  const mid = headers.get('message-id')[0];
  // unfolded (a fold before a comment after the id is legal) and one line long at most: keyd records it as it is
  const messageId = mid ? unfoldedValue(mid).trim() : '';
  if (messageId.length > MAX_MESSAGE_ID) throw new GatewayError('badFormat', `Message-ID longer than ${MAX_MESSAGE_ID} characters`);
  return { headers, from, messageId };
}

/** The longest Message-ID value taken (RFC 5322's line length: an id cannot be folded). */
const MAX_MESSAGE_ID = 998;

/**
 * `address` in the one spelling every comparison uses: lowercased, its domain
 * in its ASCII form (canonicalDomain: "Ceo@BÜCHER.example" is
 * "ceo@xn--bcher-kva.example"); undefined when it has no "@" or its domain is
 * no domain name.
 */
export function canonicalAddress(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  const domain = canonicalDomain(address.slice(at + 1));
  return domain ? `${address.slice(0, at).toLowerCase()}@${domain}` : undefined;
}

/**
 * Refuses a message holding a bare CR (one not followed by LF) anywhere, body included: Haraka
 * takes it in, and a next hop that reads <CR>.<CR> as the end of DATA would run the lines after
 * it as commands of this gateway (SMTP smuggling). One pass; names the line, never its bytes.
 * The same rule holds for a decrypted message (`where`: "in the encrypted message, "): readers of
 * its header that split lines at LF would take a field hidden behind a lone CR for part of the one
 * before, and the hand-over to the mailbox store turns that CR into a line end.
 */
export function checkNoBareCr(message: Buffer, where = ''): void {
  const line = bareCrLine(message);
  if (line !== undefined) throw new GatewayError('bareCr', `${where}at line ${line}`);
}

/** The line (from 1) of the first bare CR in `message`, or undefined when it has none. One pass. */
export function bareCrLine(message: Buffer): number | undefined {
  for (let i = message.indexOf(0x0d); i >= 0; i = message.indexOf(0x0d, i + 1)) {
    if (message[i + 1] !== 0x0a) {
      let line = 1;
      for (let j = message.indexOf(0x0a); j >= 0 && j < i; j = message.indexOf(0x0a, j + 1)) line++;
      return line;
    }
  }
  return undefined;
}

/**
 * Refuses a header block holding bytes that are not UTF-8, naming the first such field (its name
 * as ASCII, never its value). One pass over the block; the fields are looked at only when it fails.
 */
export function checkUtf8Fields(head: Buffer): void {
  if (isUtf8(head)) return;
  let start = 0;
  let name = '?';
  while (start < head.length) {
    const lf = head.indexOf(0x0a, start);
    const end = lf < 0 ? head.length : lf + 1;
    const line = head.subarray(start, end);
    if (line[0] !== 0x20 && line[0] !== 0x09) {
      const colon = line.indexOf(0x3a);
      name = line
        .subarray(0, colon < 0 ? Math.min(line.length, 40) : Math.min(colon, 40))
        .toString('latin1')
        .replace(/[^\x21-\x7e]/g, '?');
    }
    if (!isUtf8(line)) throw new GatewayError('headerNotUtf8', `in "${name}"`);
    start = end;
  }
  throw new GatewayError('headerNotUtf8', 'in the header block');
}

/**
 * The Sender field's address in its one spelling (canonicalAddress): undefined
 * without a Sender field, '' when it does not hold exactly one address or its
 * domain is no domain name (which matches no login).
 */
export function senderOf(headers: Headers): string | undefined {
  const line = headers.get('sender')[0];
  if (line === undefined) return undefined;
  const boxes = addressparser(line.slice(line.indexOf(':') + 1), { flatten: true });
  return boxes.length === 1 && boxes[0]?.address ? (canonicalAddress(boxes[0].address) ?? '') : '';
}

/**
 * Every address a Sender field names, each in its one spelling (canonicalAddress; one whose domain is no
 * domain name is left out): a field that breaks the one-mailbox rule still names whom a client shows.
 */
function senderAddresses(headers: Headers): string[] {
  const out = new Set<string>();
  for (const line of headers.get('sender'))
    for (const box of addressparser(line.slice(line.indexOf(':') + 1), { flatten: true })) {
      const a = box.address ? canonicalAddress(box.address) : undefined;
      if (a) out.add(a);
    }
  // each is looked up (its domain's organisation, keyd): a field of thousands would cost as many lookups in turn
  if (out.size > MAX_SENDER_ADDRESSES)
    throw new GatewayError(
      'badFormat',
      `the Sender field names ${out.size} mailboxes, where RFC 5322 §3.6.2 allows one (at most ${MAX_SENDER_ADDRESSES} are read)`,
    );
  return [...out];
}

/** The most distinct addresses the Sender fields of a message may name (RFC 5322: one; a little slack for odd clients). */
export const MAX_SENDER_ADDRESSES = 4;

/** Whom a client shows as sending the message: the From, then every address of a Sender field ("Sender on behalf of From"). */
export function shownSenders(head: CheckedHead): (readonly ['From' | 'Sender', string])[] {
  return [['From', head.from], ...senderAddresses(head.headers).map((a) => ['Sender', a] as const)];
}

/**
 * The capsules the message's header carries. A capsule field that does not
 * parse is the message's own fault: final (`badCapsule`, 5.7.5), never the
 * 4xx an unclassified error would be.
 */
export function capsulesOf(headers: Headers): Capsule[] {
  try {
    return listCapsulesIn(headers);
  } catch (err) {
    if (err instanceof CryptoError) throw new GatewayError('badCapsule', err.message);
    throw err;
  }
}

/**
 * The one capsule made for a key of `domain` (`<domain>:v<N>`), its points checked; none, more than one, only
 * foreign ones, or points that are not on the curve: final (`badCapsule`), before any key operation would take them
 * for a fault (4xx for ever).
 */
export function capsuleFor(domain: string, capsules: readonly Capsule[]): Capsule {
  const mine = capsules.filter((c) => c.keyId.startsWith(`${domain}:v`));
  if (mine.length !== 1)
    throw new GatewayError('badCapsule', `expected one capsule for a ${domain} key, found ${mine.length} (of ${capsules.length})`);
  const capsule = mine[0]!;
  if (pointsChecked.has(capsule)) return capsule; // a message's capsule is picked at several steps: its points are checked once
  try {
    decodeCapsule(defaultGroup, capsule);
  } catch (err) {
    if (err instanceof CryptoError) throw new GatewayError('badCapsule', err.message);
    throw err;
  }
  pointsChecked.add(capsule);
  return capsule;
}

/** Capsules whose points `capsuleFor` found on the curve (each decoding takes two square roots). */
const pointsChecked = new WeakSet<Capsule>();

/** The domain of `address` in its one spelling (canonicalDomain), '' when it is no domain name (which matches none). */
export function domainOf(address: string): string {
  return canonicalDomain(address.slice(address.lastIndexOf('@') + 1));
}
