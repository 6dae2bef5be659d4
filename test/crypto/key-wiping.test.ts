/**
 * Secrets of one encryption or decryption run are overwritten when the run
 * ends (docs/security.md, "Key material in memory"): the message key made or
 * recovered, and every content key derived from it — after success, after a
 * failure, and when the consumer abandons the stream. The buffers are caught
 * where the code derives them (SecretScope), so the test looks at the very
 * bytes the run used.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SecretScope, deriveContentKey, wipeContentKey } from '../../src/crypto/kdf';
import { groups } from '../../src/crypto/backend';
import { generateEncryptionKeyPair, keyIdOf } from '../../src/crypto/keys';
import { decapsulate, newMessageKey } from '../../src/crypto/capsule';
import { systemRng } from '../../src/crypto/random';
import { openContent, sealContent } from '../../src/crypto/stream';
import { collect, decryptMessage, encryptMessage, encryptParts } from '../../src/envelope';
import { listCapsulesIn } from '../../src/envelope/capsules';
import { DEFAULT_LIMITS } from '../../src/envelope/limits';
import { parseHead, readHead } from '../../src/envelope/source';
import { userCommand } from '../../src/cli/user';
import * as profiles from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { NOW, makePerson, makeWorld, receivingHop, sendingHop } from '../user/world';

const g = groups.libsecp256k1;
const isZero = (u: Uint8Array) => u.length > 0 && u.every((b) => b === 0);
const org = generateEncryptionKeyPair(g, systemRng);
const recipient = { keyId: keyIdOf(g, org.publicKey), publicKey: org.publicKey };
const SECRET = 'wipe-secret-9931';
const plain = (body = `${SECRET}\r\n`) =>
  Buffer.from(`From: a@a.example\r\nTo: b@b.example\r\nSubject: w\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${body}`);
const withAttachment = () =>
  Buffer.from(
    'From: a@a.example\r\nTo: b@b.example\r\nSubject: w\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n' +
      `--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="x.bin"\r\n\r\n${SECRET}\r\n--b1--\r\n`,
  );

/** Every buffer a SecretScope holds during `run`, and whether each was zero when `run` ended. */
async function caught(run: () => Promise<unknown>): Promise<{ held: Uint8Array[]; outcome: unknown }> {
  const held: Uint8Array[] = [];
  const hold = jest.spyOn(SecretScope.prototype, 'hold').mockImplementation(function (this: SecretScope, s) {
    held.push(s);
    return realHold.call(this, s);
  });
  const contentKey = jest.spyOn(SecretScope.prototype, 'contentKey').mockImplementation(function (this: SecretScope, p, id, size) {
    const k = realContentKey.call(this, p, id, size);
    held.push(k.key, k.noncePrefix);
    return k;
  });
  try {
    const outcome = await run().then(
      (v) => v,
      (e: unknown) => e,
    );
    return { held, outcome };
  } finally {
    hold.mockRestore();
    contentKey.mockRestore();
  }
}
const realHold = SecretScope.prototype.hold;
const realContentKey = SecretScope.prototype.contentKey;

test('SecretScope and wipeContentKey overwrite what they hold', () => {
  const scope = new SecretScope();
  const P = scope.hold(newMessageKey(g, systemRng));
  const k = scope.contentKey(P, new Uint8Array(16).fill(7), 1024);
  const other = deriveContentKey(newMessageKey(g, systemRng), new Uint8Array(16), 1024);
  expect(openContent(k, sealContent(k, Buffer.from('x'))).toString()).toBe('x');
  scope.wipe();
  expect([isZero(P), isZero(k.key), isZero(k.noncePrefix)]).toEqual([true, true, true]);
  expect(isZero(other.key)).toBe(false);
  wipeContentKey(other);
  expect([isZero(other.key), isZero(other.noncePrefix)]).toEqual([true, true]);
});

describe('encryption', () => {
  test('profile "message": the message key and the content key are zero once the stream ended; the result still decrypts', async () => {
    const { held, outcome } = await caught(() => collect(encryptMessage(plain(), [recipient], { group: g, rng: systemRng })));
    expect(held).toHaveLength(3); // P, content key, nonce prefix
    expect(held.every(isZero)).toBe(true);
    const out = await collect(decryptMessage(outcome as Buffer, { keyId: recipient.keyId, privateKey: org.privateKey }, { group: g }));
    expect(out.toString()).toContain(SECRET);
  });

  test('profile "part": the message key and every part\'s content key are zero at the end', async () => {
    const { held } = await caught(() => collect(encryptParts(withAttachment(), [recipient], { group: g, rng: systemRng })));
    expect(held.length).toBeGreaterThanOrEqual(3);
    expect(held.every(isZero)).toBe(true);
  });

  test('a stream the consumer abandons after its first piece wipes its keys too', async () => {
    const big = plain(`${'y'.repeat(200_000)}\r\n`);
    const { held } = await caught(async () => {
      const stream = encryptMessage(big, [recipient], { group: g, rng: systemRng, chunkSize: 1024 });
      for await (const _piece of stream) break; // for-await's break destroys the stream
      await new Promise((r) => setImmediate(r));
    });
    expect(held.length).toBe(3);
    expect(held.every(isZero)).toBe(true);
  });
});

