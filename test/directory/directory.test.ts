/**
 * The directory client against real organisations under one SSMAX root and
 * real HTTPS servers on loopback, with a simulated clock: exchange of bundles,
 * each refusal with its reason, the publisher down past the cache lifetime,
 * DNS discovery through an injected resolver, concurrent lookups, and the
 * LMDB cache across a restart.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certificateRef } from '../../src/chain/certificate-lookup';
import { Directory, DirectoryError, type DirectoryOptions } from '../../src/directory/directory';
import { LmdbPeerCache } from '../../src/directory/cache';
import { type TxtResolver, parseTxtRecord } from '../../src/directory/discovery';
import { BundleServer, DAY, HOUR, type Org, bundleOf, makeOrg, rogueSigner, wholeSecondNow } from './fixtures';

async function refusal(p: Promise<unknown>): Promise<DirectoryError> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof DirectoryError)) throw err;
    return err;
  }
  throw new Error('expected a DirectoryError');
}

let a: Org;
let b: Org;
let serverA: BundleServer;
let serverB: BundleServer;
let now: number;
const clock = () => now;
const open: Directory[] = [];

function directory(over: Partial<DirectoryOptions> = {}): Directory {
  const d = new Directory({
    roots: [a.fx.root.certificate.pem],
    staticPeers: { 'a.example': serverA.url('a.example'), 'b.example': serverB.url('b.example') },
    hosts: { 'ssmax.a.example': '127.0.0.1', 'ssmax.b.example': '127.0.0.1' },
    resolver: null,
    clock,
    random: () => 0.5,
    fetchTimeoutMs: 3000,
    retryMs: 60000,
    ...over,
  });
  open.push(d);
  return d;
}

beforeAll(async () => {
  a = makeOrg('a.example');
  b = makeOrg('b.example', a.fx.root);
  serverA = await new BundleServer(a.tls).start();
  serverB = await new BundleServer(b.tls).start();
});

beforeEach(() => {
  now = wholeSecondNow();
  serverA.body = bundleOf(a, 1, now);
  serverB.body = bundleOf(b, 1, now);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

afterAll(async () => {
  await serverA.stop();
  await serverB.stop();
});

describe('two organisations sharing only the SSMAX root', () => {
  test("each fetches and verifies the other's bundle", async () => {
    const dirA = directory();
    const peer = await dirA.lookup('B.Example.');
    expect(peer.domain).toBe('b.example');
    expect(peer.serial).toBe(1);
    expect(peer.currentKey.keyId).toBe('b.example:v1');
    expect(peer.currentKey.version).toBe(1);
    expect(peer.currentKey.publicKey).toHaveLength(33);
    expect(peer.currentKey.certificate).toBe(b.encV1.pem);
    expect(peer.keys.map((k) => [k.keyId, k.state])).toEqual([['b.example:v1', 'current']]);
    expect(peer.orgCaChain).toEqual([b.fx.orgCa.certificate.pem]);
    expect(peer.crls).toEqual(b.crls);
    expect(peer.abuseContact).toBe('mailto:abuse@b.example');
    expect(peer.inboundPolicy.encryption).toBe('required');
    expect(peer.expires.getTime()).toBe(now + HOUR);

    const ref = certificateRef(b.seal.der);
    const seal = peer.sealingCertificate(ref, new Date(now));
    expect(seal?.certificate).toBe(b.seal.pem);
    expect(seal?.domain).toBe('b.example');
    expect(seal?.publicKey.asymmetricKeyType).toBe('ec');
    expect(peer.sealingCertificate(certificateRef(a.seal.der), new Date(now))).toBeUndefined();
    expect(peer.sealingCertificate(ref, new Date(now + 400 * 86400000))).toBeUndefined(); // past the certificate's validity

    const dirB = directory();
    expect((await dirB.lookup('a.example')).currentKey.keyId).toBe('a.example:v1');
  });

  test('a second lookup is served from memory; concurrent first lookups share one fetch', async () => {
    const dir = directory();
    const before = serverB.requests;
    const all = await Promise.all(Array.from({ length: 8 }, () => dir.lookup('b.example')));
    expect(new Set(all.map((p) => p.id)).size).toBe(1);
    await dir.lookup('b.example');
    expect(serverB.requests - before).toBe(1);
  });

  test('refresh() answers from a fetch started after the call, never from one in flight since before a re-publication', async () => {
    const dir = directory();
    expect((await dir.lookup('a.example')).serial).toBe(1);
    let release!: () => void;
    serverA.hold = new Promise<void>((r) => {
      release = r;
    });
    try {
      const before = serverA.requests;
      // a fetch under way (a background refresh, another message's refresh) got the bundle as it was
      const early = dir.refresh('a.example');
      while (serverA.requests === before) await new Promise((r) => setTimeout(r, 10));
      // a.example re-publishes (e.g. with a renewed sealing certificate); then two callers ask for what is published now
      serverA.body = bundleOf(a, 2, now);
      const late = [dir.refresh('a.example'), dir.refresh('a.example')];
      release();
      serverA.hold = undefined;
      expect((await early).serial).toBe(1);
      expect((await Promise.all(late)).map((e) => e.serial)).toEqual([2, 2]);
      // the two late callers shared one new fetch
      expect(serverA.requests - before).toBe(2);
    } finally {
      release();
      serverA.hold = undefined;
    }
  });

  test("the clock may also give a Date (as keyd's does)", async () => {
    const dir = directory({ clock: () => new Date(now) });
    expect((await dir.lookup('b.example')).serial).toBe(1);
    now += 2 * HOUR;
    await serverB.stop();
    try {
      expect((await refusal(dir.lookup('b.example'))).code).toBe('unavailable');
    } finally {
      await serverB.start();
    }
  });

  test('the domains kept in memory are capped (least recently used dropped); a dropped peer is read again from the cache, not fetched', async () => {
    const dir = directory({ maxPeersInMemory: 3 });
    const inMemory = () => (dir as unknown as { peers: Map<string, unknown> }).peers;
    const before = serverB.requests;
    await dir.lookup('b.example');
    for (let i = 0; i < 200; i++) expect((await refusal(dir.lookup(`x${i}.example`))).code).toBe('none');
    expect(inMemory().size).toBe(3);
    expect(inMemory().has('b.example')).toBe(false);
    // dropped: asked for again, its bundle is read (and verified) again from the peer cache, no fetch
    expect((await dir.lookup('b.example')).domain).toBe('b.example');
    expect(inMemory().has('b.example')).toBe(true);
    expect(serverB.requests - before).toBe(1);
    // used recently, it stays while other domains come and go
    for (let i = 0; i < 5; i++) {
      await refusal(dir.lookup(`y${i}.example`));
      await dir.lookup('b.example');
    }
    expect(inMemory().size).toBe(3);
    expect(inMemory().has('b.example')).toBe(true);
    expect(serverB.requests - before).toBe(1);
  });

  test('a Unicode spelling of a domain (full-width letters, a soft hyphen) is looked up in its ASCII form: the same bundle, one fetch; one that maps to no name is "none"', async () => {
    const dir = directory();
    const before = serverB.requests;
    const ascii = await dir.lookup('b.example');
    expect((await dir.lookup('\uff42.example')).id).toBe(ascii.id);
    expect((await dir.lookup('B\u00ad.EXAMPLE')).domain).toBe('b.example');
    expect(serverB.requests - before).toBe(1);
    const e = await refusal(dir.lookup('b\u200d.example'));
    expect(e.code).toBe('none');
  });

  test('a domain outside the static map, with DNS off, is "none"', async () => {
    const e = await refusal(directory().lookup('c.example'));
    expect(e.code).toBe('none');
    expect(e.domain).toBe('c.example');
  });
});

describe('refusals, each with its reason', () => {
  test('a bundle signed by a key the org CA did not certify', async () => {
    serverB.body = bundleOf(b, 1, now, HOUR, { signer: rogueSigner('b.example') });
    const e = await refusal(directory().lookup('b.example'));
    expect(e.code).toBe('invalid');
    expect(e.detail).toMatch(/signer-not-certified/);
  });

  test("a bundle signed by another organisation's signer", async () => {
    serverB.body = bundleOf(b, 1, now, HOUR, { signer: a.signer });
    const e = await refusal(directory().lookup('b.example'));
    expect(e.code).toBe('invalid');
    expect(e.detail).toMatch(/signer-not-certified/);
  });

  test('an older bundle replayed after a newer one was accepted', async () => {
    const dir = directory();
    const old = bundleOf(b, 4, now);
    serverB.body = bundleOf(b, 5, now);
    expect((await dir.lookup('b.example')).serial).toBe(5);
    serverB.body = old;
    const e = await refusal(dir.refresh('b.example'));
    expect(e.code).toBe('invalid');
    expect(e.detail).toMatch(/replayed/);
    expect(e.detail).toMatch(/serial 4, older than 5/);
    // The newer bundle stays in service.
    expect((await dir.lookup('b.example')).serial).toBe(5);
    expect(dir.status().find((s) => s.domain === 'b.example')?.lastError).toMatch(/replayed/);
  });

  test('a bundle for another domain', async () => {
    serverB.body = bundleOf(a, 1, now);
    const e = await refusal(directory().lookup('b.example'));
    expect(e.code).toBe('invalid');
    expect(e.detail).toMatch(/wrong-domain/);
    expect(e.detail).toContain('Bundle is for "a.example", not "b.example"');
  });

  test('a tampered bundle', async () => {
    const doc = JSON.parse(bundleOf(b, 1, now)) as { payload: { abuseContact: string } };
    doc.payload.abuseContact = 'mailto:attacker@evil.example';
    serverB.body = JSON.stringify(doc);
    const e = await refusal(directory().lookup('b.example'));
    expect(e.code).toBe('invalid');
    expect(e.detail).toMatch(/bad-signature/);
  });

  test('a bundle under an untrusted root', async () => {
    // TLS still trusts the real root (the publisher's server certificate), the bundle check does not.
    const dir = directory({ roots: [makeOrg('b.example').fx.root.certificate.pem], tlsCa: [a.fx.root.certificate.pem] });
    const e = await refusal(dir.lookup('b.example'));
    expect(e.code).toBe('invalid');
    expect(e.detail).toMatch(/untrusted/);
  });

  test('a publisher whose TLS certificate does not chain to the TLS CAs is "unavailable"', async () => {
    const e = await refusal(directory({ tlsCa: [makeOrg('x.example').fx.root.certificate.pem] }).lookup('b.example'));
    expect(e.code).toBe('unavailable');
    expect(e.detail).toMatch(/Cannot fetch/);
  });

  test('not JSON', async () => {
    serverB.body = '<html>hello</html>';
    const e = await refusal(directory().lookup('b.example'));
    expect(e.code).toBe('invalid');
    expect(e.detail).toMatch(/malformed/);
  });
});

describe('the publisher unreachable', () => {
  test('cached bundle served until it expires, then "unavailable", then served again when the publisher returns', async () => {
    const dir = directory({ retryMs: 60000 });
    const first = await dir.lookup('b.example');
    await serverB.stop();
    try {
      // Into the refresh window (last 25 % of the hour, less up to 10 % jitter): the cached bundle is served at once.
      now += 50 * 60000;
      expect((await dir.lookup('b.example')).id).toBe(first.id);
      await dir.settled();
      const st = dir.status().find((s) => s.domain === 'b.example');
      expect(st?.lastError).toMatch(/Cannot fetch/);
      expect(st?.serial).toBe(1);
      expect(st?.state).toBe('refresh-due');
      // Past expiry: temporary failure.
      now = first.expires.getTime() + 1000;
      const e = await refusal(dir.lookup('b.example'));
      expect(e.code).toBe('unavailable');
      expect(dir.status().find((s) => s.domain === 'b.example')?.state).toBe('expired');
      // Within the retry interval the error is repeated without a new attempt.
      const again = await refusal(dir.lookup('b.example'));
      expect(again).toBe(e);
    } finally {
      serverB.body = bundleOf(b, 2, now);
      await serverB.start();
    }
    now += 61000;
    const back = await dir.lookup('b.example');
    expect(back.serial).toBe(2);
    expect(dir.status().find((s) => s.domain === 'b.example')?.state).toBe('valid');
  });

  test('a refresh ahead of expiry picks up a new bundle in the background', async () => {
    const dir = directory();
    expect((await dir.lookup('b.example')).serial).toBe(1);
    now += 10 * 60000;
    serverB.body = bundleOf(b, 2, now);
    expect((await dir.lookup('b.example')).serial).toBe(1); // not yet due
    await dir.settled();
    now += 41 * 60000; // 51 min after the first issue: due (45 min minus up to 6 min jitter, here 3)
    expect((await dir.lookup('b.example')).serial).toBe(1); // served from cache, refresh starts
    await dir.settled();
    expect((await dir.lookup('b.example')).serial).toBe(2);
  });
});

describe('DNS discovery through an injected resolver', () => {
  const zone = new Map<string, string[][]>();
  const queries: string[] = [];
  const resolver = async (name: string): Promise<string[][]> => {
    queries.push(name);
    const r = zone.get(name);
    if (r === ('servfail' as unknown)) throw Object.assign(new Error('queryTxt ESERVFAIL'), { code: 'ESERVFAIL' });
    if (!r) throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return r;
  };

  beforeEach(() => {
    zone.clear();
    queries.length = 0;
  });

  test('finds the bundle through _ssmax.<domain>; "none" without a record; "unavailable" on SERVFAIL', async () => {
    const id1 = 'bundle-id-0001';
    serverB.body = bundleOf(b, 1, now, HOUR, { id: id1 });
    // Split into two strings, as long TXT records are.
    zone.set('_ssmax.b.example', [['v=spf1 -all'], [`v=ssmax1; u=${serverB.url('b.example')}`, `; id=${id1}`]]);
    zone.set('_ssmax.d.example', 'servfail' as unknown as string[][]);
    const dir = directory({ staticPeers: {}, resolver, dnsRecheckMs: 5 * 60000 });
    const peer = await dir.lookup('b.example');
    expect(peer.id).toBe(id1);
    expect(peer.url).toBe(serverB.url('b.example'));
    const none = await refusal(dir.lookup('c.example'));
    expect(none.code).toBe('none');
    expect(none.detail).toContain('_ssmax.c.example');
    // The negative answer is remembered.
    await refusal(dir.lookup('c.example'));
    expect(queries.filter((q) => q === '_ssmax.c.example')).toHaveLength(1);
    expect((await refusal(dir.lookup('d.example'))).code).toBe('unavailable');

    // A re-publication on schedule with the TXT record unchanged: the recheck does not fetch.
    serverB.body = bundleOf(b, 2, now, HOUR, { id: 'bundle-id-scheduled' });
    const fetched = serverB.requests;
    now += 6 * 60000;
    expect((await dir.lookup('b.example')).id).toBe(id1);
    await dir.settled();
    expect(serverB.requests).toBe(fetched);
    expect(queries.filter((q) => q === '_ssmax.b.example')).toHaveLength(2);

    // The organisation changes the TXT id: after the recheck interval the cache is replaced.
    const id2 = 'bundle-id-0002';
    serverB.body = bundleOf(b, 3, now, HOUR, { id: id2 });
    zone.set('_ssmax.b.example', [[`v=ssmax1; u=${serverB.url('b.example')}; id=${id2}`]]);
    now += 6 * 60000;
    expect((await dir.lookup('b.example')).id).toBe(id1);
    await dir.settled();
    const fresh = await dir.lookup('b.example');
    expect(fresh.id).toBe(id2);
    expect(fresh.serial).toBe(3);
  });

  test('static map entries override DNS', async () => {
    zone.set('_ssmax.b.example', [['v=ssmax1; u=https://nowhere.invalid/.well-known/ssmax/bundle']]);
    const dir = directory({ resolver });
    expect((await dir.lookup('b.example')).serial).toBe(1);
    expect(queries).toEqual([]);
  });

  test('an invalid SSMAX TXT record is "invalid"', async () => {
    zone.set('_ssmax.b.example', [['v=ssmax1; u=http://ssmax.b.example/x']]);
    const e = await refusal(directory({ staticPeers: {}, resolver }).lookup('b.example'));
    expect(e.code).toBe('invalid');
    expect(e.detail).toContain('is not https');
  });

  test('TXT record parsing', () => {
    expect(parseTxtRecord('v=ssmax1; u=https://x.example/b; id=abcdefgh')).toEqual({
      url: 'https://x.example/b',
      id: 'abcdefgh',
      source: 'dns',
    });
    expect(parseTxtRecord('V=SSMAX1;U=https://x.example/b;future=1')).toEqual({ url: 'https://x.example/b', source: 'dns' });
    expect(parseTxtRecord('v=spf1 -all')).toBeUndefined();
    expect(parseTxtRecord('v=ssmax2; u=https://x.example/b')).toMatch(/version/);
    expect(parseTxtRecord('v=ssmax1')).toMatch(/"u" tag/);
    expect(parseTxtRecord('v=ssmax1; u=https://x.example/b; u=https://y.example/')).toMatch(/twice/);
    expect(parseTxtRecord('v=ssmax1; u=https://x.example/b; id=a b')).toMatch(/id/);
  });
});

describe('a peer accepted before whose TXT record is gone', () => {
  test('is unavailable for now (4xx) within [directory] withdrawal_grace_seconds of its last accepted bundle, not a domain without SSMAX; after it, none', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'ssmax-dircache-'));
    let published = true;
    const zone: TxtResolver = (name) =>
      published && name === '_ssmax.b.example'
        ? Promise.resolve([[`v=ssmax1; u=${serverB.url('b.example')}`]])
        : Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' }));
    const opts = { cacheDir, resolver: zone, staticPeers: {}, retryMs: 0, negativeTtlMs: 0, withdrawalGraceMs: DAY };
    // another worker on the same cache asked before b.example published anything: it holds no bundle of its own
    const other = directory(opts);
    published = false;
    expect((await refusal(other.lookup('b.example'))).code).toBe('none');
    published = true;
    const d = directory(opts);
    expect((await d.lookup('b.example')).serial).toBe(1);
    const accepted = now;
    // the bundle expires and the TXT record vanishes (a DNS fault)
    published = false;
    now += 2 * HOUR;
    const gone = await refusal(d.lookup('b.example'));
    expect([gone.code, gone.detail]).toEqual(['unavailable', expect.stringMatching(/withdrawal_grace_seconds/)]);
    expect((await refusal(other.lookup('b.example'))).code).toBe('unavailable'); // from the shared cache
    // another worker (or a restart) on the same cache knows when the bundle was last accepted
    await d.close();
    const restarted = directory(opts);
    expect((await refusal(restarted.lookup('b.example'))).code).toBe('unavailable');
    // a day after the last accepted bundle: the domain is taken as without SSMAX
    now = accepted + DAY;
    expect((await refusal(restarted.lookup('b.example'))).code).toBe('none');
    // a domain never accepted here is 'none' at once
    expect((await refusal(restarted.lookup('c.example'))).code).toBe('none');
  });
});

describe('the LMDB cache', () => {
  test("a worker writing an older record (it failed a fetch after another accepted a newer bundle) keeps the newer bundle's text, its URL and the time it was accepted", async () => {
    const cache = LmdbPeerCache.open(mkdtempSync(join(tmpdir(), 'ssmax-dircache-')));
    try {
      await cache.put({
        domain: 'b.example',
        highestSerial: 2,
        text: 'T2',
        url: 'https://u2/',
        source: 'dns',
        txtId: 'id2',
        lastFetch: 2000,
      });
      await cache.put({
        domain: 'b.example',
        highestSerial: 1,
        text: 'T1',
        url: 'https://u1/',
        source: 'dns',
        txtId: 'id1',
        lastFetch: 1000,
        lastError: 'x',
        lastErrorAt: 3000,
      });
      expect(cache.get('b.example')).toEqual({
        domain: 'b.example',
        highestSerial: 2,
        text: 'T2',
        url: 'https://u2/',
        source: 'dns',
        txtId: 'id2',
        lastFetch: 2000,
        lastError: 'x',
        lastErrorAt: 3000,
      });
    } finally {
      await cache.close();
    }
  });

  test('a domain whose TXT record points at a bundle that fails is not written (any sender could grow the cache with its own domains); an accepted peer is', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'ssmax-dircache-'));
    const zone: TxtResolver = (name) => {
      const m = /^_ssmax\.(evil-\d+)\.example$/.exec(name);
      return m
        ? Promise.resolve([[`v=ssmax1; u=https://127.0.0.1:1/${m[1]}`]])
        : Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' }));
    };
    const d = directory({ cacheDir, resolver: zone, fetchTimeoutMs: 3000 }); // the evil ones are refused at once; b.example's real fetch needs the time
    for (let i = 0; i < 20; i++) expect((await refusal(d.lookup(`evil-${i}.example`))).code).toBe('unavailable');
    expect((await d.lookup('b.example')).serial).toBe(1);
    await d.close();
    const cache = LmdbPeerCache.open(cacheDir);
    try {
      expect(cache.all().map((p) => p.domain)).toEqual(['b.example']);
    } finally {
      await cache.close();
    }
  });

  test('two workers on one cache: a serial one of them accepted is the floor for the other (a replay older than it is refused)', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'ssmax-dircache-'));
    const workerA = directory({ cacheDir });
    const workerB = directory({ cacheDir });
    try {
      serverB.body = bundleOf(b, 5, now);
      expect((await workerB.lookup('b.example')).serial).toBe(5);
      serverB.body = bundleOf(b, 10, now);
      expect((await workerA.refresh('b.example')).serial).toBe(10);
      // B still holds 5 in memory; the publisher (or someone in the path) now serves 7
      serverB.body = bundleOf(b, 7, now);
      const e = await refusal(workerB.refresh('b.example'));
      expect(e.code).toBe('invalid');
      expect(e.detail).toMatch(/serial 7, older than 10/);
    } finally {
      await workerA.close();
      await workerB.close();
    }
  });

  test('a restart serves the cached bundle without fetching, and keeps the highest serial against replays', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'ssmax-dircache-'));
    serverB.body = bundleOf(b, 7, now);
    const first = directory({ cacheDir });
    expect((await first.lookup('b.example')).serial).toBe(7);
    await first.close();

    const before = serverB.requests;
    const second = directory({ cacheDir });
    const st = second.status();
    expect(st.map((s) => [s.domain, s.serial, s.currentKeyId, s.state])).toEqual([['b.example', 7, 'b.example:v1', 'valid']]);
    expect((await second.lookup('b.example')).serial).toBe(7);
    expect(serverB.requests).toBe(before);
    await second.close();

    // After expiry a restarted directory fetches, and still refuses an older serial.
    now += 2 * HOUR;
    serverB.body = bundleOf(b, 6, now);
    const third = directory({ cacheDir });
    const e = await refusal(third.lookup('b.example'));
    expect(e.code).toBe('invalid');
    expect(e.detail).toMatch(/replayed/);
    expect(third.status()[0]?.state).toBe('none');
  });
});
