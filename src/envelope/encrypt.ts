/**
 * Encrypting a message into the SSMAX format (docs/format.md), streaming:
 *
 *  - profile "message": the whole original message (headers and body, byte
 *    for byte) is the plaintext; the outer message keeps only the addressing
 *    headers, adds the capsules, and carries the ciphertext as its body;
 *  - profile "part": chosen leaf parts of an otherwise plain message are each
 *    replaced by an encrypted part whose plaintext is the original part
 *    (its headers and raw body, byte for byte).
 *
 * One message key P per message; each encrypted entity has its own content id
 * and so its own content key. Capsules travel in the top-level header only,
 * so re-encryption replaces capsules and never touches content.
 */
import { Readable } from 'node:stream';
import { type MimeNode, Splitter, type SplitterChunk } from '@zone-eu/mailsplit';
import { encapsulate, newMessageKey } from '../crypto/capsule';
import { CryptoError } from '../crypto/errors';
import type { Group } from '../crypto/group';
import { CONTENT_ID_LENGTH, SecretScope } from '../crypto/kdf';
import type { Recipient } from '../crypto/keys';
import type { Rng } from '../crypto/random';
import { StreamSealer } from '../crypto/stream';
import { Base64LineEncoder } from './base64-lines';
import { CAPSULE_HEADER, FORMAT_VERSION, VERSION_HEADER, formatCapsule, formatContentType } from './headers';
import { DEFAULT_LIMITS, type MimeLimits, limitError } from './limits';
import { type MessageSource, checkHeaders, parseHead, readHead, toReadable } from './source';

export const DEFAULT_CHUNK_SIZE = 64 * 1024;

/** Headers copied to the outer message in profile "message": what transport and readers need. */
export const OUTER_HEADERS: readonly string[] = [
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'date',
  'message-id',
  'subject',
  'in-reply-to',
  'references',
];

export interface EncryptOptions {
  readonly group: Group;
  readonly rng: Rng;
  readonly chunkSize?: number;
  readonly limits?: MimeLimits;
}

/** What a part selector sees of a leaf part. */
export interface PartInfo {
  readonly contentType: string;
  readonly disposition: string | null;
  readonly filename: string | null;
  /** IMAP-style part number, e.g. "2" or "1.3". */
  readonly partNumber: string;
}

export type PartSelector = (part: PartInfo) => boolean;

/** The default selector of profile "part": every attachment. */
export const selectAttachments: PartSelector = (p) => p.disposition === 'attachment';

function checkRecipients(recipients: readonly Recipient[], limits: MimeLimits): void {
  if (!Array.isArray(recipients) || recipients.length === 0)
    throw new CryptoError('bad-input', 'Cannot encrypt: at least one recipient is needed');
  if (recipients.length > limits.maxCapsules) throw limitError('the number of recipients', limits.maxCapsules, recipients.length);
}

function capsuleLines(P: Uint8Array, recipients: readonly Recipient[], opts: EncryptOptions): string[] {
  return recipients.map((r) => `${CAPSULE_HEADER}: ${formatCapsule(encapsulate(opts.group, P, r, opts.rng))}`);
}

function alreadyEncrypted(): CryptoError {
  return new CryptoError('bad-format', `Cannot encrypt: the message already carries ${CAPSULE_HEADER} headers`);
}

async function* wholeMessage(source: MessageSource, recipients: readonly Recipient[], opts: EncryptOptions): AsyncGenerator<Buffer> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  checkRecipients(recipients, limits);
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const { head, rest } = await readHead(source, limits);
  const headers = parseHead(head, limits);
  if (headers.hasHeader(CAPSULE_HEADER)) throw alreadyEncrypted();
  const secrets = new SecretScope();
  try {
    const P = secrets.hold(newMessageKey(opts.group, opts.rng));
    const contentId = opts.rng(CONTENT_ID_LENGTH);
    const sealer = new StreamSealer(secrets.contentKey(P, contentId, chunkSize));
    const outer = [
      ...headers
        .getList()
        .filter((h) => OUTER_HEADERS.includes(h.key))
        .map((h) => h.line),
      'MIME-Version: 1.0',
      `${VERSION_HEADER}: ${FORMAT_VERSION}`,
      ...capsuleLines(P, recipients, opts),
      `Content-Type: ${formatContentType({ profile: 'message', contentId, chunkSize })}`,
      'Content-Transfer-Encoding: base64',
    ];
    yield Buffer.from(`${outer.join('\r\n')}\r\n\r\n`, 'latin1');
    const b64 = new Base64LineEncoder();
    const emit = (pieces: Buffer[]) => Buffer.from(pieces.map((p) => b64.push(p)).join(''), 'latin1');
    yield emit(sealer.push(head));
    for await (const chunk of rest) {
      const out = emit(sealer.push(chunk));
      if (out.length > 0) yield out;
    }
    yield Buffer.concat([emit(sealer.finish()), Buffer.from(b64.finish(true), 'latin1')]);
  } finally {
    secrets.wipe(); // the message key and the content key: nothing of them outlives the run, also when it is abandoned
  }
}

function depthOf(node: MimeNode): number {
  let d = 0;
  for (let p = node.parentNode; p; p = p.parentNode) d++;
  return d;
}

export function partInfo(node: MimeNode): PartInfo {
  return {
    contentType: node.contentType || 'text/plain',
    disposition: node.disposition || null,
    filename: node.filename || null,
    partNumber: node.partNr ? node.partNr.join('.') : '',
  };
}

