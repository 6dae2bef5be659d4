/**
 * Builds the proof test vectors (docs/format.md, "The DLEQ proof" and "The
 * re-encryption proof") from a seeded RNG. test/vectors/crypto/proofs-v1.json
 * was written once by
 *   SSMAX_WRITE_VECTORS=1 npx jest test/crypto/proof-vectors.test.ts
 * and is pinned: the test checks every backend reproduces it byte for byte,
 * recomputes each value from the pinned inputs by the equations of the
 * format, and checks every negative vector is refused.
 *
 * A negative vector is a complete verification input (org key, blinded
 * request, target key, answer) with exactly one thing changed from the
 * positive vector; `change` says what.
 */
import {
  type Group,
  ORDER,
  answerBlindedDecryption,
  blindForDecryption,
  blindForReencryption,
  encapsulate,
  generateEncryptionKeyPair,
  keyIdOf,
  newMessageKey,
  transformBlindedWithProof,
} from '../../src/crypto';
import { hex, seededRng, unhex } from './seeded-rng';

/** Adds the generator G to a point (33- or 65-byte encoding): another valid point, in the same encoding. */
function plusG(group: Group, bytes: Uint8Array): Uint8Array {
  const p = group.add(group.decode(bytes, 'point'), group.mulBase(1n));
  return bytes.length === 65 ? group.encodeUncompressed(p) : group.encode(p);
}

/** Adds 1 mod n to a 32-byte scalar: another scalar in range, so a verifier's range check alone cannot refuse it. */
function plusOne(bytes: Uint8Array): Uint8Array {
  const k = (BigInt(`0x${hex(bytes)}`) + 1n) % ORDER || 1n;
  return unhex(k.toString(16).padStart(64, '0'));
}

export interface ReencryptionVectorInput {
  orgPublicKey: string;
  request: { e: string; f: string };
  targetPublicKey: string;
  answer: { u: string; v: string; c: string; s1: string; s2: string };
}

export interface DleqVectorInput {
  orgPublicKey: string;
  b: string;
  z: string;
  c: string;
  s: string;
}

