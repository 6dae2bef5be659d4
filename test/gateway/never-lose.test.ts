/**
 * Never lose mail, and always tell the sender (issue 16), through real
 * processes: Haraka gateways with the ssmax plugin, keyd over mutual TLS,
 * bundle publishers and mailbox stores on loopback.
 *  - sealing is the last change: mail lacking Date or Message-ID (or with an
 *    empty one) crosses a real outbound hop and arrives verified;
 *  - permanent conditions of the message itself (MIME part count, depth,
 *    header size, header count) are 5xx naming the limit, never 4xx, at
 *    submission and at arrival.
 */
import type { Network } from '../../src/demo/network';
import { loadUserProfile } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { network, rawSmtp, waitFor } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
beforeAll(async () => {
  net = await network();
});
afterAll(async () => {
  await net?.stop();
});

const DAVE = { user: 'dave@a.example', pass: 'pw-dave' };

function plain(head: string, body: string): Buffer {
  return Buffer.from(`${head}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`);
}

describe('sealing is the last change: mail lacking a header Haraka would add arrives verified', () => {
  const cases: [string, string][] = [
    ['no Date', 'Message-ID: <nodate-1@a.example>\r\n'],
    ['no Message-ID', 'Date: Sun, 06 Dec 2026 03:00:00 +0000\r\n'],
    ['neither Date nor Message-ID', ''],
    ['an empty Message-ID "<>"', 'Message-ID: <>\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\n'],
  ];
  test.each(cases)('%s: to carol (plain client) and bob (SSMAX client) at b.example', async (name, extra) => {
    const B = net.org('b.example');
    const marker = `marker-${name.replace(/\W+/g, '-')}`;
    const msg = plain(`From: dave@a.example\r\nTo: carol@b.example, bob@b.example\r\nSubject: ${marker}\r\n${extra}`, `Body ${marker}`);
    const before = { carol: B.mailbox.for('carol@b.example').length, bob: B.mailbox.for('bob@b.example').length };
    const r = await rawSmtp(net.org('a.example').ports.smtp, 'dave@a.example', ['carol@b.example', 'bob@b.example'], msg, DAVE);
    expect(r).toMatch(/^250 /);
    await waitFor(
      () => B.mailbox.for('carol@b.example').length > before.carol && B.mailbox.for('bob@b.example').length > before.bob,
      30000,
      () => net.org('a.example').haraka.logs().slice(-3000) + B.haraka.logs().slice(-3000),
    );
    const carol = B.mailbox.for('carol@b.example').at(-1)!.raw.toString('utf8');
    expect(carol).toContain(`Body ${marker}`);
    expect(carol).toMatch(/^Authentication-Results: b\.example; ssmax-chain=pass /);
    expect(carol).toMatch(/^Date: /m);
    expect(carol).toMatch(/^Message-ID: <[^>]+@a\.example>/m);
    const bob = loadUserProfile(B.profiles['bob@b.example']!);
    const opened = await openMessage(bob, B.mailbox.for('bob@b.example').at(-1)!.raw, { now: new Date() });
    expect(opened.summary).toMatch(/^ssmax-chain=pass header\.d=b\.example header\.i=2/);
    expect(opened.plaintext.toString('utf8')).toContain(`Body ${marker}`);
  });
});

function partBomb(n: number): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(`--b\r\nContent-Type: text/plain\r\n\r\nx${i}\r\n`);
  return Buffer.from(
    `From: dave@a.example\r\nTo: bob@b.example\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n${parts.join('')}--b--\r\n`,
  );
}

function depthBomb(n: number): Buffer {
  let open = '';
  let close = '';
  for (let i = 0; i < n; i++) {
    open += `--d${i}\r\nContent-Type: multipart/mixed; boundary=d${i + 1}\r\n\r\n`;
    close = `\r\n--d${i + 1}--\r\n${close}`;
  }
  return Buffer.from(
    `From: dave@a.example\r\nTo: bob@b.example\r\nSubject: depth\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=d0\r\n\r\n${open}--d${n}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--d${n}--${close}\r\n--d0--\r\n`,
  );
}

function longHeader(bytes: number): Buffer {
  const lines: string[] = [];
  for (let n = 0; n * 800 < bytes; n++) lines.push(` ${'y'.repeat(799)}`);
  return plain(`From: dave@a.example\r\nTo: bob@b.example\r\nSubject: long\r\nX-Long: start\r\n${lines.join('\r\n')}\r\n`, 'long header');
}

function manyHeaders(n: number): Buffer {
  const fields = Array.from({ length: n }, (_, i) => `X-Filler-${i}: v\r\n`).join('');
  return plain(`From: dave@a.example\r\nTo: bob@b.example\r\nSubject: many\r\n${fields}`, 'many headers');
}

describe('permanent conditions of the message are 5xx naming the limit', () => {
  const bombs: [string, () => Buffer, RegExp][] = [
    ['20,000 MIME parts', () => partBomb(20000), /MIME parts|parts/i],
    ['MIME nesting 2,000 deep', () => depthBomb(2000), /depth|nest/i],
    ['a 40 KB header field', () => longHeader(40000), /header "x-long"|header field|longer than/i],
    ['600 header fields', () => manyHeaders(600), /header count|fields/i],
  ];
  test.each(bombs)('%s: submission from a plain client', async (_name, make, limit) => {
    const r = await rawSmtp(net.org('a.example').ports.smtp, 'dave@a.example', ['bob@b.example'], make(), DAVE);
    expect(r).toMatch(/^55\d 5\.(3\.4|6\.0) /);
    expect(r).toMatch(limit);
  });
  test.each(bombs)('%s: arrival at b.example from another MTA', async (_name, make, limit) => {
    const raw = Buffer.from(
      make()
        .toString('latin1')
        .replace('From: dave@a.example', 'From: mallory@elsewhere.test')
        .replace('To: bob@b.example', 'To: carol@b.example'),
      'latin1',
    );
    const r = await rawSmtp(net.org('b.example').ports.smtp, 'mallory@elsewhere.test', ['carol@b.example'], raw);
    expect(r).toMatch(/^55\d 5\.(3\.4|6\.0) /);
    expect(r).toMatch(limit);
  });
});
