/**
 * What the gateway queues leaves byte for byte (docs/delivery.md, "Byte for
 * byte"), through real processes: a.example's Haraka gateway relays to a
 * plain host without SSMAX (x.test: a raw SMTP sink on loopback that records
 * every command and the DATA as it came on the wire) and to b.example (SSMAX).
 *
 *  - lines that begin with "." (a lone ".", "..x", ".x", at the start and the
 *    end of the body) arrive unchanged in one message; the lines after a lone
 *    "." are never read by the next hop as SMTP commands (no second message
 *    with a forged From from the gateway's address); a bare CR in the body
 *    ("x<CR>.<CR>" before forged commands) is refused 550 5.6.0, sent or arriving;
 *  - 8-bit ISO-8859-1 bodies arrive unchanged, never re-encoded as UTF-8;
 *  - a sealed copy holding such lines (a plaintext part of profile "part")
 *    verifies at b.example and opens to the original;
 *  - a header field with raw bytes that are not UTF-8 (a Latin-1 Subject) is
 *    refused before anything is sealed or sent (550 5.6.0 naming the field);
 *    a raw UTF-8 Subject (RFC 6532) leaves unchanged, under a seal that verifies;
 *  - a refresh hint in the 250 of the host a copy went to counts only for that
 *    host's domain (docs/key-exchange.md).
 */
import { type Server, type Socket, createServer } from 'node:net';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { openMessage } from '../../src/user/open';
import type { Network } from '../../src/demo/network';
import { ORGS, network, rawSmtp, smtp, waitFor } from './network-fixture';

jest.setTimeout(180000);

/** One SMTP connection to the sink: its commands in order, and each DATA as it came on the wire (dot-stuffed, without the final dot). */
interface SinkSession {
  readonly commands: string[];
  readonly data: Buffer[];
}

