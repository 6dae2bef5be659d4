/**
 * localCopies (src/gateway/local-copies.ts), transparent delivery to a
 * plain-client user: the message key comes from keyd's blinded decryption
 * (here keyd is a stand-in answering with the real message key, so this is a
 * unit test of the module), the copy carries the original message, keyd's
 * "retired" notice is kept for the refresh hint, and the message key is
 * overwritten after use — after a success and after a message that does not
 * decrypt, which is refused with a 5xx naming the fault.
 */
import { randomBytes } from 'node:crypto';
import { defaultGroup as g } from '../../src/crypto/backend';
import { decapsulate } from '../../src/crypto/capsule';
import { generateEncryptionKeyPair } from '../../src/crypto/keys';
import { systemRng } from '../../src/crypto/random';
import type { Capsule } from '../../src/crypto';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { collect, encryptMessage } from '../../src/envelope';
import type { GatewayDeps } from '../../src/gateway/deps';
import type { RetiredUse } from '../../src/gateway/key-exchange';
import { localCopies } from '../../src/gateway/local-copies';
import { capsulesOf, checkMessage } from '../../src/mail/message-checks';
import { GatewayError } from '../../src/mail/replies';

const DOMAIN = 'a.example';
const KEY_ID = `${DOMAIN}:v1`;
const org = generateEncryptionKeyPair(g, systemRng);
const SECRET = 'local-copy-secret-4471';
const plain = Buffer.from(
  `From: x@b.example\r\nTo: u@a.example\r\nSubject: t\r\nMessage-ID: <t@b.example>\r\nDate: Sun, 6 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET}\r\n`,
);

async function encrypted(): Promise<{ message: Buffer; capsules: Capsule[] }> {
  const message = await collect(encryptMessage(plain, [{ keyId: KEY_ID, publicKey: org.publicKey }], { group: g, rng: systemRng }));
  return { message, capsules: capsulesOf(checkMessage(message).headers) };
}

/** Deps with a keyd stand-in; `given` collects each message key handed out. */
function depsWith(given: Uint8Array[]): GatewayDeps {
  const keyd = {
    user: (address: string) => Promise.resolve({ address, status: 'active' }), // no encryption key: a plain-client user
    list: () => Promise.resolve(undefined),
    certifiedKey: () => Promise.resolve(org.publicKey),
    messageKey: (capsule: Capsule) => {
      const messageKey = decapsulate(g, capsule, org.privateKey);
      given.push(messageKey);
      return Promise.resolve({ messageKey, notice: 'retired', current: `${DOMAIN}:v2` });
    },
  };
  return {
    config: { domain: DOMAIN },
    keyd,
    group: g,
    seal: { privateKey: generateP256KeyPair().privateKey, certRef: randomBytes(32).toString('base64url') },
    clock: () => new Date(),
  } as unknown as GatewayDeps;
}

const origin = {
  from: 'own' as const,
  chain: { result: 'none' as const, summary: 'ssmax-chain=none', instances: [] },
  trackingToken: randomBytes(32),
};
const isZero = (u: Uint8Array) => u.length > 0 && u.every((b) => b === 0);

test('a plain-client user gets the original message; the retired notice is kept; the message key is zero afterwards', async () => {
  const { message, capsules } = await encrypted();
  const given: Uint8Array[] = [];
  const notices: RetiredUse[] = [];
  const copies = await localCopies(depsWith(given), { message, rcpts: ['u@a.example'], origin, verdicts: [] }, capsules, notices);
  expect(copies).toHaveLength(1);
  expect(copies[0]!.rcpts).toEqual(['u@a.example']);
  const text = copies[0]!.message.toString('latin1');
  expect(text).toContain(SECRET);
  expect(text).toMatch(/^Authentication-Results: a\.example; .*ssmax-mode=transparent/);
  expect(notices).toEqual([{ keyId: KEY_ID, current: `${DOMAIN}:v2` }]);
  expect(given).toHaveLength(1);
  expect(isZero(given[0]!)).toBe(true);
});

