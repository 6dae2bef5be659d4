/**
 * Streaming chunked AES-256-GCM content encryption: the STREAM construction
 * (Hoang, Reyhanitabar, Rogaway, Vizár 2015). Plaintext is cut into chunks of
 * `chunkSize` bytes (the last one shorter, possibly empty); chunk i is sealed
 * with nonce = noncePrefix(7) || i (uint32 BE) || lastFlag(1) and carries its
 * 16-byte tag. Hence:
 *  - a flipped bit anywhere fails that chunk's tag;
 *  - reordered chunks fail (the counter is in the nonce);
 *  - a chunk from another message fails (another content key);
 *  - truncation at a chunk boundary fails (the new last chunk was sealed
 *    with lastFlag = 0), and so does appending anything after the last chunk.
 *
 * Memory is bounded by one chunk plus what the caller hands in at once.
 * Decrypted chunks are released as soon as their own tag verifies: a consumer
 * must treat the output as provisional until `finish()` (or the stream's end)
 * succeeds, and discard it on error.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CryptoError, assertBytes } from './errors';
import type { ContentKey } from './kdf';

export const TAG_LENGTH = 16;
const MAX_CHUNKS = 0xffffffff;

function nonce(key: ContentKey, counter: number, last: boolean): Buffer {
  const n = Buffer.allocUnsafe(12);
  n.set(key.noncePrefix, 0);
  n.writeUInt32BE(counter, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/** A FIFO of byte chunks that hands out exact lengths without quadratic copying. */
class ByteQueue {
  private parts: Buffer[] = [];
  length = 0;

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.parts.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
    this.length += data.length;
  }

  /** Removes and returns the first `n` bytes (n <= length). */
  take(n: number): Buffer {
    const first = this.parts[0];
    if (first && first.length === n) {
      this.parts.shift();
      this.length -= n;
      return first;
    }
    if (first && first.length > n) {
      this.parts[0] = first.subarray(n);
      this.length -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const part = this.parts[0];
      if (!part) break;
      const want = n - filled;
      if (part.length <= want) {
        out.set(part, filled);
        filled += part.length;
        this.parts.shift();
      } else {
        out.set(part.subarray(0, want), filled);
        this.parts[0] = part.subarray(want);
        filled += want;
      }
    }
    this.length -= n;
    return out;
  }
}

function checkKey(key: ContentKey): void {
  if (key === null || typeof key !== 'object') throw new CryptoError('bad-input', 'Cannot use content key: expected an object');
  assertBytes(key.key, 'content key', 32);
  assertBytes(key.noncePrefix, 'nonce prefix', 7);
}

/** Incremental encryptor: push plaintext, collect ciphertext pieces, then finish. */
export class StreamSealer {
  private readonly queue = new ByteQueue();
  private counter = 0;
  private done = false;

  constructor(private readonly key: ContentKey) {
    checkKey(key);
  }

  push(plaintext: Uint8Array): Buffer[] {
    if (this.done) throw new CryptoError('bad-input', 'Cannot encrypt: the stream is already finished');
    assertBytes(plaintext, 'plaintext');
    this.queue.push(plaintext);
    const out: Buffer[] = [];
    // Keep at least one byte back: a full chunk is sealed as "not last" only
    // once we know more data follows it.
    while (this.queue.length > this.key.chunkSize) out.push(...this.seal(this.queue.take(this.key.chunkSize), false));
    return out;
  }

  finish(): Buffer[] {
    if (this.done) throw new CryptoError('bad-input', 'Cannot encrypt: the stream is already finished');
    this.done = true;
    return this.seal(this.queue.take(this.queue.length), true);
  }

  private seal(chunk: Buffer, last: boolean): Buffer[] {
    if (this.counter >= MAX_CHUNKS) throw new CryptoError('limit', 'Cannot encrypt: more than 2^32-1 chunks');
    const cipher = createCipheriv('aes-256-gcm', this.key.key, nonce(this.key, this.counter++, last));
    const body = cipher.update(chunk);
    cipher.final();
    return [body, cipher.getAuthTag()];
  }
}