export async function buildProofVectors(group: Group): Promise<Record<string, unknown>> {
  const seeded = seededRng('ssmax-proof-vectors-v1');
  // every random draw, in order, per step (as in vectors-v1.json): a 32-byte draw is a scalar, used if in [1, n-1]
  const draws: Record<string, string[]> = {};
  let step = 'keys (org x, target y, other org, other target)';
  const rng = (length: number): Uint8Array => {
    const bytes = seeded(length);
    (draws[step] ??= []).push(hex(bytes));
    return bytes;
  };
  const org = generateEncryptionKeyPair(group, rng);
  const target = generateEncryptionKeyPair(group, rng);
  const otherOrg = generateEncryptionKeyPair(group, rng);
  const otherTarget = generateEncryptionKeyPair(group, rng);
  step = 'capsule (messageKey p, then e)';
  const capsule = encapsulate(group, newMessageKey(group, rng), { keyId: keyIdOf(group, org.publicKey), publicKey: org.publicKey }, rng);

  step = 'reencryption gateway blinding k';
  const { request } = blindForReencryption(group, capsule, rng);
  step = 'reencryption key service u, then proof nonces r1, r2';
  const proved = transformBlindedWithProof(group, org.privateKey, request, target.publicKey, rng, org.publicKey);
  const [u, r1, r2] = draws[step]!;
  if (draws[step]!.length !== 3) throw new Error('a draw was out of range: pin the vector differently');
  step = 'reencryption by another org key: u, r1, r2';
  const liar = transformBlindedWithProof(group, otherOrg.privateKey, request, target.publicKey, rng, otherOrg.publicKey);
  step = 'reencryption to another target: u, r1, r2';
  const toOther = transformBlindedWithProof(group, org.privateKey, request, otherTarget.publicKey, rng, org.publicKey);

  step = 'blinded decryption inspector blinding k';
  const { request: dreq } = blindForDecryption(group, capsule, rng);
  step = 'blinded decryption DLEQ nonce r';
  const answer = answerBlindedDecryption(group, org.privateKey, org.publicKey, dreq, rng);
  const [r] = draws[step]!;
  if (draws[step]!.length !== 1) throw new Error('a draw was out of range: pin the vector differently');
  step = 'blinded decryption by another org key: r';
  const dliar = answerBlindedDecryption(group, otherOrg.privateKey, otherOrg.publicKey, dreq, rng);

  const reenc: ReencryptionVectorInput = {
    orgPublicKey: hex(org.publicKey),
    request: { e: hex(request.e), f: hex(request.f) },
    targetPublicKey: hex(target.publicKey),
    answer: { u: hex(proved.u), v: hex(proved.v), c: hex(proved.proof.c), s1: hex(proved.proof.s1), s2: hex(proved.proof.s2) },
  };
  const reencWith = (change: string, edit: (v: ReencryptionVectorInput) => void) => {
    const v = JSON.parse(JSON.stringify(reenc)) as ReencryptionVectorInput;
    edit(v);
    return { change, ...v };
  };
  const scalarField = (name: 'c' | 's1' | 's2') => (v: ReencryptionVectorInput) => {
    v.answer[name] = hex(plusOne(unhex(v.answer[name])));
  };
  const dleq: DleqVectorInput = {
    orgPublicKey: hex(org.publicKey),
    b: hex(dreq.e),
    z: hex(answer.z),
    c: hex(answer.proof.c),
    s: hex(answer.proof.s),
  };
  const dleqWith = (change: string, edit: (v: DleqVectorInput) => void) => {
    const v = { ...dleq };
    edit(v);
    return { change, ...v };
  };

  return {
    keys: {
      org: { privateKey: hex(org.privateKey), publicKey: hex(org.publicKey) },
      target: { privateKey: hex(target.privateKey), publicKey: hex(target.publicKey) },
      otherOrg: { privateKey: hex(otherOrg.privateKey), publicKey: hex(otherOrg.publicKey) },
      otherTarget: { privateKey: hex(otherTarget.privateKey), publicKey: hex(otherTarget.publicKey) },
    },
    reencryptionProof: {
      inputs: {
        privateKey: hex(org.privateKey),
        orgPublicKey: reenc.orgPublicKey,
        request: reenc.request,
        targetPublicKey: reenc.targetPublicKey,
        u,
        r1,
        r2,
      },
      expected: reenc.answer,
      negative: [
        reencWith('c + 1', scalarField('c')),
        reencWith('s1 + 1', scalarField('s1')),
        reencWith('s2 + 1', scalarField('s2')),
        reencWith('U + G', (v) => (v.answer.u = hex(plusG(group, unhex(v.answer.u))))),
        reencWith('V + G', (v) => (v.answer.v = hex(plusG(group, unhex(v.answer.v))))),
        reencWith("E' + G (another request)", (v) => (v.request.e = hex(plusG(group, unhex(v.request.e))))),
        reencWith("F' + G (another request)", (v) => (v.request.f = hex(plusG(group, unhex(v.request.f))))),
        reencWith('wrong target key: verified against another target than the answer was made for', (v) => {
          v.targetPublicKey = hex(otherTarget.publicKey);
        }),
        reencWith('made for another target (with a proof consistent for it), verified against the target asked', (v) => {
          v.answer = {
            u: hex(toOther.u),
            v: hex(toOther.v),
            c: hex(toOther.proof.c),
            s1: hex(toOther.proof.s1),
            s2: hex(toOther.proof.s2),
          };
        }),
        reencWith('wrong org key: verified against another org key than the answer was made with', (v) => {
          v.orgPublicKey = hex(otherOrg.publicKey);
        }),
        reencWith('made with another org key (with a proof consistent for it), verified against the certified one', (v) => {
          v.answer = { u: hex(liar.u), v: hex(liar.v), c: hex(liar.proof.c), s1: hex(liar.proof.s1), s2: hex(liar.proof.s2) };
        }),
      ],
    },
    dleqProof: {
      inputs: { privateKey: hex(org.privateKey), orgPublicKey: dleq.orgPublicKey, b: dleq.b, r },
      expected: { z: dleq.z, c: dleq.c, s: dleq.s },
      negative: [
        dleqWith('c + 1', (v) => (v.c = hex(plusOne(unhex(v.c))))),
        dleqWith('s + 1', (v) => (v.s = hex(plusOne(unhex(v.s))))),
        dleqWith('Z + G', (v) => (v.z = hex(plusG(group, unhex(v.z))))),
        dleqWith('B + G (another request)', (v) => (v.b = hex(plusG(group, unhex(v.b))))),
        dleqWith('wrong org key: verified against another org key than the answer was made with', (v) => {
          v.orgPublicKey = hex(otherOrg.publicKey);
        }),
        dleqWith('made with another org key (with a proof consistent for it), verified against the certified one', (v) => {
          Object.assign(v, { z: hex(dliar.z), c: hex(dliar.proof.c), s: hex(dliar.proof.s) });
        }),
      ],
    },
    randomness: draws,
  };
}
