/**
 * B's bundle publisher unreachable for longer than the bundle lifetime (60 s,
 * the publisher's minimum), at the gateway level: A keeps serving the cached
 * bundle while it is valid; once it has expired, mail to B tempfails (A's
 * policy for b.example is `require`); when the publisher returns, the
 * retried message flows, delivered once and readable by its recipient.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNetwork, type Network } from '../../src/demo/network';
import { fetchBundleText } from '../../src/directory/fetch';
import { loadUserProfile, updateOrgBundle } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { smtp, waitFor } from './network-fixture';

const LIFETIME_S = 60;
jest.setTimeout(240000);

let net: Network;
beforeAll(async () => {
  net = await startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-life-')), [
    {
      domain: 'a.example',
      policy: { default: 'opportunistic', 'b.example': 'require' },
      users: [{ address: 'dave@a.example', client: 'plain', password: 'pw-dave' }],
    },
    { domain: 'b.example', bundleLifetimeSeconds: LIFETIME_S, users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
  ]);
});
afterAll(async () => {
  await net?.stop();
});

const dave = { user: 'dave@a.example', pass: 'pw-dave' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mail = (marker: string) =>
  `From: dave@a.example\r\nTo: bob@b.example\r\nSubject: ${marker}\r\nMessage-ID: <${marker}@a.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n${marker} body\r\n`;
const copies = (marker: string) =>
  net
    .org('b.example')
    .mailbox.for('bob@b.example')
    .filter((m) => m.raw.toString('latin1').includes(`Subject: ${marker}`));

test('publisher down longer than the bundle lifetime: cached bundle served until it expires, then 4xx (require); flows again when it returns, nothing lost', async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  const fetchedBy = Date.now() + 1000; // A fetches B's bundle at this message's RCPT at the latest
  expect(await smtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], mail('L-before'), dave)).toMatch(/^250 /);
  await waitFor(() => copies('L-before').length === 1);

  await B.publisher.stop();
  // still within the lifetime: the cached bundle serves
  expect(await smtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], mail('L-cached'), dave)).toMatch(/^250 /);
  await waitFor(() => copies('L-cached').length === 1);

  // past the lifetime of any bundle A can hold
  await sleep(Math.max(0, fetchedBy + (LIFETIME_S + 2) * 1000 - Date.now()));
  const during = mail('L-during');
  const replies: string[] = [];
  replies.push(await smtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], during, dave));
  expect(replies[0]).toMatch(/^4\d\d 4\.7\.5 SSMAX bundle of the peer domain unavailable: b\.example/);
  await sleep(3000);
  replies.push(await smtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], during, dave));
  expect(replies[1]).toMatch(/^4\d\d 4\.7\.5 /);

  await B.restartPublisher();
  let reply = '';
  for (let i = 0; i < 20; i++) {
    // the client's retries; the directory waits retry_ms between fetches
    reply = await smtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], during, dave);
    if (reply.startsWith('250')) break;
    expect(reply).toMatch(/^4\d\d /);
    await sleep(500);
  }
  expect(reply).toMatch(/^250 /);
  await waitFor(() => copies('L-during').length >= 1);
  await sleep(1500);
  expect([copies('L-before').length, copies('L-cached').length, copies('L-during').length]).toEqual([1, 1, 1]);
  // bob's client holds B's own bundle too (60 s lifetime here): it refreshes it, as `ssmax user update-bundle` does
  const fresh = await fetchBundleText(B.bundleUrl, { timeoutMs: 5000, ca: B.fx.caPem, hosts: new Map([['ssmax.b.example', '127.0.0.1']]) });
  await updateOrgBundle(loadUserProfile(B.profiles['bob@b.example']!), fresh, new Date());
  const bob = loadUserProfile(B.profiles['bob@b.example']!);
  const opened = await openMessage(bob, copies('L-during')[0]!.raw, { now: new Date() });
  expect(opened.plaintext.toString('utf8')).toContain('L-during body');
});
