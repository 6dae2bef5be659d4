/**
 * The streaming base64 decoder of encrypted entities gives the same output, or
 * the same refusal, however its input is chunked — padding included: a chunk
 * may end between the two "=" of "==" (it used to be refused as "misplaced
 * base64 padding" when split there, and decoded when whole).
 */
import fc from 'fast-check';
import { CryptoError } from '../../src/crypto';
import { Base64LineDecoder } from '../../src/envelope/base64-lines';
import { collect, decryptMessage, encryptMessage } from '../../src/envelope';
import { groups } from '../../src/crypto';
import { keyring, plainMessage } from '../support/messages';
import { seededRng } from '../support/seeded-rng';

type Outcome = { ok: true; bytes: string } | { ok: false };

function decode(chunks: string[]): Outcome {
  const d = new Base64LineDecoder('the test entity');
  try {
    const out = Buffer.concat([...chunks.map((c) => d.push(Buffer.from(c, 'latin1'))), d.finish()]);
    return { ok: true, bytes: out.toString('hex') };
  } catch (err) {
    if (!(err instanceof CryptoError)) throw err;
    return { ok: false };
  }
}

function chunked(text: string, cuts: number[]): string[] {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let prev = 0;
  for (const c of [...at, text.length]) {
    out.push(text.slice(prev, c));
    prev = c;
  }
  return out;
}

describe('base64 lines of an encrypted entity', () => {
  test('any bytes, encoded in lines and cut anywhere, decode to themselves', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const text = (
          Buffer.from(bytes)
            .toString('base64')
            .match(/.{1,76}/g) ?? []
        ).join('\r\n');
        expect(decode(chunked(text, cuts))).toEqual({ ok: true, bytes: Buffer.from(bytes).toString('hex') });
      }),
      { numRuns: 500 },
    );
  });

  test('any text of base64 pieces and padding: chunked, the same output or the same refusal as whole', () => {
    const text = fc.array(fc.constantFrom('QQ', 'QUJD', 'Q', '=', '==', '\r\n', 'QUI', '*'), { maxLength: 12 }).map((a) => a.join(''));
    fc.assert(
      fc.property(text, fc.array(fc.nat(), { maxLength: 6 }), (t, cuts) => {
        expect(decode(chunked(t, cuts))).toEqual(decode([t]));
      }),
      { numRuns: 2000 },
    );
  });

  test('padding split between chunks, and padding too short or too long', () => {
    expect(decode(['QQ=', '='])).toEqual({ ok: true, bytes: '41' });
    expect(decode(['QQ=', '\r\n', '=\r\n'])).toEqual({ ok: true, bytes: '41' });
    expect(decode(['QQ=', '=', '='])).toEqual({ ok: false }); // data after the padding
    expect(decode(['QQ=', 'A='])).toEqual({ ok: false });
    expect(decode(['QQ='])).toEqual({ ok: false }); // the padding ends short
    expect(decode(['QUI=', '='])).toEqual({ ok: false });
  });

  test('an encrypted message decrypts whichever byte of its last 200 a stream chunk ends at', async () => {
    const group = groups.libsecp256k1;
    const rng = seededRng('base64-lines');
    const [org] = keyring(group, rng, 1);
    const endings = new Set<string>();
    for (let extra = 0; extra < 3; extra++) {
      const m = plainMessage(`Hello${'x'.repeat(extra)}\r\n`);
      const c = await collect(encryptMessage(m, [org!.recipient], { group, rng, chunkSize: 1024 }));
      endings.add(/(=*)\r?\n?$/.exec(c.toString('latin1'))![1]!);
      for (let at = Math.max(0, c.length - 200); at < c.length; at++) {
        async function* split() {
          yield c.subarray(0, at);
          yield c.subarray(at);
        }
        expect(await collect(decryptMessage(split(), org!.key, { group }))).toEqual(m);
      }
    }
    // the three padding forms of base64 were all met: "==", "=" and none
    expect([...endings].sort()).toEqual(['', '=', '==']);
  });
});
