/**
 * The web console (`ssmax console`, docs/console.md) driven in real headless
 * Chromium (Debian's chromium, scripts/ensure-chromium.sh; playwright-core,
 * no browser download) against a running two-organisation network: an
 * administrator logs in with their certificate, sees the overview, releases
 * a quarantined message (delivered at the peer), resolves the message's
 * tracking token, suspends a user (their next submission is refused),
 * revokes an SSMAX client user (their certificate is in the org CA's new CRL,
 * signed by keyd; their next submission is refused),
 * verifies the audit chain (the console's actions are in it as the
 * administrator, via the console); a certificate without the right role is
 * refused; the disclosure role sees the abuse page only, in Japanese.
 * One network, one console process, one browser for all cases. Screenshots:
 * test-output/console/ (git-ignored). Page load times are printed.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { parseCertificate } from '../../src/pki/certificate';
import { parseCrl } from '../../src/pki/crl';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { type Network, type ServiceProcess, startNetwork, startService } from '../../src/demo/network';
import { freePort } from '../../src/demo/haraka';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { smtp, waitFor } from '../gateway/network-fixture';

jest.setTimeout(120000);

const SHOTS = resolve(__dirname, '..', '..', 'test-output', 'console');
const CHROMIUM = '/usr/bin/chromium';

let net: Network;
let consoleProc: ServiceProcess;
let browser: Browser;
let origin: string;
let base: string;
const contexts: BrowserContext[] = [];
const loadTimes: { page: string; ms: number }[] = [];
const started = Date.now();

const A = () => net.org('a.example');
const B = () => net.org('b.example');

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'ssmax-console-'));
  net = await startNetwork(base, [
    {
      domain: 'a.example',
      users: [
        { address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' },
        { address: 'dave@a.example', client: 'plain', password: 'pw-dave' },
        { address: 'carol@a.example', client: 'ssmax', password: 'pw-carol' },
      ],
    },
    { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
  ]);
  const a = A();
  // a quarantine rule at a.example (as docs/inspection.md)
  writeFileSync(join(a.harakaDir, 'config', 'ssmax-inspect.ini'), '[dlp]\nenabled=true\n');
  writeFileSync(
    join(a.harakaDir, 'config', 'ssmax-dlp.ini'),
    `${readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8')}\n[secret]\ntype=keyword\nwords=top secret\naction=quarantine\n`,
  );
  await a.restartHaraka();
  const pki = a.fx.dir;
  const w = (name: string, textValue: string) => writeFileSync(join(pki, name), textValue, { mode: 0o600 });
  w('console.pem', a.fx.clients.console.cert + a.fx.orgCa.certificate.pem);
  w('console.key', a.fx.clients.console.key);
  w('disclosure.pem', a.fx.clients.disclosure.cert);
  w('disclosure.key', a.fx.clients.disclosure.key);
  w('relay-password', 'pw-alice\n');
  const state = join(a.harakaDir, 'ssmax-state');
  w(
    'ssmax-directory.ini',
    [
      '[directory]',
      `roots=${join(pki, 'root.pem')}`,
      `cache_dir=${join(state, 'directory')}`,
      'dns=off',
      '[peers]',
      `b.example=${B().bundleUrl}`,
      '[hosts]',
      'ssmax.b.example=127.0.0.1',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const config = join(pki, 'console.ini');
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
      'crls=org-ca.crl.pem,root.crl.pem',
      'org_ca=org-ca.pem',
      '[keyd]',
      `url=https://127.0.0.1:${a.ports.keyd}`,
      'servername=keyd.a.example',
      'ca=org-ca.pem,root.pem',
      'cert=console.pem',
      'key=console.key',
      '[ops]',
      `gateway=127.0.0.1:${a.ports.ops.gateway}`,
      `keyd=127.0.0.1:${a.ports.ops.keyd}`,
      `publisher=127.0.0.1:${a.ports.ops.publisher}`,
      '[quarantine]',
      `dir=${join(state, 'quarantine')}`,
      `smtp=127.0.0.1:${a.ports.smtp}`,
      'user=alice@a.example',
      'password_file=relay-password',
      'inspector_cert=inspector.pem',
      'inspector_key=inspector.key',
      '[peers]',
      'directory=ssmax-directory.ini',
      '',
    ].join('\n'),
  );
  consoleProc = await startService(['console', 'run', '--config', config], /console listening on [^:]+:(\d+)/);
  origin = `https://127.0.0.1:${consoleProc.port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // (playwright-core gives the browser a fresh temporary profile itself: --user-data-dir is its to set)
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  mkdirSync(SHOTS, { recursive: true });
}, 120000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await consoleProc?.stop();
  await net?.stop();
  const width = Math.max(...loadTimes.map((l) => l.page.length));
  console.log(
    `console page load times (navigation start to load event, headless Chromium):\n${loadTimes.map((l) => `  ${l.page.padEnd(width)}  ${l.ms.toFixed(0)} ms`).join('\n')}\nconsole browser test: ${((Date.now() - started) / 1000).toFixed(1)} s in all`,
  );
});

/** A browser context presenting the certificate of `role` (cert and key files in the org's pki folder). */
async function as(cert: string, key: string, locale = 'en-GB'): Promise<BrowserContext> {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    locale,
    viewport: { width: 1366, height: 800 },
    clientCertificates: [{ origin, cert: Buffer.from(cert), key: Buffer.from(key) }],
  });
  contexts.push(context);
  return context;
}

