/**
 * The abuse tools' file (config/ssmax-abuse.ini) read through the shared ini
 * reader (src/config/ini.ts): every key and section, the directory's
 * sections included, is one a reader takes; anything else is refused, named.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAbuseConfig } from '../../src/abuse/config';
import { ConfigError } from '../../src/config/ini';
import { shippedIni } from '../support/shipped-ini';

const dir = mkdtempSync(join(tmpdir(), 'ssmax-abuse-config-'));
const load = (text: string) => {
  const file = join(dir, 'ssmax-abuse.ini');
  writeFileSync(file, text);
  return loadAbuseConfig(file);
};

test('the shipped file loads; its [directory], [peers] and [hosts] are known sections', () => {
  const c = load(shippedIni('ssmax-abuse.ini'));
  expect(c.hasDirectory).toBe(true);
  expect(c.server).toMatchObject({ host: '127.0.0.1', port: 8025 });
  expect(() =>
    load(`${shippedIni('ssmax-abuse.ini')}\n[peers]\nb.example=https://ssmax.b.example/.well-known/ssmax/bundle\n`),
  ).not.toThrow();
});

test.each([
  [
    ';max_bytes=26214400',
    'max_byte=1000',
    /ssmax-abuse\.ini \[server\] max_byte: is not a known setting, did you mean max_bytes\? \(known: listen, bearer_token_file, max_bytes\)/,
  ],
  [';timeout_ms=5000', 'timeout=5000', /\[keyd\] timeout: is not a known setting \(known: url, servername, ca, cert, key, /],
  [';dns=on', 'dns_on=on', /\[directory\] dns_on: is not a known setting \(known: roots, /],
  [
    '[registry]',
    '[registri]',
    /ssmax-abuse\.ini: unknown section \[registri\], did you mean \[registry\]\? \(known: \[abuse\], \[keyd\], \[submit\], \[server\], \[registry\], \[directory\], /,
  ],
])('%j → %j is refused, named', (from, to, why) => {
  const shipped = shippedIni('ssmax-abuse.ini');
  expect(shipped).toContain(from);
  expect(() => load(shipped.replace(from, to))).toThrow(ConfigError);
  expect(() => load(shipped.replace(from, to))).toThrow(why);
});

test('a value outside any section is refused, named', () => {
  expect(() => load(`domain=a.example\n${shippedIni('ssmax-abuse.ini')}`)).toThrow(/ssmax-abuse\.ini: "domain" is outside any section/);
});

test('[submit]: cleartext (security none) only to a loopback address; off loopback the default is STARTTLS on every port but 465 (TLS)', () => {
  const withSubmit = (lines: string) => load(`${shippedIni('ssmax-abuse.ini')}\n[submit]\n${lines}\n`);
  expect(withSubmit('host=mx.a.example\nport=25').submit).toMatchObject({ host: 'mx.a.example', port: 25, security: 'starttls' });
  expect(withSubmit('host=127.0.0.1\nport=2525').submit).toMatchObject({ security: 'none' });
  expect(withSubmit('host=mx.a.example\nport=465').submit).toMatchObject({ security: 'tls' });
  for (const host of ['mx.a.example', 'localhost', '10.0.0.5'])
    expect(() => withSubmit(`host=${host}\nport=25\nsecurity=none`)).toThrow(
      `ssmax-abuse.ini [submit] security: security "none" to ${host}, which is not a loopback address: the password and the message would cross the network in cleartext`,
    );
  expect(withSubmit('host=::1\nport=25\nsecurity=none').submit).toMatchObject({ host: '::1', security: 'none' });
});
