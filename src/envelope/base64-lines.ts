/**
 * Streaming base64 for MIME bodies (RFC 2045 §6.8): the encoder writes lines
 * of 76 characters separated by CRLF; the decoder accepts only the base64
 * alphabet, line breaks and padding at the very end, and reports anything
 * else precisely instead of skipping it (as lenient decoders do).
 */
import { CryptoError } from '../crypto/errors';

const LINE_BYTES = 57; // 57 bytes -> 76 characters

export class Base64LineEncoder {
  private rest: Buffer = Buffer.alloc(0);
  private first = true;

  /** Returns the complete lines so far, each but the first preceded by CRLF. */
  push(data: Uint8Array): string {
    const all = this.rest.length === 0 ? Buffer.from(data.buffer, data.byteOffset, data.length) : Buffer.concat([this.rest, data]);
    const whole = all.length - (all.length % LINE_BYTES);
    this.rest = Buffer.from(all.subarray(whole));
    if (whole === 0) return '';
    const text = all.subarray(0, whole).toString('base64');
    const lines: string[] = [];
    for (let i = 0; i < text.length; i += 76) lines.push(text.slice(i, i + 76));
    const out = (this.first ? '' : '\r\n') + lines.join('\r\n');
    this.first = false;
    return out;
  }

  /** The last (short) line; `trailingNewline` ends the body with CRLF. */
  finish(trailingNewline: boolean): string {
    let out = '';
    if (this.rest.length > 0) out = (this.first ? '' : '\r\n') + this.rest.toString('base64');
    this.rest = Buffer.alloc(0);
    return trailingNewline ? `${out}\r\n` : out;
  }
}

const ALPHABET = /^[A-Za-z0-9+/]*$/;

export class Base64LineDecoder {
  private pending = '';
  private ended = false;
  private position = 0;

  constructor(private readonly what: string) {}

  push(data: Uint8Array | string): Buffer {
    const text = (typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.length).toString('latin1')).replace(
      /[\r\n\t ]/g,
      '',
    );
    if (text.length === 0) return Buffer.alloc(0);
    if (this.ended) throw new CryptoError('bad-format', `Cannot decode ${this.what}: data after base64 padding`);
    const pad = text.indexOf('=');
    let body = text;
    if (pad >= 0) {
      if (!/^={1,2}$/.test(text.slice(pad)) || (this.pending.length + pad) % 4 === 0 || (this.pending.length + text.length) % 4 !== 0) {
        throw new CryptoError('bad-format', `Cannot decode ${this.what}: misplaced base64 padding near character ${this.position + pad}`);
      }
      body = text.slice(0, pad);
      this.ended = true;
    }
    if (!ALPHABET.test(body)) {
      const bad = body.search(/[^A-Za-z0-9+/]/);
      throw new CryptoError(
        'bad-format',
        `Cannot decode ${this.what}: character "${body[bad] ?? '?'}" at ${this.position + bad} is not base64`,
      );
    }
    this.position += text.length;
    const all = this.pending + body;
    const whole = this.ended ? all.length : all.length - (all.length % 4);
    this.pending = all.slice(whole);
    return Buffer.from(all.slice(0, whole), 'base64');
  }

  finish(): Buffer {
    if (this.pending.length === 1) throw new CryptoError('bad-format', `Cannot decode ${this.what}: truncated base64`);
    const out = Buffer.from(this.pending, 'base64');
    this.pending = '';
    return out;
  }
}
