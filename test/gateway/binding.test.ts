/**
 * The chain binds who sent a message, to whom and when (issue 15,
 * docs/security.md), tried as a hostile peer would, through real processes:
 * Haraka gateways with the ssmax plugin, keyd over mutual TLS, bundle
 * publishers and mailbox stores on loopback, with a third organisation
 * c.example holding genuine certificates under the same root.
 *
 * a.example's outbound copies for b.example are routed to a capture store,
 * so the tests hold exactly what a.example's real gateway sent, and replay it
 * to b.example's real gateway as an attacker on the path would.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { type CertificateLookup, certificateRef } from '../../src/chain/certificate-lookup';
import { prependField } from '../../src/chain/message-fields';
import { bindRecipients, removeRecipientFields } from '../../src/chain/recipients';
import { seal } from '../../src/chain/seal';
import { verifyChain } from '../../src/chain/verify-chain';
import { groups } from '../../src/crypto/backend';
import { p256PublicKeyFrom } from '../../src/crypto/ecdsa';
import { systemRng } from '../../src/crypto/random';
import { freePort } from '../../src/demo/haraka';
import { MailboxStore } from '../../src/demo/mailbox';
import { type Network, type OrgNode, startService } from '../../src/demo/network';
import { collect, encryptMessage } from '../../src/envelope';
import { KeydClient, KeydClientError } from '../../src/keyd/client';
import { parseCertificate } from '../../src/pki/certificate';
import { parseCrl } from '../../src/pki/crl';
import { privateKeyFromPem } from '../../src/pki/keys';
import { loadUserProfile } from '../../src/user/profile';
import { OpenError, openMessage } from '../../src/user/open';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { isField, splitHeaderBlock } from '../../src/mail/header-block';
import { ORGS, network, rawSmtp, smtp, waitFor } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
let capture: MailboxStore;

beforeAll(async () => {
  capture = new MailboxStore();
  const port = await freePort();
  await capture.listen(port);
  // b.example accepts seals up to WINDOW_S old: the network's CRLs are issued at its start, so a seal's
  // certificate can be validated only at times after that (an older seal fails as unknown-certificate first)
  net = await network(
    ORGS.map((o) =>
      o.domain === 'a.example'
        ? { ...o, gatewayIni: ['[routes]', `b.example=127.0.0.1:${port}`] }
        : o.domain === 'b.example'
          ? {
              ...o,
              // an internationalised own domain besides b.example (the "one spelling of a domain" tests)
              gatewayIni: ['[chain]', `max_seal_age_seconds=${WINDOW_S}`, '[main]', `local_domains=${IDN_OWN}`],
            }
          : o,
    ),
  );
});
afterAll(async () => {
  await net?.stop();
  await capture?.close();
});

const SECRET = 'Binding secret: Heron-5150';
/** A local domain of b.example besides its own, internationalised: bücher.example, in ssmax.ini in its ASCII form. */
const IDN_OWN = 'xn--bcher-kva.example';
/**
 * b.example's [chain] max_seal_age_seconds: the freshness test (last, so that the other tests' time counts
 * towards its wait) waits until a seal made just after the network's CRLs is older than this; every other
 * seal of the suite is delivered within a few seconds of being made.
 */
const WINDOW_S = 15;

describe('sender binding at submission: a user logged in at the gateway (SMTP AUTH) sends only as that address', () => {
  const DAVE = { user: 'dave@a.example', pass: 'pw-dave' };
  const plain = (from: string, tag: string) =>
    Buffer.from(
      `From: ${from}\r\nTo: dave@a.example\r\nSubject: ${tag}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <${tag}@a.example>\r\n\r\n${SECRET} ${tag}\r\n`,
    );
  const delivered = (tag: string) =>
    net
      .org('a.example')
      .mailbox.for('dave@a.example')
      .filter((m) => m.raw.toString('latin1').includes(`${SECRET} ${tag}`)).length;

  test("dave (plain client) writes From: alice, or gives alice's envelope sender, or sends from the null sender as alice: 550 5.7.1, nothing delivered", async () => {
    const A = net.org('a.example');
    const refused =
      /^550 5\.7\.1 Sender address not owned by the authenticated user: (From|envelope sender) alice@a\.example, logged in as dave@a\.example/;
    expect(await smtp(A.ports.smtp, 'dave@a.example', ['dave@a.example'], plain('alice@a.example', 'bind-from'), DAVE)).toMatch(refused);
    expect(await smtp(A.ports.smtp, 'alice@a.example', ['dave@a.example'], plain('dave@a.example', 'bind-env'), DAVE)).toMatch(refused);
    expect(await smtp(A.ports.smtp, '', ['dave@a.example'], plain('Alice <alice@a.example>', 'bind-null'), DAVE)).toMatch(refused);
    // his own From with alice in the Sender field: the seal would vouch that alice sent it
    expect(
      await smtp(
        A.ports.smtp,
        'dave@a.example',
        ['dave@a.example'],
        plain('dave@a.example\r\nSender: alice@a.example', 'bind-sender'),
        DAVE,
      ),
    ).toMatch(/^550 5\.7\.1 Sender address not owned by the authenticated user: Sender alice@a\.example, logged in as dave@a\.example/);
    await new Promise((r) => setTimeout(r, 1000));
    expect(delivered('bind-from') + delivered('bind-env') + delivered('bind-null') + delivered('bind-sender')).toBe(0);
  });

  test("dave submits alice's own signed and encrypted message (a copy he obtained): 550 5.7.1, not sealed as alice's", async () => {
    const A = net.org('a.example');
    const alice = loadUserProfile(A.profiles['alice@a.example']!);
    const signed = await signAndEncrypt(alice, plain('alice@a.example', 'bind-signed'), { now: new Date() });
    const before = capture.mails.length;
    expect(await smtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], signed, DAVE)).toMatch(
      /^550 5\.7\.1 Sender address not owned by the authenticated user: From alice@a\.example, logged in as dave@a\.example/,
    );
    await new Promise((r) => setTimeout(r, 1000));
    expect(capture.mails.length).toBe(before);
  });

  test('his own address, in any case, in From and envelope: delivered (250)', async () => {
    const A = net.org('a.example');
    expect(await smtp(A.ports.smtp, 'Dave@A.example', ['dave@a.example'], plain('Dave <DAVE@a.example>', 'bind-own'), DAVE)).toMatch(
      /^250 /,
    );
    await waitFor(() => delivered('bind-own') === 1);
  });
});

