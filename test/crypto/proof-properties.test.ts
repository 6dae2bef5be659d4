/**
 * Properties of the two proofs (docs/format.md, "The DLEQ proof" and "The
 * re-encryption proof"): for random keys, capsules and randomness, an honest
 * proof verifies, and a change of any single byte of the answer or its proof
 * (any position, any non-zero XOR) makes it refused, never thrown.
 */
import fc from 'fast-check';
import {
  answerBlindedDecryption,
  blindForDecryption,
  blindForReencryption,
  defaultGroup,
  encapsulate,
  generateEncryptionKeyPair,
  newMessageKey,
  transformBlindedWithProof,
  verifyDleq,
  verifyReencryption,
} from '../../src/crypto';
import { seededRng } from '../support/seeded-rng';

const g = defaultGroup;
const RUNS = 60;

/** Keys, a capsule and its blinding, all from one seed. */
function world(seed: string) {
  const rng = seededRng(`proof-properties ${seed}`);
  const org = generateEncryptionKeyPair(g, rng);
  const target = generateEncryptionKeyPair(g, rng);
  const capsule = encapsulate(g, newMessageKey(g, rng), { keyId: 'org:v1', publicKey: org.publicKey }, rng);
  return { rng, org, target, capsule };
}

/** A copy of `fields` with byte `at` (counted across the fields, in order) XORed with `xor`. */
function changeOneByte(fields: Uint8Array[], at: number, xor: number): Uint8Array[] {
  const out = fields.map((f) => Uint8Array.from(f));
  let i = at % out.reduce((n, f) => n + f.length, 0);
  for (const f of out) {
    if (i < f.length) {
      f[i] = f[i]! ^ xor;
      break;
    }
    i -= f.length;
  }
  return out;
}

const seedArb = fc.string({ minLength: 1, maxLength: 16 });
const positionArb = fc.nat({ max: 65 + 65 + 32 * 3 - 1 });
const xorArb = fc.integer({ min: 1, max: 255 });

test('re-encryption: a random honest proof verifies; any single-byte change of U, V, c, s1 or s2 is refused', () => {
  fc.assert(
    fc.property(seedArb, positionArb, xorArb, (seed, at, xor) => {
      const { rng, org, target, capsule } = world(seed);
      const { request } = blindForReencryption(g, capsule, rng);
      const a = transformBlindedWithProof(g, org.privateKey, request, target.publicKey, rng, org.publicKey);
      expect(verifyReencryption(g, org.publicKey, request, target.publicKey, a)).toBe(true);
      const [u, v, c, s1, s2] = changeOneByte([a.u, a.v, a.proof.c, a.proof.s1, a.proof.s2], at, xor) as [
        Uint8Array,
        Uint8Array,
        Uint8Array,
        Uint8Array,
        Uint8Array,
      ];
      expect(verifyReencryption(g, org.publicKey, request, target.publicKey, { u, v, proof: { c, s1, s2 } })).toBe(false);
    }),
    { numRuns: RUNS },
  );
});

test("re-encryption: any single-byte change of the request (E', F') or of the target key the verifier uses is refused", () => {
  fc.assert(
    fc.property(seedArb, fc.nat({ max: 65 + 65 + 33 - 1 }), xorArb, (seed, at, xor) => {
      const { rng, org, target, capsule } = world(seed);
      const { request } = blindForReencryption(g, capsule, rng);
      const a = transformBlindedWithProof(g, org.privateKey, request, target.publicKey, rng, org.publicKey);
      const [e, f, y] = changeOneByte([request.e, request.f, target.publicKey], at, xor) as [Uint8Array, Uint8Array, Uint8Array];
      expect(verifyReencryption(g, org.publicKey, { e, f }, y, a)).toBe(false);
    }),
    { numRuns: RUNS },
  );
});

test('blinded decryption: a random honest DLEQ proof verifies; any single-byte change of Z, c or s is refused', () => {
  fc.assert(
    fc.property(seedArb, fc.nat({ max: 65 + 32 * 2 - 1 }), xorArb, (seed, at, xor) => {
      const { rng, org, capsule } = world(seed);
      const { request } = blindForDecryption(g, capsule, rng);
      const a = answerBlindedDecryption(g, org.privateKey, org.publicKey, request, rng);
      const X = g.decode(org.publicKey, 'X');
      const B = g.decode(request.e, 'B');
      expect(verifyDleq(g, X, B, g.decode(a.z, 'Z'), a.proof)).toBe(true);
      const [z, c, s] = changeOneByte([a.z, a.proof.c, a.proof.s], at, xor) as [Uint8Array, Uint8Array, Uint8Array];
      let Z;
      try {
        Z = g.decode(z, 'Z');
      } catch {
        return; // not a point any more: refused before the proof is looked at (completeBlindedDecryption)
      }
      expect(verifyDleq(g, X, B, Z, { c, s })).toBe(false);
    }),
    { numRuns: RUNS },
  );
});
