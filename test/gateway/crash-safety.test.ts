/**
 * Crash safety of Haraka itself (issue 16), through real processes: load on
 * a.example's gateway from a client that retries on 4xx (and on a dropped
 * connection, as a sending MTA does), while the gateway is killed with
 * SIGKILL and restarted, twice. Peer copies sit in Haraka's queue on disk
 * when it dies (ciphertext only); after the restarts every message that got
 * 250 is delivered exactly once at b.example, none lost. The counts are
 * printed. The same with the receiving gateway killed instead: none lost,
 * and no second copy: b.example's mailbox store is a real Dovecot (LMTP)
 * with the duplicate-delivery Sieve script of docs/delivery.md, so a copy the
 * restarted gateway hands over again (same SSMAX-Delivery-Id) is dropped
 * there. The number of such hand-overs the gateway logged is printed too.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Network } from '../../src/demo/network';
import { harakaQueueFile, queuedCopies } from '../../src/gateway/queue-reconcile';
import { type DovecotLmtp, startDovecotLmtp } from '../support/dovecot';
import { ORGS, SmtpSession, network, waitFor } from './network-fixture';

jest.setTimeout(300000);

let net: Network;
let dovecot: DovecotLmtp;
beforeAll(async () => {
  dovecot = await startDovecotLmtp(['bob@b.example', 'carol@b.example', 'erin@b.example']);
  net = await network(
    ORGS.map((o) =>
      o.domain === 'b.example' ? { ...o, gatewayIni: ['[delivery]', `host=127.0.0.1:${dovecot.port}`, 'protocol=lmtp'] } : o,
    ),
  );
});
afterAll(async () => {
  await net?.stop();
  await dovecot?.stop();
});

/** carol's copies of message i in b.example's Dovecot. */
const copiesOf = (i: number) => dovecot.mails('carol@b.example').filter((m) => m.includes(`${SECRET} crash-${i}.`)).length;

const DAVE = { user: 'dave@a.example', pass: 'pw-dave' };
const TOTAL = 160;
const WORKERS = 4;
const SECRET = 'Crash-secret-Heron-7719';
const message = (i: number) =>
  Buffer.from(
    `From: dave@a.example\r\nTo: carol@b.example\r\nSubject: crash-${i}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <crash-${i}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET} crash-${i}.\r\n`,
  );

// A kill between Haraka writing a peer copy to its queue and the LMDB record of it leaves the copy on
// disk and the intent open: the restarted gateway reconciles the record with its queue before it takes
// mail (queue-reconcile.ts), so the sender's retry finds the copy done and does not seal a second one.
test('kill -9 of the gateway under load, twice: every message that got 250 is delivered exactly once, none lost, no second copy', async () => {
  const A = net.org('a.example');
  const accepted = new Set<number>();
  const refused: string[] = [];
  let attempts = 0;
  let retries = 0;
  let next = 0;
  let down = false;
  const queueFiles: { path: string; bytes: Buffer }[] = [];
  const seen: string[] = []; // the logs of every gateway process of the run

  async function sendOne(i: number): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      attempts++;
      if (attempt > 0) retries++;
      let reply: string;
      try {
        const s = await SmtpSession.open(A.ports.smtp, DAVE);
        reply = await s.send('dave@a.example', ['carol@b.example'], message(i));
        await s.close();
      } catch (err) {
        reply = `421 ${(err as Error).message}`;
      }
      if (reply.startsWith('250')) {
        accepted.add(i);
        return;
      }
      if (reply.startsWith('5')) {
        refused.push(`${i}: ${reply}`);
        return;
      }
      await new Promise((r) => setTimeout(r, down ? 300 : 100));
    }
    throw new Error(`message ${i} was never accepted`);
  }
  const workers = Array.from({ length: WORKERS }, async () => {
    while (next < TOTAL) await sendOne(next++);
  });

  const kills: number[] = [];
  for (const at of [40, 100]) {
    await waitFor(() => accepted.size >= at, 120000);
    const proc = A.haraka.proc;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    down = true;
    seen.push(A.haraka.logs());
    proc.kill('SIGKILL');
    await exited;
    kills.push(accepted.size);
    // what the dead gateway left on disk: its queue (peer copies) holds ciphertext only
    const qdir = join(A.harakaDir, 'queue');
    const loadable: string[] = [];
    for (const f of readdirSync(qdir)) {
      const p = join(qdir, f);
      if (statSync(p).isFile()) queueFiles.push({ path: p, bytes: readFileSync(p) });
      if (harakaQueueFile(f)) loadable.push(f);
    }
    // every peer copy Haraka will load names its arrival and recipients in its header: the restart can reconcile it
    expect(queuedCopies(qdir)).toHaveLength(loadable.length);
    await A.restartHaraka();
    down = false;
  }
  await Promise.all(workers);
  expect(refused).toEqual([]);
  expect(accepted.size).toBe(TOTAL);

  await waitFor(
    () => [...accepted].every((i) => copiesOf(i) >= 1),
    120000,
    () => `missing: ${[...accepted].filter((i) => copiesOf(i) === 0).join(', ')}`,
  );
  // room for late duplicates: they could only come from a copy still in a.example's queue; once it holds none, 1 s more
  await waitFor(
    () => queuedCopies(join(A.harakaDir, 'queue')).length === 0,
    60000,
    () => `still queued at a.example: ${JSON.stringify(queuedCopies(join(A.harakaDir, 'queue')))}`,
  );
  await new Promise((r) => setTimeout(r, 1000));
  const counts = [...accepted].map(copiesOf);
  const once = counts.filter((c) => c === 1).length;
  const lost = counts.filter((c) => c === 0).length;
  const twice = counts.filter((c) => c > 1).length;
  seen.push(A.haraka.logs());
  const all = seen.join('\n');
  const rehanded = (all.match(/handed over again \(possible duplicate\)/g) ?? []).length;
  const reconciled = [...all.matchAll(/ssmax: (\d+) cop(?:y|ies) found in Haraka's queue recorded as handed over/g)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
  console.log(
    `kill -9 under load: ${TOTAL} messages, ${attempts} attempts (${retries} retries), kills after ${kills.join(' and ')} accepted; ` +
      `${queueFiles.length} queue file(s) left by the killed gateways; got 250: ${accepted.size}; delivered exactly once: ${once}; lost: ${lost}; duplicated: ${twice}; intents re-handed (possible duplicates logged, all runs): ${rehanded}; copies found in the queue at restart and recorded: ${reconciled}`,
  );
  expect(queueFiles.filter((f) => f.bytes.includes(SECRET))).toEqual([]);
  expect(lost).toBe(0);
  expect(twice).toBe(0);
  expect(once).toBe(TOTAL);
});