/** Alice submits through a.example's real gateway; resolves to the copy it sent towards b.example. */
async function capturedFromAlice(tag: string, to: string[], bcc: string[] = []): Promise<Buffer> {
  const A = net.org('a.example');
  const alice = loadUserProfile(A.profiles['alice@a.example']!);
  const original = Buffer.from(
    `From: alice@a.example\r\nTo: ${to.join(', ')}\r\nSubject: ${tag}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n` +
      `Message-ID: <${tag}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${SECRET} ${tag}\r\n`,
  );
  const before = capture.mails.length;
  const r = await submitMessage(alice, await signAndEncrypt(alice, original, { now: new Date() }), { to: [...to, ...bcc] });
  expect(r.response).toMatch(/^250 /);
  await waitFor(() => capture.mails.length > before, 30000);
  return capture.mails[capture.mails.length - 1]!.raw;
}

/** `plain` encrypted to b.example's current key (profile "message"). */
async function encryptedToB(plain: Buffer): Promise<Buffer> {
  const B = net.org('b.example');
  const admin = B.admin();
  const pub = await admin.call<{ current: string; keys: { keyId: string; publicKey: string }[] }>('GET', '/v1/public');
  admin.close();
  const key = pub.keys.find((k) => k.keyId === pub.current)!;
  return collect(
    encryptMessage(plain, [{ keyId: key.keyId, publicKey: new Uint8Array(Buffer.from(key.publicKey, 'hex')) }], {
      group: groups.libsecp256k1,
      rng: systemRng,
    }),
  );
}

/**
 * A message sealed i=1 by `sealer` with its genuine sealing key, encrypted to b.example's current key (or, with
 * `plain`, sealed unencrypted), binding `bound`; `to` is its To field (default bob@b.example).
 * `innerFrom`: the From inside the ciphertext, when it is to differ from the sealed outer `from`.
 */
async function craft(
  sealer: OrgNode,
  from: string,
  bound: string[],
  opts: { time?: number; to?: string; plain?: boolean; innerFrom?: string; sender?: string } = {},
): Promise<Buffer> {
  const plain = Buffer.from(
    `From: ${opts.innerFrom ?? from}\r\n${opts.sender ? `Sender: ${opts.sender}\r\n` : ''}To: ${opts.to ?? 'bob@b.example'}\r\nSubject: crafted\r\nMessage-ID: <${randomBytes(6).toString('hex')}@x>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET}\r\n`,
  );
  const encrypted = opts.plain ? plain : await encryptedToB(plain);
  const outer = opts.innerFrom
    ? Buffer.from(encrypted.toString('latin1').replace(`From: ${opts.innerFrom}\r\n`, `From: ${from}\r\n`), 'latin1')
    : encrypted;
  const binding = bindRecipients(bound);
  const withField = prependField(outer, binding.field);
  const now = () => opts.time ?? Date.now();
  const chain = await verifyChain(withField, { lookup: () => undefined, now });
  const pki = (f: string) => join(sealer.fx.dir, f);
  const cert = parseCertificate(readFileSync(pki('seal.cert.pem'), 'utf8'));
  const sealed = await seal(withField, {
    domain: sealer.domain,
    certRef: certificateRef(cert.der),
    privateKey: privateKeyFromPem(readFileSync(pki('seal.key.pem'), 'utf8')),
    now,
    verdicts: [{ name: 'e2e', result: 'pass' }],
    trackingToken: randomBytes(32),
    chain,
    recipientCommitment: binding.commitment,
  });
  return Buffer.from(sealed.message);
}

