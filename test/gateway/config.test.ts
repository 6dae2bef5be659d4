import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'ini';
import { GatewayConfigError, parseGatewayConfig, reloadGatewayConfig } from '../../src/gateway/config';
import { TrustedRelays } from '../../src/gateway/trusted-relays';

const shipped = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax.ini'), 'utf8');

// Every commented default of the shipped file against the code's declared defaults: test/config/commented-defaults.test.ts.
test('the shipped config/ssmax.ini parses as written (its required settings, every other one absent)', () => {
  const c = parseGatewayConfig(parse(shipped) as Record<string, Record<string, unknown>>, '/etc/haraka/config');
  expect([c.domain, c.keyd.url, c.keyd.cert, c.delivery.host, c.delivery.port]).toEqual([
    'a.example',
    'https://127.0.0.1:7443',
    '/etc/haraka/config/pki/gateway.pem',
    '127.0.0.1',
    2525,
  ]);
  expect([
    c.hookTimeoutMs,
    c.tcpNoDelay,
    c.policy.default,
    c.delivery.protocol,
    c.delivery.deliveryId,
    c.trustedRelays,
    c.trustedRelayLogins,
  ]).toEqual([25000, true, 'opportunistic', 'smtp', false, [], []]);
  expect(c.chain).toEqual({ maxSealAgeMs: 518400000, resealers: [] });
});

test('[chain] max_seal_age_seconds may not outlast the record of delivered messages (7 days)', () => {
  const base =
    '[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\n';
  expect(
    parseGatewayConfig(
      parse(`${base}[chain]\nmax_seal_age_seconds=604800\nresealers=Lists.C.example\n`) as Record<string, Record<string, unknown>>,
      '/x',
    ).chain,
  ).toEqual({ maxSealAgeMs: 604800000, resealers: ['lists.c.example'] });
  expect(() =>
    parseGatewayConfig(parse(`${base}[chain]\nmax_seal_age_seconds=604801\n`) as Record<string, Record<string, unknown>>, '/x'),
  ).toThrow(
    /\[chain\] max_seal_age_seconds: must be a number from 1 to 604800, got '604801' \(at most how long the record of delivered messages is kept\)/,
  );
});

test.each([
  ['[main]\n', /\[main\] domain: is required/],
  [
    '[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=nohost\n',
    /\[delivery\] host: must be host:port/,
  ],
  [
    '[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[policy]\nb.example=maybe\n[delivery]\nhost=h:1\n',
    /\[policy\] b\.example: must be require, opportunistic or none/,
  ],
  [
    '[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\nprotocol=imap\n',
    /\[delivery\] protocol: must be smtp or lmtp/,
  ],
  [
    '[main]\ndomain=a.example\ntrusted_relays=127.0.0.1, 10.0.0.0/33\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\n',
    /ssmax\.ini \[main\] trusted_relays: must list IP addresses or CIDR blocks, got '10\.0\.0\.0\/33'/,
  ],
  [
    '[main]\ndomain=a.example\ntrusted_relays=mx.a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\n',
    /trusted_relays: must list IP addresses/,
  ],
])('a bad config is refused naming the key: %#', (text, message) => {
  expect(() => parseGatewayConfig(parse(text) as Record<string, Record<string, unknown>>, '/x')).toThrow(GatewayConfigError);
  expect(() => parseGatewayConfig(parse(text) as Record<string, Record<string, unknown>>, '/x')).toThrow(message);
});

test('trusted relays: addresses and CIDR blocks, IPv4 and IPv6; lmtp delivery', () => {
  const c = parseGatewayConfig(
    parse(
      '[main]\ndomain=a.example\ntrusted_relays=127.0.0.1, 10.1.0.0/16, ::1, fd00::/8\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:24\nprotocol=LMTP\n',
    ) as Record<string, Record<string, unknown>>,
    '/x',
  );
  expect(c.delivery.protocol).toBe('lmtp');
  const t = new TrustedRelays(c.trustedRelays);
  expect(['127.0.0.1', '10.1.200.3', '::1', 'fd12::5'].map((ip) => t.has(ip))).toEqual([true, true, true, true]);
  expect(['127.0.0.2', '10.2.0.1', '::2', 'fe80::1', '', 'not-an-ip'].map((ip) => t.has(ip))).toEqual([
    false,
    false,
    false,
    false,
    false,
    false,
  ]);
  expect(new TrustedRelays([]).has('127.0.0.1')).toBe(false);
});

test('[keyd] user_facts_ttl_ms=0 (ask keyd every time, as the shipped comment says) is accepted; a negative one is refused', () => {
  const base =
    '[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\n';
  expect(
    parseGatewayConfig(parse(base.replace('key=c\n', 'key=c\nuser_facts_ttl_ms=0\n')) as Record<string, Record<string, unknown>>, '/x').keyd
      .userFactsTtlMs,
  ).toBe(0);
  expect(() =>
    parseGatewayConfig(parse(base.replace('key=c\n', 'key=c\nuser_facts_ttl_ms=-1\n')) as Record<string, Record<string, unknown>>, '/x'),
  ).toThrow(/\[keyd\] user_facts_ttl_ms: must be a whole number from 0 to 3600000, got '-1'/);
  expect(() =>
    parseGatewayConfig(parse(base.replace('key=c\n', 'key=c\ntimeout_ms=0\n')) as Record<string, Record<string, unknown>>, '/x'),
  ).toThrow(/\[keyd\] timeout_ms: must be a whole number from 1 to 3600000, got '0'/);
});

test('reloadGatewayConfig: reloadable settings take their new values in the running object; others are reported for a restart; an invalid file changes nothing', () => {
  const base =
    '[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\n';
  const ini = (extra: string) => parse(base + extra) as Record<string, Record<string, unknown>>;
  const before = ini('[policy]\nb.example=require\n');
  const running = parseGatewayConfig(before, '/x');
  const seen = running; // the object the hooks hold
  const after = ini('[policy]\nb.example=none\nc.example=require\n[chain]\nresealers=lists.c.example\n[keyd]\ntimeout_ms=9000\n');
  after.main = { ...after.main, hook_timeout_ms: '999', local_domains: 'x.example', domain: 'z.example' };
  expect(reloadGatewayConfig(running, before, after, '/x')).toEqual({
    applied: ['main.local_domains', 'main.hook_timeout_ms', 'chain.resealers', 'policy.b.example', 'policy.c.example'],
    restart: ['main.domain', 'keyd.timeout_ms'],
  });
  expect(seen.hookTimeoutMs).toBe(999);
  expect(seen.policy.domains).toEqual({ 'b.example': 'none', 'c.example': 'require' });
  expect(seen.chain.resealers).toEqual(['lists.c.example']);
  // restart-only: unchanged in the running gateway, the organisation's own domain included
  expect([seen.domain, seen.keyd.timeoutMs, seen.localDomains]).toEqual(['a.example', 5000, ['x.example', 'a.example']]);
  const bad = ini('[main]\nhook_timeout_ms=soon\n');
  expect(() => reloadGatewayConfig(running, after, bad, '/x')).toThrow(
    "ssmax.ini [main] hook_timeout_ms: must be a whole number from 1 to 3600000, got 'soon'",
  );
  expect(seen.hookTimeoutMs).toBe(999);
});
