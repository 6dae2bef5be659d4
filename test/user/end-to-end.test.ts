/**
 * Alice (a.example) → gateway a.example (hop 1) → gateway b.example (hop 2) → Bob,
 * without Haraka: the hops are library calls (test/user/world.ts).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { groups } from '../../src/crypto/backend';
import { keyIdOf } from '../../src/crypto/keys';
import { createCrl } from '../../src/pki/crl';
import { listCapsules } from '../../src/envelope/capsules';
import { certificateRef } from '../../src/chain/certificate-lookup';
import { signUser } from '../../src/chain/user-signature';
import { UserError } from '../../src/user/errors';
import { OpenError, openMessage } from '../../src/user/open';
import { PROFILE_FILES, createUserProfile, loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { DAY, NOW, type Person, type World, makePerson, makeWorld, receivingHop, sendingHop } from './world';

const SECRET = 'the merger closes on Friday';

function aliceMessage(body = `Hello Bob,\r\n${SECRET}.\r\n`): Buffer {
  return Buffer.from(
    'From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: Q3 figures\r\nDate: Mon, 01 Jun 2026 11:00:00 +0000\r\n' +
      `Message-ID: <m1@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}`,
  );
}

function multipart(): Buffer {
  const pdf = Buffer.from(`%PDF-1.4 ${SECRET} \x00\x01\x02`.repeat(40), 'latin1').toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: report\r\nMessage-ID: <m2@a.example>\r\nMIME-Version: 1.0\r\n' +
      'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n' +
      `--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="q3.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${pdf}\r\n--b1--\r\n`,
    'latin1',
  );
}

let world: World;
let alice: Person;
let bob: Person;
let carol: Person;

beforeAll(() => {
  world = makeWorld();
  alice = makePerson(world, world.a, 'alice');
  bob = makePerson(world, world.b, 'bob');
  carol = makePerson(world, world.b, 'carol');
});
afterAll(() => world.cleanup());

const bobKey = () => ({ keyId: bob.registration.encryptionKeyId, publicKey: Buffer.from(bob.registration.encryptionPublicKey, 'hex') });

async function deliver(
  original: Buffer,
  opts: Parameters<typeof receivingHop>[3] = { to: bobKey() },
  signOpts: { attachmentsOnly?: boolean; chunkSize?: number } = {},
): Promise<Buffer> {
  const submitted = await signAndEncrypt(alice.profile, original, { now: NOW, ...signOpts });
  const hop1 = await sendingHop(submitted, world.a, alice, world.b);
  return receivingHop(hop1, world.b, world.a, opts);
}

/** The message with its content ciphertext cut after two 1 KiB chunks (a chunk boundary). */
function truncateCiphertext(message: Buffer): Buffer {
  const text = message.toString('latin1');
  const split = text.indexOf('\r\n\r\n') + 4;
  const body = Buffer.from(text.slice(split).replace(/\r\n/g, ''), 'base64');
  const kept = body
    .subarray(0, 2 * (1024 + 16))
    .toString('base64')
    .replace(/.{76}/g, '$&\r\n');
  return Buffer.from(`${text.slice(0, split)}${kept}\r\n`, 'latin1');
}

/** Expects openMessage to fail with `code` and a message matching `pattern`, and no secret anywhere. */
async function expectOpenFailure(
  message: Buffer,
  code: string,
  pattern: RegExp,
  options: Partial<Parameters<typeof openMessage>[2]> = {},
): Promise<OpenError> {
  const err = await openMessage(bob.profile, message, { now: NOW, ...options }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenError);
  const e = err as OpenError;
  expect(e.code).toBe(code);
  expect(e.message).toMatch(pattern);
  expect(e.message).not.toMatch(/\r|\n/);
  expect(`${e.message}\n${e.trace.join('\n')}`).not.toContain(SECRET);
  return e;
}

