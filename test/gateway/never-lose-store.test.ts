/**
 * Never lose mail, and always tell the sender (issue 16), through real
 * processes, where the message meets a parser or a store of the organisation:
 *  - a.example runs DLP inline, c.example in a separate inspector process:
 *    a limit of the message met by inspection's own parser (mailparser,
 *    reading the plaintext inside an encrypted message that no other parser
 *    opens) is a 5xx naming the limit, never a 4xx; a plaintext submission over the format limits is refused naming the
 *    format's own limit before inspection reads it; a capsule field that does
 *    not parse is 5.7.5 at submission and at arrival;
 *  - a.example's mailbox store is a real Dovecot (LMTP) that does not know
 *    alice: its permanent refusal (550 5.1.1) is a 5xx to the sender when no
 *    recipient took the message, and a failure report (RFC 3464) in the
 *    sender's mailbox when others did — never a 4xx retried for days.
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Network } from '../../src/demo/network';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { type DovecotLmtp, startDovecotLmtp } from '../support/dovecot';
import { main } from '../../src/cli/main';
import { ORGS, expectLogged, network, rawSmtp, waitFor } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
let store: DovecotLmtp;
beforeAll(async () => {
  // alice is a user at keyd, but the mailbox store does not know her (a mailbox removed, a mistyped migration)
  store = await startDovecotLmtp(['dave@a.example']);
  net = await network(
    ORGS.map((o) =>
      o.domain === 'a.example'
        ? { ...o, gatewayIni: ['[delivery]', `host=127.0.0.1:${store.port}`, 'protocol=lmtp'] }
        : // c.example inspects in a separate inspector process (DLP there), with an SSMAX-client user
          o.domain === 'c.example'
          ? {
              ...o,
              users: [...o.users, { address: 'gina@c.example', client: 'ssmax', password: 'pw-gina' }],
              inspector: { inspectIni: '[dlp]\nenabled=true\n' },
            }
          : o,
    ),
  );
  const A = net.org('a.example');
  writeFileSync(join(A.harakaDir, 'config', 'ssmax-inspect.ini'), '[dlp]\nenabled=true\n');
  writeFileSync(join(A.harakaDir, 'config', 'ssmax-dlp.ini'), readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8'));
  await A.restartHaraka();
});
afterAll(async () => {
  await net?.stop();
  await store?.stop();
});

const DAVE = { user: 'dave@a.example', pass: 'pw-dave' };
const SECRET = 'Store-secret-Lynx-2207';

function partBomb(from: string, n: number): Buffer {
  const parts = Array.from({ length: n }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\nx${i}\r\n`).join('');
  return Buffer.from(
    `From: ${from}\r\nTo: bob@b.example\r\nSubject: parts\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <parts-${n}-${Date.now()}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n${parts}--b--\r\n`,
  );
}

describe("a limit met by inspection's parser is the message's own: 5xx naming it", () => {
  test('an encrypted submission whose plaintext has 1,200 MIME parts (read only by DLP): 552 5.3.4', async () => {
    const alice = loadUserProfile(net.org('a.example').profiles['alice@a.example']!);
    const encrypted = await signAndEncrypt(alice, partBomb('alice@a.example', 1200), { now: new Date() });
    let reply: string;
    try {
      reply = (await submitMessage(alice, encrypted, { to: ['bob@b.example'] })).response;
    } catch (err) {
      reply = (err as Error).message;
    }
    expect(reply).toMatch(/55\d 5\.3\.4 Message exceeds a format limit: the message has more than 1000 MIME parts/);
  });

  test('the same with DLP in the separate inspector process: the same 5xx crosses the process boundary', async () => {
    const gina = loadUserProfile(net.org('c.example').profiles['gina@c.example']!);
    const encrypted = await signAndEncrypt(gina, partBomb('gina@c.example', 1200), { now: new Date() });
    let reply: string;
    try {
      reply = (await submitMessage(gina, encrypted, { to: ['bob@b.example'] })).response;
    } catch (err) {
      reply = (err as Error).message;
    }
    expect(reply).toMatch(/55\d 5\.3\.4 Message exceeds a format limit: the message has more than 1000 MIME parts/);
  });

  test("a plaintext submission with 1,200 parts: refused naming the format's own limit (the chain's 512), before DLP's parser meets its 1000", async () => {
    const r = await rawSmtp(net.org('a.example').ports.smtp, 'dave@a.example', ['bob@b.example'], partBomb('dave@a.example', 1200), DAVE);
    expect(r).toMatch(/^55\d 5\.3\.4 Message exceeds a format limit: Cannot hash body: the message has more than 512 MIME parts/);
  });
});

describe("a capsule field that does not parse (the envelope's parser) is the message's own: 5xx, not 4xx", () => {
  const garbage = (from: string, to: string) =>
    Buffer.from(
      `From: ${from}\r\nTo: ${to}\r\nSubject: capsule\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <capsule-${Date.now()}@x>\r\nSSMAX-Capsule: garbage!!\r\n\r\nbody\r\n`,
    );
  test('at submission', async () => {
    const r = await rawSmtp(
      net.org('a.example').ports.smtp,
      'dave@a.example',
      ['bob@b.example'],
      garbage('dave@a.example', 'bob@b.example'),
      DAVE,
    );
    expect(r).toMatch(/^55\d 5\.7\.5 Malformed or foreign SSMAX capsule: Cannot parse SSMAX-Capsule/);
  });
  test('at arrival from another MTA', async () => {
    const r = await rawSmtp(
      net.org('b.example').ports.smtp,
      'mallory@elsewhere.test',
      ['carol@b.example'],
      garbage('mallory@elsewhere.test', 'carol@b.example'),
    );
    expect(r).toMatch(/^55\d 5\.7\.5 Malformed or foreign SSMAX capsule: Cannot parse SSMAX-Capsule/);
  });
});

describe('the mailbox store refuses a recipient for good', () => {
  const message = (to: string, subject: string) =>
    Buffer.from(
      `From: dave@a.example\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${subject}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET} ${subject}\r\n`,
    );
  const reportsFor = (subject: string) =>
    store
      .mails('dave@a.example')
      .map((m) => m.toString('latin1'))
      .filter((t) => t.includes(`Subject: ${subject}`) && /multipart\/report/i.test(t));

  test("the only recipient: the sender gets the store's 5xx (5.1.1) naming her, not a 4xx", async () => {
    const r = await rawSmtp(
      net.org('a.example').ports.smtp,
      'dave@a.example',
      ['alice@a.example'],
      message('alice@a.example', 'store-only'),
      DAVE,
    );
    expect(r).toMatch(/^55\d 5\.1\.1 Mailbox store refused the message: 550 5\.1\.1 .*\(alice@a\.example\)/);
    // the same message again at once: refused again at once, not held up by the first attempt's refusal (it answered
    // the sender itself, so its mark is gone: no report to wait for)
    const started = Date.now();
    const again = await rawSmtp(
      net.org('a.example').ports.smtp,
      'dave@a.example',
      ['alice@a.example'],
      message('alice@a.example', 'store-only'),
      DAVE,
    );
    expect(again).toMatch(/^55\d 5\.1\.1 Mailbox store refused the message: 550 5\.1\.1 .*\(alice@a\.example\)/);
    expect(Date.now() - started).toBeLessThan(15000);
  });

  test("beside a recipient that takes it: 250, and one failure report in the sender's mailbox naming her and the store's reply, without the body", async () => {
    const B = net.org('b.example');
    const before = B.mailbox.for('bob@b.example').length;
    const r = await rawSmtp(
      net.org('a.example').ports.smtp,
      'dave@a.example',
      ['alice@a.example', 'bob@b.example'],
      message('alice@a.example, bob@b.example', 'store-mixed'),
      DAVE,
    );
    expect(r).toMatch(/^250 .*refused by the mailbox store for alice@a\.example \(report sent\)/);
    await waitFor(
      () => reportsFor('store-mixed').length >= 1 && B.mailbox.for('bob@b.example').length > before,
      30000,
      () => net.org('a.example').haraka.logs().slice(-3000),
    );
    await new Promise((res) => setTimeout(res, 2000)); // room for a second report
    const reports = reportsFor('store-mixed');
    expect(reports).toHaveLength(1);
    const t = reports[0]!;
    expect(t).toMatch(/^Return-Path: <>/m); // the null sender: never reported on again
    expect(t).toMatch(/Final-Recipient: rfc822;alice@a\.example/);
    expect(t).toMatch(/Action: failed/);
    expect(t).toMatch(/Status: 5\.1\.1/);
    expect(t).not.toMatch(/Final-Recipient: rfc822;bob@b\.example/);
    expect(t).not.toContain(SECRET);
    expect(B.mailbox.for('bob@b.example')).toHaveLength(before + 1);
    // the sender's retry (its 250 lost, say) neither re-tries her nor reports again
    const again = await rawSmtp(
      net.org('a.example').ports.smtp,
      'dave@a.example',
      ['alice@a.example', 'bob@b.example'],
      message('alice@a.example, bob@b.example', 'store-mixed'),
      DAVE,
    );
    expect(again).toMatch(/^250 /);
    await new Promise((res) => setTimeout(res, 3000));
    expect(reportsFor('store-mixed')).toHaveLength(1);
    expect(B.mailbox.for('bob@b.example')).toHaveLength(before + 1);
  });
});

describe('a failure report goes only to an envelope sender the arrival vouches for', () => {
  // unsealed mail from the Internet (From of no SSMAX domain) to alice, whom the store refuses, and dave, whom it takes
  const arrival = (envelopeFrom: string, subject: string) =>
    rawSmtp(
      net.org('a.example').ports.smtp,
      envelopeFrom,
      ['alice@a.example', 'dave@a.example'],
      Buffer.from(
        `From: news@elsewhere.test\r\nTo: alice@a.example, dave@a.example\r\nSubject: ${subject}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${subject}@elsewhere.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n`,
      ),
    );

  test('control: an ordinary sender of the Internet is told (an ordinary bounce)', async () => {
    expect(await arrival('news@elsewhere.test', 'vouched-plain')).toMatch(
      /^250 .*refused by the mailbox store for alice@a\.example \(report sent\)/,
    );
  });

  test("an envelope sender of an SSMAX organisation on unsealed mail is not: a report sealed in a.example's name, quoting the arrival, would go to bob@b.example at a stranger's word", async () => {
    const B = net.org('b.example');
    const before = B.mailbox.for('bob@b.example').length;
    expect(await arrival('bob@b.example', 'vouched-forged')).toMatch(
      /^250 .*refused by the mailbox store for alice@a\.example \(report could not be sent\)/,
    );
    await expectLogged(
      () => net.org('a.example').haraka.logs(),
      /no failure report to bob@b\.example: the envelope sender is not of the organisation that sealed/,
    );
    expect(B.mailbox.for('bob@b.example')).toHaveLength(before);
  });
});

describe('the mailbox store refuses a list member for good: the sender, who addressed the list, never learns its members', () => {
  const listCli = async (...args: string[]): Promise<number> => {
    const A = net.org('a.example');
    const ini = join(A.fx.dir, 'list-admin.ini');
    writeFileSync(
      ini,
      [
        '[keyd]',
        `url=https://127.0.0.1:${A.ports.keyd}`,
        'servername=keyd.a.example',
        'cert=admin.pem',
        'key=admin.key',
        'ca=org-ca.pem,root.pem',
        '',
      ].join('\n'),
    );
    return main([args[0]!, args[1]!, '--config', ini, ...args.slice(2)], { out: () => undefined, err: () => undefined });
  };
  const mailsWith = (subject: string) =>
    store
      .mails('dave@a.example')
      .map((m) => m.toString('latin1'))
      .filter((t) => t.includes(subject));
  const post = (to: string, subject: string) =>
    Buffer.from(
      `From: dave@a.example\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${subject}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET} ${subject}\r\n`,
    );

  test('beside a member the store takes: 250 naming no member, no failure report; the refusal is in the gateway log', async () => {
    expect(await listCli('list', 'create', 'team@a.example')).toBe(0);
    expect(await listCli('list', 'add', 'team@a.example', 'alice@a.example', 'dave@a.example')).toBe(0);
    const A = net.org('a.example');
    const r = await rawSmtp(A.ports.smtp, 'dave@a.example', ['team@a.example'], post('team@a.example', 'list-mixed'), DAVE);
    expect(r).toMatch(/^250 /);
    expect(r).not.toContain('alice');
    await waitFor(
      () => mailsWith('list-mixed').length >= 1 && A.haraka.logs().includes('refused member alice@a.example'),
      30000,
      () => A.haraka.logs().slice(-3000),
    );
    await new Promise((res) => setTimeout(res, 2000)); // room for a report, were one sent
    const got = mailsWith('list-mixed');
    expect(got).toHaveLength(1); // dave's own copy of the post, and no report
    expect(got[0]).not.toMatch(/multipart\/report/i);
    expect(got[0]).not.toContain('alice@a.example');
  });

  test("every member refused: the store's 5xx names the list, not the member", async () => {
    expect(await listCli('list', 'create', 'solo@a.example', '--policy', 'open')).toBe(0);
    expect(await listCli('list', 'add', 'solo@a.example', 'alice@a.example')).toBe(0);
    const r = await rawSmtp(
      net.org('a.example').ports.smtp,
      'dave@a.example',
      ['solo@a.example'],
      post('solo@a.example', 'list-all'),
      DAVE,
    );
    expect(r).toMatch(/^55\d 5\.1\.1 .*\(solo@a\.example\)/);
    expect(r).not.toContain('alice');
  });
});

describe('no 5xx after a copy went, no copy of a message cut by Haraka', () => {
  const daveMails = (tag: string) =>
    store
      .mails('dave@a.example')
      .map((m) => m.toString('latin1'))
      .filter((t) => t.includes(tag));
  /** A message whose header has `lines` lines: seven fields of one line, the rest two folded address fields (Cc, X-Distribution), MIME fields last. */
  const longHeader = (tag: string, to: string, lines: number) => {
    const folded = lines - 7;
    const cc = [Math.ceil(folded / 2), Math.floor(folded / 2)]
      .map((n, k) => `${k === 0 ? 'Cc' : 'X-Distribution'}: ${Array.from({ length: n }, (_, i) => `u${k}x${i}@c.example`).join(',\r\n ')}`)
      .join('\r\n');
    return Buffer.from(
      `From: dave@a.example\r\nTo: ${to}\r\nSubject: ${tag}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${tag}@a.example>\r\n${cc}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET} ${tag}\r\n`,
    );
  };

  test("a header of more lines than Haraka's [headers] max_lines (1,040) is refused on arrival, 552 5.3.4, never delivered without its last fields", async () => {
    const r = await rawSmtp(
      net.org('a.example').ports.smtp,
      'dave@a.example',
      ['dave@a.example'],
      longHeader('arrival-lines', 'dave@a.example', 1040), // 1,041 lines as Haraka counts them: its Received field is one
      DAVE,
    );
    expect(r).toMatch(
      /^55\d 5\.3\.4 Message header has more lines than the gateway can relay: 1041 lines, at most 1000 \(smtp\.ini \[headers\] max_lines\)/,
    );
    await new Promise((res) => setTimeout(res, 3000));
    expect(daveMails('arrival-lines')).toHaveLength(0);
  });

  test('the store refuses one recipient of a message with a 400-byte raw UTF-8 Subject: 250, and the failure report (its Subject cut on a character) is delivered', async () => {
    const B = net.org('b.example');
    const before = B.mailbox.for('carol@b.example').length;
    const subject = `utf8-report ${'Ж'.repeat(200)}`;
    const r = await rawSmtp(
      net.org('a.example').ports.smtp,
      'dave@a.example',
      ['alice@a.example', 'carol@b.example'],
      Buffer.from(
        `From: dave@a.example\r\nTo: alice@a.example, carol@b.example\r\nSubject: ${subject}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <utf8-report@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET}\r\n`,
        'utf8',
      ),
      DAVE,
    );
    expect(r).toMatch(/^250 .*refused by the mailbox store for alice@a\.example \(report sent\)/);
    const reports = () => daveMails('Subject: Undelivered Mail Returned to Sender: utf8-report');
    await waitFor(
      () => reports().length >= 1 && B.mailbox.for('carol@b.example').length > before,
      30000,
      () => net.org('a.example').haraka.logs().slice(-3000),
    );
    const report = Buffer.from(reports()[0]!, 'latin1');
    const head = report.subarray(0, report.indexOf('\r\n\r\n')).toString('utf8');
    expect(head).toMatch(/^Subject: Undelivered Mail Returned to Sender: utf8-report Ж+\.\.\.$/m);
    expect(head).not.toContain('\ufffd');
    expect(report.toString('latin1')).toMatch(/Final-Recipient: rfc822;alice@a\.example/);
  });
});
