/**
 * `ssmax directory status|lookup` and `ssmax publish --help` through the
 * dispatcher (in process), with a real org, an HTTPS server on loopback and an
 * LMDB cache shared between the lookup and the status command; and the
 * directory config loader, including the shipped config/ssmax-directory.ini.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { directoryOptions, loadDirectoryConfig } from '../../src/directory/config';
import { BundleServer, type Org, bundleOf, makeOrg, wholeSecondNow } from './fixtures';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

let b: Org;
let server: BundleServer;
let dir: string;
let ini: string;

beforeAll(async () => {
  b = makeOrg('b.example');
  server = await new BundleServer(b.tls).start();
  server.body = bundleOf(b, 3, wholeSecondNow());
  dir = mkdtempSync(join(tmpdir(), 'ssmax-dircli-'));
  writeFileSync(join(dir, 'root.pem'), b.fx.root.certificate.pem);
  ini = join(dir, 'directory.ini');
  writeFileSync(
    ini,
    [
      '[directory]',
      'roots=root.pem',
      'cache_dir=cache',
      'dns=off',
      'retry_seconds=0',
      '[peers]',
      `b.example=${server.url('b.example')}`,
      'c.example=https://127.0.0.1:1/.well-known/ssmax/bundle',
      '[hosts]',
      'ssmax.b.example=127.0.0.1',
      '',
    ].join('\n'),
  );
});

afterAll(() => server.stop());

test('lookup fetches into the shared cache; status lists each peer with serial, key, expiry and last error', async () => {
  let c = capture();
  expect(await main(['directory', 'lookup', 'b.example', '--config', ini], c.io)).toBe(0);
  expect(c.out.join('\n')).toMatch(
    /^b\.example: bundle \S+ serial 3, current key b\.example:v1, expires \d{4}-.*Z \(from https:\/\/ssmax\.b\.example:\d+\/\.well-known\/ssmax\/bundle\)$/,
  );

  c = capture();
  expect(await main(['directory', 'lookup', 'c.example', '--config', ini], c.io)).toBe(1);
  expect(c.err.join('\n')).toMatch(/^unavailable: Cannot fetch "https:\/\/127\.0\.0\.1:1\//);

  c = capture();
  expect(await main(['directory', 'lookup', 'd.example', '--config', ini], c.io)).toBe(2);
  expect(c.err.join('\n')).toMatch(/^none: /);

  c = capture();
  expect(await main(['directory', 'status', '--config', ini], c.io)).toBe(0);
  const lines = c.out.join('\n').split('\n');
  expect(lines[0]).toMatch(/^DOMAIN\s+STATE\s+SERIAL\s+CURRENT KEY\s+EXPIRES\s+LAST FETCH\s+LAST ERROR$/);
  expect(lines[1]).toMatch(/^b\.example\s+valid\s+3\s+b\.example:v1\s+\d{4}-\S+Z\s+\d{4}-\S+Z\s+-$/);
  expect(lines[2]).toMatch(/^c\.example\s+none\s+-\s+-\s+-\s+-\s+\d{4}-\S+Z Cannot fetch/);

  c = capture();
  expect(await main(['directory', 'status', '--config', ini, '--json'], c.io)).toBe(0);
  const rows = JSON.parse(c.out.join('\n')) as { domain: string; serial?: number }[];
  expect(rows.map((r) => [r.domain, r.serial])).toEqual([
    ['b.example', 3],
    ['c.example', undefined],
  ]);
});

test('--help on every subcommand; usage errors', async () => {
  for (const args of [
    ['directory', '--help'],
    ['directory', 'status', '--help'],
    ['directory', 'lookup', '--help'],
    ['publish', '--help'],
    ['publish', 'run', '--help'],
    ['publish', '--config', 'x', '--help'],
  ]) {
    const c = capture();
    expect(await main(args, c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/^Usage: ssmax /);
  }
  let c = capture();
  expect(await main(['directory', 'status'], c.io)).toBe(64);
  expect(c.err.join('\n')).toMatch(/--config is required/);
  c = capture();
  expect(await main(['directory', 'nope'], c.io)).toBe(64);
  c = capture();
  expect(await main(['publish', 'run'], c.io)).toBe(64);
  c = capture();
  expect(await main(['directory', 'status', '--config', join(dir, 'missing.ini')], c.io)).toBe(66);
  expect(c.err.join('\n')).toMatch(/Cannot read config ".*missing\.ini": no such file/);
});

test('config: defaults, relative paths, errors naming the key; the shipped file parses', () => {
  const c = loadDirectoryConfig(ini);
  expect(c.roots).toEqual([join(dir, 'root.pem')]);
  expect(c.cacheDir).toBe(join(dir, 'cache'));
  expect(c.dns).toBe(false);
  expect(c.fetchTimeoutMs).toBe(10000);
  expect(c.refreshAhead).toBe(0.25);
  expect(c.peers['b.example']).toBe(server.url('b.example'));
  expect(directoryOptions(c).resolver).toBeNull();

  const shipped = loadDirectoryConfig(join(__dirname, '..', '..', 'config', 'ssmax-directory.ini'));
  expect(shipped).toMatchObject({
    dns: true,
    fetchTimeoutMs: 10000,
    refreshAhead: 0.25,
    refreshJitter: 0.1,
    retryMs: 60000,
    negativeTtlMs: 300000,
    dnsRecheckMs: 300000,
    peers: {},
    hosts: {},
  });
  expect(shipped.cacheDir).toBeUndefined();

  const bad = join(dir, 'bad.ini');
  writeFileSync(bad, '[directory]\nroots=root.pem\nrefresh_ahead=2\n');
  expect(() => loadDirectoryConfig(bad)).toThrow("[directory] refresh_ahead: must be a number from 0 to 1, got '2'");
  writeFileSync(bad, '[directory]\nroots=root.pem\n[peers]\nb.example=http://ssmax.b.example/\n');
  expect(() => loadDirectoryConfig(bad)).toThrow('[peers] b.example: URL "http://ssmax.b.example/" is not https');
  writeFileSync(bad, '[directory]\n');
  expect(() => loadDirectoryConfig(bad)).toThrow('[directory] roots: is required');
});
