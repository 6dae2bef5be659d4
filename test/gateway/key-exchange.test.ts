/**
 * Key versions on the wire, in-process: the X-SSMAX EHLO keyword, the
 * refresh hint, the advertiser's cache, and the sender's refresh-before-send
 * (bounded probes and refreshes; nothing here can fail a message).
 */
import dns from 'node:dns';
import { createServer, type Server } from 'node:net';
import type { PeerEntry } from '../../src/directory/peer-entry';
import {
  Advertiser,
  KeyWatch,
  MAX_WATCHED_PEERS,
  type KeyWatchOptions,
  advertisement,
  EHLO_PROBE_MAX_BYTES,
  ehloProbe,
  parseAdvertisement,
  parseRefreshHint,
  refreshHint,
  versionOf,
} from '../../src/gateway/key-exchange';

const entry = (version: number, serial = version): PeerEntry =>
  ({ serial, currentKey: { keyId: `b.example:v${version}`, version } }) as unknown as PeerEntry;

test('the keyword: written and read back; foreign or malformed lines ignored', () => {
  const line = advertisement(['b.example:v3'], '0a1b');
  expect(line).toBe('X-SSMAX v=1 keys=b.example:v3 seal=0a1b');
  expect(parseAdvertisement(['250-mx.b.example Hello', '250-PIPELINING', `250-${line}`, '250 SIZE 0'])).toEqual({
    keys: ['b.example:v3'],
    seal: '0a1b',
  });
  expect(parseAdvertisement(['250-PIPELINING', '250 SIZE 0'])).toBeUndefined();
  expect(parseAdvertisement(['250 X-SSMAX v=2 keys=b.example:v9'])).toBeUndefined();
  expect(parseAdvertisement(['250 X-SSMAX v=1 keys=b.example:v3,junk seal=zz'])).toEqual({ keys: ['b.example:v3'] });
  expect(advertisement([], 'ff')).toBe('X-SSMAX v=1 seal=ff');
});

test('the refresh hint of a 250 reply', () => {
  const reply = `Delivered (SSMAX, 1 copy)${refreshHint('b.example', [{ keyId: 'b.example:v1', current: 'b.example:v3' }])} (ABC.1)`;
  expect(reply).toBe('Delivered (SSMAX, 1 copy) (refresh: b.example current key b.example:v3) (ABC.1)');
  expect(parseRefreshHint(reply)).toEqual({ domain: 'b.example', keys: ['b.example:v3'] });
  expect(parseRefreshHint('Delivered (SSMAX, 1 copy)')).toBeUndefined();
  expect(refreshHint('b.example', [])).toBe('');
  expect(versionOf('b.example', 'b.example:v12')).toBe(12);
  expect(versionOf('b.example', 'c.example:v12')).toBeUndefined();
});

test('the advertiser caches keyd’s answer; without keyd it still answers (seal serial only)', async () => {
  let t = 0;
  let calls = 0;
  let fail = false;
  const adv = new Advertiser(
    async () => {
      calls++;
      if (fail) throw new Error('down');
      return { current: `a.example:v${calls}` };
    },
    '0c',
    5000,
    () => t,
  );
  expect(await adv.current()).toBe('X-SSMAX v=1 keys=a.example:v1 seal=0c');
  t = 1000;
  expect(await adv.current()).toBe('X-SSMAX v=1 keys=a.example:v1 seal=0c');
  expect(calls).toBe(1);
  t = 6000; // stale: answers the cached line at once, updates behind
  expect(await adv.current()).toBe('X-SSMAX v=1 keys=a.example:v1 seal=0c');
  await new Promise((r) => setImmediate(r));
  expect(await adv.current()).toBe('X-SSMAX v=1 keys=a.example:v2 seal=0c');
  fail = true;
  let coldCalls = 0;
  const cold = new Advertiser(
    async () => {
      coldCalls++;
      throw new Error('down');
    },
    '0c',
    5000,
    () => t,
  );
  expect(await cold.current()).toBe('X-SSMAX v=1 seal=0c');
  expect(await cold.current()).toBe('X-SSMAX v=1 seal=0c');
  expect(coldCalls).toBe(1); // the failure is remembered for the TTL too
});

test('an answer of keyd without its keys (200, no body) never rejects: the seal serial alone, then the line kept while an update runs behind', async () => {
  let t = 0;
  let answer: unknown = null;
  const adv = new Advertiser(
    async () => answer as { current: string | null },
    '0c',
    5000,
    () => t,
  );
  // the first EHLO waits for the update: it used to reject (a TypeError reading the null answer)
  expect(await adv.current()).toBe('X-SSMAX v=1 seal=0c');
  answer = { current: 'a.example:v3' };
  t = 6000;
  expect(await adv.current()).toBe('X-SSMAX v=1 seal=0c'); // stale: the cached line at once, an update behind
  await new Promise((r) => setImmediate(r));
  expect(await adv.current()).toBe('X-SSMAX v=1 keys=a.example:v3 seal=0c');
  // with a line cached the update runs unawaited: a null answer there was an unhandled rejection, which ends Haraka
  answer = null;
  t = 12000;
  expect(await adv.current()).toBe('X-SSMAX v=1 keys=a.example:v3 seal=0c');
  await new Promise((r) => setTimeout(r, 50)); // Jest fails the test on an unhandled rejection raised while it runs
});