/** A plain SMTP host on loopback that takes everything and records the dialogue as it came. */
async function startSink(): Promise<{ port: number; sessions: SinkSession[]; close(): Promise<void> }> {
  const sessions: SinkSession[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    const session: SinkSession = { commands: [], data: [] };
    sessions.push(session);
    let buf = Buffer.alloc(0);
    let inData = false;
    sock.write('220 sink.x.test ESMTP\r\n');
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (inData) {
          // the end of DATA: a line holding only "." (at the start, or after CRLF)
          const at = buf.subarray(0, 3).equals(Buffer.from('.\r\n')) ? 0 : buf.indexOf('\r\n.\r\n');
          if (at < 0) return;
          const end = at === 0 ? 0 : at + 2;
          session.data.push(Buffer.from(buf.subarray(0, end)));
          buf = buf.subarray(end + 3);
          inData = false;
          sock.write(`250 2.0.0 taken${hintFor(session.data.at(-1)!)}\r\n`);
          continue;
        }
        const lf = buf.indexOf('\r\n');
        if (lf < 0) return;
        const line = buf.subarray(0, lf).toString('latin1');
        buf = buf.subarray(lf + 2);
        session.commands.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') sock.write('250-sink.x.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n');
        else if (verb === 'DATA') {
          inData = true;
          sock.write('354 go on\r\n');
        } else if (verb === 'QUIT') {
          sock.end('221 bye\r\n');
          return;
        } else sock.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    sessions,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
}

/** The sink's 250 after DATA may carry a refresh hint (docs/key-exchange.md): one naming another domain for a message marked "foreign-hint", its own for "own-hint". */
function hintFor(data: Buffer): string {
  if (data.includes('foreign-hint')) return ' (refresh: b.example current key b.example:v9)';
  if (data.includes('own-hint')) return ' (refresh: x.test current key x.test:v2)';
  return '';
}

/** SMTP dot-stuffing undone: what the sender meant (RFC 5321 §4.5.2). */
function unstuff(wire: Buffer): Buffer {
  return Buffer.from(wire.toString('latin1').replace(/(^|\n)\./g, '$1'), 'latin1');
}

let net: Network;
let sink: Awaited<ReturnType<typeof startSink>>;
beforeAll(async () => {
  sink = await startSink();
  net = await network(
    ORGS.filter((o) => o.domain !== 'c.example').map((o) =>
      o.domain === 'a.example' ? { ...o, gatewayIni: ['[routes]', `x.test=127.0.0.1:${sink.port}`] } : o,
    ),
  );
});
afterAll(async () => {
  await net?.stop();
  await sink?.close();
});

const DAVE = { user: 'dave@a.example', pass: 'pw-dave' };

/** A body whose lines begin with "." where SMTP cares: the first, a lone ".", then commands a peer must never run, the last. */
const DOTTED =
  '.first line begins with a dot\r\nplain\r\n.\r\nMAIL FROM:<ceo@a.example>\r\nRCPT TO:<victim@x.test>\r\nDATA\r\n' +
  'From: ceo@a.example\r\nSubject: forged\r\n\r\nforged body\r\n.\r\n..x\r\n.x\r\n..\r\n.last line begins with a dot\r\n';

function sinkMessages(marker: string): { session: SinkSession; data: Buffer }[] {
  return sink.sessions.flatMap((session) => session.data.filter((d) => d.includes(marker)).map((data) => ({ session, data })));
}

test('plain peer: lines beginning with "." arrive unchanged in one message, nothing after a lone "." is run as a command', async () => {
  const A = net.org('a.example');
  const head = `From: dave@a.example\r\nTo: eve@x.test\r\nSubject: dots-plain\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <dots-plain@a.example>\r\n\r\n`;
  const r = await smtp(A.ports.smtp, 'dave@a.example', ['eve@x.test'], Buffer.from(head + DOTTED), DAVE);
  expect(r).toMatch(/^250 .*SSMAX transparent mode/);
  await waitFor(
    () => sinkMessages('dots-plain').length >= 1,
    30000,
    () => A.haraka.logs().slice(-3000),
  );
  await new Promise((res) => setTimeout(res, 500)); // room for anything more on the connection
  const got = sinkMessages('dots-plain');
  expect(got).toHaveLength(1);
  const { session, data } = got[0]!;
  // one transaction on that connection: the forged MAIL/RCPT/DATA were message lines, never commands
  expect(session.commands.filter((c) => /^MAIL /i.test(c))).toEqual(['MAIL FROM:<dave@a.example>']);
  expect(session.commands.filter((c) => /^DATA$/i.test(c))).toHaveLength(1);
  expect(sink.sessions.flatMap((s) => s.commands).some((c) => /ceo@a\.example|victim@/i.test(c))).toBe(false);
  const text = unstuff(data).toString('latin1');
  expect(text.endsWith(`\r\n\r\n${DOTTED}`)).toBe(true);
  expect(text).toContain('Subject: dots-plain\r\n');
});

test('a bare CR in the body ("x<CR>.<CR><LF>MAIL FROM…", SMTP smuggling for a next hop taking <CR>.<CR> as the end of DATA) is refused 550 5.6.0, submission and arrival alike; nothing reaches the host', async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  const forged = 'x\r.\r\nMAIL FROM:<ceo@a.example>\r\nRCPT TO:<victim@x.test>\r\nDATA\r\nSubject: forged\r\n\r\npay\r\n';
  const head = (to: string, id: string) =>
    `From: dave@a.example\r\nTo: ${to}\r\nSubject: ${id}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${id}@a.example>\r\n\r\n`;
  const sub = await rawSmtp(
    A.ports.smtp,
    'dave@a.example',
    ['eve@x.test'],
    Buffer.from(head('eve@x.test', 'bare-cr-out') + forged, 'latin1'),
    DAVE,
  );
  expect(sub).toMatch(/^550 5\.6\.0 Bare CR in the message \(a CR not followed by LF\); end every line with CRLF: at line \d+ /);
  const arr = await rawSmtp(
    B.ports.smtp,
    'zoe@x.test',
    ['carol@b.example'],
    Buffer.from(head('carol@b.example', 'bare-cr-in').replace('dave@a.example', 'zoe@x.test') + forged, 'latin1'),
  );
  expect(arr).toMatch(/^550 5\.6\.0 Bare CR in the message/);
  await new Promise((res) => setTimeout(res, 1000));
  expect(sinkMessages('bare-cr-out')).toHaveLength(0);
  expect(sink.sessions.flatMap((s) => s.commands).some((c) => /ceo@a\.example|victim@/i.test(c))).toBe(false);
  expect(B.mailbox.mails.some((m) => m.raw.includes('bare-cr-in'))).toBe(false);
});

