/**
 * Local delivery to the mailbox store (src/gateway/delivery.ts) against a
 * real SMTP server on loopback: kept sessions, a recipient the store refuses
 * (the others are taken once; the retry reaches only the refused one), a
 * store that restarts between messages (the kept session is replaced, no
 * 4xx), a store that is down (4xx 4.4.1).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { open } from 'lmdb';
import { freePort } from '../../src/demo/haraka';
import { type EarlierAttempts, LocalDelivery, attemptId, identifiable } from '../../src/gateway/delivery';
import { copyNotes, copyOf } from '../../src/gateway/queue-reconcile';
import { GatewayError } from '../../src/mail/replies';

interface Store {
  readonly mails: { to: string[]; raw: string }[];
  connections: number;
  refuse: Set<string>;
  /** Refused for good at RCPT (550 5.1.1). */
  unknown: Set<string>;
  /** When set, the data is refused for good with this reply (554). */
  refuseData?: string;
  close(): Promise<void>;
}

async function store(port: number): Promise<Store> {
  const s: Store = { mails: [], connections: 0, refuse: new Set(), unknown: new Set(), close: async () => undefined };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onConnect: (_session, cb) => {
      s.connections++;
      cb();
    },
    onRcptTo: (addr, _session, cb) =>
      s.unknown.has(addr.address)
        ? cb(Object.assign(new Error('5.1.1 no such mailbox'), { responseCode: 550 }))
        : s.refuse.has(addr.address)
          ? cb(Object.assign(new Error('mailbox busy'), { responseCode: 452 }))
          : cb(),
    onData: (stream, session, cb) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('end', () => {
        if (s.refuseData) return cb(Object.assign(new Error(s.refuseData), { responseCode: 554 }));
        s.mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(parts).toString() });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  s.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const c of (server as unknown as { connections: Set<{ close(): void }> }).connections) c.close(); // end kept sessions now
    });
  return s;
}

const message = (n: number) => Buffer.from(`From: a@a.example\r\nSubject: m${n}\r\nMessage-ID: <m${n}@a.example>\r\n\r\nbody ${n}\r\n`);

async function refusal(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('delivered');
}

