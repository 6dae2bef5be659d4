import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'ini';
import { GATEWAY_SETTINGS, GatewayConfigError, parseGatewayConfig, reloadApplier, reloadGatewayConfig } from '../../src/gateway/config';
import { parseHostPort } from '../../src/config/host-port';
import type { Setting } from '../../src/config/ini';
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
  expect(c.moderation).toEqual({ maxBytes: 1024 ** 3, maxBytesPerSender: 128 * 1024 ** 2, maxEntries: 100_000 });
});

test('[lists] caps the moderation queue: bytes in all and per sender, posts held, whole numbers', () => {
  const base =
    '[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n';
  const of = (text: string) => parseGatewayConfig(parse(`${base}${text}`) as Record<string, Record<string, unknown>>, '/x');
  expect(of('[lists]\nmoderation_max_bytes=5000\nmoderation_max_bytes_per_sender=700\nmoderation_max_entries=40\n').moderation).toEqual({
    maxBytes: 5000,
    maxBytesPerSender: 700,
    maxEntries: 40,
  });
  expect(() => of('[lists]\nmoderation_max_entries=0\n')).toThrow(/\[lists\] moderation_max_entries: must be a whole number from 1 to/);
  expect(() => of('[lists]\nmoderation_max_bytes=0\n')).toThrow(/\[lists\] moderation_max_bytes: must be a whole number from 1 to/);
});

test('[chain] max_seal_age_seconds may not outlast the record of delivered messages (7 days)', () => {
  const base =
    '[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n';
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
    '[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=nohost\n',
    /\[delivery\] host: must be host:port/,
  ],
  [
    '[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[policy]\nb.example=maybe\n[delivery]\nhost=127.0.0.1:1\n',
    /\[policy\] b\.example: must be require, opportunistic or none/,
  ],
  [
    '[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\nprotocol=imap\n',
    /\[delivery\] protocol: must be smtp or lmtp/,
  ],
  [
    '[main]\ndomain=a.example\ntrusted_relays=127.0.0.1, 10.0.0.0/33\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n',
    /ssmax\.ini \[main\] trusted_relays: must list IP addresses or CIDR blocks, got '10\.0\.0\.0\/33'/,
  ],
  [
    '[main]\ndomain=a.example\ntrusted_relays=mx.a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n',
    /trusted_relays: must list IP addresses/,
  ],
])('a bad config is refused naming the key: %#', (text, message) => {
  expect(() => parseGatewayConfig(parse(text) as Record<string, Record<string, unknown>>, '/x')).toThrow(GatewayConfigError);
  expect(() => parseGatewayConfig(parse(text) as Record<string, Record<string, unknown>>, '/x')).toThrow(message);
});

test('[delivery] host off this machine is refused (the copies for plain-client users are decrypted, in cleartext), unless the operator accepts it', () => {
  const ini = (delivery: string) =>
    parse(
      `[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\n${delivery}\n`,
    ) as Record<string, Record<string, unknown>>;
  for (const host of ['10.0.0.5:24', 'mail.a.example:25', 'localhost:2525', '[2001:db8::1]:24', '[::ffff:10.0.0.5]:24'])
    expect(() => parseGatewayConfig(ini(`host=${host}\nprotocol=lmtp`), '/x')).toThrow(
      `[delivery] host: ${host} is not a loopback address: the gateway hands the mailbox store the decrypted copies for users without an SSMAX client, in cleartext over LMTP, which would cross the network`,
    );
  for (const host of ['127.0.0.1:2525', '127.0.0.2:25', '[::1]:24', '[::ffff:127.0.0.1]:24'])
    expect(parseGatewayConfig(ini(`host=${host}`), '/x').delivery.plaintextOverNetwork).toBe(false);
  const accepted = parseGatewayConfig(ini('host=mail.a.example:25\nallow_plaintext_over_network=true'), '/x');
  expect(accepted.delivery).toMatchObject({ host: 'mail.a.example', port: 25, plaintextOverNetwork: true });
});