const sealKeyOf = (o: OrgNode) => ({
  cert: parseCertificate(readFileSync(join(o.fx.dir, 'seal.cert.pem'), 'utf8')),
  key: privateKeyFromPem(readFileSync(join(o.fx.dir, 'seal.key.pem'), 'utf8')),
});
/** A certificate lookup over the genuine sealing certificates of `orgs`. */
const lookup =
  (...orgs: OrgNode[]): CertificateLookup =>
  (req) => {
    for (const o of orgs) {
      const { cert } = sealKeyOf(o);
      if (req.kind === 'seal' && req.certRef === certificateRef(cert.der))
        return { publicKey: p256PublicKeyFrom(cert.spki), domain: o.domain };
    }
    return undefined;
  };

/** The SSMAX-Seal fields of a message's header block, as they stand (folded), each with its CRLF. */
const sealFieldsOf = (message: Buffer): string =>
  splitHeaderBlock(message)
    .fields.filter((f) => isField(f, 'ssmax-seal'))
    .map((f) => `${f}\r\n`)
    .join('');

/**
 * What a list's organisation (c.example, genuine sealing key) sends on to bob@b.example: it verified `arrived`
 * (seal i=1 by a.example), made `changed` of it, and seals that as i=2 with `ls=list@c.example`, binding bob.
 */
async function listSeal(arrived: Buffer, changed: Buffer, opts: { time?: number } = {}): Promise<Buffer> {
  const chain = await verifyChain(arrived, { lookup: lookup(net.org('a.example')), now: Date.now });
  expect(chain.result).toBe('pass');
  const binding = bindRecipients(['bob@b.example']);
  const s = sealKeyOf(net.org('c.example'));
  const sealed = await seal(prependField(removeRecipientFields(changed), binding.field), {
    domain: 'c.example',
    certRef: certificateRef(s.cert.der),
    privateKey: s.key,
    now: () => opts.time ?? Date.now(),
    verdicts: [{ name: 'e2e', result: 'pass' }],
    chain,
    recipientCommitment: binding.commitment,
    listAddress: 'list@c.example',
  });
  return Buffer.from(sealed.message);
}

const B = () => net.org('b.example');
const toB = (rcpts: string[], raw: Buffer) => smtp(B().ports.smtp, 'peer@x.example', rcpts, raw);

describe('sender-domain alignment', () => {
  test('control: a message crafted and sealed by a.example itself for alice@a.example is accepted', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    expect(await toB(['bob@b.example'], await craft(net.org('a.example'), 'alice@a.example', ['bob@b.example']))).toMatch(/^250 /);
    expect(B().mailbox.for('bob@b.example')).toHaveLength(before + 1);
  });

  test('c.example (genuine certificates, same root) sealing From: ceo@a.example is refused with 5.7.21 naming both domains; nothing delivered', async () => {
    const before = B().mailbox.mails.length;
    const reply = await toB(['bob@b.example'], await craft(net.org('c.example'), 'ceo@a.example', ['bob@b.example']));
    expect(reply).toMatch(/^550 5\.7\.21 .*From domain a\.example, seal i=1 by c\.example/);
    expect(B().mailbox.mails.length).toBe(before);
  });

  test('c.example sealing a subdomain of a.example is refused too; its own domain passes', async () => {
    expect(await toB(['bob@b.example'], await craft(net.org('c.example'), 'ceo@mail.a.example', ['bob@b.example']))).toMatch(
      /^550 5\.7\.21 /,
    );
    expect(await toB(['bob@b.example'], await craft(net.org('c.example'), 'frank@c.example', ['bob@b.example']))).toMatch(/^250 /);
  });

  test('c.example sealing its own From with Sender: ceo@b.example ("ceo on behalf of frank") is refused with 5.7.21 naming the Sender; its own Sender passes', async () => {
    const before = B().mailbox.mails.length;
    const reply = await toB(
      ['bob@b.example'],
      await craft(net.org('c.example'), 'frank@c.example', ['bob@b.example'], { sender: 'ceo@b.example' }),
    );
    expect(reply).toMatch(/^550 5\.7\.21 .*Sender domain b\.example, seal i=1 by c\.example/);
    expect(B().mailbox.mails.length).toBe(before);
    expect(
      await toB(['bob@b.example'], await craft(net.org('c.example'), 'frank@c.example', ['bob@b.example'], { sender: 'desk@c.example' })),
    ).toMatch(/^250 /);
  });
});