/** Opens `path`, records its load time, and returns the HTTP status. */
async function open(page: Page, path: string, label = path): Promise<number> {
  const r = await page.goto(`${origin}${path}`, { waitUntil: 'load' });
  const ms = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined;
    return nav ? nav.loadEventEnd - nav.startTime : -1;
  });
  loadTimes.push({ page: label, ms });
  return r?.status() ?? 0;
}

async function submitAndWait(page: Page, button: ReturnType<Page['getByRole']>): Promise<void> {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
}

let admin: Page;

describe('the web console in headless Chromium', () => {
  beforeAll(async () => {
    const fx = A().fx;
    admin = await (await as(fx.clients.admin.cert, fx.clients.admin.key)).newPage();
  });

  test('an administrator logs in with their certificate and sees the overview of the running network', async () => {
    const headers: Record<string, string> = {};
    admin.once('response', (r) => {
      if (r.url() === `${origin}/`) Object.assign(headers, r.headers());
    });
    expect(await open(admin, '/', 'overview')).toBe(200);
    await expect(admin.locator('[data-role]').textContent()).resolves.toBe('admin');
    for (const svc of ['gateway', 'keyd', 'publisher'])
      await expect(admin.locator(`tr[data-service="${svc}"] td`).first().textContent()).resolves.toBe('ready');
    await expect(admin.locator('tr[data-service="inspector"] td').first().textContent()).resolves.toBe('not configured');
    await expect(admin.getByRole('table', { name: 'Organisation key versions' }).textContent()).resolves.toMatch(/\(current\)/);
    await expect(admin.locator('main').textContent()).resolves.toMatch(/CRL next update \(.*org-ca\.crl\.pem\)\s*\d{4}-\d\d-\d\d/);
    // the response headers: strict CSP, secure cookie
    expect(headers['content-security-policy']).toMatch(/default-src 'none'; style-src 'self'/);
    const cookies = await admin.context().cookies();
    expect(cookies.find((c) => c.name === 'ssmax_console')).toMatchObject({ secure: true, httpOnly: true, sameSite: 'Strict' });
    await admin.screenshot({ path: join(SHOTS, 'overview.png'), fullPage: true });
  });

  test('peers: each peer with its bundle; refresh now fetches it again', async () => {
    expect(await open(admin, '/peers', 'peers')).toBe(200);
    const row = admin.locator('tr[data-peer="b.example"]');
    await expect(row.count()).resolves.toBe(1);
    await submitAndWait(admin, row.getByRole('button', { name: 'Refresh now: b.example' }));
    await expect(admin.getByRole('status').textContent()).resolves.toMatch(/Refreshed: b\.example \(Bundle serial \d+\)/);
    await expect(admin.locator('tr[data-peer="b.example"] td').first().textContent()).resolves.toMatch(/^\d+$/);
    await admin.screenshot({ path: join(SHOTS, 'peers.png'), fullPage: true });
  });

  let delivered = '';
  test('quarantine: a held message is listed with its envelope; "release once" delivers it at the peer', async () => {
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const raw = Buffer.from(
      `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: quarterly\r\nMessage-ID: <console-${Date.now()}@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is top secret.\r\n`,
    );
    const reply = await submitMessage(alice, await signAndEncrypt(alice, raw, { now: new Date() }), { to: ['bob@b.example'] }).then(
      (r) => r.response,
      (err: Error) => err.message,
    );
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
    expect(id).toBeDefined();
    const before = B().mailbox.for('bob@b.example').length;
    expect(await open(admin, '/quarantine', 'quarantine')).toBe(200);
    const row = admin.locator(`tr[data-id="${id}"]`);
    await expect(row.textContent()).resolves.toMatch(/outbound\s*alice@a\.example\s*bob@b\.example\s*secret\s*held/);
    await expect(admin.locator('main').textContent()).resolves.not.toMatch(/top secret/); // the content stays encrypted
    // the content, decrypted in memory through keyd with the inspector certificate, on request only
    await submitAndWait(admin, row.getByRole('button', { name: `Show content: ${id}` }));
    await expect(admin.locator(`pre[data-content="${id}"]`).textContent()).resolves.toMatch(
      /Subject: quarterly[\s\S]*This is top secret\./,
    );
    await admin.screenshot({ path: join(SHOTS, 'quarantine.png'), fullPage: true });
    await submitAndWait(admin, admin.locator(`tr[data-id="${id}"]`).getByRole('button', { name: `Release once: ${id}` }));
    await expect(admin.getByRole('status').textContent()).resolves.toMatch(new RegExp(`Released: ${id} \\(250 `));
    await waitFor(() => B().mailbox.for('bob@b.example').length > before);
    delivered = B().mailbox.for('bob@b.example').at(-1)!.raw.toString('latin1');
    expect(await open(admin, '/quarantine', 'quarantine (after the release)')).toBe(200);
    await expect(admin.locator(`tr[data-id="${id}"]`).count()).resolves.toBe(0); // released: gone from the store once the gateway let it pass
  });

  test('quarantine: "delete" removes a held message for good; nothing is delivered', async () => {
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const raw = Buffer.from(
      `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: drop\r\nMessage-ID: <console-del-${Date.now()}@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAlso top secret.\r\n`,
    );
    const reply = await submitMessage(alice, await signAndEncrypt(alice, raw, { now: new Date() }), { to: ['bob@b.example'] }).then(
      (r) => r.response,
      (err: Error) => err.message,
    );
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
    expect(id).toBeDefined();
    const before = B().mailbox.for('bob@b.example').length;
    expect(await open(admin, '/quarantine', 'quarantine (second message)')).toBe(200);
    await submitAndWait(admin, admin.locator(`tr[data-id="${id}"]`).getByRole('button', { name: `Delete: ${id}` }));
    await expect(admin.getByRole('status').textContent()).resolves.toBe(`Deleted: ${id}`);
    await expect(admin.locator(`tr[data-id="${id}"]`).count()).resolves.toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    expect(B().mailbox.for('bob@b.example').length).toBe(before);
  });

  test('abuse: the delivered message pasted in resolves (seal i=1 token) to its registered sender', async () => {
    expect(delivered).not.toBe('');
    expect(await open(admin, '/abuse', 'abuse')).toBe(200);
    await expect(admin.getByLabel('Disclose the identity reference (disclosure role)').count()).resolves.toBe(0); // not for the admin role
    await admin
      .getByLabel('Tracking token, a reported message or an ARF report')
      .fill(delivered.slice(0, delivered.search(/\r\n\r\n/) + 4));
    await submitAndWait(admin, admin.getByRole('button', { name: 'Resolve' }));
    await expect(admin.locator('[data-resolved]').getAttribute('data-resolved')).resolves.toBe('alice@a.example');
    await expect(admin.locator('[data-identity-ref]').count()).resolves.toBe(0);
    await admin.screenshot({ path: join(SHOTS, 'abuse.png'), fullPage: true });
  });

  test("users: an administrator suspends a user; that user's next submission is refused", async () => {
    const dave = { user: 'dave@a.example', pass: 'pw-dave' };
    const msg = (n: number) =>
      `From: dave@a.example\r\nTo: bob@b.example\r\nSubject: s${n}\r\nMessage-ID: <console-dave-${n}-${Date.now()}@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\n\r\nhello\r\n`;
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['bob@b.example'], msg(1), dave)).toMatch(/^250 /);
    expect(await open(admin, '/users?address=dave%40a.example', 'users')).toBe(200);
    await expect(admin.locator('[data-status]').textContent()).resolves.toBe('active');
    await submitAndWait(admin, admin.getByRole('button', { name: 'Suspend' }));
    await expect(admin.getByRole('status').textContent()).resolves.toBe('dave@a.example: suspended');
    await expect(admin.locator('[data-status]').textContent()).resolves.toBe('suspended');
    await admin.screenshot({ path: join(SHOTS, 'users.png'), fullPage: true });
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['bob@b.example'], msg(2), dave)).toMatch(/^5\d\d /);
    // reinstated: accepted again
    await submitAndWait(admin, admin.getByRole('button', { name: 'Reinstate' }));
    await expect(admin.locator('[data-status]').textContent()).resolves.toBe('active');
    expect(await smtp(A().ports.smtp, 'dave@a.example', ['bob@b.example'], msg(3), dave)).toMatch(/^250 /);
  });

  test('users: an administrator revokes an SSMAX client user; their certificate is in the new CRL and their next submission is refused', async () => {
    const carol = loadUserProfile(A().profiles['carol@a.example']!);
    const serial = parseCertificate(readFileSync(join(A().profiles['carol@a.example']!, 'signing.cert.pem'), 'utf8')).serial;
    const crlFile = join(A().fx.dir, 'org-ca.crl.pem'); // the CRL keyd reads ([pki] crls) and the publisher publishes
    const before = parseCrl(readFileSync(crlFile, 'utf8'));
    expect(before.entries.has(serial)).toBe(false);
    const send = async (n: number) => {
      const raw = Buffer.from(
        `From: carol@a.example\r\nTo: bob@b.example\r\nSubject: r${n}\r\nMessage-ID: <console-carol-${n}-${Date.now()}@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n`,
      );
      return submitMessage(carol, await signAndEncrypt(carol, raw, { now: new Date() }), { to: ['bob@b.example'] }).then(
        (r) => r.response,
        (err: Error) => err.message,
      );
    };
    expect(await send(1)).toMatch(/^250 /);
    expect(await open(admin, '/users?address=carol%40a.example', 'users (revoke)')).toBe(200);
    const form = admin.getByRole('form', { name: 'Revoke this user' });
    await form.getByLabel('Reason').selectOption('affiliationChanged');
    // without the confirmation the browser does not send the form (required); the server refuses it as well
    await form.getByRole('button', { name: 'Revoke' }).click();
    await expect(admin.locator('[data-status]').textContent()).resolves.toBe('active');
    await form.getByLabel('I understand that revoking cannot be undone').check();
    await submitAndWait(admin, form.getByRole('button', { name: 'Revoke' }));
    await expect(admin.getByRole('status').textContent()).resolves.toMatch(
      new RegExp(`^carol@a\\.example: revoked; CRL number ${(before.crlNumber ?? 0n) + 1n}, certificate serials: .*${serial}`),
    );
    await expect(admin.locator('[data-status]').textContent()).resolves.toBe('revoked');
    await expect(admin.getByRole('button', { name: 'Reinstate' }).count()).resolves.toBe(0);
    await admin.screenshot({ path: join(SHOTS, 'users-revoked.png'), fullPage: true });
    const after = parseCrl(readFileSync(crlFile, 'utf8'));
    expect(after.crlNumber).toBe((before.crlNumber ?? 0n) + 1n);
    expect(after.entries.get(serial)?.reason).toBe('affiliationChanged');
    expect(await send(2)).toMatch(/the server refused "(?:MAIL|RCPT|DATA)": 5\d\d 5\.7\.\d+ /); // a permanent refusal (the answer has no 250)
  });

  test("users and lists: register a user with the form (keyboard only); a list's members are shown", async () => {
    expect(await open(admin, '/users', 'users (empty)')).toBe(200);
    await admin.getByLabel('Address', { exact: true }).nth(1).focus(); // the register form's field (the first is the look-up)
    await admin.keyboard.type('grace@a.example');
    await admin.keyboard.press('Tab');
    await admin.keyboard.type('U-2001');
    await admin.keyboard.press('Tab');
    await admin.keyboard.type('EMP-2001');
    await Promise.all([admin.waitForNavigation(), admin.keyboard.press('Enter')]);
    await expect(admin.getByRole('status').textContent()).resolves.toBe('Registered: grace@a.example');
    await expect(admin.locator('[data-status]').textContent()).resolves.toBe('active');
    const keyd = A().admin();
    try {
      await keyd.call('POST', '/v1/lists', { address: 'team@a.example', members: ['alice@a.example', 'grace@a.example'] });
    } finally {
      keyd.close();
    }
    expect(await open(admin, '/users?list=team%40a.example', 'users (list members)')).toBe(200);
    await expect(admin.getByRole('list', { name: 'Members: team@a.example' }).textContent()).resolves.toBe(
      'alice@a.examplegrace@a.example',
    );
  });

  test("audit: the chain verifies, and the console's actions are in it as the administrator, via the console", async () => {
    expect(await open(admin, '/audit', 'audit')).toBe(200);
    await submitAndWait(admin, admin.getByRole('button', { name: 'Verify the chain' }));
    await expect(admin.getByRole('status').textContent()).resolves.toMatch(/^The audit chain verifies: \d+ records\.$/);
    const row = (op: string) => admin.locator('main table tr', { hasText: op }).first().textContent();
    for (const op of [
      'registry.status',
      'registry.revoke',
      'console.quarantine.show',
      'console.quarantine.release',
      'console.quarantine.delete',
      'console.peers.refresh',
    ]) {
      await expect(row(op)).resolves.toMatch(/admin-operator #[0-9a-f]+ via .*console\.a\.example #[0-9a-f]+admin/);
    }
    const statusRows = await admin.locator('main table tr', { hasText: 'registry.status' }).allTextContents();
    expect(statusRows.map((r) => /dave@a\.exampleok — (status=\w+)$/.exec(r)?.[1])).toEqual(['status=active', 'status=suspended']); // newest first
    await expect(row('decrypt')).resolves.toMatch(/CN=inspect\.a\.example #[0-9a-f]+inspectordecrypta\.example:v1ok$/); // keyd's own record of the decryption, by the inspector certificate
    await expect(row('registry.add')).resolves.toMatch(/via .*adminregistry\.addgrace@a\.exampleok$/);
    await admin.screenshot({ path: join(SHOTS, 'audit.png'), fullPage: true });
  });

  test("a POST without the session's CSRF token is refused", async () => {
    const r = await admin.request.post(`${origin}/users/status`, { form: { address: 'dave@a.example', status: 'active' } });
    expect(r.status()).toBe(403);
    expect(await r.text()).toMatch(/did not come from this console/);
  });

  test('a certificate without the admin or disclosure role is refused', async () => {
    const fx = A().fx;
    const page = await (await as(fx.clients.gateway.cert, fx.clients.gateway.key)).newPage();
    expect(await open(page, '/', 'refused (gateway role)')).toBe(403);
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(
      /may not use the console: Client certificate refused: .*role "gateway"/,
    );
    await page.screenshot({ path: join(SHOTS, 'refused.png'), fullPage: true });
  });

  test('the disclosure role sees the abuse page only (here in Japanese, from Accept-Language)', async () => {
    const fx = A().fx;
    const page = await (await as(fx.clients.disclosure.cert, fx.clients.disclosure.key, 'ja-JP')).newPage();
    expect(await open(page, '/', 'overview (disclosure role: refused)')).toBe(403);
    await expect(page.getByRole('alert').textContent()).resolves.toBe(
      '開示ロールでログインしています。利用できるのは不正利用のページのみです。',
    );
    expect(await open(page, '/abuse', 'abuse (disclosure role, ja)')).toBe(200);
    await expect(page.locator('h1').textContent()).resolves.toBe('不正利用');
    await expect(page.getByLabel('本人参照を開示する(開示ロール)').count()).resolves.toBe(1);
    await page.screenshot({ path: join(SHOTS, 'abuse-disclosure-ja.png'), fullPage: true });
    // disclosure, for this role only: the identity reference of the delivered message's sender (keyd audits it as this administrator)
    await page.getByLabel('追跡トークン、報告されたメッセージ、または ARF 報告').fill(delivered.slice(0, delivered.search(/\r\n\r\n/) + 4));
    await page.getByLabel('本人参照を開示する(開示ロール)').check();
    await submitAndWait(page, page.getByRole('button', { name: '照会' }));
    await expect(page.locator('[data-resolved]').getAttribute('data-resolved')).resolves.toBe('alice@a.example');
    await expect(page.locator('[data-identity-ref]').textContent()).resolves.toBe('EMP-1001');
    // the switch back to English, by keyboard
    await page.getByRole('link', { name: 'English' }).focus();
    await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
    await expect(page.locator('h1').textContent()).resolves.toBe('Abuse');
  });
});
