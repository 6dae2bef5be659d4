/**
 * Permanent versus temporary, decided once by cause (issue 16): the limits
 * and parse failures of the message itself, from whichever parser met them,
 * are final 5xx naming the limit; everything else is a temporary fault.
 */
import { ChainFormatError } from '../../src/chain/result';
import { CryptoError } from '../../src/crypto/errors';
import { limitError } from '../../src/envelope/limits';
import { GatewayError, REPLIES, chainFormatFault, decided, replyFor } from '../../src/mail/replies';
import { extractContent } from '../../src/inspect/extract';
import { completeHeaders } from '../../src/gateway/completion';

describe('replyFor', () => {
  test('an envelope limit is 552 5.3.4 naming the limit and the value', () => {
    const r = replyFor(limitError('the number of MIME parts', 500, 20000));
    expect(r).toMatchObject({ code: 552, status: '5.3.4' });
    expect(r.text).toMatch(/number of MIME parts exceeds the limit of 500 \(got 20000\)/);
  });
  test('a malformed encrypted message is 550 5.6.0', () => {
    expect(replyFor(new CryptoError('bad-format', 'Cannot read the encrypted body: no boundary'))).toMatchObject({
      code: 550,
      status: '5.6.0',
    });
  });
  test("the chain's body-hash limits and parse failures are final too", () => {
    expect(replyFor(new ChainFormatError('limit-exceeded', 'Cannot hash body: MIME parts nest deeper than 16 levels'))).toMatchObject({
      code: 552,
      status: '5.3.4',
      text: expect.stringMatching(/deeper than 16/),
    });
    expect(replyFor(new ChainFormatError('body-unparseable', 'Cannot hash body: bad'))).toMatchObject({ code: 550, status: '5.6.0' });
    expect(chainFormatFault('limit-exceeded', 'x')?.reply.status).toBe('5.3.4');
    expect(chainFormatFault('signature-invalid', 'x')).toBeUndefined();
  });
  test("mailparser's own limits (inspection reading the plaintext) are final too, naming the limit", async () => {
    const parts = Array.from({ length: 1200 }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\nx${i}\r\n`).join('');
    const bomb = Buffer.from(
      `From: a@a.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n${parts}--b--\r\n`,
    );
    const err = await extractContent(bomb).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(replyFor(err)).toMatchObject({ code: 552, status: '5.3.4', text: expect.stringMatching(/more than 1000 MIME parts/) });
    const head = Buffer.from(`From: a@a.example\r\nX-Big: ${'y'.repeat(1100 * 1024)}\r\n\r\nbody\r\n`);
    const err2 = await extractContent(head).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(replyFor(err2)).toMatchObject({ code: 552, status: '5.3.4', text: expect.stringMatching(/header is larger than 1 MB/) });
    // decided(): the same decision as a GatewayError (it crosses the inspector process boundary as such)
    expect(decided(err)).toBeInstanceOf(GatewayError);
    const other = new Error('socket hang up');
    expect(decided(other)).toBe(other);
  });
  test("a mailbox store's permanent refusal keeps the store's status code", () => {
    const e = GatewayError.withStatus('mailboxRefused', '5.2.2', '552 5.2.2 Mailbox full (bob@b.example)');
    expect(e.reply).toMatchObject({ code: 550, status: '5.2.2' });
    expect(e.reply.text).toMatch(/^Mailbox store refused the message: 552 5\.2\.2 Mailbox full/);
    expect(GatewayError.withStatus('mailboxRefused', '4.2.2').reply.status).toBe('5.0.0');
  });
  test('our own faults and those of services we depend on stay temporary', () => {
    expect(replyFor(new TypeError('undefined is not a function'))).toBe(REPLIES.internal);
    expect(replyFor(new CryptoError('bad-proof', "the key service's proof does not verify"))).toBe(REPLIES.internal);
    expect(replyFor(new GatewayError('keydUnavailable')).code).toBe(451);
  });
});

describe('completeHeaders', () => {
  const now = new Date('2026-12-06T03:20:00Z');
  test('adds Date and Message-ID when missing; the same bytes twice get two Message-IDs (two messages are not taken for one)', () => {
    const one = Buffer.from('Received: from a by b; Sun, 06 Dec 2026 03:19:00 +0000\r\nFrom: d@a.example\r\nSubject: s\r\n\r\nbody\r\n');
    const two = Buffer.from('Received: from a by b; Sun, 06 Dec 2026 03:25:00 +0000\r\nFrom: d@a.example\r\nSubject: s\r\n\r\nbody\r\n');
    const a = completeHeaders(one, 'a.example', now).toString();
    const b = completeHeaders(two, 'a.example', now).toString();
    expect(a).toMatch(/\r\nDate: Sun, 06 Dec 2026 03:20:00 \+0000\r\n/);
    const id = /\r\nMessage-ID: (<[0-9a-f]{32}\.ssmax@a\.example>)\r\n/.exec(a)?.[1];
    expect(id).toBeDefined();
    expect(b).toMatch(/\r\nMessage-ID: <[0-9a-f]{32}\.ssmax@a\.example>\r\n/);
    expect(b).not.toContain(`Message-ID: ${id}`);
    expect(completeHeaders(one, 'a.example', now).toString()).not.toContain(`Message-ID: ${id}`);
    expect(a.endsWith('\r\n\r\nbody\r\n')).toBe(true);
  });
  test('replaces an empty Message-ID; leaves a complete message as it is (same buffer)', () => {
    const empty = completeHeaders(Buffer.from('From: d@a.example\r\nMessage-ID: <>\r\nDate: x\r\n\r\nb'), 'a.example', now).toString();
    expect(empty.match(/^Message-ID:/gim)).toHaveLength(1);
    expect(empty).not.toContain('<>');
    const full = Buffer.from('From: d@a.example\r\nMessage-ID: <m@a.example>\r\nDate: x\r\n\r\nb');
    expect(completeHeaders(full, 'a.example', now)).toBe(full);
  });
});
