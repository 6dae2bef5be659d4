/**
 * The curve and signature work of one SSMAX hop at the gateway, in process:
 * blinding the capsule for keyd, checking keyd's re-encryption proof,
 * unblinding its answer, verifying the arriving seal's P-256 signature and
 * signing the gateway's own. Whatever else a hop costs, a gateway does at
 * least this per message on top of what Haraka does to relay it, so the
 * ratios bench (ratios.ts) reports how far the hop-against-relay ratios could
 * go on this machine: measured here, in the same run, never typed in.
 */
import {
  type Group,
  blindForReencryption,
  encapsulate,
  generateEncryptionKeyPair,
  newMessageKey,
  systemRng,
  transformBlindedWithProof,
  unblindReencryption,
  verifyReencryption,
} from '../crypto';
import { generateP256KeyPair, signP256, verifyP256 } from '../crypto/ecdsa';
import { measure } from './harness';

/** A seal's signing input is a few hundred bytes: its tags and the earlier seals' (src/chain/seal.ts). */
const SIGNING_INPUT_BYTES = 600;

/** The gateway's own curve and signature work per hop message, in µs (the sum of its steps, each measured alone). */
export async function hopCryptoUs(g: Group): Promise<number> {
  const org = generateEncryptionKeyPair(g, systemRng);
  const member = generateEncryptionKeyPair(g, systemRng);
  const orgKey = g.encodeUncompressed(g.decode(org.publicKey, 'org key'));
  const target = g.encodeUncompressed(g.decode(member.publicKey, 'target key'));
  const capsule = encapsulate(g, newMessageKey(g, systemRng), { keyId: 'b.example:v1', publicKey: org.publicKey }, systemRng);
  // keyd's answers made beforehand (keyd's half is not the gateway's work), cycled through by the steps that need one
  const answered = Array.from({ length: 64 }, () => {
    const { request, blinding } = blindForReencryption(g, capsule, systemRng);
    return { request, blinding, answer: transformBlindedWithProof(g, org.privateKey, request, target, systemRng, orgKey) };
  });
  let i = 0;
  const next = () => answered[i++ % answered.length]!;
  const sealKey = generateP256KeyPair();
  const input = new Uint8Array(SIGNING_INPUT_BYTES).fill(7);
  const signature = signP256(sealKey.privateKey, input);
  const steps: (() => unknown)[] = [
    () => blindForReencryption(g, capsule, systemRng),
    () => {
      const a = next();
      if (!verifyReencryption(g, orgKey, a.request, target, a.answer)) throw new Error('bench: a proof made here did not verify');
    },
    () => {
      const a = next();
      return unblindReencryption(g, a.blinding, a.answer, { keyId: 'member-1' });
    },
    () => verifyP256(sealKey.publicKey, input, signature),
    () => signP256(sealKey.privateKey, input),
  ];
  let us = 0;
  for (const step of steps) us += 1e6 / (await measure(step, { roundMs: 200, rounds: 3 }));
  return us;
}
