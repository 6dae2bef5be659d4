import fc from 'fast-check';
import {
  type Capsule,
  CryptoError,
  answerBlindedDecryption,
  blindForDecryption,
  blindForReencryption,
  completeBlindedDecryption,
  decapsulate,
  deriveContentKey,
  encapsulate,
  generateEncryptionKeyPair,
  groups,
  keyIdOf,
  newMessageKey,
  openContent,
  sealContent,
  transformBlinded,
  unblindReencryption,
} from '../../src/crypto';
import { flipBit, seededRng } from '../support/seeded-rng';

describe.each(Object.values(groups))('encryption chain on $name', (g) => {
  const rng = seededRng(`chain-${g.name}`);
  const keys = Array.from({ length: 6 }, () => generateEncryptionKeyPair(g, rng));
  const recipient = (i: number) => ({ keyId: keyIdOf(g, keys[i]!.publicKey), publicKey: keys[i]!.publicKey });

  test('decapsulate(encapsulate(P)) = P', () => {
    const P = newMessageKey(g, rng);
    const c = encapsulate(g, P, recipient(0), rng);
    expect(c.keyId).toBe(recipient(0).keyId);
    expect(decapsulate(g, c, keys[0]!.privateKey)).toEqual(P);
    expect(decapsulate(g, c, keys[1]!.privateKey)).not.toEqual(P);
  });

  test('property: a chain of 1-5 blinded re-encryptions across random keys delivers the message key and the content', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 2, maxLength: 6 }),
        fc.uint8Array({ maxLength: 3000 }),
        fc.integer(),
        (path, content, seed) => {
          const r = seededRng(`p${seed}`);
          const P = newMessageKey(g, r);
          const cid = r(16);
          const ct = sealContent(deriveContentKey(P, cid, 1024), content);
          let capsule: Capsule = encapsulate(g, P, recipient(path[0]!), r);
          for (let hop = 1; hop < path.length; hop++) {
            const { request, blinding } = blindForReencryption(g, capsule, r);
            const answer = transformBlinded(g, keys[path[hop - 1]!]!.privateKey, request, keys[path[hop]!]!.publicKey, r);
            capsule = unblindReencryption(g, blinding, answer, recipient(path[hop]!));
          }
          const last = path[path.length - 1]!;
          const recovered = decapsulate(g, capsule, keys[last]!.privateKey);
          expect(recovered).toEqual(P);
          expect(openContent(deriveContentKey(recovered, cid, 1024), ct)).toEqual(Buffer.from(content));
        },
      ),
      { numRuns: g.name === 'noble' ? 8 : 40 },
    );
  });

  test('the key service sees a fresh blinding every call: blinded capsules and answers never repeat', () => {
    const P = newMessageKey(g, rng);
    const c = encapsulate(g, P, recipient(0), rng);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const { request } = blindForReencryption(g, c, rng);
      const d = blindForDecryption(g, c, rng);
      for (const v of [request.e, request.f, d.request.e]) seen.add(Buffer.from(v).toString('hex'));
    }
    expect(seen.size).toBe(30);
  });

  test('a re-encryption made with the wrong private key does not deliver the message key', () => {
    const P = newMessageKey(g, rng);
    const c = encapsulate(g, P, recipient(0), rng);
    const { request, blinding } = blindForReencryption(g, c, rng);
    const answer = transformBlinded(g, keys[2]!.privateKey, request, keys[1]!.publicKey, rng);
    expect(decapsulate(g, unblindReencryption(g, blinding, answer, recipient(1)), keys[1]!.privateKey)).not.toEqual(P);
  });

  describe('blinded decryption with a DLEQ proof', () => {
    const P = newMessageKey(g, rng);
    const c = encapsulate(g, P, recipient(0), rng);

    test('the inspector recovers the message key when the proof verifies', () => {
      const { request, blinding } = blindForDecryption(g, c, rng);
      const answer = answerBlindedDecryption(g, keys[0]!.privateKey, undefined, request, rng);
      expect(completeBlindedDecryption(g, blinding, answer, keys[0]!.publicKey)).toEqual({ ok: true, messageKey: P });
    });

    test('a key service answering with another key is detected', () => {
      const { request, blinding } = blindForDecryption(g, c, rng);
      const answer = answerBlindedDecryption(g, keys[3]!.privateKey, undefined, request, rng);
      const r = completeBlindedDecryption(g, blinding, answer, keys[0]!.publicKey);
      expect(r).toEqual({ ok: false, reason: expect.stringMatching(/proof does not verify/) });
    });

    test('a wrong answer point or any flipped proof bit is detected', () => {
      const { request, blinding } = blindForDecryption(g, c, rng);
      const answer = answerBlindedDecryption(g, keys[0]!.privateKey, keys[0]!.publicKey, request, rng);
      const other = answerBlindedDecryption(g, keys[0]!.privateKey, keys[0]!.publicKey, blindForDecryption(g, c, rng).request, rng);
      expect(completeBlindedDecryption(g, blinding, { ...answer, z: other.z }, keys[0]!.publicKey).ok).toBe(false);
      for (const bit of [0, 7, 100, 255]) {
        expect(
          completeBlindedDecryption(
            g,
            blinding,
            { ...answer, proof: { ...answer.proof, c: flipBit(answer.proof.c, bit) } },
            keys[0]!.publicKey,
          ).ok,
        ).toBe(false);
        expect(
          completeBlindedDecryption(
            g,
            blinding,
            { ...answer, proof: { ...answer.proof, s: flipBit(answer.proof.s, bit) } },
            keys[0]!.publicKey,
          ).ok,
        ).toBe(false);
      }
      const z = flipBit(answer.z, 300);
      expect(completeBlindedDecryption(g, blinding, { ...answer, z }, keys[0]!.publicKey)).toEqual({
        ok: false,
        reason: expect.stringMatching(/not a point|proof does not verify/),
      });
    });

    test('malformed answers give a result, not an exception', () => {
      const { blinding } = blindForDecryption(g, c, rng);
      for (const bad of [null, {}, { z: new Uint8Array(65), proof: null }, { z: 'x', proof: { c: 1, s: 2 } }]) {
        expect(completeBlindedDecryption(g, blinding, bad as never, keys[0]!.publicKey).ok).toBe(false);
      }
    });
  });

  test('a flipped bit in a capsule point is refused or yields a key that fails the content tag', () => {
    const P = newMessageKey(g, rng);
    const cid = rng(16);
    const ct = sealContent(deriveContentKey(P, cid, 1024), new Uint8Array(100).fill(9));
    const c = encapsulate(g, P, recipient(0), rng);
    for (const field of ['e', 'f'] as const) {
      for (let bit = 0; bit < 33 * 8; bit += 13) {
        const bad = { ...c, [field]: flipBit(c[field], bit) };
        let err: unknown;
        try {
          openContent(deriveContentKey(decapsulate(g, bad, keys[0]!.privateKey), cid, 1024), ct);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(CryptoError);
        expect(['bad-capsule', 'bad-point', 'auth-failed']).toContain((err as CryptoError).code);
      }
    }
  });
});
