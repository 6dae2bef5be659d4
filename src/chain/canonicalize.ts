/**
 * Header canonicalisation of the protected headers: "relaxed" as in DKIM
 * (RFC 6376 §3.4.2), and the header hash `hh=` over them.
 *
 * Guarantees: for each name of `h=` (in `h=` order) every field of that name
 * is taken, in message order, so adding, removing or reordering instances of a
 * protected field (a second capsule, a Cc added later) changes the hash. The
 * relative order of fields with different names does not (as in DKIM: relays
 * such as Exchange reorder header blocks, and no reader shows that order).
 * Duplicate singleton fields are reported, never resolved by choosing one.
 */
import { createHash } from 'node:crypto';
import { SINGLETON_HEADERS } from './protected-headers';

/**
 * One header field of a message as read: the lowercase name and the raw field
 * (name, colon, value, folding kept, no final line break) as a latin1 string,
 * so that every byte, 8-bit ones included, maps to one character.
 */
export interface HeaderField {
  readonly name: string;
  readonly raw: string;
}

/** Without trailing spaces and tabs; a loop, since `/[ \t]+$/` is quadratic on a long run followed by another character. */
function trimEndSpaceTab(text: string): string {
  let end = text.length;
  while (end > 0 && (text.charCodeAt(end - 1) === 0x20 || text.charCodeAt(end - 1) === 0x09)) end--;
  return text.slice(0, end);
}

/** Without leading and trailing spaces (after runs of WSP became one space). */
function trimSpace(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && text.charCodeAt(start) === 0x20) start++;
  while (end > start && text.charCodeAt(end - 1) === 0x20) end--;
  return text.slice(start, end);
}

/** Relaxed canonical form of one field: `name:value` + CRLF (RFC 6376 §3.4.2). */
export function canonicalizeRelaxed(raw: string): string {
  const colon = raw.indexOf(':');
  const name = trimEndSpaceTab(colon < 0 ? raw : raw.slice(0, colon)).toLowerCase();
  // WSP only (space, tab): not String.prototype.trim, which also strips \v, \f and 0xA0 — a latin1 0xA0 is
  // the last byte of UTF-8 characters such as "à", which the hash must keep (docs/chain.md)
  const value = trimSpace((colon < 0 ? '' : raw.slice(colon + 1)).replace(/\r?\n/g, '').replace(/[ \t]+/g, ' '));
  return `${name}:${value}\r\n`;
}

/** The canonical protected header block that `hh=` hashes, as bytes. */
export function protectedHeaderBlock(fields: readonly HeaderField[], signedHeaders: readonly string[]): Buffer {
  const parts: string[] = [];
  for (const name of signedHeaders) {
    for (const field of fields) {
      if (field.name === name) parts.push(canonicalizeRelaxed(field.raw));
    }
  }
  return Buffer.from(parts.join(''), 'latin1');
}

/** `hh=`: base64url SHA-256 of the canonical protected header block. */
export function headerHash(fields: readonly HeaderField[], signedHeaders: readonly string[]): string {
  return createHash('sha256').update(protectedHeaderBlock(fields, signedHeaders)).digest('base64url');
}

/** The first singleton field name that appears more than once, if any. */
export function findDuplicateSingleton(fields: readonly HeaderField[]): string | undefined {
  const seen = new Set<string>();
  for (const field of fields) {
    if (!SINGLETON_HEADERS.has(field.name)) continue;
    if (seen.has(field.name)) return field.name;
    seen.add(field.name);
  }
  return undefined;
}

/** The value of a field (after the colon), unfolded, as a latin1 string. */
export function fieldValue(field: HeaderField): string {
  const colon = field.raw.indexOf(':');
  return field.raw.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, '');
}
