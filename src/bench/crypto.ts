/**
 * Crypto core benchmark (issue 2): capsule operations, both halves of blinded
 * re-encryption and blinded decryption, ECDSA, content encryption — beside the
 * floors measured in the same run (the backend's raw arbitrary-point
 * multiplication, node's raw AES-256-GCM).
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import * as ecc from 'tiny-secp256k1';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import {
  type Group,
  answerBlindedDecryption,
  blindForDecryption,
  blindForReencryption,
  completeBlindedDecryption,
  decapsulate,
  deriveContentKey,
  encapsulate,
  generateEncryptionKeyPair,
  generateP256KeyPair,
  defaultGroup,
  groups,
  keyIdOf,
  newMessageKey,
  StreamSealer,
  signP256,
  systemRng,
  transformBlinded,
  unblindReencryption,
  verifyP256,
} from '../crypto';
import { type BenchRow, measure } from './harness';

const rng = systemRng;

async function groupRows(group: Group): Promise<BenchRow[]> {
  const suite = `crypto/${group.name}`;
  const org = generateEncryptionKeyPair(group, rng);
  const peer = generateEncryptionKeyPair(group, rng);
  const orgR = { keyId: keyIdOf(group, org.publicKey), publicKey: org.publicKey };
  const peerId = keyIdOf(group, peer.publicKey);
  // keyd keeps its own and its targets' public keys decoded (uncompressed), as here.
  const peerPub = group.encodeUncompressed(group.decode(peer.publicKey, 'peer key'));
  const orgPub = group.encodeUncompressed(group.decode(org.publicKey, 'org key'));
  const P = newMessageKey(group, rng);
  const capsule = encapsulate(group, P, orgR, rng);
  const { request, blinding } = blindForReencryption(group, capsule, rng);
  const answer = transformBlinded(group, org.privateKey, request, peerPub, rng);
  const dec = blindForDecryption(group, capsule, rng);
  const decAnswer = answerBlindedDecryption(group, org.privateKey, orgPub, dec.request, rng);

  const rows: BenchRow[] = [];
  const add = async (name: string, fn: () => unknown, note?: string) => {
    rows.push({ suite, name, rate: await measure(fn), unit: 'ops/s', ...(note ? { note } : {}) });
  };
  await add('encapsulate', () => encapsulate(group, P, orgR, rng));
  await add('decapsulate', () => decapsulate(group, capsule, org.privateKey));
  await add('re-encryption: gateway half', () => {
    const b = blindForReencryption(group, capsule, rng);
    unblindReencryption(group, b.blinding, answer, { keyId: peerId });
  });
  await add(
    're-encryption: key-service half',
    () => transformBlinded(group, org.privateKey, request, peerPub, rng),
    'target >= 2,000 (Umbral reencrypt: 1,783)',
  );
  await add(
    're-encryption: both halves',
    () => {
      const b = blindForReencryption(group, capsule, rng);
      const a = transformBlinded(group, org.privateKey, b.request, peerPub, rng);
      unblindReencryption(group, b.blinding, a, { keyId: peerId });
    },
    'target >= 800',
  );
  void blinding;
  await add('blinded decryption: key-service half', () => answerBlindedDecryption(group, org.privateKey, orgPub, dec.request, rng));
  await add(
    'blinded decryption + proof: both halves',
    () => {
      const b = blindForDecryption(group, capsule, rng);
      const a = answerBlindedDecryption(group, org.privateKey, orgPub, b.request, rng);
      const r = completeBlindedDecryption(group, b.blinding, a, org.publicKey);
      if (!r.ok) throw new Error(r.reason);
    },
    'target >= 600',
  );
  void decAnswer;
  return rows;
}

export async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // Floors: the raw arbitrary-point multiplication of each backend.
  const k = BigInt(`0x${randomBytes(31).toString('hex')}`) + 1n;
  const kBytes = Buffer.from(k.toString(16).padStart(64, '0'), 'hex');
  const pt65 = secp256k1.Point.BASE.multiply(k).toBytes(false);
  const noblePt = secp256k1.Point.BASE.multiply(k);
  rows.push({
    suite: 'floor',
    name: 'raw k·P (tiny-secp256k1)',
    rate: await measure(() => ecc.pointMultiply(pt65, kBytes, false)),
    unit: 'ops/s',
  });
  rows.push({ suite: 'floor', name: 'raw k·P (noble)', rate: await measure(() => noblePt.multiply(k)), unit: 'ops/s' });
  if (groups.native) rows.push(...(await groupRows(groups.native)));
  rows.push(...(await groupRows(groups.libsecp256k1)));
  rows.push(...(await groupRows(groups.noble)));

  const sig = generateP256KeyPair();
  const data = randomBytes(256);
  const s = signP256(sig.privateKey, data);
  rows.push({ suite: 'crypto', name: 'ECDSA P-256 sign', rate: await measure(() => signP256(sig.privateKey, data)), unit: 'ops/s' });
  rows.push({ suite: 'crypto', name: 'ECDSA P-256 verify', rate: await measure(() => verifyP256(sig.publicKey, data, s)), unit: 'ops/s' });

  const size = 10 * 1024 * 1024;
  const plain = randomBytes(size);
  const aesKey = randomBytes(32);
  const iv = randomBytes(12);
  const oneShot = await measure(
    () => {
      const c = createCipheriv('aes-256-gcm', aesKey, iv);
      c.update(plain);
      c.final();
      c.getAuthTag();
    },
    { unitsPerCall: size / 1e6, roundMs: 600 },
  );
  rows.push({ suite: 'floor', name: 'raw AES-256-GCM (node), 10 MB in one update', rate: oneShot, unit: 'MB/s' });
  const pieces = await measure(
    () => {
      const c = createCipheriv('aes-256-gcm', aesKey, iv);
      for (let off = 0; off < size; off += 65536) c.update(plain.subarray(off, off + 65536));
      c.final();
      c.getAuthTag();
    },
    { unitsPerCall: size / 1e6, roundMs: 600 },
  );
  rows.push({ suite: 'floor', name: 'raw AES-256-GCM (node), 10 MB in 64 KiB updates', rate: pieces, unit: 'MB/s' });
  const raw = Math.max(oneShot, pieces);
  const ck = deriveContentKey(newMessageKey(defaultGroup, rng), randomBytes(16), 65536);
  // As the streams use it: 64 KiB pieces in, sealed chunks out, no concatenation.
  const streamed = await measure(
    () => {
      const sealer = new StreamSealer(ck);
      for (let off = 0; off < size; off += 65536) sealer.push(plain.subarray(off, off + 65536));
      sealer.finish();
    },
    { unitsPerCall: size / 1e6, roundMs: 600 },
  );
  rows.push({
    suite: 'crypto',
    name: 'content encryption (STREAM, 64 KiB chunks), 10 MB',
    rate: streamed,
    unit: 'MB/s',
    note: `${((streamed / raw) * 100).toFixed(0)}% of the faster raw AES-GCM floor (target >= 70%)`,
  });
  return rows;
}
