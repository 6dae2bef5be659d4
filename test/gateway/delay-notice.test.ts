/**
 * Delay notices are recorded as sent only after they were queued (issue 16):
 * a notice whose queueing fails is sent at the next deferral, and still at
 * most one goes per queued copy, also when deferrals overlap. The record is
 * the gateway's real LMDB delivery record; the queue is a stand-in that fails
 * on demand.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDelivery } from '../../src/gateway/delivery';
import { type DelayNotices, type DelayedCopy, notifyDelay } from '../../src/gateway/dsn';

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
