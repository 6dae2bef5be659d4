/**
 * The receiving gateway and retired/destroyed key versions, through real
 * processes: B's keyd has a grace period of ~8.6 s and runs its schedule
 * every second. A copy made (by A's gateway, in-process) for B's key v1
 * before B rotates is accepted within grace with a refresh hint in the 250
 * reply; once the schedule has destroyed v1, the same kind of copy is
 * refused 550 5.7.5 naming the version to fetch. B's EHLO advertises its
 * current version and sealing certificate serial.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { startNetwork, type Network } from '../../src/demo/network';
import { ehloProbe, parseAdvertisement } from '../../src/gateway/key-exchange';
import { setupGateway } from '../../src/gateway/setup';
import { submit } from '../../src/gateway/submission';
import { parseCertificate } from '../../src/pki/certificate';
import { listCapsules } from '../../src/envelope';
import { loadUserProfile } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { smtp, waitFor, expectLogged } from './network-fixture';

jest.setTimeout(120000);

const GRACE_DAYS = 0.0001; // 8.64 s

let net: Network;
let gwA: ReturnType<typeof setupGateway>;
const gwLog: string[] = [];
const A = () => net.org('a.example');
const B = () => net.org('b.example');
let n = 0;
const plain = (to: string, marker: string) =>
  `From: dave@a.example\r\nTo: ${to}\r\nSubject: rotation ${marker}\r\nMessage-ID: <r-${++n}@a.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n${marker}\r\n`;

beforeAll(async () => {
  net = await startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-rot-')), [
    { domain: 'a.example', users: [{ address: 'dave@a.example', client: 'plain', password: 'pw-dave' }] },
    {
      domain: 'b.example',
      keydKeys: `[keys]\nvalidity_days=90\nrenew_before_days=14\ngrace_days=${GRACE_DAYS}\nschedule_seconds=1`,
      users: [
        { address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' },
        { address: 'carol@b.example', client: 'plain', password: 'pw-carol' },
      ],
    },
  ]);
  const ini = parse(readFileSync(join(A().harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
  ini.key_exchange = { probe_interval_seconds: '1' }; // this in-process A probes B's EHLO at most once a second
  gwA = setupGateway(ini, A().harakaDir, (l) => gwLog.push(l), 'ssmax-state-test');
});
afterAll(async () => {
  await gwA?.close();
  await net?.stop();
});

test('retired within grace: 250 with a refresh hint naming the current version, logged; destroyed: 550 5.7.5 naming the version to fetch', async () => {
  const rcpts = ['bob@b.example', 'carol@b.example'];
  const made = async (marker: string) => {
    const { copies } = await submit(gwA.deps, Buffer.from(plain(rcpts.join(', '), marker)), rcpts);
    expect((await listCapsules(copies[0]!.message)).map((c) => c.keyId)).toEqual(['b.example:v1']);
    return copies[0]!.message;
  };
  const early = await made('M-retired');
  const late = await made('M-destroyed');

  const admin = B().admin();
  const rotated = await admin.call<{ changes: { keyId: string; change: string }[] }>('POST', '/v1/keys/rotate');
  admin.close();
  expect(rotated.changes).toEqual(
    expect.arrayContaining([
      { keyId: 'b.example:v2', change: 'created' },
      { keyId: 'b.example:v1', change: 'retired' },
    ]),
  );

  // within grace: accepted, with the hint
  const reply = await smtp(B().ports.smtp, 'dave@a.example', rcpts, early);
  expect(reply).toMatch(/^250 .*Delivered \(SSMAX, 2 copies\) \(refresh: b\.example current key b\.example:v2\)/);
  await expectLogged(
    () => B().haraka.logs(),
    /accepted a capsule for retired key b\.example:v1 \(within grace\); sender told to refresh to b\.example:v2/,
  );
  await waitFor(() => B().mailbox.for('bob@b.example').length >= 1 && B().mailbox.for('carol@b.example').length >= 1);
  const bob = loadUserProfile(B().profiles['bob@b.example']!);
  const opened = await openMessage(bob, B().mailbox.for('bob@b.example')[0]!.raw, { now: new Date() });
  expect(opened.plaintext.toString('utf8')).toContain('M-retired');
  expect(B().mailbox.for('carol@b.example')[0]!.raw.toString('utf8')).toContain('M-retired');

  // B's EHLO advertises the current version and its sealing certificate's serial
  const serial = parseCertificate(readFileSync(join(B().fx.dir, 'seal.cert.pem'), 'utf8')).serial;
  let ad = parseAdvertisement(await ehloProbe({ host: '127.0.0.1', port: B().ports.smtp }, 'probe.test', 3000));
  for (let i = 0; i < 60 && !ad?.keys.includes('b.example:v2'); i++) {
    await new Promise((r) => setTimeout(r, 200));
    ad = parseAdvertisement(await ehloProbe({ host: '127.0.0.1', port: B().ports.smtp }, 'probe.test', 3000));
  }
  expect(ad).toEqual({ keys: ['b.example:v2'], seal: serial });

  // after grace, the schedule destroys v1: the copy is refused, naming the version to fetch
  await waitFor(
    () => /b\.example:v1 destroyed/.test(B().keyd.output()),
    30000,
    () => B().keyd.output().slice(-2000),
  );
  const refused = await smtp(B().ports.smtp, 'dave@a.example', rcpts, late);
  expect(refused).toMatch(/^550 5\.7\.5 Key version destroyed here; fetch the current one: fetch "b\.example:v2"/);
  expect(B().mailbox.mails.filter((m) => m.raw.includes(Buffer.from('M-destroyed')))).toHaveLength(0);
});

test("the sender learns the new version from B's EHLO alone (no mail to B since) and refreshes before it encrypts", async () => {
  // gwA's cached bundle of B still has v1 current (lifetime 1 h); B advertises v2 in EHLO
  const rcpts = ['bob@b.example'];
  let keyIds: string[] = [];
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 1100)); // past probe_interval_seconds; the publisher polls keyd every second
    const { copies } = await submit(gwA.deps, Buffer.from(plain(rcpts.join(', '), `M-probe-${i}`)), rcpts);
    keyIds = (await listCapsules(copies[0]!.message)).map((c) => c.keyId);
    if (keyIds[0] === 'b.example:v2') break;
  }
  expect(keyIds).toEqual(['b.example:v2']);
  expect(gwLog.join('\n')).toMatch(
    /b\.example advertises b\.example:v2 \(EHLO of 127\.0\.0\.1:\d+\); bundle refreshed before sending: serial \d+, current key b\.example:v2/,
  );
  expect(gwA.deps.keyWatch!.stats.hints).toBe(0);
});