/** Incremental decryptor: push ciphertext, collect provisional plaintext, then finish. */
export class StreamOpener {
  private readonly queue = new ByteQueue();
  private counter = 0;
  private done = false;
  private readonly unit: number;

  constructor(private readonly key: ContentKey) {
    checkKey(key);
    this.unit = key.chunkSize + TAG_LENGTH;
  }

  push(ciphertext: Uint8Array): Buffer[] {
    if (this.done) throw new CryptoError('bad-input', 'Cannot decrypt: the stream is already finished');
    assertBytes(ciphertext, 'ciphertext');
    this.queue.push(ciphertext);
    const out: Buffer[] = [];
    while (this.queue.length > this.unit) out.push(this.open(this.queue.take(this.unit), false));
    return out;
  }

  finish(): Buffer[] {
    if (this.done) throw new CryptoError('bad-input', 'Cannot decrypt: the stream is already finished');
    this.done = true;
    if (this.queue.length < TAG_LENGTH) {
      throw new CryptoError(
        'auth-failed',
        `Cannot decrypt content: truncated (final chunk ${this.counter} has ${this.queue.length} bytes, less than a tag)`,
      );
    }
    // One encoding per plaintext (docs/format.md): a plaintext of k full chunks ends with a full
    // chunk marked last, never with an extra empty one; only the empty plaintext is one empty chunk.
    if (this.queue.length === TAG_LENGTH && this.counter > 0) {
      throw new CryptoError(
        'bad-format',
        `Cannot decrypt content: an empty final chunk after ${this.counter} full chunks (the plaintext is an exact multiple of the chunk size: its last full chunk must be the final one)`,
      );
    }
    return [this.open(this.queue.take(this.queue.length), true)];
  }

  private open(unit: Buffer, last: boolean): Buffer {
    const index = this.counter++;
    const decipher = createDecipheriv('aes-256-gcm', this.key.key, nonce(this.key, index, last));
    decipher.setAuthTag(unit.subarray(unit.length - TAG_LENGTH));
    const body = decipher.update(unit.subarray(0, unit.length - TAG_LENGTH));
    try {
      decipher.final();
    } catch {
      throw new CryptoError(
        'auth-failed',
        `Cannot decrypt content: chunk ${index} failed authentication (tampered, truncated, reordered or wrong key)`,
      );
    }
    return body;
  }
}

function toTransform(engine: { push(d: Uint8Array): Buffer[]; finish(): Buffer[] }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      try {
        for (const piece of engine.push(chunk)) this.push(piece);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        for (const piece of engine.finish()) this.push(piece);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

/** A Transform stream: plaintext in, ciphertext out. */
export function createSealStream(key: ContentKey): Transform {
  return toTransform(new StreamSealer(key));
}

/** A Transform stream: ciphertext in, plaintext out; errors on any tampering. */
export function createOpenStream(key: ContentKey): Transform {
  return toTransform(new StreamOpener(key));
}

/** The ciphertext length for a plaintext length. */
export function sealedLength(plaintextLength: number, chunkSize: number): number {
  const chunks = Math.max(1, Math.ceil(plaintextLength / chunkSize));
  return plaintextLength + chunks * TAG_LENGTH;
}

/** One-shot encryption of a buffer. */
export function sealContent(key: ContentKey, plaintext: Uint8Array): Buffer {
  const s = new StreamSealer(key);
  return Buffer.concat([...s.push(plaintext), ...s.finish()]);
}

/** One-shot decryption of a buffer; throws `auth-failed` on any tampering. */
export function openContent(key: ContentKey, ciphertext: Uint8Array): Buffer {
  const o = new StreamOpener(key);
  return Buffer.concat([...o.push(ciphertext), ...o.finish()]);
}
