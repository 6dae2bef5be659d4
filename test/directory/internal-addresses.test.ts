/**
 * A bundle URL found by DNS is fetched from public addresses only: the
 * address in the URL, or every address its host name resolves to, is checked
 * before any connection (loopback, private, link-local, CGNAT, ULA,
 * multicast, unspecified are refused). The URLs the operator named ([peers]),
 * the addresses pinned in [hosts], and `allowPrivateAddresses` (labs) may be
 * internal. A refusal's message names the domain only; the reason is its
 * `detail`. A TCP port on loopback counts the connections it gets.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Directory, DirectoryError, type DirectoryOptions } from '../../src/directory/directory';
import { internalRange } from '../../src/directory/fetch';
import { startTxtServer } from '../gateway/network-fixture';
import { makeOrg, type Org } from './fixtures';

jest.setTimeout(60000);

let org: Org;
let server: Server;
let port = 0;
let connections = 0;
let dns: Awaited<ReturnType<typeof startTxtServer>>;
const addresses = new Map<string, string>([['inside.c.example', '127.0.0.1']]);

beforeAll(async () => {
  org = makeOrg('c.example');
  server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
  dns = await startTxtServer(new Map(), addresses);
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await dns?.close();
});

/** A directory whose (injected) TXT record for every domain names `url`. */
function directory(url: string, more: Partial<DirectoryOptions> = {}): Directory {
  return new Directory({
    roots: [org.fx.root.certificate.pem],
    resolver: async () => [[`v=ssmax1; u=${url}`]],
    dnsServers: [`127.0.0.1:${dns.port}`],
    retryMs: 0,
    negativeTtlMs: 0,
    fetchTimeoutMs: 3000,
    ...more,
  });
}

async function refusal(dir: Directory, domain = 'c.example'): Promise<DirectoryError> {
  try {
    const e = await dir.lookup(domain).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(DirectoryError);
    return e as DirectoryError;
  } finally {
    await dir.close();
  }
}

test('a DNS-named URL with a loopback address: refused before connecting; the message names only the domain', async () => {
  const before = connections;
  const e = await refusal(directory(`https://127.0.0.1:${port}/bundle`));
  expect(e.code).toBe('unavailable');
  expect(e.message).toBe('SSMAX bundle of "c.example" unavailable');
  expect(e.detail).toMatch(/127\.0\.0\.1 is a loopback address \(not allowed for a bundle URL\)/);
  const v6 = await refusal(directory(`https://[::1]:${port}/bundle`));
  expect(v6.detail).toMatch(/::1 is a loopback address/);
  expect(connections).toBe(before);
});

test('a DNS-named host name that resolves to a loopback address: refused before connecting (the address the socket would use is checked)', async () => {
  const before = connections;
  const e = await refusal(directory(`https://inside.c.example:${port}/bundle`));
  expect(e.code).toBe('unavailable');
  expect(e.detail).toMatch(/"inside\.c\.example" resolves to 127\.0\.0\.1, a loopback address/);
  expect(e.message).not.toMatch(/127|inside|loopback|ECONN/);
  expect(connections).toBe(before);
});

test('what the operator named may be internal: a [peers] URL, a [hosts] pin, and allowPrivateAddresses (labs)', async () => {
  const cases: [string, Directory][] = [
    ['[peers]', directory('https://unused.example/', { staticPeers: { 'c.example': `https://127.0.0.1:${port}/bundle` } })],
    ['[hosts]', directory(`https://pinned.c.example:${port}/bundle`, { hosts: { 'pinned.c.example': '127.0.0.1' } })],
    ['allowPrivateAddresses', directory(`https://inside.c.example:${port}/bundle`, { allowPrivateAddresses: true })],
  ];
  for (const [what, dir] of cases) {
    const before = connections;
    const e = await refusal(dir);
    // the port is no publisher: the TLS handshake fails, after a connection was made
    expect([what, e.code]).toEqual([what, 'unavailable']);
    expect([what, e.detail]).not.toEqual([what, expect.stringMatching(/not allowed/)]);
    expect([what, connections]).toEqual([what, before + 1]);
  }
});

test.each([
  ['127.0.0.1', 'loopback'],
  ['10.1.2.3', 'private'],
  ['172.31.255.255', 'private'],
  ['192.168.0.1', 'private'],
  ['169.254.169.254', 'link-local'],
  ['100.64.0.1', 'shared (CGNAT)'],
  ['0.0.0.0', 'unspecified'],
  ['224.0.0.1', 'multicast'],
  ['::1', 'loopback'],
  ['::', 'unspecified'],
  ['fd00::1', 'unique local'],
  ['fe80::1%eth0', 'link-local'],
  ['ff02::1', 'multicast'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:7f00:1', 'loopback'],
  ['64:ff9b::a9fe:a9fe', 'link-local'],
  ['64:ff9b::10.0.0.1', 'private'],
  ['0:0:0:0:0:ffff:7f00:1', 'loopback'], // IPv4-mapped, written out
  ['::ffff:0:10.1.2.3', 'private'], // IPv4-translated (::ffff:0:0:0/96)
  ['::ffff:0:a9fe:a9fe', 'link-local'],
  ['::127.0.0.1', 'loopback'], // IPv4-compatible (::/96)
  ['::c0a8:1', 'private'],
  ['::8.8.8.8', undefined],
  ['64:ff9b:1::8.8.8.8', 'local-use NAT64'], // wherever the translator puts the IPv4 address
  ['64:ff9b:1:ffff::1', 'local-use NAT64'],
  ['64:ff9b:2::1', undefined],
  ['::ffff:0:8.8.8.8', undefined],
  ['::ffff:808:808', undefined],
  ['8.8.8.8', undefined],
  ['172.32.0.1', undefined],
  ['100.128.0.1', undefined],
  ['2001:4860:4860::8888', undefined],
])('internalRange(%s) = %s', (address, range) => {
  expect(internalRange(address)).toBe(range);
});