describe('what a plain-client recipient reads is what the seals covered', () => {
  /** The header block of a delivered copy without the gateway's own fields: what carol's mail client shows. */
  const shown = (copy: Buffer) =>
    copy
      .toString('latin1')
      .slice(0, copy.indexOf('\r\n\r\n'))
      .split(/\r\n(?![ \t])/)
      .filter((f) => !/^(authentication-results|ssmax-seal|ssmax-recipients|received|return-path|delivered-to):/i.test(f));

  test('c.example seals From: frank@c.example over an inner From: ceo@b.example: carol sees From frank@c.example, the inner message only as an attachment', async () => {
    const before = B().mailbox.for('carol@b.example').length;
    const raw = await craft(net.org('c.example'), 'frank@c.example', ['carol@b.example'], { innerFrom: 'ceo@b.example' });
    expect(await toB(['carol@b.example'], raw)).toMatch(/^250 /);
    const copies = B().mailbox.for('carol@b.example');
    expect(copies).toHaveLength(before + 1);
    const copy = copies[copies.length - 1]!.raw;
    const fields = shown(copy);
    expect(fields.filter((f) => /^from:/i.test(f))).toEqual(['From: frank@c.example']);
    expect(fields.join('\n')).not.toContain('ceo@b.example');
    expect(copy.toString('latin1')).toMatch(/^Authentication-Results: b\.example; ssmax-chain=pass/m);
    expect(copy.toString('latin1')).toMatch(/Content-Type: message\/rfc822\r\n(?:.*\r\n)*?\r\nFrom: ceo@b\.example\r\n/);
  });

  test("control: a.example's own mail to carol keeps its inner message byte for byte", async () => {
    const before = B().mailbox.for('carol@b.example').length;
    expect(await toB(['carol@b.example'], await craft(net.org('a.example'), 'alice@a.example', ['carol@b.example']))).toMatch(/^250 /);
    const copy = B().mailbox.for('carol@b.example')[before]!.raw.toString('latin1');
    expect(copy).not.toContain('message/rfc822');
    expect(copy).toMatch(/\r\nFrom: alice@a\.example\r\nTo: bob@b\.example\r\nSubject: crafted\r\n/);
  });
});

describe('unsealed mail claiming an SSMAX organisation through a subdomain', () => {
  const unsealed = (from: string) =>
    Buffer.from(
      `From: ${from}\r\nTo: bob@b.example\r\nSubject: payroll\r\nMessage-ID: <${randomBytes(6).toString('hex')}@x>\r\n` +
        `Date: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nplease update your bank details\r\n`,
    );

  test.each([
    ['payroll@hr.b.example', 'b\\.example'],
    ['it@x.y.hr.b.example', 'b\\.example'],
    ['ceo@mail.a.example', 'a\\.example'],
  ])('From: %s (no bundle of its own) is refused with 5.7.7 naming the organisation; nothing delivered', async (from, org) => {
    const before = B().mailbox.mails.length;
    expect(await toB(['bob@b.example'], unsealed(from))).toMatch(
      new RegExp(`^550 5\\.7\\.7 .*unsealed message from SSMAX domain .*\\(the organisation ${org}\\)`),
    );
    expect(B().mailbox.mails.length).toBe(before);
  });

  test.each(['payroll@b.example.', 'ceo@A.Example.', 'it@hr.b.example.'])(
    'From: %s (an SSMAX domain spelt with a trailing dot) is refused with 5.6.0; nothing delivered',
    async (from) => {
      const before = B().mailbox.mails.length;
      expect(await toB(['bob@b.example'], unsealed(from))).toMatch(/^550 5\.6\.0 Malformed message: From domain .* is not a domain name/);
      expect(B().mailbox.mails.length).toBe(before);
    },
  );

  test('control: ordinary Internet mail (a domain with no SSMAX above it) is delivered', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    expect(await toB(['bob@b.example'], unsealed('news@mail.plain.example'))).toMatch(/^250 /);
    expect(B().mailbox.for('bob@b.example')).toHaveLength(before + 1);
  });

  test('ordinary Internet mail with a Sender of an SSMAX domain is refused like such a From; nothing delivered', async () => {
    const before = B().mailbox.mails.length;
    // one address, or several (a Sender that breaks the one-mailbox rule still shows whom it names)
    for (const sender of ['ceo@a.example', 'news@mail.plain.example, ceo@a.example']) {
      const raw = Buffer.from(
        unsealed('news@mail.plain.example').toString('latin1').replace('\r\nTo: ', `\r\nSender: ${sender}\r\nTo: `),
        'latin1',
      );
      expect(await toB(['bob@b.example'], raw)).toMatch(/^550 .*unsealed message with a Sender of SSMAX domain a\.example/);
    }
    expect(B().mailbox.mails.length).toBe(before);
  });
});