test('SSMAX peer: a sealed copy whose plaintext part holds such lines verifies at b.example and opens to the original', async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  const alice = loadUserProfile(A.profiles['alice@a.example']!);
  const original = Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: dots-ssmax\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <dots-ssmax@a.example>\r\n' +
      'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n' +
      `${DOTTED}--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="a.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n` +
      `${Buffer.from('attachment bytes').toString('base64')}\r\n--b1--\r\n`,
  );
  const sealed = await signAndEncrypt(alice, original, { now: new Date(), attachmentsOnly: true });
  expect(sealed.toString('latin1')).toContain('\r\n.\r\nMAIL FROM:<ceo@a.example>'); // the dotted part travels in plaintext
  const r = await submitMessage(alice, sealed, { to: ['bob@b.example'] });
  expect(r.response).toMatch(/^250 .*SSMAX client mode/);
  await waitFor(
    () => B.mailbox.mails.some((m) => m.raw.includes('dots-ssmax')),
    30000,
    () => `${A.haraka.logs().slice(-3000)}\n---\n${B.haraka.logs().slice(-3000)}`,
  );
  const copies = B.mailbox.mails.filter((m) => m.raw.includes('dots-ssmax'));
  expect(copies).toHaveLength(1);
  const opened = await openMessage(loadUserProfile(B.profiles['bob@b.example']!), copies[0]!.raw, { now: new Date() });
  expect(opened.summary).toMatch(/^ssmax-chain=pass /);
  const bodyOf = (m: Buffer) => m.subarray(m.indexOf('\r\n\r\n') + 4);
  expect(bodyOf(opened.plaintext)).toEqual(bodyOf(original)); // the fields before it: the hops' own added in front
});

/** Latin-1 text, 8-bit: bytes that are not UTF-8 (é ü, a no-break space, ÿ), also at the start of a line. */
const LATIN1 = Buffer.from('Caf\xe9 cr\xe8me br\xfbl\xe9e\r\n\xe9t\xe9 \xa0\xff\r\n.\xe9\r\n', 'latin1');

test('plain peer: an 8-bit ISO-8859-1 body arrives byte for byte', async () => {
  const A = net.org('a.example');
  const head = Buffer.from(
    'From: dave@a.example\r\nTo: eve@x.test\r\nSubject: latin1-plain\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <latin1-plain@a.example>\r\n' +
      'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
  );
  const r = await smtp(A.ports.smtp, 'dave@a.example', ['eve@x.test'], Buffer.concat([head, LATIN1]), DAVE);
  expect(r).toMatch(/^250 /);
  await waitFor(
    () => sinkMessages('latin1-plain').length >= 1,
    30000,
    () => A.haraka.logs().slice(-3000),
  );
  const got = sinkMessages('latin1-plain');
  expect(got).toHaveLength(1);
  const data = unstuff(got[0]!.data);
  expect(data.subarray(data.length - LATIN1.length)).toEqual(LATIN1);
  expect(data.includes(Buffer.from([0xef, 0xbf, 0xbd]))).toBe(false); // no U+FFFD anywhere
});

test('SSMAX peer: a sealed copy with an 8-bit ISO-8859-1 plaintext part verifies at b.example and opens byte for byte', async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  const alice = loadUserProfile(A.profiles['alice@a.example']!);
  const original = Buffer.concat([
    Buffer.from(
      'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: latin1-ssmax\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <latin1-ssmax@a.example>\r\n' +
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b2"\r\n\r\n--b2\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
    ),
    LATIN1,
    Buffer.from(
      `--b2\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="b.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n` +
        `${Buffer.from('more attachment bytes').toString('base64')}\r\n--b2--\r\n`,
    ),
  ]);
  const sealed = await signAndEncrypt(alice, original, { now: new Date(), attachmentsOnly: true });
  expect(sealed.includes(LATIN1)).toBe(true); // the Latin-1 part travels in plaintext
  const r = await submitMessage(alice, sealed, { to: ['bob@b.example'] });
  expect(r.response).toMatch(/^250 /);
  await waitFor(
    () => B.mailbox.mails.some((m) => m.raw.includes('latin1-ssmax')),
    30000,
    () => `${A.haraka.logs().slice(-3000)}\n---\n${B.haraka.logs().slice(-3000)}`,
  );
  const copies = B.mailbox.mails.filter((m) => m.raw.includes('latin1-ssmax'));
  expect(copies).toHaveLength(1);
  const opened = await openMessage(loadUserProfile(B.profiles['bob@b.example']!), copies[0]!.raw, { now: new Date() });
  expect(opened.summary).toMatch(/^ssmax-chain=pass /);
  const bodyOf = (m: Buffer) => m.subarray(m.indexOf('\r\n\r\n') + 4);
  expect(bodyOf(opened.plaintext)).toEqual(bodyOf(original));
});

