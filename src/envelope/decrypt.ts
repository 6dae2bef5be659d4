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
import type { MimeNode } from '@zone-eu/mailsplit/lib/types';
import type { Headers } from '@zone-eu/mailsplit';
import { decapsulate } from '../crypto/capsule';
import { CryptoError, quote } from '../crypto/errors';
import type { Group } from '../crypto/group';
import { type ContentKey, deriveContentKey } from '../crypto/kdf';
import { StreamOpener } from '../crypto/stream';
import { Base64LineDecoder } from './base64-lines';
import { listCapsulesIn } from './capsules';
import { CAPSULE_HEADER, type EncryptedPartParams, VERSION_HEADER, parseContentType } from './headers';
import { DEFAULT_LIMITS, type MimeLimits } from './limits';
import { checkNode, splitterFor } from './encrypt';
import { type MessageSource, parseHead, readHead } from './source';

export type DecryptionKey =
  | { readonly keyId: string; readonly privateKey: Uint8Array }
  | { readonly messageKey: Uint8Array };

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
  if (mine.length === 0) throw new CryptoError('no-key', `Cannot decrypt: no capsule for key id ${quote(key.keyId)} (capsules for ${capsules.map((c) => quote(c.keyId)).join(', ')})`);
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

class EntityOpener {
  private readonly opener: StreamOpener;
  private readonly b64: Base64LineDecoder;

  constructor(key: ContentKey, what: string) {
    this.opener = new StreamOpener(key);
    this.b64 = new Base64LineDecoder(what);
  }

  push(data: Uint8Array): Buffer {
    return Buffer.concat(this.opener.push(this.b64.push(data)));
  }

  finish(): Buffer {
    return Buffer.concat([...this.opener.push(this.b64.finish()), ...this.opener.finish()]);
  }
}

async function* decryptAll(source: MessageSource, key: DecryptionKey, opts: DecryptOptions): AsyncGenerator<Buffer> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const { head, rest } = await readHead(source, limits);
  const headers = parseHead(head, limits);
  if (!headers.hasHeader(VERSION_HEADER)) throw new CryptoError('bad-format', `Cannot decrypt: the message has no ${VERSION_HEADER} header`);
  const P = messageKeyFor(headers, key, opts);
  const top = contentParams(headers, 'the message');
  if (top?.profile === 'message') {
    const entity = new EntityOpener(deriveContentKey(P, top.contentId, top.chunkSize), 'the encrypted message body');
    for await (const chunk of rest) {
      const out = entity.push(chunk);
      if (out.length > 0) yield out;
    }
    yield entity.finish();
    return;
  }
  yield* decryptParts(head, rest, P, limits);
}

async function* decryptParts(head: Buffer, rest: AsyncIterable<Buffer>, P: Uint8Array, limits: MimeLimits): AsyncGenerator<Buffer> {
  async function* whole() {
    yield head;
    yield* rest;
  }
  let current: { node: MimeNode; entity: EntityOpener } | null = null;
  let nodes = 0;
  let opened = 0;
  for await (const obj of splitterFor(whole(), limits)) {
    if (obj.type === 'body' && current && obj.node === current.node) {
      const out = current.entity.push(obj.value);
      if (out.length > 0) yield out;
      continue;
    }
    if (current) {
      yield current.entity.finish();
      current = null;
    }
    if (obj.type !== 'node') {
      if (obj.value) yield obj.value;
      continue;
    }
    const node = obj as MimeNode;
    checkNode(node, ++nodes, limits);
    if (node.root) {
      if (!node.headers) throw new CryptoError('bad-format', 'Cannot decrypt: the message has no header block');
      node.headers.remove(CAPSULE_HEADER);
      node.headers.remove(VERSION_HEADER);
      yield node.getHeaders();
      continue;
    }
    const params = node.headers ? contentParams(node.headers, `part ${node.partNr ? node.partNr.join('.') : '?'}`) : null;
    if (params) {
      if (params.profile !== 'part') throw new CryptoError('bad-format', `Cannot decrypt: an inner encrypted entity has profile ${quote(params.profile)}, expected "part"`);
      current = { node, entity: new EntityOpener(deriveContentKey(P, params.contentId, params.chunkSize), 'an encrypted part') };
      opened++;
      continue;
    }
    yield node.getHeaders();
  }
  if (current) yield current.entity.finish();
  if (opened === 0) throw new CryptoError('bad-format', 'Cannot decrypt: the message has capsules but no encrypted content');
}

/** Decrypts an SSMAX message (either profile); a stream of the original MIME. */
export function decryptMessage(source: MessageSource, key: DecryptionKey, opts: DecryptOptions): Readable {
  return Readable.from(decryptAll(source, key, opts), { objectMode: false });
}