describe('one spelling of a domain: a Unicode spelling of an SSMAX domain is that domain (docs/security.md)', () => {
  /** Unsealed mail, its header written unencoded in UTF-8 (what mailsplit reads as Unicode). */
  const unsealed = (from: string) =>
    Buffer.from(
      `From: ${from}\r\nTo: bob@b.example\r\nSubject: payroll\r\nMessage-ID: <${randomBytes(6).toString('hex')}@x>\r\n` +
        `Date: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nplease update your bank details\r\n`,
      'utf8',
    );

  test.each([
    ['ceo@\uff41.example', 'a peer with a bundle, in full-width letters', 'a\\.example'],
    ['ceo@a\u00ad.example', 'a peer with a bundle, with a soft hyphen', 'a\\.example'],
    ['payroll@bücher.example', "b.example's own internationalised domain, unencoded", 'xn--bcher-kva\\.example'],
    ['payroll@B\u00dcCHER.example', 'the same in capitals', 'xn--bcher-kva\\.example'],
    ['it@hr.\uff42.example', "a subdomain of b.example's own domain", 'b\\.example'],
  ])('unsealed From: %s (%s) is refused with 5.7.7 naming the organisation; nothing delivered', async (from, _what, org) => {
    const before = B().mailbox.mails.length;
    expect(await toB(['bob@b.example'], unsealed(from))).toMatch(
      new RegExp(`^550 5\\.7\\.7 .*unsealed message from SSMAX domain .*${org}`),
    );
    expect(B().mailbox.mails.length).toBe(before);
  });

  test('unsealed From: whose domain maps to no name (a zero-width joiner, a broken A-label) is refused with 5.6.0', async () => {
    for (const from of ['ceo@a\u200d.example', 'ceo@xn--zz.example'])
      expect(await toB(['bob@b.example'], unsealed(from))).toMatch(/^550 5\.6\.0 Malformed message: From domain .* is not a domain name/);
  });

  test("a.example's seal over From: alice@ａ.example (full-width) is accepted as over alice@a.example; c.example's over it is refused with 5.7.21", async () => {
    const before = B().mailbox.for('bob@b.example').length;
    expect(await toB(['bob@b.example'], await craft(net.org('a.example'), 'alice@\uff41.example', ['bob@b.example']))).toMatch(/^250 /);
    expect(B().mailbox.for('bob@b.example')).toHaveLength(before + 1);
    const reply = await toB(['bob@b.example'], await craft(net.org('c.example'), 'ceo@\uff41.example', ['bob@b.example']));
    expect(reply).toMatch(/^550 5\.7\.21 .*From domain a\.example, seal i=1 by c\.example/);
    expect(B().mailbox.for('bob@b.example')).toHaveLength(before + 1);
  });

  test('RCPT TO a Unicode spelling of b.example reaches bob@b.example; one that maps to no name is refused (550 5.1.2), as is such a MAIL FROM (5.1.7)', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    const plain = unsealed('news@mail.plain.example');
    expect(await rawSmtp(B().ports.smtp, 'news@mail.plain.example', ['bob@\uff42.example'], plain)).toMatch(/^250 /);
    expect(B().mailbox.for('bob@b.example')).toHaveLength(before + 1);
    // a broken A-label passes Haraka's own address check: the gateway refuses it (Haraka refuses a Unicode name it cannot map itself, 501)
    expect(await rawSmtp(B().ports.smtp, 'news@mail.plain.example', ['bob@xn--zz.example'], plain)).toMatch(
      /^550 5\.1\.2 Recipient domain is not a domain name/,
    );
    expect(await rawSmtp(B().ports.smtp, 'news@mail.plain.example', ['bob@b\u200d.example'], plain)).toMatch(/^5\d\d /);
    expect(await rawSmtp(B().ports.smtp, 'news@xn--zz.example', ['bob@b.example'], plain)).toMatch(
      /^550 5\.1\.7 Sender address domain is not a domain name/,
    );
    expect(B().mailbox.for('bob@b.example')).toHaveLength(before + 1);
  });
});

