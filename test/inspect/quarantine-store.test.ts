/**
 * The quarantine store's layout and caps (docs/inspection.md, "Quarantine"):
 * a list reads the entries' metadata only, a page at a time, never a
 * message; a store the previous version wrote (whole entries in the main
 * database) is moved into this layout when it opens; the bytes held are
 * capped in all and per envelope sender, and the messages held in number,
 * a hold over a cap being a temporary failure (451 4.3.1) that writes
 * nothing, and a message that alone is over a byte cap a final one
 * (552 5.3.4) that writes nothing either.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { main } from '../../src/cli/main';
import {
  DEFAULT_PAGE_SIZE,
  HELD_ARRIVAL_MS,
  MODERATION_CAP_SETTINGS,
  type QuarantineEntry,
  QuarantineStore,
} from '../../src/inspect/quarantine';
import { GatewayError } from '../../src/mail/replies';

const dirOf = () => mkdtempSync(join(tmpdir(), 'ssmax-qs-'));
const T = Date.UTC(2026, 0, 2);

function entry(from: string, bytes: number) {
  return { direction: 'inbound' as const, from, rcpts: ['b@b.example'], rule: 'av:Eicar', message: Buffer.alloc(bytes, 0x41) };
}

describe('a list reads metadata only, a page at a time', () => {
  test('the messages are kept apart from the metadata: with every message gone from its database, the list is whole', async () => {
    const dir = dirOf();
    const store = new QuarantineStore(dir);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await store.hold(entry('x@c.example', 1000 + i), T + i));
    await store.close();
    // remove every message behind the store's back: a list that read them would find none
    const raw = open({ path: dir, compression: false });
    const bodies = raw.openDB<Buffer, string>({ name: 'body', encoding: 'binary', compression: false });
    expect([...bodies.getKeys()].sort()).toEqual([...ids].sort());
    for (const id of ids) await bodies.remove(id);
    await raw.close();
    const again = new QuarantineStore(dir);
    try {
      const page = again.page();
      expect(page.entries.map((e) => e.id)).toEqual([...ids].reverse()); // newest first
      expect(page.entries.every((e) => !('message' in e))).toBe(true);
      expect(page.entries[0]!.bytes).toBeGreaterThan(1004);
      expect(again.summary(ids[0]!)).toMatchObject({ id: ids[0], rule: 'av:Eicar' });
      expect(again.get(ids[0]!)).toBeUndefined(); // get is what reads a message
    } finally {
      await again.close();
    }
  });

  test('pages: newest first, DEFAULT_PAGE_SIZE unless told, each page after `before`, every entry once', async () => {
    const store = new QuarantineStore(dirOf());
    try {
      const ids: string[] = [];
      for (let i = 0; i < 250; i++) ids.push(await store.hold(entry(`s${i % 7}@c.example`, 10), T + i * 1000));
      const newestFirst = [...ids].reverse();
      const first = store.page();
      expect(first.entries).toHaveLength(DEFAULT_PAGE_SIZE);
      expect(first.entries.map((e) => e.id)).toEqual(newestFirst.slice(0, DEFAULT_PAGE_SIZE));
      expect(first.next).toBe(newestFirst[DEFAULT_PAGE_SIZE - 1]);
      const seen: string[] = [];
      let before: string | undefined;
      for (;;) {
        const p = store.page({ limit: 60, ...(before ? { before } : {}) });
        seen.push(...p.entries.map((e) => e.id));
        if (!p.next) break;
        before = p.next;
      }
      expect(seen).toEqual(newestFirst);
      expect(store.page({ limit: 50, before: newestFirst[199]! })).toEqual({ entries: expect.any(Array) });
      expect(store.page({ limit: 50, before: newestFirst[199]! }).entries.map((e) => e.id)).toEqual(newestFirst.slice(200));
      expect(store.heldCount()).toBe(250);
    } finally {
      await store.close();
    }
  });

  test('ssmax quarantine list and ssmax list held: --limit N lines, newest first; stderr names the --before of the next page', async () => {
    const dir = dirOf();
    const store = new QuarantineStore(dir);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await store.hold(entry('x@c.example', 10), T + i * 1000));
    await store.close();
    for (const cmd of [
      ['quarantine', 'list'],
      ['list', 'held'],
    ]) {
      const out: string[] = [];
      const err: string[] = [];
      const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
      expect(await main([...cmd, '--state', dir, '--limit', '2'], io)).toBe(0);
      expect(out.map((l) => l.split('  ')[0])).toEqual([ids[4], ids[3]]);
      expect(err.join('\n')).toMatch(new RegExp(`add --before ${ids[3]} for the next 2`));
      out.length = 0;
      err.length = 0;
      expect(await main([...cmd, '--state', dir, '--limit', '2', '--before', ids[1]!], io)).toBe(0);
      expect(out.map((l) => l.split('  ')[0])).toEqual([ids[0]]);
      expect(err).toEqual([]); // the last page
      expect(await main([...cmd, '--state', dir], io)).toBe(0);
      expect(out).toHaveLength(1 + 5);
      expect(await main([...cmd, '--state', dir, '--limit', '0'], io)).toBe(64);
      expect(err.join('\n')).toMatch(/--limit must be a whole number from 1 to 1000, got '0'/);
      expect(await main([...cmd, '--state', dir, '--before', 'nonsense'], io)).toBe(64);
    }
  });
});

describe('a store of the previous version', () => {
  test('is moved into the new layout when it opens: listed, counted, released, and its entries gone from the main database', async () => {
    const dir = dirOf();
    const raw = open<QuarantineEntry, string>({ path: dir, compression: false });
    const old = (n: number): QuarantineEntry => ({
      id: `q-mjwz7v4${n}-0123456789a${n}`,
      time: T + n,
      direction: 'outbound',
      from: 'a@a.example',
      rcpts: ['b@b.example'],
      rule: 'cards',
      state: 'held',
      message: Buffer.from(`CIPHERTEXT ${n}`),
    });
    for (const n of [1, 2, 3]) await raw.put(old(n).id, old(n));
    await raw.close();

    const store = new QuarantineStore(dir);
    try {
      expect(store.page().entries.map((e) => e.id)).toEqual([old(3).id, old(2).id, old(1).id]);
      expect(Buffer.from(store.get(old(2).id)!.message).toString()).toBe('CIPHERTEXT 2');
      expect(store.heldCount()).toBe(3);
      expect(store.heldBytes()).toBe(store.page().entries.reduce((n, e) => n + e.bytes, 0));
      expect(store.heldBytes('A@a.example')).toBe(store.heldBytes());
      const r = (await store.release(old(1).id))!;
      expect(Buffer.from(r.message).toString()).toBe('CIPHERTEXT 1');
      expect(await store.consumeRelease(r.id, r.release!.token)).toBe(true);
      expect(await store.finishRelease(r, [], '')).toBe('done');
      expect(store.heldCount()).toBe(2);
    } finally {
      await store.close();
    }
    const check = open<QuarantineEntry, string>({ path: dir, compression: false });
    try {
      expect(check.get(old(2).id)).toBeUndefined(); // moved, not copied
    } finally {
      await check.close();
    }
    // opened again: nothing moved twice, nothing counted twice (bytes, nor entries against max_entries)
    const again = new QuarantineStore(dir, { maxEntries: 3 });
    try {
      expect(again.heldCount()).toBe(2);
      expect(again.heldBytes()).toBe(again.page().entries.reduce((n, e) => n + e.bytes, 0));
      await again.hold(entry('c@c.example', 10));
      await expect(again.hold(entry('d@c.example', 10))).rejects.toThrow(/holds 3 messages/);
    } finally {
      await again.close();
    }
  });
});

describe('the bytes held are capped, in all and per sender', () => {
  test('over the total cap a hold is a temporary failure (451 4.3.1) that writes nothing; a delete makes room again', async () => {
    const store = new QuarantineStore(dirOf(), { maxBytes: 10_000, maxBytesPerSender: 10_000 });
    try {
      const a = await store.hold(entry('a@c.example', 4000));
      await store.hold(entry('b@c.example', 4000));
      const held = store.heldBytes();
      const err = await store.hold(entry('c@c.example', 4000)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).reply).toMatchObject({ code: 451, status: '4.3.1' });
      expect((err as GatewayError).temporary).toBe(true);
      expect((err as GatewayError).reply.text).toMatch(/^Storage for held messages is full, retry later: .*over its cap of 10000/);
      expect(store.heldCount()).toBe(2);
      expect(store.heldBytes()).toBe(held);
      expect(store.heldBytes('c@c.example')).toBe(0);
      expect(await store.delete(a)).toBe(true);
      await store.hold(entry('c@c.example', 4000));
      expect(store.heldCount()).toBe(2);
    } finally {
      await store.close();
    }
  });

  test('over one sender’s cap that sender is refused (whatever the case of its address) while another is held', async () => {
    const store = new QuarantineStore(dirOf(), { maxBytes: 1_000_000, maxBytesPerSender: 10_000 });
    try {
      await store.hold(entry('flood@c.example', 6000));
      await expect(store.hold(entry('FLOOD@c.example', 6000))).rejects.toThrow(/over the cap of 10000 per sender/);
      await store.hold(entry('other@c.example', 6000));
      expect(store.heldBytes('flood@c.example')).toBeGreaterThan(6000);
      expect(store.heldCount()).toBe(2);
    } finally {
      await store.close();
    }
  });

  test('a message that alone is over the total cap is refused for good (552 5.3.4, naming the setting), even by an empty store', async () => {
    const store = new QuarantineStore(dirOf(), { maxBytes: 10_000, maxBytesPerSender: 10_000 });
    try {
      const err = await store.hold(entry('a@c.example', 12_000)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).temporary).toBe(false);
      expect((err as GatewayError).reply).toMatchObject({ code: 552, status: '5.3.4' });
      expect((err as GatewayError).reply.text).toMatch(
        /^Message too large to be held: the message takes \d+ bytes held \(message and record\), over \[quarantine\] max_bytes=10000, the most held in all$/,
      );
      expect(store.heldCount()).toBe(0);
      expect(store.heldBytes()).toBe(0);
      // one that fits once others are gone stays temporary: the store is not full of it alone
      await store.hold(entry('a@c.example', 6000));
      const soft = await store.hold(entry('b@c.example', 6000)).catch((e: unknown) => e);
      expect((soft as GatewayError).reply).toMatchObject({ code: 451, status: '4.3.1' });
      expect((soft as GatewayError).reply.text).toMatch(/over its cap of 10000 \(\[quarantine\] max_bytes\)$/);
    } finally {
      await store.close();
    }
  });

  test("a message that alone is over one sender's cap is refused for good, naming the moderation queue's setting when it is that store", async () => {
    const store = new QuarantineStore(dirOf(), { maxBytes: 1_000_000, maxBytesPerSender: 10_000 }, MODERATION_CAP_SETTINGS);
    try {
      const err = (await store.hold(entry('flood@c.example', 10_000)).catch((e: unknown) => e)) as GatewayError;
      expect(err.reply).toMatchObject({ code: 552, status: '5.3.4' });
      expect(err.reply.text).toMatch(/over \[lists\] moderation_max_bytes_per_sender=10000, the most held for one sender$/);
      expect(store.heldCount()).toBe(0);
      // under the cap alone, over it with what the sender has held: for now only
      await store.hold(entry('flood@c.example', 6000));
      const soft = (await store.hold(entry('flood@c.example', 6000)).catch((e: unknown) => e)) as GatewayError;
      expect(soft.reply).toMatchObject({ code: 451, status: '4.3.1' });
      expect(soft.reply.text).toMatch(/per sender \(\[lists\] moderation_max_bytes_per_sender\)$/);
    } finally {
      await store.close();
    }
  });

  test('each entry counts its record too: held messages with empty bodies still take bytes', async () => {
    const store = new QuarantineStore(dirOf());
    try {
      const rcpts = Array.from({ length: 50 }, (_, i) => `recipient-${i}@b.example`);
      await store.hold({ ...entry('tiny@c.example', 0), rcpts });
      expect(store.heldBytes()).toBeGreaterThan(rcpts.join('').length);
      expect(store.heldBytes('tiny@c.example')).toBe(store.heldBytes());
    } finally {
      await store.close();
    }
  });

  test('the messages held are capped in number (max_entries): the next one is 451 4.3.1 naming it, a delete makes room; the count survives a reopen', async () => {
    const dir = dirOf();
    const caps = { maxEntries: 3 };
    let store = new QuarantineStore(dir, caps);
    try {
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(await store.hold(entry(`s${i}@c.example`, 10)));
      const err = (await store.hold(entry('s9@c.example', 10)).catch((e: unknown) => e)) as GatewayError;
      expect(err.reply).toMatchObject({ code: 451, status: '4.3.1' });
      expect(err.reply.text).toMatch(
        /^Storage for held messages is full, retry later: the store holds 3 messages, its cap \(\[quarantine\] max_entries=3\)$/,
      );
      expect(store.heldCount()).toBe(3);
      expect(await store.delete(ids[0]!)).toBe(true);
      await store.hold(entry('s9@c.example', 10));
      await store.close();
      store = new QuarantineStore(dir, caps);
      await expect(store.hold(entry('s10@c.example', 10))).rejects.toThrow(/holds 3 messages/);
    } finally {
      await store.close();
    }
  });

  test('a store written before entries were counted is counted when it opens', async () => {
    const dir = dirOf();
    const first = new QuarantineStore(dir);
    for (let i = 0; i < 2; i++) await first.hold(entry(`s${i}@c.example`, 10));
    await first.close();
    // remove the count behind the store's back, as a store of the earlier version has none
    const raw = open({ path: dir, compression: false });
    const usage = raw.openDB<number, string>({ name: 'usage', compression: false });
    expect(usage.get('entries')).toBe(2);
    await usage.remove('entries');
    await raw.close();
    const again = new QuarantineStore(dir, { maxEntries: 2 });
    try {
      await expect(again.hold(entry('s2@c.example', 10))).rejects.toThrow(/holds 2 messages/);
    } finally {
      await again.close();
    }
  });

  test('a release that ends removes the entry’s bytes; one held again for some recipients keeps them', async () => {
    const store = new QuarantineStore(dirOf());
    try {
      const id = await store.hold(entry('a@c.example', 500));
      const bytes = store.heldBytes();
      const r = (await store.release(id))!;
      expect(await store.finishRelease(r, ['b@b.example'], 'refused')).toBe('done');
      expect(store.heldBytes()).toBe(bytes);
      const r2 = (await store.release(id))!;
      expect(await store.finishRelease(r2, [], '')).toBe('done');
      expect(store.heldBytes()).toBe(0);
      expect(store.heldBytes('a@c.example')).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe("a sender's retry of a message held already (hold's arrival key)", () => {
  const key = (c: string) => c.repeat(64);

  test('is answered with the entry it has: one entry, one id, whatever became of it since (released and deleted too)', async () => {
    const store = new QuarantineStore(dirOf());
    try {
      const first = await store.hold(entry('x@c.example', 100), T, key('a'));
      // the retry: its first attempt was answered 4xx after the hold committed, or its 250 was lost
      expect(await store.hold(entry('x@c.example', 100), T + 60_000, key('a'))).toBe(first);
      expect(store.heldCount()).toBe(1);
      // another message (another key), or one without a key, is held as ever
      const other = await store.hold(entry('x@c.example', 100), T + 1, key('b'));
      const unkeyed = await store.hold(entry('x@c.example', 100), T + 2);
      expect(new Set([first, other, unkeyed]).size).toBe(3);
      expect(store.heldCount()).toBe(3);
      // deleted (or released and delivered): a retry still is not held again, to be released a second time
      expect(await store.delete(first)).toBe(true);
      expect(await store.hold(entry('x@c.example', 100), T + 120_000, key('a'))).toBe(first);
      expect(store.heldCount()).toBe(2);
    } finally {
      await store.close();
    }
  });

  test('two attempts holding at once (two handles of one store, as two processes have) hold one', async () => {
    const dir = dirOf();
    const one = new QuarantineStore(dir);
    const two = new QuarantineStore(dir);
    try {
      const ids = await Promise.all([one.hold(entry('x@c.example', 100), T, key('c')), two.hold(entry('x@c.example', 100), T, key('c'))]);
      expect(ids[0]).toBe(ids[1]);
      expect(one.heldCount()).toBe(1);
    } finally {
      await one.close();
      await two.close();
    }
  });

  test('is remembered for HELD_ARRIVAL_MS: later the same key holds anew, and the expired keys are forgotten as holds go on', async () => {
    const dir = dirOf();
    const store = new QuarantineStore(dir);
    try {
      const first = await store.hold(entry('x@c.example', 100), T, key('d'));
      const later = await store.hold(entry('x@c.example', 100), T + HELD_ARRIVAL_MS, key('d'));
      expect(later).not.toBe(first);
      expect(store.heldCount()).toBe(2);
      // the key now names the later entry: a retry of it is answered with that one
      expect(await store.hold(entry('x@c.example', 100), T + HELD_ARRIVAL_MS + 1, key('d'))).toBe(later);
      await store.hold(entry('x@c.example', 100), T + 2 * HELD_ARRIVAL_MS, key('e'));
    } finally {
      await store.close();
    }
    // what the store remembers: only the key held within HELD_ARRIVAL_MS of the last hold (e's), d's forgotten
    const raw = open({ path: dir, compression: false });
    const arrivals = raw.openDB<unknown, string>({ name: 'arrivals', compression: false });
    expect([...arrivals.getKeys()].filter((k) => k.startsWith('key:'))).toEqual([`key:${key('e')}`]);
    expect([...arrivals.getKeys()].filter((k) => k.startsWith('at:'))).toHaveLength(1);
    await raw.close();
  });
});
