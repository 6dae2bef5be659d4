import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { freePort } from '../../src/demo/haraka';
import { MailboxStore } from '../../src/demo/mailbox';
import { QuarantineStore, ReleaseStateError } from '../../src/inspect/quarantine';

test('quarantine: hold, list, show, release once into the gateway, delete', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-q-'));
  const store = new QuarantineStore(dir);
  const id = await store.hold({
    direction: 'outbound',
    from: 'a@a.example',
    rcpts: ['b@b.example'],
    rule: 'cards',
    message: Buffer.from('From: a@a.example\r\nSSMAX-Version: 1\r\n\r\nCIPHERTEXT\r\n'),
  });
  await store.close();

  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  expect(await main(['quarantine', 'list', '--state', dir], io)).toBe(0);
  expect(out.join('\n')).toMatch(new RegExp(`${id}  .*  outbound  held  cards  a@a\\.example  b@b\\.example`));
  expect(await main(['quarantine', 'show', id, '--state', dir], io)).toBe(0);
  expect(out.join('\n')).not.toMatch(/CIPHERTEXT/); // show never prints the message

  const sink = new MailboxStore();
  const port = await freePort();
  await sink.listen(port);
  try {
    expect(await main(['quarantine', 'release', id, '--state', dir, '--smtp', `127.0.0.1:${port}`], io)).toBe(0);
    expect(sink.mails).toHaveLength(1);
    expect(sink.mails[0]!.raw.toString()).toMatch(new RegExp(`^SSMAX-Quarantine-Release: ${id}\\r\\n`));
  } finally {
    await sink.close();
  }
  const again = new QuarantineStore(dir);
  expect(again.get(id)).toBeUndefined(); // the gateway's 250 ended it
  expect(await main(['quarantine', 'release', id, '--state', dir, '--smtp', `127.0.0.1:${port}`], io)).toBe(66); // nothing sent
  expect(sink.mails).toHaveLength(1);
  const id2 = await again.hold({
    direction: 'inbound',
    from: 'x@c.example',
    rcpts: ['b@b.example'],
    rule: 'av:Eicar',
    message: Buffer.from('x'),
  });
  await again.close();
  expect(await main(['quarantine', 'delete', id2, '--state', dir], io)).toBe(0);
  expect(await main(['quarantine', 'delete', id2, '--state', dir], io)).toBe(66);
});

describe('the store: a release is a change of state, checked in one LMDB transaction', () => {
  let store: QuarantineStore;
  beforeEach(() => {
    store = new QuarantineStore(mkdtempSync(join(tmpdir(), 'ssmax-q-')));
  });
  afterEach(() => store.close());
  const hold = () =>
    store.hold({ direction: 'outbound', from: 'a@a.example', rcpts: ['b@b.example', 'c@c.example'], rule: 'r', message: Buffer.from('x') });

  test('held → releasing → released (the gateway consumes the mark once) → removed after the 250', async () => {
    const id = await hold();
    expect(await store.consumeRelease(id)).toBe(false); // a held entry: the field alone proves nothing
    const r = (await store.release(id, 1000))!;
    expect(r).toMatchObject({ id, state: 'releasing', release: { since: 1000 } });
    expect(r.release!.token).toMatch(/^[0-9a-f]{24}$/);
    expect(store.get(id)).toMatchObject({ state: 'releasing', release: r.release });
    expect(await store.consumeRelease(id)).toBe(true);
    expect(store.get(id)?.state).toBe('released');
    expect(await store.consumeRelease(id)).toBe(false); // once
    expect(await store.consumeRelease('q-forged')).toBe(false);
    expect(await store.finishRelease(r, [], '')).toBe('done');
    expect(store.get(id)).toBeUndefined();
    expect(await store.release(id)).toBeUndefined();
  });

  test('a second release of an entry in a release, or released, is refused with a clear error and changes nothing', async () => {
    const id = await hold();
    const r = (await store.release(id, Date.UTC(2026, 0, 2)))!;
    await expect(store.release(id)).rejects.toThrow(
      new ReleaseStateError(`a release of ${id} is under way (since 2026-01-02T00:00:00.000Z)`),
    );
    expect(store.get(id)?.release).toEqual(r.release);
    await store.consumeRelease(id);
    await expect(store.release(id)).rejects.toThrow(
      new RegExp(`^${id} was already released \\(the gateway let it pass at a release started 2026-01-02T00:00:00\\.000Z\\)$`),
    );
    expect(store.get(id)).toMatchObject({ state: 'released', release: r.release });
  });

  test('holdAgain restores only the entry of this release that still exists: deleted meanwhile, it is not recreated', async () => {
    const id = await hold();
    const r = (await store.release(id))!;
    expect(await store.holdAgain(r)).toBe('held');
    expect(store.get(id)).toMatchObject({ state: 'held', rcpts: ['b@b.example', 'c@c.example'] });
    expect(store.get(id)?.release).toBeUndefined();
    expect(await store.holdAgain(r)).toBe('other'); // held already: not this release's any more

    const r2 = (await store.release(id))!;
    await store.consumeRelease(id); // the gateway let it pass, then did not take it: held again
    expect(await store.holdAgain(r2)).toBe('held');

    const r3 = (await store.release(id))!;
    expect(await store.delete(id)).toBe(true);
    expect(await store.holdAgain(r3)).toBe('gone');
    expect(store.get(id)).toBeUndefined();
    expect(await store.finishRelease(r3, [], '')).toBe('gone');
    expect(store.get(id)).toBeUndefined();
    expect(await store.delete(id)).toBe(false);
  });

  test("a stale release (another release's token) neither holds again nor ends the current one", async () => {
    const id = await hold();
    const first = (await store.release(id))!;
    expect(await store.holdAgain(first)).toBe('held');
    const second = (await store.release(id))!;
    expect(await store.holdAgain(first)).toBe('other');
    expect(await store.finishRelease(first, [], '')).toBe('other');
    expect(store.get(id)).toMatchObject({ state: 'releasing', release: second.release });
  });

  test('a 250 with some recipients refused: held again for those only, with a note', async () => {
    const id = await hold();
    const r = (await store.release(id))!;
    expect(await store.finishRelease(r, ['c@c.example'], 'released …: refused for c@c.example (550 no)')).toBe('done');
    expect(store.get(id)).toMatchObject({ state: 'held', rcpts: ['c@c.example'], note: 'released …: refused for c@c.example (550 no)' });
    expect(store.get(id)?.release).toBeUndefined();
    expect(store.list()[0]).toMatchObject({ id, state: 'held', rcpts: ['c@c.example'] });
  });
});
