/**
 * A message held by a REMOTE inspector outlives its key version, through real processes: a.example runs inspection
 * in a separate inspector process (`ssmax inspector run`, [inspection] mode=remote), and its keyd has a grace period
 * of ~17 s and runs its schedule every second. Two of Alice's encrypted messages (to a.example:v1) are held by a
 * DLP quarantine rule in the inspector's own quarantine; a.example rotates to v2; the inspector, restarted, moves
 * its held entries to v2 at start (src/inspect/held-keys.ts, the gateway's job, with the inspector's own
 * certificate: keyd lets the inspector role re-encrypt to own-newer); keyd's schedule destroys v1. The first
 * release is delivered to bob, who reads it: the gateway opens it with the capsule the inspector's answer hands
 * over. The second entry is put back as never moved (as one that arrived after the last run): its release fails
 * with a clear error, and the entry is kept, held, never deleted. Before the inspector moved its quarantine, every
 * such release met 550 5.7.5 Key version destroyed and the message could never be delivered.
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
import { waitFor } from '../gateway/network-fixture';

jest.setTimeout(180000);

let net: Network;
const A = () => net.org('a.example');
const B = () => net.org('b.example');
const dlpIni = `${readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8')}\n[secret]\ntype=keyword\nwords=top secret\naction=quarantine\n`;

beforeAll(async () => {
  net = await startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-held-remote-')), [
    {
      domain: 'a.example',
      keydKeys: '[keys]\nvalidity_days=90\nrenew_before_days=14\ngrace_days=0.0002\nschedule_seconds=1',
      inspector: { inspectIni: '[dlp]\nenabled=true\n', dlpIni },
      users: [{ address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' }],
    },
    { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
  ]);
});
afterAll(async () => {
  await net?.stop();
});

/** Opens the inspector's quarantine (beside the inspector that has it open), runs `f`, closes it. */
async function withStore<T>(dir: string, f: (s: QuarantineStore) => T | Promise<T>): Promise<T> {
  const store = new QuarantineStore(dir);
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

async function aliceHolds(subject: string): Promise<string> {
  const alice = loadUserProfile(A().profiles['alice@a.example']!);
  const content = Buffer.from(
    `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/ /g, '-')}@a.example>\r\nDate: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nThis is top secret.\r\n`,
  );
  const encrypted = await signAndEncrypt(alice, content, { now: new Date() });
  const reply = (await submitMessage(alice, encrypted, { to: ['bob@b.example'] })).response;
  const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
  expect(id).toBeDefined();
  return id!;
}

test('the remote inspector moves its held messages to v2 at start; released after v1 is destroyed, one is delivered and read, one never moved fails clearly and stays held', async () => {
  const qdir = join(A().inspectorDir, 'state', 'quarantine');
  const first = await aliceHolds('held remotely one');
  const second = await aliceHolds('held remotely two');
  const held = (id: string) => withStore(qdir, (s) => s.summary(id));
  expect(await held(first)).toMatchObject({ state: 'held' });

  // a.example rotates; its bundle carries v2 once the publisher has seen it (the inspector checks keyd's proofs against it)
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

  // the inspector moves what its quarantine holds at start (with its own inspector-role certificate)
  await A().restartInspector();
  await waitFor(
    () => A().inspector!.output().includes('ssmax held keys: quarantine: 2 held message(s) moved to a.example:v2'),
    30000,
    () => A().inspector!.output().slice(-3000),
  );
  const moved: QuarantineSummary = (await held(first))!;
  expect(moved).toMatchObject({ keyId: 'a.example:v2', state: 'held' });
  expect(moved.capsule).toMatch(/kid=a\.example:v2;/);
  // the second one put back as never moved: as an entry held after the last run
  const second0 = (await held(second))!;
  expect(await withStore(qdir, (s) => s.setKey(second, second0.capsule!, 'a.example:v1'))).toBe(true);
  expect(await held(second)).not.toHaveProperty('capsule');

  // keyd's schedule destroys v1
  let keys: { keyId: string; state: string }[] = [];
  for (let i = 0; i < 150 && !keys.some((k) => k.keyId === 'a.example:v1' && k.state === 'destroyed'); i++) {
    await new Promise((r) => setTimeout(r, 200));
    keys = (await admin.call<{ keys: { keyId: string; state: string }[] }>('GET', '/v1/public')).keys;
  }
  admin.close();
  expect(keys).toEqual(expect.arrayContaining([expect.objectContaining({ keyId: 'a.example:v1', state: 'destroyed' })]));

  const before = B().mailbox.for('bob@b.example').length;
  writeFileSync(join(A().inspectorDir, 'pw-alice'), 'pw-alice\n');
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  const release = (id: string) =>
    main(
      [
        'quarantine',
        'release',
        id,
        '--state',
        qdir,
        '--smtp',
        `127.0.0.1:${A().ports.smtp}`,
        '--user',
        'alice@a.example',
        '--password-file',
        join(A().inspectorDir, 'pw-alice'),
      ],
      io,
    );

  // the moved one, released now: delivered to bob, who reads it
  expect({ code: await release(first), out }).toEqual({ code: 0, out: expect.any(Array) });
  await waitFor(
    () => B().mailbox.for('bob@b.example').length > before,
    30000,
    () => A().haraka.logs().slice(-3000),
  );
  const opened = await openMessage(loadUserProfile(B().profiles['bob@b.example']!), B().mailbox.for('bob@b.example').at(-1)!.raw, {
    now: new Date(),
  });
  expect(opened.plaintext.toString()).toContain('top secret');
  expect(await held(first)).toBeUndefined(); // released: the entry is gone

  // the one never moved: a clear refusal naming why, and the entry kept, held again (not deleted, not released)
  out.length = 0;
  expect(await release(second)).toBe(1);
  const said = out.join('\n');
  expect(said).toContain('5.7.5');
  expect(said).toContain('its key version a.example:v1 was destroyed before the held message was moved to the current one');
  expect(await held(second)).toMatchObject({ state: 'held', keyId: 'a.example:v1' });
  expect(B().mailbox.for('bob@b.example').length).toBe(before + 1);
});
