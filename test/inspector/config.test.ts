/**
 * config/ssmax-inspector.ini and the [inspection] section of config/ssmax.ini
 * write out every default with its built-in value, and parse; bad values are
 * refused naming the key.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { main } from '../../src/cli/main';
import { GATEWAY_DEFAULTS, GatewayConfigError, parseGatewayConfig } from '../../src/gateway/config';
import { INSPECTOR_DEFAULTS, loadInspectorConfig } from '../../src/inspector/config';

const config = (name: string) => readFileSync(join(__dirname, '..', '..', 'config', name), 'utf8');
const commentedIn = (text: string) => Object.fromEntries([...text.matchAll(/^;([a-z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));

test('config/ssmax-inspector.ini writes out every default with its built-in value, and parses', () => {
  const shipped = config('ssmax-inspector.ini');
  const commented = commentedIn(shipped);
  for (const [k, v] of Object.entries(INSPECTOR_DEFAULTS)) expect({ key: k, value: commented[k] }).toEqual({ key: k, value: String(v) });
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-icfg-'));
  writeFileSync(join(dir, 'inspector.ini'), shipped);
  const c = loadInspectorConfig(join(dir, 'inspector.ini'));
  expect([c.domain, c.host, c.port]).toEqual(['a.example', '127.0.0.1', 7543]);
  expect(c.stateDir).toBe(join(dir, INSPECTOR_DEFAULTS.state_dir));
  expect(c.keyd).toMatchObject({
    url: 'https://127.0.0.1:7443',
    cert: join(dir, 'pki', 'inspector.pem'),
    timeoutMs: INSPECTOR_DEFAULTS.timeout_ms,
  });
  expect(c.tls.clientCas).toEqual([join(dir, 'pki', 'org-ca.pem'), join(dir, 'pki', 'root.pem')]);
  expect(c.inspection).toEqual({ inspect: join(dir, INSPECTOR_DEFAULTS.inspect), dlpRules: join(dir, INSPECTOR_DEFAULTS.dlp_rules) });
  expect(c.limits).toEqual({
    maxBodyBytes: INSPECTOR_DEFAULTS.max_body_bytes,
    maxInFlight: INSPECTOR_DEFAULTS.max_in_flight,
    requestTimeoutMs: INSPECTOR_DEFAULTS.request_timeout_ms,
    headersTimeoutMs: INSPECTOR_DEFAULTS.headers_timeout_ms,
    maxHeaderBytes: INSPECTOR_DEFAULTS.max_header_bytes,
    maxHeaders: INSPECTOR_DEFAULTS.max_headers,
    maxConnections: INSPECTOR_DEFAULTS.max_connections,
  });
  expect(INSPECTOR_DEFAULTS.max_connections).toBe(1000);
});

test.each([
  ['[inspector]\ndomain=a.example\n', /\[keyd\] url: is required/],
  ['[inspector]\ndomain=not a domain\n', /domain: "not a domain" is not a domain name/],
  ['[inspector]\ndomain=a.example\nlisten=nope\n', /\[inspector\] listen: must be host:port/],
  ['[inspector]\ndomain=a.example\n[keyd]\nurl=http://x:1\n', /\[keyd\] url: must be https/],
  [
    '[inspector]\ndomain=a.example\n[keyd]\nurl=https://x:1\nca=a\ncert=b\nkey=c\n[tls]\ncert=d\nkey=e\nclient_ca=f\n[pki]\nroots=g\n[limits]\nmax_body_bytes=10\n',
    /inspector\.ini \[limits\] max_body_bytes: must be a whole number from 1024 to 1073741824, got '10'/,
  ],
])('a bad inspector config is refused naming the key: %#', (text, message) => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-icfg-'));
  writeFileSync(join(dir, 'inspector.ini'), text);
  expect(() => loadInspectorConfig(join(dir, 'inspector.ini'))).toThrow(message);
});

const gatewayIni = (extra: string) =>
  parse(
    `[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=ca.pem\ncert=gw.pem\nkey=gw.key\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n${extra}`,
  ) as Record<string, Record<string, unknown>>;

test('ssmax.ini [inspection]: the shipped defaults are the built-in ones (inline); remote mode reads its keys', () => {
  const shipped = config('ssmax.ini');
  // the section's own header lines (a comment elsewhere may name "[peers]")
  const section = shipped.slice(shipped.search(/^\[inspection\]$/m), shipped.search(/^\[peers\]$/m));
  expect(section.startsWith('[inspection]')).toBe(true);
  expect(commentedIn(section)).toEqual({
    mode: GATEWAY_DEFAULTS.inspection_mode,
    inspector_url: 'https://127.0.0.1:7543',
    inspector_servername: 'inspect.a.example',
    inspector_timeout_ms: String(GATEWAY_DEFAULTS.inspector_timeout_ms),
  });
  expect(parseGatewayConfig(parse(shipped) as Record<string, Record<string, unknown>>, '/etc/haraka/config').inspection).toEqual({
    mode: 'inline',
  });
  expect(parseGatewayConfig(gatewayIni('[inspection]\nmode=remote\ninspector_url=https://127.0.0.1:7543\n'), '/c').inspection).toEqual({
    mode: 'remote',
    url: 'https://127.0.0.1:7543',
    servername: 'inspect.a.example',
    ca: ['/c/ca.pem'],
    timeoutMs: GATEWAY_DEFAULTS.inspector_timeout_ms,
  });
  expect(
    parseGatewayConfig(
      gatewayIni(
        '[inspection]\nmode=remote\ninspector_url=https://i:1\ninspector_servername=x.a.example\ninspector_ca=i.pem\ninspector_timeout_ms=500\n',
      ),
      '/c',
    ).inspection,
  ).toEqual({ mode: 'remote', url: 'https://i:1', servername: 'x.a.example', ca: ['/c/i.pem'], timeoutMs: 500 });
});

test.each([
  ['[inspection]\nmode=sideways\n', /\[inspection\] mode: must be inline or remote/],
  ['[inspection]\nmode=remote\n', /\[inspection\] inspector_url: must be https:\/\/host:port when mode=remote/],
  [
    '[inspection]\nmode=remote\ninspector_url=https://i:1\ninspector_timeout_ms=-1\n',
    /ssmax\.ini \[inspection\] inspector_timeout_ms: must be a whole number from 1 to 3600000, got '-1'/,
  ],
])('a bad [inspection] is refused naming the key: %#', (extra, message) => {
  expect(() => parseGatewayConfig(gatewayIni(extra), '/c')).toThrow(GatewayConfigError);
  expect(() => parseGatewayConfig(gatewayIni(extra), '/c')).toThrow(message);
});

test('ssmax inspector: --help on every command; usage errors 64; an unreadable config 65', async () => {
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  expect(await main(['--help'], io)).toBe(0);
  expect(out.join('\n')).toMatch(/inspector\s+Inspection as a separate process/);
  expect(await main(['inspector', '--help'], io)).toBe(0);
  expect(await main(['inspector', 'run', '--help'], io)).toBe(0);
  expect(out.join('\n')).toMatch(/Usage: ssmax inspector run --config FILE/);
  expect(await main(['inspector'], io)).toBe(64);
  expect(await main(['inspector', 'run'], io)).toBe(64);
  expect(await main(['inspector', 'nope'], io)).toBe(64);
  expect(await main(['inspector', 'run', '--config', '/nonexistent/inspector.ini'], io)).toBe(66);
  expect(out.join('\n')).toMatch(/Cannot read config "\/nonexistent\/inspector.ini": no such file/);
});
