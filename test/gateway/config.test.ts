import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'ini';
import { GATEWAY_DEFAULTS, GatewayConfigError, parseGatewayConfig } from '../../src/gateway/config';
import { TrustedRelays } from '../../src/gateway/trusted-relays';
import { uncommentDefaults } from '../support/shipped-ini';

const shipped = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax.ini'), 'utf8');

test('the shipped config/ssmax.ini parses, and its commented defaults, made active, are the built-in ones', () => {
  // every commented default made active (the examples of peers, routes and policies stay comments): the values below come from the file
  const c = parseGatewayConfig(parse(uncommentDefaults(shipped, ['keyd.servername', 'policy.b.example', 'peers.b.example', 'hosts.ssmax.b.example', 'routes.b.example', 'inspection.inspector_url', 'inspection.inspector_servername'])) as Record<string, Record<string, unknown>>, '/etc/haraka/config');
  expect(c.hookTimeoutMs).toBe(GATEWAY_DEFAULTS.hook_timeout_ms);
  expect(c.tcpNoDelay).toBe(true);
  expect(c.keyd.timeoutMs).toBe(GATEWAY_DEFAULTS.keyd_timeout_ms);
  expect(c.keyd.userFactsTtlMs).toBe(GATEWAY_DEFAULTS.user_facts_ttl_ms);
  expect(c.policy.default).toBe(GATEWAY_DEFAULTS.policy);
  expect(c.delivery.timeoutMs).toBe(GATEWAY_DEFAULTS.delivery_timeout_ms);
  expect(c.delivery.protocol).toBe(GATEWAY_DEFAULTS.delivery_protocol);
  expect(c.trustedRelays).toEqual([]);
  expect(c.keyExchange).toEqual({
    advertise: GATEWAY_DEFAULTS.advertise, probe: GATEWAY_DEFAULTS.probe, probeIntervalMs: GATEWAY_DEFAULTS.probe_interval_seconds * 1000,
    probeTimeoutMs: GATEWAY_DEFAULTS.probe_timeout_ms, refreshMinIntervalMs: GATEWAY_DEFAULTS.refresh_min_interval_seconds * 1000,
  });
  const commented = Object.fromEntries([...shipped.matchAll(/^;([a-z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
  expect(commented).toMatchObject({ hook_timeout_ms: '25000', tcp_nodelay: 'true', timeout_ms: expect.stringMatching(/^(5000|10000)$/), default: 'opportunistic', dns: 'true', fetch_timeout_ms: '5000', retry_ms: '2000',
    advertise: 'true', probe: 'true', probe_interval_seconds: '30', probe_timeout_ms: '2000', refresh_min_interval_seconds: '5', user_facts_ttl_ms: '5000', protocol: 'smtp' });
  expect(shipped).toMatch(/^;trusted_relays=$/m);
  expect(shipped).toMatch(/^;trusted_relay_logins=$/m);
  expect(c.trustedRelayLogins).toEqual([]);
  expect(c.keyd.cert).toBe('/etc/haraka/config/pki/gateway.pem');
  expect(c.chain).toEqual({ maxSealAgeMs: 518400000, resealers: [] });
  expect(commented).toMatchObject({ max_seal_age_seconds: String(GATEWAY_DEFAULTS.max_seal_age_seconds) });
});

test('[chain] max_seal_age_seconds may not outlast the record of delivered messages (7 days)', () => {
  const base = '[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\n';
  expect(parseGatewayConfig(parse(`${base}[chain]\nmax_seal_age_seconds=604800\nresealers=Lists.C.example\n`) as Record<string, Record<string, unknown>>, '/x').chain).toEqual({ maxSealAgeMs: 604800000, resealers: ['lists.c.example'] });
  expect(() => parseGatewayConfig(parse(`${base}[chain]\nmax_seal_age_seconds=604801\n`) as Record<string, Record<string, unknown>>, '/x')).toThrow(/\[chain\] max_seal_age_seconds must be at most 604800/);
});

test.each([
  ['[main]\n', /\[main\] domain is required/],
  ['[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=nohost\n', /\[delivery\] host must be host:port/],
  ['[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[policy]\nb.example=maybe\n[delivery]\nhost=h:1\n', /\[policy\] b\.example must be require, opportunistic or none/],
  ['[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\nprotocol=imap\n', /\[delivery\] protocol must be smtp or lmtp/],
  ['[main]\ndomain=a.example\ntrusted_relays=127.0.0.1, 10.0.0.0/33\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\n', /\[main\] trusted_relays must list IP addresses or CIDR blocks \(got "10\.0\.0\.0\/33"\)/],
  ['[main]\ndomain=a.example\ntrusted_relays=mx.a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\n', /trusted_relays must list IP addresses/],
])('a bad config is refused naming the key: %#', (text, message) => {
  expect(() => parseGatewayConfig(parse(text) as Record<string, Record<string, unknown>>, '/x')).toThrow(GatewayConfigError);
  expect(() => parseGatewayConfig(parse(text) as Record<string, Record<string, unknown>>, '/x')).toThrow(message);
});

test('trusted relays: addresses and CIDR blocks, IPv4 and IPv6; lmtp delivery', () => {
  const c = parseGatewayConfig(parse('[main]\ndomain=a.example\ntrusted_relays=127.0.0.1, 10.1.0.0/16, ::1, fd00::/8\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:24\nprotocol=LMTP\n') as Record<string, Record<string, unknown>>, '/x');
  expect(c.delivery.protocol).toBe('lmtp');
  const t = new TrustedRelays(c.trustedRelays);
  expect(['127.0.0.1', '10.1.200.3', '::1', 'fd12::5'].map((ip) => t.has(ip))).toEqual([true, true, true, true]);
  expect(['127.0.0.2', '10.2.0.1', '::2', 'fe80::1', '', 'not-an-ip'].map((ip) => t.has(ip))).toEqual([false, false, false, false, false, false]);
  expect(new TrustedRelays([]).has('127.0.0.1')).toBe(false);
});

test('[keyd] user_facts_ttl_ms=0 (ask keyd every time, as the shipped comment says) is accepted; a negative one is refused', () => {
  const base = '[main]\ndomain=a.example\n[keyd]\nurl=x\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=h:1\n';
  expect(parseGatewayConfig(parse(base.replace('key=c\n', 'key=c\nuser_facts_ttl_ms=0\n')) as Record<string, Record<string, unknown>>, '/x').keyd.userFactsTtlMs).toBe(0);
  expect(() => parseGatewayConfig(parse(base.replace('key=c\n', 'key=c\nuser_facts_ttl_ms=-1\n')) as Record<string, Record<string, unknown>>, '/x')).toThrow(/\[keyd\] user_facts_ttl_ms must be a non-negative number/);
  expect(() => parseGatewayConfig(parse(base.replace('key=c\n', 'key=c\ntimeout_ms=0\n')) as Record<string, Record<string, unknown>>, '/x')).toThrow(/\[keyd\] timeout_ms must be a positive number/);
});
