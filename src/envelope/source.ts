/**
 * Message input for the format functions: bytes, a Node stream, or any async
 * iterable of byte chunks. `readHead` splits off the top-level header block
 * (bounded by the limits) and leaves the rest streaming.
 */
import { Readable } from 'node:stream';
import { Headers } from '@zone-eu/mailsplit';
import { CryptoError } from '../crypto/errors';
import { MAX_RECIPIENTS_FIELD_BYTES, type MimeLimits, RECIPIENTS_FIELD_KEY, limitError } from './limits';

export type MessageSource = Uint8Array | Readable | AsyncIterable<Uint8Array>;

export function toReadable(source: MessageSource): Readable {
  if (source instanceof Readable) return source;
  if (source instanceof Uint8Array)
    return Readable.from([Buffer.from(source.buffer, source.byteOffset, source.length)], { objectMode: false });
  if (source && typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function')
    return Readable.from(source, { objectMode: false });
  throw new CryptoError('bad-input', 'Cannot read message: expected a Uint8Array, a Readable or an async iterable of bytes');
}

/** Index just past the blank line that ends the header block, or -1; `from`: bytes before it were searched already (less 3 for a split CRLFCRLF). */
function headEnd(buf: Buffer, from = 0): number {
  if (buf[0] === 0x0a) return 1;
  if (buf[0] === 0x0d && buf[1] === 0x0a) return 2;
  const start = Math.max(0, from - 3);
  const crlf = buf.indexOf('\r\n\r\n', start);
  const lf = buf.indexOf('\n\n', start);
  if (crlf >= 0 && (lf < 0 || crlf + 2 <= lf)) return crlf + 4;
  return lf >= 0 ? lf + 2 : -1;
}

export interface SplitMessage {
  readonly head: Buffer;
  readonly rest: AsyncIterable<Buffer>;
}

export async function readHead(source: MessageSource, limits: MimeLimits): Promise<SplitMessage> {
  const it = toReadable(source)[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  // The bytes so far grow in a buffer of doubling capacity and are searched from where the last
  // search stopped: concatenating and searching from the start on every chunk is quadratic in
  // the number of small chunks.
  let store = Buffer.alloc(0);
  let size = 0;
  let searched = 0;
  for (;;) {
    const buf = store.subarray(0, size);
    const end = headEnd(buf, searched);
    if (end >= 0) {
      const leftover = buf.subarray(end);
      return { head: buf.subarray(0, end), rest: continueWith(leftover, it) };
    }
    searched = size;
    if (size > limits.maxHeaderBlock) throw limitError('the header block', limits.maxHeaderBlock, `more than ${size} bytes`);
    const next = await it.next();
    if (next.done) return { head: buf, rest: continueWith(Buffer.alloc(0), it) };
    const chunk = next.value;
    if (size + chunk.length > store.length) {
      const grown = Buffer.allocUnsafe(Math.max(size + chunk.length, store.length * 2, 4096));
      store.copy(grown, 0, 0, size);
      store = grown;
    }
    store.set(chunk, size);
    size += chunk.length;
  }
}

async function* continueWith(first: Buffer, it: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (first.length > 0) yield first;
  for (;;) {
    const next = await it.next();
    if (next.done) return;
    yield Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
  }
}

/** Parses a header block with mailsplit and checks the header limits. */
export function parseHead(head: Buffer, limits: MimeLimits, where = 'the message'): Headers {
  if (head.length > limits.maxHeaderBlock) throw limitError(`the header block of ${where}`, limits.maxHeaderBlock, `${head.length} bytes`);
  const headers = new Headers(head);
  checkHeaders(headers, limits, where);
  return headers;
}

export function checkHeaders(headers: Headers, limits: MimeLimits, where: string): void {
  const list = headers.getList();
  if (list.length > limits.maxHeaders) throw limitError(`the header count of ${where}`, limits.maxHeaders, list.length);
  for (const h of list) {
    // SSMAX-Recipients has its own bound (a copy to 1,000 recipients needs about 44 KB), every other field the configured one
    const max = h.key === RECIPIENTS_FIELD_KEY ? Math.max(limits.maxHeaderLength, MAX_RECIPIENTS_FIELD_BYTES) : limits.maxHeaderLength;
    if (h.line.length > max) throw limitError(`header "${h.key}" of ${where}`, max, `${h.line.length} bytes`);
  }
}

/** Collects a stream of buffers. */
export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}
