/**
 * "A 4xx means nothing happened" and peer copies in the exactly-once record
 * (issue 16), through real processes: a.example's Haraka with a short hook
 * timeout, a slow mailbox store, and a fault-injection plugin that makes
 * queueing one peer copy fail once (test/support/haraka-faults.js).
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Network } from '../../src/demo/network';
import { queuedCopies } from '../../src/gateway/queue-reconcile';
import { ORGS, network, rawSmtp, waitFor, expectLogged } from './network-fixture';

jest.setTimeout(180000);

const TIMEOUT_MS = 2500;
let net: Network;
beforeAll(async () => {
  net = await network(ORGS.map((o) => (o.domain === 'a.example' ? { ...o, gatewayIni: ['[main]', `hook_timeout_ms=${TIMEOUT_MS}`] } : o)));
  const A = net.org('a.example');
  copyFileSync(resolve(__dirname, '..', 'support', 'haraka-faults.js'), join(A.harakaDir, 'plugins', 'haraka-faults.js'));
  const plugins = join(A.harakaDir, 'config', 'plugins');
  writeFileSync(plugins, `haraka-faults\n${readFileSync(plugins, 'utf8')}`);
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
const copiesOf = (marker: string, org: string, who: string) =>
  net
    .org(org)
    .mailbox.for(who)
    .filter((m) => m.raw.toString('utf8').includes(`Body ${marker}`)).length;

/** Sends until the gateway answers 250 (as a sending MTA retries a 4xx), returning every answer. */
async function untilAccepted(to: string[], data: Buffer, pauseMs = 200): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await rawSmtp(net.org('a.example').ports.smtp, 'dave@a.example', to, data, DAVE);
    answers.push(r);
    if (r.startsWith('250') || r.startsWith('5')) return answers;
    await new Promise((res) => setTimeout(res, pauseMs));
  }
  return answers;
}

test('a hook that hits its timeout while delivering: 451, and after the retry exactly one copy per recipient, local and peer', async () => {
  const A = net.org('a.example');
  const marker = 'timeout-mid-delivery';
  A.mailbox.delayMs = TIMEOUT_MS + 1500; // the local copy is still being handed over when the hook answers
  const first = await rawSmtp(
    A.ports.smtp,
    'dave@a.example',
    ['dave@a.example', 'carol@b.example'],
    message(marker, 'dave@a.example, carol@b.example'),
    DAVE,
  );
  expect(first).toMatch(/^45\d 4\.4\.7 /);
  A.mailbox.delayMs = 0;
  // the sender retries at once, while the timed-out attempt's copy is still on its way
  const answers = await untilAccepted(['dave@a.example', 'carol@b.example'], message(marker, 'dave@a.example, carol@b.example'));
  expect(answers.at(-1)).toMatch(/^250 /);
  await waitFor(() => copiesOf(marker, 'b.example', 'carol@b.example') >= 1 && copiesOf(marker, 'a.example', 'dave@a.example') >= 1, 30000);
  await new Promise((r) => setTimeout(r, 4000)); // room for a second copy to show up
  const counts = { dave: copiesOf(marker, 'a.example', 'dave@a.example'), carol: copiesOf(marker, 'b.example', 'carol@b.example') };
  console.log(
    `timeout mid-delivery: answers ${JSON.stringify([first, ...answers].map((a) => a.slice(0, 9)))}; copies ${JSON.stringify(counts)}`,
  );
  expect(counts).toEqual({ dave: 1, carol: 1 });
});

