/**
 * Rotation under load (issue 7, "Proof"): messages A→B at a steady rate
 * while B rotates its org key twice (admin endpoint), and A's directory
 * cache is stale (B's bundle lives an hour: A refreshes only when it learns
 * of a newer version — from B's EHLO advertisement or the refresh hint in
 * B's 250 replies). Requirements: zero lost (each message in its
 * recipient's mailbox exactly once), zero permanent failures, every message
 * decrypts for its recipient (bob: SSMAX client, opened with openMessage;
 * carol: transparent mode, plaintext). The figures (temporary failures,
 * retries, refreshes, wall time) are printed and written to
 * $TMP/ssmax-load-*\/rotation-load.json.
 *
 * SSMAX_LOAD_MESSAGES (default 2000), SSMAX_LOAD_RATE (messages per second,
 * default 50), SSMAX_LOAD_CONCURRENCY (default 16) tune the run.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNetwork, type Network } from '../../src/demo/network';
import { loadUserProfile } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { SmtpSession, waitFor } from './network-fixture';

const TOTAL = Number(process.env.SSMAX_LOAD_MESSAGES ?? 2000);
const RATE = Number(process.env.SSMAX_LOAD_RATE ?? 50);
const CONCURRENCY = Number(process.env.SSMAX_LOAD_CONCURRENCY ?? 16);

jest.setTimeout(Math.max(300000, (TOTAL / RATE) * 1000 * 2 + 120000));

let net: Network;
let base: string;
beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'ssmax-load-'));
  net = await startNetwork(base, [
    { domain: 'a.example', users: [{ address: 'dave@a.example', client: 'plain', password: 'pw-dave' }] },
    {
      domain: 'b.example',
      users: [
        { address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' },
        { address: 'carol@b.example', client: 'plain', password: 'pw-carol' },
      ],
    },
  ]);
});
afterAll(async () => {
  await net?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const marker = (i: number) => `LOAD-${String(i).padStart(5, '0')}-`;
const rcptOf = (i: number) => (i % 4 === 0 ? 'carol@b.example' : 'bob@b.example');
const message = (i: number) =>
  Buffer.from(
    `From: dave@a.example\r\nTo: ${rcptOf(i)}\r\nSubject: load ${i}\r\nMessage-ID: <load-${i}@a.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n${marker(i)} secret body of message ${i}\r\n`,
  );
const count = (text: string, re: RegExp) => (text.match(re) ?? []).length;

test(`${TOTAL} messages A→B while B rotates twice and A's cache is stale: none lost, none refused, all decrypt`, async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  const started = Date.now();
  const submitReplies = { ok: 0, temp: 0, perm: 0 };
  const permanent: string[] = [];
  const rotations: { at: number; afterSubmitted: number; changes: unknown }[] = [];
  let next = 0;
  let submitted = 0;
  let rotating: Promise<void> | undefined;
  const rotateAt = [Math.floor(TOTAL / 3), Math.floor((2 * TOTAL) / 3)];

  const rotate = async () => {
    const admin = B.admin();
    try {
      const r = await admin.call<{ changes: unknown }>('POST', '/v1/keys/rotate');
      rotations.push({ at: Date.now() - started, afterSubmitted: submitted, changes: r.changes });
    } finally {
      admin.close();
    }
  };

  const worker = async () => {
    let session = await SmtpSession.open(A.ports.smtp, { user: 'dave@a.example', pass: 'pw-dave' });
    for (;;) {
      const i = next++;
      if (i >= TOTAL) break;
      const due = started + (i / RATE) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      for (;;) {
        if (!session.open) session = await SmtpSession.open(A.ports.smtp, { user: 'dave@a.example', pass: 'pw-dave' });
        const reply = await session.send('dave@a.example', [rcptOf(i)], message(i));
        if (reply.startsWith('250')) {
          submitReplies.ok++;
          break;
        }
        if (reply.startsWith('4')) {
          submitReplies.temp++;
          await sleep(500);
          continue;
        }
        submitReplies.perm++;
        permanent.push(`${i}: ${reply}`);
        break;
      }
      submitted++;
      if (rotateAt.includes(submitted)) rotating = (rotating ?? Promise.resolve()).then(rotate);
    }
    await session.close();
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const submittedIn = Date.now() - started;
  await rotating;

  const delivered = () => B.mailbox.mails.filter((m) => /Subject: load \d+/.test(m.raw.toString('latin1'))).length;
  await waitFor(
    () => delivered() >= TOTAL - submitReplies.perm,
    240000,
    () => `${delivered()} of ${TOTAL} delivered\n${A.haraka.logs().slice(-3000)}`,
  );
  await sleep(2000); // anything duplicated would show up now
  const wall = Date.now() - started;

  // exactly once, to the right recipient
  const seen = new Map<number, number>();
  for (const m of B.mailbox.mails) {
    const text = m.raw.toString('latin1');
    const found = /Subject: load (\d+)/.exec(text);
    if (!found) continue;
    const i = Number(found[1]);
    expect(m.to).toEqual([rcptOf(i)]);
    seen.set(i, (seen.get(i) ?? 0) + 1);
  }
  const lost = Array.from({ length: TOTAL }, (_, i) => i).filter((i) => !seen.has(i));
  const duplicated = [...seen.entries()].filter(([, c]) => c > 1).map(([i]) => i);

  // every message decrypts for its recipient
  const bob = loadUserProfile(B.profiles['bob@b.example']!);
  let decrypted = 0;
  const keyVersions = new Map<string, number>();
  const undecryptable: string[] = [];
  for (const m of B.mailbox.for('bob@b.example')) {
    const i = Number(/Subject: load (\d+)/.exec(m.raw.toString('latin1'))?.[1] ?? -1);
    try {
      const opened = await openMessage(bob, m.raw, { now: new Date() });
      if (opened.encrypted && opened.plaintext.includes(Buffer.from(marker(i)))) decrypted++;
      else undecryptable.push(`${i}: not the original`);
    } catch (err) {
      undecryptable.push(`${i}: ${(err as Error).message}`);
    }
  }
  for (const m of B.mailbox.for('carol@b.example')) {
    const text = m.raw.toString('latin1');
    const i = Number(/Subject: load (\d+)/.exec(text)?.[1] ?? -1);
    if (text.includes(marker(i))) decrypted++;
    else undecryptable.push(`${i}: carol's copy without plaintext`);
  }

  const aLogs = A.haraka.logs();
  const bLogs = B.haraka.logs();
  for (const k of bLogs.matchAll(/accepted a capsule for retired key (\S+)/g)) keyVersions.set(k[1]!, (keyVersions.get(k[1]!) ?? 0) + 1);
  const figures = {
    messages: TOTAL,
    rate: RATE,
    concurrency: CONCURRENCY,
    submissionReplies: submitReplies,
    permanentFailures: submitReplies.perm + count(aLogs, /bouncing mail/g),
    temporaryFailures: {
      atSubmission: submitReplies.temp,
      outboundDeferrals: count(aLogs, /Temp failing/g),
    },
    retries: submitReplies.temp + count(aLogs, /Temp failing/g),
    rotations,
    retiredCapsulesAccepted: Object.fromEntries(keyVersions),
    refreshHintsSeenByA: count(aLogs, /refresh hint from a peer/g),
    refreshesBeforeSend: aLogs.match(/advertises \S+ \([^)]*\); bundle refreshed before sending[^\n]*/g) ?? [],
    refreshFailures: count(aLogs, /bundle refresh failed/g),
    probeFailures: count(aLogs, /EHLO probe of/g),
    lost: lost.length,
    duplicated: duplicated.length,
    decrypted,
    undecryptable: undecryptable.length,
    submittedInMs: submittedIn,
    wallMs: wall,
  };
  writeFileSync(join(base, 'rotation-load.json'), `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`rotation under load (${join(base, 'rotation-load.json')}):\n${JSON.stringify(figures, null, 2)}`);

  expect(permanent).toEqual([]);
  expect(figures.permanentFailures).toBe(0);
  expect(lost).toEqual([]);
  expect(duplicated).toEqual([]);
  expect(undecryptable).toEqual([]);
  expect(decrypted).toBe(TOTAL);
  expect(rotations).toHaveLength(2);
  // A learned both new versions and refreshed before sending (the cache was stale: lifetime 1 h)
  expect(figures.refreshesBeforeSend.some((l) => /current key b\.example:v3/.test(l))).toBe(true);
});