describe('local delivery to the mailbox store', () => {
  let port: number;
  let delivery: LocalDelivery;
  beforeEach(async () => {
    port = await freePort();
    delivery = new LocalDelivery('127.0.0.1', port, 3000, mkdtempSync(join(tmpdir(), 'ssmax-delivery-')));
  });
  afterEach(async () => {
    await delivery.close();
  });

  test('messages one after another go over one kept session', async () => {
    const s = await store(port);
    try {
      for (let n = 1; n <= 5; n++)
        await delivery.deliver(message(n), 'a@a.example', [{ rcpts: ['bob@b.example'], message: message(n), local: true }]);
      expect(s.mails.map((m) => m.raw.match(/Subject: (m\d)/)?.[1])).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
      expect(s.connections).toBe(1);
    } finally {
      await s.close();
    }
  });

  test('a recipient the store refuses: 4xx naming it, the other taken once; the retry delivers only the refused one', async () => {
    const s = await store(port);
    try {
      s.refuse.add('carol@b.example');
      const copy = { rcpts: ['bob@b.example', 'carol@b.example'], message: message(1), local: true };
      const e = await refusal(delivery.deliver(message(1), 'a@a.example', [copy]));
      expect([e.reply.code, e.reply.status]).toEqual([451, '4.4.1']);
      expect(e.reply.text).toMatch(/carol@b\.example/);
      expect(s.mails.map((m) => m.to)).toEqual([['bob@b.example']]);
      s.refuse.clear();
      await delivery.deliver(message(1), 'a@a.example', [copy]);
      expect(s.mails.map((m) => m.to)).toEqual([['bob@b.example'], ['carol@b.example']]);
      await delivery.deliver(message(1), 'a@a.example', [copy]); // a third attempt delivers nothing more
      expect(s.mails).toHaveLength(2);
    } finally {
      await s.close();
    }
  });

  test('recipients settled by an earlier attempt are told apart from one served twice in the same attempt (a member also addressed directly)', async () => {
    const s = await store(port);
    try {
      const m = message(7);
      // one attempt: bob's copy, then a list's copy that also reaches bob (same record key): skipped, but not "earlier"
      const first: EarlierAttempts = { since: Date.now(), rcpts: [] };
      await delivery.deliver(m, 'a@a.example', [{ rcpts: ['bob@b.example'], message: m, local: true }], undefined, attemptId(m), first);
      await delivery.deliver(
        m,
        'a@a.example',
        [{ rcpts: ['bob@b.example', 'carol@b.example'], message: m, local: true }],
        undefined,
        attemptId(m),
        first,
      );
      expect(first.rcpts).toEqual([]);
      expect(s.mails.map((x) => x.to)).toEqual([['bob@b.example'], ['carol@b.example']]);
      await new Promise((r) => setTimeout(r, 5)); // the retry starts after the records were written
      const retry: EarlierAttempts = { since: Date.now(), rcpts: [] };
      await delivery.deliver(
        m,
        'a@a.example',
        [{ rcpts: ['bob@b.example', 'carol@b.example'], message: m, local: true }],
        undefined,
        attemptId(m),
        retry,
      );
      expect(retry.rcpts).toEqual(['bob@b.example', 'carol@b.example']);
      expect(s.mails).toHaveLength(2);
    } finally {
      await s.close();
    }
  });

  test('a copy begun and never completed (the gateway stopped while handing it over) is told apart from a delivered one: it may have gone, it is not settled', async () => {
    const m = message(8);
    const id = attemptId(m);
    // bob's copy handed over; carol's begun, its hand-over never answering (as when the process is killed midway)
    await delivery.once(
      id,
      ['bob@b.example'],
      undefined,
      async () => ({ refused: [] }),
      (e) => e as GatewayError,
    );
    let handing!: () => void;
    let handOverStarted!: () => void;
    const started = new Promise<void>((resolve) => (handOverStarted = resolve));
    const stuck = delivery.once(
      id,
      ['carol@b.example'],
      undefined,
      () =>
        new Promise((resolve) => {
          handing = () => resolve({ refused: [] });
          handOverStarted(); // the intent is recorded before the hand-over begins
        }),
      (e) => e as GatewayError,
    );
    await started;
    const earlier = await delivery.earlier(id, Date.now() + 1);
    expect([...earlier].sort()).toEqual([
      ['bob@b.example', true],
      ['carol@b.example', false],
    ]);
    handing();
    await stuck;
    expect((await delivery.earlier(id, Date.now() + 1)).get('carol@b.example')).toBe(true);
  });

  test('a hand-over that fails after another worker took its copy over and recorded it handed over leaves that record (removed, the next retry would hand the copy over again)', async () => {
    const m = message(9);
    const id = attemptId(m);
    const dir = mkdtempSync(join(tmpdir(), 'ssmax-delivery-takeover-'));
    const mine = new LocalDelivery('127.0.0.1', port, 3000, dir);
    // another Haraka worker's view of the same record (cluster mode shares the folder)
    const other = open<unknown, string>({ path: dir, compression: false });
    try {
      await expect(
        mine.once(
          id,
          ['dave@b.example'],
          undefined,
          async () => {
            // this hand-over ran past FOREIGN_INTENT_MS: the other worker took it over, handed the copy over, recorded it
            await other.put(`${id}:dave@b.example`, Date.now());
            throw new Error('the store hung up');
          },
          () => new GatewayError('deliveryUnavailable', 'the store hung up'),
        ),
      ).rejects.toThrow(/store hung up/);
      expect(other.get(`${id}:dave@b.example`)).toEqual(expect.any(Number)); // before: removed with this attempt's intent
      let handed = 0;
      await mine.once(
        id,
        ['dave@b.example'],
        undefined,
        async () => {
          handed++;
          return { refused: [] };
        },
        (e) => e as GatewayError,
      );
      expect(handed).toBe(0); // the retry finds it handed over
    } finally {
      await mine.close();
      await other.close();
    }
  });

  test('a recipient refused for good while its attempt reports it: a retry meanwhile (after a hook timeout, in this process or another Haraka worker) waits for that report and hands nothing over again', async () => {
    const id = attemptId(message(9));
    const refuse = async (todo: readonly string[]) => ({
      refused: todo.map((rcpt) => ({ rcpt, code: 550, reply: '550 5.1.1 no such mailbox' })),
    });
    const fail = (e: unknown) => e as GatewayError;
    const first = await delivery.once(id, ['carol@b.example'], undefined, refuse, fail, { since: Date.now(), rcpts: [] });
    expect(first.map((f) => f.rcpt)).toEqual(['carol@b.example']);
    // the first attempt is reporting the refusal to its sender (reportAndSettle); a retry of the message begins meanwhile
    await new Promise((r) => setTimeout(r, 5));
    let handed = 0;
    const retryAlready = { since: Date.now(), rcpts: [] as string[] };
    const retry = delivery.once(
      id,
      ['carol@b.example'],
      undefined,
      async (todo) => {
        handed++;
        return refuse(todo);
      },
      fail,
      retryAlready,
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(handed).toBe(0); // it waits for the first attempt's outcome
    expect((await delivery.earlier(id, Date.now() + 1)).size).toBe(0); // a refusal being reported is no copy that went
    await delivery.settle(id, ['carol@b.example']); // reported
    expect(await retry).toEqual([]); // nothing to report again
    expect(handed).toBe(0);
    expect(retryAlready.rcpts).toEqual(['carol@b.example']); // settled by the earlier attempt, as the 250 then says
    // an attempt that never settles its refusal (it answered its sender 5xx itself) leaves no copy that went: a retry's 5xx stands
    const id2 = attemptId(message(10));
    const marked: string[] = [];
    await delivery.once(id2, ['dan@b.example'], undefined, refuse, fail, { since: Date.now(), rcpts: [], marked });
    expect(marked).toEqual(['dan@b.example']);
    expect((await delivery.earlier(id2, Date.now() + 1)).size).toBe(0);
    // and removes its mark (send does, when the attempt fails or answers 5xx): the next attempt goes on at once
    await delivery.unmark(id2, marked);
    await new Promise((r) => setTimeout(r, 5));
    let again = 0;
    const next = delivery.once(
      id2,
      ['dan@b.example'],
      undefined,
      async (todo) => {
        again++;
        return refuse(todo);
      },
      fail,
      { since: Date.now(), rcpts: [] },
    );
    expect((await next).map((f) => f.rcpt)).toEqual(['dan@b.example']);
    expect(again).toBe(1);
  });

  test('the same bytes twice without a Message-ID (an alert sent twice): both delivered, never skipped as already delivered', async () => {
    const s = await store(port);
    try {
      const alert = Buffer.from('From: monitor@a.example\r\nTo: bob@b.example\r\nSubject: disk full\r\n\r\n/var is full\r\n');
      const copy = { rcpts: ['bob@b.example'], message: alert, local: true };
      await delivery.deliver(alert, 'monitor@a.example', [copy]);
      await delivery.deliver(alert, 'monitor@a.example', [copy]);
      expect(s.mails.map((m) => m.to)).toEqual([['bob@b.example'], ['bob@b.example']]);
      // with a Message-ID it names itself: the second is the same message (a retry), taken once
      await delivery.deliver(message(3), 'a@a.example', [{ rcpts: ['bob@b.example'], message: message(3), local: true }]);
      await delivery.deliver(message(3), 'a@a.example', [{ rcpts: ['bob@b.example'], message: message(3), local: true }]);
      expect(s.mails).toHaveLength(3);
    } finally {
      await s.close();
    }
  });

  test('what tells a retry from another message: a Message-ID (not empty, not "<>", in any spelling of the name) or a seal', () => {
    const m = (head: string) => Buffer.from(`From: a@a.example\r\n${head}Subject: s\r\n\r\nbody\r\n`);
    expect(identifiable(m('Message-ID: <x@a.example>\r\n'))).toBe(true);
    expect(identifiable(m('message-id :\r\n <x@a.example>\r\n'))).toBe(true);
    expect(identifiable(m(''))).toBe(false);
    expect(identifiable(m('Date: Sun, 06 Dec 2026 03:00:00 +0000\r\n'))).toBe(false);
    expect(identifiable(m('Message-ID: <>\r\n'))).toBe(false);
    expect(identifiable(m('Message-ID:  \r\n'))).toBe(false);
    expect(identifiable(m('X-Message-ID: <x@a.example>\r\n'))).toBe(false);
    expect(identifiable(Buffer.from('Subject: s\r\n\r\nMessage-ID: <in-the-body@a.example>\r\n'))).toBe(false);
    // the key of each attempt: the identity when it names itself, else a new one each time, which a queue file's notes can carry
    expect(attemptId(m('Message-ID: <x@a.example>\r\n'))).toBe(attemptId(m('Message-ID: <x@a.example>\r\n')));
    const [one, two] = [attemptId(m('')), attemptId(m(''))];
    expect(one).not.toBe(two);
    expect(copyOf(copyNotes({ id: one, rcpts: ['bob@b.example'] }))).toEqual({ id: one, rcpts: ['bob@b.example'] });
  });

  test('each release of one held entry that names itself is one message, whatever its token: a copy one release handed over is not handed over by the next', () => {
    const m = (head: string) => Buffer.from(`From: a@a.example\r\n${head}Subject: s\r\n\r\nbody\r\n`);
    const entry = 'q-mjwz7v40-0123456789ab';
    const named = 'Message-ID: <x@a.example>\r\n';
    const release = (field: string, id: string, token: string, more = named) => m(`${field}: ${id} ${token}\r\n${more}`);
    for (const field of ['SSMAX-Quarantine-Release', 'SSMAX-List-Release', 'ssmax-list-release']) {
      const first = release(field, entry, 'a'.repeat(24));
      expect(attemptId(release(field, entry, 'b'.repeat(24)))).toBe(attemptId(first));
      // another entry, or the held message itself (no marker), is another message
      expect(attemptId(release(field, 'q-mjwz7v40-ffffffffffff', 'a'.repeat(24)))).not.toBe(attemptId(first));
      expect(attemptId(m(named))).not.toBe(attemptId(first));
      // a release field alone names no message: one the gateway does not honour may stand on two messages with the same bytes
      const bare = release(field, entry, 'a'.repeat(24), '');
      expect(identifiable(bare)).toBe(false);
      expect(attemptId(bare)).not.toBe(attemptId(bare));
    }
    // a field that is no marker is kept as it is: the message is told by its bytes, the field's text included
    const forged = (t: string) => m(`SSMAX-Quarantine-Release: ${entry} ${t}\r\n${named}`);
    expect(attemptId(forged('x'))).not.toBe(attemptId(forged('y')));
  });

  test('the store restarts between two messages: the kept session is replaced and the message delivered', async () => {
    let s = await store(port);
    await delivery.deliver(message(1), 'a@a.example', [{ rcpts: ['bob@b.example'], message: message(1), local: true }]);
    await s.close();
    s = await store(port);
    try {
      await delivery.deliver(message(2), 'a@a.example', [{ rcpts: ['bob@b.example'], message: message(2), local: true }]);
      expect(s.mails.map((m) => m.raw.match(/Subject: (m\d)/)?.[1])).toEqual(['m2']);
    } finally {
      await s.close();
    }
  });

  test("a recipient the store refuses for good (550 5.1.1 at RCPT): not a 4xx; named with the store's reply, the other taken once", async () => {
    const s = await store(port);
    try {
      s.unknown.add('carol@b.example');
      const copy = { rcpts: ['bob@b.example', 'carol@b.example'], message: message(7), local: true };
      const failed = await delivery.deliver(message(7), 'a@a.example', [copy]);
      expect(failed.map((f) => [f.rcpt, f.code])).toEqual([['carol@b.example', 550]]);
      expect(failed[0]!.reply).toMatch(/^550 5\.1\.1 no such mailbox/);
      expect(s.mails.map((m) => m.to)).toEqual([['bob@b.example']]);
      expect(s.mails[0]!.raw).not.toMatch(/SSMAX-Delivery-Id/i); // over SMTP only when [delivery] delivery_id=true
    } finally {
      await s.close();
    }
  });

  test('the store refuses the data for good (554 over SMTP): every recipient refused for good; once the attempt gives them back (unmark, as the plugin does when it answers the sender 5xx itself), the next attempt delivers without waiting', async () => {
    const s = await store(port);
    try {
      s.refuseData = '5.6.0 message refused';
      const failed = await delivery.deliver(message(8), 'a@a.example', [
        { rcpts: ['bob@b.example', 'carol@b.example'], message: message(8), local: true },
      ]);
      expect(failed.map((f) => [f.rcpt, f.code])).toEqual([
        ['bob@b.example', 554],
        ['carol@b.example', 554],
      ]);
      s.refuseData = undefined;
      await delivery.unmark(attemptId(message(8)), ['bob@b.example', 'carol@b.example']);
      const started = Date.now();
      expect(
        await delivery.deliver(message(8), 'a@a.example', [
          { rcpts: ['bob@b.example', 'carol@b.example'], message: message(8), local: true },
        ]),
      ).toEqual([]);
      expect(s.mails).toHaveLength(1);
      // not the wait for a report of the refusal (REFUSAL_SETTLE_MS, 30 s) that an attempt leaving its marks would cause
      expect(Date.now() - started).toBeLessThan(10000);
    } finally {
      await s.close();
    }
  });

  test('[delivery] delivery_id=true over SMTP: every copy carries the same SSMAX-Delivery-Id on every attempt', async () => {
    const s = await store(port);
    const withId = new LocalDelivery('127.0.0.1', port, 3000, mkdtempSync(join(tmpdir(), 'ssmax-delivery-')), 'smtp', true);
    const other = new LocalDelivery('127.0.0.1', port, 3000, mkdtempSync(join(tmpdir(), 'ssmax-delivery-')), 'smtp', true);
    try {
      for (const d of [withId, other])
        await d.deliver(message(9), 'a@a.example', [{ rcpts: ['bob@b.example'], message: message(9), local: true }]);
      const ids = s.mails.map((m) => /^SSMAX-Delivery-Id: ([0-9a-f]{40})\r\nFrom: a@a\.example\r\n/.exec(m.raw)?.[1]);
      expect(ids).toHaveLength(2);
      expect(ids[0]).toBeDefined();
      expect(ids[1]).toBe(ids[0]);
    } finally {
      await withId.close();
      await other.close();
      await s.close();
    }
  });

  test('the store is down: 451 4.4.1, and delivered once it is back', async () => {
    const e = await refusal(delivery.deliver(message(1), 'a@a.example', [{ rcpts: ['bob@b.example'], message: message(1), local: true }]));
    expect([e.reply.code, e.reply.status]).toEqual([451, '4.4.1']);
    const s = await store(port);
    try {
      await delivery.deliver(message(1), 'a@a.example', [{ rcpts: ['bob@b.example'], message: message(1), local: true }]);
      expect(s.mails).toHaveLength(1);
    } finally {
      await s.close();
    }
  });
});