/** Checks one node against the limits; shared by encryption and decryption. */
export function checkNode(node: MimeNode, count: number, limits: MimeLimits): void {
  if (count > limits.maxParts) throw limitError('the number of MIME parts', limits.maxParts, count);
  const depth = depthOf(node);
  if (depth > limits.maxDepth) throw limitError('the MIME nesting depth', limits.maxDepth, depth);
  if (node.headers) checkHeaders(node.headers, limits, node.root ? 'the message' : `part ${partInfo(node).partNumber}`);
}

/**
 * The MIME objects of a message (mailsplit), with the splitter's own errors
 * turned into `bad-format` CryptoErrors. Our limits sit just inside
 * mailsplit's, so ours trip first with the clearer message.
 */
export async function* splitterFor(source: MessageSource, limits: MimeLimits): AsyncGenerator<SplitterChunk> {
  const splitter = new Splitter({ ignoreEmbedded: true, maxHeadSize: limits.maxHeaderBlock + 1, maxChildNodes: limits.maxParts + 1 });
  const input = toReadable(source);
  input.on('error', (err) => splitter.destroy(err));
  input.pipe(splitter);
  try {
    for await (const obj of splitter) yield obj as SplitterChunk;
  } catch (err) {
    if (err instanceof CryptoError) throw err;
    throw new CryptoError('bad-format', `Cannot parse MIME structure: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    input.unpipe(splitter);
    splitter.destroy();
  }
}

/** What happens to one entity's body: each chunk goes through `push`, and `finish` writes what is left at its end. */
export interface BodyTransform {
  push(chunk: Buffer): Buffer;
  finish(): Buffer;
}

/**
 * The part-by-part walk that encryption and decryption of parts share: the
 * message's MIME objects in order, each node checked against the limits and
 * handed to `onNode`, which says what to write for its header block (`head`;
 * nothing when absent) and, for an entity whose body it transforms, the
 * transform (`body`); every other body and boundary passes through as it is.
 */
export async function* transformParts(
  source: MessageSource,
  limits: MimeLimits,
  onNode: (node: MimeNode) => { head?: Buffer; body?: BodyTransform },
): AsyncGenerator<Buffer> {
  let current: { node: MimeNode; body: BodyTransform } | null = null;
  let nodes = 0;
  for await (const obj of splitterFor(source, limits)) {
    if (obj.type === 'body' && current && obj.node === current.node) {
      const out = current.body.push(obj.value);
      if (out.length > 0) yield out;
      continue;
    }
    if (current) {
      yield current.body.finish();
      current = null;
    }
    if (obj.type !== 'node') {
      if (obj.value) yield obj.value;
      continue;
    }
    const node = obj as MimeNode;
    checkNode(node, ++nodes, limits);
    const r = onNode(node);
    if (r.head) yield r.head;
    if (r.body) current = { node, body: r.body };
  }
  if (current) yield current.body.finish();
}

async function* chosenParts(
  source: MessageSource,
  recipients: readonly Recipient[],
  select: PartSelector,
  opts: EncryptOptions,
): AsyncGenerator<Buffer> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  checkRecipients(recipients, limits);
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const secrets = new SecretScope();
  try {
    const P = secrets.hold(newMessageKey(opts.group, opts.rng));
    let encrypted = 0;
    yield* transformParts(source, limits, (node) => {
      if (node.root) {
        if (!node.headers) throw new CryptoError('bad-format', 'Cannot encrypt: the message has no header block');
        if (node.headers.hasHeader(CAPSULE_HEADER)) throw alreadyEncrypted();
        const lines = capsuleLines(P, recipients, opts);
        for (let i = lines.length - 1; i >= 0; i--) node.headers.addFormatted(CAPSULE_HEADER.toLowerCase(), lines[i], 0);
        node.headers.addFormatted(VERSION_HEADER.toLowerCase(), `${VERSION_HEADER}: ${FORMAT_VERSION}`, 0);
        return { head: node.getHeaders() };
      }
      if (node.multipart || !select(partInfo(node))) return { head: node.getHeaders() };
      const contentId = opts.rng(CONTENT_ID_LENGTH);
      const sealer = new StreamSealer(secrets.contentKey(P, contentId, chunkSize));
      const b64 = new Base64LineEncoder();
      const emit = (pieces: Buffer[]) => Buffer.from(pieces.map((p) => b64.push(p)).join(''), 'latin1');
      encrypted++;
      const head = [
        `Content-Type: ${formatContentType({ profile: 'part', contentId, chunkSize })}`,
        'Content-Transfer-Encoding: base64',
        `Content-Disposition: attachment; filename="encrypted-part-${encrypted}.ssmax"`,
      ];
      // the part's own header block is the first plaintext of its encrypted body
      return {
        head: Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), emit(sealer.push(node.getHeaders()))]),
        body: {
          push: (chunk) => emit(sealer.push(chunk)),
          finish: () => Buffer.concat([emit(sealer.finish()), Buffer.from(b64.finish(false), 'latin1')]),
        },
      };
    });
    if (encrypted === 0) throw new CryptoError('bad-input', 'Cannot encrypt parts: no part matched the selector');
  } finally {
    secrets.wipe(); // the message key and every part's content key, also when the run is abandoned
  }
}

/** Encrypts a whole message (profile "message") to the recipients; a stream of the result. */
export function encryptMessage(source: MessageSource, recipients: readonly Recipient[], opts: EncryptOptions): Readable {
  return Readable.from(wholeMessage(source, recipients, opts), { objectMode: false });
}

/** Encrypts the chosen leaf parts (profile "part"; default: attachments); a stream of the result. */
export function encryptParts(
  source: MessageSource,
  recipients: readonly Recipient[],
  opts: EncryptOptions & { select?: PartSelector },
): Readable {
  return Readable.from(chosenParts(source, recipients, opts.select ?? selectAttachments, opts), { objectMode: false });
}
