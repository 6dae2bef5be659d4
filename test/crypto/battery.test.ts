/**
 * Wrong-type and boundary battery: every exported function of the crypto core
 * and the format, given values of the wrong type or at the edges, fails with a
 * CryptoError (or, for verifiers, returns a negative result) — never a
 * TypeError from deep inside, never a silent success.
 */
import * as C from '../../src/crypto';
import * as F from '../../src/envelope';
import { seededRng } from '../support/seeded-rng';

const g = C.groups.libsecp256k1;
const rng = seededRng('battery');
const kp = C.generateEncryptionKeyPair(g, rng);
const recipient = { keyId: 'k1', publicKey: kp.publicKey };
const P = C.newMessageKey(g, rng);
const capsule = C.encapsulate(g, P, recipient, rng);

const wrong: unknown[] = [
  undefined,
  null,
  0,
  1.5,
  -1,
  'string',
  true,
  {},
  [],
  new Uint8Array(0),
  new Uint8Array(31),
  new Uint8Array(34),
  new Uint8Array(33),
  new Uint8Array(65),
  Symbol('s'),
  () => 1,
  10n,
];

const calls: Record<string, (v: unknown) => unknown> = {
  'decodeScalar(v)': (v) => C.decodeScalar(v as Uint8Array, 'x'),
  'encodeScalar(v)': (v) => C.encodeScalar(v as bigint),
  'invertScalar(v)': (v) => C.invertScalar(v as bigint),
  'encodeScalar(n)': () => C.encodeScalar(C.ORDER),
  'invertScalar(0)': () => C.invertScalar(0n),
  'publicKeyOf(v)': (v) => C.publicKeyOf(g, v as Uint8Array),
  'keyIdOf(v)': (v) => C.keyIdOf(g, v as Uint8Array),
  'assertKeyId(v)': (v) => C.assertKeyId(v),
  'encapsulate(P=v)': (v) => C.encapsulate(g, v as Uint8Array, recipient, rng),
  'encapsulate(key=v)': (v) => C.encapsulate(g, P, { keyId: 'k1', publicKey: v as Uint8Array }, rng),
  'encapsulate(keyId=v)': (v) => C.encapsulate(g, P, { keyId: v as string, publicKey: kp.publicKey }, rng),
  'decapsulate(capsule=v)': (v) => C.decapsulate(g, v as C.Capsule, kp.privateKey),
  'decapsulate(capsule.e=v)': (v) => C.decapsulate(g, { ...capsule, e: v as Uint8Array }, kp.privateKey),
  'decapsulate(privateKey=v)': (v) => C.decapsulate(g, capsule, v as Uint8Array),
  'deriveContentKey(P=v)': (v) => C.deriveContentKey(v as Uint8Array, new Uint8Array(16), 1024),
  'deriveContentKey(cid=v)': (v) => C.deriveContentKey(P, v as Uint8Array, 1024),
  'deriveContentKey(chunk=v)': (v) => C.deriveContentKey(P, new Uint8Array(16), v as number),
  'blindForReencryption(v)': (v) => C.blindForReencryption(g, v as C.Capsule, rng),
  'transformBlinded(request=v)': (v) => C.transformBlinded(g, kp.privateKey, v as C.BlindedCapsule, kp.publicKey, rng),
  'transformBlinded(request.e=v)': (v) => C.transformBlinded(g, kp.privateKey, { e: v as Uint8Array, f: capsule.f }, kp.publicKey, rng),
  'transformBlinded(target=v)': (v) => C.transformBlinded(g, kp.privateKey, capsule, v as Uint8Array, rng),
  'transformBlinded(privateKey=v)': (v) => C.transformBlinded(g, v as Uint8Array, capsule, kp.publicKey, rng),
  'unblindReencryption(answer=v)': (v) => C.unblindReencryption(g, { kInverse: 3n }, v as C.TransformedCapsule, { keyId: 'k' }),
  'unblindReencryption(keyId=v)': (v) => C.unblindReencryption(g, { kInverse: 3n }, { u: capsule.e, v: capsule.f }, { keyId: v as string }),
  'blindForDecryption(v)': (v) => C.blindForDecryption(g, v as C.Capsule, rng),
  'answerBlindedDecryption(request=v)': (v) => C.answerBlindedDecryption(g, kp.privateKey, undefined, v as C.BlindedDecryptionRequest, rng),
  'answerBlindedDecryption(publicKey=v)': (v) =>
    v === undefined
      ? C.answerBlindedDecryption(g, kp.privateKey, null as never, { e: capsule.e }, rng)
      : C.answerBlindedDecryption(g, kp.privateKey, v as Uint8Array, { e: capsule.e }, rng),
  'new StreamSealer(v)': (v) => new C.StreamSealer(v as C.ContentKey),
  'StreamSealer.push(v)': (v) => new C.StreamSealer(C.deriveContentKey(P, new Uint8Array(16), 1024)).push(v as Uint8Array),
  'StreamOpener.push(v)': (v) => new C.StreamOpener(C.deriveContentKey(P, new Uint8Array(16), 1024)).push(v as Uint8Array),
  'parseCapsule(v)': (v) => F.parseCapsule(v as string),
  'group.decode(v)': (v) => g.decode(v as Uint8Array, 'v'),
  'group.mul(k=v)': (v) => g.mul(g.mulBase(2n), v as bigint),
};

