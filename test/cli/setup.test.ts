/**
 * `ssmax setup`: what it writes (and what it refuses), without starting
 * services (test/install/deploy-walkthrough.test.ts runs an organisation from
 * it end to end).
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parse } from 'ini';
import { loadAbuseConfig } from '../../src/abuse/config';
import { loadSigningAuthority } from '../../src/cli/ca-files';
import { main } from '../../src/cli/main';
import { parseGatewayConfig } from '../../src/gateway/config';
import { loadKeydConfig } from '../../src/keyd/config';
import { orgCaOf } from '../../src/keyd/renewal';
import { parseCertificate } from '../../src/pki/certificate';
import { createCrl, parseCrl } from '../../src/pki/crl';
import { privateKeyFromPem } from '../../src/pki/keys';
import { fromPemAll } from '../../src/pki/pem';
import { setIniKeys } from '../../src/setup/organisation';

jest.setTimeout(60000);

function cli(argv: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  return main(argv, { out: (t) => out.push(t), err: (t) => out.push(t) }).then((code) => ({ code, out: out.join('\n') }));
}

const base = mkdtempSync(join(tmpdir(), 'ssmax-setup-'));
const root = join(base, 'root');
const orgCa = join(base, 'a-ca');
const rootCrl = join(base, 'root.crl.pem');
/** `haraka -i DIR/gateway` (the Haraka folder setup adds to), with this project's Haraka. */
const harakaInit = (dir: string) =>
  execFileSync(process.execPath, [require.resolve('Haraka/bin/haraka'), '-i', join(dir, 'gateway')], { stdio: 'ignore' });
const args = (dir: string, ...more: string[]) => [
  'setup',
  '--domain',
  'a.example',
  '--org-ca',
  orgCa,
  '--root-crl',
  rootCrl,
  '--dir',
  dir,
  ...more,
];

