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

/**
 * The decoder: the same output (or the same refusal) however the input is chunked. Padding may arrive split
 * between chunks ("=" at the end of one, "=" at the start of the next): a padding run that the data asks to be
 * longer is held open until the rest of it, or `finish()`, comes.
 */
export class Base64LineDecoder {
  private pending = '';
  private ended = false;
  private position = 0;
  /** Data characters (not padding) decoded or pending so far. */
  private dataChars = 0;
  /** "=" seen so far, and how many the data length asks for (1 or 2) once the first came. */
  private pads = 0;
  private padsNeeded = 0;

  constructor(private readonly what: string) {}

  private misplaced(at: number): CryptoError {
    return new CryptoError('bad-format', `Cannot decode ${this.what}: misplaced base64 padding near character ${at}`);
  }

  push(data: Uint8Array | string): Buffer {
    const text = (typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.length).toString('latin1')).replace(
      /[\r\n\t ]/g,
      '',
    );
    if (text.length === 0) return Buffer.alloc(0);
    if (this.ended) throw new CryptoError('bad-format', `Cannot decode ${this.what}: data after base64 padding`);
    // where the padding starts in this chunk: at 0 when an earlier chunk began it
    const pad = this.pads > 0 ? 0 : text.indexOf('=');
    let body = text;
    if (pad >= 0) {
      if (this.pads === 0) {
        const r = (this.dataChars + pad) % 4;
        if (r < 2) throw this.misplaced(this.position + pad);
        this.padsNeeded = r === 2 ? 2 : 1;
      }
      const run = text.slice(pad);
      if (!/^=+$/.test(run) || this.pads + run.length > this.padsNeeded) throw this.misplaced(this.position + pad);
      body = text.slice(0, pad);
      this.pads += run.length;
      if (this.pads === this.padsNeeded) this.ended = true;
    }
    if (!ALPHABET.test(body)) {
      const bad = body.search(/[^A-Za-z0-9+/]/);
      throw new CryptoError(
        'bad-format',
        `Cannot decode ${this.what}: character "${body[bad] ?? '?'}" at ${this.position + bad} is not base64`,
      );
    }
    this.position += text.length;
    this.dataChars += body.length;
    const all = this.pending + body;
    // once padding began, the data is complete: its last group decodes now
    const whole = this.pads > 0 ? all.length : all.length - (all.length % 4);
    this.pending = all.slice(whole);
    return Buffer.from(all.slice(0, whole), 'base64');
  }

  finish(): Buffer {
    // a padding run shorter than the data asks for ("QQ=" at the end): as misplaced as in one chunk
    if (this.pads > 0 && !this.ended) throw this.misplaced(this.position - this.pads);
    if (this.pending.length === 1) throw new CryptoError('bad-format', `Cannot decode ${this.what}: truncated base64`);
    const out = Buffer.from(this.pending, 'base64');
    this.pending = '';
    return out;
  }
}