test('kill -9 of the receiving gateway under load, twice: none lost, no extra copy (Dovecot drops a delivery id it already stored)', async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  const FIRST = 1000;
  const accepted = new Set<number>();
  let next = FIRST;
  const END = FIRST + 120;
  async function sendOne(i: number): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      let reply: string;
      try {
        const s = await SmtpSession.open(A.ports.smtp, DAVE);
        reply = await s.send('dave@a.example', ['carol@b.example'], message(i));
        await s.close();
      } catch (err) {
        reply = `421 ${(err as Error).message}`;
      }
      if (reply.startsWith('250')) {
        accepted.add(i);
        return;
      }
      if (reply.startsWith('5')) throw new Error(`message ${i} refused: ${reply}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`message ${i} was never accepted`);
  }
  const workers = Array.from({ length: WORKERS }, async () => {
    while (next < END) await sendOne(next++);
  });
  const delivered = () => [...accepted].filter((i) => copiesOf(i) > 0).length;
  const logs: string[] = [];
  for (const at of [30, 80]) {
    await waitFor(() => delivered() >= at, 120000);
    const proc = B.haraka.proc;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    logs.push(B.haraka.logs());
    proc.kill('SIGKILL');
    await exited;
    await new Promise((r) => setTimeout(r, 500));
    await B.restartHaraka();
  }
  await Promise.all(workers);
  await waitFor(
    () => [...accepted].every((i) => copiesOf(i) >= 1),
    180000,
    () => `missing: ${[...accepted].filter((i) => copiesOf(i) === 0).join(', ')}`,
  );
  // late duplicates could only come from a copy still in a.example's queue; once it holds none, 1 s more
  await waitFor(
    () => queuedCopies(join(A.harakaDir, 'queue')).length === 0,
    60000,
    () => `still queued at a.example: ${JSON.stringify(queuedCopies(join(A.harakaDir, 'queue')))}`,
  );
  await new Promise((r) => setTimeout(r, 1000));
  logs.push(B.haraka.logs());
  const counts = [...accepted].map(copiesOf);
  const lost = counts.filter((c) => c === 0).length;
  const extra = counts.reduce((n, c) => n + Math.max(0, c - 1), 0);
  const logged = logs.join('\n').match(/handed over again \(possible duplicate\)/g)?.length ?? 0;
  const pending = [...logs.join('\n').matchAll(/ssmax: (\d+) cop(?:y was|ies were) being handed over when the gateway stopped/g)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
  console.log(
    `kill -9 of the receiving gateway: ${accepted.size} messages got 250 at a.example; delivered at b.example (Dovecot) exactly once: ${counts.filter((c) => c === 1).length}; lost: ${lost}; extra copies: ${extra}; ` +
      `intents found open at restart: ${pending}; re-hand-overs logged by b.example: ${logged} (a copy Dovecot already held is dropped by its duplicate check)`,
  );
  const storeLog = dovecot.log().split('\n');
  console.log(
    `Dovecot: ${storeLog.filter((l) => /discard/i.test(l)).length} log lines on discarded duplicates; errors: ${
      storeLog
        .filter((l) => /error|warning/i.test(l))
        .slice(0, 10)
        .join(' | ') || 'none'
    }`,
  );
  expect(accepted.size).toBe(END - FIRST);
  expect(lost).toBe(0);
  expect(extra).toBe(0);
});
