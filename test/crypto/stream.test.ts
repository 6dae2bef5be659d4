import fc from 'fast-check';
import { createCipheriv } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CryptoError,
  TAG_LENGTH,
  createOpenStream,
  createSealStream,
  deriveContentKey,
  groups,
  newMessageKey,
  openContent,
  sealContent,
  sealedLength,
} from '../../src/crypto';
import { flipBit, seededRng } from '../support/seeded-rng';

const rng = seededRng('stream');
const P = newMessageKey(groups.libsecp256k1, rng);
const key = deriveContentKey(P, rng(16), 1024);
const expectAuthFailure = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CryptoError);
    expect((err as CryptoError).code).toBe('auth-failed');
    return;
  }
  throw new Error('expected an authentication failure');
};

describe('STREAM chunked AES-256-GCM', () => {
  test('property: round trip for any length, and the ciphertext length is as documented', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), (plain) => {
        const ct = sealContent(key, plain);
        expect(ct.length).toBe(sealedLength(plain.length, 1024));
        expect(openContent(key, ct)).toEqual(Buffer.from(plain));
      }),
      { numRuns: 60 },
    );
  });

  test('exact multiples of the chunk size, and the empty plaintext, round-trip', () => {
    for (const n of [0, 1024, 2048, 1023, 1025]) expect(openContent(key, sealContent(key, new Uint8Array(n).fill(3))).length).toBe(n);
  });

  test('an exact multiple has one encoding: full chunks, the last marked final; k full chunks plus an empty final one is refused', () => {
    const plain = new Uint8Array(2048).fill(7);
    const gcm = (chunk: Uint8Array, i: number, last: boolean) => {
      const nonce = Buffer.concat([Buffer.from(key.noncePrefix), Buffer.from([0, 0, 0, i, last ? 1 : 0])]);
      const c = createCipheriv('aes-256-gcm', key.key, nonce);
      return Buffer.concat([c.update(chunk), c.final(), c.getAuthTag()]);
    };
    // the canonical form, built by hand, is what sealContent makes: the counter starts at 0
    const canonical = Buffer.concat([gcm(plain.subarray(0, 1024), 0, false), gcm(plain.subarray(1024), 1, true)]);
    expect(sealContent(key, plain)).toEqual(canonical);
    const other = Buffer.concat([
      gcm(plain.subarray(0, 1024), 0, false),
      gcm(plain.subarray(1024), 1, false),
      gcm(new Uint8Array(0), 2, true),
    ]);
    expect(() => openContent(key, other)).toThrow(/empty final chunk after 2 full chunks/);
    expect(openContent(key, sealContent(key, new Uint8Array(0)))).toHaveLength(0); // the empty plaintext: one empty chunk
  });

  test('property: any single-bit change in a chunk or a tag fails authentication', () => {
    const ct = sealContent(key, new Uint8Array(3000).fill(1));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: ct.length * 8 - 1 }), (bit) => expectAuthFailure(() => openContent(key, flipBit(ct, bit)))),
      { numRuns: 200 },
    );
  });

  test('truncation at a chunk boundary, mid-chunk, and to nothing fails', () => {
    const ct = sealContent(key, new Uint8Array(3000).fill(1));
    const unit = 1024 + TAG_LENGTH;
    for (const len of [unit, 2 * unit, unit + 100, 10, 0]) expectAuthFailure(() => openContent(key, ct.subarray(0, len)));
  });

  test('reordered chunks fail', () => {
    const ct = sealContent(
      key,
      new Uint8Array(3000).map((_, i) => i),
    );
    const unit = 1024 + TAG_LENGTH;
    const swapped = Buffer.concat([ct.subarray(unit, 2 * unit), ct.subarray(0, unit), ct.subarray(2 * unit)]);
    expectAuthFailure(() => openContent(key, swapped));
  });

  test('a chunk swapped in from another message fails', () => {
    const other = deriveContentKey(newMessageKey(groups.libsecp256k1, rng), rng(16), 1024);
    const a = sealContent(key, new Uint8Array(3000).fill(1));
    const b = sealContent(other, new Uint8Array(3000).fill(1));
    const unit = 1024 + TAG_LENGTH;
    expectAuthFailure(() => openContent(key, Buffer.concat([a.subarray(0, unit), b.subarray(unit, 2 * unit), a.subarray(2 * unit)])));
  });

  test('anything appended after the last chunk fails', () => {
    const ct = sealContent(key, new Uint8Array(3000).fill(1));
    expectAuthFailure(() => openContent(key, Buffer.concat([ct, Buffer.from([0])])));
    expectAuthFailure(() => openContent(key, Buffer.concat([ct, ct])));
  });

  test('the same content under another content id or chunk size does not open', () => {
    const ct = sealContent(key, new Uint8Array(100).fill(1));
    expectAuthFailure(() => openContent(deriveContentKey(P, rng(16), 1024), ct));
    expectAuthFailure(() => openContent({ ...deriveContentKey(P, new Uint8Array(16), 2048), chunkSize: 1024 }, ct));
  });

  test('Node streams: piecewise input of odd sizes round-trips and tampering errors the pipeline', async () => {
    const plain = Buffer.from(rng(10000));
    const pieces: Buffer[] = [];
    for (let off = 0; off < plain.length; off += 333) pieces.push(plain.subarray(off, off + 333));
    const collect = (into: Buffer[]) => async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) into.push(c);
    };
    const ct: Buffer[] = [];
    await pipeline(Readable.from(pieces), createSealStream(key), collect(ct));
    const out: Buffer[] = [];
    await pipeline(Readable.from([Buffer.concat(ct)]), createOpenStream(key), collect(out));
    expect(Buffer.concat(out)).toEqual(plain);
    const bad = flipBit(Buffer.concat(ct), 5000 * 8);
    await expect(pipeline(Readable.from([Buffer.from(bad)]), createOpenStream(key), collect([]))).rejects.toThrow(/failed authentication/);
  });
});
