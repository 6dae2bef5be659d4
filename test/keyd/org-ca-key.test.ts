/**
 * keyd's copy of the org CA key ([pki] org_ca_key, src/keyd/org-ca-key.ts) is
 * never stored in the clear: the demo's provisioning (as `ssmax setup`, see
 * test/cli/setup.test.ts) writes it encrypted under a passphrase derived from
 * keyd's master key; keyd reads it with that master key, refuses it with
 * another one, still reads an unencrypted file with a warning, and reads one
 * under [pki] org_ca_passphrase_file as before. `ssmax keyd wrap-org-ca-key`
 * encrypts an unencrypted file in place.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { CliIo } from '../../src/cli/command';
import { main } from '../../src/cli/main';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';
import { loadKeydConfig } from '../../src/keyd/config';
import { KeydError } from '../../src/keyd/errors';
import { createMasterKeyFile } from '../../src/keyd/master-key';
import { orgCaOf } from '../../src/keyd/renewal';
import { createRootCa } from '../../src/pki/issue';
import { privateKeyToPem } from '../../src/pki/keys';

const DAY = 86400000;
let base: string;
let fx: OrgFixture;
let keyFile: string;

const der = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'der' });

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'ssmax-orgcakey-'));
  const now = Date.now();
  const root = createRootCa({
    notBefore: new Date(now - 30 * DAY),
    notAfter: new Date(now + 3650 * DAY),
    privateKey: generateP256KeyPair().privateKey,
    commonName: 'Test Root',
  });
  fx = provisionOrg(join(base, 'pki'), { root });
  keyFile = join(fx.dir, 'org-ca.key');
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

function capture(): CliIo & { text: () => string; errors: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return { out: (t) => out.push(t), err: (t) => err.push(t), text: () => out.join('\n'), errors: () => err.join('\n') };
}

test('written encrypted (PKCS#8) under the master key, mode 0600; keyd reads it with that key and no warning', () => {
  const pem = readFileSync(keyFile, 'utf8');
  expect(pem).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  expect(pem).not.toContain('BEGIN PRIVATE KEY');
  expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  const warnings: string[] = [];
  const ca = orgCaOf(loadKeydConfig(fx.configFile), (l) => warnings.push(l));
  expect(der(ca!.privateKey)).toEqual(der(fx.orgCa.privateKey));
  expect(ca!.certificate.fingerprint).toBe(fx.orgCa.certificate.fingerprint);
  expect(warnings).toEqual([]);
});

test('another master key cannot read it: a config error naming the file and the master key', () => {
  unlinkSync(join(fx.dir, 'master.key'));
  createMasterKeyFile(join(fx.dir, 'master.key'));
  let err: unknown;
  try {
    orgCaOf(loadKeydConfig(fx.configFile));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(KeydError);
  expect((err as KeydError).code).toBe('config');
  expect((err as Error).message).toBe(
    `Cannot read the org CA key "${keyFile}" ([pki] org_ca_key) with the master key "${join(fx.dir, 'master.key')}": Cannot read private key: wrong passphrase or damaged file`,
  );
});

test('an unencrypted file (earlier versions) is still read, with a warning naming it and the way to wrap it', () => {
  writeFileSync(keyFile, privateKeyToPem(fx.orgCa.privateKey), { mode: 0o600 });
  const warnings: string[] = [];
  const ca = orgCaOf(loadKeydConfig(fx.configFile), (l) => warnings.push(l));
  expect(der(ca!.privateKey)).toEqual(der(fx.orgCa.privateKey));
  expect(warnings).toEqual([
    `keyd: WARNING the org CA key "${keyFile}" ([pki] org_ca_key) is stored unencrypted; wrap it under the master key with \`ssmax keyd wrap-org-ca-key --config FILE\` (docs/deploy.md)`,
  ]);
});

test('[pki] org_ca_passphrase_file: a key encrypted under its passphrase is read as before', () => {
  writeFileSync(keyFile, privateKeyToPem(fx.orgCa.privateKey, 'operator passphrase'), { mode: 0o600 });
  writeFileSync(join(fx.dir, 'ca.pass'), 'operator passphrase\n', { mode: 0o600 });
  const ini = readFileSync(fx.configFile, 'utf8').replace('org_ca_key=org-ca.key', 'org_ca_key=org-ca.key\norg_ca_passphrase_file=ca.pass');
  writeFileSync(fx.configFile, ini);
  const warnings: string[] = [];
  expect(der(orgCaOf(loadKeydConfig(fx.configFile), (l) => warnings.push(l))!.privateKey)).toEqual(der(fx.orgCa.privateKey));
  expect(warnings).toEqual([]);
  // the master key is not its passphrase
  writeFileSync(join(fx.dir, 'ca.pass'), 'another\n');
  expect(() => orgCaOf(loadKeydConfig(fx.configFile))).toThrow(
    /with the passphrase in ".*ca\.pass": Cannot read private key: wrong passphrase/,
  );
});

test('ssmax keyd wrap-org-ca-key encrypts an unencrypted key in place (0600), then leaves it alone', async () => {
  const help = capture();
  expect(await main(['keyd', 'wrap-org-ca-key', '--help'], help)).toBe(0);
  expect(help.text()).toMatch(/^Usage: ssmax keyd wrap-org-ca-key --config FILE/);

  writeFileSync(keyFile, privateKeyToPem(fx.orgCa.privateKey), { mode: 0o644 });
  const io = capture();
  expect(await main(['keyd', 'wrap-org-ca-key', '--config', fx.configFile], io)).toBe(0);
  expect(io.text()).toBe(`${keyFile}: encrypted under the master key "${join(fx.dir, 'master.key')}"`);
  expect(readFileSync(keyFile, 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  const warnings: string[] = [];
  expect(der(orgCaOf(loadKeydConfig(fx.configFile), (l) => warnings.push(l))!.privateKey)).toEqual(der(fx.orgCa.privateKey));
  expect(warnings).toEqual([]);

  const before = readFileSync(keyFile, 'utf8');
  const again = capture();
  expect(await main(['keyd', 'wrap-org-ca-key', '--config', fx.configFile], again)).toBe(0);
  expect(again.text()).toBe(`${keyFile}: already encrypted under the master key; left as it is`);
  expect(readFileSync(keyFile, 'utf8')).toBe(before);

  const none = join(base, 'none.ini');
  writeFileSync(none, readFileSync(fx.configFile, 'utf8').replace(/^org_ca_key=.*$/m, ''));
  const refused = capture();
  expect(await main(['keyd', 'wrap-org-ca-key', '--config', none], refused)).toBe(78);
  expect(refused.errors()).toMatch(/\[pki\] org_ca_key is not set/);
});
