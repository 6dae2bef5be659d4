/**
 * Two organisations that exchanged nothing by hand: each gateway is
 * configured with the SSMAX root only (no [peers] entry, no peer key or
 * certificate) and finds the other by DNS TXT `_ssmax.<domain>` through an
 * injected resolver (a declarative zone). The gateways' protocol steps run
 * in-process (setupGateway, as in Haraka) against the real keyd and
 * publisher processes of both organisations. [hosts] only maps the
 * publishers' host names to 127.0.0.1, as /etc/hosts would.
 * The last test does the same through real Haraka gateways and a DNS server
 * on loopback ([directory] dns_servers), which also answers the publishers'
 * host names (A records; no [hosts] pin). One network serves both: its
 * gateways are configured for the DNS server; the in-process gateways take
 * their configuration with the injected resolver and the [hosts] pin instead.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { startNetwork, type Network } from '../../src/demo/network';
import type { TxtResolver } from '../../src/directory/directory';
import { receive } from '../../src/gateway/reception';
import { GatewayError } from '../../src/mail/replies';
import { setupGateway, type Gateway } from '../../src/gateway/setup';
import { submit } from '../../src/gateway/submission';
import { listCapsules } from '../../src/envelope';
import { loadUserProfile } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { smtp, startTxtServer, waitFor } from './network-fixture';

jest.setTimeout(120000);

let net: Network;
const gateways: Gateway[] = [];
const queried: string[] = [];
let zone: Record<string, string[][]> = {};

const resolver: TxtResolver = async (name) => {
  queried.push(name);
  const records = zone[name.toLowerCase()];
  if (!records) throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  return records;
};

function gatewayOf(domain: string, log: (line: string) => void = () => undefined, state = 'ssmax-state-dns'): Gateway {
  const org = net.org(domain);
  const ini = parse(readFileSync(join(org.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
  ini.peers = {}; // nothing exchanged by hand
  // TXT from the injected resolver, not the DNS server; internal addresses only as pinned in [hosts] (the default)
  const { dns_servers: _servers, allow_private_addresses: _lab, ...directory } = ini.directory ?? {};
  ini.directory = { ...directory, dns: true };
  ini.hosts = Object.fromEntries(net.orgs.map((o) => [`ssmax.${o.domain}`, '127.0.0.1'])); // as /etc/hosts would
  ini.key_exchange = { probe: 'false' };
  const gw = setupGateway(ini, org.harakaDir, log, state, { resolver });
  gateways.push(gw);
  return gw;
}

let dns: Awaited<ReturnType<typeof startTxtServer>>;
const zoneMap = new Map<string, string[][]>();
const addresses = new Map<string, string>([
  ['ssmax.a.example', '127.0.0.1'],
  ['ssmax.b.example', '127.0.0.1'],
]);

beforeAll(async () => {
  dns = await startTxtServer(zoneMap, addresses);
  const servers = `127.0.0.1:${dns.port}`;
  net = await startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-dns-')), [
    { domain: 'a.example', dnsServers: servers, users: [{ address: 'dave@a.example', client: 'plain', password: 'pw-dave' }] },
    {
      domain: 'b.example',
      dnsServers: servers,
      users: [
        { address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' },
        { address: 'carol@b.example', client: 'plain', password: 'pw-carol' },
      ],
    },
  ]);
  zone = Object.fromEntries(net.orgs.map((o) => [`_ssmax.${o.domain}`, [[`v=ssmax1; u=${o.bundleUrl}; `, 'id=first-publication']]]));
  for (const o of net.orgs) zoneMap.set(`_ssmax.${o.domain}`, [[`v=ssmax1; u=${o.bundleUrl}; id=first-publication`]]);
});
afterAll(async () => {
  for (const g of gateways) await g.close();
  await net?.stop();
  await dns?.close();
});

test('only the SSMAX root configured on each side: A finds B by DNS TXT, B finds A by DNS TXT, encrypted mail flows and decrypts', async () => {
  const gwA = gatewayOf('a.example');
  const gwB = gatewayOf('b.example');
  expect(gwA.config.peers).toEqual({});
  const secret = 'DNS-discovered secret 4471';
  const raw = Buffer.from(
    `From: dave@a.example\r\nTo: bob@b.example, carol@b.example\r\nSubject: by dns\r\nMessage-ID: <dns-1@a.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n${secret}\r\n`,
  );
  const { copies } = await submit(gwA.deps, raw, ['bob@b.example', 'carol@b.example']);
  expect(copies).toHaveLength(1);
  expect(queried).toContain('_ssmax.b.example');
  expect((await listCapsules(copies[0]!.message)).map((c) => c.keyId)).toEqual(['b.example:v1']);
  expect(copies[0]!.message.includes(Buffer.from(secret))).toBe(false);

  const { copies: delivered } = await receive(gwB.deps, copies[0]!.message, ['bob@b.example', 'carol@b.example']);
  expect(queried).toContain('_ssmax.a.example'); // B verified A's seal with A's bundle, found by DNS
  const bobs = delivered.find((c) => c.rcpts[0] === 'bob@b.example')!;
  const bob = loadUserProfile(net.org('b.example').profiles['bob@b.example']!);
  const opened = await openMessage(bob, bobs.message, { now: new Date() });
  expect(opened.plaintext.toString('utf8')).toContain(secret);
  expect(delivered.find((c) => c.rcpts[0] === 'carol@b.example')!.message.toString('utf8')).toContain(secret);

  const status = (gwA.deps.directory as unknown as { status(): { domain: string; source?: string; currentKeyId?: string }[] }).status();
  expect(status.find((s) => s.domain === 'b.example')).toMatchObject({ source: 'dns', currentKeyId: 'b.example:v1' });
});

test('a domain without a TXT record has no SSMAX bundle: policy decides (opportunistic: plain for a plaintext submission)', async () => {
  const gwA = gateways[0]!;
  const { copies } = await submit(
    gwA.deps,
    Buffer.from(
      'From: dave@a.example\r\nTo: x@nossmax.example\r\nSubject: plain\r\nMessage-ID: <dns-2@a.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\nhello\r\n',
    ),
    ['x@nossmax.example'],
  );
  expect(copies[0]!.message.toString('utf8')).toContain('hello');
  expect(queried).toContain('_ssmax.nossmax.example');
});

describe('through real Haraka gateways and a DNS server on loopback', () => {
  test('no [peers] entry on either side: A finds B, B finds A by DNS TXT; bob reads the mail', async () => {
    const A = net.org('a.example');
    const B = net.org('b.example');
    const ini = parse(readFileSync(join(A.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    expect(ini.peers ?? {}).toEqual({});
    expect(ini.hosts ?? {}).toEqual({}); // the publishers' addresses come from the DNS server too
    const secret = 'Found by DNS through Haraka 9021';
    const raw = `From: dave@a.example\r\nTo: bob@b.example\r\nSubject: dns haraka\r\nMessage-ID: <dns-3@a.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n${secret}\r\n`;
    expect(await smtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], raw, { user: 'dave@a.example', pass: 'pw-dave' })).toMatch(
      /^250 .*SSMAX transparent mode/,
    );
    await waitFor(
      () => B.mailbox.for('bob@b.example').length >= 1,
      30000,
      () => `${A.haraka.logs().slice(-2000)}\n---\n${B.haraka.logs().slice(-2000)}`,
    );
    expect(dns.queries).toEqual(expect.arrayContaining(['_ssmax.b.example', '_ssmax.a.example', 'ssmax.b.example', 'ssmax.a.example']));
    const copy = B.mailbox.for('bob@b.example')[0]!.raw;
    expect(copy.includes(Buffer.from(secret))).toBe(false);
    const opened = await openMessage(loadUserProfile(B.profiles['bob@b.example']!), copy, { now: new Date() });
    expect(opened.plaintext.toString('utf8')).toContain(secret);
  });
});

describe('a bundle URL into our own network (SSRF, port scan)', () => {
  /** A TCP port that counts the connections it gets. */
  async function listening(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
    let n = 0;
    const server = createTcpServer((s) => {
      n++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return {
      port: (server.address() as AddressInfo).port,
      connections: () => n,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }
  const unsealed = (from: string, id: string) =>
    Buffer.from(
      `From: x@${from}\r\nTo: carol@b.example\r\nSubject: probe\r\nMessage-ID: <${id}@${from}>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\nhello\r\n`,
    );

  test('a TXT record naming https://127.0.0.1:<open port>/ (not configured): 451 naming only the domain, the reason in the log, no connection to that port', async () => {
    const port = await listening();
    const logged: string[] = [];
    const gwB = gatewayOf('b.example', (l) => logged.push(l), 'ssmax-state-ssrf');
    try {
      zone['_ssmax.probe.example'] = [[`v=ssmax1; u=https://127.0.0.1:${port.port}/internal`]];
      // the From domain and its parent: both looked up, neither connects
      for (const [domain, id] of [
        ['probe.example', 'ssrf-1'],
        ['probe.example', 'ssrf-2'],
      ] as const) {
        const err = await receive(gwB.deps, unsealed(domain, id), ['carol@b.example']).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(GatewayError);
        const reply = (err as GatewayError).reply;
        expect(reply).toEqual({ code: 451, status: '4.7.5', text: `SSMAX bundle of the peer domain unavailable: ${domain}` });
      }
      expect(port.connections()).toBe(0);
      expect(logged.join('\n')).toMatch(/127\.0\.0\.1 is a loopback address \(not allowed for a bundle URL\)/);
    } finally {
      delete zone['_ssmax.probe.example'];
      await port.close();
    }
  });

  test('through real Haraka: the 451 for an unreachable bundle names the domain only, never what answered (or did not) at the URL', async () => {
    const B = net.org('b.example');
    const port = await listening();
    await port.close(); // a closed port now: connect ECONNREFUSED (this lab gateway may reach 127.0.0.1)
    zoneMap.set('_ssmax.closed.example', [[`v=ssmax1; u=https://127.0.0.1:${port.port}/bundle`]]);
    try {
      const reply = await smtp(B.ports.smtp, 'x@closed.example', ['carol@b.example'], unsealed('closed.example', 'ssrf-3'));
      // (after DATA Haraka answers 450 and adds the transaction id)
      expect(reply).toMatch(/^45\d 4\.7\.5 SSMAX bundle of the peer domain unavailable: closed\.example( \([0-9A-F.-]+\))?$/);
      await waitFor(
        () => /ECONNREFUSED/.test(B.haraka.logs()),
        10000,
        () => B.haraka.logs().slice(-2000),
      ); // the reason is logged
    } finally {
      zoneMap.delete('_ssmax.closed.example');
    }
  });
});
