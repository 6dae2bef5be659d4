/**
 * Pinned vectors of the two proofs keyd attaches to its answers (docs/format.md,
 * "The DLEQ proof" and "The re-encryption proof"): every backend reproduces them
 * from the same randomness, an independent computation from the format's
 * equations (noble's points and SHA-512, not the crypto core) gives the same
 * values, the verifiers accept them, and refuse every negative vector.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { groups, verifyDleq, verifyReencryption } from '../../src/crypto';
import { buildProofVectors } from '../support/proof-vectors';
import { unhex } from '../support/seeded-rng';

const file = join(__dirname, '..', 'vectors', 'crypto', 'proofs-v1.json');

const writing = process.env.SSMAX_WRITE_VECTORS === '1';
if (writing) {
  test('write the proof vectors (run once, then pin)', async () => {
    writeFileSync(file, `${JSON.stringify(await buildProofVectors(groups.libsecp256k1), null, 2)}\n`);
  });
}

/* eslint-disable @typescript-eslint/no-explicit-any */
// the cases are named after the pinned negative vectors, so the file is read when the suite is defined (not when writing it)
const pinned: any = writing ? { reencryptionProof: { negative: [] }, dleqProof: { negative: [] } } : JSON.parse(readFileSync(file, 'utf8'));

const Point = secp256k1.Point;
const N = Point.Fn.ORDER;
const G = Point.BASE;
const scalar = (h: string) => BigInt(`0x${h}`);
const hex32 = (k: bigint) => k.toString(16).padStart(64, '0');
const pt = (h: string) => Point.fromHex(h);
const unc = (p: InstanceType<typeof Point>) => Buffer.from(p.toBytes(false)).toString('hex');

/** The format's challenge: SHA-512 over each item prefixed with its uint32 BE length, points 33-byte compressed, mod n, 0 taken as 1. */
function challenge(label: string, points: InstanceType<typeof Point>[]): bigint {
  const h = sha512.create();
  for (const item of [new TextEncoder().encode(label), ...[G, ...points].map((p) => p.toBytes(true))]) {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, item.length);
    h.update(len).update(item);
  }
  const k = BigInt(`0x${Buffer.from(h.digest()).toString('hex')}`) % N;
  return k === 0n ? 1n : k;
}

const reencAnswer = (a: any) => ({ u: unhex(a.u), v: unhex(a.v), proof: { c: unhex(a.c), s1: unhex(a.s1), s2: unhex(a.s2) } });

(writing ? describe.skip : describe)('the proof vectors hold as equations, computed independently of the crypto core', () => {
  test('re-encryption proof: U, V, c, s1, s2 from x, E′, F′, Y, u, r1, r2', () => {
    const i = pinned.reencryptionProof.inputs;
    const x = scalar(i.privateKey);
    const [u, r1, r2] = [scalar(i.u), scalar(i.r1), scalar(i.r2)];
    const X = G.multiply(x);
    expect(Buffer.from(X.toBytes(true)).toString('hex')).toBe(i.orgPublicKey);
    const [E, F, Y] = [pt(i.request.e), pt(i.request.f), pt(i.targetPublicKey)];
    const U = G.multiply(u);
    const V = F.subtract(E.multiply(x)).add(Y.multiply(u));
    const T1 = G.multiply(r1);
    const T2 = G.multiply(r2);
    const T3 = Y.multiply(r2).subtract(E.multiply(r1));
    const c = challenge('SSMAX-v1 reencryption-proof', [X, E, F, Y, U, V, T1, T2, T3]);
    expect({
      u: unc(U),
      v: unc(V),
      c: hex32(c),
      s1: hex32((r1 + c * x) % N),
      s2: hex32((r2 + c * u) % N),
    }).toEqual(pinned.reencryptionProof.expected);
    // the answer is a re-encryption: it opens, under the target's key, to the same k·P that F′ − x·E′ is
    const y = scalar(pinned.keys.target.privateKey);
    expect(V.subtract(U.multiply(y)).equals(F.subtract(E.multiply(x)))).toBe(true);
  });

  test('DLEQ proof: Z, c, s from x, B, r', () => {
    const i = pinned.dleqProof.inputs;
    const x = scalar(i.privateKey);
    const r = scalar(i.r);
    const X = G.multiply(x);
    const B = pt(i.b);
    const Z = B.multiply(x);
    const c = challenge('SSMAX-v1 dleq', [X, B, Z, G.multiply(r), B.multiply(r)]);
    expect({ z: unc(Z), c: hex32(c), s: hex32((r + c * x) % N) }).toEqual(pinned.dleqProof.expected);
  });

  test('every negative vector differs from the positive one', () => {
    const positive = JSON.stringify({ ...pinned.reencryptionProof.inputs, answer: pinned.reencryptionProof.expected });
    for (const v of pinned.reencryptionProof.negative) expect(JSON.stringify(v)).not.toBe(positive);
    expect(pinned.reencryptionProof.negative.length).toBeGreaterThanOrEqual(11);
    expect(pinned.dleqProof.negative.length).toBeGreaterThanOrEqual(6);
  });
});

(writing ? describe.skip : describe).each(Object.values(groups))('proof vectors on $name', (g) => {
  test('the backend reproduces every vector byte for byte from the same randomness', async () => {
    expect(await buildProofVectors(g)).toEqual(pinned);
  });

  test('verifyReencryption accepts the positive vector', () => {
    const i = pinned.reencryptionProof.inputs;
    expect(
      verifyReencryption(
        g,
        unhex(i.orgPublicKey),
        { e: unhex(i.request.e), f: unhex(i.request.f) },
        unhex(i.targetPublicKey),
        reencAnswer(pinned.reencryptionProof.expected),
      ),
    ).toBe(true);
  });

  test.each((pinned.reencryptionProof.negative as any[]).map((v: any): [string, any] => [v.change, v]))(
    'verifyReencryption refuses: %s',
    (_change, v: any) => {
      expect(
        verifyReencryption(
          g,
          unhex(v.orgPublicKey),
          { e: unhex(v.request.e), f: unhex(v.request.f) },
          unhex(v.targetPublicKey),
          reencAnswer(v.answer),
        ),
      ).toBe(false);
    },
  );

  const dleq = (v: any) =>
    verifyDleq(g, g.decode(unhex(v.orgPublicKey), 'X'), g.decode(unhex(v.b), 'B'), g.decode(unhex(v.z), 'Z'), {
      c: unhex(v.c),
      s: unhex(v.s),
    });

  test('verifyDleq accepts the positive vector', () => {
    const i = pinned.dleqProof.inputs;
    expect(dleq({ orgPublicKey: i.orgPublicKey, b: i.b, ...pinned.dleqProof.expected })).toBe(true);
  });

  test.each((pinned.dleqProof.negative as any[]).map((v: any): [string, any] => [v.change, v]))(
    'verifyDleq refuses: %s',
    (_change, v: any) => {
      expect(dleq(v)).toBe(false);
    },
  );
});
