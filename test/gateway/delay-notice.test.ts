/**
 * Delay notices are recorded as sent only after they were queued (issue 16):
 * a notice whose queueing fails is sent at the next deferral, and still at
 * most one goes per queued copy, also when deferrals overlap. The record is
 * the gateway's real LMDB delivery record; the queue is a stand-in that fails
 * on demand. Notices (delay and failure) quoting a long raw UTF-8 Subject are
 * cut on character boundaries, so the queue's UTF-8 check takes them.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDelivery } from '../../src/gateway/delivery';
import { isUtf8 } from 'node:buffer';
import {
  type DelayNotices,
  type DelayedCopy,
  cutUtf8Bytes,
  delayNotice,
  failureNotice,
  headerBlock,
  notifyDelay,
} from '../../src/gateway/dsn';
import { checkQueueable } from '../../src/gateway/outbound-queue';
import { sanitize } from '../../src/mail/replies';

let record: LocalDelivery;
beforeAll(() => {
  // no mailbox store is reached: only the record is used
  record = new LocalDelivery('127.0.0.1', 9, 1000, mkdtempSync(join(tmpdir(), 'ssmax-delay-notice-')));
});
afterAll(async () => {
  await record?.close();
});

const HOUR = 3600 * 1000;
let n = 0;
function copy(queuedAgoMs: number): DelayedCopy {
  return {
    id: `q-${++n}`,
    queuedAt: new Date(Date.now() - queuedAgoMs),
    sender: 'dave@a.example',
    rcpts: ['slow@x.test'],
    reason: '451 4.4.2 Try again later',
  };
}

function notices(send: DelayNotices['send']): DelayNotices {
  return { me: 'a.example', localDomains: ['a.example'], delayNoticeMs: 4 * HOUR, marks: record, send };
}

const headers = () => Promise.resolve('From: dave@a.example\r\nSubject: report\r\nMessage-ID: <r@a.example>\r\n');

test('a notice that could not be queued is not marked: the next deferral sends it; then never again', async () => {
  const sent: Buffer[] = [];
  let fail = true;
  const d = notices((_to, notice) => (fail ? Promise.reject(new Error('queue full')) : (sent.push(notice), Promise.resolve())));
  const c = copy(5 * HOUR);
  await expect(notifyDelay(d, c, headers)).rejects.toThrow('queue full');
  expect(record.noted(`delay:${c.id}`)).toBe(false);
  fail = false;
  await expect(notifyDelay(d, c, headers)).resolves.toBe(true);
  expect(sent).toHaveLength(1);
  expect(sent[0]!.toString('latin1')).toMatch(/^Action: delayed\r$/m);
  expect(sent[0]!.toString('latin1')).toMatch(/^Status: 4\.4\.2\r$/m);
  await expect(notifyDelay(d, c, headers)).resolves.toBe(false);
  expect(sent).toHaveLength(1);
});

test('overlapping deferrals of one copy send one notice', async () => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let calls = 0;
  const d = notices(async () => {
    calls++;
    await gate;
  });
  const c = copy(5 * HOUR);
  const first = notifyDelay(d, c, headers);
  const second = notifyDelay(d, c, headers);
  release();
  expect(await Promise.all([first, second])).toEqual([true, false]);
  expect(calls).toBe(1);
});

test('no notice before the delay, none for a null or foreign sender', async () => {
  let calls = 0;
  const d = notices(() => {
    calls++;
    return Promise.resolve();
  });
  expect(await notifyDelay(d, copy(HOUR), headers)).toBe(false);
  expect(await notifyDelay(d, { ...copy(5 * HOUR), sender: '' }, headers)).toBe(false);
  expect(await notifyDelay(d, { ...copy(5 * HOUR), sender: 'mallory@elsewhere.test' }, headers)).toBe(false);
  expect(calls).toBe(0);
});

describe("a notice quoting a long raw UTF-8 Subject (RFC 6532) is UTF-8 itself: Haraka's queue takes it", () => {
  // 400 bytes of Cyrillic (two bytes a character) after an ASCII word: every cut at 297 or 300 bytes, odd or even, is tried
  const subjects = ['Ж'.repeat(200), `x${'Ж'.repeat(200)}`, `xy${'€'.repeat(140)}`, `z${'😀'.repeat(100)}`];
  const arrival = (subject: string) =>
    Buffer.from(`From: dave@a.example\r\nTo: slow@x.test\r\nSubject: ${subject}\r\nMessage-ID: <u@a.example>\r\n\r\nhello\r\n`, 'utf8');
  const queueable = (m: Buffer) =>
    checkQueueable({ createTransaction: () => ({}) as never, send_trans_email: () => undefined, Address: class {}, smtpIni: {} }, m);

  test.each(subjects.map((s, i) => [i, s]))('delay and failure notices for subject %i', (_i, subject) => {
    const headers = headerBlock(arrival(subject as string));
    const delay = delayNotice({
      me: 'a.example',
      to: 'dave@a.example',
      rcpts: ['slow@x.test'],
      queuedAt: new Date(),
      reason: '451 4.4.1 later',
      headers,
      now: new Date(),
    });
    const failed = failureNotice({
      me: 'a.example',
      to: 'dave@a.example',
      failed: [{ rcpt: 'alice@a.example', reply: '550 5.1.1 no such user' }],
      queuedAt: new Date(),
      headers,
      now: new Date(),
    });
    for (const notice of [delay, failed]) {
      expect(() => queueable(notice)).not.toThrow();
      expect(isUtf8(notice)).toBe(true);
      const subjectLine = /^Subject: (.*)$/m.exec(notice.toString('utf8'))![1]!;
      expect(subjectLine).toMatch(/^(Delayed Mail|Undelivered Mail).*: [xyz]*[Ж€😀]+\.\.\.$/u);
      expect(Buffer.byteLength(subjectLine.slice(subjectLine.indexOf(': ') + 2))).toBeLessThanOrEqual(300);
    }
  });

  test('cutUtf8Bytes: never inside a character, at most the bound, the text kept whole when it fits', () => {
    for (const ch of ['a', 'é', 'Ж', '€', '😀'])
      for (let pad = 0; pad < 4; pad++) {
        const bytes = Buffer.from(`${'a'.repeat(pad)}${ch.repeat(400)}`, 'utf8').toString('latin1');
        const cut = cutUtf8Bytes(bytes, 300);
        expect(cut.length).toBeLessThanOrEqual(300);
        expect(cut.endsWith('...')).toBe(true);
        expect(isUtf8(Buffer.from(cut, 'latin1'))).toBe(true);
      }
    expect(cutUtf8Bytes('short', 300)).toBe('short');
  });

  test('sanitize: a reply text cut by whole characters, never inside a surrogate pair', () => {
    const cut = sanitize(`a${'😀'.repeat(400)}`);
    expect(cut.endsWith('...')).toBe(true);
    expect(Buffer.from(cut, 'utf8').toString('utf8')).toBe(cut); // no lone surrogate (it would become U+FFFD)
    expect([...cut]).toHaveLength(300);
  });
});
