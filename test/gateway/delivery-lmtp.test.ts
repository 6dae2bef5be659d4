/**
 * Local delivery over LMTP (`[delivery] protocol=lmtp`) to a real Dovecot
 * LMTP server as the mailbox store: per-recipient replies after the data
 * (one mailbox that cannot be written: the others are taken once and the
 * retry reaches that one alone), a recipient Dovecot does not know (refused
 * at RCPT: refused for good), exactly-once across retries, and a copy handed
 * over again without the record (Dovecot's Sieve duplicate check keeps one).
 */
import { chmodSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDelivery, arrivalId, deliveryId, withDeliveryId } from '../../src/gateway/delivery';
import { GatewayError } from '../../src/mail/replies';
import { type DovecotLmtp, startDovecotLmtp, systemBinary } from '../support/dovecot';

jest.setTimeout(60000);

const message = (n: number) =>
  Buffer.from(
    `From: a@a.example\r\nTo: bob@b.example, carol@b.example\r\nSubject: m${n}\r\nMessage-ID: <m${n}@a.example>\r\n\r\nbody ${n}\r\n`,
  );

async function refusal(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('delivered');
}

let dovecot: DovecotLmtp;
let delivery: LocalDelivery;
beforeAll(async () => {
  dovecot = await startDovecotLmtp(['bob@b.example', 'carol@b.example']);
  delivery = new LocalDelivery('127.0.0.1', dovecot.port, 5000, mkdtempSync(join(tmpdir(), 'ssmax-delivery-lmtp-')), 'lmtp');
});
afterAll(async () => {
  await delivery?.close();
  await dovecot?.stop();
});

test('a message for two users lands once in each Maildir', async () => {
  await delivery.deliver(message(1), 'a@a.example', [{ rcpts: ['bob@b.example', 'carol@b.example'], message: message(1), local: true }]);
  for (const who of ['bob@b.example', 'carol@b.example']) {
    const mails = dovecot.mails(who);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.toString()).toMatch(/Subject: m1\r?\n/);
    expect(mails[0]!.toString()).toMatch(/^Received: from .*\r?\n\s+by \S+ with LMTP\r?\n/m); // stored by Dovecot's LMTP service
  }
});

test('a mailbox Dovecot cannot write (refused after the data): 4xx naming it, the other taken once; the retry reaches it alone', async () => {
  // carol's mail folder exists but cannot be written by the mail user: Dovecot accepts RCPT, then fails her after the data
  const carolDir = dovecot.mailDir('carol@b.example');
  chmodSync(carolDir, 0o500);
  for (const sub of ['', 'Maildir']) mkdirSync(join(carolDir, sub), { recursive: true });
  const m = message(2);
  const copy = { rcpts: ['bob@b.example', 'carol@b.example'], message: m, local: true };
  const before = { bob: dovecot.mails('bob@b.example').length, carol: dovecot.mails('carol@b.example').length };
  chmodSync(join(carolDir, 'Maildir'), 0o500);
  try {
    const e = await refusal(delivery.deliver(m, 'a@a.example', [copy]));
    expect([e.reply.code, e.reply.status]).toEqual([451, '4.4.1']);
    expect(e.reply.text).toMatch(/carol@b\.example/);
    expect(e.reply.text).not.toMatch(/bob@b\.example/);
    expect(e.reply.text).toMatch(/^Mailbox store unavailable: 4\d\d /); // Dovecot's own per-recipient reply after the data
    expect(dovecot.mails('bob@b.example')).toHaveLength(before.bob + 1);
    expect(dovecot.mails('carol@b.example')).toHaveLength(before.carol);
  } finally {
    chmodSync(join(carolDir, 'Maildir'), 0o700);
    chmodSync(carolDir, 0o700);
  }
  await delivery.deliver(m, 'a@a.example', [copy]);
  expect(dovecot.mails('carol@b.example')).toHaveLength(before.carol + 1);
  expect(dovecot.mails('bob@b.example')).toHaveLength(before.bob + 1); // not again
  await delivery.deliver(m, 'a@a.example', [copy]); // a third attempt delivers nothing more
  expect(dovecot.mails('bob@b.example')).toHaveLength(before.bob + 1);
  expect(dovecot.mails('carol@b.example')).toHaveLength(before.carol + 1);
});

