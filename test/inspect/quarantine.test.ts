import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { main } from '../../src/cli/main';
import { freePort } from '../../src/demo/haraka';
import { MailboxStore } from '../../src/demo/mailbox';
import { DELIVERED_RECORD_SECONDS } from '../../src/gateway/config';
import {
  DEFAULT_RELEASE_LEASE_MS,
  type QuarantineEntry,
  QuarantineStore,
  ReleaseStateError,
  leaseEnd,
  parseReleaseMarker,
  releaseInterrupted,
  releaseMarker,
  RELEASE_RECORD_MS,
  releaseRecordGone,
  releaseTaken,
  shownState,
} from '../../src/inspect/quarantine';

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
    expect(sink.mails[0]!.raw.toString()).toMatch(new RegExp(`^SSMAX-Quarantine-Release: ${id} [0-9a-f]{24}\\r\\n`));
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
    expect(await store.consumeRelease(id, '0'.repeat(24))).toBe(false); // a held entry: the field alone proves nothing
    const r = (await store.release(id, 1000))!;
    expect(r).toMatchObject({ id, state: 'releasing', release: { since: 1000, until: 1000 + DEFAULT_RELEASE_LEASE_MS } });
    expect(r.release!.token).toMatch(/^[0-9a-f]{24}$/);
    expect(store.get(id)).toMatchObject({ state: 'releasing', release: r.release });
    expect(await store.consumeRelease(id, '0'.repeat(24))).toBe(false); // another token: not this release
    expect(store.get(id)?.state).toBe('releasing');
    expect(await store.consumeRelease(id, r.release!.token)).toBe(true);
    expect(store.get(id)?.state).toBe('released');
    expect(await store.consumeRelease(id, r.release!.token)).toBe(false); // once
    expect(await store.consumeRelease('q-forged', r.release!.token)).toBe(false);
    expect(await store.finishRelease(r, [], '')).toBe('done');
    expect(store.get(id)).toBeUndefined();
    expect(await store.release(id)).toBeUndefined();
  });

  test('a second release of an entry in a release, or released, is refused with a clear error and changes nothing', async () => {
    const id = await hold();
    const r = (await store.release(id, Date.UTC(2026, 0, 2)))!;
    await expect(store.release(id, Date.UTC(2026, 0, 2, 0, 9, 59))).rejects.toThrow(
      new ReleaseStateError(`a release of ${id} is under way (since 2026-01-02T00:00:00.000Z, holding it until 2026-01-02T00:10:00.000Z)`),
    );
    expect(store.get(id)?.release).toEqual(r.release);
    // the gateway takes the mark five minutes in: the lease (ten minutes) starts again from then
    await store.consumeRelease(id, r.release!.token, Date.UTC(2026, 0, 2, 0, 5));
    const taken = { ...r.release!, until: Date.UTC(2026, 0, 2, 0, 15) };
    await expect(store.release(id, Date.UTC(2026, 0, 2, 0, 14, 59))).rejects.toThrow(
      new ReleaseStateError(
        `${id} was already released: the gateway took it at a release started 2026-01-02T00:00:00.000Z, which holds it until 2026-01-02T00:15:00.000Z to finish; if that release does not finish by then, ${id} can be released again (a copy the gateway already handed over is not handed over again)`,
      ),
    );
    expect(store.get(id)).toMatchObject({ state: 'released', release: taken });
  });

  test('holdAgain restores only the entry of this release that still exists: deleted meanwhile, it is not recreated', async () => {
    const id = await hold();
    const r = (await store.release(id))!;
    expect(await store.holdAgain(r)).toBe('held');
    expect(store.get(id)).toMatchObject({ state: 'held', rcpts: ['b@b.example', 'c@c.example'] });
    expect(store.get(id)?.release).toBeUndefined();
    expect(await store.holdAgain(r)).toBe('other'); // held already: not this release's any more

    const r2 = (await store.release(id))!;
    await store.consumeRelease(id, r2.release!.token); // the gateway let it pass, then did not take it: held again
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
    expect(store.page().entries[0]).toMatchObject({ id, state: 'held', rcpts: ['c@c.example'] });
  });
});

