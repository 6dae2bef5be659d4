/**
 * Decrypting an SSMAX message back into the original MIME, streaming. The
 * protected entity comes back byte for byte: the whole original message
 * (profile "message"), or each original part with the rest of the message
 * as it was, less the SSMAX headers (profile "part").
 *
 * Keys: the recipient's private key (the capsule with its key id is opened),
 * or a message key already recovered, e.g. by an inspector through blinded
 * decryption.
 *
 * Plaintext is released chunk by chunk as each chunk's tag verifies; the
 * stream errors on any tampering, truncation or malformation, and the caller
 * must then discard what it received (see crypto/stream.ts).
 */
import { Readable } from 'node:stream';
import libqp from 'libqp';
import type { Headers } from '@zone-eu/mailsplit';
import { decapsulate } from '../crypto/capsule';
import { CryptoError, quote } from '../crypto/errors';
import type { Group } from '../crypto/group';
import { type ContentKey, SecretScope } from '../crypto/kdf';
import { StreamOpener } from '../crypto/stream';
import { Base64LineDecoder } from './base64-lines';
import { listCapsulesIn } from './capsules';
import { CAPSULE_HEADER, type EncryptedPartParams, VERSION_HEADER, parseContentType } from './headers';
import { DEFAULT_LIMITS, type MimeLimits, limitError } from './limits';
import { transformParts } from './encrypt';
import { type MessageSource, parseHead, readHead } from './source';

export type DecryptionKey = { readonly keyId: string; readonly privateKey: Uint8Array } | { readonly messageKey: Uint8Array };

export interface DecryptOptions {
  readonly group: Group;
  readonly limits?: MimeLimits;
}

/** Finds the message key for `key` in a top-level header block. */
export function messageKeyFor(headers: Headers, key: DecryptionKey, opts: DecryptOptions): Uint8Array {
  if ('messageKey' in key) {
    opts.group.decode(key.messageKey, 'message key');
    return key.messageKey;
  }
  const capsules = listCapsulesIn(headers, opts.limits ?? DEFAULT_LIMITS);
  if (capsules.length === 0) throw new CryptoError('bad-format', `Cannot decrypt: the message carries no ${CAPSULE_HEADER} header`);
  const mine = capsules.filter((c) => c.keyId === key.keyId);
  if (mine.length === 0)
    throw new CryptoError(
      'no-key',
      `Cannot decrypt: no capsule for key id ${quote(key.keyId)} (capsules for ${capsules.map((c) => quote(c.keyId)).join(', ')})`,
    );
  if (mine.length > 1) throw new CryptoError('bad-capsule', `Cannot decrypt: ${mine.length} capsules for key id ${quote(key.keyId)}`);
  return decapsulate(opts.group, mine[0]!, key.privateKey);
}

function contentParams(headers: Headers, where: string): EncryptedPartParams | null {
  const types = headers.get('content-type');
  if (types.length > 1) throw new CryptoError('bad-format', `Cannot decrypt: ${where} has ${types.length} Content-Type headers`);
  const line = types[0];
  if (line === undefined) return null;
  return parseContentType(line.slice(line.indexOf(':') + 1));
}

/** The longest line a quoted-printable entity may have, line break excluded (RFC 5322's line limit; RFC 2045 allows 76). */
export const MAX_QP_LINE = 998;

/**
 * Quoted-printable ciphertext (a relay may re-encode the base64 of an
 * encrypted entity; the body hash covers the decoded bytes, so the seal still
 * holds, and decryption must too), decoded as the body hash reads it: soft
 * line breaks removed, hard ones are CRLF bytes, except the entity's final
 * line end (docs/chain.md). Decoded complete line by complete line, the last
 * line break held back until more follows.
 *
 * Linear in its input however it is chunked: each byte is looked at a fixed
 * number of times (the line-length check, the search for the last line
 * break, the scan back over the final line break, the decoder), an
 * unfinished line is kept as a list of chunks rather than re-joined on every
 * push, and a line longer than MAX_QP_LINE octets is refused, so no line can
 * be carried (and rescanned) without bound.
 */
export class QuotedPrintableLines {
  private rest: Buffer[] = [];
  /** Octets of the unfinished line so far (the bytes in `rest`). */
  private restLength = 0;
  private held = '';

  push(data: Uint8Array): Buffer {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let line = this.restLength;
    let from = 0;
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, from)) {
      checkLine(line + nl - from);
      line = 0;
      from = nl + 1;
    }
    checkLine(line + buf.length - from);
    if (from === 0) {
      this.rest.push(Buffer.from(buf)); // a copy: the caller may reuse its chunk
      this.restLength += buf.length;
      return Buffer.alloc(0);
    }
    const text = this.held + Buffer.concat([...this.rest, buf.subarray(0, from)]).toString('latin1');
    this.rest = from < buf.length ? [Buffer.from(buf.subarray(from))] : [];
    this.restLength = buf.length - from;
    // The final line break with what belongs to it, scanned back from the end: `=?[ \t]*\r?\n` (a plain loop, not a pattern anchored at the end).
    let i = text.length - 1; // text ends in "\n"
    if (i > 0 && text.charCodeAt(i - 1) === 13) i--;
    while (i > 0 && (text.charCodeAt(i - 1) === 32 || text.charCodeAt(i - 1) === 9)) i--;
    if (i > 0 && text.charCodeAt(i - 1) === 61) i--;
    const lb = text.slice(i);
    this.held = lb.startsWith('=') ? '' : lb; // a soft break is no data; a hard one is, unless it is the last
    return libqp.decode(text.slice(0, i));
  }

  finish(): Buffer {
    const out = this.restLength === 0 ? Buffer.alloc(0) : libqp.decode(this.held + Buffer.concat(this.rest).toString('latin1')); // the final line end is not content
    this.rest = [];
    this.restLength = 0;
    this.held = '';
    return out;
  }
}