describe('user profile', () => {
  test('registration data, file modes, key ids', () => {
    const r = alice.registration;
    expect(r.address).toBe('alice@a.example');
    expect(r.code).toBe('E-ALICE1');
    expect(r.encryptionPublicKey).toMatch(/^0[23][0-9a-f]{64}$/);
    expect(r.encryptionKeyId).toBe(keyIdOf(groups.libsecp256k1, Buffer.from(r.encryptionPublicKey, 'hex')));
    expect(r.encryptionKeyId).toBe(alice.profile.encryption.keyId);
    expect(r.signingCertificate).toContain('BEGIN CERTIFICATE');
    expect(r.certificateSerial).toBe(alice.profile.signingCertificate.serial);
    const dir = alice.profile.dir;
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, PROFILE_FILES.signingKey)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, PROFILE_FILES.encryptionKey)).mode & 0o777).toBe(0o600);
    expect(alice.profile.encryption.privateKey).toHaveLength(32);
  });

  test('refuses a non-empty folder, a wrong CA, an address outside the bundle domain', () => {
    const base = { pseudonym: 'u-x1', code: 'E-X1', rootPem: world.root.certificate.pem, now: NOW };
    expect(() =>
      createUserProfile(alice.profile.dir, { ...base, address: 'alice@a.example', orgCa: world.a.ca, orgBundle: world.a.bundle }),
    ).toThrow(/not empty/);
    expect(() =>
      createUserProfile(join(world.dir, 'x1'), { ...base, address: 'x@a.example', orgCa: world.b.ca, orgBundle: world.a.bundle }),
    ).toThrow(/is not the one of the bundle of "a.example"/);
    expect(() =>
      createUserProfile(join(world.dir, 'x2'), { ...base, address: 'x@b.example', orgCa: world.a.ca, orgBundle: world.a.bundle }),
    ).toThrow(/bundle of "b.example": wrong-domain/);
    expect(() =>
      createUserProfile(join(world.dir, 'x3'), {
        ...base,
        address: 'x@a.example',
        orgCa: world.a.ca,
        orgBundle: world.a.bundle,
        now: new Date(NOW.getTime() + 30 * DAY),
      }),
    ).toThrow(/expired/);
  });

  test('the domain of the address is stored lowercase (u= grammar), and such a user can sign', async () => {
    const p = makePerson(world, world.a, 'Erin', { address: 'Erin@A.Example' });
    expect(p.profile.address).toBe('Erin@a.example');
    expect(p.registration.address).toBe('Erin@a.example');
    const msg = Buffer.from(aliceMessage().toString('latin1').replace('Alice <alice@a.example>', 'Erin <erin@A.EXAMPLE>'), 'latin1');
    expect((await signAndEncrypt(p.profile, msg, { now: NOW })).toString('latin1')).toMatch(
      /^SSMAX-User-Signature: v=1; u=Erin@a\.example;/,
    );
  });

  test('a private key readable by others is refused', () => {
    const p = makePerson(world, world.a, 'dave');
    const { chmodSync } = jest.requireActual<typeof import('node:fs')>('node:fs');
    chmodSync(join(p.profile.dir, PROFILE_FILES.encryptionKey), 0o644);
    expect(() => loadUserProfile(p.profile.dir)).toThrow(/encryption\.key\.pem": it is readable by others/);
  });
});

describe('sign-encrypt', () => {
  test('encrypts to the own org key a.example:v1, then signs', async () => {
    const out = await signAndEncrypt(alice.profile, aliceMessage(), { now: NOW });
    const text = out.toString('latin1');
    expect(text.startsWith('SSMAX-User-Signature: v=1; u=alice@a.example;')).toBe(true);
    expect((await listCapsules(out)).map((c) => c.keyId)).toEqual(['a.example:v1']);
    expect(text).toContain('profile=message');
    expect(text).not.toContain(SECRET);
  });

  test('refuses a message whose From is not the profile address', async () => {
    const forged = Buffer.from(aliceMessage().toString('latin1').replace('alice@a.example', 'ceo@a.example'), 'latin1');
    await expect(signAndEncrypt(alice.profile, forged, { now: NOW })).rejects.toThrow(
      /its From is not the single address "alice@a.example"/,
    );
  });

  test('--attachments-only without attachments, an already encrypted message: refused clearly', async () => {
    await expect(signAndEncrypt(alice.profile, aliceMessage(), { now: NOW, attachmentsOnly: true })).rejects.toThrow(
      /^Cannot encrypt the attachments: the message has no attachment/,
    );
    const once = await signAndEncrypt(alice.profile, aliceMessage(), { now: NOW });
    const unsigned = Buffer.from(once.toString('latin1').replace(/^SSMAX-User-Signature:[^]*?\r\n(?=[^ \t])/, ''), 'latin1');
    await expect(signAndEncrypt(alice.profile, unsigned, { now: NOW })).rejects.toThrow(/already carries SSMAX-Capsule/);
  });

  test('refuses when the own bundle has expired', async () => {
    const e = await signAndEncrypt(alice.profile, aliceMessage(), { now: new Date(NOW.getTime() + 30 * DAY) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).code).toBe('bundle');
  });
});