test('a message that does not decrypt is refused with a 5xx naming the fault, and the message key is zero afterwards', async () => {
  const { message, capsules } = await encrypted();
  const tampered = Buffer.from(message);
  // flip a byte of the ciphertext near the end (the body, not the header block)
  tampered[tampered.length - 40] = tampered[tampered.length - 40]! ^ 0x55;
  const given: Uint8Array[] = [];
  let err: unknown;
  try {
    await localCopies(depsWith(given), { message: tampered, rcpts: ['u@a.example'], origin, verdicts: [] }, capsules, []);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(GatewayError);
  const reply = (err as GatewayError).reply;
  expect(reply.code).toBeGreaterThanOrEqual(500);
  expect((err as Error).message).toMatch(/cannot decrypt for transparent delivery: /);
  expect(given).toHaveLength(1);
  expect(isZero(given[0]!)).toBe(true);
});

test('three plain-client recipients of one message: one decryption (one message key from keyd), each gets the original', async () => {
  const { message, capsules } = await encrypted();
  const given: Uint8Array[] = [];
  const notices: RetiredUse[] = [];
  const rcpts = ['u@a.example', 'v@a.example', 'w@a.example'];
  const copies = await localCopies(depsWith(given), { message, rcpts, origin, verdicts: [] }, capsules, notices);
  expect(copies.map((c) => c.rcpts)).toEqual(rcpts.map((r) => [r]));
  for (const c of copies) expect(c.message.toString('latin1')).toContain(SECRET);
  expect(given).toHaveLength(1);
  expect(isZero(given[0]!)).toBe(true);
  expect(notices).toEqual([{ keyId: KEY_ID, current: `${DOMAIN}:v2` }]);
});

describe('the copy shows the sealed display fields, never the inner header no seal covers (docs/security.md)', () => {
  /** `plain` encrypted, then its outer (sealed) From and Subject set to other values: what a hostile sender can make. */
  async function forged(innerFrom: string): Promise<{ message: Buffer; capsules: Capsule[] }> {
    const inner = Buffer.from(plain.toString('latin1').replace('From: x@b.example', `From: ${innerFrom}`), 'latin1');
    const enc = await collect(encryptMessage(inner, [{ keyId: KEY_ID, publicKey: org.publicKey }], { group: g, rng: systemRng }));
    const message = Buffer.from(
      enc.toString('latin1').replace(`From: ${innerFrom}\r\n`, 'From: x@b.example\r\n').replace('Subject: t\r\n', 'Subject: sealed\r\n'),
      'latin1',
    );
    return { message, capsules: capsulesOf(checkMessage(message).headers) };
  }

  /** The copy's header block after the gateway's own fields (Authentication-Results, seals): what the recipient's client shows. */
  const shown = (copy: Buffer) => {
    const head = copy.toString('latin1').slice(0, copy.indexOf('\r\n\r\n'));
    return head.split(/\r\n(?![ \t])/).filter((f) => !/^(authentication-results|ssmax-seal|ssmax-recipients):/i.test(f));
  };

  test('inner From ceo@a.example under a sealed From x@b.example: the copy is From x@b.example, the inner message only attached', async () => {
    const { message, capsules } = await forged('ceo@a.example');
    const [copy] = await localCopies(depsWith([]), { message, rcpts: ['u@a.example'], origin, verdicts: [] }, capsules, []);
    const fields = shown(copy!.message);
    expect(fields.filter((f) => /^from:/i.test(f))).toEqual(['From: x@b.example']);
    expect(fields.filter((f) => /^subject:/i.test(f))).toEqual(['Subject: sealed']);
    expect(fields.join('\n')).not.toContain('ceo@a.example');
    const text = copy!.message.toString('latin1');
    expect(text).toMatch(/Content-Type: message\/rfc822\r\n(?:.*\r\n)*?\r\nFrom: ceo@a\.example\r\n/);
    expect(text).toContain(SECRET);
  });

  test('same From inside and out, another Subject inside: the sealed Subject replaces it', async () => {
    const { message, capsules } = await forged('x@b.example');
    const [copy] = await localCopies(depsWith([]), { message, rcpts: ['u@a.example'], origin, verdicts: [] }, capsules, []);
    const fields = shown(copy!.message);
    expect(fields.filter((f) => /^subject:/i.test(f))).toEqual(['Subject: sealed']);
    expect(copy!.message.toString('latin1')).not.toContain('message/rfc822');
    expect(copy!.message.toString('latin1')).toContain(SECRET);
  });

  test("the sender side's own message (outer copied from inner): the original, byte for byte, after the gateway's fields", async () => {
    const { message, capsules } = await encrypted();
    const [copy] = await localCopies(depsWith([]), { message, rcpts: ['u@a.example'], origin, verdicts: [] }, capsules, []);
    expect(copy!.message.subarray(copy!.message.length - plain.length).equals(plain)).toBe(true);
  });
});