describe('recipient binding', () => {
  let captured: Buffer;
  beforeAll(async () => {
    captured = await capturedFromAlice('rb1', ['bob@b.example'], ['erin@b.example']);
  });

  test('the copy a.example sent binds its recipients without naming them', () => {
    const text = captured.toString('latin1');
    expect(text).toMatch(/SSMAX-Seal: v=1; i=1; d=a\.example;[\s\S]*rc=/);
    expect(text).not.toMatch(/erin/i); // the Bcc recipient is nowhere in the copy
    expect(text).toMatch(/^SSMAX-Recipients: v=1; k=[A-Za-z0-9_-]{43}; r=/m); // two tags (bob, erin), names hidden
  });

  test('a recipient rewritten at the receiving side (SSMAX client and plain client) is refused and nothing delivered', async () => {
    const before = B().mailbox.mails.length;
    expect(await toB(['carol@b.example'], captured)).toMatch(/^550 5\.7\.1 Recipient not bound.*carol@b\.example/);
    expect(await toB(['bob@b.example', 'carol@b.example'], captured)).toMatch(/^550 5\.7\.1 Recipient not bound.*carol@b\.example/);
    expect(B().mailbox.mails.length).toBe(before);
  });

  test('an SSMAX-Recipients field rewritten to name another recipient is refused', async () => {
    const forged = bindRecipients(['carol@b.example']).field;
    const text = captured.toString('latin1').replace(/SSMAX-Recipients:[^\r]*(\r\n[ \t][^\r]*)*/, forged);
    expect(await toB(['carol@b.example'], Buffer.from(text, 'latin1'))).toMatch(/^550 5\.7\.1 .*does not match the seal's rc= commitment/);
  });

  test('the bound recipients get it, each copy sealed for that recipient alone; Bcc stays hidden; replays are delivered at most once', async () => {
    expect(await toB(['bob@b.example', 'erin@b.example'], captured)).toMatch(/^250 /);
    const bob = B()
      .mailbox.for('bob@b.example')
      .filter((m) => m.raw.includes(`${SECRET} rb1`) || m.raw.toString('latin1').includes('Subject: rb1'));
    expect(bob).toHaveLength(1);
    expect(bob[0]!.raw.toString('latin1')).not.toMatch(/erin/i);
    // the incoming SSMAX-Recipients field (two tags) was removed; bob's copy carries one, for bob alone
    const fields = bob[0]!.raw.toString('latin1').match(/^SSMAX-Recipients:[^\r]*(\r\n[ \t][^\r]*)*/gim) ?? [];
    expect(fields).toHaveLength(1);
    expect(fields[0]!.replace(/\r\n[ \t]/g, ' ')).toMatch(/; r=[A-Za-z0-9_-]{43}$/);
    expect(captured.toString('latin1')).toMatch(/; r=[A-Za-z0-9_-]{43},\s*[A-Za-z0-9_-]{43}\r\n/);
    const profile = loadUserProfile(B().profiles['bob@b.example']!);
    const opened = await openMessage(profile, bob[0]!.raw, { now: new Date() });
    expect(opened.plaintext.toString()).toContain(`${SECRET} rb1`);
    expect(opened.trace).toContain(
      'alignment: From domain a.example, seal i=1 by a.example: aligned; recipient: you (bob@b.example) are named by seal i=2',
    );
    // erin's copy does not open as bob's: its newest seal names erin
    const erin = B()
      .mailbox.for('erin@b.example')
      .filter((m) => m.raw.toString('latin1').includes('Subject: rb1'));
    expect(erin).toHaveLength(1);
    await expect(openMessage(profile, erin[0]!.raw, { now: new Date() })).rejects.toThrow(OpenError);

    // replay: the same sealed message with added and changed unprotected headers
    const count = () => B().mailbox.mails.filter((m) => m.raw.toString('latin1').includes('Subject: rb1')).length;
    const before = count();
    const replayed = Buffer.concat([Buffer.from('Received: from evil.example by relay\r\nX-Replay: 1\r\n'), captured]);
    expect(await toB(['bob@b.example'], replayed)).toMatch(/^250 /);
    expect(await toB(['bob@b.example', 'erin@b.example'], captured)).toMatch(/^250 /);
    expect(count()).toBe(before);
  });
});

describe("keyd's organisation anchor", () => {
  test("with only the root in client_ca, c.example's inspector is 401 at b.example's keyd; b.example's own inspector is served", async () => {
    const Bn = B();
    const ini = readFileSync(Bn.fx.configFile, 'utf8');
    writeFileSync(Bn.fx.configFile, ini.replace('client_ca=org-ca.pem,root.pem', 'client_ca=root.pem'));
    try {
      await Bn.restartKeyd();
      const C = net.org('c.example');
      const client = (fx: typeof C.fx) =>
        new KeydClient({
          url: `https://127.0.0.1:${Bn.ports.keyd}`,
          servername: 'keyd.b.example',
          ca: Bn.fx.caPem,
          cert: fx.clients.inspector.cert + fx.orgCa.certificate.pem,
          key: fx.clients.inspector.key,
        });
      const foreign = client(C.fx);
      const err = await foreign.call('GET', '/v1/health').then(
        () => undefined,
        (e: unknown) => e,
      );
      foreign.close();
      expect(err).toBeInstanceOf(KeydClientError);
      expect((err as KeydClientError).status).toBe(401);
      const own = client(Bn.fx);
      await expect(own.call('GET', '/v1/health')).resolves.toMatchObject({ ok: true, role: 'inspector' });
      own.close();
    } finally {
      writeFileSync(Bn.fx.configFile, ini);
      await Bn.restartKeyd();
    }
  });

  test('keyd refuses to start without [pki] org_ca', async () => {
    const Bn = B();
    const ini = readFileSync(Bn.fx.configFile, 'utf8');
    const file = join(Bn.fx.dir, 'no-anchor.ini');
    writeFileSync(
      file,
      ini
        .replace(/^org_ca=.*\n/m, '')
        .replace(/listen=127\.0\.0\.1:\d+/, 'listen=127.0.0.1:0')
        .replace('data_dir=data', 'data_dir=data-no-anchor'),
    );
    await expect(startService(['keyd', 'run', '--config', file], /keyd listening on [^:]+:(\d+)/)).rejects.toThrow(
      /\[pki\] org_ca: is required/,
    );
  });
});

describe('`ssmax user open` (the CLI, as a process) checks alignment itself', () => {
  const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');
  const bundleOf = (o: OrgNode) =>
    new Promise<string>((resolve, reject) => {
      const u = new URL(o.bundleUrl);
      const req = request({ host: '127.0.0.1', port: u.port, path: u.pathname, servername: u.hostname, ca: o.fx.caPem }, (r) => {
        const parts: Buffer[] = [];
        r.on('data', (c: Buffer) => parts.push(c));
        r.on('end', () =>
          r.statusCode === 200 ? resolve(Buffer.concat(parts).toString('utf8')) : reject(new Error(`bundle: HTTP ${r.statusCode}`)),
        );
      });
      req.on('error', reject);
      req.end();
    });

  /**
   * What bob's mailbox would hold had b.example's gateway not checked alignment: seal i=1 by `sealer` for
   * `from`, encrypted to bob's own key, then seal i=2 by b.example (genuine key) binding bob alone.
   */
  async function deliveredToBob(sealer: OrgNode, from: string, tag: string): Promise<Buffer> {
    const bob = loadUserProfile(B().profiles['bob@b.example']!);
    const plain = Buffer.from(
      `From: ${from}\r\nTo: bob@b.example\r\nSubject: ${tag}\r\nMessage-ID: <${randomBytes(6).toString('hex')}@x>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET} ${tag}\r\n`,
    );
    const encrypted = await collect(
      encryptMessage(plain, [{ keyId: bob.encryption.keyId, publicKey: bob.encryption.publicKey }], {
        group: groups.libsecp256k1,
        rng: systemRng,
      }),
    );
    const first = bindRecipients(['bob@b.example']);
    const s1 = sealKeyOf(sealer);
    const hop1 = await seal(prependField(encrypted, first.field), {
      domain: sealer.domain,
      certRef: certificateRef(s1.cert.der),
      privateKey: s1.key,
      now: Date.now,
      verdicts: [{ name: 'e2e', result: 'pass' }],
      trackingToken: randomBytes(32),
      chain: await verifyChain(prependField(encrypted, first.field), { lookup: () => undefined, now: Date.now }),
      recipientCommitment: first.commitment,
    });
    const chain = await verifyChain(hop1.message, { lookup: lookup(sealer), now: Date.now });
    expect(chain.result).toBe('pass');
    const second = bindRecipients(['bob@b.example']);
    const s2 = sealKeyOf(B());
    const hop2 = await seal(prependField(removeRecipientFields(hop1.message), second.field), {
      domain: 'b.example',
      certRef: certificateRef(s2.cert.der),
      privateKey: s2.key,
      now: Date.now,
      verdicts: [{ name: 'av', result: 'pass' }],
      chain,
      recipientCommitment: second.commitment,
    });
    return Buffer.from(hop2.message);
  }

  const open = (file: string, peerBundle: string) =>
    new Promise<{ code: number; out: string; err: string }>((resolve) => {
      execFile(
        process.execPath,
        [BIN, 'user', 'open', '--profile', B().profiles['bob@b.example']!, '--in', file, '--peer-bundle', peerBundle],
        { encoding: 'utf8' },
        (err, out, errText) => {
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out, err: errText });
        },
      );
    });

  test("c.example's seal i=1 on From: ceo@a.example is refused naming both domains, though every seal verifies; c.example's own mail opens", async () => {
    const C = net.org('c.example');
    const cBundle = join(B().dir, 'c-bundle.json');
    writeFileSync(cBundle, await bundleOf(C));
    const forged = join(B().dir, 'impersonation.eml');
    writeFileSync(forged, await deliveredToBob(C, 'ceo@a.example', 'imp1'));
    const refused = await open(forged, cBundle);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/the From domain a\.example is not aligned with seal i=1 by c\.example/);
    expect(refused.out + refused.err).not.toContain(SECRET);

    const own = join(B().dir, 'own.eml');
    writeFileSync(own, await deliveredToBob(C, 'frank@c.example', 'imp2'));
    const opened = await open(own, cBundle);
    expect(opened.err).toBe('');
    expect(opened.code).toBe(0);
    expect(opened.out).toContain(
      'alignment: From domain c.example, seal i=1 by c.example: aligned; recipient: you (bob@b.example) are named by seal i=2',
    );
    expect(opened.out).toContain(`${SECRET} imp2`);
  });
});