test("a user Dovecot does not know (refused at RCPT, 550 5.1.1): refused for good, named with the store's reply; the other taken once; never retried", async () => {
  const m = message(3);
  const copy = { rcpts: ['bob@b.example', 'erin@b.example'], message: m, local: true };
  const bob = dovecot.mails('bob@b.example').length;
  const failed = await delivery.deliver(m, 'a@a.example', [copy]);
  expect(failed).toHaveLength(1);
  expect(failed[0]).toMatchObject({ rcpt: 'erin@b.example', code: 550 });
  expect(failed[0]!.reply).toMatch(/^550 5\.1\.1 /);
  expect(dovecot.mails('bob@b.example')).toHaveLength(bob + 1);
  // the caller told the sender (plugin.ts: a report, or a 5xx when no recipient was taken) and settles her
  await delivery.settle(arrivalId(m), ['erin@b.example']);
  await dovecot.addUser('erin@b.example');
  expect(await delivery.deliver(m, 'a@a.example', [copy])).toEqual([]);
  expect(dovecot.mails('erin@b.example')).toHaveLength(0);
  expect(dovecot.mails('bob@b.example')).toHaveLength(bob + 1);
});

test('every recipient refused for good: each named with its 5xx, nothing recorded', async () => {
  const m = message(4);
  const failed = await delivery.deliver(m, 'a@a.example', [{ rcpts: ['nobody1@b.example', 'nobody2@b.example'], message: m, local: true }]);
  expect(failed.map((f) => [f.rcpt, f.code])).toEqual([
    ['nobody1@b.example', 550],
    ['nobody2@b.example', 550],
  ]);
});

test("the store is idempotent for a copy handed over again after the record was lost (kill -9 between the store's 250 and the record): one copy", async () => {
  const m = message(5);
  const copy = { rcpts: ['bob@b.example', 'carol@b.example'], message: m, local: true };
  const before = { bob: dovecot.mails('bob@b.example').length, carol: dovecot.mails('carol@b.example').length };
  await delivery.deliver(m, 'a@a.example', [copy]);
  // a gateway that lost its record (a fresh one): it hands the same delivery over again
  const amnesiac = new LocalDelivery('127.0.0.1', dovecot.port, 5000, mkdtempSync(join(tmpdir(), 'ssmax-delivery-lmtp-')), 'lmtp');
  try {
    expect(await amnesiac.deliver(m, 'a@a.example', [copy])).toEqual([]);
  } finally {
    await amnesiac.close();
  }
  expect(dovecot.mails('bob@b.example')).toHaveLength(before.bob + 1);
  expect(dovecot.mails('carol@b.example')).toHaveLength(before.carol + 1);
  const stored = dovecot.mails('bob@b.example').at(-1)!.toString('latin1');
  expect(stored).toMatch(new RegExp(`^SSMAX-Delivery-Id: ${deliveryId(arrivalId(m))}\r?$`, 'm'));
  // a different message is still stored: the check is per delivery id
  const other = message(6);
  await deliverToBob(other);
  expect(dovecot.mails('bob@b.example')).toHaveLength(before.bob + 2);
});

async function deliverToBob(m: Buffer): Promise<void> {
  await delivery.deliver(m, 'a@a.example', [{ rcpts: ['bob@b.example'], message: m, local: true }]);
}

test('a sender cannot choose the delivery id: its own SSMAX-Delivery-Id fields are dropped; ours goes on top', () => {
  const m = Buffer.from('SSMAX-Delivery-Id: forged\r\nFrom: a@a.example\r\nSSMAX-Delivery-Id: forged2\r\n\r\nbody\r\n');
  expect(withDeliveryId(m, 'abc').toString('latin1')).toBe('SSMAX-Delivery-Id: abc\r\nFrom: a@a.example\r\n\r\nbody\r\n');
  const plain = Buffer.from('Received: x\r\nFrom: a@a.example\r\n\r\nbody\r\n');
  expect(withDeliveryId(plain, 'abc').toString('latin1')).toBe(
    'SSMAX-Delivery-Id: abc\r\nReceived: x\r\nFrom: a@a.example\r\n\r\nbody\r\n',
  );
});

test('a missing system binary fails the test with the script to run, never skips it', () => {
  expect(() => systemBinary('ssmax-no-such-binary', 'scripts/ensure-dovecot.sh')).toThrow(
    'ssmax-no-such-binary is not installed: run "bash scripts/ensure-dovecot.sh" (npm test runs it first)',
  );
});
