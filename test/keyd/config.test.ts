import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groups } from '../../src/crypto';
import { KEYD_DEFAULTS, loadKeydConfig } from '../../src/keyd/config';
import { cryptoThreadsFor } from '../../src/keyd/daemon';

const shipped = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-keyd.ini'), 'utf8');

test('config/ssmax-keyd.ini writes out every default with its built-in value, and parses', () => {
  const commented = Object.fromEntries([...shipped.matchAll(/^;([a-z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
  for (const [k, v] of Object.entries(KEYD_DEFAULTS)) expect({ key: k, value: commented[k] }).toEqual({ key: k, value: String(v) });
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-kcfg-'));
  writeFileSync(join(dir, 'keyd.ini'), shipped);
  const c = loadKeydConfig(join(dir, 'keyd.ini'));
  expect([c.domain, c.host, c.port]).toEqual(['a.example', '127.0.0.1', 7443]);
  expect(c.keys.graceMs).toBe(KEYD_DEFAULTS.grace_days * 86400000);
});

test.each([
  ['[keyd]\ndomain=a.example\n', /\[keyd\] data_dir: is required/],
  ['[keyd]\ndomain=not a domain\ndata_dir=d\nmaster_key=m\n', /domain: "not a domain" is not a domain name/],
  [
    '[keyd]\ndomain=a.example\ndata_dir=d\nmaster_key=m\n[tls]\ncert=c\nkey=k\nclient_ca=ca\n[pki]\nroots=r\n',
    /\[pki\] org_ca: is required/,
  ],
  [
    '[keyd]\ndomain=a.example\ndata_dir=d\nmaster_key=m\n[tls]\ncert=c\nkey=k\nclient_ca=ca\n[pki]\norg_ca=o\nroots=r\n[keys]\nvalidity_days=10\nrenew_before_days=20\n',
    /\[keys\] renew_before_days: must be less than validity_days/,
  ],
  [
    '[keyd]\ndomain=a.example\ndata_dir=d\nmaster_key=m\n[tls]\ncert=c\nkey=k\nclient_ca=ca\n[pki]\norg_ca=o\nroots=r\n[limits]\ncrypto_threads=two\n',
    /\[limits\] crypto_threads: must be "auto" or a whole number from 0 to 64, got 'two'/,
  ],
  [
    '[keyd]\ndomain=a.example\ndata_dir=d\nmaster_key=m\n[tls]\ncert=c\nkey=k\nclient_ca=ca\n[pki]\norg_ca=o\nroots=r\n[limits]\ncrypto_threads=1.5\n',
    /crypto_threads: must be "auto" or a whole number/,
  ],
])('a bad keyd config is refused naming the key: %#', (text, message) => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-kcfg-'));
  writeFileSync(join(dir, 'keyd.ini'), text);
  expect(() => loadKeydConfig(join(dir, 'keyd.ini'))).toThrow(message);
});

test('crypto_threads=auto: one thread, except with the native backend on one core; a number is taken as given', () => {
  if (groups.native) {
    expect(cryptoThreadsFor('auto', groups.native, 2)).toBe(1);
    expect(cryptoThreadsFor('auto', groups.native, 1)).toBe(0);
  }
  expect(cryptoThreadsFor('auto', groups.libsecp256k1, 1)).toBe(1);
  expect(cryptoThreadsFor('auto', groups.libsecp256k1, 8)).toBe(1);
  expect(cryptoThreadsFor(2, groups.libsecp256k1)).toBe(2);
  expect(cryptoThreadsFor(0, groups.libsecp256k1)).toBe(0);
});