describe('raw 8-bit header fields', () => {
  const withSubject = (subject: Buffer, to: string, id: string) =>
    Buffer.concat([
      Buffer.from(`From: dave@a.example\r\nTo: ${to}\r\nSubject: `),
      subject,
      Buffer.from(`\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${id}@a.example>\r\n\r\nbody of ${id}\r\n`),
    ]);

  test.each([
    ['a plain peer', 'eve@x.test'],
    ['an SSMAX peer', 'carol@b.example'],
  ])('a Latin-1 Subject to %s is refused before sealing: 550 5.6.0 naming the field', async (_who, to) => {
    const A = net.org('a.example');
    const id = `latin1-subject-${to.split('@')[1]}`;
    const r = await rawSmtp(A.ports.smtp, 'dave@a.example', [to], withSubject(Buffer.from('caf\xe9', 'latin1'), to, id), DAVE);
    expect(r).toMatch(/^550 5\.6\.0 Header field holds bytes that are not UTF-8 .*in "Subject"/);
    await new Promise((res) => setTimeout(res, 1000));
    expect(sinkMessages(id)).toHaveLength(0);
    expect(net.org('b.example').mailbox.mails.some((m) => m.raw.includes(id))).toBe(false);
  });

  test('arrivals too: from a host without SSMAX, a Latin-1 Subject is refused (550 5.6.0), a raw UTF-8 one reaches the mailbox byte for byte', async () => {
    const B = net.org('b.example');
    const from = (subject: Buffer, id: string) =>
      Buffer.concat([
        Buffer.from('From: zoe@x.test\r\nTo: carol@b.example\r\nSubject: '),
        subject,
        Buffer.from(`\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${id}@x.test>\r\n\r\nbody of ${id}\r\n`),
      ]);
    const latin1 = await rawSmtp(B.ports.smtp, 'zoe@x.test', ['carol@b.example'], from(Buffer.from('caf\xe9', 'latin1'), 'in-latin1'));
    expect(latin1).toMatch(/^550 5\.6\.0 Header field holds bytes that are not UTF-8 .*in "Subject"/);
    const subject = Buffer.from('caf\u00e9 \u65e5\u672c', 'utf8');
    const utf8 = await rawSmtp(B.ports.smtp, 'zoe@x.test', ['carol@b.example'], from(subject, 'in-utf8'));
    expect(utf8).toMatch(/^250 /);
    const got = B.mailbox.for('carol@b.example').find((m) => m.raw.includes('in-utf8@x.test'));
    expect(got?.raw.includes(Buffer.concat([Buffer.from('\r\nSubject: '), subject, Buffer.from('\r\n')]))).toBe(true);
    expect(B.mailbox.mails.some((m) => m.raw.includes('in-latin1@x.test'))).toBe(false);
  });

  test('a raw UTF-8 Subject (RFC 6532) reaches a plain peer and an SSMAX peer unchanged, the seal verifying there', async () => {
    const A = net.org('a.example');
    const B = net.org('b.example');
    const subject = Buffer.from('caf\u00e9 \u2014 \u65e5\u672c', 'utf8');
    for (const to of ['eve@x.test', 'carol@b.example']) {
      const id = `utf8-subject-${to.split('@')[1]}`;
      const r = await rawSmtp(A.ports.smtp, 'dave@a.example', [to], withSubject(subject, to, id), DAVE);
      expect(r).toMatch(/^250 /);
    }
    const line = Buffer.concat([Buffer.from('\r\nSubject: '), subject, Buffer.from('\r\n')]);
    await waitFor(
      () =>
        sinkMessages('utf8-subject-x.test').length >= 1 &&
        B.mailbox.for('carol@b.example').some((m) => m.raw.includes('utf8-subject-b.example')),
      30000,
      () => `${A.haraka.logs().slice(-3000)}\n---\n${B.haraka.logs().slice(-3000)}`,
    );
    expect(unstuff(sinkMessages('utf8-subject-x.test')[0]!.data).includes(line)).toBe(true);
    const carol = B.mailbox.for('carol@b.example').find((m) => m.raw.includes('utf8-subject-b.example'))!;
    expect(carol.raw.includes(line)).toBe(true);
    expect(carol.raw.toString('utf8')).toMatch(/^Authentication-Results: b\.example; ssmax-chain=pass /);
  });
});

