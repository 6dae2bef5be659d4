/**
 * Always tell the sender, also at another SSMAX organisation (issue 16),
 * through real processes: b.example's mailbox store is a real Dovecot (LMTP)
 * that knows bob but not carol. dave@a.example (a plain client) writes to both;
 * b.example's gateway answers a.example 250 (bob took the copy) and sends one
 * failure report to dave — sealed by b.example like a plain client's
 * submission (From its MAILER-DAEMON, the null sender, encrypted to a.example,
 * bound to dave), which a.example accepts and delivers like any sealed mail.
 * An unsealed null-sender "report" claiming b.example is still refused.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Network } from '../../src/demo/network';
import { harakaQueueFile } from '../../src/gateway/queue-reconcile';
import { type DovecotLmtp, startDovecotLmtp } from '../support/dovecot';
import { ORGS, network, rawSmtp, waitFor } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
let store: DovecotLmtp;
beforeAll(async () => {
  // carol is a user at b.example's keyd, but its mailbox store does not know her
  store = await startDovecotLmtp(['bob@b.example']);
  net = await network(
    ORGS.map((o) => (o.domain === 'b.example' ? { ...o, gatewayIni: ['[delivery]', `host=127.0.0.1:${store.port}`, 'protocol=lmtp'] } : o)),
  );
});
afterAll(async () => {
  await net?.stop();
  await store?.stop();
});

const DAVE = { user: 'dave@a.example', pass: 'pw-dave' };
const SECRET = 'Peer-report-secret-Otter-5813';

test("a recipient refused by the peer's store after another took the mail: one sealed failure report in the sender's mailbox at a.example", async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  const subject = `peer-mixed-${Date.now()}`;
  const msg = Buffer.from(
    `From: dave@a.example\r\nTo: bob@b.example, carol@b.example\r\nSubject: ${subject}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${subject}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET}\r\n`,
  );
  const t0 = Date.now();
  const r = await rawSmtp(A.ports.smtp, 'dave@a.example', ['bob@b.example', 'carol@b.example'], msg, DAVE);
  expect(r).toMatch(/^250 /);
  const reports = () =>
    A.mailbox
      .for('dave@a.example')
      .map((m) => m.raw.toString('latin1'))
      .filter((t) => t.includes(subject) && /multipart\/report/i.test(t));
  const explain = () => `a.example:\n${A.haraka.logs().slice(-4000)}\nb.example:\n${B.haraka.logs().slice(-4000)}`;
  await waitFor(() => reports().length >= 1 && store.mails('bob@b.example').length >= 1, 60000, explain);
  console.log(`report in the sender's mailbox at a.example ${Date.now() - t0} ms after the submission`);
  // room for a second report or copy: either could only come from a file still in a.example's or b.example's queue
  const queued = () =>
    [A, B].flatMap((o) => (existsSync(join(o.harakaDir, 'queue')) ? readdirSync(join(o.harakaDir, 'queue')) : []).filter(harakaQueueFile));
  await waitFor(
    () => queued().length === 0,
    60000,
    () => `still queued: ${queued().join(', ')}\n${explain()}`,
  );
  await new Promise((res) => setTimeout(res, 1000));
  const got = reports();
  expect(got).toHaveLength(1);
  const stored = A.mailbox
    .for('dave@a.example')
    .find((m) => m.raw.toString('latin1').includes(subject) && /multipart\/report/i.test(m.raw.toString('latin1')))!;
  expect(stored.from).toBe(''); // the null reverse-path, accepted at arrival from the peer
  const t = got[0]!;
  expect(t).toMatch(/^From: Mail Delivery System <MAILER-DAEMON@b\.example>/m);
  // it arrived sealed by b.example and verified at a.example
  expect(t).toMatch(/Authentication-Results: a\.example; ssmax-chain=pass \(1 seal\(s\) verified\)/);
  expect(t).toMatch(/Final-Recipient: rfc822;carol@b\.example/);
  expect(t).toMatch(/Action: failed/);
  expect(t).toMatch(/Status: 5\.1\.1/);
  expect(t).toMatch(/Diagnostic-Code: smtp;.*550/);
  expect(t).not.toMatch(/Final-Recipient: rfc822;bob@b\.example/);
  expect(t).not.toContain(SECRET); // headers of the original only
  expect(store.mails('bob@b.example').filter((m) => m.toString('latin1').includes(subject))).toHaveLength(1);
  expect(store.mails('carol@b.example')).toHaveLength(0);
  // no double bounce: a.example's log shows no report of its own about the report
  expect(A.haraka.logs()).not.toMatch(/Double bounce/);
});

test('an unsealed null-sender "report" claiming to come from b.example is refused at a.example', async () => {
  const A = net.org('a.example');
  const before = A.mailbox.for('dave@a.example').length;
  const forged = Buffer.from(
    'From: Mail Delivery System <MAILER-DAEMON@b.example>\r\nTo: dave@a.example\r\nSubject: Undelivered Mail Returned to Sender\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <forged-report@b.example>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nYour mail could not be delivered; log in at http://phish.test to see why.\r\n',
  );
  const r = await rawSmtp(A.ports.smtp, '', ['dave@a.example'], forged);
  expect(r).toMatch(/^5\d\d 5\.7\.\d+ .*unsealed message from SSMAX domain b\.example/);
  await new Promise((res) => setTimeout(res, 1000));
  expect(A.mailbox.for('dave@a.example')).toHaveLength(before);
});
