/**
 * The gateway as an administrator installs it: the organisation's own
 * Postfix in front (the gateway is its smarthost, trusted by IP allow-list:
 * [main] trusted_relays) and Dovecot behind, all real processes on loopback:
 *
 *   a.example: user → Postfix (submission) → gateway A ─┐   gateway A → Postfix (inbound) → Dovecot A (LMTP)
 *   b.example:                    gateway B ←───────────┘   gateway B → Dovecot B (LMTP, [delivery] protocol=lmtp)
 *
 * Postfix's smtp client speaks to the gateway from 127.0.0.2 (its
 * smtp_bind_address), the only trusted relay address: gateway B, also on
 * loopback, is not one. A second Postfix is trusted by its SMTP AUTH login
 * instead ([main] trusted_relay_logins), from 127.0.0.1. Messages are read
 * from the Maildir files Dovecot wrote.
 */
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/demo/haraka';
import { type Network, type OrgSpec, startNetwork } from '../../src/demo/network';
import { openMessage } from '../../src/user/open';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { type DovecotLmtp, startDovecotLmtp } from '../support/dovecot';
import { type PostfixInstance, startPostfix } from '../support/postfix';
import { rawSmtp, smtp, waitFor, expectLogged } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
let dovA: DovecotLmtp;
let dovB: DovecotLmtp;
let postfix: PostfixInstance;
let saslPostfix: PostfixInstance;

/**
 * The mail in `now` that was not in `before`: Maildir names sort by the second
 * of delivery, then a random part, so an index says nothing within a second.
 */
function newMail(now: Buffer[], before: Buffer[], marker?: string): Buffer {
  const fresh = now.filter((m) => !before.some((b) => b.equals(m)));
  const mine = fresh.length > 1 && marker ? fresh.filter((m) => m.includes(marker)) : fresh;
  if (mine.length !== 1)
    throw new Error(`expected one new mail${marker ? ` with ${marker}` : ''}, found ${mine.length} of ${fresh.length}`);
  return mine[0]!;
}

