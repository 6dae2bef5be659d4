/**
 * Bundles that never chain to an SSMAX root cost a gateway bounded memory and
 * one fetch: a sender can make a DNS wildcard name a bundle URL for every
 * subdomain it invents, serving a different bundle of about a megabyte (one
 * self-signed CRL with 30 000 entries) at every request. The directory checks
 * the bundle's organisation CA against the roots before it parses the rest,
 * its parse cache is keyed by SHA-256 and bounded in bytes, and a refused
 * stranger is remembered (per domain and per URL) for the negative TTL.
 * A real HTTPS server on loopback; the heap is measured after collection.
 */
import { createServer, type Server } from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Directory, DirectoryError } from '../../src/directory/directory';
import { parseCrl } from '../../src/pki/crl';
import { createRootCa } from '../../src/pki/issue';
import { generateP256KeyPair } from '../../src/pki/keys';
import { ValidationCache } from '../../src/pki/validate';
import { DAY, type Org, makeOrg, wholeSecondNow } from './fixtures';

jest.setTimeout(300000);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len =
    n < 0x80
      ? Buffer.from([n])
      : n < 0x10000
        ? Buffer.from([0x82, n >> 8, n & 0xff])
        : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}
const utcTime = (d: Date) => der(0x17, Buffer.from(`${d.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`, 'latin1'));
const ECDSA_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');

const tbsMemo = new Map<string, Buffer>();

/** The PEM of a CRL by `issuerDer` with `count` entries, its signature random bytes (every call a different CRL). */
function bigCrl(issuerDer: Uint8Array, count: number, now: number): string {
  const memo = `${Buffer.from(issuerDer).toString('hex')}:${count}:${now}`;
  let tbs = tbsMemo.get(memo);
  if (!tbs) {
    const when = utcTime(new Date(now - 1000));
    const entries = Buffer.concat(
      Array.from({ length: count }, (_, i) => der(0x30, Buffer.concat([der(0x02, Buffer.from((0x100000 + i).toString(16), 'hex')), when]))),
    );
    tbs = der(
      0x30,
      Buffer.concat([
        der(0x02, Buffer.from([1])),
        ECDSA_SHA256,
        Buffer.from(issuerDer),
        when,
        utcTime(new Date(now + DAY)),
        der(0x30, entries),
      ]),
    );
    tbsMemo.set(memo, tbs);
  }
  const int = () => der(0x02, Buffer.concat([Buffer.from([0x01]), randomBytes(31)]));
  const sig = der(0x30, Buffer.concat([int(), int()]));
  const crl = der(0x30, Buffer.concat([tbs, ECDSA_SHA256, der(0x03, Buffer.concat([Buffer.from([0]), sig]))]));
  const b64 = crl.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN X509 CRL-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END X509 CRL-----\n`;
}

let org: Org;
let server: Server;
let port = 0;
let requests = 0;
/** A self-signed "organisation CA" no root certifies, and a bundle around a fresh big CRL of it. */
let rogue: ReturnType<typeof createRootCa>;
const CRL_ENTRIES = 30000;
const START = wholeSecondNow();

function untrustedBundle(domain: string): string {
  const now = START;
  const pem = rogue.certificate.pem;
  const payload = {
    format: 'ssmax-bundle/1',
    id: `id-${randomBytes(8).toString('hex')}`,
    domain,
    serial: 1,
    issued: `${new Date(now - 1000).toISOString().slice(0, 19)}Z`,
    expires: `${new Date(now + DAY).toISOString().slice(0, 19)}Z`,
    orgCaChain: [pem],
    encryptionKeys: [
      { version: 1, state: 'current', notBefore: '2026-01-01T00:00:00Z', notAfter: '2027-01-01T00:00:00Z', certificate: pem },
    ],
    sealingCertificates: [pem],
    crls: [bigCrl(rogue.certificate.subjectDer, CRL_ENTRIES, now)],
    abuseContact: `mailto:abuse@${domain}`,
    inboundPolicy: { encryption: 'required', seal: 'required', maxMessageBytes: 1000 },
    signer: pem,
  };
  return JSON.stringify({ payload, signature: { alg: 'ES256', value: randomBytes(64).toString('base64url') } });
}

beforeAll(async () => {
  org = makeOrg('evil.example');
  const now = wholeSecondNow();
  rogue = createRootCa({
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 30 * DAY),
    privateKey: generateP256KeyPair().privateKey,
    commonName: 'Evil CA',
  });
  // every request: a different bundle of about a megabyte, for the domain named in the path
  server = createServer({ cert: org.tls.cert, key: org.tls.key }, (req, res) => {
    requests++;
    const domain = /^\/b\/([a-z0-9.-]+)$/.exec(req.url ?? '')?.[1] ?? 'x.evil.example';
    res.writeHead(200, { 'content-type': 'application/json' }).end(untrustedBundle(domain));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/** A directory whose DNS names `url(domain)` for every domain (a wildcard TXT record). */
function directory(url: (domain: string) => string, more: Partial<ConstructorParameters<typeof Directory>[0]> = {}) {
  return new Directory({
    roots: [org.fx.root.certificate.pem],
    tlsCa: [org.fx.root.certificate.pem],
    hosts: { 'ssmax.evil.example': '127.0.0.1' },
    resolver: async (name) => [[`v=ssmax1; u=${url(name.replace(/^_ssmax\./, ''))}`]],
    retryMs: 0,
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

function heap(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

test('the big CRL of these bundles parses (so an unchecked cache would keep it), and is about a megabyte', () => {
  const bundle = untrustedBundle('a.evil.example');
  expect(bundle.length).toBeGreaterThan(800 * 1024);
  expect(bundle.length).toBeLessThan(1024 * 1024);
  const pem = (JSON.parse(bundle) as { payload: { crls: string[] } }).payload.crls[0] as string;
  expect(parseCrl(pem).entries.size).toBe(CRL_ENTRIES);
});

test('300 different untrusted bundles of about 1 MB each, each for a new domain and URL: all refused (untrusted), heap growth under 40 MB', async () => {
  const dir = directory((d) => `https://ssmax.evil.example:${port}/b/${d}`);
  const ask = async (i: number) => {
    const e = await refusal(dir.lookup(`m${i}.evil.example`));
    expect(e.code).toBe('invalid');
    expect(e.detail).toMatch(/refused \(untrusted\)/);
  };
  try {
    for (let i = 0; i < 10; i++) await ask(i); // warm up: TLS, code paths
    const before = heap();
    const served = requests;
    for (let i = 10; i < 310; i++) await ask(i);
    const growth = heap() - before;
    expect(requests - served).toBe(300); // every bundle was fetched and looked at
    console.log(`heap growth after 300 untrusted 1 MB bundles: ${(growth / 1048576).toFixed(1)} MB`);
    expect(growth).toBeLessThan(40 * 1048576);
  } finally {
    await dir.close();
  }
});

