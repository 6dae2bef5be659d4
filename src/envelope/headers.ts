/**
 * The header grammar of the encrypted-message format (docs/format.md):
 *
 *   SSMAX-Version: 1
 *   SSMAX-Capsule: v=1; kid=<key id>; e=<base64url 33 bytes>; f=<base64url 33 bytes>
 *   Content-Type: application/ssmax-encrypted; profile=message|part; v=1;
 *                 cid=<base64url 16 bytes>; chunk=<bytes>
 *
 * Parsers are strict: unknown, repeated or missing tags, bad lengths and bad
 * characters are errors that name the tag and the value.
 */
import libmime from 'libmime';
import type { Capsule } from '../crypto/capsule';
import { CryptoError, quote } from '../crypto/errors';
import { CONTENT_ID_LENGTH, assertChunkSize } from '../crypto/kdf';
import { KEY_ID_PATTERN } from '../crypto/keys';
import { POINT_LENGTH } from '../crypto/group';

export const FORMAT_VERSION = '1';
export const VERSION_HEADER = 'SSMAX-Version';
export const CAPSULE_HEADER = 'SSMAX-Capsule';
export const MEDIA_TYPE = 'application/ssmax-encrypted';
export type Profile = 'message' | 'part';

const B64URL = /^[A-Za-z0-9_-]+$/;

function decodeB64url(value: string, length: number, what: string): Uint8Array {
  if (!B64URL.test(value)) throw new CryptoError('bad-capsule', `Cannot parse ${what} ${quote(value)}: not base64url`);
  const bytes = Buffer.from(value, 'base64url');
  if (bytes.length !== length || bytes.toString('base64url') !== value) {
    throw new CryptoError('bad-capsule', `Cannot parse ${what} ${quote(value)}: expected ${length} bytes of base64url`);
  }
  return new Uint8Array(bytes);
}

/** Splits `a=1; b=2` into an ordered map, refusing repeats and malformed pairs. */
function tagList(value: string, what: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const raw of value.split(';')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CryptoError('bad-capsule', `Cannot parse ${what}: ${quote(item)} is not tag=value`);
    const tag = item.slice(0, eq).trim();
    const val = item.slice(eq + 1).trim();
    if (tags.has(tag)) throw new CryptoError('bad-capsule', `Cannot parse ${what}: tag "${tag}" repeated`);
    tags.set(tag, val);
  }
  return tags;
}

export function formatCapsule(c: Capsule): string {
  return `v=${FORMAT_VERSION}; kid=${c.keyId}; e=${Buffer.from(c.e).toString('base64url')}; f=${Buffer.from(c.f).toString('base64url')}`;
}

/** Parses one SSMAX-Capsule value (unfolded or folded). The points are checked later, by the group. */
export function parseCapsule(value: string): Capsule {
  const what = 'SSMAX-Capsule';
  const tags = tagList(value.replace(/\r?\n[ \t]/g, ' '), what);
  for (const t of tags.keys())
    if (!['v', 'kid', 'e', 'f'].includes(t)) throw new CryptoError('bad-capsule', `Cannot parse ${what}: unknown tag "${t}"`);
  for (const t of ['v', 'kid', 'e', 'f'])
    if (!tags.has(t)) throw new CryptoError('bad-capsule', `Cannot parse ${what}: tag "${t}" missing`);
  if (tags.get('v') !== FORMAT_VERSION)
    throw new CryptoError(
      'bad-capsule',
      `Cannot parse ${what}: version ${quote(tags.get('v'))} is not supported (expected ${FORMAT_VERSION})`,
    );
  const kid = tags.get('kid') ?? '';
  if (!KEY_ID_PATTERN.test(kid))
    throw new CryptoError('bad-capsule', `Cannot parse ${what}: key id ${quote(kid)} is not 1-64 characters of [A-Za-z0-9._:-]`);
  return {
    keyId: kid,
    e: decodeB64url(tags.get('e') ?? '', POINT_LENGTH, `${what} tag "e"`),
    f: decodeB64url(tags.get('f') ?? '', POINT_LENGTH, `${what} tag "f"`),
  };
}

export interface EncryptedPartParams {
  readonly profile: Profile;
  readonly contentId: Uint8Array;
  readonly chunkSize: number;
}

export function formatContentType(p: EncryptedPartParams): string {
  return `${MEDIA_TYPE}; profile=${p.profile}; v=${FORMAT_VERSION}; cid=${Buffer.from(p.contentId).toString('base64url')}; chunk=${p.chunkSize}`;
}

/** Parses the Content-Type of an encrypted entity; null if it is not one. */
export function parseContentType(value: string): EncryptedPartParams | null {
  const parsed = libmime.parseHeaderValue(value.replace(/\r?\n[ \t]/g, ' '));
  if (parsed.value.trim().toLowerCase() !== MEDIA_TYPE) return null;
  const p = parsed.params;
  const what = `Content-Type ${MEDIA_TYPE}`;
  if (p.v !== FORMAT_VERSION)
    throw new CryptoError('bad-format', `Cannot parse ${what}: version ${quote(p.v ?? '')} is not supported (expected ${FORMAT_VERSION})`);
  if (p.profile !== 'message' && p.profile !== 'part')
    throw new CryptoError('bad-format', `Cannot parse ${what}: profile ${quote(p.profile ?? '')} is not "message" or "part"`);
  if (!/^[0-9]{1,9}$/.test(p.chunk ?? ''))
    throw new CryptoError('bad-format', `Cannot parse ${what}: chunk ${quote(p.chunk ?? '')} is not a number`);
  const chunkSize = Number(p.chunk);
  try {
    assertChunkSize(chunkSize);
  } catch (err) {
    throw new CryptoError('bad-format', `Cannot parse ${what}: ${(err as Error).message}`);
  }
  let contentId: Uint8Array;
  try {
    contentId = decodeB64url(p.cid ?? '', CONTENT_ID_LENGTH, 'content id "cid"');
  } catch (err) {
    throw new CryptoError('bad-format', (err as Error).message);
  }
  return { profile: p.profile, contentId, chunkSize };
}