describe('open: the whole way', () => {
  test("Bob gets Alice's original bytes; the trace names both hops", async () => {
    const original = aliceMessage();
    const delivered = await deliver(original);
    expect(delivered.toString('latin1')).not.toContain('SSMAX-User-Signature');
    const opened = await openMessage(bob.profile, delivered, { now: NOW });
    expect(opened.plaintext.equals(original)).toBe(true);
    expect(opened.encrypted).toBe(true);
    expect(opened.profile).toBe('message');
    expect(opened.keyId).toBe(bob.registration.encryptionKeyId);
    expect(opened.summary).toBe('ssmax-chain=pass header.d=b.example header.i=2');
    expect(opened.hops.map((h) => [h.instance, h.domain, h.result, h.verdicts, h.checked])).toEqual([
      [1, 'a.example', 'pass', 'dlp:pass,av:none', 'newest-seal'],
      [2, 'b.example', 'pass', 'av:pass', 'signature'],
    ]);
    expect(opened.trace[0]).toMatch(
      /^seal i=1 {2}a\.example {2}pass {2}dlp:pass,av:none {2}cv=none {2}vouched for by b\.example \(cv=pass\)$/,
    );
    expect(opened.trace[1]).toMatch(/^seal i=2 {2}b\.example {2}pass {2}av:pass {2}cv=pass {2}signature verified here$/);
    expect(opened.trace[2]).toBe(
      'alignment: From domain a.example, seal i=1 by a.example: aligned; recipient: you (bob@b.example) are named by seal i=2',
    );
    expect(opened.trace[3]).toContain(`decrypted with your key ${bob.registration.encryptionKeyId}`);
    expect(opened.warnings).toEqual([]);
  });

  test('with the peer bundle, the earlier seal is verified too', async () => {
    const delivered = await deliver(aliceMessage());
    const opened = await openMessage(bob.profile, delivered, { now: NOW, peerBundles: [world.a.bundle] });
    expect(opened.hops.map((h) => h.checked)).toEqual(['signature', 'signature']);
    expect(opened.trace[0]).toContain('signature verified here');
  });

  test('profile "part" (--attachments-only), several chunks', async () => {
    const original = multipart();
    const delivered = await deliver(original, { to: bobKey() }, { attachmentsOnly: true, chunkSize: 1024 });
    expect(delivered.toString('latin1')).toContain('profile=part');
    const opened = await openMessage(bob.profile, delivered, { now: NOW });
    expect(opened.profile).toBe('part');
    expect(opened.plaintext.equals(original)).toBe(true);
  });

  test('a copy without capsules (sealed-unencrypted mail, sealed as it is by both hops): not encrypted, and said so', async () => {
    const original = aliceMessage();
    const signed = (
      await signUser(original, {
        signer: alice.profile.address,
        certRef: certificateRef(alice.profile.signingCertificate.der),
        privateKey: alice.profile.signingKey,
        now: () => NOW.getTime(),
      })
    ).message;
    const hop1 = await sendingHop(Buffer.from(signed), world.a, alice, world.b, { plain: true });
    const delivered = await receivingHop(hop1, world.b, world.a, { to: 'as-is' });
    const opened = await openMessage(bob.profile, delivered, { now: NOW });
    expect(opened.encrypted).toBe(false);
    expect(opened.trace[opened.trace.length - 1]).toMatch(/not encrypted .*transparent mode/);
    expect(opened.plaintext.equals(original)).toBe(true);
    const kept = await openMessage(bob.profile, delivered, { now: NOW, keepSeals: true });
    expect(kept.plaintext.toString('latin1')).toMatch(/^SSMAX-Seal: v=1; i=2;[^]*\r\nSSMAX-Seal: v=1; i=1;/);
  });
});

