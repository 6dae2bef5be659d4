/**
 * The plugin as an administrator installs it: Haraka from the npm registry in
 * a folder of its own (its own node_modules, nothing of this checkout),
 * `haraka -i <site>`, the packed haraka-plugin-ssmax tarball installed into
 * the site, configured by README.md's plugin block run exactly as written.
 * That Haraka is a.example's gateway: alice submits through it, the peer copy
 * leaves through that Haraka's outbound to b.example's gateway (started by
 * startNetwork with its keyd, publisher and mailbox store, beside a.example's
 * keyd and publisher), and Bob opens what Alice wrote.
 *
 * What it catches: a plugin that reaches Haraka's modules with
 * require('Haraka/…') finds no Haraka (Haraka stops at start), or another
 * copy whose outbound ignores [routes] — the copy is then lost although the
 * submission got 250 (the report). To reproduce the second, worse
 * case, the site also gets a second copy of Haraka in its node_modules (as
 * when an administrator runs `npm install Haraka` in the site folder): the
 * running server is still the one installed apart.
 */
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parse } from 'ini';
import { type Network, startNetwork } from '../../src/demo/network';
import { type HarakaProcess, freePort, startHaraka } from '../../src/demo/haraka';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { openMessage } from '../../src/user/open';
import { smtp, waitFor, expectLogged } from '../gateway/network-fixture';
import { runBlock, testedBlocks } from '../support/doc-blocks';
import { NPM_ENV, PROJECT, harakaInit, installHaraka, lockedHarakaVersion, packPlugin } from '../support/installed-haraka';

jest.setTimeout(300000);

const base = mkdtempSync(join(tmpdir(), 'ssmax-install-'));
const site = join(base, 'haraka-site');
let net: Network | undefined;
let haraka: HarakaProcess | undefined;
let blockOutput = '';
let tarball = '';
let secondHarakaFromPackage = true;

