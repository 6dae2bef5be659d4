/**
 * A direct recipient at a peer whose keys are refused for good (src/gateway/peer-bundle.ts,
 * docs/delivery.md "A peer refused for good"), through real processes: a.example's Haraka, keyd,
 * the peers' publishers and mailbox stores. The SSMAX root revokes a peer's organisation CA
 * (cACompromise): a.example's [pki] crls gets the new root CRL.
 *  - known at RCPT: 550 5.7.5 for that recipient, naming its domain and the revocation (not a 451
 *    the sender's MTA retries for days);
 *  - known only at DATA, no copy of the message gone: the message's 550 5.7.5, nothing delivered;
 *  - known only at DATA of a retry whose earlier attempt delivered a local copy: 250 naming the
 *    recipient, one failure report to the sender, the other recipients' copies once — never a 5xx
 *    after a copy went.
 * A peer whose bundle cannot be fetched now stays a 451 (test/gateway/bundle-refusals.test.ts).
 */
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Network } from '../../src/demo/network';
import { createCrl } from '../../src/pki/crl';
import { ORGS, SmtpSession, network, rawSmtp, waitFor } from './network-fixture';

jest.setTimeout(240000);

const DAY = 86_400_000;
let net: Network;
beforeAll(async () => {
  net = await network(ORGS);
  const A = net.org('a.example');
  // the fault-injection plugin: one queueing of a peer copy fails (test/support/haraka-faults.js)
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
const copiesOf = (org: string, who: string, marker: string) =>
  net
    .org(org)
    .mailbox.for(who)
    .filter((m) => m.raw.toString('utf8').includes(`Body ${marker}`));
const reportsOf = (marker: string) =>
  net
    .org('a.example')
    .mailbox.for('dave@a.example')
    .map((m) => m.raw.toString('utf8'))
    .filter((t) => /Action: failed/.test(t) && t.includes(marker));

/** The root's CRL number `n`, revoking the org CAs of `domains` (cACompromise), as a.example's gateway and keyd read it. */
function rootRevokes(n: number, domains: readonly string[]): void {
  const now = Date.now();
  const crl = createCrl(net.root, {
    entries: domains.map((d) => ({
      serial: net.org(d).fx.orgCa.certificate.serial,
      revokedAt: new Date(now - 2000),
      reason: 'cACompromise' as const,
    })),
    thisUpdate: new Date(now - 2000),
    nextUpdate: new Date(now + 7 * DAY),
    crlNumber: n,
  });
  const file = join(net.org('a.example').fx.dir, 'root.crl.pem');
  writeFileSync(`${file}.new`, crl.pem);
  renameSync(`${file}.new`, file);
}

test('known only at DATA, no copy gone: the message is refused 550 5.7.5 naming the domain and the revocation; nothing delivered', async () => {
  const A = net.org('a.example');
  const marker = 'peer-refused-at-data';
  const s = await SmtpSession.open(A.ports.smtp, DAVE);
  let r: string;
  try {
    // both RCPTs taken while b.example's bundle verifies; the root's revocation arrives before DATA
    r = await s.send('dave@a.example', ['dave@a.example', 'bob@b.example'], message(marker, 'dave@a.example, bob@b.example'), () =>
      rootRevokes(2, ['b.example']),
    );
  } finally {
    await s.close();
  }
  expect(r).toMatch(
    /^550 5\.7\.5 SSMAX keys of the recipient's domain refused for good: b\.example: its organisation's CA is revoked \(cACompromise, at /,
  );
  await new Promise((res) => setTimeout(res, 2000));
  expect(copiesOf('a.example', 'dave@a.example', marker)).toHaveLength(0);
  expect(copiesOf('b.example', 'bob@b.example', marker)).toHaveLength(0);
});

test('known at RCPT: 550 5.7.5 for that recipient alone, naming its domain and the revocation', async () => {
  const A = net.org('a.example');
  const r = await rawSmtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], message('peer-refused-at-rcpt', 'bob@b.example'), DAVE);
  expect(r).toMatch(
    /^550 5\.7\.5 SSMAX keys of the recipient's domain refused for good: b\.example: its organisation's CA is revoked \(cACompromise/,
  );
  // another peer's recipients still go
  const ok = await rawSmtp(A.ports.smtp, 'dave@a.example', ['frank@c.example'], message('peer-ok-beside', 'frank@c.example'), DAVE);
  expect(ok).toMatch(/^250 /);
});

test('known only at DATA of a retry, after an earlier attempt delivered a local copy: 250 naming the recipient, one failure report, no second copy', async () => {
  const A = net.org('a.example');
  const marker = 'peer-refused-after-copy';
  const to = ['dave@a.example', 'frank@c.example'];
  const data = message(marker, to.join(', '));
  // attempt 1: dave's copy delivered, queueing c.example's copy fails for now: 451
  writeFileSync(join(A.harakaDir, 'fail-queue-once'), 'c.example\n');
  const first = await rawSmtp(A.ports.smtp, 'dave@a.example', to, data, DAVE);
  expect(first).toMatch(/^45\d /);
  await waitFor(() => copiesOf('a.example', 'dave@a.example', marker).length === 1, 20000);
  // attempt 2 (the sender's retry): the RCPTs are taken, then the root revokes c.example's org CA before DATA
  const s = await SmtpSession.open(A.ports.smtp, DAVE);
  let r: string;
  try {
    r = await s.send('dave@a.example', to, data, () => rootRevokes(3, ['b.example', 'c.example']));
  } finally {
    await s.close();
  }
  expect(r).toMatch(/^250 /);
  expect(r).toMatch(/not sent to frank@c\.example \(550 5\.7\.5\), refused for good \(report sent\)/);
  await waitFor(
    () => reportsOf(marker).length > 0,
    30000,
    () => A.haraka.logs().slice(-3000),
  );
  await new Promise((res) => setTimeout(res, 3000)); // room for a second copy or report to show up
  const reports = reportsOf(marker);
  expect(reports).toHaveLength(1);
  expect(reports[0]).toMatch(/Final-Recipient: rfc822; ?frank@c\.example/i);
  expect(reports[0]).toMatch(/Status: 5\.7\.5/);
  expect(reports[0]).toMatch(/c\.example: its organisation's CA is revoked \(cACompromise/);
  expect(copiesOf('a.example', 'dave@a.example', marker)).toHaveLength(1);
  expect(copiesOf('c.example', 'frank@c.example', marker)).toHaveLength(0);
  // the sender's next retry sends and reports nothing again
  const again = await rawSmtp(A.ports.smtp, 'dave@a.example', ['dave@a.example'], data, DAVE);
  expect(again).toMatch(/^250 /);
  await new Promise((res) => setTimeout(res, 1500));
  expect(copiesOf('a.example', 'dave@a.example', marker)).toHaveLength(1);
  expect(reportsOf(marker)).toHaveLength(1);
});
