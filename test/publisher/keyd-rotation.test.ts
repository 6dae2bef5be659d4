/**
 * End to end with real processes: keyd (`ssmax keyd run`) and the publisher
 * (`ssmax publish --config`) of organisation A, and the directory of a peer
 * that shares only the SSMAX root. The publisher publishes keyd's current key;
 * a rotation through keyd's API makes it publish again with a higher serial;
 * the peer's directory sees the new current key after its refresh. A restarted
 * publisher continues the serial; a stopped one makes the peer's lookups
 * temporary failures once the cached bundle expires, and they succeed again
 * when it returns.
 */
import { request } from 'node:https';
import { Directory, DirectoryError } from '../../src/directory/directory';
import { type KeydProcess, clientFor, startKeydProcess } from '../support/keyd-process';
import { type Org, makeOrg, wholeSecondNow } from '../directory/fixtures';
import { type PublisherProcess, freePort, startPublisherProcess, writePublisherFiles, writePublisherIni } from './fixtures';

function health(org: Org, port: number): Promise<{ serial?: number; ok: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/.well-known/ssmax/health',
        servername: `ssmax.${org.domain}`,
        ca: [org.fx.root.certificate.pem],
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(parts).toString('utf8')) as { serial?: number; ok: boolean }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 10000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('keyd rotation reaches a peer through the publisher', () => {
  let a: Org;
  let keyd: KeydProcess;
  let pub: PublisherProcess | undefined;
  let iniFile: string;

  beforeAll(async () => {
    a = makeOrg('a.example');
    keyd = await startKeydProcess(a.fx.configFile);
    writePublisherFiles(a);
    iniFile = writePublisherIni(a, { keydPort: keyd.port, poll: '0.2', lifetime: 3600, port: await freePort() });
  });

  afterAll(async () => {
    await pub?.stop();
    await keyd.stop();
  });

  test('publish, rotate, re-publish with a higher serial, the peer refreshes; restart and outage', async () => {
    pub = await startPublisherProcess(iniFile);
    let now = wholeSecondNow() + 1000;
    const url = () => `https://ssmax.a.example:${pub!.port}/.well-known/ssmax/bundle`;
    const peer = () =>
      new Directory({
        roots: [a.fx.root.certificate.pem],
        staticPeers: { 'a.example': url() },
        hosts: { 'ssmax.a.example': '127.0.0.1' },
        resolver: null,
        clock: () => now,
        random: () => 0,
        retryMs: 500,
      });
    let dir = peer();
    try {
      const admin = clientFor(a.fx, keyd.port, a.fx.clients.admin);
      const pubMaterial = await admin.call<{ current: string }>('GET', '/v1/public');
      const first = await dir.lookup('a.example');
      expect(first.currentKey.keyId).toBe(pubMaterial.current);
      expect(first.currentKey.keyId).toBe('a.example:v1');

      // Rotate in keyd: the publisher notices within a poll and publishes a higher serial.
      const rotated = await admin.call<{ changes: { keyId: string; change: string }[] }>('POST', '/v1/keys/rotate');
      admin.close();
      expect(rotated.changes.map((c) => c.keyId)).toContain('a.example:v2');
      const h = await until('the re-publication', async () => {
        const x = await health(a, pub!.port);
        return x.serial !== undefined && x.serial > first.serial ? x : undefined;
      });
      expect(h.serial).toBeGreaterThan(first.serial);

      // The peer still serves its cached bundle until its refresh point; then it refreshes in the background.
      now += 10 * 60000;
      expect((await dir.lookup('a.example')).currentKey.keyId).toBe('a.example:v1');
      now += 40 * 60000; // 50 minutes into a one-hour bundle: past the refresh point (75 %)
      expect((await dir.lookup('a.example')).serial).toBe(first.serial);
      await dir.settled();
      const fresh = await dir.lookup('a.example');
      expect(fresh.serial).toBe(h.serial);
      expect(fresh.currentKey.keyId).toBe('a.example:v2');
      expect(fresh.keys.map((k) => [k.keyId, k.state])).toEqual([
        ['a.example:v1', 'retired'],
        ['a.example:v2', 'current'],
      ]);

      // A restarted publisher continues the serial.
      expect(await pub.stop()).toBe(0);
      pub = await startPublisherProcess(iniFile);
      const h2 = await until('the restarted publisher', async () => ((await health(a, pub!.port)).ok ? health(a, pub!.port) : undefined));
      expect(h2.serial).toBe(h.serial! + 1);

      // The publisher down for longer than the cache lifetime: temporary failures, then mail flows again.
      await dir.close();
      dir = peer();
      now = wholeSecondNow() + 1000;
      const cached = await dir.lookup('a.example');
      expect(cached.serial).toBe(h2.serial);
      expect(await pub.stop()).toBe(0);
      pub = undefined;
      now = cached.expires.getTime() + 1000;
      const e = await dir.lookup('a.example').then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(DirectoryError);
      expect((e as DirectoryError).code).toBe('unavailable');
      expect(dir.status()[0]).toMatchObject({ domain: 'a.example', state: 'expired' });
      expect(dir.status()[0]?.lastError).toMatch(/Cannot fetch/);
      // It returns (same address) at least 3 s after the cached bundle was issued, so its new bundle,
      // issued by the real clock, is valid at the peer's simulated time.
      await until('two seconds', async () => (Date.now() >= cached.issued.getTime() + 3000 ? true : undefined));
      pub = await startPublisherProcess(iniFile);
      now += 600; // past the retry interval
      const back = await dir.lookup('a.example');
      expect(back.serial).toBe(h2.serial! + 1);
      expect(back.currentKey.keyId).toBe('a.example:v2');
    } finally {
      await dir.close();
    }
  });
});
