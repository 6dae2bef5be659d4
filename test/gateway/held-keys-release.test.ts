/**
 * A held submission outlives its key version, through real processes: a.example's keyd has a grace period of
 * ~17 s and runs its schedule every second. Alice's encrypted message (to a.example:v1, signed by her) is held
 * by a DLP quarantine rule; a.example rotates to v2; its gateway, restarted, moves the held entry to v2 at start
 * (src/inspect/held-keys.ts); keyd's schedule destroys v1; the operator's release is then delivered to bob, who
 * reads it. Before the move existed, that release met 550 5.7.5 Key version destroyed and was held again for ever.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { startNetwork, type Network } from '../../src/demo/network';
import { fetchBundleText } from '../../src/directory/fetch';
import { QuarantineStore, type QuarantineSummary } from '../../src/inspect/quarantine';
import { openMessage } from '../../src/user/open';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { waitFor } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
const A = () => net.org('a.example');
const B = () => net.org('b.example');

beforeAll(async () => {
  net = await startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-held-keys-')), [
    {
      domain: 'a.example',
      keydKeys: '[keys]\nvalidity_days=90\nrenew_before_days=14\ngrace_days=0.0002\nschedule_seconds=1',
      users: [{ address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' }],
    },
    { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
  ]);
  writeFileSync(join(A().harakaDir, 'config', 'ssmax-inspect.ini'), '[dlp]\nenabled=true\n');
  writeFileSync(
    join(A().harakaDir, 'config', 'ssmax-dlp.ini'),
    `${readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8')}\n[secret]\ntype=keyword\nwords=top secret\naction=quarantine\n`,
  );
  await A().restartHaraka();
});
afterAll(async () => {
  await net?.stop();
});

/** The entry's record as the store has it now (opened and closed each time, beside the gateway that has it open). */
async function record(dir: string, id: string): Promise<QuarantineSummary | undefined> {
  const store = new QuarantineStore(dir);
  try {
    return store.summary(id);
  } finally {
    await store.close();
  }
}

test('a held submission is moved to v2 after rotation and, released once v1 is destroyed, is delivered and read', async () => {
  const alice = loadUserProfile(A().profiles['alice@a.example']!);
  const content = Buffer.from(
    `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: held across a rotation\r\nMessage-ID: <held-keys@a.example>\r\nDate: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nThis is top secret.\r\n`,
  );
  const encrypted = await signAndEncrypt(alice, content, { now: new Date() });
  const reply = (await submitMessage(alice, encrypted, { to: ['bob@b.example'] })).response;
  const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
  expect(id).toBeDefined();
  const qdir = join(A().harakaDir, 'ssmax-state', 'quarantine');

  // a.example rotates; its bundle carries v2 once the publisher has seen it (the gateway checks keyd's proofs against it)
  const hosts = new Map([['ssmax.a.example', '127.0.0.1']]);
  const admin = A().admin();
  const rotated = await admin.call<{ changes: { keyId: string; change: string }[] }>('POST', '/v1/keys/rotate');
  expect(rotated.changes).toEqual(expect.arrayContaining([{ keyId: 'a.example:v1', change: 'retired' }]));
  const versions = (text: string) => (text.match(/"state"/g) ?? []).length; // one per key version in the bundle's encryptionKeys
  let bundle = '';
  for (let i = 0; i < 100 && versions(bundle) < 2; i++) {
    await new Promise((r) => setTimeout(r, 200));
    bundle = await fetchBundleText(A().bundleUrl, { timeoutMs: 5000, ca: A().fx.caPem, hosts });
  }
  expect(versions(bundle)).toBe(2);

  // the gateway moves what it holds at start
  await A().restartHaraka();
  await waitFor(
    () => A().haraka.logs().includes('ssmax held keys: quarantine: 1 held message(s) moved to a.example:v2'),
    30000,
    () => A().haraka.logs().slice(-3000),
  );
  const moved = await record(qdir, id!);
  expect(moved).toMatchObject({ keyId: 'a.example:v2', state: 'held' });
  expect(moved!.capsule).toMatch(/kid=a\.example:v2;/);

  // keyd's schedule destroys v1
  let keys: { keyId: string; state: string }[] = [];
  for (let i = 0; i < 150 && !keys.some((k) => k.keyId === 'a.example:v1' && k.state === 'destroyed'); i++) {
    await new Promise((r) => setTimeout(r, 200));
    keys = (await admin.call<{ keys: { keyId: string; state: string }[] }>('GET', '/v1/public')).keys;
  }
  admin.close();
  expect(keys).toEqual(expect.arrayContaining([expect.objectContaining({ keyId: 'a.example:v1', state: 'destroyed' })]));

  // released now: delivered to bob, who reads it
  const before = B().mailbox.for('bob@b.example').length;
  writeFileSync(join(qdir, '..', 'pw-alice'), 'pw-alice\n');
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  const args = [
    '--state',
    qdir,
    '--smtp',
    `127.0.0.1:${A().ports.smtp}`,
    '--user',
    'alice@a.example',
    '--password-file',
    join(qdir, '..', 'pw-alice'),
  ];
  expect({ code: await main(['quarantine', 'release', id!, ...args], io), out }).toEqual({ code: 0, out: expect.any(Array) });
  await waitFor(
    () => B().mailbox.for('bob@b.example').length > before,
    30000,
    () => A().haraka.logs().slice(-3000),
  );
  const opened = await openMessage(loadUserProfile(B().profiles['bob@b.example']!), B().mailbox.for('bob@b.example').at(-1)!.raw, {
    now: new Date(),
  });
  expect(opened.plaintext.toString()).toContain('top secret');
});
