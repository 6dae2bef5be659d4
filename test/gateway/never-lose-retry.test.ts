/**
 * Never a 5xx for a message after a copy of it went, when the refusal comes from the protocol step itself on
 * the sender's retry (plugin.ts `refusedAfterEarlier`, docs/delivery.md "Never lose mail"), through real
 * processes: a.example's Haraka (with the fault-injection plugin test/support/haraka-faults.js), keyd, the
 * peers' gateways and mailbox stores. a.example accepts user signatures and seals only WINDOW_S seconds old.
 *  - attempt 1 of alice's signed submission delivers dave's local copy, then queueing frank's copy fails for
 *    now: 451;
 *  - the retry comes after the window: the submission's own check refuses the user signature for good
 *    (550 5.7.21) — and since dave's copy went at attempt 1, the answer is 250 naming frank, alice gets one
 *    failure report, dave no second copy, and a further retry sends and reports nothing again;
 *  - the same refusal for a message of which nothing went earlier stays 550 5.7.21, nothing delivered.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Network } from '../../src/demo/network';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { ORGS, network, rawSmtp, waitFor } from './network-fixture';

jest.setTimeout(240000);

/** a.example's [chain] max_seal_age_seconds: a user signature older than this is refused at submission (5.7.21). */
const WINDOW_S = 8;
let net: Network;
beforeAll(async () => {
  net = await network(
    ORGS.map((o) => (o.domain === 'a.example' ? { ...o, gatewayIni: ['[chain]', `max_seal_age_seconds=${WINDOW_S}`] } : o)),
  );
  const A = net.org('a.example');
  copyFileSync(resolve(__dirname, '..', 'support', 'haraka-faults.js'), join(A.harakaDir, 'plugins', 'haraka-faults.js'));
  const plugins = join(A.harakaDir, 'config', 'plugins');
  writeFileSync(plugins, `haraka-faults\n${readFileSync(plugins, 'utf8')}`);
  await A.restartHaraka();
});
afterAll(async () => {
  await net?.stop();
});

const ALICE = { user: 'alice@a.example', pass: 'pw-alice' };
const TO = ['dave@a.example', 'frank@c.example'];
const original = (marker: string) =>
  Buffer.from(
    `From: alice@a.example\r\nTo: ${TO.join(', ')}\r\nSubject: ${marker}\r\nDate: Mon, 07 Dec 2026 05:00:00 +0000\r\nMessage-ID: <${marker}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nBody ${marker}\r\n`,
  );
const copiesOf = (org: string, who: string, marker: string) =>
  net
    .org(org)
    .mailbox.for(who)
    .filter((m) => m.raw.toString('utf8').includes(`Body ${marker}`)).length;
const reportsOf = (marker: string) =>
  net
    .org('a.example')
    .mailbox.for('alice@a.example')
    .map((m) => m.raw.toString('utf8'))
    .filter((t) => /Action: failed/.test(t) && t.includes(marker));

test('a retry refused for good by the protocol step after an earlier attempt delivered a copy: 250, one failure report, no second copy; with nothing delivered earlier still 550', async () => {
  const A = net.org('a.example');
  const alice = loadUserProfile(A.profiles['alice@a.example']!);
  const marker = 'too-old-at-retry';
  const data = await signAndEncrypt(alice, original(marker), { now: new Date() });
  // the control: signed at the same time, never sent before
  const untouched = await signAndEncrypt(alice, original('too-old-first-time'), { now: new Date() });
  const signedAt = Date.now();

  // attempt 1: dave's copy delivered, queueing frank's copy fails for now: 451
  writeFileSync(join(A.harakaDir, 'fail-queue-once'), 'c.example\n');
  const first = await rawSmtp(A.ports.smtp, 'alice@a.example', TO, data, ALICE);
  expect(first).toMatch(/^45\d /);
  await waitFor(() => copiesOf('a.example', 'dave@a.example', marker) === 1, 20000);

  // the sender's retry comes after the window: the user signature is now too old
  const wait = signedAt + (WINDOW_S + 3) * 1000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const control = await rawSmtp(A.ports.smtp, 'alice@a.example', TO, untouched, ALICE);
  expect(control).toMatch(/^550 5\.7\.21 User signature older than this gateway accepts/);

  const retry = await rawSmtp(A.ports.smtp, 'alice@a.example', TO, data, ALICE);
  expect(retry).toMatch(
    /^250 Accepted \(an earlier attempt of this message delivered or held copies; this retry was refused for good, 550 5\.7\.21\)/,
  );
  expect(retry).toMatch(
    /settled by an earlier attempt for 1 recipient, not sent again; not sent to frank@c\.example \(550 5\.7\.21\), refused for good \(report sent\)/,
  );
  await waitFor(
    () => reportsOf(marker).length > 0,
    30000,
    () => A.haraka.logs().slice(-3000),
  );
  await new Promise((r) => setTimeout(r, 3000)); // room for a second copy or report to show up
  const reports = reportsOf(marker);
  expect(reports).toHaveLength(1);
  expect(reports[0]).toMatch(/Final-Recipient: rfc822; ?frank@c\.example/i);
  expect(reports[0]).toMatch(/Status: 5\.7\.21/);
  expect(copiesOf('a.example', 'dave@a.example', marker)).toBe(1);
  expect(copiesOf('c.example', 'frank@c.example', marker)).toBe(0);

  // the sender's next retry (a lost 250): nothing sent or reported again
  const again = await rawSmtp(A.ports.smtp, 'alice@a.example', TO, data, ALICE);
  expect(again).toMatch(/^250 Already delivered/);
  await new Promise((r) => setTimeout(r, 1500));
  expect(copiesOf('a.example', 'dave@a.example', marker)).toBe(1);
  expect(reportsOf(marker)).toHaveLength(1);

  // the control was refused whole: nothing of it delivered, no report
  expect(
    copiesOf('a.example', 'dave@a.example', 'too-old-first-time') + copiesOf('c.example', 'frank@c.example', 'too-old-first-time'),
  ).toBe(0);
  expect(reportsOf('too-old-first-time')).toHaveLength(0);
});