function watch(over: Partial<KeyWatchOptions> & { t: { now: number } }): {
  kw: KeyWatch;
  refreshes: string[];
  probes: number[];
  logs: string[];
} {
  const refreshes: string[] = [];
  const probes: number[] = [];
  const logs: string[] = [];
  const kw = new KeyWatch({
    probe: true,
    probeIntervalMs: 30000,
    probeTimeoutMs: 200,
    refreshMinIntervalMs: 5000,
    helo: 'mx.a.example',
    nextHop: async () => ({ host: '127.0.0.1', port: 1 }),
    refresh: async (d) => {
      refreshes.push(d);
      return entry(3);
    },
    log: (l) => logs.push(l),
    now: () => over.t.now,
    prober: async () => {
      probes.push(over.t.now);
      return ['250-mx.b.example', '250 X-SSMAX v=1 keys=b.example:v3 seal=01'];
    },
    ...over,
  });
  return { kw, refreshes, probes, logs };
}

test('a newer advertised version: one refresh before sending, then the refreshed bundle is used; probes at most once per interval', async () => {
  const t = { now: 0 };
  const { kw, refreshes, probes } = watch({ t });
  expect((await kw.fresh('b.example', entry(1))).currentKey.keyId).toBe('b.example:v3');
  expect(refreshes).toEqual(['b.example']);
  t.now = 1000;
  expect((await kw.fresh('b.example', entry(3))).currentKey.keyId).toBe('b.example:v3'); // up to date: no refresh
  expect(refreshes).toHaveLength(1);
  expect(probes).toEqual([0]);
  t.now = 31000;
  await kw.fresh('b.example', entry(3));
  expect(probes).toEqual([0, 31000]);
});

test('refreshes are bounded per peer, and a failing refresh or probe leaves the cached bundle in use', async () => {
  const t = { now: 0 };
  const { kw, refreshes, logs } = watch({
    t,
    probe: false,
    refresh: async (d) => {
      refreshes.push(d);
      throw new Error('publisher down');
    },
  });
  kw.noteReply('Delivered (SSMAX, 1 copy) (refresh: b.example current key b.example:v2)', 'b.example');
  expect(kw.advertised('b.example')).toBe(2);
  expect((await kw.fresh('b.example', entry(1))).currentKey.keyId).toBe('b.example:v1');
  t.now = 1000;
  expect((await kw.fresh('b.example', entry(1))).currentKey.keyId).toBe('b.example:v1');
  expect(refreshes).toHaveLength(1); // within refreshMinInterval
  t.now = 6000;
  await kw.fresh('b.example', entry(1));
  expect(refreshes).toHaveLength(2);
  expect(logs.join('\n')).toMatch(/refresh failed \(the cached bundle, current key b\.example:v1, stays in use\): publisher down/);

  const failing = watch({
    t,
    prober: async () => {
      throw new Error('ECONNREFUSED');
    },
  });
  expect((await failing.kw.fresh('b.example', entry(1))).currentKey.keyId).toBe('b.example:v1');
  expect(failing.kw.stats.probeFailures).toBe(1);
  const hanging = watch({ t, prober: () => new Promise(() => undefined) });
  const t0 = Date.now();
  expect((await hanging.kw.fresh('b.example', entry(1))).currentKey.keyId).toBe('b.example:v1');
  expect(Date.now() - t0).toBeLessThan(5000); // the probe is cut at about 0.7 s; a hanging one would never end
});

test("a refresh hint counts only for the domain the copy went to: a peer naming another domain's keys changes nothing", async () => {
  const t = { now: 0 };
  const { kw, refreshes } = watch({ t, probe: false });
  // c.example's gateway answers a copy for c.example with a hint about b.example (and one about itself in another spelling)
  expect(kw.noteReply('250 Delivered (refresh: b.example current key b.example:v9)', 'c.example')).toBe(false);
  expect(kw.noteReply('250 Delivered (refresh: b.example current key b.example:v9)', undefined)).toBe(false);
  expect(kw.advertised('b.example')).toBe(0);
  expect(kw.stats).toMatchObject({ hints: 0, foreignHints: 2 });
  expect((await kw.fresh('b.example', entry(1))).currentKey.keyId).toBe('b.example:v1'); // no refresh forced on b.example
  expect(refreshes).toEqual([]);
  expect(kw.noteReply('250 Delivered (refresh: C.Example current key c.example:v4)', 'c.example')).toBe(true);
  expect(kw.advertised('c.example')).toBe(4);
  expect(kw.watched).toBe(2); // b.example (the send above) and c.example: nothing for the foreign hints
});