beforeAll(async () => {
  const [network, harakaBin, tgz] = await Promise.all([
    startNetwork(join(base, 'orgs'), [
      { domain: 'a.example', users: [{ address: 'alice@a.example', client: 'ssmax', password: 'unused-here' }] },
      { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
    ]),
    installHaraka(join(base, 'haraka-install')),
    packPlugin(join(base, 'pkg')),
  ]);
  net = network;
  tarball = tgz;
  await harakaInit(harakaBin, site);
  copyFileSync(tarball, join(site, basename(tarball)));

  const [block] = testedBlocks(join(PROJECT, 'README.md'), 'test/install/haraka-package.test.ts');
  const r = await runBlock(block!, site, NPM_ENV);
  blockOutput = r.output;
  if (r.status !== 0) throw new Error(`README's plugin block failed (exit ${r.status}):\n${r.output}`);
  secondHarakaFromPackage = existsSync(join(site, 'node_modules', 'Haraka'));
  // the decoy: a second, unconfigured Haraka where require('Haraka/…') from the plugin would find it
  const installed = join(base, 'haraka-install', 'node_modules');
  cpSync(join(installed, 'Haraka'), join(site, 'node_modules', 'Haraka'), { recursive: true });
  for (const dep of readdirSync(installed).filter((n) => n !== 'Haraka' && n !== '.bin' && !n.startsWith('.'))) {
    cpSync(join(installed, dep), join(site, 'node_modules', 'Haraka', 'node_modules', dep), { recursive: true });
  }

  // "then edit it": the organisation's settings (what provisioning wrote for a.example's gateway)
  const A = network.org('a.example');
  writeFileSync(join(site, 'config', 'ssmax.ini'), readFileSync(join(A.harakaDir, 'config', 'ssmax.ini')));
  // "set listen": a free loopback port instead of port 25
  const port = await freePort();
  const smtpIni = join(site, 'config', 'smtp.ini');
  writeFileSync(smtpIni, `listen=127.0.0.1:${port}\n${readFileSync(smtpIni, 'utf8')}`);
  haraka = await startHaraka(site, port, 60000, harakaBin);
});

afterAll(async () => {
  await haraka?.stop();
  await net?.stop();
  rmSync(base, { recursive: true, force: true });
});

test('the tarball is a package of its own: built code, its dependencies, Haraka only as a peer', () => {
  const pkgDir = join(site, 'node_modules', 'haraka-plugin-ssmax');
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
  const root = JSON.parse(readFileSync(join(PROJECT, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
  expect(pkg.peerDependencies).toEqual({ Haraka: `>=${lockedHarakaVersion()} <4` });
  expect(pkg.dependencies!.Haraka).toBeUndefined();
  for (const [name, version] of Object.entries(root.dependencies!))
    if (name !== 'Haraka') expect([name, pkg.dependencies![name]]).toEqual([name, version]);
  // installed next to it: its dependencies, not a second Haraka
  expect(existsSync(join(site, 'node_modules', 'lmdb', 'package.json'))).toBe(true);
  expect(secondHarakaFromPackage).toBe(false);
  // the plugin's entry point and the compiled code are inside the package (no ../../dist)
  expect(readFileSync(join(pkgDir, 'index.js'), 'utf8')).toMatch(/require\('\.\/dist\/gateway\/plugin\.js'\)/);
  expect(statSync(join(pkgDir, 'index.js')).isFile()).toBe(true);
  // no module of the gateway reaches Haraka by require('Haraka/…')
  const gateway = join(pkgDir, 'dist', 'gateway');
  for (const f of readdirSync(gateway).filter((n) => n.endsWith('.js')))
    expect([f, readFileSync(join(gateway, f), 'utf8')]).not.toEqual([f, expect.stringMatching(/require\(["']Haraka\//)]);
});

test("README's block configured what it says: plugins, authentication, no conflicting defaults", async () => {
  const plugins = readFileSync(join(site, 'config', 'plugins'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  expect(plugins).toEqual(['auth/flat_file', 'ssmax']);
  expect(readFileSync(join(site, 'config', 'connection.ini'), 'utf8')).toMatch(/^spool_after=-1$/m);
  expect(readFileSync(join(site, 'config', 'me'), 'utf8').trim()).toBe('mx.a.example');
  expect(blockOutput).not.toMatch(/ERR!/);
  await expectLogged(() => haraka!.logs(), /ssmax: gateway for a\.example/);
});

test('alice -> bob through the installed Haraka: the peer copy leaves by its outbound, and Bob opens what Alice wrote', async () => {
  const A = net!.org('a.example');
  const B = net!.org('b.example');
  const users = (parse(readFileSync(join(site, 'config', 'auth_flat_file.ini'), 'utf8')) as { users: Record<string, string> }).users;
  const pass = users['alice@a.example'];
  expect(pass).toBeTruthy();
  const alice = loadUserProfile(A.profiles['alice@a.example']!);
  const original = Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: Installed\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n' +
      'Message-ID: <installed-1@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSent through a Haraka installed on its own: Heron-5123\r\n',
  );
  const sealed = await signAndEncrypt(alice, original, { now: new Date() });
  const reply = await smtp(haraka!.port, 'alice@a.example', ['bob@b.example'], sealed, { user: 'alice@a.example', pass: pass! });
  expect(reply).toMatch(/^250 .*SSMAX client mode, 1 copy/);

  await waitFor(
    () => B.mailbox.for('bob@b.example').length >= 1,
    60000,
    () => `no copy reached b.example; the installed Haraka logged:\n${haraka!.logs().slice(-4000)}`,
  );
  const copies = B.mailbox.for('bob@b.example');
  expect(copies).toHaveLength(1);
  const bob = loadUserProfile(B.profiles['bob@b.example']!);
  const opened = await openMessage(bob, copies[0]!.raw, { now: new Date() });
  expect(opened.encrypted).toBe(true);
  expect(opened.plaintext).toEqual(original);
  expect(opened.hops.map((h) => [h.instance, h.domain])).toEqual([
    [1, 'a.example'],
    [2, 'b.example'],
  ]);
  // it went through the installed Haraka, not a.example's own gateway of the network
  expect(A.haraka.logs()).not.toMatch(/Heron|installed-1/);
  await expectLogged(() => haraka!.logs(), /delivered file=/);
});

test("a changed ssmax.ini is reloaded through the installed Haraka's own config loader (the site's folder alone)", async () => {
  const file = join(site, 'config', 'ssmax.ini');
  const before = readFileSync(file, 'utf8');
  writeFileSync(file, `${before}\n[chain]\nresealers=lists.c.example\n[keyd]\nbatch_max_ops=4\n`);
  await waitFor(
    () => /ssmax: ssmax\.ini reloaded: chain\.resealers in effect now/.test(haraka!.logs()),
    30000,
    () => haraka!.logs().slice(-3000),
  );
  await expectLogged(() => haraka!.logs(), /ssmax: ssmax\.ini changed: keyd\.batch_max_ops takes effect after a restart of Haraka/);
  expect(haraka!.proc.exitCode).toBeNull();
});

/** A plaintext submission of alice's to `rcpt` through the installed Haraka: the reply to DATA (or the refusal). */
async function alicePlain(rcpt: string, tag: string): Promise<string> {
  const users = (parse(readFileSync(join(site, 'config', 'auth_flat_file.ini'), 'utf8')) as { users: Record<string, string> }).users;
  const raw = Buffer.from(
    `From: alice@a.example\r\nTo: ${rcpt}\r\nSubject: policy ${tag}\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n` +
      `Message-ID: <policy-${tag}-${Date.now()}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nsecret text ${tag}\r\n`,
  );
  return smtp(haraka!.port, 'alice@a.example', [rcpt], raw, { user: 'alice@a.example', pass: users['alice@a.example']! });
}

test("an emptied site ssmax.ini is refused, never completed from the package's example: a [policy] require rule stays in effect, nothing goes in clear", async () => {
  const file = join(site, 'config', 'ssmax.ini');
  const before = readFileSync(file, 'utf8');
  try {
    writeFileSync(file, `${before}\n[policy]\nx.test=require\n`);
    await waitFor(
      () => /ssmax: ssmax\.ini reloaded: policy\.x\.test in effect now/.test(haraka!.logs()),
      30000,
      () => haraka!.logs().slice(-3000),
    );
    expect(await alicePlain('someone@x.test', 'one')).toMatch(/^550 5\.7\.4 Domain requires SSMAX encryption/);
    // a config-management rewrite, a truncating editor: the site's file emptied under the running gateway
    writeFileSync(file, '');
    await waitFor(
      () => /ssmax: ssmax\.ini changed but cannot be used; the running configuration is kept: .*domain/.test(haraka!.logs()),
      30000,
      () => haraka!.logs().slice(-3000),
    );
    // before: the package's example ssmax.ini filled in, the require rule was dropped, and this was 250 transparent mode
    expect(await alicePlain('someone@x.test', 'two')).toMatch(/^550 5\.7\.4 Domain requires SSMAX encryption/);
  } finally {
    writeFileSync(file, before);
  }
  await waitFor(() => haraka!.logs().match(/ssmax: ssmax\.ini reloaded: policy\.x\.test in effect now/g)!.length >= 2, 30000);
});

test("a site ssmax.ini without [main] domain: the installed plugin refuses to start, naming the setting (never the package example's organisation)", async () => {
  const file = join(site, 'config', 'ssmax.ini');
  const before = readFileSync(file, 'utf8');
  await haraka!.stop();
  haraka = undefined;
  writeFileSync(file, before.replace(/^domain\s*=.*$/m, ''));
  try {
    const port = await freePort();
    const harakaBin = join(base, 'haraka-install', 'node_modules', 'Haraka', 'bin', 'haraka');
    const started = await startHaraka(site, port, 60000, harakaBin).catch((e: unknown) => e as Error);
    if (!(started instanceof Error)) await started.stop();
    expect(started).toBeInstanceOf(Error);
    expect((started as Error).message).toMatch(/ssmax: cannot start: .*\[main\] domain/);
  } finally {
    writeFileSync(file, before);
  }
});

test('another plugin that would answer the queue hook before ssmax (queue/smtp_forward above it in config/plugins): Haraka refuses to start, naming it', async () => {
  const file = join(site, 'config', 'plugins');
  const before = readFileSync(file, 'utf8');
  await haraka?.stop();
  haraka = undefined;
  // an administrator adds Haraka's own forwarder above the gateway: it would relay submissions as they came
  writeFileSync(file, before.replace(/^ssmax$/m, 'queue/smtp_forward\nssmax'));
  try {
    const port = await freePort();
    const harakaBin = join(base, 'haraka-install', 'node_modules', 'Haraka', 'bin', 'haraka');
    const started = await startHaraka(site, port, 60000, harakaBin).catch((e: unknown) => e as Error);
    if (!(started instanceof Error)) await started.stop();
    expect(started).toBeInstanceOf(Error);
    expect((started as Error).message).toMatch(/ssmax: cannot start: "queue\/smtp_forward" answers the queue hook before ssmax/);
  } finally {
    writeFileSync(file, before);
  }
  // listed below ssmax it is never asked: Haraka starts; and a plugin after ssmax still runs its own init_master (ssmax's
  // check goes on, never answers OK for the hook: limit's or karma's redis connection is made there)
  mkdirSync(join(site, 'plugins'), { recursive: true });
  writeFileSync(
    join(site, 'plugins', 'initprobe.js'),
    "exports.hook_init_master = function (next) { this.loginfo('initprobe: init_master ran'); next(); };\n",
  );
  writeFileSync(file, `${before.trimEnd()}\nqueue/smtp_forward\ninitprobe\n`);
  try {
    const port = await freePort();
    haraka = await startHaraka(site, port, 60000, join(base, 'haraka-install', 'node_modules', 'Haraka', 'bin', 'haraka'));
    await expectLogged(() => haraka!.logs(), /ssmax: gateway for a\.example/);
    await expectLogged(() => haraka!.logs(), /initprobe: init_master ran/);
  } finally {
    await haraka?.stop();
    haraka = undefined;
    writeFileSync(file, before);
  }
});
