/**
 * Reconciling the exactly-once record with Haraka's queue (src/gateway/queue-reconcile.ts):
 * queue files in Haraka's format (length-prefixed JSON header, then the
 * message; the real-process crash test uses Haraka's own files) name the copy they hold; an
 * intent left open by a process that died is settled when its copy is in the
 * queue (the retry hands nothing over), and stays open — handed over again,
 * and logged — when it is not.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { open } from 'lmdb';
import { LocalDelivery } from '../../src/gateway/delivery';
import { GatewayError } from '../../src/mail/replies';
import { copyNotes, copyOf, queuedCopies } from '../../src/gateway/queue-reconcile';

/** A queue file as Haraka's outbound writes it (outbound build_todo: 4-byte length, "\n" JSON "\n", then the message). */
function haraka(todo: unknown, message: string): Buffer {
  const head = Buffer.from(`\n${JSON.stringify(todo, null, '\t')}\n`, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(head.length, 0);
  return Buffer.concat([len, head, Buffer.from(message, 'latin1')]);
}

/** The pid of a process that has ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);

test('queuedCopies reads the copy each queue file names, and skips temporary, set-aside, foreign and malformed files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-queue-'));
  writeFileSync(
    join(dir, '1733450000000_1733450000000_0_123_abc_1_host'),
    haraka(
      { queue_time: 1, domain: 'b.example', rcpt_to: [], notes: copyNotes({ id: ID_A, rcpts: ['carol@b.example'] }) },
      'ssmax-seal: x\r\n\r\nciphertext\r\n',
    ),
  );
  // being written (or left by a kill): Haraka deletes these at start, so they are no copy
  writeFileSync(
    join(dir, '__tmp__.1733450000001_1733450000001_0_123_def_2_host'),
    haraka({ notes: copyNotes({ id: ID_B, rcpts: ['x@b.example'] }) }, ''),
  );
  writeFileSync(
    join(dir, '.1733450000001_1733450000001_0_123_ghi_3_host'),
    haraka({ notes: copyNotes({ id: ID_B, rcpts: ['y@b.example'] }) }, ''),
  );
  writeFileSync(
    join(dir, 'error.1733450000001_1733450000001_0_123_jkl_4_host'),
    haraka({ notes: copyNotes({ id: ID_B, rcpts: ['z@b.example'] }) }, ''),
  );
  writeFileSync(join(dir, '1_1_0_1_a_1_dsn'), haraka({ notes: {} }, 'a notice')); // no copy named
  writeFileSync(join(dir, '1_1_0_1_b_1_broken'), Buffer.from([0, 0, 0, 50, 0x7b])); // truncated header
  writeFileSync(join(dir, '1_1_0_1_c_1_huge'), Buffer.from([0xff, 0xff, 0xff, 0xff]));
  writeFileSync(join(dir, '1_1_0_1_d_1_badid'), haraka({ notes: { ssmax_copy: { id: '../../etc', rcpts: ['a@b'] } } }, ''));
  writeFileSync(join(dir, 'not-a-queue-file'), haraka({ notes: copyNotes({ id: ID_B, rcpts: ['w@b.example'] }) }, ''));
  mkdirSync(join(dir, '1_1_0_1_e_1_subdir'));
  expect(queuedCopies(dir)).toEqual([{ id: ID_A, rcpts: ['carol@b.example'] }]);
  expect(queuedCopies(join(dir, 'missing'))).toEqual([]);
  expect(copyOf({ ssmax_copy: { id: ID_A, rcpts: [5] } })).toBeUndefined();
});

test('an open intent of a dead process is settled when its copy is in the queue; one that is not is handed over again, logged', async () => {
  const state = mkdtempSync(join(tmpdir(), 'ssmax-delivered-'));
  const db = open<unknown, string>({ path: state, compression: false });
  const pid = deadPid();
  await db.put(`${ID_A}:carol@b.example`, { at: Date.now(), pid });
  await db.put(`${ID_B}:erin@b.example`, { at: Date.now(), pid });
  await db.close();

  const delivery = new LocalDelivery('127.0.0.1', 1, 1000, state);
  const logged: string[] = [];
  delivery.onRedeliver = (what) => logged.push(what);
  expect(delivery.stats.pendingAtStart).toBe(2);
  // only A's copy reached the queue before the process died
  await expect(delivery.reconcile([{ id: ID_A, rcpts: ['Carol@b.example'] }])).resolves.toBe(1);
  expect(delivery.stats.pendingAtStart).toBe(1);

  const handed: string[][] = [];
  const hand = (todo: readonly string[]) => {
    handed.push([...todo]);
    return Promise.resolve({ refused: [] });
  };
  const failure = (err: unknown) => new GatewayError('internal', String(err));
  await delivery.once(ID_A, ['carol@b.example'], undefined, hand, failure); // the retry of A: already queued
  expect(handed).toEqual([]);
  await delivery.once(ID_B, ['erin@b.example'], undefined, hand, failure); // B never reached the queue: handed over now
  expect(handed).toEqual([['erin@b.example']]);
  expect(logged).toHaveLength(1);
  expect(logged[0]).toContain('erin@b.example');
  // a copy Haraka delivered is recorded (the delivered hook) and never handed over again
  await delivery.markQueued([{ id: ID_B, rcpts: ['frank@b.example'] }]);
  await delivery.once(ID_B, ['frank@b.example'], undefined, hand, failure);
  expect(handed).toHaveLength(1);
  await delivery.close();
});
