import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decapsulate, deriveContentKey, groups, openContent, verifyDleq } from '../../src/crypto';
import { collect, decryptMessage } from '../../src/envelope';
import { buildVectors } from '../support/crypto-vectors';
import { unhex } from '../support/seeded-rng';

const file = join(__dirname, '..', 'vectors', 'crypto', 'vectors-v1.json');

if (process.env.SSMAX_WRITE_VECTORS === '1') {
  test('write the vectors (run once, then pin)', async () => {
    writeFileSync(file, `${JSON.stringify(await buildVectors(groups.libsecp256k1), null, 2)}\n`);
  });
}

describe.each(Object.values(groups))('pinned vectors on $name', (g) => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let pinned: any;
  beforeAll(() => {
    pinned = JSON.parse(readFileSync(file, 'utf8'));
  });

  test('the backend reproduces every vector byte for byte from the same randomness', async () => {
    expect(await buildVectors(g)).toEqual(pinned);
  });

  test('the vectors hold as equations, independently of the generator', async () => {
    const org = pinned.keys.org;
    const peer = pinned.keys.peer;
    const c = { keyId: pinned.capsule.keyId, e: unhex(pinned.capsule.e), f: unhex(pinned.capsule.f) };
    expect(decapsulate(g, c, unhex(org.privateKey))).toEqual(unhex(pinned.capsule.messageKey));
    const n = pinned.reencryption.newCapsule;
    expect(decapsulate(g, { keyId: n.keyId, e: unhex(n.e), f: unhex(n.f) }, unhex(peer.privateKey))).toEqual(
      unhex(pinned.capsule.messageKey),
    );
    const d = pinned.blindedDecryption;
    const X = g.decode(unhex(org.publicKey), 'X');
    expect(
      verifyDleq(g, X, g.decode(unhex(d.request.e), 'B'), g.decode(unhex(d.answer.z), 'Z'), { c: unhex(d.answer.c), s: unhex(d.answer.s) }),
    ).toBe(true);
    // the pinned random scalars reproduce the values an independent implementation must compute
    const draw = (step: string) => BigInt(`0x${pinned.randomness[step][0]}`);
    const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    expect(Buffer.from(g.encode(g.mulBase(draw('capsule e (E = e·G, F = P + e·X)'))))).toEqual(unhex(pinned.capsule.e));
    expect(Buffer.from(g.encode(g.mulBase(draw('messageKey p (P = p·G)'))))).toEqual(unhex(pinned.capsule.messageKey));
    const s = (draw('blinded decryption DLEQ nonce r') + BigInt(`0x${d.answer.c}`) * BigInt(`0x${org.privateKey}`)) % N;
    expect(s.toString(16).padStart(64, '0')).toBe(d.answer.s);
    for (const v of pinned.content) {
      expect(openContent(deriveContentKey(unhex(pinned.capsule.messageKey), unhex(v.contentId), v.chunkSize), unhex(v.ciphertext))).toEqual(
        Buffer.from(v.plaintext, 'hex'),
      );
    }
    const opened = await collect(
      decryptMessage(
        Buffer.from(pinned.message.encrypted, 'latin1'),
        { keyId: org.keyId, privateKey: unhex(org.privateKey) },
        { group: g },
      ),
    );
    expect(opened.toString('latin1')).toBe(pinned.message.plaintext);
  });
});
