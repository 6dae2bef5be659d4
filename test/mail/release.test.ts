/**
 * The one release (src/mail/release.ts) against an SMTP sink on loopback
 * standing in for the gateway (src/demo/mailbox.ts): what the store holds
 * after each way the gateway may not take the message. The release through
 * the real gateway and console is in test/console/console-release.test.ts.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/demo/haraka';
import { MailboxStore } from '../../src/demo/mailbox';
import { QuarantineStore, RELEASE_HEADER } from '../../src/inspect/quarantine';
import { ReinjectError, releaseHeld } from '../../src/mail/release';
import { waitFor } from '../gateway/network-fixture';

let store: QuarantineStore;
let sink: MailboxStore;
let port: number;

beforeEach(async () => {
  store = new QuarantineStore(mkdtempSync(join(tmpdir(), 'ssmax-release-')));
  sink = new MailboxStore();
  port = await freePort();
  await sink.listen(port);
});

afterEach(async () => {
  await sink.close();
  await store.close();
});

const hold = () =>
  store.hold({
    direction: 'outbound',
    from: 'a@a.example',
    rcpts: ['b@b.example'],
    rule: 'r',
    message: Buffer.from('Subject: x\r\n\r\nCIPHERTEXT\r\n'),
  });

test('taken (250): the reply is returned, the release field is on top, the entry is marked released for the gateway to consume', async () => {
  const id = await hold();
  const done = await releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  expect(done?.reply).toMatch(/^250 /);
  expect(sink.mails).toHaveLength(1);
  expect(sink.mails[0]!.raw.toString()).toMatch(new RegExp(`^${RELEASE_HEADER}: ${id}\\r\\n`));
  expect(store.get(id)?.state).toBe('released');
  expect(await releaseHeld(store, 'q-none-000000000000', RELEASE_HEADER, { host: '127.0.0.1', port })).toBeUndefined();
});

test('refused (451 at the end of DATA): a ReinjectError with the reply; the entry is held again', async () => {
  const id = await hold();
  sink.refuse = '4.3.0 try again later';
  await expect(releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port })).rejects.toThrow(
    new ReinjectError(`cannot re-inject ${id}: 451 4.3.0 try again later`),
  );
  expect(store.get(id)?.state).toBe('held');
  expect(sink.mails).toHaveLength(0);
});

test('nothing listening: the entry is held again', async () => {
  const id = await hold();
  const closed = await freePort();
  await expect(releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port: closed })).rejects.toThrow(/ECONNREFUSED/);
  expect(store.get(id)?.state).toBe('held');
});

test('the gateway consumed the release, then did not take the message: the entry is held again, not lost', async () => {
  const id = await hold();
  sink.delayMs = 1500;
  sink.refuse = '4.3.0 fault after the inspection';
  const release = releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  await waitFor(() => store.get(id)?.state === 'released');
  expect(await store.consumeRelease(id)).toBe(true); // as the gateway's inspection step does
  expect(store.get(id)).toBeUndefined();
  await expect(release).rejects.toThrow(/451 4\.3\.0 fault after the inspection/);
  expect(store.get(id)).toMatchObject({ id, state: 'held', rcpts: ['b@b.example'] });
  expect(Buffer.from(store.get(id)!.message).toString()).toMatch(/CIPHERTEXT/);
});

test('a second release of the same entry while the first is under way is refused; one message is sent', async () => {
  const id = await hold();
  sink.delayMs = 300;
  const first = releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  await expect(releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port })).rejects.toThrow(`a release of ${id} is under way`);
  expect((await first)?.reply).toMatch(/^250 /);
  expect(sink.mails).toHaveLength(1);
});