describe('a list\'s seal over another organisation\'s mail (docs/security.md, "Tampering by a later hop")', () => {
  const delivered = (tag: string) => B().mailbox.mails.filter((m) => m.raw.toString('latin1').includes(tag)).length;

  test("control: a.example's post to list@c.example, re-sealed unchanged by c.example for bob, is accepted (encrypted and not)", async () => {
    const A = net.org('a.example');
    for (const plain of [false, true]) {
      const post = await craft(A, 'alice@a.example', ['list@c.example'], { to: 'list@c.example', plain });
      const before = B().mailbox.for('bob@b.example').length;
      expect(await toB(['bob@b.example'], await listSeal(post, post))).toMatch(/^250 /);
      expect(B().mailbox.for('bob@b.example')).toHaveLength(before + 1);
    }
  });

  test('a new body, re-encrypted to b.example under a kept seal i=1 of a.example, with From, To/Cc and Subject rewritten, is refused with 5.7.7; nothing delivered', async () => {
    const post = await craft(net.org('a.example'), 'alice@a.example', ['someone@c.example'], { to: 'someone@c.example' });
    const forgedPlain = Buffer.from(
      'From: ceo@a.example\r\nTo: list@c.example\r\nCc: bob@b.example\r\nSubject: Urgent: wire the money today\r\n' +
        'Message-ID: <forged-body@x>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nforged-body: pay IBAN XX00 today\r\n',
    );
    const forged = Buffer.concat([Buffer.from(sealFieldsOf(post), 'latin1'), await encryptedToB(forgedPlain)]);
    const before = delivered('forged-body');
    expect(await toB(['bob@b.example'], await listSeal(post, forged))).toMatch(
      /^550 5\.7\.7 SSMAX chain fails: the body is not the one an earlier seal signed: .*seal 1 \(a\.example\)/,
    );
    expect(delivered('forged-body')).toBe(before);
  });

  test('a sealed-unencrypted message of a.example with From, To/Cc and Subject rewritten under its seal i=1 is refused with 5.7.7, also dressed up with a capsule', async () => {
    const post = await craft(net.org('a.example'), 'alice@a.example', ['someone@c.example'], { to: 'someone@c.example', plain: true });
    const rewritten = Buffer.from(
      post
        .toString('latin1')
        .replace('From: alice@a.example', 'From: ceo@a.example')
        .replace('To: someone@c.example', 'To: list@c.example\r\nCc: bob@b.example')
        .replace('Subject: crafted', 'Subject: Urgent: wire the money today'),
      'latin1',
    );
    const refusal =
      /^550 5\.7\.7 SSMAX chain fails: protected header fields of an unencrypted message changed after an earlier seal: .*seal 1 \(a\.example\)/;
    const before = B().mailbox.mails.length;
    expect(await toB(['bob@b.example'], await listSeal(post, rewritten))).toMatch(refusal);
    // a capsule for b.example and SSMAX-Version added, so that the message looks encrypted: its body (seal i=1's bh=) is not
    const capsule = (await encryptedToB(Buffer.from('From: x@a.example\r\n\r\nx\r\n')))
      .toString('latin1')
      .match(/^SSMAX-Capsule:[^\r]*(\r\n[ \t][^\r]*)*\r\n/m)![0];
    const dressed = Buffer.concat([Buffer.from(`SSMAX-Version: 1\r\n${capsule}`, 'latin1'), rewritten]);
    expect(await toB(['bob@b.example'], await listSeal(post, dressed))).toMatch(refusal);
    expect(B().mailbox.mails.length).toBe(before);
  });
});

