/**
 * The SSMAX chain end to end between organisations, through real processes:
 * Haraka gateways with the ssmax plugin, keyd over mutual TLS, bundle
 * publishers, mailbox stores — loopback only.
 */
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { loadUserProfile } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { submitMessage } from '../../src/user/submit';
import { listCapsules } from '../../src/envelope';
import type { Network } from '../../src/demo/network';
import { filesUnder, network, smtp, waitFor } from './network-fixture';

jest.setTimeout(120000);

let net: Network;
beforeAll(async () => {
  net = await network();
});
afterAll(async () => {
  await net?.stop();
});

const SECRET_1 = 'Quarterly merger plan: Zebra-7741';
const SECRET_2 = 'Transparent secret: Lynx-2288';

describe('SSMAX client mode: alice signs and encrypts to a.example; recipients in two domains plus a Bcc', () => {
  let original: Buffer;

  beforeAll(async () => {
    const A = net.org('a.example');
    const alice = loadUserProfile(A.profiles['alice@a.example']!);
    original = Buffer.from(
      'From: alice@a.example\r\nTo: bob@b.example, carol@b.example\r\nCc: dave@a.example\r\nSubject: Plans\r\n' +
        'Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <plans-1@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' +
        `${SECRET_1}\r\n`,
    );
    const sealedByAlice = await signAndEncrypt(alice, original, { now: new Date() });
    const r = await submitMessage(alice, sealedByAlice, { to: ['bob@b.example', 'carol@b.example', 'dave@a.example', 'erin@b.example'] });
    expect(r.response).toMatch(/^250 .*SSMAX client mode/);
    const B = net.org('b.example');
    await waitFor(() => B.mailbox.mails.length >= 3 && A.mailbox.mails.length >= 1);
  });

  test('bob and erin (SSMAX clients) each open a copy that carries only their own capsule, and read what alice wrote', async () => {
    const B = net.org('b.example');
    for (const who of ['bob@b.example', 'erin@b.example']) {
      const copies = B.mailbox.for(who);
      expect(copies).toHaveLength(1);
      expect(copies[0]!.to).toEqual([who]);
      const capsules = await listCapsules(copies[0]!.raw);
      const profile = loadUserProfile(B.profiles[who]!);
      expect(capsules.map((c) => c.keyId)).toEqual([profile.encryption.keyId]);
      const opened = await openMessage(profile, copies[0]!.raw, { now: new Date() });
      expect(opened.encrypted).toBe(true);
      expect(opened.plaintext).toEqual(original);
      expect(opened.summary).toMatch(/^ssmax-chain=pass header\.d=b\.example header\.i=2/);
      expect(opened.hops.map((h) => [h.instance, h.domain])).toEqual([
        [1, 'a.example'],
        [2, 'b.example'],
      ]);
    }
  });

  test('a copy decrypts only for its recipient', async () => {
    const B = net.org('b.example');
    const bob = loadUserProfile(B.profiles['bob@b.example']!);
    await expect(openMessage(bob, B.mailbox.for('erin@b.example')[0]!.raw, { now: new Date() })).rejects.toThrow(
      /no capsule for key id|not for|does not name you \(bob@b\.example\)/i,
    );
  });

  test('the Bcc recipient is invisible in every other copy', () => {
    const B = net.org('b.example');
    for (const who of ['bob@b.example', 'carol@b.example']) expect(B.mailbox.for(who)[0]!.raw.toString('latin1')).not.toMatch(/erin/);
  });

  test('carol and dave (plain clients) get the original on the internal hop, with the seal saying transparent mode', () => {
    const carol = net.org('b.example').mailbox.for('carol@b.example');
    expect(carol).toHaveLength(1);
    const text = carol[0]!.raw.toString('utf8');
    expect(text).toContain(SECRET_1);
    expect(text).toMatch(/^Authentication-Results: b\.example; ssmax-chain=pass .*ssmax-mode=transparent/);
    expect(text).toMatch(/SSMAX-Seal: v=1; i=2; d=b\.example;[\s\S]*vd=e2e:none/);
    expect(text.endsWith(original.toString('utf8'))).toBe(true);
    const dave = net.org('a.example').mailbox.for('dave@a.example');
    expect(dave).toHaveLength(1);
    expect(dave[0]!.raw.toString('utf8')).toContain(SECRET_1);
    expect(dave[0]!.raw.toString('utf8')).toMatch(/SSMAX-Seal: v=1; i=1; d=a\.example;[\s\S]*vd=e2e:none/);
  });
});

describe('transparent mode: a plain client submits plaintext', () => {
  test('the gateway encrypts to the peer; bob (SSMAX) decrypts, carol (plain) reads it on the internal hop', async () => {
    const B = net.org('b.example');
    const before = B.mailbox.mails.length;
    const raw = `From: dave@a.example\r\nTo: bob@b.example, carol@b.example\r\nBcc: erin@b.example\r\nSubject: hi\r\nMessage-ID: <t-1@a.example>\r\nDate: Wed, 25 Nov 2026 11:00:00 +0000\r\n\r\n${SECRET_2}\r\n`;
    const reply = await smtp(net.org('a.example').ports.smtp, 'dave@a.example', ['bob@b.example', 'carol@b.example'], raw, {
      user: 'dave@a.example',
      pass: 'pw-dave',
    });
    expect(reply).toMatch(/^250 .*SSMAX transparent mode/);
    await waitFor(
      () => B.mailbox.mails.length >= before + 2,
      20000,
      () => `${net.org('a.example').haraka.logs().slice(-3000)}\n---\n${B.haraka.logs().slice(-3000)}`,
    );
    const bob = loadUserProfile(B.profiles['bob@b.example']!);
    const opened = await openMessage(bob, B.mailbox.for('bob@b.example').at(-1)!.raw, { now: new Date() });
    expect(opened.plaintext.toString('utf8')).toContain(SECRET_2);
    expect(opened.plaintext.toString('utf8')).not.toMatch(/Bcc|erin/); // the gateway drops Bcc before it encrypts
    expect(opened.hops.find((h) => h.instance === 1)?.verdicts).toBe('e2e:none');
    expect(B.mailbox.for('carol@b.example').at(-1)!.raw.toString('utf8')).toContain(SECRET_2);
  });
});

describe('no plaintext at rest or in logs', () => {
  test("neither gateway's spool, state nor log holds the plaintext of an encrypted message", () => {
    for (const o of [net.org('a.example'), net.org('b.example')]) {
      for (const f of filesUnder(o.harakaDir)) {
        for (const secret of [SECRET_1, SECRET_2])
          expect({ file: f.path, found: f.bytes.includes(secret) }).toEqual({ file: f.path, found: false });
      }
      expect(o.haraka.logs()).not.toContain(SECRET_1);
      expect(o.haraka.logs()).not.toContain(SECRET_2);
      expect(o.keyd.output()).not.toContain(SECRET_1);
    }
  });
});
