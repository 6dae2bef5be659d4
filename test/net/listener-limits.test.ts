/**
 * Every listener of the project with the shared limits (src/net/listener-limits.ts),
 * checked with real sockets: a TCP connection that never starts (or finishes) its
 * TLS handshake, or never sends a request, is closed within the listener's time;
 * a connection over the cap is closed at once while those under it stay open.
 * The listeners: the JSON HTTPS plumbing of keyd and the inspector, the web
 * console, the operations listener and the abuse endpoint (the publisher's:
 * test/publisher/publisher.test.ts).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { type Server, type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { REPORT_SERVER_LISTENER, startReportServer } from '../../src/abuse/report-server';
import { loadConsoleConfig } from '../../src/console/config';
import { ConsoleServer } from '../../src/console/server';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';
import { loadKeydConfig } from '../../src/keyd/config';
import { JsonHttpsServer } from '../../src/net/https-server';
import { listen } from '../../src/net/https-json';
import { LISTENER_DEFAULTS, capConnections, listenerOptions } from '../../src/net/listener-limits';
import { OPS_LISTENER, startOps } from '../../src/ops/server';

jest.setTimeout(60000);

/** A TCP connection that sends nothing: resolves with the ms until the server closed it (or `giveUpMs`, still open). */
function silent(port: number, giveUpMs = 20000): Promise<{ ms: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    const timer = setTimeout(() => resolve({ ms: Infinity, socket }), giveUpMs);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ ms: Date.now() - started, socket });
    });
    socket.once('connect', () => socket.off('error', reject));
  });
}

/** `n` silent connections, open once the server has seen them all. */
async function openSockets(port: number, n: number): Promise<{ sockets: Socket[]; closed: () => number }> {
  let closed = 0;
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect(port, '127.0.0.1', () => resolve(s));
          s.on('error', reject);
          s.on('close', () => closed++);
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, 200)); // the server accepted each
  return { sockets, closed: () => closed };
}

/** Whether `test` holds within `ms`, checked every 50 ms (a fixed wait may be outlasted by a stalled machine). */
async function eventually(test: () => Promise<boolean>, ms = 3000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await test()) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * With `max` connections open, one more is closed at once and the others stay; once one closes, a new one is taken.
 * Node refuses a connection over the cap by its count of open ones, which drops only once the server has seen the
 * closed one's end: with `server` at hand the test waits for that count, else it tries a fresh connection every 50 ms
 * (each closed at once while the place is still taken); either way for up to 3 s, a place never given back fails.
 */
async function checkCap(port: number, max: number, timeMs: number, server?: Server): Promise<void> {
  const count = () => new Promise<number>((res, rej) => server!.getConnections((err, n) => (err ? rej(err) : res(n))));
  const open = await openSockets(port, max);
  try {
    if (server) expect(await eventually(async () => (await count()) >= max)).toBe(true); // the server holds them all
    const over = await silent(port, 2000);
    expect(over.ms).toBeLessThan(Math.min(1000, timeMs / 2));
    expect(open.closed()).toBe(0); // those under the cap are still open
    open.sockets[0]!.destroy();
    let again: Socket | undefined;
    if (server) {
      expect(await eventually(async () => (await count()) < max)).toBe(true); // the server saw it close
      const fresh = await silent(port, 300);
      if (fresh.ms === Infinity) again = fresh.socket;
    } else {
      await eventually(async () => {
        const fresh = await silent(port, 300);
        if (fresh.ms === Infinity) again = fresh.socket;
        return again !== undefined;
      });
    }
    expect(again).toBeDefined(); // taken: not closed at once
    again?.destroy();
  } finally {
    for (const s of open.sockets) s.destroy();
  }
}

/** A silent connection is closed after about `timeMs` (Node checks HTTP timeouts every quarter of the header time, at most 1 s). */
async function checkSilentClosed(port: number, timeMs: number): Promise<void> {
  const { ms } = await silent(port, timeMs + 5000);
  expect(ms).toBeGreaterThanOrEqual(timeMs * 0.8);
  expect(ms).toBeLessThan(timeMs + 2500);
}

let fx: OrgFixture;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-listeners-'));
  fx = provisionOrg(join(dir, 'pki'), { domain: 'a.example' });
});

test('a listening server whose accept fails (EMFILE under a flood: emitted as its error) goes on listening; a listen error still reaches the caller', async () => {
  const server = capConnections(createServer(), { maxConnections: 10, idleTimeoutMs: 1000 });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  try {
    // with no 'error' listener, emit throws: the process would end
    expect(() => server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }))).not.toThrow();
    expect(server.listening).toBe(true);
    const port = (server.address() as { port: number }).port;
    const other = capConnections(createServer(), { maxConnections: 10, idleTimeoutMs: 1000 });
    const listenError = await new Promise<Error>((res) => {
      other.once('error', res);
      other.listen(port, '127.0.0.1');
    });
    expect(listenError).toMatchObject({ code: 'EADDRINUSE' });
  } finally {
    await new Promise((res) => server.close(res));
  }
});

