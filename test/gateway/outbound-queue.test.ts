/**
 * Unit tests of the hand-over to Haraka's queue (src/gateway/outbound-queue.ts) with a stand-in
 * for Haraka's transaction that records what it is given; the real Haraka path is
 * test/gateway/outbound-bytes.test.ts.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AddressClass,
  type HarakaQueue,
  type HarakaTransaction,
  neverSpooled,
  queueMessage,
  wireLines,
} from '../../src/gateway/outbound-queue';
import { GatewayError } from '../../src/mail/replies';

test('wireLines: split after each LF, a leading "." doubled, no byte decoded; the concatenation un-stuffed is the message', () => {
  const msg = Buffer.from('.a\r\n.\r\n..\r\nx.y\r\n\xe9\xff\r\n.\xe9\r\nno newline at the end', 'latin1');
  const lines = [...wireLines(msg)].map((l) => l.toString('latin1'));
  expect(lines).toEqual(['..a\r\n', '..\r\n', '...\r\n', 'x.y\r\n', '\xe9\xff\r\n', '..\xe9\r\n', 'no newline at the end']);
  const wire = Buffer.concat([...wireLines(msg)]);
  expect(Buffer.from(wire.toString('latin1').replace(/(^|\n)\./g, '$1'), 'latin1')).toEqual(msg);
  expect([...wireLines(Buffer.alloc(0))]).toEqual([]);
});

function standIn(code = 906): { q: HarakaQueue; txns: (HarakaTransaction & { lines: Buffer[]; ended: boolean })[] } {
  const txns: (HarakaTransaction & { lines: Buffer[]; ended: boolean })[] = [];
  class Address {
    constructor(readonly text: string) {}
  }
  const q: HarakaQueue = {
    createTransaction: () => {
      const t = {
        mail_from: undefined as unknown,
        rcpt_to: [] as unknown[],
        notes: {},
        lines: [] as Buffer[],
        ended: false,
        header: { header_list: ['.dotted: 1\n', 'Subject: x\n'] },
        add_data(line: Buffer) {
          t.lines.push(line);
        },
        message_stream: {
          add_line_end() {
            t.ended = true;
          },
        },
      };
      txns.push(t);
      return t;
    },
    send_trans_email: (_t, next) => next(code, code === 906 ? 'Message Queued' : 'disk full'),
    Address,
    smtpIni: {},
  };
  return { q, txns };
}

test('queueMessage: the envelope as Haraka addresses, each line stuffed, the end marked, the notes kept; a header field line beginning with "." stuffed too', async () => {
  const { q, txns } = standIn();
  await queueMessage(q, { from: '', to: ['b@b.example'], message: Buffer.from('Subject: x\r\n\r\n.\r\n'), notes: { k: 1 } });
  const t = txns[0]!;
  expect(t.mail_from).toEqual({ text: '<>' });
  expect(t.rcpt_to).toEqual([{ text: '<b@b.example>' }]);
  expect(t.lines.map((l) => l.toString())).toEqual(['Subject: x\r\n', '\r\n', '..\r\n']);
  expect(t.ended).toBe(true);
  expect(t.notes).toEqual({ k: 1 });
  expect(t.header.header_list).toEqual(['..dotted: 1\n', 'Subject: x\n']);
});

test("queueMessage: Haraka's refusal rejects (a 4xx of the gateway); a header block that is not UTF-8 is refused before Haraka sees it", async () => {
  await expect(
    queueMessage(standIn(903).q, { from: 'a@a.example', to: ['b@b.example'], message: Buffer.from('S: x\r\n\r\n') }),
  ).rejects.toThrow(/Haraka's queue: disk full/);
  const { q, txns } = standIn();
  const err = await queueMessage(q, {
    from: 'a@a.example',
    to: ['b@b.example'],
    message: Buffer.from('Subject: caf\xe9\r\n\r\nx', 'latin1'),
  }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(GatewayError);
  expect((err as GatewayError).reply.status).toBe('5.6.0');
  expect(txns).toHaveLength(0);
});

test("queueMessage: a header of more lines than Haraka's headers.max_lines keeps is refused (552 5.3.4), never queued cut; one line fewer is queued", async () => {
  const header = (n: number) => `${Array.from({ length: n - 1 }, (_, i) => `X-F${i}: v`).join('\r\n')}\r\nSubject: last\r\n\r\nbody\r\n`;
  const { q, txns } = standIn();
  await queueMessage(q, { from: '', to: ['b@b.example'], message: Buffer.from(header(1000)) });
  expect(txns).toHaveLength(1);
  const refused = await queueMessage(q, { from: '', to: ['b@b.example'], message: Buffer.from(header(1001)) }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(GatewayError);
  expect((refused as GatewayError).reply).toMatchObject({ code: 552, status: '5.3.4' });
  expect((refused as GatewayError).reply.text).toContain('more lines than the gateway can relay: 1001 lines, at most 1000');
  expect(txns).toHaveLength(1);
  // a configured headers.max_lines is the one that counts; folded lines count each
  const small = standIn();
  small.q.smtpIni = { headers: { max_lines: 3 } };
  const folded = Buffer.from('Subject: a\r\n b\r\n c\r\nTo: x@b.example\r\n\r\n');
  await expect(queueMessage(small.q, { from: '', to: ['b@b.example'], message: folded })).rejects.toThrow(/4 lines, at most 3/);
});

test("queueMessage: a copy larger than smtp.ini's spool_after is never spooled to disk (Haraka's outbound never removed the file), and is queued whole", async () => {
  // Haraka's own transaction and message stream, with spooling set to start at 1 KiB into a folder of this test
  const fromHaraka = createRequire(require.resolve('Haraka/transaction')); // Haraka's own modules, as it loads them
  const spool = mkdtempSync(join(tmpdir(), 'ssmax-spool-'));
  const trans = fromHaraka('./transaction') as { createTransaction: HarakaQueue['createTransaction'] };
  const { Address } = fromHaraka('@haraka/email-address') as { Address: AddressClass };
  const body = `${'x'.repeat(70)}\r\n`.repeat(300); // 21 KB
  const message = Buffer.from(`From: a@a.example\r\nSubject: big\r\n\r\n${body}`);
  let queued: Buffer = Buffer.alloc(0);
  const q: HarakaQueue = {
    createTransaction: (uuid, cfg) => trans.createTransaction(`t-${Date.now()}` as unknown as null, cfg),
    send_trans_email: (txn, next) => {
      // as Haraka's outbound does: it reads the whole message from the stream, then answers
      (txn.message_stream as unknown as { get_data(cb: (b: Buffer) => void): void }).get_data((b) => {
        queued = b;
        next(906, 'Message Queued');
      });
    },
    Address,
    smtpIni: { main: { spool_after: 1024, spool_dir: spool }, headers: { max_lines: 1000 } },
  };
  try {
    await queueMessage(q, { from: 'a@a.example', to: ['b@b.example'], message });
    expect(readdirSync(spool)).toEqual([]);
  } finally {
    rmSync(spool, { recursive: true, force: true });
  }
  expect(queued.toString('latin1')).toContain(body);
  expect(neverSpooled({ main: { spool_after: 10, x: 1 }, headers: { max_lines: 5 } })).toEqual({
    main: { spool_after: -1, x: 1 },
    headers: { max_lines: 5 },
  });
});