/** A Maildir file as an IMAP server serves it (CRLF line ends; Dovecot stores LF). */
const served = (file: Buffer) => Buffer.from(file.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');

/** The tracking token of seal i=1 (tt=). */
function trackingToken(message: Buffer): string {
  const head = message
    .subarray(0, message.indexOf('\r\n\r\n'))
    .toString('latin1')
    .replace(/\r\n[ \t]+/g, ' ');
  const seal = head.split('\r\n').find((l) => /^SSMAX-Seal:.*\bi=1;/i.test(l));
  const tt = seal && /\btt=([A-Za-z0-9_-]+)/.exec(seal)?.[1];
  if (!tt) throw new Error(`no seal i=1 with a tracking token in:\n${head}`);
  return tt;
}

async function resolveAtA(
  token: string,
  domain = 'a.example',
): Promise<{ user: { address: string }; submitter?: { id: string; via: string } }> {
  const admin = net.org(domain).admin();
  try {
    return await admin.call('POST', '/v1/tracking/resolve', { token });
  } finally {
    admin.close();
  }
}

const explain = () =>
  `--- postfix ---\n${postfix?.log().slice(-3000)}\n--- gateway A ---\n${net?.org('a.example').haraka.logs().slice(-3000)}\n--- gateway B ---\n${net?.org('b.example').haraka.logs().slice(-2000)}\n--- dovecot A ---\n${dovA?.log().slice(-1500)}\n--- dovecot B ---\n${dovB?.log().slice(-1500)}`;

beforeAll(async () => {
  // Dovecot A also authenticates a.example's users for Postfix (smtpd_sasl_type = dovecot)
  dovA = await startDovecotLmtp(['alice@a.example', 'dave@a.example'], {
    passwords: { 'alice@a.example': 'pw-alice', 'dave@a.example': 'pw-dave' },
    authService: true,
  });
  dovB = await startDovecotLmtp(['bob@b.example', 'carol@b.example']);
  const ports = { submission: await freePort(), inbound: await freePort() };
  const specs: OrgSpec[] = [
    {
      domain: 'a.example',
      users: [
        { address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' },
        { address: 'dave@a.example', client: 'plain', password: 'pw-dave' },
      ],
      gatewayIni: [
        '[main]',
        'trusted_relays=127.0.0.2',
        'trusted_relay_logins=mta-relay',
        '[delivery]',
        `host=127.0.0.1:${ports.inbound}`,
        'protocol=smtp',
      ],
    },
    {
      domain: 'b.example',
      users: [
        { address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' },
        { address: 'carol@b.example', client: 'plain', password: 'pw-carol' },
      ],
      gatewayIni: ['[delivery]', `host=127.0.0.1:${dovB.port}`, 'protocol=lmtp'],
    },
  ];
  net = await startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-mta-')), specs);
  // the relay account of the second Postfix, in gateway A's authentication plugin (not a registered user)
  const A = net.org('a.example');
  appendFileSync(join(A.harakaDir, 'config', 'auth_flat_file.ini'), 'mta-relay=pw-relay\n');
  await A.restartHaraka();
  postfix = await startPostfix({
    myhostname: 'mta.a.example',
    relayhost: `127.0.0.1:${net.org('a.example').ports.smtp}`,
    bindAddress: '127.0.0.2',
    deliverTo: `lmtp:inet:127.0.0.1:${dovA.port}`,
    ports,
    userAuth: {
      dovecot: `inet:127.0.0.1:${dovA.authPort}`,
      senderLogins: { 'alice@a.example': 'alice@a.example', 'dave@a.example': 'dave@a.example' },
    },
  });
  saslPostfix = await startPostfix({
    myhostname: 'mta2.a.example',
    relayhost: `127.0.0.1:${A.ports.smtp}`,
    bindAddress: '127.0.0.1',
    deliverTo: `lmtp:inet:127.0.0.1:${dovA.port}`,
    sasl: { user: 'mta-relay', pass: 'pw-relay' },
  });
});
afterAll(async () => {
  await saslPostfix?.stop();
  await postfix?.stop();
  await net?.stop();
  await dovA?.stop();
  await dovB?.stop();
});

describe('Postfix in front, Dovecot behind', () => {
  const original = Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: Through Postfix\r\nDate: Sun, 06 Dec 2026 03:30:00 +0000\r\n' +
      'Message-ID: <pf-1@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSecret via the smarthost: Heron-5521\r\n',
  );

  test("alice hands a signed, encrypted message to Postfix; it reaches bob's Maildir in Dovecot over LMTP and bob opens it", async () => {
    const alice = loadUserProfile(net.org('a.example').profiles['alice@a.example']!);
    const sealed = await signAndEncrypt(alice, original, { now: new Date() });
    expect(await smtp(postfix.submissionPort, 'alice@a.example', ['bob@b.example'], sealed)).toMatch(/^250 /);
    await waitFor(() => dovB.mails('bob@b.example').length >= 1, 30000, explain);
    // Postfix relayed it from its smtp_bind_address, without SMTP AUTH: the gateway trusted it by address
    await expectLogged(
      () => postfix.log(),
      /to=<bob@b\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent \(250 Queued \(SSMAX client mode, 1 copy\) /,
    );
    const bobsFile = dovB.mails('bob@b.example')[0]!;
    expect(bobsFile.toString('latin1')).toMatch(/^Received: from [^\n]*\n\s+by \S+ with LMTP/m);
    const bob = loadUserProfile(net.org('b.example').profiles['bob@b.example']!);
    const opened = await openMessage(bob, served(bobsFile), { now: new Date() });
    expect(opened.encrypted).toBe(true);
    expect(opened.plaintext).toEqual(original);
    expect(opened.hops.map((h) => [h.instance, h.domain])).toEqual([
      [1, 'a.example'],
      [2, 'b.example'],
    ]);
    // the tracking token records the From (alice, registered) and who handed it in (the sender Postfix vouched for)
    const r = await resolveAtA(trackingToken(served(bobsFile)));
    expect(r.user.address).toBe('alice@a.example');
    expect(r.submitter).toEqual({ id: 'alice@a.example', via: 'trusted-relay' });
  });

  test('dave hands in plain mail with alice in From: the token records both (From alice, submitter dave)', async () => {
    const plain =
      'From: alice@a.example\r\nTo: carol@b.example\r\nSubject: Not from alice\r\nDate: Sun, 06 Dec 2026 03:31:00 +0000\r\nMessage-ID: <pf-2@a.example>\r\n\r\nhello carol\r\n';
    expect(await smtp(postfix.submissionPort, 'dave@a.example', ['carol@b.example'], plain)).toMatch(/^250 /);
    await waitFor(() => dovB.mails('carol@b.example').length >= 1, 30000, explain);
    const carols = served(dovB.mails('carol@b.example')[0]!);
    expect(carols.toString('latin1')).toMatch(/hello carol/);
    expect(carols.toString('latin1')).toMatch(/ssmax-mode=transparent/);
    const r = await resolveAtA(trackingToken(carols));
    expect(r.user.address).toBe('alice@a.example');
    expect(r.submitter).toEqual({ id: 'dave@a.example', via: 'trusted-relay' });
  });

  test("Postfix's own bounce (MAIL FROM:<>) to alice is accepted from the trusted relay and lands in her Maildir", async () => {
    const before = dovA.mails('alice@a.example');
    const msg =
      'From: alice@a.example\r\nTo: nobody@a.example\r\nSubject: To nobody\r\nDate: Sun, 06 Dec 2026 03:32:00 +0000\r\nMessage-ID: <pf-3@a.example>\r\n\r\nanyone there?\r\n';
    expect(await smtp(postfix.submissionPort, 'alice@a.example', ['nobody@a.example'], msg)).toMatch(/^250 /);
    await waitFor(() => dovA.mails('alice@a.example').length > before.length, 30000, explain);
    const bounce = served(newMail(dovA.mails('alice@a.example'), before, 'pf-3@a.example')).toString('latin1');
    expect(bounce).toMatch(/^From: Mail Delivery System <MAILER-DAEMON@mta\.a\.example>/m);
    expect(bounce).toMatch(/^Subject: Undelivered Mail Returned to Sender/m);
    expect(bounce).toMatch(/nobody@a\.example/);
    expect(bounce).toMatch(/5\.1\.1/);
    // the gateway took it as a notice of the trusted relay, and handed it back to Postfix's inbound listener
    await expectLogged(() => net.org('a.example').haraka.logs(), /Delivered \(notice from a trusted relay, 1 recipient\)/);
    expect(bounce).toMatch(/^Received: from mta\.a\.example \(\[127\.0\.0\.2\]\)\r\n\s+by mx\.a\.example \(Haraka/m); // from Postfix's smtp_bind_address
    expect(bounce).toMatch(/^Received: from [^\n]*\n\s+by mta\.a\.example \(Postfix\) with ESMTP/m); // back through Postfix's inbound listener
  });

  test("a submission through the trusted relay whose Sender field names another organisation's address: 550 5.7.1 (the user tool would refuse it as not aligned); one of this organisation's passes", async () => {
    const mail = (sender: string, tag: string) =>
      Buffer.from(
        `From: alice@a.example\r\nSender: ${sender}\r\nTo: dave@a.example\r\nSubject: On behalf\r\nDate: Sun, 06 Dec 2026 03:40:00 +0000\r\nMessage-ID: <${tag}@a.example>\r\n\r\nplain words\r\n`,
      );
    const viaRelay = (raw: Buffer) =>
      rawSmtp(net.org('a.example').ports.smtp, 'alice@a.example', ['dave@a.example'], raw, undefined, '127.0.0.2');
    expect(await viaRelay(mail('ceo@b.example', 'pf-s1'))).toMatch(
      /^550 5\.7\.1 Sender field names an address of another organisation: Sender ceo@b\.example/,
    );
    expect(await viaRelay(mail('alice@a.example, ceo@b.example', 'pf-s3'))).toMatch(/^550 5\.7\.1 .*\(not one address\)/);
    expect(await viaRelay(mail('dave@a.example', 'pf-s2'))).toMatch(/^250 /);
    // a subdomain without a bundle of its own is this organisation's, as seal alignment counts it
    expect(await viaRelay(mail('robot@apps.a.example', 'pf-s4'))).toMatch(/^250 /);
  });

  test('null-sender mail from the trusted relay for a user of another organisation: 550 5.7.1, nothing sent', async () => {
    const notice = Buffer.from(
      'From: MAILER-DAEMON@mta.a.example\r\nTo: bob@b.example\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <pf-8@a.example>\r\n\r\nnotice\r\n',
    );
    const bobs = dovB.mails('bob@b.example').length;
    const reply = await rawSmtp(net.org('a.example').ports.smtp, '', ['bob@b.example'], notice, undefined, '127.0.0.2');
    expect(reply).toMatch(/^550 5\.7\.1 Null-sender mail from a trusted relay goes to local users only: bob@b\.example/);
    await new Promise((r) => setTimeout(r, 1000));
    expect(dovB.mails('bob@b.example')).toHaveLength(bobs);
  });

  test("null-sender mail from the trusted relay that is no delivery status report, or a report in a user's name: 550 5.7.1, nothing delivered", async () => {
    const before = dovA.mails('alice@a.example').length;
    const mail = (from: string, type: string, tag: string) =>
      Buffer.from(
        `From: ${from}\r\nTo: alice@a.example\r\nSubject: Salary review\r\nMessage-ID: <${tag}@a.example>\r\nMIME-Version: 1.0\r\n` +
          `Content-Type: ${type}\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nPlease confirm your bank details (${tag}).\r\n--b--\r\n`,
      );
    const viaRelay = (raw: Buffer) => rawSmtp(net.org('a.example').ports.smtp, '', ['alice@a.example'], raw, undefined, '127.0.0.2');
    expect(await viaRelay(mail('CEO <ceo@a.example>', 'multipart/mixed; boundary="b"', 'pf-n1'))).toMatch(
      /^550 5\.7\.1 Null-sender mail from a trusted relay must be a delivery status report of a mail system: its Content-Type is not/,
    );
    // dressed up as a report, in the name of a registered user (any spelling of the address)
    for (const from of ['Dave <dave@a.example>', 'DAVE@\uff41.example'])
      expect(await viaRelay(mail(from, 'multipart/report; report-type=delivery-status; boundary="b"', 'pf-n2'))).toMatch(
        /^550 5\.7\.1 .*: its From dave@a\.example is a user or list of this organisation/,
      );
    // the attack as a user makes it: logged in at Postfix, MAIL FROM:<>, another user's From. This Postfix has no access
    // table for the null sender (docs/postfix.md gives one): it takes the mail and relays it, and the gateway refuses it
    const reply = await rawSmtp(postfix.authSubmissionPort, '', ['alice@a.example'], mail('ceo@a.example', 'text/plain', 'pf-n3'), {
      user: 'dave@a.example',
      pass: 'pw-dave',
    });
    expect(reply).toMatch(/^250 /);
    await waitFor(
      () => /said: 550 5\.7\.1 Null-sender mail from a trusted relay must be a delivery status report/.test(postfix.log()),
      30000,
      explain,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const fresh = dovA.mails('alice@a.example').slice(before);
    expect(fresh.filter((m) => /pf-n[123]@a\.example/.test(m.toString('latin1')) && /bank details/.test(m.toString('latin1')))).toEqual([]);
  });

  test('null-sender mail relayed by anyone else (an authenticated user) is no notice: its From must be that login, 550 5.7.1', async () => {
    const notice = Buffer.from(
      'From: MAILER-DAEMON@a.example\r\nTo: alice@a.example\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <pf-4@a.example>\r\n\r\nfake\r\n',
    );
    const reply = await rawSmtp(net.org('a.example').ports.smtp, '', ['alice@a.example'], notice, {
      user: 'dave@a.example',
      pass: 'pw-dave',
    });
    expect(reply).toMatch(
      /^550 5\.7\.1 Sender address not owned by the authenticated user: From mailer-daemon@a\.example, logged in as dave@a\.example/,
    );
  });

  test("bob answers; gateway A hands the copy back to Postfix, which delivers it to alice's Maildir; alice opens it", async () => {
    const before = dovA.mails('alice@a.example');
    const bob = loadUserProfile(net.org('b.example').profiles['bob@b.example']!);
    const reply = Buffer.from(
      'From: bob@b.example\r\nTo: alice@a.example\r\nSubject: Re: Through Postfix\r\nDate: Sun, 06 Dec 2026 03:33:00 +0000\r\n' +
        'Message-ID: <pf-5@b.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nReceived, Heron-5521 noted.\r\n',
    );
    const r = await submitMessage(bob, await signAndEncrypt(bob, reply, { now: new Date() }), { to: ['alice@a.example'] });
    expect(r.response).toMatch(/^250 /);
    await waitFor(() => dovA.mails('alice@a.example').length > before.length, 30000, explain);
    const file = served(newMail(dovA.mails('alice@a.example'), before));
    expect(file.toString('latin1')).toMatch(/^Received: from [^\n]*\n\s+by mta\.a\.example \(Postfix\)/m); // through Postfix's inbound listener
    const alice = loadUserProfile(net.org('a.example').profiles['alice@a.example']!);
    const opened = await openMessage(alice, file, { now: new Date() });
    expect(opened.plaintext).toEqual(reply);
    expect(opened.hops.map((h) => [h.instance, h.domain])).toEqual([
      [1, 'b.example'],
      [2, 'a.example'],
    ]);
    // submitted with SMTP AUTH straight to gateway B: the token there names bob twice, as From and as the login
    const r2 = await resolveAtA(trackingToken(file), 'b.example');
    expect(r2.user.address).toBe('bob@b.example');
    expect(r2.submitter).toEqual({ id: 'bob@b.example', via: 'smtp-auth' });
  });
});

describe('a Postfix trusted by its SMTP AUTH login ([main] trusted_relay_logins) instead of its address', () => {
  test("dave's plain mail through it: the token records dave as submitter (not the relay account) and alice as From", async () => {
    const before = dovB.mails('carol@b.example');
    const plain =
      'From: alice@a.example\r\nTo: carol@b.example\r\nSubject: Via SASL relay\r\nDate: Sun, 06 Dec 2026 03:34:00 +0000\r\nMessage-ID: <pf-6@a.example>\r\n\r\nhello again carol\r\n';
    expect(await smtp(saslPostfix.submissionPort, 'dave@a.example', ['carol@b.example'], plain)).toMatch(/^250 /);
    await waitFor(
      () => dovB.mails('carol@b.example').length > before.length,
      30000,
      () => `${saslPostfix.log().slice(-3000)}\n${explain()}`,
    );
    const carols = served(newMail(dovB.mails('carol@b.example'), before, 'hello again carol'));
    expect(carols.toString('latin1')).toMatch(/hello again carol/);
    const r = await resolveAtA(trackingToken(carols));
    expect(r.user.address).toBe('alice@a.example');
    // from 127.0.0.1 (not a trusted address) as "mta-relay": without trusted_relay_logins the submitter would be { id: 'mta-relay', via: 'smtp-auth' }
    expect(r.submitter).toEqual({ id: 'dave@a.example', via: 'trusted-relay' });
  });

  test('its bounce (MAIL FROM:<>) to alice is accepted and lands in her Maildir', async () => {
    const before = dovA.mails('alice@a.example');
    const msg =
      'From: alice@a.example\r\nTo: nobody@a.example\r\nSubject: To nobody again\r\nDate: Sun, 06 Dec 2026 03:35:00 +0000\r\nMessage-ID: <pf-7@a.example>\r\n\r\nanyone?\r\n';
    expect(await smtp(saslPostfix.submissionPort, 'alice@a.example', ['nobody@a.example'], msg)).toMatch(/^250 /);
    await waitFor(
      () => dovA.mails('alice@a.example').length > before.length,
      30000,
      () => `${saslPostfix.log().slice(-3000)}\n${explain()}`,
    );
    const bounce = served(newMail(dovA.mails('alice@a.example'), before, 'pf-7@a.example')).toString('latin1');
    expect(bounce).toMatch(/^From: Mail Delivery System <MAILER-DAEMON@mta2\.a\.example>/m);
    expect(bounce).toMatch(/nobody@a\.example/);
    expect(bounce).toMatch(
      /^Received: from mta2\.a\.example \([^)]*127\.0\.0\.1\]\)\r\n\s+by mx\.a\.example \(Haraka\/[\d.]+\) with ESMTPA /m,
    ); // authenticated, from an address not trusted
  });
});

describe('users log in at Postfix, which binds envelope senders to logins (what the recorded submitter rests on)', () => {
  const mail = (n: number) =>
    Buffer.from(
      `From: alice@a.example\r\nTo: carol@b.example\r\nSubject: Logged in ${n}\r\nDate: Sun, 06 Dec 2026 03:40:00 +0000\r\nMessage-ID: <pf-login-${n}@a.example>\r\n\r\nlogged in ${n}\r\n`,
    );

  test("dave logged in may not use alice's envelope sender; without a login nothing is relayed", async () => {
    const asAlice = await rawSmtp(postfix.authSubmissionPort, 'alice@a.example', ['carol@b.example'], mail(1), {
      user: 'dave@a.example',
      pass: 'pw-dave',
    });
    expect(asAlice).toMatch(/^553 5\.7\.1 <alice@a\.example>: Sender address rejected: not owned by user dave@a\.example/);
    const anonymous = await rawSmtp(postfix.authSubmissionPort, 'dave@a.example', ['carol@b.example'], mail(2));
    expect(anonymous).toMatch(/^5\d\d 5\.7\.1 /);
    const wrong = await rawSmtp(postfix.authSubmissionPort, 'dave@a.example', ['carol@b.example'], mail(3), {
      user: 'dave@a.example',
      pass: 'not-his',
    });
    expect(wrong).toMatch(/^535 /);
  });

  test('dave logged in, his own envelope sender, alice in From: delivered; the token names alice (From) and dave (submitter)', async () => {
    const before = dovB.mails('carol@b.example');
    expect(
      await rawSmtp(postfix.authSubmissionPort, 'dave@a.example', ['carol@b.example'], mail(4), {
        user: 'dave@a.example',
        pass: 'pw-dave',
      }),
    ).toMatch(/^250 /);
    await waitFor(() => dovB.mails('carol@b.example').length > before.length, 30000, explain);
    const carols = served(newMail(dovB.mails('carol@b.example'), before));
    expect(carols.toString('latin1')).toMatch(/logged in 4/);
    const r = await resolveAtA(trackingToken(carols));
    expect(r.user.address).toBe('alice@a.example');
    expect(r.submitter).toEqual({ id: 'dave@a.example', via: 'trusted-relay' });
    await expectLogged(() => postfix.log(), /client=localhost\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=dave@a\.example/);
  });
});