test("a peer's 250 naming another domain's key is ignored; one naming its own is noted", async () => {
  const A = net.org('a.example');
  const send = async (id: string) => {
    const raw = `From: dave@a.example\r\nTo: eve@x.test\r\nSubject: ${id}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${id}@a.example>\r\n\r\n${id}\r\n`;
    expect(await smtp(A.ports.smtp, 'dave@a.example', ['eve@x.test'], raw, DAVE)).toMatch(/^250 /);
    await waitFor(
      () => sinkMessages(id).length >= 1,
      30000,
      () => A.haraka.logs().slice(-3000),
    );
  };
  await send('foreign-hint');
  await send('own-hint');
  await waitFor(
    () => /refresh hint from a peer \(x\.test\)/.test(A.haraka.logs()),
    10000,
    () => A.haraka.logs().slice(-3000),
  );
  expect(A.haraka.logs()).not.toMatch(/refresh hint[^\n]*b\.example:v9/); // the hint about b.example, taken, would be logged so
  expect(A.haraka.logs()).not.toMatch(/b\.example advertises b\.example:v9/);
});

test("a recipient's local part leaves in the case it came in (RFC 5321 §2.4), its domain in one spelling", async () => {
  const A = net.org('a.example');
  const head = `From: dave@a.example\r\nTo: Bounce+AbC9xQ@X.Test\r\nSubject: case-kept\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <case-kept@a.example>\r\n\r\nbody\r\n`;
  const r = await rawSmtp(A.ports.smtp, 'dave@a.example', ['Bounce+AbC9xQ@X.Test'], Buffer.from(head), DAVE);
  expect(r).toMatch(/^250 /);
  await waitFor(
    () => sinkMessages('case-kept').length >= 1,
    30000,
    () => A.haraka.logs().slice(-3000),
  );
  expect(sinkMessages('case-kept')[0]!.session.commands.filter((c) => /^RCPT /i.test(c))).toEqual(['RCPT TO:<Bounce+AbC9xQ@x.test>']);
});

test("a local and a plain-host recipient, the host's copy over Haraka's 1,000 header lines: 5xx 5.3.4 before any copy goes, not the local copy then a 5xx", async () => {
  const A = net.org('a.example');
  const before = A.mailbox.for('dave@a.example').length;
  // 999 lines (1,000 as Haraka counts them, its Received field one): taken in whole; the copy for x.test, with the
  // Received field's own lines, is over 1,000 and could never be queued
  const fields = ['Cc', 'X-Distribution'].map(
    (name, k) => `${name}: ${Array.from({ length: 496 }, (_, i) => `u${k}x${i}@c.example`).join(',\r\n ')}`,
  );
  const head = `From: dave@a.example\r\nTo: dave@a.example, eve@x.test\r\nSubject: preflight-lines\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <preflight-lines@a.example>\r\n${fields.join('\r\n')}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nbody\r\n`;
  const r = await rawSmtp(A.ports.smtp, 'dave@a.example', ['dave@a.example', 'eve@x.test'], Buffer.from(head), DAVE);
  expect(r).toMatch(
    /^55\d 5\.3\.4 Message header has more lines than the gateway can relay: \d+ lines, at most 1000$|^55\d 5\.3\.4 Message header has more lines than the gateway can relay: \d+ lines, at most 1000 \(/,
  );
  await new Promise((res) => setTimeout(res, 3000)); // room for a copy, were one handed over
  expect(A.mailbox.for('dave@a.example')).toHaveLength(before);
  expect(sinkMessages('preflight-lines')).toHaveLength(0);
});