describe('freshness', () => {
  test(`a seal older than the window ([chain] max_seal_age_seconds, ${WINDOW_S} s at b.example here) is refused with 5.4.7; a younger one passes`, async () => {
    const A = net.org('a.example');
    // the oldest time a.example's sealing certificate validates at: after both CRLs were issued
    const issued = Math.max(
      ...['org-ca.crl.pem', 'root.crl.pem'].map((f) => parseCrl(readFileSync(join(A.fx.dir, f), 'utf8')).thisUpdate.getTime()),
    );
    const oldTime = Math.ceil(issued / 1000) * 1000 + 1000;
    const wait = oldTime + (WINDOW_S + 5) * 1000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const old = await craft(A, 'alice@a.example', ['bob@b.example'], { time: oldTime });
    const before = B().mailbox.mails.length;
    expect(await toB(['bob@b.example'], old)).toMatch(
      new RegExp(
        `^550 5\\.4\\.7 SSMAX seal older than this gateway accepts: seal i=1 by a\\.example is \\d+ s old, the limit is ${WINDOW_S} s`,
      ),
    );
    expect(B().mailbox.mails.length).toBe(before);
    const recent = await craft(A, 'alice@a.example', ['bob@b.example']);
    expect(await toB(['bob@b.example'], recent)).toMatch(/^250 /);

    // a list's organisation that kept a.example's seal i=1 longer than the window and re-seals it now: refused, though its own seal is fresh
    const kept = await craft(A, 'alice@a.example', ['list@c.example'], { to: 'list@c.example', time: oldTime });
    expect(await toB(['bob@b.example'], await listSeal(kept, kept))).toMatch(
      new RegExp(
        `^550 5\\.4\\.7 SSMAX seals out of order or made further apart than this gateway accepts: seal i=2 by c\\.example was made \\d+ s after seal i=1 by a\\.example, the limit is ${WINDOW_S} s`,
      ),
    );
    expect(B().mailbox.mails.length).toBe(before + 1);
  });
});
