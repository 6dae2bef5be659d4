/**
 * Test helper: a small model of a MIME message and a renderer that writes the
 * same model in many encodings (transfer encoding, line wrapping, charset,
 * filename encoding, boundaries). Two renderings of one model are the same
 * message to a reader; the structural body hash must not tell them apart.
 *
 * Encoders are the libraries' (nodemailer's qp/base64, iconv-lite,
 * encoding-japanese, libmime); only the assembling of parts is by hand.
 */
import * as base64 from 'nodemailer/lib/base64';
import * as qp from 'nodemailer/lib/qp';
import iconv from 'iconv-lite';
import Encoding from 'encoding-japanese';
import libmime from 'libmime';

export interface TextLeaf {
  readonly kind: 'text';
  readonly subtype: 'plain' | 'html';
  readonly text: string;
  readonly filename?: string;
  readonly disposition?: 'inline' | 'attachment';
}
export interface BinaryLeaf {
  readonly kind: 'binary';
  readonly contentType: string;
  readonly bytes: Uint8Array;
  readonly filename?: string;
  readonly disposition?: 'inline' | 'attachment';
}
export interface Multipart {
  readonly kind: 'multipart';
  readonly subtype: 'mixed' | 'alternative' | 'related';
  readonly children: readonly Part[];
}
export interface Embedded {
  readonly kind: 'message';
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Part;
}
export type Part = TextLeaf | BinaryLeaf | Multipart | Embedded;

export interface Message {
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Part;
}

export type TransferEncoding = '7bit' | '8bit' | 'quoted-printable' | 'base64';
export type Charset = 'utf-8' | 'iso-2022-jp' | 'shift_jis' | 'euc-jp' | 'iso-8859-1';

/** Choices a relay might make differently; each call of `next` draws one. */
export interface EncodingChoices {
  /** Returns an integer in [0, n). */
  readonly pick: (n: number) => number;
}

export const CHARSETS: readonly Charset[] = ['utf-8', 'iso-2022-jp', 'shift_jis', 'euc-jp', 'iso-8859-1'];

export function encodeCharset(text: string, charset: Charset): Buffer {
  if (charset === 'utf-8') return Buffer.from(text, 'utf-8');
  if (charset === 'iso-2022-jp') return Buffer.from(Encoding.convert(Encoding.stringToCode(text), { to: 'JIS', from: 'UNICODE' }));
  return iconv.encode(text, charset);
}

export function decodeCharset(bytes: Buffer, charset: Charset): string {
  if (charset === 'iso-2022-jp') return Encoding.codeToString(Encoding.convert(Array.from(bytes), { to: 'UNICODE', from: 'JIS' }));
  return iconv.decode(bytes, charset);
}

/** Charsets that can carry `text` without loss. */
export function charsetsFor(text: string): Charset[] {
  return CHARSETS.filter((c) => c === 'utf-8' || decodeCharset(encodeCharset(text, c), c) === text);
}

function wrapLines(text: string, width: number): string {
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += width) lines.push(text.slice(i, i + width));
  return lines.join('\r\n');
}

function hasLongLine(bytes: Buffer): boolean {
  return bytes
    .toString('latin1')
    .split('\r\n')
    .some((line) => line.length > 900 || line.includes('\r') || line.includes('\n'));
}

/** Transfer-encodes `bytes`; 7bit/8bit only where the content allows it. */
function transferEncode(bytes: Buffer, isText: boolean, choices: EncodingChoices): { cte: TransferEncoding; body: string } {
  const options: TransferEncoding[] = ['quoted-printable', 'base64'];
  if (isText && !hasLongLine(bytes)) options.push(bytes.every((b) => b < 0x80) ? '7bit' : '8bit');
  const cte = options[choices.pick(options.length)] ?? 'base64';
  if (cte === 'base64') {
    const width = [76, 64, 40, 996][choices.pick(4)] ?? 76;
    return { cte, body: wrapLines(base64.encode(bytes), width) };
  }
  if (cte === 'quoted-printable') {
    const width = [76, 40, 20][choices.pick(3)] ?? 76;
    // Binary content: a CR or LF outside CRLF must be encoded, not written as a line break.
    const encoded = isText ? qp.encode(bytes) : qp.encode(bytes).replace(/\r/g, '=0D').replace(/\n/g, '=0A');
    return { cte, body: qp.wrap(encoded, width) };
  }
  return { cte, body: bytes.toString('latin1') };
}

function filenameParams(filename: string, choices: EncodingChoices): string {
  if (/^[\x20-\x7e]*$/.test(filename) && !/["\\]/.test(filename)) return `; filename="${filename}"`;
  if (choices.pick(2) === 0) {
    return libmime
      .buildHeaderParam('filename', filename, 40)
      .map((p) => `;\r\n ${p.key}=${p.value}`)
      .join('');
  }
  return `; filename="${libmime.encodeWord(filename, choices.pick(2) === 0 ? 'B' : 'Q')}"`;
}

let boundaryCounter = 0;

function renderPart(part: Part, choices: EncodingChoices): string {
  switch (part.kind) {
    case 'multipart': {
      const boundary = `b${++boundaryCounter}_${choices.pick(1_000_000)}`;
      const children = part.children.map((c) => `--${boundary}\r\n${renderPart(c, choices)}\r\n`).join('');
      const preamble = choices.pick(2) === 0 ? 'This is a multipart message.\r\n' : '';
      return `Content-Type: multipart/${part.subtype};\r\n boundary="${boundary}"\r\n\r\n${preamble}${children}--${boundary}--\r\n`;
    }
    case 'message': {
      const inner = renderMessage({ headers: part.headers, body: part.body }, choices);
      return `Content-Type: message/rfc822\r\n\r\n${inner}`;
    }
    case 'text': {
      const possible = charsetsFor(part.text);
      const charset = possible[choices.pick(possible.length)] ?? 'utf-8';
      const { cte, body } = transferEncode(encodeCharset(part.text, charset), true, choices);
      const disposition = part.disposition
        ? `Content-Disposition: ${part.disposition}${part.filename ? filenameParams(part.filename, choices) : ''}\r\n`
        : '';
      return `Content-Type: text/${part.subtype}; charset=${charset}\r\nContent-Transfer-Encoding: ${cte}\r\n${disposition}\r\n${body}`;
    }
    case 'binary': {
      const { cte, body } = transferEncode(Buffer.from(part.bytes), false, choices);
      const disposition = part.disposition
        ? `Content-Disposition: ${part.disposition}${part.filename ? filenameParams(part.filename, choices) : ''}\r\n`
        : '';
      return `Content-Type: ${part.contentType}\r\nContent-Transfer-Encoding: ${cte}\r\n${disposition}\r\n${body}`;
    }
  }
}

/** Renders a message; different choices give different bytes for the same message. */
export function renderMessage(message: Message, choices: EncodingChoices): string {
  const headers = message.headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return `${headers}MIME-Version: 1.0\r\n${renderPart(message.body, choices)}`;
}

export function render(message: Message, choices: EncodingChoices): Buffer {
  return Buffer.from(renderMessage(message, choices), 'latin1');
}

/** Deterministic choices from a seed (xorshift), for tests that are not property tests. */
export function seededChoices(seed: number): EncodingChoices {
  let state = seed >>> 0 || 1;
  return {
    pick: (n: number) => {
      state ^= state << 13;
      state >>>= 0;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      return state % n;
    },
  };
}

/** Always the first option: 7bit/8bit are not first, so this is quoted-printable, utf-8, width 76. */
export const plainChoices: EncodingChoices = { pick: () => 0 };
