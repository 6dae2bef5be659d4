/**
 * Adding and removing the chain's header fields on a raw message.
 *
 * Guarantees: prepending never touches the bytes after the new field (a seal
 * goes on top, as ARC/DKIM fields do); removal rewrites only the root header
 * block (mailsplit's joiner rebuilds the message otherwise byte for byte).
 */
import { Joiner, Splitter, type SplitterChunk } from '@zone-eu/mailsplit';
import type { Transform } from 'node:stream';
import { USER_SIGNATURE_HEADER } from './tags';

/** The message with `field` (CRLF-folded, no final line break) added as its first header field. */
export function prependField(message: Uint8Array, field: string): Buffer {
  const raw = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const firstLf = raw.indexOf(0x0a);
  // Keep the message's own line ending style (a bare-LF spool file stays bare LF).
  const bareLf = firstLf > 0 && raw[firstLf - 1] !== 0x0d;
  const text = bareLf ? `${field.replace(/\r\n/g, '\n')}\n` : `${field}\r\n`;
  return Buffer.concat([Buffer.from(text, 'latin1'), raw]);
}

/**
 * Removes every SSMAX-User-Signature field from the root header block: the
 * sending gateway does this after verifying it, so the user's certificate is
 * not shown outside the organisation (docs/protocol.md, "Authentication chain"; SSMAX §2.2).
 */
export function removeUserSignature(message: Uint8Array): Promise<Buffer> {
  if (!(message instanceof Uint8Array)) throw new TypeError('Cannot remove the user signature: expected a Uint8Array');
  return new Promise((resolve, reject) => {
    const splitter = new Splitter({ ignoreEmbedded: true });
    const joiner = new Joiner();
    const out: Buffer[] = [];
    let seenRoot = false;
    const splitStream = splitter as unknown as Transform;
    const joinStream = joiner as unknown as Transform;
    splitter.on('data', (chunk: SplitterChunk) => {
      if (chunk.type === 'node' && !seenRoot) {
        seenRoot = true;
        if (chunk.headers) chunk.headers.remove(USER_SIGNATURE_HEADER);
      }
      joinStream.write(chunk);
    });
    splitStream.on('end', () => joinStream.end());
    splitStream.on('error', reject);
    joinStream.on('data', (chunk: Buffer) => out.push(chunk));
    joinStream.on('end', () => resolve(Buffer.concat(out)));
    joinStream.on('error', reject);
    splitter.end(Buffer.from(message.buffer, message.byteOffset, message.byteLength));
  });
}