test('queueing fails for the second peer after the first was queued: 4xx, and after the retry exactly one copy per peer', async () => {
  const A = net.org('a.example');
  const marker = 'queue-fails-half-way';
  writeFileSync(join(A.harakaDir, 'fail-queue-once'), 'c.example\n');
  const to = ['carol@b.example', 'frank@c.example'];
  const answers = await untilAccepted(to, message(marker, to.join(', ')));
  expect(answers[0]).toMatch(/^45\d 4\.3\.0 .*cannot queue the copy for frank@c\.example/);
  expect(answers.at(-1)).toMatch(/^250 /);
  await expectLogged(() => A.haraka.logs(), /haraka-faults: injected queue failure for frank@c\.example/);
  await waitFor(
    () => copiesOf(marker, 'b.example', 'carol@b.example') >= 1 && copiesOf(marker, 'c.example', 'frank@c.example') >= 1,
    30000,
  );
  // a second copy could only come from a copy still in a.example's queue: once it holds none, 1 s more
  await waitFor(
    () => queuedCopies(join(A.harakaDir, 'queue')).length === 0,
    60000,
    () => `still queued at a.example: ${JSON.stringify(queuedCopies(join(A.harakaDir, 'queue')))}`,
  );
  await new Promise((r) => setTimeout(r, 1000));
  const counts = { carol: copiesOf(marker, 'b.example', 'carol@b.example'), frank: copiesOf(marker, 'c.example', 'frank@c.example') };
  console.log(`queue failure half way: answers ${JSON.stringify(answers.map((a) => a.slice(0, 9)))}; copies ${JSON.stringify(counts)}`);
  expect(counts).toEqual({ carol: 1, frank: 1 });
});

test('the same alert twice (no Message-ID, no Date, no signature: nothing tells it from a retry): both 250, both delivered, local and peer', async () => {
  const A = net.org('a.example');
  const marker = 'alert-sent-twice';
  const alert = Buffer.from(`From: dave@a.example\r\nTo: dave@a.example, carol@b.example\r\nSubject: ${marker}\r\n\r\nBody ${marker}\r\n`);
  const to = ['dave@a.example', 'carol@b.example'];
  const first = await rawSmtp(A.ports.smtp, 'dave@a.example', to, alert, DAVE);
  const second = await rawSmtp(A.ports.smtp, 'dave@a.example', to, alert, DAVE);
  expect([first, second]).toEqual([expect.stringMatching(/^250 /), expect.stringMatching(/^250 /)]);
  await waitFor(() => copiesOf(marker, 'a.example', 'dave@a.example') >= 2 && copiesOf(marker, 'b.example', 'carol@b.example') >= 2, 30000);
  // each copy got its own Message-ID (completion.ts): a store that drops a Message-ID it has seen keeps both
  const ids = net
    .org('b.example')
    .mailbox.for('carol@b.example')
    .filter((m) => m.raw.toString('utf8').includes(`Body ${marker}`))
    .map((m) => /\r\nMessage-ID: (<[^>]+>)/i.exec(m.raw.toString('latin1'))?.[1]);
  expect(new Set(ids).size).toBe(2);
});

test('the same message sent again (it names itself: a retry after a lost 250 looks the same): the 250 says nothing was sent again, the log line says duplicate', async () => {
  const A = net.org('a.example');
  const marker = 'sent-again';
  const to = ['dave@a.example', 'carol@b.example'];
  const first = await rawSmtp(A.ports.smtp, 'dave@a.example', to, message(marker, to.join(', ')), DAVE);
  expect(first).toMatch(/^250 Queued /);
  await waitFor(() => copiesOf(marker, 'a.example', 'dave@a.example') >= 1 && copiesOf(marker, 'b.example', 'carol@b.example') >= 1, 30000);
  const second = await rawSmtp(A.ports.smtp, 'dave@a.example', to, message(marker, to.join(', ')), DAVE);
  expect(second).toMatch(/^250 Already delivered \(an earlier attempt of this message handed every copy over; nothing sent again\)/);
  await waitFor(() => /"outcome":"duplicate"/.test(A.haraka.logs()), 10000);
  // one more recipient beside the two already served: only the new one gets a copy, and the 250 says so
  const more = [...to, 'frank@c.example'];
  const third = await rawSmtp(A.ports.smtp, 'dave@a.example', more, message(marker, to.join(', ')), DAVE);
  expect(third).toMatch(/^250 Queued .*; settled by an earlier attempt for 2 recipients, not sent again/);
  await waitFor(() => copiesOf(marker, 'c.example', 'frank@c.example') >= 1, 30000);
  await new Promise((r) => setTimeout(r, 1000));
  expect({ dave: copiesOf(marker, 'a.example', 'dave@a.example'), carol: copiesOf(marker, 'b.example', 'carol@b.example') }).toEqual({
    dave: 1,
    carol: 1,
  });
});