test('a refused stranger is remembered: its domain is not fetched again within the negative TTL, nor its URL for another domain; after the TTL it is', async () => {
  let now = wholeSecondNow();
  const dir = directory(() => `https://ssmax.evil.example:${port}/b/shared.evil.example`, { clock: () => now, negativeTtlMs: 300000 });
  try {
    const before = requests;
    expect((await refusal(dir.lookup('one.evil.example'))).code).toBe('invalid');
    expect(requests).toBe(before + 1);
    expect((await refusal(dir.lookup('one.evil.example'))).code).toBe('invalid'); // the domain, remembered
    for (let i = 0; i < 20; i++) expect((await refusal(dir.lookup(`w${i}.evil.example`))).detail).toMatch(/remembered/); // the URL
    expect(requests).toBe(before + 1);
    now += 300001;
    expect((await refusal(dir.lookup('one.evil.example'))).detail).toMatch(/refused \(untrusted\)/);
    expect(requests).toBe(before + 2);
  } finally {
    await dir.close();
  }
});

test('the validation cache is keyed by digest and bounded in bytes: big CRLs beyond the bound are dropped, the oldest first', () => {
  const cache = new ValidationCache(10000, 8 * 1048576);
  const now = wholeSecondNow();
  const pems = Array.from({ length: 8 }, () => bigCrl(rogue.certificate.subjectDer, 5000, now));
  for (const pem of pems) expect(cache.crl(pem).entries.size).toBe(5000);
  expect(cache.bytes).toBeLessThanOrEqual(8 * 1048576);
  expect(cache.bytes).toBeGreaterThan(0);
  const misses = cache.misses;
  cache.crl(pems[7] as string); // the newest is still there
  expect(cache.misses).toBe(misses);
  cache.crl(pems[0] as string); // the oldest was dropped
  expect(cache.misses).toBe(misses + 1);
  // one larger than a quarter of the bound is parsed but never kept
  const small = new ValidationCache(10000, 1048576);
  small.crl(pems[1] as string);
  expect(small.bytes).toBe(0);
  expect(small.size).toBe(0);
});
