/**
 * The clamd client's line (src/inspect/clamd.ts): a scan's wait for one of its connections counts inside its
 * timeout, so a clamd that stops answering makes later scans fail for now within timeout_ms, rather than queue
 * behind it without end, each holding its message. A stand-in that takes connections and never answers
 * (a wedged clamd) is enough here; the real clamd is in inspection.test.ts.
 */
import { type Socket, createServer } from 'node:net';
import { ClamdClient } from '../../src/inspect/clamd';
import { inspectInbound } from '../../src/inspect/inspect';

test('with every connection held by a silent clamd, a further scan fails for now within timeout_ms, its wait included', async () => {
  const held: Socket[] = [];
  const silent = createServer((s) => void held.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  try {
    const client = new ClamdClient({ host: '127.0.0.1', port, timeoutMs: 2000, maxConnections: 1 });
    const started = Date.now();
    const outcome = (p: Promise<unknown>) =>
      p.then(
        () => ({ at: Date.now() - started, code: 'answered' }),
        (e: { code?: string }) => ({ at: Date.now() - started, code: e.code }),
      );
    const [first, second] = await Promise.all([outcome(client.scan(Buffer.from('a'))), outcome(client.scan(Buffer.from('b')))]);
    expect(first.code).toBe('timeout');
    expect(second.code).toBe('busy'); // for now whatever on_unavailable says (inspect.ts): a flood must not skip the scan
    // the second gave up at its own deadline, not one timeout after the first (whether the first's timer, firing in
    // the same millisecond, handed it the connection for its last instant is up to the timers: busy either way)
    expect(second.at).toBeLessThan(3000); // about 2,000 ms; one timeout after the first would be 4,000
    expect(held.length).toBeGreaterThanOrEqual(1);
    // a scan that came later gets the connection the timed-out one leaves, with the rest of its own time: it
    // reaches clamd, which again does not answer, and that is still busy (it waited), within its own deadline
    // the second's connection for its last instant (when the first's timer handed it over) may reach the stand-in
    // only now: counted once the count has held still for 200 ms, so that it is not taken for the third's
    for (let seen = -1, until = Date.now() + 2000; seen !== held.length && Date.now() < until;) {
      seen = held.length;
      await new Promise((r) => setTimeout(r, 200));
    }
    const before = held.length;
    let dStarted = 0;
    const [, third] = await Promise.all([
      outcome(client.scan(Buffer.from('c'))),
      new Promise((r) => setTimeout(r, 1000)).then(() => {
        dStarted = Date.now() - started;
        return outcome(client.scan(Buffer.from('d')));
      }),
    ]);
    expect(third.code).toBe('busy');
    // the third got its turn and opened a connection (given up to a second more to reach the stand-in, on a slow machine)
    for (const until = Date.now() + 1000; held.length < before + 2 && Date.now() < until;) await new Promise((r) => setTimeout(r, 20));
    expect(held.length).toBe(before + 2);
    // about 2,000 ms from its own start (its turn came about 1,000 ms in); a fresh timeout after its turn would be 3,000
    expect(third.at - dStarted).toBeLessThan(2500);
    // with on_unavailable=tag a clamd that fails is passed over (opted in); one that is only busy is not: the mail waits
    const busy = new ClamdClient({ host: '127.0.0.1', port, timeoutMs: 300, maxConnections: 1 });
    const av = { client: busy, onInfected: 'reject' as const, onUnavailable: 'tag' as const };
    const [a, b] = await Promise.all([inspectInbound(Buffer.from('a'), av), inspectInbound(Buffer.from('b'), av)]);
    expect(a.decision).toEqual({ action: 'pass' }); // clamd did not answer (timeout): tagged temperror, as opted in
    expect(a.verdict).toEqual({ name: 'av', result: 'temperror' });
    expect(b.decision).toMatchObject({ action: 'tempfail' }); // never had a turn: 4xx whatever on_unavailable says
  } finally {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});
