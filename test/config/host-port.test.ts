/**
 * The one host:port reader (src/config/host-port.ts) and the places that use
 * it: IniReader.hostPort (every service's listen address, the abuse tool's
 * [server] listen), [ops] listen, the console's addresses, `ssmax setup`'s
 * options and `--smtp` of the release commands. A name or IPv4 address as
 * written; an IPv6 address in brackets, given back without them; an IPv6
 * address without brackets refused with a text that says to bracket it.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAbuseConfig } from '../../src/abuse/config';
import { main } from '../../src/cli/main';
import { smtpAddress } from '../../src/cli/reinject';
import { HostPortError, formatHostPort, parseHostPort } from '../../src/config/host-port';
import { ConfigError, IniReader, defineSettings, parseIni } from '../../src/config/ini';
import { loadConsoleConfig } from '../../src/console/config';
import { parseInspectionConfig } from '../../src/inspect/config';
import { parseOpsListen } from '../../src/ops/server';
import { shippedIni } from '../support/shipped-ini';

test.each([
  ['127.0.0.1:25', '127.0.0.1', 25],
  [' mx.a.example:2525 ', 'mx.a.example', 2525],
  ['localhost:0', 'localhost', 0],
  ['a-b.example:65535', 'a-b.example', 65535],
  ['[::1]:2525', '::1', 2525],
  ['[::]:25', '::', 25],
  ['[2001:db8::1]:443', '2001:db8::1', 443],
  ['[::ffff:127.0.0.1]:9522', '::ffff:127.0.0.1', 9522],
  ['[fe80::1%eth0]:25', 'fe80::1%eth0', 25],
])('%j is host %j, port %j', (value, host, port) => {
  expect(parseHostPort(value)).toEqual({ host, port });
});

test.each([
  ['::1:25', /IPv6 address goes in brackets, as \[::1\]:25, got '::1:25'/],
  ['2001:db8::1:443', /IPv6 address goes in brackets/],
  ['[::1]', /a port after the brackets/],
  ['[::1]25', /a port after the brackets/],
  ['[::1:25', /IPv6 address in brackets/],
  ['[127.0.0.1]:25', /IPv6 address in brackets/],
  ['[mx.a.example]:25', /IPv6 address in brackets/],
  ['mx.a.example', /^must be host:port, got 'mx.a.example'$/],
  [':25', /^must be host:port, got ':25'$/],
  ['a host:25', /^must be host:port, got 'a host:25'$/],
  ['user@mx.a.example:25', /^must be host:port/],
  ['127.0.0.1:', /port from 0 to 65535/],
  ['127.0.0.1:65536', /port from 0 to 65535, got '127.0.0.1:65536'/],
  ['127.0.0.1:123456', /port from 0 to 65535/],
  ['127.0.0.1:-1', /port from 0 to 65535/],
  ['127.0.0.1:2x', /port from 0 to 65535/],
  ['[::1]:99999', /port from 0 to 65535/],
])('%j is refused, saying why', (value, why) => {
  expect(() => parseHostPort(value)).toThrow(HostPortError);
  expect(() => parseHostPort(value)).toThrow(why);
});

test('a lowest port: 0 (any free port) is refused where a port must be given', () => {
  expect(parseHostPort('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
  expect(() => parseHostPort('127.0.0.1:0', 1)).toThrow(/port from 1 to 65535/);
});

test('hostile input: a long value is refused at once, in time linear in its length', () => {
  const colons = ':'.repeat(200000);
  const started = process.hrtime.bigint();
  expect(() => parseHostPort(`${colons}1`)).toThrow(/300 characters|200001 characters/);
  expect(() => parseHostPort(`[${colons}`)).toThrow(HostPortError);
  expect(() => parseHostPort(`${'a'.repeat(290)}:${'1'.repeat(8)}`)).toThrow(/port from 0/);
  expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(200);
});

test('formatHostPort writes an IPv6 address back in brackets', () => {
  expect(formatHostPort({ host: '::1', port: 25 })).toBe('[::1]:25');
  expect(formatHostPort({ host: 'mx.a.example', port: 25 })).toBe('mx.a.example:25');
  for (const v of ['[::1]:2525', '127.0.0.1:25', 'mx.a.example:587']) expect(formatHostPort(parseHostPort(v))).toBe(v);
});

test('IniReader.hostPort (every listen address): brackets removed; the error names file, section and key', () => {
  const S = defineSettings({ 'svc.listen': { type: 'str' } });
  const read = (v: string) => new IniReader(S, parseIni(`[svc]\nlisten=${v}\n`), 'svc.ini', '/').hostPort('svc.listen');
  expect(read('[::1]:2525')).toEqual({ host: '::1', port: 2525 });
  expect(read('127.0.0.1:7443')).toEqual({ host: '127.0.0.1', port: 7443 });
  expect(read('keyd.a.example:7443')).toEqual({ host: 'keyd.a.example', port: 7443 });
  expect(() => read('::1:2525')).toThrow(ConfigError);
  expect(() => read('::1:2525')).toThrow(
    "svc.ini [svc] listen: must be host:port; an IPv6 address goes in brackets, as [::1]:25, got '::1:2525'",
  );
});

test('[ops] listen: the same reader, its error naming the file', () => {
  expect(parseOpsListen('[::1]:9521', 'ssmax.ini')).toEqual({ host: '::1', port: 9521 });
  expect(() => parseOpsListen('::1:9521', 'ssmax.ini')).toThrow(
    "ssmax.ini: [ops] listen must be host:port; an IPv6 address goes in brackets, as [::1]:25, got '::1:9521' (or empty: no listener)",
  );
});

test("the console's listen, ops and quarantine addresses: brackets removed (and put back in the ops URLs)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-host-port-'));
  mkdirSync(join(dir, 'pki'));
  for (const f of ['console.pem', 'console.key', 'org-ca.pem', 'root.pem', 'org-ca.crl.pem', 'root.crl.pem'])
    writeFileSync(join(dir, 'pki', f), `${f}\n`);
  const load = (text: string) => {
    writeFileSync(join(dir, 'console.ini'), text);
    return loadConsoleConfig(join(dir, 'console.ini'));
  };
  const shipped = shippedIni('ssmax-console.ini');
  const c = load(
    shipped
      .replace(';listen=127.0.0.1:8443', 'listen=[::1]:8443')
      .replace(';gateway=127.0.0.1:9101', 'gateway=[::1]:9101')
      .replace(';keyd=', 'keyd=ops.a.example:9102\n;keyd=')
      .replace(';dir=\n', 'dir=q\nsmtp=[2001:db8::25]:2525\n'),
  );
  expect({ host: c.host, port: c.port }).toEqual({ host: '::1', port: 8443 });
  expect(c.ops).toEqual({ gateway: 'http://[::1]:9101', keyd: 'http://ops.a.example:9102' });
  expect(c.quarantine).toMatchObject({ smtpHost: '2001:db8::25', smtpPort: 2525 });
  expect(() => load(shipped.replace(';listen=127.0.0.1:8443', 'listen=::1:8443'))).toThrow(
    /console\.ini \[console\] listen: must be host:port; an IPv6 address goes in brackets/,
  );
  expect(() => load(shipped.replace(';dir=\n', 'dir=q\nsmtp=[::1]:0\n'))).toThrow(
    /\[quarantine\] smtp: must be host:port with a port from 1 to 65535/,
  );
});

test('--smtp of the release commands: brackets removed; a malformed value is a usage error saying why', async () => {
  expect(smtpAddress('[::1]:2525')).toEqual({ host: '::1', port: 2525 });
  expect(smtpAddress('127.0.0.1:25')).toEqual({ host: '127.0.0.1', port: 25 });
  expect(smtpAddress(undefined)).toBeUndefined();
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  const state = mkdtempSync(join(tmpdir(), 'ssmax-host-port-q-'));
  expect(await main(['quarantine', 'release', 'q-x-000000000000', '--state', state, '--smtp', '::1:25'], io)).toBe(64);
  expect(out.join('\n')).toMatch(/--smtp must be host:port; an IPv6 address goes in brackets, as \[::1\]:25, got '::1:25'/);
});

test("`ssmax setup`'s host:port options: the same reader, the error naming the option", async () => {
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-host-port-setup-'));
  const args = [
    'setup',
    '--domain',
    'a.example',
    '--org-ca',
    join(dir, 'ca'),
    '--root-crl',
    join(dir, 'root.crl'),
    '--dir',
    join(dir, 'org'),
  ];
  const code = await main([...args, '--keyd-listen', '::1:7443'], io);
  expect(code).toBe(64);
  expect(out.join('\n')).toMatch(/--keyd-listen must be host:port; an IPv6 address goes in brackets, as \[::1\]:25, got '::1:7443'/);
});

test("the abuse endpoint's [server] listen and the antivirus's [av] clamd: the same reader", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-host-port-abuse-'));
  const file = join(dir, 'ssmax-abuse.ini');
  writeFileSync(file, '[server]\nlisten=[::1]:8025\n');
  expect(loadAbuseConfig(file).server).toMatchObject({ host: '::1', port: 8025 });
  writeFileSync(file, '[server]\nlisten=::1:8025\n');
  expect(() => loadAbuseConfig(file)).toThrow(/ssmax-abuse\.ini \[server\] listen: must be host:port; an IPv6 address goes in brackets/);

  // (clamd's settings not the point here: accepted unchecked)
  const av = (clamd: string) => () =>
    parseInspectionConfig(parseIni(`[av]\nenabled=true\nclamd=${clamd}\nallow_plaintext_on_disk=yes\n`), {}, dir, dir);
  expect(av('[::1]:3310')).not.toThrow();
  expect(av('/run/clamav/clamd.ctl')).not.toThrow();
  expect(av('::1:3310')).toThrow(/ssmax-inspect\.ini \[av\] clamd: must be host:port; an IPv6 address goes in brackets/);
  expect(av('127.0.0.1:0')).toThrow(/\[av\] clamd: must be host:port with a port from 1 to 65535/);
});
