/**
 * Delivery status notifications that arrive (issue 16), through real
 * processes: a peer's refusals (unknown recipient at b.example, 5.1.1;
 * malware found by b.example's real clamd, 5.7.1), a
 * plain Internet host's policy refusal (5.7.1), and a host that only ever
 * answers 4xx, with a.example's queue lifetime and delay-notice time
 * shortened: each ends as an RFC 3464 report in the local sender's mailbox
 * (a.example's store), from the null sender, naming the recipient and the
 * reason, with the headers of the message and never its body.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClamdProcess, EICAR, startClamd } from '../../src/inspect/clamd-process';
import { SMTPServer } from 'smtp-server';
import { freePort } from '../../src/demo/haraka';
import type { Network } from '../../src/demo/network';
import { ORGS, network, rawSmtp, waitFor } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
let internet: SMTPServer;
let clamd: ClamdProcess | undefined;
const internetMails: string[] = [];

beforeAll(async () => {
  const port = await freePort();
  // a plain Internet host (no SSMAX): refuses policy@ for policy, tempfails slow@ forever
  internet = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo: (addr, _s, cb) => {
      if (addr.address.startsWith('policy@'))
        return cb(Object.assign(new Error('5.7.1 Message refused by local policy'), { responseCode: 550 }));
      if (addr.address.startsWith('slow@')) return cb(Object.assign(new Error('4.4.2 Try again later'), { responseCode: 451 }));
      cb();
    },
    onData: (stream, _s, cb) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('end', () => {
        internetMails.push(Buffer.concat(parts).toString('latin1'));
        cb();
      });
    },
  });
  await new Promise<void>((res) => internet.listen(port, '127.0.0.1', () => res()));
  net = await network(
    ORGS.map((o) =>
      o.domain === 'a.example' ? { ...o, gatewayIni: ['[routes]', `x.test=127.0.0.1:${port}`, '[delivery]', 'delay_notice_seconds=3'] } : o,
    ),
  );
  const A = net.org('a.example');
  // the queue gives up after 3 more attempts 5 s apart (Haraka's shortest interval) (Haraka's temp_fail_intervals)
  const outbound = join(A.harakaDir, 'config', 'outbound.ini');
  writeFileSync(outbound, readFileSync(outbound, 'utf8').replace(/temp_fail_intervals=.*/, 'temp_fail_intervals=5s*3'));
  await A.restartHaraka();
  // b.example scans arrivals with a real clamd
  const clamdPort = await freePort();
  clamd = await startClamd(mkdtempSync(join(tmpdir(), 'ssmax-dsn-clamd-')), clamdPort);
  const B = net.org('b.example');
  writeFileSync(
    join(B.harakaDir, 'config', 'ssmax-inspect.ini'),
    `[av]\nenabled=true\nclamd=127.0.0.1:${clamdPort}\ntimeout_ms=3000\nclamd_config=${clamd.conf}\n`,
  );
  await B.restartHaraka();
});
afterAll(async () => {
  await clamd?.stop();
  await net?.stop();
  await new Promise<void>((res) => (internet ? internet.close(() => res()) : res()));
});

const DAVE = { user: 'dave@a.example', pass: 'pw-dave' };
const SECRET = 'Body-secret-Otter-5531';
const message = (to: string, subject: string) =>
  Buffer.from(
    `From: dave@a.example\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${subject}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET} ${subject}\r\n`,
  );
const reportsFor = (subject: string) =>
  net
    .org('a.example')
    .mailbox.for('dave@a.example')
    .map((m) => ({ from: m.from, text: m.raw.toString('latin1') }))
    .filter((m) => m.text.includes(`Subject: ${subject}`) && /multipart\/report/i.test(m.text));

function expectReport(r: { from: string; text: string }, rcpt: string, action: string, status: RegExp): void {
  expect(r.from).toBe(''); // the null sender: a report is never reported on again
  expect(r.text).toMatch(/Content-Type: message\/delivery-status/i);
  expect(r.text).toMatch(new RegExp(`Final-Recipient: rfc822;\\s*${rcpt.replace('.', '\\.')}`));
  expect(r.text).toMatch(new RegExp(`Action: ${action}`));
  expect(r.text).toMatch(status);
  expect(r.text).toMatch(/Content-Type: text\/rfc822-headers/i);
  expect(r.text).not.toContain(SECRET); // the headers of the message, never its body
  expect(r.text.slice(0, r.text.indexOf('\r\n\r\n'))).not.toMatch(/^SSMAX-Seal:/im); // the report itself is not sealed (it never leaves the organisation)
}

test("a peer refuses an unknown recipient (5.1.1): the report is in the sender's mailbox", async () => {
  const r = await rawSmtp(
    net.org('a.example').ports.smtp,
    'dave@a.example',
    ['nobody@b.example'],
    message('nobody@b.example', 'dsn-unknown'),
    DAVE,
  );
  expect(r).toMatch(/^250 /);
  await waitFor(
    () => reportsFor('dsn-unknown').length >= 1,
    30000,
    () => net.org('a.example').haraka.logs().slice(-3000),
  );
  const reports = reportsFor('dsn-unknown');
  expect(reports).toHaveLength(1);
  expectReport(reports[0]!, 'nobody@b.example', 'failed', /5\.1\.1/);
});

