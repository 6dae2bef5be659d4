/**
 * The plugin under Haraka's cluster mode (`nodes=2` in smtp.ini): two worker
 * processes share the exactly-once record (LMDB, one write transaction per
 * claim, exclusive across processes). A retry that reaches the other worker
 * while the first is still handing the copy over, and the same message sent on
 * two connections at once, are each delivered once. Real processes throughout.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Network } from '../../src/demo/network';
import { ORGS, network, rawSmtp, waitFor } from './network-fixture';

jest.setTimeout(180000);

const TIMEOUT_MS = 2500;
let net: Network;
beforeAll(async () => {
  net = await network(ORGS.map((o) => (o.domain === 'a.example' ? { ...o, gatewayIni: ['[main]', `hook_timeout_ms=${TIMEOUT_MS}`] } : o)));
  const A = net.org('a.example');
  const smtpIni = join(A.harakaDir, 'config', 'smtp.ini');
  writeFileSync(smtpIni, readFileSync(smtpIni, 'utf8').replace(/^nodes=0$/m, 'nodes=2'));
  await A.restartHaraka();
});
afterAll(async () => {
  await net?.stop();
});

const DAVE = { user: 'dave@a.example', pass: 'pw-dave' };
const message = (marker: string, to: string) =>
  Buffer.from(
    `From: dave@a.example\r\nTo: ${to}\r\nSubject: ${marker}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${marker}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nBody ${marker}\r\n`,
  );
const copiesOf = (marker: string, who: string) =>
  net
    .org('a.example')
    .mailbox.for(who)
    .filter((m) => m.raw.toString('utf8').includes(`Body ${marker}`)).length;

test('Haraka runs two worker processes, each with the plugin loaded', async () => {
  const A = net.org('a.example');
  await waitFor(
    () => (A.haraka.logs().match(/ssmax: gateway for a\.example/g) ?? []).length >= 3,
    30000,
    () => A.haraka.logs().slice(-3000),
  ); // master and two workers
});

test('a retry that reaches the other worker while the first still hands the copy over: one copy', async () => {
  const A = net.org('a.example');
  const marker = 'cluster-retry';
  A.mailbox.delayMs = TIMEOUT_MS + 2000; // the first attempt times out (451) while its copy is still on its way
  const first = await rawSmtp(A.ports.smtp, 'dave@a.example', ['dave@a.example'], message(marker, 'dave@a.example'), DAVE);
  expect(first).toMatch(/^45\d 4\.4\.7 /);
  A.mailbox.delayMs = 0;
  const answers: string[] = [];
  for (let i = 0; i < 6; i++) {
    // consecutive connections go to alternate workers (the cluster's round robin)
    const r = await rawSmtp(A.ports.smtp, 'dave@a.example', ['dave@a.example'], message(marker, 'dave@a.example'), DAVE);
    answers.push(r);
    if (r.startsWith('250')) break;
  }
  expect(answers.at(-1)).toMatch(/^250 /);
  await waitFor(() => copiesOf(marker, 'dave@a.example') >= 1, 30000);
  // two more retries, on whichever workers: nothing new goes out
  for (let i = 0; i < 2; i++)
    expect(await rawSmtp(A.ports.smtp, 'dave@a.example', ['dave@a.example'], message(marker, 'dave@a.example'), DAVE)).toMatch(/^250 /);
  await new Promise((r) => setTimeout(r, 3000)); // room for a second copy to show up
  expect(copiesOf(marker, 'dave@a.example')).toBe(1);
});

test('the same message on two connections at once (one per worker): one copy', async () => {
  const A = net.org('a.example');
  const marker = 'cluster-concurrent';
  A.mailbox.delayMs = 500; // both hand-overs would overlap
  const answers = await Promise.all(
    [0, 1].map(() => rawSmtp(A.ports.smtp, 'dave@a.example', ['dave@a.example'], message(marker, 'dave@a.example'), DAVE)),
  );
  A.mailbox.delayMs = 0;
  expect(answers.map((a) => a.slice(0, 3))).toEqual(['250', '250']);
  await waitFor(() => copiesOf(marker, 'dave@a.example') >= 1, 30000);
  await new Promise((r) => setTimeout(r, 2000));
  expect(copiesOf(marker, 'dave@a.example')).toBe(1);
});

test('key exchange under nodes=2: mail to a peer goes out from either worker (the peer directory cache is one LMDB store shared by the workers), each message once', async () => {
  const markers = ['cluster-peer-1', 'cluster-peer-2', 'cluster-peer-3'];
  for (const marker of markers) {
    // consecutive connections: alternate workers
    expect(
      await rawSmtp(net.org('a.example').ports.smtp, 'dave@a.example', ['carol@b.example'], message(marker, 'carol@b.example'), DAVE),
    ).toMatch(/^250 /);
  }
  const peerCopies = (marker: string) =>
    net
      .org('b.example')
      .mailbox.for('carol@b.example')
      .filter((m) => m.raw.toString('utf8').includes(`Body ${marker}`)).length;
  await waitFor(() => markers.every((m) => peerCopies(m) >= 1), 60000);
  await new Promise((r) => setTimeout(r, 2000));
  expect(markers.map(peerCopies)).toEqual([1, 1, 1]);
});
