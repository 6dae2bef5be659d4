/**
 * Builds the crypto and format test vectors from a seeded RNG. The files under
 * test/vectors/crypto/ were written once by
 *   SSMAX_WRITE_VECTORS=1 npx jest test/crypto/vectors.test.ts
 * and are pinned: the test checks both backends reproduce them byte for byte.
 */
import {
  type Group,
  answerBlindedDecryption,
  blindForDecryption,
  blindForReencryption,
  deriveContentKey,
  encapsulate,
  generateEncryptionKeyPair,
  keyIdOf,
  newMessageKey,
  sealContent,
  transformBlinded,
  unblindReencryption,
} from '../../src/crypto';
import { collect, encryptMessage } from '../../src/envelope';
import { hex, seededRng } from './seeded-rng';
import { plainMessage } from './messages';

export async function buildVectors(group: Group): Promise<Record<string, unknown>> {
  const seeded = seededRng('ssmax-vectors-v1');
  // Every random draw, in order, per step: pinned in the file ("randomness") so that an independent
  // implementation can reproduce each vector (a 32-byte draw is a scalar, big-endian, used if in [1, n-1]).
  const draws: Record<string, string[]> = {};
  let step = 'keys';
  const rng = (length: number): Uint8Array => {
    const bytes = seeded(length);
    (draws[step] ??= []).push(hex(bytes));
    return bytes;
  };
  const org = generateEncryptionKeyPair(group, rng);
  const peer = generateEncryptionKeyPair(group, rng);
  const orgId = keyIdOf(group, org.publicKey);
  const peerId = keyIdOf(group, peer.publicKey);
  step = 'messageKey p (P = p·G)';
  const P = newMessageKey(group, rng);
  step = 'capsule e (E = e·G, F = P + e·X)';
  const capsule = encapsulate(group, P, { keyId: orgId, publicKey: org.publicKey }, rng);

  step = 'reencryption gateway blinding k';
  const blind = blindForReencryption(group, capsule, rng);
  step = 'reencryption key service u';
  const transformed = transformBlinded(group, org.privateKey, blind.request, peer.publicKey, rng);
  const moved = unblindReencryption(group, blind.blinding, transformed, { keyId: peerId });

  step = 'blinded decryption inspector blinding k';
  const dblind = blindForDecryption(group, capsule, rng);
  step = 'blinded decryption DLEQ nonce r';
  const answer = answerBlindedDecryption(group, org.privateKey, org.publicKey, dblind.request, rng);

  step = 'content (content id, then plaintext, per vector)';
  const content = [0, 100, 2048, 2500].map((len) => {
    const cid = rng(16);
    const plaintext = rng(len);
    return {
      contentId: hex(cid),
      chunkSize: 1024,
      plaintext: hex(plaintext),
      ciphertext: hex(sealContent(deriveContentKey(P, cid, 1024), plaintext)),
    };
  });

  const msg = plainMessage('Vector body.\r\n');
  step = 'message (p, content id, capsule e)';
  const encrypted = await collect(encryptMessage(msg, [{ keyId: orgId, publicKey: org.publicKey }], { group, rng, chunkSize: 1024 }));

  return {
    keys: {
      org: { privateKey: hex(org.privateKey), publicKey: hex(org.publicKey), keyId: orgId },
      peer: { privateKey: hex(peer.privateKey), publicKey: hex(peer.publicKey), keyId: peerId },
    },
    capsule: { messageKey: hex(P), keyId: capsule.keyId, e: hex(capsule.e), f: hex(capsule.f) },
    reencryption: {
      gatewayRequest: { e: hex(blind.request.e), f: hex(blind.request.f) },
      keyServiceAnswer: { u: hex(transformed.u), v: hex(transformed.v) },
      newCapsule: { keyId: moved.keyId, e: hex(moved.e), f: hex(moved.f) },
    },
    blindedDecryption: {
      request: { e: hex(dblind.request.e) },
      answer: { z: hex(answer.z), c: hex(answer.proof.c), s: hex(answer.proof.s) },
    },
    content,
    message: { plaintext: msg.toString('latin1'), encrypted: encrypted.toString('latin1') },
    randomness: draws,
  };
}