/** Refuses a quoted-printable line of more than MAX_QP_LINE octets (`octets` counts everything before the LF, so a CR too). */
function checkLine(octets: number): void {
  if (octets > MAX_QP_LINE + 1)
    throw limitError('a quoted-printable line of the encrypted entity', MAX_QP_LINE, `more than ${MAX_QP_LINE} octets`);
}

/** The transfer encoding of an encrypted entity: base64 (as written) or quoted-printable (re-encoded in transit); others are refused. */
function transferDecoder(headers: Headers | undefined, what: string): Base64LineDecoder | QuotedPrintableLines {
  const cte = (headers?.getFirst('content-transfer-encoding') ?? '').trim().toLowerCase();
  if (cte === '' || cte === 'base64') return new Base64LineDecoder(what);
  if (cte === 'quoted-printable') return new QuotedPrintableLines();
  throw new CryptoError(
    'bad-format',
    `Cannot decrypt: ${what} has Content-Transfer-Encoding ${quote(cte.slice(0, 40))}, expected base64 or quoted-printable`,
  );
}

class EntityOpener {
  private readonly opener: StreamOpener;
  private readonly b64: Base64LineDecoder | QuotedPrintableLines;

  constructor(key: ContentKey, what: string, headers?: Headers) {
    this.opener = new StreamOpener(key);
    this.b64 = transferDecoder(headers, what);
  }

  push(data: Uint8Array): Buffer {
    return Buffer.concat(this.opener.push(this.b64.push(data)));
  }

  finish(): Buffer {
    return Buffer.concat([...this.opener.push(this.b64.finish()), ...this.opener.finish()]);
  }
}

async function* decryptAll(source: MessageSource, key: DecryptionKey, opts: DecryptOptions): AsyncGenerator<Buffer> {
  const secrets = new SecretScope();
  try {
    yield* decryptWith(source, key, opts, secrets);
  } finally {
    secrets.wipe(); // content keys and a message key recovered here, also when the run fails or is abandoned
  }
}

async function* decryptWith(source: MessageSource, key: DecryptionKey, opts: DecryptOptions, secrets: SecretScope): AsyncGenerator<Buffer> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const { head, rest } = await readHead(source, limits);
  const headers = parseHead(head, limits);
  if (!headers.hasHeader(VERSION_HEADER))
    throw new CryptoError('bad-format', `Cannot decrypt: the message has no ${VERSION_HEADER} header`);
  const P = 'messageKey' in key ? messageKeyFor(headers, key, opts) : secrets.hold(messageKeyFor(headers, key, opts)); // a message key the caller gave stays the caller's
  const top = contentParams(headers, 'the message');
  if (top?.profile === 'message') {
    const entity = new EntityOpener(secrets.contentKey(P, top.contentId, top.chunkSize), 'the encrypted message body', headers);
    for await (const chunk of rest) {
      const out = entity.push(chunk);
      if (out.length > 0) yield out;
    }
    yield entity.finish();
    return;
  }
  yield* decryptParts(head, rest, P, limits, secrets);
}

async function* decryptParts(
  head: Buffer,
  rest: AsyncIterable<Buffer>,
  P: Uint8Array,
  limits: MimeLimits,
  secrets: SecretScope,
): AsyncGenerator<Buffer> {
  async function* whole() {
    yield head;
    yield* rest;
  }
  let opened = 0;
  yield* transformParts(whole(), limits, (node) => {
    if (node.root) {
      if (!node.headers) throw new CryptoError('bad-format', 'Cannot decrypt: the message has no header block');
      node.headers.remove(CAPSULE_HEADER);
      node.headers.remove(VERSION_HEADER);
      return { head: node.getHeaders() };
    }
    const params = node.headers ? contentParams(node.headers, `part ${node.partNr ? node.partNr.join('.') : '?'}`) : null;
    if (!params) return { head: node.getHeaders() };
    if (params.profile !== 'part')
      throw new CryptoError(
        'bad-format',
        `Cannot decrypt: an inner encrypted entity has profile ${quote(params.profile)}, expected "part"`,
      );
    opened++;
    // the encrypted body holds the part's own header block first; its outer header is dropped
    return {
      body: new EntityOpener(secrets.contentKey(P, params.contentId, params.chunkSize), 'an encrypted part', node.headers || undefined),
    };
  });
  if (opened === 0) throw new CryptoError('bad-format', 'Cannot decrypt: the message has capsules but no encrypted content');
}

/** Decrypts an SSMAX message (either profile); a stream of the original MIME. */
export function decryptMessage(source: MessageSource, key: DecryptionKey, opts: DecryptOptions): Readable {
  return Readable.from(decryptAll(source, key, opts), { objectMode: false });
}
