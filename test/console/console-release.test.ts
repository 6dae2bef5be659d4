/**
 * The console's quarantine release against real processes (a two-organisation
 * network, the console as `ssmax console run`): a release the gateway does
 * not take (down, or refusing the relay login) leaves the message held and
 * says so; once the gateway takes it, the release works once and the
 * message is delivered once. The command line (`ssmax quarantine release`)
 * goes through the same release; the console and the command line releasing
 * the same message at once send it once (the state in LMDB decides). And keyd's on-behalf check uses a replaced
 * CRL of the organisation at once, without a restart.
 */
import { copyFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { freePort } from '../../src/demo/haraka';
import { type Network, type ServiceProcess, startNetwork, startService } from '../../src/demo/network';
import { type QuarantineEntry, QuarantineStore, RELEASE_HEADER, releaseMarker } from '../../src/inspect/quarantine';
import { ReinjectError, reinject } from '../../src/mail/release';
import { parseCertificate } from '../../src/pki/certificate';
import { createCrl } from '../../src/pki/crl';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { waitFor } from '../gateway/network-fixture';

jest.setTimeout(120000);

let net: Network;
let consoleProc: ServiceProcess;
let pki: string;
let quarantineDir: string;
let session = '';
let csrf = '';

const A = () => net.org('a.example');
const B = () => net.org('b.example');

beforeAll(async () => {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-console-release-'));
  net = await startNetwork(base, [
    { domain: 'a.example', users: [{ address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' }] },
    { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
  ]);
  const a = A();
  writeFileSync(join(a.harakaDir, 'config', 'ssmax-inspect.ini'), '[dlp]\nenabled=true\n');
  writeFileSync(
    join(a.harakaDir, 'config', 'ssmax-dlp.ini'),
    `${readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8')}\n[secret]\ntype=keyword\nwords=top secret\naction=quarantine\n`,
  );
  await a.restartHaraka();
  pki = a.fx.dir;
  const w = (name: string, text: string) => writeFileSync(join(pki, name), text, { mode: 0o600 });
  w('console.pem', a.fx.clients.console.cert + a.fx.orgCa.certificate.pem);
  w('console.key', a.fx.clients.console.key);
  w('relay-password', 'pw-alice\n');
  // the console's own copies of the CRLs: only keyd sees the CRL the last test replaces
  copyFileSync(join(pki, 'org-ca.crl.pem'), join(pki, 'console-org-ca.crl.pem'));
  quarantineDir = join(a.harakaDir, 'ssmax-state', 'quarantine');
  const port = await freePort();
  w(
    'console.ini',
    [
      '[console]',
      'domain=a.example',
      `listen=127.0.0.1:${port}`,
      '[tls]',
      'cert=console.pem',
      'key=console.key',
      'client_ca=org-ca.pem,root.pem',
      '[pki]',
      'roots=root.pem',
      'crls=console-org-ca.crl.pem,root.crl.pem',
      'org_ca=org-ca.pem',
      '[keyd]',
      `url=https://127.0.0.1:${a.ports.keyd}`,
      'servername=keyd.a.example',
      'ca=org-ca.pem,root.pem',
      'cert=console.pem',
      'key=console.key',
      '[quarantine]',
      `dir=${quarantineDir}`,
      `smtp=127.0.0.1:${a.ports.smtp}`,
      'user=alice@a.example',
      'password_file=relay-password',
      '',
    ].join('\n'),
  );
  consoleProc = await startService(['console', 'run', '--config', join(pki, 'console.ini')], /console listening on [^:]+:(\d+)/);
}, 120000);

afterAll(async () => {
  await consoleProc?.stop();
  await net?.stop();
});

/** One request to the console as the administrator (their certificate), with the session cookie once there is one. */
function call(path: string, form?: Record<string, string>): Promise<{ status: number; text: string }> {
  const a = A();
  const body = form ? new URLSearchParams(form).toString() : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: consoleProc.port,
        path,
        method: body === undefined ? 'GET' : 'POST',
        cert: a.fx.clients.admin.cert,
        key: a.fx.clients.admin.key,
        ca: a.fx.caPem,
        servername: 'console.a.example',
        headers: {
          ...(session ? { cookie: `ssmax_console=${session}` } : {}),
          ...(body === undefined
            ? {}
            : {
                origin: `https://127.0.0.1:${consoleProc.port}`,
                'content-type': 'application/x-www-form-urlencoded',
                'content-length': Buffer.byteLength(body),
              }),
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const set = /ssmax_console=([^;]+)/.exec(String(res.headers['set-cookie'] ?? ''));
          if (set) session = set[1]!;
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Presses "Release once" for `id` on the quarantine page; the page shown after. */
async function release(id: string): Promise<string> {
  const page = await call('/quarantine');
  expect(page.status).toBe(200);
  csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? csrf; // the session's token (an empty page has no form)
  const r = await call('/quarantine/release', { csrf, id });
  expect(r.status).toBe(200);
  return r.text.replace(/&#39;/g, "'").replace(/&quot;/g, '"');
}

/** The entry's state as the store has it (the store is shared with the gateway and the console: LMDB, several processes). */
function stateOf(id: string): string | undefined {
  const store = new QuarantineStore(quarantineDir);
  try {
    return store.get(id)?.state;
  } finally {
    void store.close();
  }
}

async function quarantined(subject: string): Promise<string> {
  const alice = loadUserProfile(A().profiles['alice@a.example']!);
  const raw = Buffer.from(
    `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: ${subject}\r\nMessage-ID: <release-${subject}-${Date.now()}@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is top secret.\r\n`,
  );
  const reply = await submitMessage(alice, await signAndEncrypt(alice, raw, { now: new Date() }), { to: ['bob@b.example'] }).then(
    (r) => r.response,
    (err: Error) => err.message,
  );
  const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
  expect(id).toBeDefined();
  return id!;
}

const delivered = (subject: string) =>
  B()
    .mailbox.for('bob@b.example')
    .filter((m) => m.raw.toString('latin1').includes(`Subject: ${subject}`)).length;

test('console: a release the gateway does not take (down, then refusing the login) leaves the message held; once it takes it, the release works once', async () => {
  const id = await quarantined('console-retry');
  expect(stateOf(id)).toBe('held');

  // the gateway is down: an error that says so; the message stays held, with its release button
  await A().haraka.stop();
  const down = await release(id);
  expect(down).toMatch(
    new RegExp(`Not released: the gateway did not take the message \\(cannot re-inject ${id}: .*ECONNREFUSED.*\\)\\. It stays held`),
  );
  expect(stateOf(id)).toBe('held');
  expect(down).toMatch(new RegExp(`<tr data-id="${id}">[\\s\\S]*?<td>held</td>[\\s\\S]*?Release once: ${id}`));

  // up, but refusing the relay login (a wrong password): the gateway's 5xx is shown; still held
  await A().restartHaraka();
  writeFileSync(join(pki, 'relay-password'), 'not-the-password\n');
  const refused = await release(id);
  expect(refused).toMatch(new RegExp(`Not released: the gateway did not take the message \\(cannot re-inject ${id}: 535`));
  expect(stateOf(id)).toBe('held');
  expect(delivered('console-retry')).toBe(0);

  // the gateway takes it: released, delivered once, gone from the store (the gateway consumed the release)
  writeFileSync(join(pki, 'relay-password'), 'pw-alice\n');
  const ok = await release(id);
  expect(ok).toMatch(new RegExp(`Released: ${id} \\(250 `));
  expect(stateOf(id)).toBeUndefined();
  await waitFor(() => delivered('console-retry') === 1);
  const again = await release(id);
  expect(again).toMatch(new RegExp(`no quarantined message "${id}"`));
  await new Promise((r) => setTimeout(r, 1500));
  expect(delivered('console-retry')).toBe(1);
});

test('command line: the same release; the gateway down exits 1 (refused) and the message stays held, to be released again', async () => {
  const id = await quarantined('cli-retry');
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  const args = [
    'quarantine',
    'release',
    id,
    '--state',
    quarantineDir,
    '--smtp',
    `127.0.0.1:${A().ports.smtp}`,
    '--user',
    'alice@a.example',
    '--password-file',
    join(pki, 'relay-password'),
  ];
  await A().haraka.stop();
  expect(await main(args, io)).toBe(1);
  expect(out.join('\n')).toMatch(new RegExp(`cannot re-inject ${id}: .*ECONNREFUSED`));
  expect(stateOf(id)).toBe('held');
  await A().restartHaraka();
  expect(await main(args, io)).toBe(0);
  expect(out.at(-1)).toMatch(new RegExp(`^released ${id}: 250 `));
  await waitFor(() => delivered('cli-retry') === 1);
  expect(stateOf(id)).toBeUndefined();
});

test('the console and the command line release the same message at once: the store decides, one release goes through, the message is delivered once', async () => {
  const id = await quarantined('both-at-once');
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  const args = [
    'quarantine',
    'release',
    id,
    '--state',
    quarantineDir,
    '--smtp',
    `127.0.0.1:${A().ports.smtp}`,
    '--user',
    'alice@a.example',
    '--password-file',
    join(pki, 'relay-password'),
  ];
  await call('/quarantine'); // the session and its token first, so that both start together
  const [cliCode, page] = await Promise.all([main(args, io), release(id)]);
  const consoleDone = new RegExp(`Released: ${id} \\(250 `).test(page);
  expect([cliCode === 0, consoleDone].filter(Boolean)).toHaveLength(1);
  // the other one came while the winner's release was under way, after the gateway took it (still finishing), or after it ended
  const lost = new RegExp(`a release of ${id} is under way|${id} was already released: the gateway took it|no quarantined message "${id}"`);
  if (consoleDone) expect(out.join('\n')).toMatch(lost);
  else expect(page).toMatch(lost);
  await waitFor(() => delivered('both-at-once') === 1);
  expect(stateOf(id)).toBeUndefined();
  await new Promise((r) => setTimeout(r, 1500));
  expect(delivered('both-at-once')).toBe(1);
});

test('a release under way in another process: the console shows the entry releasing without its button, refuses a release of it and sends nothing', async () => {
  const id = await quarantined('under-way-elsewhere');
  const other = new QuarantineStore(quarantineDir); // as `ssmax quarantine release` in another process, between its two steps
  try {
    const started = (await other.release(id))!;
    const page = (await call('/quarantine')).text;
    expect(page).toMatch(new RegExp(`<tr data-id="${id}">[\\s\\S]*?<td>releasing</td>`));
    expect(page).not.toContain(`Release once: ${id}`);
    const refused = await release(id);
    expect(refused).toMatch(new RegExp(`Could not complete: a release of ${id} is under way \\(since `));
    await new Promise((r) => setTimeout(r, 1000));
    expect(delivered('under-way-elsewhere')).toBe(0);
    expect(await other.holdAgain(started)).toBe('held'); // that release gave up
  } finally {
    await other.close();
  }
  expect(await release(id)).toMatch(new RegExp(`Released: ${id} \\(250 `));
  await waitFor(() => delivered('under-way-elsewhere') === 1);
});

test('a release that died in another process: after its lease the console shows the entry held ("release interrupted") with its button, releases it once, and the dead release\'s late copy is refused by the gateway', async () => {
  const id = await quarantined('interrupted-elsewhere');
  const other = new QuarantineStore(quarantineDir); // as `ssmax quarantine release --lease 1` killed between its two steps, 5 s ago
  let dead: QuarantineEntry;
  try {
    dead = (await other.release(id, Date.now() - 5000, 1000))!;
  } finally {
    await other.close();
  }
  const page = (await call('/quarantine')).text;
  expect(page).toMatch(
    new RegExp(`<tr data-id="${id}">[\\s\\S]*?<td>held<br><small>release interrupted[^<]*can be released again</small>`),
  );
  expect(page).toContain(`Release once: ${id}`);
  const via = { host: '127.0.0.1', port: A().ports.smtp, user: 'alice@a.example', password: 'pw-alice' };
  // the dead release's message reaching the gateway while a newer release holds the entry: refused by its old token,
  // the newer release's entry left as it is (then put back, for the console's release below)
  const newer = new QuarantineStore(quarantineDir);
  try {
    const taken = (await newer.release(id))!;
    const early = await reinject(dead, RELEASE_HEADER, via, releaseMarker(dead)).catch((e: unknown) => e as Error);
    expect(early).toBeInstanceOf(ReinjectError);
    expect((early as Error).message).toMatch(/550 5\.7\.1 Release field not honoured/);
    expect(newer.get(id)).toMatchObject({ state: 'releasing', release: taken.release });
    expect(await newer.holdAgain(taken)).toBe('held');
  } finally {
    await newer.close();
  }
  expect(await release(id)).toMatch(new RegExp(`Released: ${id} \\(250 `));
  await waitFor(() => delivered('interrupted-elsewhere') === 1);
  // the dead release's message reaching the gateway late (its marker names the old token): refused, not delivered again
  const late = await reinject(dead, RELEASE_HEADER, via, releaseMarker(dead)).catch((e: unknown) => e as Error);
  expect(late).toBeInstanceOf(ReinjectError);
  expect((late as Error).message).toMatch(/550 5\.7\.1 Release field not honoured/);
  await new Promise((r) => setTimeout(r, 1500));
  expect(delivered('interrupted-elsewhere')).toBe(1);
});

test('the quarantine page shows one page of entries, newest first, read without their messages, with a link to the older ones', async () => {
  const store = new QuarantineStore(quarantineDir);
  const added: string[] = [];
  try {
    const before = store.heldCount();
    // older than everything else held, so they fill the last pages
    for (let i = 0; i < 130; i++)
      added.push(
        await store.hold(
          { direction: 'inbound', from: 'x@c.example', rcpts: ['alice@a.example'], rule: 'av:Eicar', message: Buffer.alloc(2000) },
          Date.UTC(2026, 0, 1) + i * 1000,
        ),
      );
    const rows = (text: string) => [...text.matchAll(/<tr data-id="(q-[^"]+)">/g)].map((m) => m[1]!);
    const first = await call('/quarantine');
    expect(first.status).toBe(200);
    expect(rows(first.text)).toHaveLength(100);
    expect(first.text).toMatch(new RegExp(`${before + 130} held, \\d+ bytes in all; 100 shown, newest first`));
    const next = /<a href="\/quarantine\?before=(q-[0-9a-z]+-[0-9a-f]{12})" rel="next">Older entries<\/a>/.exec(first.text)?.[1];
    expect(next).toBe(rows(first.text)[99]);
    const second = await call(`/quarantine?before=${next!}`);
    expect(second.status).toBe(200);
    expect(rows(second.text)).toEqual([...added].reverse().slice(100 - before, 100 - before + (before + 130 - 100)));
    expect(second.text).toMatch(/<a href="\/quarantine">Newest entries<\/a>/);
    expect(second.text).not.toMatch(/rel="next"/);
  } finally {
    for (const id of added) await store.delete(id);
    await store.close();
  }
});

test('the quarantine at its cap: a message to be held is refused for now (4xx, 4.3.1), neither held nor delivered; under the cap it is held again', async () => {
  const a = A();
  const ini = join(a.harakaDir, 'config', 'ssmax-inspect.ini');
  const store = new QuarantineStore(quarantineDir);
  // an entry larger than the message, so the message alone fits under the cap (a message alone over it is refused for
  // good, 5.3.4): the store is full only of others, as an operator's release or delete would make room for it
  const filler = await store.hold({
    direction: 'inbound',
    from: 'filler@c.example',
    rcpts: ['bob@a.example'],
    rule: 'test',
    message: Buffer.alloc(64 * 1024),
  });
  const held = store.heldCount();
  const bytes = store.heldBytes();
  await store.close();
  writeFileSync(ini, `[dlp]\nenabled=true\n[quarantine]\nmax_bytes=${bytes + 100}\n`);
  await a.restartHaraka();
  try {
    const alice = loadUserProfile(a.profiles['alice@a.example']!);
    const raw = Buffer.from(
      `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: over-the-cap\r\nMessage-ID: <cap-${Date.now()}@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is top secret.\r\n`,
    );
    const reply = await submitMessage(alice, await signAndEncrypt(alice, raw, { now: new Date() }), { to: ['bob@b.example'] }).then(
      (r) => r.response,
      (err: Error) => err.message,
    );
    expect(reply).toMatch(
      new RegExp(
        `45\\d 4\\.3\\.1 Storage for held messages is full, retry later: the store would hold \\d+ bytes, over its cap of ${bytes + 100} \\(\\[quarantine\\] max_bytes\\)`,
      ),
    );
    const after = new QuarantineStore(quarantineDir);
    expect(after.heldCount()).toBe(held);
    await after.close();
    await new Promise((r) => setTimeout(r, 1000));
    expect(delivered('over-the-cap')).toBe(0);
  } finally {
    writeFileSync(ini, '[dlp]\nenabled=true\n');
    await a.restartHaraka();
    const cleanup = new QuarantineStore(quarantineDir);
    await cleanup.delete(filler);
    await cleanup.close();
  }
  expect(await quarantined('under-the-cap')).toMatch(/^q-/);
});

test("keyd's on-behalf check uses a replaced CRL at once: the administrator's certificate revoked, their next console request is refused by keyd", async () => {
  const a = A();
  expect((await call('/audit')).text).toMatch(/console\.quarantine\.release/); // keyd answers for the administrator
  const file = join(pki, 'org-ca.crl.pem');
  const previous = readFileSync(file, 'utf8');
  const now = Date.now();
  const revoking = createCrl(a.fx.orgCa, {
    entries: [
      { serial: parseCertificate(a.fx.clients.revoked.cert).serial, revokedAt: new Date(now - 1000), reason: 'keyCompromise' },
      { serial: parseCertificate(a.fx.clients.admin.cert).serial, revokedAt: new Date(now - 1000), reason: 'keyCompromise' },
    ],
    thisUpdate: new Date(now - 1000),
    nextUpdate: new Date(now + 86400000),
    crlNumber: 50,
  });
  writeFileSync(`${file}.new`, revoking.pem);
  renameSync(`${file}.new`, file);
  try {
    const r = await call('/audit');
    expect(r.status).toBe(200); // the console itself (its own copy of the CRL) still lets the administrator in
    expect(r.text).toMatch(/The administrator(&#39;|')s certificate is refused: .*revoked/);
  } finally {
    writeFileSync(`${file}.new`, previous);
    renameSync(`${file}.new`, file);
  }
  expect((await call('/audit')).text).toMatch(/console\.quarantine\.release/);
});