describe('open: failures are clear and print no plaintext', () => {
  test('a tampered seal', async () => {
    const delivered = (await deliver(aliceMessage())).toString('latin1').replace('vd=av:pass', 'vd=av:none');
    const e = await expectOpenFailure(
      Buffer.from(delivered, 'latin1'),
      'seal',
      /^Cannot open the message: seal i=2 \(b\.example\) failed: signature-invalid: Seal 2 does not verify$/,
    );
    expect(e.hops.map((h) => h.result)).toEqual(['unverified', 'fail']);
  });

  test('a tampered earlier seal breaks the newest seal', async () => {
    const delivered = (await deliver(aliceMessage())).toString('latin1').replace('vd=dlp:pass,av:none', 'vd=dlp:none,av:none');
    await expectOpenFailure(Buffer.from(delivered, 'latin1'), 'seal', /seal i=2 \(b\.example\) failed: signature-invalid/);
  });

  test('a seal by a certificate not in the org bundle', async () => {
    const delivered = await deliver(aliceMessage(), { to: bobKey(), rogue: true });
    await expectOpenFailure(
      delivered,
      'seal',
      /seal i=2 \(b\.example\) failed: unknown-certificate: its certificate c=[\w-]+ is not a sealing certificate of the bundle of "b\.example"$/,
    );
  });

  test('a revoked sealing certificate (newer CRL given)', async () => {
    const delivered = await deliver(aliceMessage());
    const newer = createCrl(world.b.ca, {
      entries: [{ serial: world.b.sealCert.serial, revokedAt: new Date(NOW.getTime() - 1000), reason: 'keyCompromise' }],
      thisUpdate: new Date(NOW.getTime() - 1000),
      nextUpdate: new Date(NOW.getTime() + 7 * DAY),
      crlNumber: 2,
    });
    await expectOpenFailure(
      delivered,
      'seal',
      /seal i=2 \(b\.example\) failed: unknown-certificate: its sealing certificate is revoked: .*keyCompromise/,
      { crls: [newer.pem] },
    );
  });

  test('the newest seal by another organisation', async () => {
    const submitted = await signAndEncrypt(alice.profile, aliceMessage(), { now: NOW });
    const hop1 = await sendingHop(submitted, world.a, alice, world.b);
    await expectOpenFailure(
      hop1.message,
      'seal',
      /seal i=1 \(a\.example\) failed: unknown-certificate: the seal is by "a\.example", not by the organisation "b\.example"$/,
    );
  });

  test('no seal at all', async () => {
    const submitted = await signAndEncrypt(alice.profile, aliceMessage(), { now: NOW });
    await expectOpenFailure(submitted, 'seal', /carries no SSMAX-Seal/);
  });

  test("a message for another user's key", async () => {
    const delivered = await deliver(aliceMessage(), {
      to: { keyId: carol.registration.encryptionKeyId, publicKey: Buffer.from(carol.registration.encryptionPublicKey, 'hex') },
    });
    await expectOpenFailure(
      delivered,
      'decrypt',
      new RegExp(
        `^Cannot decrypt the message for "bob@b\\.example": no capsule for key id "${bob.registration.encryptionKeyId}" \\(capsules for "[\\w-]+"\\)$`,
      ),
    );
  });

  test('a truncated body in transit: the seal catches it', async () => {
    const delivered = await deliver(aliceMessage(`${SECRET}\r\n`.repeat(200)), { to: bobKey() }, { chunkSize: 1024 });
    const cut = Buffer.from(delivered.toString('latin1').replace(/\r\n[A-Za-z0-9+/=]+\r\n$/, '\r\n'), 'latin1');
    expect(cut.length).toBeLessThan(delivered.length);
    await expectOpenFailure(cut, 'seal', /seal i=2 \(b\.example\) failed: body-hash-mismatch/);
  });

  test('a receiving hop that sealed over a body it changed (here: decrypted) is refused: the body is not the one seal i=1 signed', async () => {
    const delivered = await deliver(aliceMessage(), { to: 'decrypt-and-seal' });
    const e = await expectOpenFailure(
      delivered,
      'seal',
      /^Cannot open the message: seal i=1 \(a\.example\) failed: earlier-body-hash-mismatch: The body is not the one seal 1 \(a\.example\) signed: seal 2 \(b\.example\) signed another, and no hop may change the body$/,
    );
    expect(e.hops.map((h) => h.result)).toEqual(['fail', 'pass']);
  });

  test('a body truncated at a chunk boundary by a receiving hop that sealed over it: the chain refuses it, nothing decrypted', async () => {
    const delivered = await deliver(
      aliceMessage(`${SECRET}\r\n`.repeat(200)),
      { to: bobKey(), substitute: truncateCiphertext },
      { chunkSize: 1024 },
    );
    await expectOpenFailure(
      delivered,
      'seal',
      /seal i=1 \(a\.example\) failed: earlier-body-hash-mismatch: The body is not the one seal 1 \(a\.example\) signed/,
    );
  });

  test('a body truncated at a chunk boundary under valid seals: decryption refuses it', async () => {
    // A sending gateway that sealed over damaged bytes: every seal passes, the STREAM does not.
    const submitted = await signAndEncrypt(alice.profile, aliceMessage(`${SECRET}\r\n`.repeat(200)), { now: NOW, chunkSize: 1024 });
    const hop1 = await sendingHop(submitted, world.a, alice, world.b, { substitute: truncateCiphertext });
    const delivered = await receivingHop(hop1, world.b, world.a, { to: bobKey() });
    await expectOpenFailure(
      delivered,
      'decrypt',
      /^Cannot decrypt the message for "bob@b\.example": the content does not authenticate: (truncated|chunk \d+ failed authentication)/,
    );
  });
});
