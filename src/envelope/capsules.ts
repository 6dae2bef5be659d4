/**
 * Reading and replacing the capsules of an SSMAX message. Capsules live only
 * in the top-level header, so replacing them (what re-encryption does) streams
 * the body through untouched.
 */
import { Readable } from 'node:stream';
import { Headers } from '@zone-eu/mailsplit';
import type { Capsule } from '../crypto/capsule';
import { CryptoError } from '../crypto/errors';
import { CAPSULE_HEADER, VERSION_HEADER, formatCapsule, parseCapsule } from './headers';
import { DEFAULT_LIMITS, type MimeLimits, limitError } from './limits';
import { type MessageSource, parseHead, readHead } from './source';

/** The capsules in a parsed top-level header block, in order. */
export function listCapsulesIn(headers: Headers, limits: MimeLimits = DEFAULT_LIMITS): Capsule[] {
  const lines = headers.get(CAPSULE_HEADER.toLowerCase());
  if (lines.length > limits.maxCapsules) throw limitError('the number of capsules', limits.maxCapsules, lines.length);
  return lines.map((line) => parseCapsule(line.slice(line.indexOf(':') + 1)));
}

/** The capsules of a message, read from its header block (bytes or stream). */
export async function listCapsules(source: MessageSource, limits: MimeLimits = DEFAULT_LIMITS): Promise<Capsule[]> {
  const { head } = await readHead(source, limits);
  return listCapsulesIn(parseHead(head, limits), limits);
}

async function* replaced(source: MessageSource, capsules: readonly Capsule[], limits: MimeLimits): AsyncGenerator<Buffer> {
  if (!Array.isArray(capsules) || capsules.length === 0)
    throw new CryptoError('bad-input', 'Cannot replace capsules: at least one capsule is needed');
  if (capsules.length > limits.maxCapsules) throw limitError('the number of capsules', limits.maxCapsules, capsules.length);
  const lines = capsules.map((c) => `${CAPSULE_HEADER}: ${formatCapsule(c)}`);
  for (const line of lines) parseCapsule(line.slice(line.indexOf(':') + 1)); // refuse what we could not read back
  const { head, rest } = await readHead(source, limits);
  const headers = parseHead(head, limits);
  if (!headers.hasHeader(VERSION_HEADER))
    throw new CryptoError('bad-format', `Cannot replace capsules: the message has no ${VERSION_HEADER} header`);
  listCapsulesIn(headers, limits); // the old ones must at least parse
  const list = headers.getList();
  const at = Math.max(
    0,
    list.findIndex((h) => h.key === CAPSULE_HEADER.toLowerCase()),
  );
  headers.remove(CAPSULE_HEADER);
  for (let i = lines.length - 1; i >= 0; i--) headers.addFormatted(CAPSULE_HEADER.toLowerCase(), lines[i], at);
  yield headers.build();
  yield* rest;
}

/** The message with its capsules replaced by `capsules`; content untouched. */
export function replaceCapsules(source: MessageSource, capsules: readonly Capsule[], limits: MimeLimits = DEFAULT_LIMITS): Readable {
  return Readable.from(replaced(source, capsules, limits), { objectMode: false });
}
