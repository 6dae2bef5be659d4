/**
 * The re-encryption proof (docs/format.md, "The re-encryption proof"): a key
 * service's answer is accepted only if it was made with the organisation key
 * the verifier took from the bundle, for the target it asked for.
 */
import {
  blindForReencryption,
  decapsulate,
  encapsulate,
  generateEncryptionKeyPair,
  groups,
  newMessageKey,
  systemRng,
  transformBlinded,
  transformBlindedWithProof,
  unblindReencryption,
  verifyReencryption,
} from '../../src/crypto';

const g = groups.libsecp256k1;
const org = generateEncryptionKeyPair(g, systemRng);
const liar = generateEncryptionKeyPair(g, systemRng);
const bob = generateEncryptionKeyPair(g, systemRng);
const eve = generateEncryptionKeyPair(g, systemRng);

function setup() {
  const P = newMessageKey(g, systemRng);
  const capsule = encapsulate(g, P, { keyId: 'org:v1', publicKey: org.publicKey }, systemRng);
  const { request, blinding } = blindForReencryption(g, capsule, systemRng);
  return { P, request, blinding };
}

test('an honest answer verifies against the certified key and the target asked, and opens to the message key', () => {
  const { P, request, blinding } = setup();
  const answer = transformBlindedWithProof(g, org.privateKey, request, bob.publicKey, systemRng, org.publicKey);
  expect(verifyReencryption(g, org.publicKey, request, bob.publicKey, answer)).toBe(true);
  const forBob = unblindReencryption(g, blinding, answer, { keyId: 'bob' });
  expect(Buffer.from(decapsulate(g, forBob, bob.privateKey))).toEqual(Buffer.from(P));
  // without the known public key too
  expect(
    verifyReencryption(
      g,
      org.publicKey,
      request,
      bob.publicKey,
      transformBlindedWithProof(g, org.privateKey, request, bob.publicKey, systemRng),
    ),
  ).toBe(true);
});

test('made with another key (with a proof consistent for that key), or for another target, it is refused', () => {
  const { request } = setup();
  const lie = transformBlindedWithProof(g, liar.privateKey, request, bob.publicKey, systemRng);
  expect(verifyReencryption(g, liar.publicKey, request, bob.publicKey, lie)).toBe(true); // consistent, for the liar's key
  expect(verifyReencryption(g, org.publicKey, request, bob.publicKey, lie)).toBe(false); // not for the certified one
  const toEve = transformBlindedWithProof(g, org.privateKey, request, eve.publicKey, systemRng);
  expect(verifyReencryption(g, org.publicKey, request, bob.publicKey, toEve)).toBe(false);
});

test('a forged, swapped, missing or malformed proof is refused, never thrown', () => {
  const { request } = setup();
  const answer = transformBlindedWithProof(g, org.privateKey, request, bob.publicKey, systemRng);
  const flip = (u: Uint8Array) => {
    const c = Uint8Array.from(u);
    c[c.length - 1]! ^= 1;
    return c;
  };
  expect(
    verifyReencryption(g, org.publicKey, request, bob.publicKey, { ...answer, proof: { ...answer.proof, s1: flip(answer.proof.s1) } }),
  ).toBe(false);
  expect(
    verifyReencryption(g, org.publicKey, request, bob.publicKey, { ...answer, proof: { ...answer.proof, s2: flip(answer.proof.s2) } }),
  ).toBe(false);
  expect(
    verifyReencryption(g, org.publicKey, request, bob.publicKey, { ...answer, proof: { ...answer.proof, c: flip(answer.proof.c) } }),
  ).toBe(false);
  const plain = transformBlinded(g, org.privateKey, request, bob.publicKey, systemRng); // a correct answer, another u: the proof does not carry over
  expect(verifyReencryption(g, org.publicKey, request, bob.publicKey, { ...plain, proof: answer.proof })).toBe(false);
  expect(verifyReencryption(g, org.publicKey, request, bob.publicKey, plain)).toBe(false);
  expect(
    verifyReencryption(g, org.publicKey, request, bob.publicKey, {
      ...answer,
      proof: { c: new Uint8Array(3), s1: answer.proof.s1, s2: answer.proof.s2 },
    }),
  ).toBe(false);
  expect(verifyReencryption(g, org.publicKey, request, bob.publicKey, { ...answer, u: new Uint8Array(65) })).toBe(false);
  expect(
    verifyReencryption(g, org.publicKey, request, bob.publicKey, {
      ...answer,
      proof: { c: new Uint8Array(32), s1: new Uint8Array(32), s2: new Uint8Array(32) },
    }),
  ).toBe(false);
});
