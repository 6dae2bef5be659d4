/**
 * config/ssmax-console.ini as shipped (docs/console.md): its commented
 * defaults are the code's (making them active changes nothing the console
 * reads), and the loader names the key of each mistake.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONSOLE_DEFAULTS, loadConsoleConfig } from '../../src/console/config';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { createRootCa } from '../../src/pki/issue';
import { commentedSettings, shippedIni, uncommentDefaults } from '../support/shipped-ini';

const dir = mkdtempSync(join(tmpdir(), 'ssmax-console-config-'));
mkdirSync(join(dir, 'pki'));
for (const f of [
  'console.pem',
  'console.key',
  'org-ca.pem',
  'root.pem',
  'org-ca.crl.pem',
  'root.crl.pem',
  'inspector.pem',
  'inspector.key',
])
  writeFileSync(join(dir, 'pki', f), `${f}\n`);
const load = (text: string) => {
  const file = join(dir, 'console.ini');
  writeFileSync(file, text);
  return loadConsoleConfig(file);
};
// commented examples (values to fill in), not defaults
const EXAMPLES = ['keyd.servername', 'ops.gateway', 'ops.keyd', 'ops.publisher', 'ops.inspector', 'quarantine.smtp'];

test('making every commented default of the shipped file active changes nothing the console reads', () => {
  const shipped = shippedIni('ssmax-console.ini');
  const commented = commentedSettings(shipped);
  for (const e of EXAMPLES) expect({ example: e, inFile: commented.has(e) }).toEqual({ example: e, inFile: true });
  const active = uncommentDefaults(shipped, EXAMPLES);
  expect(commented.size - EXAMPLES.length).toBeGreaterThan(5);
  expect(load(active)).toEqual(load(shipped));
  const c = load(shipped);
  expect({ host: c.host, port: c.port, sessionMinutes: c.sessionMinutes, timeoutMs: c.keyd.timeoutMs }).toEqual({
    host: '127.0.0.1',
    port: 8443,
    sessionMinutes: CONSOLE_DEFAULTS.sessionMinutes,
    timeoutMs: CONSOLE_DEFAULTS.keydTimeoutMs,
  });
  expect(c.quarantine).toBeUndefined(); // no quarantine actions, no content, unless configured
  expect(c.ops).toEqual({});
});

test('each mistake is named by its key', () => {
  const shipped = shippedIni('ssmax-console.ini');
  const wrong = (from: string, to: string) => () => load(shipped.replace(from, to));
  expect(wrong(';session_minutes=30', 'session_minutes=0')).toThrow(
    /console\.ini \[console\] session_minutes: must be a whole number from 1 to 1440, got '0'/,
  );
  expect(wrong('domain=a.example', 'domain=')).toThrow(/\[console\] domain: is required/);
  expect(wrong('cert=pki/console.pem', 'cert=pki/missing.pem')).toThrow(
    /console\.ini \[tls\] cert: cannot read "[^"]*\/pki\/missing\.pem": no such file \(ENOENT\)/,
  );
  expect(wrong(';dir=', 'dir=q')).toThrow(/\[quarantine\] smtp: is required/);
  expect(wrong(';dir=\n', 'dir=q\nsmtp=127.0.0.1:25\nuser=relay\n')).toThrow(
    /\[quarantine\] user: must be given together with password_file/,
  );
  expect(wrong(';dir=\n', 'dir=q\nsmtp=127.0.0.1:25\ninspector_cert=pki/inspector.pem\n')).toThrow(
    /\[quarantine\] inspector_cert: must be given together with inspector_key/,
  );
  expect(wrong(';gateway=127.0.0.1:9101', 'gateway=localhost')).toThrow(/\[ops\] gateway: must be host:port, got 'localhost'/);
});

test('a key or section the console does not read is refused, named (a misspelt key is not left at its default)', () => {
  const shipped = shippedIni('ssmax-console.ini');
  const wrong = (from: string, to: string) => () => load(shipped.replace(from, to));
  expect(wrong(';session_minutes=30', 'session_minuts=5')).toThrow(
    /console\.ini \[console\] session_minuts: is not a known setting, did you mean session_minutes\? \(known: domain, listen, session_minutes, handshake_timeout_ms, max_connections\)/,
  );
  expect(wrong(';dir=', 'directory=q\n;dir=')).toThrow(/\[quarantine\] directory: is not a known setting \(known: dir, smtp, user, /);
  expect(() => load(`${shipped}\n[quarantaine]\ndir=q\n`)).toThrow(
    /console\.ini: unknown section \[quarantaine\], did you mean \[quarantine\]\? \(known: \[console\], \[tls\], /,
  );
  expect(() => load(`listen=127.0.0.1:1\n${shipped}`)).toThrow(/console\.ini: "listen" is outside any section/);
  expect(() => load(shipped)).not.toThrow();
});

test('[quarantine] release_lease_seconds: 600 s unless set (1 to 86400), in the release settings the console uses', () => {
  const shipped = shippedIni('ssmax-console.ini');
  const withQ = (extra: string) => load(shipped.replace(';dir=\n', `dir=q\nsmtp=127.0.0.1:25\n${extra}`));
  expect(withQ('').quarantine?.releaseLeaseMs).toBe(600_000);
  expect(withQ('').quarantine?.releaseLeaseMs).toBe(CONSOLE_DEFAULTS.releaseLeaseSeconds * 1000);
  expect(withQ('release_lease_seconds=90\n').quarantine?.releaseLeaseMs).toBe(90_000);
  expect(() => withQ('release_lease_seconds=0\n')).toThrow(
    /\[quarantine\] release_lease_seconds: must be a whole number from 1 to 86400, got '0'/,
  );
});

test('[quarantine] smtp_ca and smtp_servername: the CAs and the name a release to a gateway off loopback verifies STARTTLS with', () => {
  const shipped = shippedIni('ssmax-console.ini');
  const withQ = (extra: string) => load(shipped.replace(';dir=\n', `dir=q\nsmtp=mx.a.example:25\n${extra}`));
  expect(withQ('').quarantine).not.toHaveProperty('smtpCa');
  const pem = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUVx\n-----END CERTIFICATE-----\n';
  writeFileSync(join(dir, 'pki', 'smtp-ca.pem'), pem);
  expect(() => withQ('smtp_ca=pki/smtp-ca.pem\n')).toThrow(/\[quarantine\] smtp_ca: .*is not a certificate/);
  expect(() => withQ('smtp_ca=pki/root.pem\n')).toThrow(/\[quarantine\] smtp_ca: .*holds no PEM certificate/);
  const now = Math.floor(Date.now() / 1000) * 1000;
  const ca = createRootCa({ privateKey: generateP256KeyPair().privateKey, notBefore: new Date(now), notAfter: new Date(now + 86_400_000) });
  writeFileSync(join(dir, 'pki', 'smtp-ca.pem'), ca.certificate.pem);
  expect(withQ('smtp_ca=pki/smtp-ca.pem\nsmtp_servername=mx.a.example\n').quarantine).toMatchObject({
    smtpHost: 'mx.a.example',
    smtpCa: ca.certificate.pem,
    smtpServername: 'mx.a.example',
  });
});