beforeAll(async () => {
  expect((await cli(['ca', 'init-root', '--unencrypted-key', '--dir', root])).code).toBe(0);
  expect(
    (await cli(['ca', 'init-org', '--unencrypted-key', '--root', root, '--dir', orgCa, '--domain', 'a.example', '--org', 'A Corp'])).code,
  ).toBe(0);
  expect((await cli(['ca', 'crl', '--ca', root, '--out', rootCrl])).code).toBe(0);
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

test('--help, missing and bad options', async () => {
  const help = await cli(['setup', '--help']);
  expect(help.code).toBe(0);
  expect(help.out).toMatch(/^Usage: ssmax setup/);
  expect((await cli(['setup', '--domain', 'a.example'])).code).toBe(64);
  expect((await cli(['setup', '--bogus'])).code).toBe(64);
  expect((await cli(args(join(base, 'x'), '--inspection', 'sideways'))).code).toBe(64);
  expect((await cli(args(join(base, 'x'), '--smtp-listen', 'nowhere'))).code).toBe(64);
  expect((await cli(args(join(base, 'x'), '--delivery-protocol', 'uucp'))).code).toBe(64);
  expect((await cli(args(join(base, 'x'), '--peer', 'b.example=http://insecure'))).code).toBe(64);
  const missing = await cli([
    'setup',
    '--domain',
    'a.example',
    '--org-ca',
    join(base, 'nope'),
    '--root-crl',
    rootCrl,
    '--dir',
    join(base, 'y'),
  ]);
  expect(missing.code).toBe(66);
  expect(missing.out).toMatch(/Cannot read org CA certificate ".*nope\/ca\.cert\.pem"/);
  expect(missing.out).not.toMatch(/\n\s+at /); // no stack trace
  const notCrl = await cli([
    'setup',
    '--domain',
    'a.example',
    '--org-ca',
    orgCa,
    '--root-crl',
    join(orgCa, 'ca.cert.pem'),
    '--dir',
    join(base, 'z'),
  ]);
  expect(notCrl.code).toBe(65);
});

test('an organisation folder: certificates from the org CA, keys 0600, every ini file complete and accepted', async () => {
  const dir = join(base, 'org');
  const none = await cli(args(dir));
  expect(none.code).toBe(66);
  expect(none.out).toMatch(/No Haraka folder at ".*org\/gateway": make it first with "haraka -i /);
  harakaInit(dir);
  const r = await cli(
    args(
      dir,
      '--smtp-listen',
      '127.0.0.1:2525',
      '--delivery',
      '127.0.0.1:24',
      '--delivery-protocol',
      'lmtp',
      '--peer',
      'b.example=https://ssmax.b.example/.well-known/ssmax/bundle',
      '--route',
      'b.example=127.0.0.1:2626',
    ),
  );
  expect(r.code).toBe(0);
  // --dir was absolute: so is every path of the next steps, and the output says so
  expect(r.out).toContain(`Organisation a.example provisioned in ${dir}.`);
  expect(r.out).toContain('Next (absolute paths, as --dir was given):');
  expect(r.out).toContain(`ssmax keyd run --config ${dir}/keyd/keyd.ini`);
  expect(r.out).toContain(`haraka -c ${dir}/gateway`);
  expect(r.out).toContain('the mailbox store at 127.0.0.1:24 (lmtp)');
  expect(r.out).toMatch(/_ssmax\.a\.example\. TXT "v=ssmax1; u=https:\/\/ssmax\.a\.example\/\.well-known\/ssmax\/bundle"/);
  for (const key of [
    'keyd/keyd.key',
    'keyd/master.key',
    'keyd/org-ca.key',
    'publisher/publisher.key',
    'publisher/signer.key.pem',
    'admin/admin.key',
    'gateway/config/pki/gateway.key',
    'gateway/config/pki/seal.key.pem',
    'gateway/config/pki/inspector.key',
    'gateway/config/auth_flat_file.ini',
    'gateway/config/tls_key.pem',
  ]) {
    expect([key, statSync(join(dir, key)).mode & 0o777]).toEqual([key, 0o600]);
  }
  const issuer = parseCertificate(readFileSync(join(orgCa, 'ca.cert.pem'), 'utf8')).subject;
  for (const cert of ['keyd/keyd.pem', 'publisher/publisher.pem', 'gateway/config/pki/gateway.pem', 'pki/seal.cert.pem'])
    expect(parseCertificate(fromPemAll(readFileSync(join(dir, cert), 'utf8'), 'CERTIFICATE')[0]!).issuer).toBe(issuer);
  // the publisher serves its whole chain: its certificate, the org CA, the root
  expect(readFileSync(join(dir, 'publisher/publisher.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)).toHaveLength(3);
  // the gateway's settings parse, with the paths resolved inside the folder
  const gw = parseGatewayConfig(parse(readFileSync(join(dir, 'gateway/config/ssmax.ini'), 'utf8')), join(dir, 'gateway/config'));
  expect(gw.domain).toBe('a.example');
  expect(gw.seal.cert).toBe(join(dir, 'pki/seal.cert.pem'));
  expect(gw.keyd.servername).toBe('keyd.a.example');
  expect(gw.peers['b.example']).toBe('https://ssmax.b.example/.well-known/ssmax/bundle');
  expect(gw.routes['b.example']).toEqual({ host: '127.0.0.1', port: 2626 });
  expect(gw.delivery).toMatchObject({ host: '127.0.0.1', port: 24, protocol: 'lmtp' });
  expect(gw.inspection.mode).toBe('inline');
  // the shipped file's comments and defaults stay (every setting is written out)
  expect(readFileSync(join(dir, 'gateway/config/ssmax.ini'), 'utf8')).toContain(';hook_timeout_ms=25000');
  // haraka -i's plugin list, its conflicting defaults off; its own config files kept (a file written
  // there would replace Haraka's whole); listen set
  expect(
    readFileSync(join(dir, 'gateway/config/plugins'), 'utf8')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#')),
  ).toEqual(['auth/flat_file', 'ssmax']);
  expect(readFileSync(join(dir, 'gateway/config/connection.ini'), 'utf8')).toMatch(/\[message\]/);
  // received messages stay in memory (never spooled to disk in clear), as the README's block sets it
  expect(readFileSync(join(dir, 'gateway/config/connection.ini'), 'utf8').match(/^\s*spool_after\s*=.*$/gm)).toEqual(['spool_after=-1']);
  expect(readFileSync(join(dir, 'gateway/config/smtp.ini'), 'utf8')).toMatch(/^listen=127\.0\.0\.1:2525\n/);
  expect(readFileSync(join(dir, 'gateway/config/me'), 'utf8')).toBe('mx.a.example\n');
  expect(parse(readFileSync(join(dir, 'keyd/keyd.ini'), 'utf8')).pki).toMatchObject({
    org_ca_key: 'org-ca.key',
    org_ca_cert: '../pki/org-ca.pem',
  });
  // keyd's copy of the org CA key is encrypted under keyd's master key (src/keyd/org-ca-key.ts), and keyd reads it without a warning
  expect(readFileSync(join(dir, 'keyd/org-ca.key'), 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  const warnings: string[] = [];
  const held = orgCaOf(loadKeydConfig(join(dir, 'keyd/keyd.ini')), (l) => warnings.push(l));
  expect(held!.certificate.fingerprint).toBe(parseCertificate(readFileSync(join(orgCa, 'ca.cert.pem'), 'utf8')).fingerprint);
  expect(held!.privateKey.export({ type: 'pkcs8', format: 'der' })).toEqual(
    privateKeyFromPem(readFileSync(join(orgCa, 'ca.key.pem'), 'utf8')).export({ type: 'pkcs8', format: 'der' }),
  );
  expect(warnings).toEqual([]);
  // the operator's tools' file: every key one they read (an unknown one would be refused)
  expect(loadAbuseConfig(join(dir, 'admin/ssmax-abuse.ini'))).toMatchObject({ domain: 'a.example', hasDirectory: true });
  // a second run refuses to overwrite
  const again = await cli(args(dir));
  expect(again.code).toBe(73);
  expect(again.out).toMatch(/exists \(use --force/);
  // --force replaces the files but never keyd's master key (keyd's stored keys are sealed with it)
  const master = readFileSync(join(dir, 'keyd/master.key'));
  // ... and a secret never goes into an existing file: a 0644 keyd.key another reader holds open, a symlink at
  // seal.key.pem, a password file made 0644: each replaced by a new 0600 file; key folders set back to 0700
  rmSync(join(dir, 'keyd/keyd.key'));
  writeFileSync(join(dir, 'keyd/keyd.key'), 'old\n', { mode: 0o644 });
  const reader = openSync(join(dir, 'keyd/keyd.key'), 'r');
  const elsewhere = join(base, 'elsewhere.pem');
  writeFileSync(elsewhere, '', { mode: 0o644 });
  rmSync(join(dir, 'gateway/config/pki/seal.key.pem'));
  symlinkSync(elsewhere, join(dir, 'gateway/config/pki/seal.key.pem'));
  chmodSync(join(dir, 'gateway/config/auth_flat_file.ini'), 0o644);
  chmodSync(join(dir, 'keyd'), 0o755);
  try {
    expect((await cli(args(dir, '--force'))).code).toBe(0);
    const seen = Buffer.alloc(4096);
    expect(seen.subarray(0, readSync(reader, seen, 0, seen.length, 0)).toString()).toBe('old\n');
  } finally {
    closeSync(reader);
  }
  expect(readFileSync(join(dir, 'keyd/keyd.key'), 'utf8')).toMatch(/-----BEGIN PRIVATE KEY-----/);
  expect(readFileSync(elsewhere, 'utf8')).toBe('');
  expect(lstatSync(join(dir, 'gateway/config/pki/seal.key.pem')).isSymbolicLink()).toBe(false);
  for (const f of ['keyd/keyd.key', 'gateway/config/pki/seal.key.pem', 'gateway/config/auth_flat_file.ini', 'publisher/signer.key.pem'])
    expect([f, statSync(join(dir, f)).mode & 0o777]).toEqual([f, 0o600]);
  for (const d of ['keyd', 'publisher', 'admin', 'gateway/config/pki'])
    expect([d, statSync(join(dir, d)).mode & 0o777]).toEqual([d, 0o700]);
  expect(readFileSync(join(dir, 'keyd/master.key'))).toEqual(master);
});

test('remote inspection: an inspector folder, and no inspector key in the gateway', async () => {
  // --dir given relative: the next steps' paths are relative to where setup ran, and the output names that folder
  const dir = relative(process.cwd(), join(base, 'split'));
  expect(isAbsolute(dir)).toBe(false);
  harakaInit(dir);
  const { code, out } = await cli(
    args(
      dir,
      '--inspection',
      'remote',
      '--keyd-listen',
      '0.0.0.0:7443',
      '--keyd-url',
      'https://keyd.a.example:7443',
      '--inspector-url',
      'https://inspect.a.example:7543',
    ),
  );
  expect(code).toBe(0);
  expect(out).toContain(`Next (paths relative to ${process.cwd()}, where ssmax setup ran, as --dir was given):`);
  expect(out).toContain(`ssmax inspector run --config ${dir}/inspector/inspector.ini`);
  const gw = parseGatewayConfig(parse(readFileSync(join(dir, 'gateway/config/ssmax.ini'), 'utf8')), join(dir, 'gateway/config'));
  expect(gw.inspection).toMatchObject({ mode: 'remote', url: 'https://inspect.a.example:7543', servername: 'inspect.a.example' });
  expect(gw.keyd.url).toBe('https://keyd.a.example:7443');
  expect(gw.keyd.inspectorCert).toBeUndefined();
  expect(() => statSync(join(dir, 'gateway/config/pki/inspector.key'))).toThrow();
  expect(parse(readFileSync(join(dir, 'inspector/inspector.ini'), 'utf8')).keyd).toMatchObject({
    url: 'https://keyd.a.example:7443',
    cert: 'inspector.pem',
  });
});

test("a second setup with the same org CA keeps the CA's revocations in the CRL it writes (a higher number replaces the older CRL everywhere)", async () => {
  expect((await cli(['ca', 'revoke', '--ca', orgCa, '--serial', '0badc0de', '--reason', 'keyCompromise'])).code).toBe(0);
  expect((await cli(['ca', 'crl', '--ca', orgCa, '--out', join(orgCa, 'crl.pem'), '--force'])).code).toBe(0);
  const before = parseCrl(readFileSync(join(orgCa, 'crl.pem'), 'utf8'));
  expect([...before.entries.keys()]).toContain('0badc0de');
  const dir = join(base, 'again');
  harakaInit(dir);
  expect((await cli(args(dir))).code).toBe(0);
  for (const file of [join(orgCa, 'crl.pem'), join(dir, 'pki/org-ca.crl.pem')]) {
    const after = parseCrl(readFileSync(file, 'utf8'));
    expect(after.crlNumber).toBeGreaterThan(before.crlNumber!);
    expect([...after.entries.keys()]).toContain('0badc0de');
  }
});

test('setup run again with --force keeps what keyd revoked into its own CRL file (a higher number, revocations the CA folder never saw)', async () => {
  const dir = join(base, 'forced');
  harakaInit(dir);
  expect((await cli(args(dir))).code).toBe(0);
  const keydCrl = join(dir, 'pki/org-ca.crl.pem');
  // keyd revoked a user and renewed into its file (it holds the org CA): the CA folder's crl.pem does not have it
  const authority = {
    certificate: parseCertificate(readFileSync(join(orgCa, 'ca.cert.pem'), 'utf8')),
    privateKey: privateKeyFromPem(readFileSync(join(orgCa, 'ca.key.pem'), 'utf8')),
  };
  const byKeyd = parseCrl(readFileSync(keydCrl, 'utf8'));
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  writeFileSync(
    keydCrl,
    createCrl(authority, {
      entries: [...byKeyd.entries.values(), { serial: 'c0ffee01', revokedAt: now, reason: 'keyCompromise' }],
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + 7 * 86400_000),
      crlNumber: byKeyd.crlNumber! + 5n,
    }).pem,
  );
  expect((await cli(args(dir, '--force'))).code).toBe(0);
  for (const file of [join(orgCa, 'crl.pem'), keydCrl]) {
    const after = parseCrl(readFileSync(file, 'utf8'));
    expect([file, [...after.entries.keys()]]).toEqual([file, expect.arrayContaining(['c0ffee01'])]); // before: dropped, the user valid again
    expect(after.crlNumber).toBeGreaterThan(byKeyd.crlNumber! + 5n);
  }
});

test('an org CA whose key is encrypted (what ssmax ca init-org writes by default): setup uses its passphrase, and ssmax registry is given the passphrase file to sign with it', async () => {
  const encCa = join(base, 'enc-ca');
  const pass = relative(process.cwd(), join(base, 'enc-ca.pass')); // relative: the ini must hold it absolute
  writeFileSync(pass, 'org ca secret\n', { mode: 0o600 });
  expect(
    (await cli(['ca', 'init-org', '--root', root, '--dir', encCa, '--domain', 'e.example', '--org', 'E Corp', '--passphrase-file', pass]))
      .code,
  ).toBe(0);
  expect(readFileSync(join(encCa, 'ca.key.pem'), 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  const dir = join(base, 'enc');
  harakaInit(dir);
  const withoutPass = await cli(['setup', '--domain', 'e.example', '--org-ca', encCa, '--root-crl', rootCrl, '--dir', dir]);
  expect(withoutPass.code).toBe(65);
  expect(withoutPass.out).toMatch(/it is encrypted and no passphrase was given/);
  const r = await cli([
    'setup',
    '--domain',
    'e.example',
    '--org-ca',
    encCa,
    '--root-crl',
    rootCrl,
    '--dir',
    dir,
    '--org-ca-passphrase-file',
    pass,
    '--force',
  ]);
  expect(r.code).toBe(0);
  const registry = loadAbuseConfig(join(dir, 'admin/ssmax-abuse.ini')).registry;
  expect(registry).toMatchObject({ caDir: encCa, caPassphraseFile: resolve(pass) });
  // what ssmax registry does with them (src/cli/registry.ts): the key opens
  const authority = loadSigningAuthority(join(encCa, 'ca.cert.pem'), join(encCa, 'ca.key.pem'), registry.caPassphraseFile);
  expect(authority.certificate.subject).toContain('E Corp');
});

test('a mailbox store off this machine is refused before anything is written, unless --delivery-over-network accepts it', async () => {
  const dir = join(base, 'remote-store');
  harakaInit(dir);
  const refused = await cli(args(dir, '--delivery', '10.0.0.5:24', '--delivery-protocol', 'lmtp'));
  expect(refused.code).toBe(64);
  expect(refused.out).toContain(
    '--delivery 10.0.0.5:24 is not a loopback address: the gateway hands the mailbox store the decrypted copies',
  );
  expect(existsSync(join(dir, 'keyd'))).toBe(false);
  const accepted = await cli(args(dir, '--delivery', '10.0.0.5:24', '--delivery-protocol', 'lmtp', '--delivery-over-network'));
  expect(accepted.code).toBe(0);
  const gw = parseGatewayConfig(parse(readFileSync(join(dir, 'gateway/config/ssmax.ini'), 'utf8')), join(dir, 'gateway/config'));
  expect(gw.delivery).toMatchObject({ host: '10.0.0.5', port: 24, protocol: 'lmtp', plaintextOverNetwork: true });
});

test('setIniKeys: replaces a commented default in its section, adds missing keys and sections', () => {
  const text = '[a]\n;x=1\ny=2\n\n[b]\n;x=3\n';
  expect(setIniKeys(text, 'b', { x: '9' })).toBe('[a]\n;x=1\ny=2\n\n[b]\nx=9\n');
  expect(setIniKeys(text, 'a', { z: '5' })).toBe('[a]\n;x=1\ny=2\nz=5\n\n[b]\n;x=3\n');
  expect(parse(setIniKeys(text, 'c', { k: 'v' })).c).toEqual({ k: 'v' });
});