describe('a release is a lease: one that died midway can be released again, never twice', () => {
  let dir: string;
  let store: QuarantineStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ssmax-q-'));
    store = new QuarantineStore(dir);
  });
  afterEach(() => store.close());
  const hold = () =>
    store.hold({ direction: 'outbound', from: 'a@a.example', rcpts: ['b@b.example'], rule: 'r', message: Buffer.from('x') });
  const T = Date.UTC(2026, 0, 2);

  test('the marker names the release: id and token, and nothing else parses', async () => {
    const id = await hold();
    const r = (await store.release(id))!;
    expect(releaseMarker(r)).toBe(`${id} ${r.release!.token}`);
    expect(parseReleaseMarker(` ${releaseMarker(r)} `)).toEqual({ id, token: r.release!.token });
    for (const bad of [id, `${id} ${'0'.repeat(23)}`, `${id} ${'0'.repeat(24)} x`, `${id}  ${'0'.repeat(24)}`, 'q-forged-000000000000', ''])
      expect(parseReleaseMarker(bad)).toBeUndefined();
  });

  test('within its lease a release holds the entry; once the lease ended the entry shows held and a new release takes it, with a new token', async () => {
    const id = await hold();
    const a = (await store.release(id, T, 1000))!;
    expect(a.release).toEqual({ token: a.release!.token, since: T, until: T + 1000 });
    expect(leaseEnd(store.get(id)!)).toBe(T + 1000);
    // one millisecond before the end: still under way
    expect(releaseInterrupted(store.get(id)!, T + 999)).toBe(false);
    expect(shownState(store.get(id)!, T + 999)).toBe('releasing');
    await expect(store.release(id, T + 999, 1000)).rejects.toThrow(ReleaseStateError);
    expect(store.get(id)?.release).toEqual(a.release);
    // at the end: interrupted, shown held, and taken over
    expect(releaseInterrupted(store.get(id)!, T + 1000)).toBe(true);
    expect(shownState(store.get(id)!, T + 1000)).toBe('held');
    const b = (await store.release(id, T + 1000, 5000))!;
    expect(b).toMatchObject({ id, state: 'releasing', release: { since: T + 1000, until: T + 6000 } });
    expect(b.release!.token).not.toBe(a.release!.token);
    expect(store.get(id)?.release).toEqual(b.release);
    // the dead release's token no longer counts anywhere: not at the gateway, not to hold again, not to finish
    expect(await store.consumeRelease(id, a.release!.token)).toBe(false);
    expect(await store.holdAgain(a)).toBe('other');
    expect(await store.finishRelease(a, [], '')).toBe('other');
    expect(store.get(id)).toMatchObject({ state: 'releasing', release: b.release });
    expect(await store.consumeRelease(id, b.release!.token)).toBe(true);
    expect(await store.finishRelease(b, [], '')).toBe('done');
    expect(store.get(id)).toBeUndefined();
  });

  test('an entry the gateway took (released) is not released again while its lease runs, started afresh when the gateway took it; once that ended (the releaser died before removing or holding it) it shows held and is released again', async () => {
    const id = await hold();
    const a = (await store.release(id, T, 1000))!;
    expect(await store.consumeRelease(id, a.release!.token, T + 800)).toBe(true);
    expect(store.get(id)).toMatchObject({
      state: 'released',
      release: { token: a.release!.token, since: T, until: T + 1800, taken: T + 800 },
    });
    // the releaser, alive, would remove the entry or hold it again at the gateway's answer: until then nobody else releases it
    expect(releaseTaken(store.get(id)!, T + 1799)).toBe(true);
    expect(releaseInterrupted(store.get(id)!, T + 1799)).toBe(false);
    expect(shownState(store.get(id)!, T + 1799)).toBe('released');
    await expect(store.release(id, T + 1799)).rejects.toThrow(/was already released: .*holds it until .*can be released again/);
    // the lease ended with the entry still released: its releaser died (the gateway's answer, 250 or 4xx, went nowhere)
    expect(releaseTaken(store.get(id)!, T + 1800)).toBe(false);
    expect(releaseInterrupted(store.get(id)!, T + 1800)).toBe(true);
    expect(shownState(store.get(id)!, T + 1800)).toBe('held');
    const b = (await store.release(id, T + 1800, 1000))!;
    expect(b).toMatchObject({ state: 'releasing', release: { since: T + 1800, until: T + 2800 } });
    expect(b.release!.token).not.toBe(a.release!.token);
    // the dead release's token counts nowhere now; the new one is honoured once
    expect(await store.consumeRelease(id, a.release!.token, T + 1900)).toBe(false);
    expect(await store.holdAgain(a)).toBe('other');
    expect(await store.consumeRelease(id, b.release!.token, T + 1900)).toBe(true);
    expect(await store.finishRelease(b, [], '')).toBe('done');
    expect(store.get(id)).toBeUndefined();
  });

  test('a released entry whose releaser died is released again only while the gateway keeps its record of the copies it handed over; after that it is not sent again, and says so', async () => {
    expect(RELEASE_RECORD_MS).toBe(DELIVERED_RECORD_SECONDS * 1000);
    const id = await hold();
    const a = (await store.release(id, T, 1000))!;
    expect(await store.consumeRelease(id, a.release!.token, T + 100)).toBe(true);
    expect(store.get(id)?.release).toMatchObject({ taken: T + 100, until: T + 1100 });
    const last = T + 100 + RELEASE_RECORD_MS - 1;
    expect(releaseInterrupted(store.get(id)!, last)).toBe(true);
    expect(releaseRecordGone(store.get(id)!, last)).toBe(false);
    const gone = T + 100 + RELEASE_RECORD_MS;
    expect(releaseInterrupted(store.get(id)!, gone)).toBe(false);
    expect(releaseRecordGone(store.get(id)!, gone)).toBe(true);
    expect(shownState(store.get(id)!, gone)).toBe('released');
    await expect(store.release(id, gone)).rejects.toThrow(
      /was already released: .*longer ago than the gateway keeps its record of the copies it handed over, so it is not sent again/,
    );
    expect(store.get(id)).toMatchObject({ state: 'released', release: { token: a.release!.token } });
  });

  test('a released entry can still be deleted', async () => {
    const id = await hold();
    const a = (await store.release(id, T, 1000))!;
    expect(await store.consumeRelease(id, a.release!.token, T)).toBe(true);
    expect(await store.delete(id)).toBe(true);
    expect(store.get(id)).toBeUndefined();
  });

  test('an entry an earlier version left released (marked before sending, never let through: that gateway removed those) shows held and is released once; a token compared with another of any length never matches', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssmax-q-legacy-'));
    // as the earlier version wrote it (the whole entry under its id in the main database): state released, no release of its own
    const id = 'q-mjwz7v40-0123456789ab';
    const raw = open<QuarantineEntry, string>({ path: dir, compression: false });
    await raw.put(id, {
      id,
      time: T,
      direction: 'inbound',
      from: 'a@a.example',
      rcpts: ['b@b.example'],
      rule: 'r',
      state: 'released',
      message: Buffer.from('x'),
    });
    await raw.close();
    const again = new QuarantineStore(dir);
    try {
      const old = again.get(id)!;
      expect(old.state).toBe('released');
      expect(releaseInterrupted(old)).toBe(true);
      expect(shownState(old)).toBe('held');
      const r = (await again.release(id, T, 1000))!;
      expect(r.state).toBe('releasing');
      expect(await again.consumeRelease(id, r.release!.token.slice(0, 23))).toBe(false);
      expect(await again.consumeRelease(id, `${r.release!.token}0`)).toBe(false);
      expect(await again.consumeRelease(id, r.release!.token, T)).toBe(true);
      await expect(again.release(id, T + 999)).rejects.toThrow(/was already released/);
    } finally {
      await again.close();
    }
  });

  test('an entry written before releases carried their end keeps the default lease', async () => {
    const id = await hold();
    const e = store.get(id)!;
    const old = { token: 'a'.repeat(24), since: T };
    expect(leaseEnd({ release: old })).toBe(T + DEFAULT_RELEASE_LEASE_MS);
    expect(releaseInterrupted({ state: 'releasing', release: old }, T + DEFAULT_RELEASE_LEASE_MS - 1)).toBe(false);
    expect(releaseInterrupted({ state: 'releasing', release: old }, T + DEFAULT_RELEASE_LEASE_MS)).toBe(true);
    expect(e.state).toBe('held');
  });

  test('the gateway takes the late message exactly as the lease ends, before the new release: the new release is refused', async () => {
    const id = await hold();
    const a = (await store.release(id, T, 1000))!;
    expect(await store.consumeRelease(id, a.release!.token, T + 1000)).toBe(true); // the gateway took the first release's message
    await expect(store.release(id, T + 1000, 1000)).rejects.toThrow(/was already released/); // not sent again
    // taken as the lease ended, it holds the entry for a lease from then: the first releaser, alive after all, finishes it
    expect(store.get(id)).toMatchObject({ state: 'released', release: { ...a.release, until: T + 2000 } });
  });

  test('the new release starts exactly as the lease ends, before the late message reaches the gateway: the late one is refused', async () => {
    const id = await hold();
    const a = (await store.release(id, T, 1000))!;
    const b = (await store.release(id, T + 1000, 1000))!;
    expect(await store.consumeRelease(id, a.release!.token)).toBe(false); // the late message names a token the store no longer has
    expect(store.get(id)).toMatchObject({ state: 'releasing', release: b.release });
    expect(await store.consumeRelease(id, b.release!.token)).toBe(true); // the new release's message passes, once
    expect(await store.consumeRelease(id, b.release!.token)).toBe(false);
  });

  test('racing: the late message and a new release at the end of the lease, at once, 40 times: one passes each time', async () => {
    for (let i = 0; i < 40; i++) {
      const id = await hold();
      const a = (await store.release(id, T, 1000))!;
      const [late, b] = await Promise.all([
        store.consumeRelease(id, a.release!.token),
        store.release(id, T + 1000, 1000).catch(() => undefined),
      ]);
      const fresh = b ? await store.consumeRelease(id, b.release!.token) : false;
      expect([late, fresh].filter(Boolean)).toHaveLength(1);
      expect(await store.consumeRelease(id, a.release!.token)).toBe(false);
    }
  });

  test('ssmax quarantine list and show: an interrupted release shows held, with the note; a taken one says it is finishing', async () => {
    const id = await hold();
    const id2 = await hold();
    const now = Date.now();
    await store.release(id, now - 5000, 1000); // its lease ended 4 s ago
    const r2 = (await store.release(id2, now - 5000, 60000))!;
    await store.consumeRelease(id2, r2.release!.token, now); // the gateway took it now: its lease runs a minute from then
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    expect(await main(['quarantine', 'list', '--state', dir], io)).toBe(0);
    expect(out.join('\n')).toMatch(new RegExp(`${id}  .*  outbound  held  r  `));
    expect(out.join('\n')).toMatch(new RegExp(`${id2}  .*  outbound  released  r  `));
    out.length = 0;
    expect(await main(['quarantine', 'show', id, '--state', dir], io)).toBe(0);
    const shown = JSON.parse(out.join('\n')) as Record<string, string>;
    expect(shown.state).toBe('held');
    expect(shown.releaseInterrupted).toMatch(/can be released again/);
    expect(shown.releaseLeaseEnds).toBe(new Date(now - 4000).toISOString());
    out.length = 0;
    expect(await main(['quarantine', 'show', id2, '--state', dir], io)).toBe(0);
    const taken = JSON.parse(out.join('\n')) as Record<string, string>;
    expect(taken.state).toBe('released');
    expect(taken.released).toMatch(/which is finishing: .*if it does not by the end of its lease, the entry can be released again/);
    expect(taken.releaseLeaseEnds).toBe(new Date(now + 60000).toISOString());
    expect(taken.releaseInterrupted).toBeUndefined();
    expect(await main(['quarantine', 'release', id, '--state', dir, '--smtp', '127.0.0.1:25', '--lease', '0'], io)).toBe(64);
    expect(out.join('\n')).toMatch(/--lease must be a whole number of seconds from 1 to 86400, got '0'/);
  });
});
