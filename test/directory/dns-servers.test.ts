/**
 * `dns_servers`: everything the directory resolves goes to the configured DNS
 * servers — the TXT record `_ssmax.<domain>` and then the host name in the
 * bundle URL it names — not to the system resolver. A small authoritative DNS
 * server on a loopback port (the zone server of the gateway DNS tests) holds
 * both; no [hosts] pin, no [peers] entry. The directory config file has the
 * key; an unknown key there is refused, naming file, section and key.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { DirectoryConfigError, directoryOptions, loadDirectoryConfig } from '../../src/directory/config';
import { Directory, DirectoryError } from '../../src/directory/directory';
import { startTxtServer } from '../gateway/network-fixture';
import { BundleServer, type Org, bundleOf, makeOrg, wholeSecondNow } from './fixtures';

jest.setTimeout(60000);

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

let b: Org;
let server: BundleServer;
let dns: Awaited<ReturnType<typeof startTxtServer>>;
const zone = new Map<string, string[][]>();
const addresses = new Map<string, string>();
let dir: string;

beforeAll(async () => {
  b = makeOrg('b.example');
  server = await new BundleServer(b.tls).start();
  server.body = bundleOf(b, 7, wholeSecondNow());
  dns = await startTxtServer(zone, addresses);
  zone.set('_ssmax.b.example', [[`v=ssmax1; u=${server.url('b.example')}`]]);
  dir = mkdtempSync(join(tmpdir(), 'ssmax-dnsservers-'));
  writeFileSync(join(dir, 'root.pem'), b.fx.root.certificate.pem);
});
afterAll(async () => {
  await server?.stop();
  await dns?.close();
});

test('the bundle host name is resolved through dns_servers: without its A record there the fetch fails (the server was asked), with it the lookup succeeds', async () => {
  const directory = () =>
    new Directory({
      roots: [b.fx.root.certificate.pem],
      dnsServers: [`127.0.0.1:${dns.port}`],
      retryMs: 0,
      negativeTtlMs: 0,
      allowPrivateAddresses: true, // the publisher is on loopback here
    });
  addresses.delete('ssmax.b.example');
  const without = directory();
  try {
    const err = await without.lookup('b.example').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DirectoryError);
    expect((err as DirectoryError).code).toBe('unavailable');
    expect((err as DirectoryError).detail).toMatch(/ENOTFOUND ssmax\.b\.example/);
    expect(dns.queries).toEqual(expect.arrayContaining(['_ssmax.b.example', 'ssmax.b.example']));
  } finally {
    await without.close();
  }
  addresses.set('ssmax.b.example', '127.0.0.1');
  const requests = server.requests;
  const withA = directory();
  try {
    const entry = await withA.lookup('b.example');
    expect(entry.serial).toBe(7);
    expect(server.requests).toBe(requests + 1);
  } finally {
    await withA.close();
  }
});

test('ssmax-directory.ini: dns_servers reaches the directory (`ssmax directory lookup` finds b.example by TXT and A through it); an unknown key or section is refused (78)', async () => {
  addresses.set('ssmax.b.example', '127.0.0.1');
  const ini = join(dir, 'directory.ini');
  writeFileSync(
    ini,
    [
      '[directory]',
      'roots=root.pem',
      'dns=on',
      `dns_servers=127.0.0.1:${dns.port}`,
      'retry_seconds=0',
      'allow_private_addresses=on',
      '',
    ].join('\n'),
  );
  const config = loadDirectoryConfig(ini);
  expect(config.dnsServers).toEqual([`127.0.0.1:${dns.port}`]);
  expect(directoryOptions(config).dnsServers).toEqual([`127.0.0.1:${dns.port}`]);
  const before = dns.queries.length;
  const c = capture();
  expect(await main(['directory', 'lookup', 'b.example', '--config', ini], c.io)).toBe(0);
  expect(c.out.join('\n')).toMatch(/b\.example/);
  expect(dns.queries.slice(before)).toEqual(expect.arrayContaining(['_ssmax.b.example', 'ssmax.b.example']));

  const bad = join(dir, 'bad.ini');
  writeFileSync(bad, ['[directory]', 'roots=root.pem', `dns_server=127.0.0.1:${dns.port}`, ''].join('\n'));
  expect(() => loadDirectoryConfig(bad)).toThrow(DirectoryConfigError);
  expect(() => loadDirectoryConfig(bad)).toThrow(
    `${bad} [directory] dns_server: is not a known setting, did you mean dns_servers? (known: roots, crls, cache_dir, dns, dns_servers,`,
  );
  const e = capture();
  expect(await main(['directory', 'status', '--config', bad], e.io)).toBe(78);
  expect(e.err.join('\n')).toMatch(/\[directory\] dns_server: is not a known setting/);

  writeFileSync(bad, ['[directory]', 'roots=root.pem', '[tls]', 'cafile=x.pem', ''].join('\n'));
  expect(() => loadDirectoryConfig(bad)).toThrow('[tls] cafile: is not a known setting (known: ca)');
  writeFileSync(bad, ['[directory]', 'roots=root.pem', '[directroy]', 'dns=off', ''].join('\n'));
  expect(() => loadDirectoryConfig(bad)).toThrow(
    'unknown section [directroy], did you mean [directory]? (known: [directory], [tls], [peers], [hosts])',
  );
  expect(loadDirectoryConfig(bad.replace('bad', 'bad'), { otherSections: ['directroy'] }).roots).toHaveLength(1); // another reader's section
  writeFileSync(bad, ['[directory]', 'roots=root.pem', 'dns_servers=127.0.0.1:5353, not-an-ip', ''].join('\n'));
  expect(() => loadDirectoryConfig(bad)).toThrow('[directory] dns_servers: "not-an-ip" is not an IP address or IP:port');
  writeFileSync(bad, ['[directory]', 'roots=root.pem', 'dns_servers=[::1]:5353,192.0.2.1,2001:db8::1', ''].join('\n'));
  expect(loadDirectoryConfig(bad).dnsServers).toEqual(['[::1]:5353', '192.0.2.1', '2001:db8::1']);
});