test('b.example finds malware (5.7.1): the report names the recipient and the reason, and holds no body', async () => {
  const attachment = Buffer.from(EICAR).toString('base64');
  const raw = Buffer.from(
    'From: dave@a.example\r\nTo: carol@b.example\r\nSubject: dsn-malware\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <dsn-malware@a.example>\r\n' +
      'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\n' +
      `${SECRET} dsn-malware\r\n` +
      `--m\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=eicar.txt\r\nContent-Transfer-Encoding: base64\r\n\r\n${attachment}\r\n--m--\r\n`,
  );
  const r = await rawSmtp(net.org('a.example').ports.smtp, 'dave@a.example', ['carol@b.example'], raw, DAVE);
  expect(r).toMatch(/^250 /);
  await waitFor(
    () => reportsFor('dsn-malware').length >= 1,
    30000,
    () => net.org('b.example').haraka.logs().slice(-3000),
  );
  const reports = reportsFor('dsn-malware');
  expect(reports).toHaveLength(1);
  expectReport(reports[0]!, 'carol@b.example', 'failed', /5\.7\.1[\s\S]*malware found/);
  expect(reports[0]!.text).not.toContain(attachment.slice(0, 20));
  expect(net.org('b.example').mailbox.for('carol@b.example')).toHaveLength(0);
});

test('a plain Internet host refuses by policy (5.7.1): the report names the recipient and the reason', async () => {
  const r = await rawSmtp(
    net.org('a.example').ports.smtp,
    'dave@a.example',
    ['policy@x.test'],
    message('policy@x.test', 'dsn-policy'),
    DAVE,
  );
  expect(r).toMatch(/^250 /);
  await waitFor(
    () => reportsFor('dsn-policy').length >= 1,
    30000,
    () => net.org('a.example').haraka.logs().slice(-3000),
  );
  const reports = reportsFor('dsn-policy');
  expect(reports).toHaveLength(1);
  expectReport(reports[0]!, 'policy@x.test', 'failed', /5\.7\.1.*refused by local policy|refused by local policy/);
});

test('a copy that cannot be delivered within the queue lifetime: one delay notice, then one failure report', async () => {
  const r = await rawSmtp(net.org('a.example').ports.smtp, 'dave@a.example', ['slow@x.test'], message('slow@x.test', 'dsn-expiry'), DAVE);
  expect(r).toMatch(/^250 /);
  await waitFor(
    () => reportsFor('dsn-expiry').some((m) => /Action: failed/.test(m.text)),
    60000,
    () => {
      writeFileSync('/tmp/i16/dsn-haraka.log', net.org('a.example').haraka.logs());
      return 'logs in /tmp/i16/dsn-haraka.log';
    },
  );
  await new Promise((res) => setTimeout(res, 2000)); // room for a second notice to show up
  const reports = reportsFor('dsn-expiry');
  const delayed = reports.filter((m) => /Action: delayed/.test(m.text));
  const failed = reports.filter((m) => /Action: failed/.test(m.text));
  console.log(`queue expiry: ${delayed.length} delay notice(s), ${failed.length} failure report(s)`);
  expect(delayed).toHaveLength(1);
  expect(failed).toHaveLength(1);
  expectReport(delayed[0]!, 'slow@x.test', 'delayed', /Status: 4\.4\.2/);
  expect(delayed[0]!.text).toMatch(/Subject: Delayed Mail/);
  expectReport(failed[0]!, 'slow@x.test', 'failed', /Status: /);
  expect(internetMails.some((m) => m.includes('dsn-expiry'))).toBe(false);
});

test('a report that cannot be delivered either is never reported on again (no loop): Haraka drops it as a double bounce', async () => {
  const A = net.org('a.example');
  const doubles = () => (A.haraka.logs().match(/Double bounce/g) ?? []).length;
  const before = doubles();
  A.mailbox.refuse = '4.2.1 Mailbox busy';
  A.mailbox.refuseFor = 'dave@a.example';
  try {
    const r = await rawSmtp(A.ports.smtp, 'dave@a.example', ['nobody@b.example'], message('nobody@b.example', 'dsn-twice'), DAVE);
    expect(r).toMatch(/^250 /);
    await waitFor(
      () => doubles() > before,
      60000,
      () => A.haraka.logs().slice(-2000),
    );
  } finally {
    A.mailbox.refuse = undefined;
    A.mailbox.refuseFor = undefined;
  }
  await new Promise((res) => setTimeout(res, 2000));
  expect(reportsFor('dsn-twice')).toHaveLength(0);
  expect(A.mailbox.mails.filter((m) => m.raw.toString('latin1').includes('dsn-twice'))).toHaveLength(0);
  expect(net.org('b.example').mailbox.mails.filter((m) => m.raw.toString('latin1').includes('dsn-twice'))).toHaveLength(0);
});