test('the peers watched are bounded (least recently used dropped first), whatever names the replies and the mail carry', async () => {
  const t = { now: 0 };
  const small = watch({ t, probe: false, maxPeers: 3 });
  for (const d of ['p1.example', 'p2.example', 'p3.example']) small.kw.noteReply(`250 ok (refresh: ${d} current key ${d}:v2)`, d);
  await small.kw.fresh('p1.example', entry(2)); // p1 used again: p2 is now the least recently used
  small.kw.noteReply('250 ok (refresh: p4.example current key p4.example:v2)', 'p4.example');
  expect(small.kw.watched).toBe(3);
  expect(['p1.example', 'p2.example', 'p3.example', 'p4.example'].map((d) => small.kw.advertised(d))).toEqual([2, 0, 2, 2]);
  // the shipped cap: one entry per delivered domain, never more than MAX_WATCHED_PEERS
  const big = watch({ t, probe: false });
  for (let i = 0; i < MAX_WATCHED_PEERS + 500; i++)
    big.kw.noteReply(`250 ok (refresh: d${i}.example current key d${i}.example:v2)`, `d${i}.example`);
  expect(big.kw.watched).toBe(MAX_WATCHED_PEERS);
  expect(big.kw.advertised(`d${MAX_WATCHED_PEERS + 499}.example`)).toBe(2);
  expect(big.kw.advertised('d0.example')).toBe(0);
});

test('a refresh for a seal by an unknown certificate: its outcome, its own rate limit (a refresh before sending does not use it up)', async () => {
  const t = { now: 0 };
  const { kw, refreshes } = watch({ t, probe: false });
  kw.noteReply('Delivered (SSMAX, 1 copy) (refresh: b.example current key b.example:v3)', 'B.example');
  await kw.fresh('b.example', entry(1)); // refresh before sending at t=0
  expect(refreshes).toHaveLength(1);
  expect(await kw.refreshForSeal('B.example')).toBe('refreshed'); // not suppressed by the one before sending
  expect(refreshes).toHaveLength(2);
  t.now = 1000;
  expect(await kw.refreshForSeal('b.example')).toBe('skipped');
  expect(refreshes).toHaveLength(2);
  t.now = 6000;
  expect(await kw.refreshForSeal('b.example')).toBe('refreshed');
  const down = watch({ t, probe: false, refresh: () => Promise.reject(new Error('publisher down')) });
  expect(await down.kw.refreshForSeal('b.example')).toBe('failed');
  expect(down.logs.join('\n')).toMatch(/refresh failed: publisher down/);
});

describe('the TCP EHLO probe', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer((s) => {
      s.write('220 mx.b.example ESMTP\r\n');
      s.on('data', (c: Buffer) => {
        if (c.toString().startsWith('EHLO'))
          s.write('250-mx.b.example Hello\r\n250-PIPELINING\r\n250 X-SSMAX v=1 keys=b.example:v7 seal=abcd\r\n');
        if (c.toString().startsWith('QUIT')) s.end('221 bye\r\n');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test('reads the EHLO answer', async () => {
    expect(parseAdvertisement(await ehloProbe({ host: '127.0.0.1', port }, 'mx.a.example', 2000))).toEqual({
      keys: ['b.example:v7'],
      seal: 'abcd',
    });
  });

  test("a peer's MX name is looked up through the bounded c-ares resolver, never the system's getaddrinfo (libuv's shared threads)", async () => {
    const lookup = jest.spyOn(dns, 'lookup');
    try {
      const started = Date.now();
      // a name no DNS server answers for (reserved, RFC 2606): refused or timed out, within the probe's own timeout
      await expect(ehloProbe({ host: 'mx.peer.invalid', port }, 'mx.a.example', 1500)).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(5000);
      expect(lookup).not.toHaveBeenCalled();
    } finally {
      lookup.mockRestore();
    }
  });

  test('a refused connection rejects quickly', async () => {
    await expect(ehloProbe({ host: '127.0.0.1', port: 1 }, 'mx.a.example', 2000)).rejects.toThrow();
  });

  test('a peer that answers "250-" line after line is cut off at EHLO_PROBE_MAX_BYTES, not read until the timeout', async () => {
    const endless = createServer((s) => {
      s.write('220 mx.b.example ESMTP\r\n');
      s.on('error', () => undefined);
      // small writes, each far under the limit, as a trickling peer sends them
      s.once('data', () => {
        const timer = setInterval(() => (s.destroyed ? clearInterval(timer) : s.write('250-x\r\n'.repeat(500))), 2);
        s.on('close', () => clearInterval(timer));
      });
    });
    await new Promise<void>((r) => endless.listen(0, '127.0.0.1', r));
    try {
      const port2 = (endless.address() as { port: number }).port;
      await expect(ehloProbe({ host: '127.0.0.1', port: port2 }, 'mx.a.example', 5000)).rejects.toThrow(
        `EHLO probe: answer over ${EHLO_PROBE_MAX_BYTES} bytes`,
      );
    } finally {
      endless.close();
    }
  });
});