test('trusted relays: addresses and CIDR blocks, IPv4 and IPv6; lmtp delivery', () => {
  const c = parseGatewayConfig(
    parse(
      '[main]\ndomain=a.example\ntrusted_relays=127.0.0.1, 10.1.0.0/16, ::1, fd00::/8\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=[::1]:24\nprotocol=LMTP\n',
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
    '[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n';
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
    '[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n';
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

test('reloadApplier: a setting marked reload and a domain of [policy] have their own; any other name has none (waits for a restart), never the policy one', () => {
  const base =
    '[main]\ndomain=a.example\n[keyd]\nurl=https://127.0.0.1:7443\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n';
  const before = parse(`${base}[policy]\nb.example=require\n`) as Record<string, Record<string, unknown>>;
  const after = parse(`${base}[policy]\nb.example=none\n`) as Record<string, Record<string, unknown>>;
  const next = parseGatewayConfig(after, '/x');
  const policyOf = (name: string) => {
    const running = parseGatewayConfig(before, '/x');
    reloadApplier(name)?.(running as never, next);
    return running.policy.domains;
  };
  expect(policyOf('policy.b.example')).toEqual({ 'b.example': 'none' });
  expect(reloadApplier('main.hook_timeout_ms')).toBeDefined();
  expect(reloadApplier('policy.default')).not.toBe(reloadApplier('policy.b.example'));
  // unknown names, names of sections read only at start, and malformed names: no applier, the policy untouched
  for (const name of [
    'main.no_such_setting',
    'nosuch.key',
    'peers.b.example',
    'routes.b.example',
    'keyd.timeout_ms',
    'policy',
    'policy.',
    '.b.example',
    '',
  ]) {
    expect(reloadApplier(name)).toBeUndefined();
    expect(policyOf(name)).toEqual({ 'b.example': 'require' });
  }
});

/** The paths ("a.b") at which two configurations differ (arrays compared whole). */
function differences(a: unknown, b: unknown, at = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(a) || !isObject(b)) return JSON.stringify(a) === JSON.stringify(b) ? [] : [at];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.flatMap((k) => differences(a[k], b[k], at ? `${at}.${k}` : k));
}

function valueAt(o: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o);
}

test('reloadGatewayConfig: every setting marked reload is applied, and nothing else (each setting changed alone, then all at once)', () => {
  const base =
    '[main]\ndomain=a.example\n[keyd]\nurl=https://127.0.0.1:7443\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n[policy]\nb.example=require\n';
  const before = parse(base) as Record<string, Record<string, unknown>>;
  // a valid value other than the one in effect, for every setting
  const special: Record<string, string> = {
    'main.domain': 'z.example',
    'main.local_domains': 'x.example',
    'main.trusted_relays': '127.0.0.9',
    'main.trusted_relay_logins': 'mta',
    'keyd.url': 'https://127.0.0.1:9443',
    'keyd.servername': 'keyd.z.example',
    'directory.dns_servers': '127.0.0.53',
    'chain.resealers': 'lists.c.example',
    'delivery.host': '127.0.0.2:2',
    'inspection.mode': 'inline', // remote needs a URL (below, with it)
    'inspection.inspector_url': 'https://inspect.a.example:8443',
    'ops.listen': '127.0.0.1:9999',
  };
  const changedValue = (name: string): string => {
    if (special[name] !== undefined) return special[name];
    const s = (GATEWAY_SETTINGS as Record<string, Setting>)[name]!;
    if (s.type === 'num') return String(s.default === s.max ? s.min : s.max);
    if (s.type === 'bool') return String(!s.default);
    if (s.type === 'enum') return s.values.find((v) => v !== s.default)!;
    return s.type === 'list' ? 'other-1.pem,other-2.pem' : 'other.pem';
  };
  const withChanges = (names: readonly string[]) => {
    const after = structuredClone(before);
    for (const n of names) {
      const [section, key] = [n.slice(0, n.indexOf('.')), n.slice(n.indexOf('.') + 1)];
      after[section] = { ...after[section], [key]: changedValue(n) };
    }
    return after;
  };
  const names = Object.keys(GATEWAY_SETTINGS).filter((n) => n !== 'inspection.mode');
  const marked = names.filter((n) => (GATEWAY_SETTINGS as Record<string, Setting>)[n]!.reload === true);
  expect(marked.length).toBeGreaterThan(5);
  const snapshot = parseGatewayConfig(before, '/x');
  // where in the configuration each setting shows (some are read elsewhere, e.g. [ops] listen, or only in another mode)
  const pathsOf = new Map(names.map((n) => [n, differences(snapshot, parseGatewayConfig(withChanges([n]), '/x'))]));
  for (const n of marked) expect([n, pathsOf.get(n)!.length > 0]).toEqual([n, true]);

  for (const n of names) {
    const running = parseGatewayConfig(before, '/x');
    const after = withChanges([n]);
    const r = reloadGatewayConfig(running, before, after, '/x');
    if (marked.includes(n)) {
      expect([n, r]).toEqual([n, { applied: [n], restart: [] }]);
      expect([n, running]).toEqual([n, parseGatewayConfig(after, '/x')]); // the new value in effect, nothing else changed
    } else {
      expect([n, r]).toEqual([n, { applied: [], restart: [n] }]);
      expect([n, running]).toEqual([n, snapshot]);
    }
  }

  // all at once: the marked ones in effect, every other one as it was
  const all = withChanges(names);
  const running = parseGatewayConfig(before, '/x');
  const r = reloadGatewayConfig(running, before, all, '/x');
  expect(new Set(r.applied)).toEqual(new Set(marked));
  expect(new Set(r.restart)).toEqual(new Set(names.filter((n) => !marked.includes(n))));
  const next = parseGatewayConfig(all, '/x');
  for (const n of names)
    for (const p of pathsOf.get(n)!)
      expect([n, p, valueAt(running, p)]).toEqual([
        n,
        p,
        p === 'localDomains' ? ['x.example', 'a.example'] : valueAt(marked.includes(n) ? next : snapshot, p),
      ]);
});

test('[routes]: read by the shared host:port reader ([::1]:25 is host ::1; ::1:25 is refused with its text, naming the domain)', () => {
  const base =
    '[main]\ndomain=a.example\n[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n';
  const routes = (text: string) =>
    parseGatewayConfig(parse(`${base}[routes]\n${text}`) as Record<string, Record<string, unknown>>, '/x').routes;
  expect(routes('B.example=[::1]:25\nc.example=mx.c.example:2525\nd.example=192.0.2.1:25\n')).toEqual({
    'b.example': { host: '::1', port: 25 },
    'c.example': { host: 'mx.c.example', port: 2525 },
    'd.example': { host: '192.0.2.1', port: 25 },
  });
  let err: unknown;
  try {
    routes('b.example=::1:25\n');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(GatewayConfigError);
  const shared = (() => {
    try {
      parseHostPort('::1:25', 1);
    } catch (e) {
      return (e as Error).message;
    }
    return '';
  })();
  expect(shared).toMatch(/IPv6 address goes in brackets/);
  expect((err as Error).message).toContain(`[routes] b.example: ${shared}`);
  expect(() => routes('b.example=mx.b.example:0\n')).toThrow(/\[routes\] b\.example: must be host:port with a port from 1 to 65535/);
  expect(() => routes('b.example=mx.b.example\n')).toThrow(/\[routes\] b\.example: must be host:port, got 'mx\.b\.example'/);
});

test('every domain of the settings is kept in its ASCII form, as message domains are compared; one that is no domain name is refused naming its setting', () => {
  const base = '[keyd]\nurl=https://k:1\nca=a\ncert=b\nkey=c\n[seal]\ncert=d\nkey=e\n[pki]\nroots=f\n[delivery]\nhost=127.0.0.1:1\n';
  const of = (text: string) => parseGatewayConfig(parse(`${base}${text}`) as Record<string, Record<string, unknown>>, '/x');
  const c = of(
    '[main]\ndomain=BÜCHER.example\nlocal_domains=ｂ.example, xn--caf-dma.example\n[policy]\nwürze.example=require\n' +
      '[peers]\nwürze.example=https://p/b\n[routes]\nwürze.example=127.0.0.1:25\n[chain]\nresealers=Listen.bücher.example\n',
  );
  expect(c.domain).toBe('xn--bcher-kva.example');
  expect(c.localDomains).toEqual(['b.example', 'xn--caf-dma.example', 'xn--bcher-kva.example']);
  expect(c.policy.domains).toEqual({ 'xn--wrze-0ra.example': 'require' });
  expect(Object.keys(c.peers)).toEqual(['xn--wrze-0ra.example']);
  expect(Object.keys(c.routes)).toEqual(['xn--wrze-0ra.example']);
  expect(c.chain.resealers).toEqual(['listen.xn--bcher-kva.example']);
  expect(() => of('[main]\ndomain=a.example\nlocal_domains=b\u200d.example\n')).toThrow(
    /local_domains.*'b\u200d\.example' is not a domain name/,
  );
  expect(() => of('[main]\ndomain=a.example.\n')).toThrow(/domain.*not a domain name/);
});