test('the shared options: the handshake, header and request times, and a header check at least every second', () => {
  expect(LISTENER_DEFAULTS).toEqual({
    handshakeTimeoutMs: 10000,
    headersTimeoutMs: 10000,
    requestTimeoutMs: 30000,
    keepAliveTimeoutMs: 5000,
    idleTimeoutMs: 60000,
    maxConnections: 1000,
  });
  expect(listenerOptions({ ...LISTENER_DEFAULTS, headersTimeoutMs: 40000 })).toEqual({
    handshakeTimeout: 10000,
    headersTimeout: 30000, // at most the request's time
    requestTimeout: 30000,
    keepAliveTimeout: 5000,
    connectionsCheckingInterval: 1000,
  });
});

test('keyd and the inspector (the JSON HTTPS plumbing): a handshake never finished is closed within headers_timeout_ms; [limits] max_connections caps the connections', async () => {
  const keydConfig = loadKeydConfig(fx.configFile);
  expect(keydConfig.limits.maxConnections).toBe(1000); // the shipped default
  const server = new JsonHttpsServer(
    {
      host: '127.0.0.1',
      port: 0,
      cert: readFileSync(join(fx.dir, 'keyd.pem'), 'utf8'),
      key: readFileSync(join(fx.dir, 'keyd.key'), 'utf8'),
      clientCas: fx.caPem,
      maxInFlight: 4,
      requestTimeoutMs: 5000,
      headersTimeoutMs: 1000,
      maxHeaderBytes: 16384,
      maxHeaders: 64,
      maxConnections: 3,
      service: 'test',
      refusal: () => undefined,
    },
    () => Promise.resolve({}),
  );
  const port = await listen(server.server, '127.0.0.1', 0);
  try {
    expect(server.server.maxConnections).toBe(3);
    await checkCap(port, 3, 1000, server.server);
    await new Promise((r) => setTimeout(r, 300));
    await checkSilentClosed(port, 1000);
  } finally {
    await server.close();
  }
});

test('the web console: [console] handshake_timeout_ms and max_connections', async () => {
  writeFileSync(join(fx.dir, 'console.pem'), fx.clients.console.cert + fx.orgCa.certificate.pem);
  writeFileSync(join(fx.dir, 'console.key'), fx.clients.console.key);
  const file = join(dir, 'console.ini');
  writeFileSync(
    file,
    [
      '[console]',
      'domain=a.example',
      'listen=127.0.0.1:0',
      'handshake_timeout_ms=1000',
      'max_connections=3',
      '[tls]',
      'cert=pki/console.pem',
      'key=pki/console.key',
      'client_ca=pki/org-ca.pem,pki/root.pem',
      '[pki]',
      'roots=pki/root.pem',
      'crls=pki/org-ca.crl.pem,pki/root.crl.pem',
      'org_ca=pki/org-ca.pem',
      '[keyd]',
      'url=https://127.0.0.1:9',
      'ca=pki/org-ca.pem,pki/root.pem',
      'cert=pki/console.pem',
      'key=pki/console.key',
      '',
    ].join('\n'),
  );
  const config = loadConsoleConfig(file);
  expect(config.listener).toEqual({ handshakeTimeoutMs: 1000, maxConnections: 3 });
  const server = new ConsoleServer({ config });
  const port = await server.listen();
  try {
    await checkCap(port, 3, 1000, server.server);
    await new Promise((r) => setTimeout(r, 300));
    await checkSilentClosed(port, 1000);
  } finally {
    await server.close();
  }
  writeFileSync(file, readFileSync(file, 'utf8').replace('max_connections=3', 'max_connections=0'));
  expect(() => loadConsoleConfig(file)).toThrow(/\[console\] max_connections: must be a whole number from 1 to 1000000, got '0'/);
});

test('the operations listener (plain HTTP): a connection that sends nothing is closed after its idle time; at most 100 connections', async () => {
  expect(OPS_LISTENER).toMatchObject({ headersTimeoutMs: 5000, requestTimeoutMs: 10000, idleTimeoutMs: 20000, maxConnections: 100 });
  const ops = await startOps({
    service: 'test',
    host: '127.0.0.1',
    port: 0,
    registry: new Registry(),
    ready: () => Promise.resolve({ ready: true, checks: {} }),
    listener: { idleTimeoutMs: 1500 }, // shorter than the shipped 20 s, for the test's sake
  });
  try {
    await checkCap(ops.port, OPS_LISTENER.maxConnections, 1500);
    await new Promise((r) => setTimeout(r, 300));
    await checkSilentClosed(ops.port, 1500);
  } finally {
    await ops.close();
  }
});

test('the abuse endpoint (plain HTTP): a connection that sends nothing is closed after its idle time; at most 100 connections', async () => {
  expect(REPORT_SERVER_LISTENER).toMatchObject({
    headersTimeoutMs: 10000,
    requestTimeoutMs: 60000,
    idleTimeoutMs: 120000,
    maxConnections: 100,
  });
  const abuse = await startReportServer({
    directory: { lookup: () => Promise.reject(new Error('not reached')) },
    from: 'abuse@a.example',
    ownDomain: 'a.example',
    reportingMta: 'mx.a.example',
    host: '127.0.0.1',
    port: 0,
    listener: { idleTimeoutMs: 1500 },
  });
  try {
    await checkCap(abuse.port, REPORT_SERVER_LISTENER.maxConnections, 1500);
    await new Promise((r) => setTimeout(r, 300));
    await checkSilentClosed(abuse.port, 1500);
  } finally {
    await abuse.close();
  }
});
