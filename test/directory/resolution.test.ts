/**
 * Name resolution of the directory: the host names of bundle URLs go through
 * the directory's own DNS resolver (the configured servers, else the
 * system's), never through getaddrinfo on libuv's shared threads; and one
 * deadline (`fetchTimeoutMs`) bounds the TXT lookup, the host name and the
 * fetch together. A DNS server on a loopback port that never answers stands
 * for a publisher whose name servers drop queries.
 */
import dns from 'node:dns';
import { createSocket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Directory, DirectoryError } from '../../src/directory/directory';
import { makeOrg, type Org } from './fixtures';

jest.setTimeout(60000);

let org: Org;
const silent = createSocket('udp4');
const queries: string[] = [];
let silentPort = 0;

beforeAll(async () => {
  org = makeOrg('b.example');
  // a name server that reads every query and answers none
  silent.on('message', (q: Buffer) => {
    const labels: string[] = [];
    for (let off = 12; off < q.length && q[off]! > 0; off += q[off]! + 1)
      labels.push(q.subarray(off + 1, off + 1 + q[off]!).toString('latin1'));
    queries.push(labels.join('.'));
  });
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  silentPort = silent.address().port;
});
afterAll(async () => {
  await new Promise<void>((r) => silent.close(() => r()));
});

/** A directory whose TXT records (injected) name `https://<host>/…` for every domain. */
function directory(host: string, more: Partial<ConstructorParameters<typeof Directory>[0]> = {}): Directory {
  return new Directory({
    roots: [org.fx.root.certificate.pem],
    resolver: async (name) => [[`v=ssmax1; u=https://${host}/.well-known/ssmax/bundle?for=${name}`]],
    retryMs: 0,
    negativeTtlMs: 0,
    ...more,
  });
}

async function refusal(p: Promise<unknown>): Promise<DirectoryError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DirectoryError);
  return e as DirectoryError;
}

test('publisher name servers that never answer: 8 lookups at once fail within the deadline, and a file read meanwhile is not held up', async () => {
  const dir = directory('ssmax.silent.example', { dnsServers: [`127.0.0.1:${silentPort}`], fetchTimeoutMs: 1500 });
  const file = join(mkdtempSync(join(tmpdir(), 'ssmax-resolve-')), 'f');
  writeFileSync(file, 'x'.repeat(4096));
  try {
    const t0 = Date.now();
    const lookups = Array.from({ length: 8 }, (_, i) => refusal(dir.lookup(`m${i}.b.example`)).then((e) => ({ e, ms: Date.now() - t0 })));
    await new Promise((r) => setTimeout(r, 200)); // the lookups are waiting for the silent server now
    const r0 = Date.now();
    for (let i = 0; i < 20; i++) expect((await readFile(file)).length).toBe(4096);
    const readMs = Date.now() - r0;
    const done = await Promise.all(lookups);
    for (const { e, ms } of done) {
      expect(e.code).toBe('unavailable');
      expect(ms).toBeLessThan(1500 + 1500); // the deadline, and slack for a loaded machine
    }
    expect(readMs).toBeLessThan(1000);
    expect(queries).toContain('ssmax.silent.example'); // the configured server was asked, and said nothing
  } finally {
    await dir.close();
  }
});

test("without dns_servers the publisher's host name goes to the system's servers through the directory's resolver, never to dns.lookup (getaddrinfo)", async () => {
  const calls: string[] = [];
  const original = dns.lookup;
  (dns as { lookup: unknown }).lookup = (host: string, ...rest: unknown[]) => {
    calls.push(host);
    return (original as (...a: unknown[]) => unknown)(host, ...rest);
  };
  const dir = directory('ssmax.nowhere.example', { fetchTimeoutMs: 3000 });
  try {
    const t0 = Date.now();
    const e = await refusal(dir.lookup('b.example'));
    expect(e.code).toBe('unavailable');
    expect(Date.now() - t0).toBeLessThan(3000 + 1500);
    expect(calls).toEqual([]);
  } finally {
    (dns as { lookup: unknown }).lookup = original;
    await dir.close();
  }
});

test('a TXT lookup that never answers: unavailable once the deadline has passed (one deadline for discovery and fetch)', async () => {
  const dir = directory('ssmax.b.example', { resolver: () => new Promise<string[][]>(() => undefined), fetchTimeoutMs: 800 });
  try {
    const t0 = Date.now();
    const outcome = await Promise.race([
      refusal(dir.lookup('b.example')),
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000).unref()),
    ]);
    expect(outcome).not.toBe('hung');
    const e = outcome as DirectoryError;
    expect(e.code).toBe('unavailable');
    expect(Date.now() - t0).toBeLessThan(800 + 1500);
  } finally {
    await dir.close();
  }
});
