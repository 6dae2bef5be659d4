/**
 * Fail closed, lose nothing: faults give 4xx, nothing is relayed in any form,
 * and once the fault clears the retried message is delivered exactly once.
 * Bad input gets its own 5xx. Real processes on loopback.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'ini';
import { certificateRef } from '../../src/chain/certificate-lookup';
import { signUser } from '../../src/chain/user-signature';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import type { Network } from '../../src/demo/network';
import { fetchBundleText } from '../../src/directory/fetch';
import { setupGateway } from '../../src/gateway/setup';
import { submit } from '../../src/gateway/submission';
import { parseCertificate } from '../../src/pki/certificate';
import { createCrl, parseCrl } from '../../src/pki/crl';
import { issueSealingCertificate } from '../../src/pki/issue';
import { privateKeyToPem } from '../../src/pki/keys';
import { loadUserProfile } from '../../src/user/profile';
import { ownOrgRecipient, signAndEncrypt } from '../../src/user/sign-encrypt';
import { collect, encryptMessage } from '../../src/envelope';
import { defaultGroup } from '../../src/crypto/backend';
import { systemRng } from '../../src/crypto';
import { network, rawSmtp, smtp, waitFor, expectLogged } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
beforeAll(async () => {
  net = await network();
});
afterAll(async () => {
  await net?.stop();
});

const A = () => net.org('a.example');
const B = () => net.org('b.example');
const C = () => net.org('c.example');
const dave = { user: 'dave@a.example', pass: 'pw-dave' };
let n = 0;
const plain = (to: string, marker: string, extra = '') =>
  `From: dave@a.example\r\nTo: ${to}\r\nSubject: fault ${marker}\r\nMessage-ID: <f-${++n}@a.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n${extra}\r\n${marker}\r\n`;
const count = (org: ReturnType<typeof A>, who: string, marker: string) =>
  org.mailbox.for(who).filter((m) => m.raw.toString('latin1').includes(marker) || m.raw.includes(Buffer.from(marker))).length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('faults give 4xx and lose nothing', () => {
  test('keyd of the sending org stopped: 451, nothing relayed; after restart the resubmission is delivered once', async () => {
    await A().keyd.stop();
    const raw = plain('carol@b.example', 'M-keyd-down');
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], raw, dave)).toMatch(/^4\d\d 4\.7\.5 Key service unavailable/);
    await A().restartKeyd();
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], raw, dave)).toMatch(/^250 /);
    await waitFor(() => count(B(), 'carol@b.example', 'M-keyd-down') >= 1);
    await sleep(1000);
    expect(count(B(), 'carol@b.example', 'M-keyd-down')).toBe(1);
  });

  test('keyd of the receiving org stopped: the sending gateway keeps the message queued and delivers it once keyd is back', async () => {
    await B().keyd.stop();
    const refusals = () =>
      (
        A()
          .haraka.logs()
          .match(/Temp failing \S+ for \d+ seconds: .*4\.7\.5 Key service unavailable/g) ?? []
      ).length;
    const before = refusals();
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], plain('carol@b.example', 'M-peer-keyd'), dave)).toMatch(
      /^250 /,
    );
    // at least one delivery attempt refused with 4xx by B (a.example's queue logs it and keeps the message)
    await waitFor(
      () => refusals() > before,
      30000,
      () => A().haraka.logs().slice(-3000),
    );
    expect(count(B(), 'carol@b.example', 'M-peer-keyd')).toBe(0);
    await B().restartKeyd();
    await waitFor(() => count(B(), 'carol@b.example', 'M-peer-keyd') >= 1, 30000);
    await sleep(1000);
    expect(count(B(), 'carol@b.example', 'M-peer-keyd')).toBe(1);
  });

  test('keyd slower than the timeout (frozen): 451; after it resumes the resubmission is delivered once', async () => {
    A().keyd.proc.kill('SIGSTOP');
    const raw = plain('carol@b.example', 'M-keyd-slow');
    try {
      expect(await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], raw, dave)).toMatch(/^4\d\d 4\.7\.5 .*timeout/);
    } finally {
      A().keyd.proc.kill('SIGCONT');
    }
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], raw, dave)).toMatch(/^250 /);
    await waitFor(() => count(B(), 'carol@b.example', 'M-keyd-slow') >= 1);
    await sleep(1000);
    expect(count(B(), 'carol@b.example', 'M-keyd-slow')).toBe(1);
  });

  test("the peer's bundle unreachable: 451 at RCPT; once the publisher is back the message goes through once", async () => {
    await C().publisher.stop();
    const raw = plain('frank@c.example', 'M-bundle');
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['frank@c.example'], raw, dave)).toMatch(
      /^4\d\d 4\.7\.5 SSMAX bundle of the peer domain unavailable: c\.example( \([0-9A-F.-]+\))?$/,
    );
    // the reason is the operator's, in the log (docs/directory.md: a DirectoryError's message names the domain only)
    await expectLogged(
      () => A().haraka.logs(),
      /ssmax directory: directory: Cannot fetch "https:\/\/ssmax\.c\.example:\d+\/\.well-known\/ssmax\/bundle": .*ECONNREFUSED/,
    );
    await C().restartPublisher();
    await sleep(700); // the directory's retry pause
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['frank@c.example'], raw, dave)).toMatch(/^250 /);
    await waitFor(() => count(C(), 'frank@c.example', 'M-bundle') >= 1);
    expect(count(C(), 'frank@c.example', 'M-bundle')).toBe(1);
  });

  test('the mailbox store refusing one of two recipients: the retry delivers the other copy once, without a duplicate of the first', async () => {
    B().mailbox.refuse = '451 4.3.0 mailbox store busy';
    B().mailbox.refuseFor = 'carol@b.example';
    try {
      expect(
        await smtp(
          A().ports.smtp,
          'dave@a.example',
          ['bob@b.example', 'carol@b.example'],
          plain('bob@b.example, carol@b.example', 'M-partial'),
          dave,
        ),
      ).toMatch(/^250 /);
      await waitFor(() => count(B(), 'bob@b.example', 'M-partial') > 0 && B().haraka.logs().includes('Mailbox store unavailable'), 20000);
    } finally {
      B().mailbox.refuse = undefined;
      B().mailbox.refuseFor = undefined;
    }
    await waitFor(() => count(B(), 'carol@b.example', 'M-partial') >= 1, 30000);
    await sleep(1000);
    // bob's copy (encrypted; its outer Subject names the test) went in on the first attempt, carol's on the retry: one each
    expect([count(B(), 'bob@b.example', 'M-partial'), count(B(), 'carol@b.example', 'M-partial')]).toEqual([1, 1]);
  });
});

describe('bad input: each refused with its own status and text', () => {
  let sealedForB: Buffer;
  let gwA: ReturnType<typeof setupGateway>;

  beforeAll(async () => {
    const ini = parse(readFileSync(join(A().harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    gwA = setupGateway(ini, A().harakaDir, () => undefined, 'ssmax-state-test');
    const { copies } = await submit(gwA.deps, Buffer.from(plain('carol@b.example', 'M-bad')), ['carol@b.example']);
    sealedForB = copies[0]!.message;
  });
  afterAll(async () => {
    await gwA?.close();
  });

  const toB = (msg: Buffer | string) => smtp(B().ports.smtp, 'dave@a.example', ['carol@b.example'], msg);
  const edit = (re: RegExp, f: (m: string) => string) => Buffer.from(sealedForB.toString('latin1').replace(re, f), 'latin1');
  const flip = (s: string) => (s[0] === 'A' ? `B${s.slice(1)}` : `A${s.slice(1)}`);

  test('the untouched copy is accepted (control)', async () => {
    expect(await toB(sealedForB)).toMatch(/^250 /);
  });

  test('a forged seal (signature changed): 550 5.7.7', async () => {
    expect(await toB(edit(/ b=([A-Za-z0-9_-]+)/, (m) => ` b=${flip(m.slice(3))}`))).toMatch(
      /^550 5\.7\.7 SSMAX chain fails: signature-invalid/,
    );
  });

  test('a tampered capsule: 550 5.7.7 (header hash)', async () => {
    expect(await toB(edit(/ e=([A-Za-z0-9_-]{44})/, (m) => ` e=${flip(m.slice(3))}`))).toMatch(
      /^550 5\.7\.7 SSMAX chain fails: header-hash-mismatch/,
    );
  });

  test('a tampered body: 550 5.7.7 (body hash)', async () => {
    const i = sealedForB.indexOf('\r\n\r\n') + 10;
    const bad = Buffer.from(sealedForB);
    bad[i] = bad[i] === 0x41 ? 0x42 : 0x41;
    expect(await toB(bad)).toMatch(/^550 5\.7\.7 SSMAX chain fails: body-hash-mismatch/);
  });

  test('a seal by a certificate outside the organisation (not in its bundle, e.g. outside its name constraints): 550 5.7.5', async () => {
    const rogue = generateP256KeyPair();
    const now = Date.now();
    const cert = issueSealingCertificate(A().fx.orgCa, {
      domain: 'a.example',
      publicKey: rogue.publicKey,
      notBefore: new Date(now - 60000),
      notAfter: new Date(now + 86400000),
    });
    const ini = parse(readFileSync(join(A().harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    const rogueGw = setupGateway(ini, A().harakaDir, () => undefined, 'ssmax-state-rogue');
    try {
      const deps = { ...rogueGw.deps, seal: { privateKey: rogue.privateKey, certRef: certificateRef(cert.der) } };
      const { copies } = await submit(deps, Buffer.from(plain('carol@b.example', 'M-rogue')), ['carol@b.example']);
      expect(await toB(copies[0]!.message)).toMatch(/^550 5\.7\.5 SSMAX sealing certificate refused: unknown-certificate/);
    } finally {
      await rogueGw.close();
    }
  });

  test('a duplicate From at submission: 550 5.6.7', async () => {
    expect(
      await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], plain('carol@b.example', 'M-dup', 'From: eve@a.example\r\n'), dave),
    ).toMatch(/^550 5\.6\.7 Duplicate singleton header field: 2 "from" fields/);
  });

  test('a user signature whose signer is not the single From: 550 5.7.22', async () => {
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const msg = Buffer.from(plain('carol@b.example', 'M-signer'));
    const signed = await signUser(msg, {
      signer: 'alice@a.example',
      certRef: certificateRef(alice.signingCertificate.der),
      privateKey: alice.signingKey,
      now: () => Date.now(),
    });
    // dave submits his own message (From dave, his login) that carries alice's signature: the signer is not the author
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], signed.message, dave)).toMatch(
      /^550 5\.7\.22 User signature is not by the author/,
    );
  });

  test('a forged user signature: 550 5.7.20', async () => {
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const msg = Buffer.from(plain('carol@b.example', 'M-forged').replace('From: dave@a.example', 'From: alice@a.example'));
    const other = generateP256KeyPair();
    const signed = await signUser(msg, {
      signer: 'alice@a.example',
      certRef: certificateRef(alice.signingCertificate.der),
      privateKey: other.privateKey,
      now: () => Date.now(),
    });
    expect(
      await smtp(A().ports.smtp, 'alice@a.example', ['carol@b.example'], signed.message, { user: 'alice@a.example', pass: 'pw-alice' }),
    ).toMatch(/^550 5\.7\.20 User signature does not verify: signature-invalid/);
  });

  test('a bare CR inside a header value sent over SMTP never becomes an injected header field in any copy', async () => {
    // Haraka rebuilds header lines from its parser before our hooks (so the
    // check in src/mail/message-checks.ts, unit-tested, sees normalised lines here);
    // what must hold end to end: no injected field reaches a recipient.
    const injected = Buffer.from(
      plain('carol@b.example', 'M-crlf').replace('Subject: fault', 'Subject: x\rBcc: mallory@evil.example\r\nX-Note: fault'),
    );
    const reply = await rawSmtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], injected, dave);
    if (reply.startsWith('250')) {
      await waitFor(() => count(B(), 'carol@b.example', 'M-crlf') >= 1);
      for (const m of B()
        .mailbox.for('carol@b.example')
        .filter((x) => x.raw.includes(Buffer.from('M-crlf')))) {
        const head = m.raw.subarray(0, m.raw.indexOf('\r\n\r\n')).toString('latin1');
        expect(head).not.toMatch(/(^|\r\n)Bcc:/i);
      }
    } else {
      expect(reply).toMatch(/^550 5\.6\.0 Bare CR or LF inside a header field/);
    }
  });

  test('an unknown local recipient: 550 5.1.1 at RCPT', async () => {
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['nobody@b.example'], sealedForB)).toMatch(
      /^550 5\.1\.1 No such local recipient: nobody@b\.example/,
    );
  });

  test('a local recipient with a quoted local part (SMTP allows it, no directory entry can have it): 550 5.1.1 at RCPT, not 451', async () => {
    expect(await rawSmtp(B().ports.smtp, 'dave@a.example', ['"no body"@b.example'], sealedForB)).toMatch(
      /^550 5\.1\.1 No such local recipient/,
    );
  });

  test('a signed submission whose capsule point is not on the curve: 550 5.7.5, not 451 for ever', async () => {
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const original = Buffer.from(plain('carol@b.example', 'M-offcurve').replace('From: dave@a.example', 'From: alice@a.example'));
    const encrypted = await collect(
      encryptMessage(original, [ownOrgRecipient(alice, new Date())], { group: defaultGroup, rng: systemRng }),
    );
    // x = 5 is no x of a secp256k1 point (5^3 + 7 is no square modulo p); the user signs the capsule as it is
    const offCurve = Buffer.concat([Buffer.from([0x02]), Buffer.alloc(31), Buffer.from([5])]).toString('base64url');
    const edited = Buffer.from(encrypted.toString('latin1').replace(/ e=[A-Za-z0-9_-]{44}/, ` e=${offCurve}`), 'latin1');
    expect(edited.equals(encrypted)).toBe(false);
    const signed = await signUser(edited, {
      signer: 'alice@a.example',
      certRef: certificateRef(alice.signingCertificate.der),
      privateKey: alice.signingKey,
      now: () => Date.now(),
    });
    expect(
      await smtp(A().ports.smtp, 'alice@a.example', ['carol@b.example'], signed.message, { user: 'alice@a.example', pass: 'pw-alice' }),
    ).toMatch(/^550 5\.7\.5 Malformed or foreign SSMAX capsule: Cannot parse capsule point E: not a point on secp256k1/);
  });

  test('an encrypted message whose own header hides a field behind a bare CR: 550 5.6.0, no copy for the plain-client colleague', async () => {
    // readers of the decrypted header split lines at LF; the hand-over to the mailbox store makes the CR a line end,
    // so "Reply-To" (and anything else) would reach dave as a header field the seal never showed
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const original = Buffer.from(
      plain('dave@a.example', 'M-inner-cr')
        .replace('From: dave@a.example', 'From: alice@a.example')
        .replace('Subject:', 'X-Pad: x\rReply-To: pay@evil.example\r\nSubject:'),
    );
    const signed = await signAndEncrypt(alice, original, { now: new Date() });
    expect(/\r(?!\n)/.test(signed.toString('latin1'))).toBe(false); // encrypted: the outer message has no bare CR
    const reply = await smtp(A().ports.smtp, 'alice@a.example', ['dave@a.example'], signed, { user: 'alice@a.example', pass: 'pw-alice' });
    expect(reply).toMatch(/^550 5\.6\.0 Bare CR in the message .*: in the encrypted message, at line \d+/);
    await sleep(1000);
    expect(count(A(), 'dave@a.example', 'M-inner-cr')).toBe(0);
  });

  test('a Message-ID folded before a comment: delivered (keyd records it unfolded), not 451 for ever', async () => {
    const msg = plain('carol@b.example', 'M-folded-id').replace(
      /Message-ID: (<[^>]+>)\r\n/,
      'Message-ID: $1\r\n (from a client that folds)\r\n',
    );
    expect(msg).toContain('>\r\n (from a client');
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], msg, dave)).toMatch(/^250 /);
    await waitFor(() => count(B(), 'carol@b.example', 'M-folded-id') === 1);
  });

  test('a seal by a revoked sealing certificate (revoked and replaced at a.example, bundle re-published): 550 5.7.5', async () => {
    // Sealed now by a.example's current key, kept by the in-process gateway after the revocation below.
    const { copies } = await submit(gwA.deps, Buffer.from(plain('carol@b.example', 'M-revoked')), ['carol@b.example']);
    const sealedWithOldKey = copies[0]!.message;
    const pki = A().fx.dir;
    const old = parseCertificate(readFileSync(join(pki, 'seal.cert.pem'), 'utf8'));
    const now = Math.floor(Date.now() / 1000) * 1000;
    const fresh = generateP256KeyPair();
    const certPem = issueSealingCertificate(A().fx.orgCa, {
      domain: 'a.example',
      host: 'mx.a.example',
      publicKey: fresh.publicKey,
      notBefore: new Date(now - 1000),
      notAfter: new Date(now + 86400000),
    }).pem;
    writeFileSync(join(pki, 'seal.cert.pem'), certPem);
    writeFileSync(join(pki, 'seal.key.pem'), privateKeyToPem(fresh.privateKey), { mode: 0o600 });
    const crlPem = createCrl(A().fx.orgCa, {
      entries: [{ serial: old.serial, revokedAt: new Date(now - 1000), reason: 'keyCompromise' }],
      thisUpdate: new Date(now - 1000),
      nextUpdate: new Date(now + 7 * 86400000),
      crlNumber: 2,
    }).pem;
    writeFileSync(join(pki, 'org-ca.crl.pem'), crlPem);
    // the publisher polls its files every second and re-publishes: wait until its bundle carries both new files
    // (each known by its last full line of base64, which lies in its signature)
    const signatureLine = (pem: string) =>
      pem
        .split(/\r?\n/)
        .filter((l) => l.length === 64)
        .at(-1)!;
    const hosts = new Map([['ssmax.a.example', '127.0.0.1']]);
    const republished = async () => {
      const text = await fetchBundleText(A().bundleUrl, { timeoutMs: 5000, ca: A().fx.caPem, hosts });
      return text.includes(signatureLine(certPem)) && text.includes(signatureLine(crlPem));
    };
    for (let i = 0; !(await republished()); i++) {
      if (i >= 100) throw new Error("a.example's publisher did not re-publish the new sealing certificate and CRL within 20 s");
      await sleep(200);
    }
    // b.example forgets its cached copy of a.example's bundle (a restart with an empty cache)
    await B().haraka.stop();
    rmSync(join(B().harakaDir, 'ssmax-state', 'directory'), { recursive: true, force: true });
    await B().restartHaraka();
    expect(await toB(sealedWithOldKey)).toMatch(/^550 5\.7\.5 SSMAX sealing certificate refused: unknown-certificate/);
  });

  test('relaying through the receiving gateway without authentication is denied', async () => {
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['frank@c.example'], sealedForB)).toMatch(/^5\d\d .*Relaying denied/);
  });
});

describe('a user revoked in a replaced CRL file (last: alice stays revoked)', () => {
  test("the running gateway takes the new CRL file at the next check and refuses the user's signed submission: 550 5.7.5 naming the revocation", async () => {
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const send = async (marker: string) => {
      const msg = Buffer.from(plain('carol@b.example', marker).replace('From: dave@a.example', 'From: alice@a.example'));
      const signed = await signUser(msg, {
        signer: 'alice@a.example',
        certRef: certificateRef(alice.signingCertificate.der),
        privateKey: alice.signingKey,
        now: () => Date.now(),
      });
      return smtp(A().ports.smtp, 'alice@a.example', ['carol@b.example'], signed.message, { user: 'alice@a.example', pass: 'pw-alice' });
    };
    expect(await send('M-before-revocation')).toMatch(/^250 /);
    // the org CA's CRL as keyd re-issues it for a revocation: every earlier entry, the next number, renamed into place
    const file = join(A().fx.dir, 'org-ca.crl.pem');
    const current = parseCrl(readFileSync(file, 'utf8'));
    const now = Math.floor(Date.now() / 1000) * 1000;
    const crl = createCrl(A().fx.orgCa, {
      entries: [
        ...current.entries.values(),
        { serial: alice.signingCertificate.serial, revokedAt: new Date(now - 1000), reason: 'keyCompromise' },
      ],
      thisUpdate: new Date(now - 1000),
      nextUpdate: new Date(now + 7 * 86400000),
      crlNumber: (current.crlNumber ?? 1n) + 1n,
    });
    writeFileSync(`${file}.new`, crl.pem, { mode: 0o600 });
    renameSync(`${file}.new`, file);
    // the gateway reads a CRL file again when it changed: the very next check uses the new one
    expect(await send('M-after-revocation')).toMatch(
      /^550 5\.7\.5 User signature refused: the sender's signing certificate is revoked: revoked at \S+ \(keyCompromise\)/,
    );
  });
});