/** Values from `wrong` that are in fact valid for a call (so it must accept them). */
const isBigScalar = (v: unknown) => typeof v === 'bigint' && v > 0n;
const isBytes = (v: unknown) => v instanceof Uint8Array;
const validFor: Record<string, (v: unknown) => boolean> = {
  'encodeScalar(v)': isBigScalar,
  'invertScalar(v)': isBigScalar,
  'group.mul(k=v)': isBigScalar,
  'StreamSealer.push(v)': isBytes, // any bytes are plaintext
  'StreamOpener.push(v)': isBytes, // authentication is checked per chunk and at finish
  'unblindReencryption(keyId=v)': (v) => v === 'string', // a well-formed key id
  'assertKeyId(v)': (v) => v === 'string',
  'encapsulate(keyId=v)': (v) => v === 'string',
  'parseCapsule(v)': (v) => typeof v !== 'string', // header values are strings by type
};

describe('every exported function refuses wrong types and boundary values with a CryptoError', () => {
  test.each(Object.keys(calls))('%s', (name) => {
    const call = calls[name]!;
    for (const v of wrong.filter((x) => !(validFor[name]?.(x) ?? false))) {
      let accepted = false;
      try {
        call(v);
        accepted = true;
      } catch (e) {
        if (!(e instanceof C.CryptoError))
          throw new Error(`${name} with ${String(typeof v === 'symbol' ? 'symbol' : v)}: ${String(e)}`, { cause: e });
      }
      expect({ name, value: typeof v === 'symbol' ? 'symbol' : String(v), accepted }).toEqual({
        name,
        value: typeof v === 'symbol' ? 'symbol' : String(v),
        accepted: false,
      });
    }
  });

  test('verifiers return a negative result instead of throwing', () => {
    const X = g.mulBase(5n);
    for (const v of wrong) {
      expect(C.verifyDleq(g, X, X, X, v as C.DleqProof)).toBe(false);
      expect(C.verifyDleq(g, X, X, X, { c: v as Uint8Array, s: v as Uint8Array })).toBe(false);
      const { blinding } = C.blindForDecryption(g, capsule, rng);
      expect(C.completeBlindedDecryption(g, blinding, v as C.BlindedDecryptionResponse, kp.publicKey).ok).toBe(false);
      expect(
        C.completeBlindedDecryption(
          g,
          blinding,
          { z: v as Uint8Array, proof: { c: new Uint8Array(32), s: new Uint8Array(32) } },
          kp.publicKey,
        ).ok,
      ).toBe(false);
    }
  });

  test('the message functions refuse wrong sources and recipients', async () => {
    for (const v of [null, 42, 'text', {}]) {
      await expect(F.collect(F.encryptMessage(v as never, [recipient], { group: g, rng }))).rejects.toBeInstanceOf(C.CryptoError);
      await expect(F.collect(F.decryptMessage(v as never, { messageKey: P }, { group: g }))).rejects.toBeInstanceOf(C.CryptoError);
    }
    for (const r of [[], null, [{ keyId: 'a b', publicKey: kp.publicKey }], [{ keyId: 'k', publicKey: new Uint8Array(33) }]]) {
      await expect(F.collect(F.encryptMessage(Buffer.from('From: a\r\n\r\nx'), r as never, { group: g, rng }))).rejects.toBeInstanceOf(
        C.CryptoError,
      );
    }
    await expect(F.collect(F.replaceCapsules(Buffer.from('From: a\r\n\r\nx'), []))).rejects.toThrow(/at least one capsule/);
    await expect(F.collect(F.replaceCapsules(Buffer.from('From: a\r\n\r\nx'), [capsule]))).rejects.toThrow(/no SSMAX-Version header/);
    await expect(
      F.collect(F.decryptMessage(Buffer.from('From: a\r\n\r\nx'), { keyId: 'k1', privateKey: kp.privateKey }, { group: g })),
    ).rejects.toThrow(/no SSMAX-Version header/);
  });
});