describe('decryption', () => {
  test("a message key recovered with the private key, and the content key, are zero at the end; the private key itself stays the caller's", async () => {
    const encrypted = await collect(encryptMessage(plain(), [recipient], { group: g, rng: systemRng }));
    const before = Buffer.from(org.privateKey);
    const { held, outcome } = await caught(() =>
      collect(decryptMessage(encrypted, { keyId: recipient.keyId, privateKey: org.privateKey }, { group: g })),
    );
    expect((outcome as Buffer).toString()).toContain(SECRET);
    expect(held).toHaveLength(3);
    expect(held.every(isZero)).toBe(true);
    expect(Buffer.from(org.privateKey)).toEqual(before);
  });

  test('a message key given by the caller is not wiped (the caller owns it); the content keys are', async () => {
    const encrypted = await collect(encryptParts(withAttachment(), [recipient], { group: g, rng: systemRng }));
    const { head } = await readHead(Readable.from([encrypted]), DEFAULT_LIMITS);
    const messageKey = decapsulate(g, listCapsulesIn(parseHead(head, DEFAULT_LIMITS), DEFAULT_LIMITS)[0]!, org.privateKey);
    const { held, outcome } = await caught(() => collect(decryptMessage(encrypted, { messageKey }, { group: g })));
    expect((outcome as Buffer).toString()).toContain(SECRET);
    expect(held).toHaveLength(2); // one part's content key and nonce prefix
    expect(held.every(isZero)).toBe(true);
    expect(isZero(messageKey)).toBe(false);
  });

  test('a failed decryption (tampered ciphertext) wipes its keys as well', async () => {
    const encrypted = await collect(encryptMessage(plain(), [recipient], { group: g, rng: systemRng }));
    const text = encrypted.toString('latin1');
    const at = text.indexOf('\r\n\r\n') + 10;
    const tampered = Buffer.from(text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1), 'latin1');
    const { held, outcome } = await caught(() =>
      collect(decryptMessage(tampered, { keyId: recipient.keyId, privateKey: org.privateKey }, { group: g })),
    );
    expect(outcome).toBeInstanceOf(Error);
    expect(held).toHaveLength(3);
    expect(held.every(isZero)).toBe(true);
  });
});

describe('ssmax user open', () => {
  test("the user's private scalar is overwritten once the message is open (and after a refusal)", async () => {
    const world = makeWorld();
    try {
      const alice = makePerson(world, world.a, 'alice');
      const bob = makePerson(world, world.b, 'bob');
      const message = Buffer.from(
        `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: s\r\nMessage-ID: <w1@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET}\r\n`,
      );
      const hop1 = await sendingHop(await signAndEncrypt(alice.profile, message, { now: NOW }), world.a, alice, world.b);
      const delivered = await receivingHop(hop1, world.b, world.a, {
        to: { keyId: bob.registration.encryptionKeyId, publicKey: Buffer.from(bob.registration.encryptionPublicKey, 'hex') },
      });
      const path = join(world.dir, 'delivered.eml');
      writeFileSync(path, delivered);
      const loaded: profiles.UserProfile[] = [];
      const real = profiles.loadUserProfile;
      const spy = jest.spyOn(profiles, 'loadUserProfile').mockImplementation((dir) => {
        const p = real(dir);
        loaded.push(p);
        return p;
      });
      try {
        const out: string[] = [];
        const io = { out: (t: string) => out.push(t), err: () => undefined };
        expect(await userCommand.run(['open', '--profile', bob.profile.dir, '--in', path, '--at', NOW.toISOString()], io)).toBe(0);
        expect(out.join('\n')).toContain(SECRET); // the key worked before it was wiped
        const tampered = join(world.dir, 'tampered.eml');
        writeFileSync(tampered, Buffer.from(delivered.toString('latin1').replace('Subject: s', 'Subject: t'), 'latin1'));
        await expect(
          userCommand.run(['open', '--profile', bob.profile.dir, '--in', tampered, '--at', NOW.toISOString()], io),
        ).rejects.toThrow();
      } finally {
        spy.mockRestore();
      }
      expect(loaded).toHaveLength(2);
      for (const p of loaded) expect(isZero(p.encryption.privateKey)).toBe(true);
    } finally {
      world.cleanup();
    }
  });
});
