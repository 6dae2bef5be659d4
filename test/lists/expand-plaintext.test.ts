/**
 * A post to a list with many plain-client members (src/lists/expand.ts):
 * their copies are made in parallel slices, and the post is decrypted once
 * for all of them (local-copies.ts plaintextOnce), not once per slice or per
 * member. keyd is a stand-in answering with the real message key (a unit
 * test of the module); every member still gets the original.
 */
import { randomBytes } from 'node:crypto';
import { defaultGroup as g } from '../../src/crypto/backend';
import { decapsulate } from '../../src/crypto/capsule';
import type { Capsule } from '../../src/crypto';
import { generateEncryptionKeyPair } from '../../src/crypto/keys';
import { systemRng } from '../../src/crypto/random';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { collect, encryptMessage } from '../../src/envelope';
import type { GatewayDeps } from '../../src/gateway/deps';
import type { QuarantineStore } from '../../src/inspect/quarantine';
import { LIST_CONCURRENCY, Lists } from '../../src/lists/expand';
import { capsulesOf, checkMessage } from '../../src/mail/message-checks';

const DOMAIN = 'a.example';
const KEY_ID = `${DOMAIN}:v1`;
const org = generateEncryptionKeyPair(g, systemRng);
const SECRET = 'list-plain-secret-9301';

test(`a post to ${LIST_CONCURRENCY * 2 + 1} plain-client members: one decryption, every member gets the original`, async () => {
  const plain = Buffer.from(
    `From: alice@a.example\r\nTo: staff@a.example\r\nSubject: p\r\nMessage-ID: <p@a.example>\r\nDate: Sun, 6 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET}\r\n`,
  );
  const message = await collect(encryptMessage(plain, [{ keyId: KEY_ID, publicKey: org.publicKey }], { group: g, rng: systemRng }));
  const capsules: Capsule[] = capsulesOf(checkMessage(message).headers);
  const members = Array.from({ length: LIST_CONCURRENCY * 2 + 1 }, (_, i) => `m${i}@a.example`);
  let decryptions = 0;
  const deps = {
    config: { domain: DOMAIN, localDomains: [DOMAIN] },
    keyd: {
      user: (address: string) => Promise.resolve({ address, status: 'active', encryptionKeyId: null }), // plain clients
      list: () => Promise.resolve(undefined),
      primeUsers: () => Promise.resolve(),
      certifiedKey: () => Promise.resolve(org.publicKey),
      messageKey: (capsule: Capsule) => {
        decryptions++;
        return Promise.resolve({ messageKey: decapsulate(g, capsule, org.privateKey) });
      },
    },
    group: g,
    seal: { privateKey: generateP256KeyPair().privateKey, certRef: randomBytes(32).toString('base64url') },
    clock: () => new Date(),
  } as unknown as GatewayDeps;
  const lists = new Lists({} as QuarantineStore, () => undefined);
  const origin = {
    from: 'own' as const,
    chain: { result: 'none' as const, summary: 'ssmax-chain=none', instances: [] },
    trackingToken: randomBytes(32),
  };
  const { copies } = await lists.post(deps, {
    arrival: { message, rcpts: ['staff@a.example'], origin, verdicts: [], sender: 'alice@a.example' },
    capsules,
    list: { address: 'staff@a.example', members, policy: 'open', moderators: [] },
  });
  expect(copies.map((c) => c.rcpts[0]).sort()).toEqual([...members].sort());
  for (const c of copies) {
    expect(c.list).toBe('staff@a.example');
    expect(c.message.toString('latin1')).toContain(SECRET);
  }
  expect(decryptions).toBe(1);
});
