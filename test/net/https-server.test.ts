import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startReportServer } from '../../src/abuse/report-server';
import { readBody, RequestRefused, sendJson } from '../../src/net/https-server';

/** A plain HTTP server whose every request body is read with readBody(max) and answered with what came of it. */
async function echo(max: number): Promise<Server> {
  const server = createServer((req, res) => {
    readBody(req, max).then(
      (body) => sendJson(res, 200, { bytes: body.length }),
      (err: unknown) => sendJson(res, err instanceof RequestRefused ? err.status : 500, { error: { code: (err as RequestRefused).code } }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

function post(
  port: number,
  body: Buffer,
  headers: Record<string, string | number> = {},
  path = '/',
): Promise<{ status: number; json: unknown; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(parts).toString('utf8')), headers: res.headers }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the shared HTTPS server plumbing (src/net/https-server.ts)', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = await echo(1000);
    port = (server.address() as AddressInfo).port;
  });
  afterAll(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );

  test('a body up to the limit is read whole; sendJson answers JSON that is not cached', async () => {
    const r = await post(port, Buffer.alloc(1000, 0x61));
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ bytes: 1000 });
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['content-type']).toBe('application/json');
  });

  test('a body over the limit is refused 413, whether declared (Content-Length) or only sent (chunked)', async () => {
    const declared = await post(port, Buffer.alloc(1001, 0x61));
    expect(declared.status).toBe(413);
    expect(declared.json).toEqual({ error: { code: 'too-large' } });
    const chunked = await post(port, Buffer.alloc(5000, 0x61), { 'transfer-encoding': 'chunked' });
    expect(chunked.status).toBe(413);
  });

  test('the abuse endpoint uses the same bounded read: a message over max_bytes is 413 and the connection closed', async () => {
    const abuse = await startReportServer({
      directory: { lookup: () => Promise.reject(new Error('not reached')) },
      from: 'abuse@a.example',
      ownDomain: 'a.example',
      reportingMta: 'mx.a.example',
      host: '127.0.0.1',
      port: 0,
      maxBytes: 100,
    });
    try {
      const r = await post(abuse.port, Buffer.alloc(101, 0x61), {}, '/v1/abuse/report');
      expect(r.status).toBe(413);
      expect(r.json).toEqual({ error: { code: 'too-large', message: 'The message is larger than 100 bytes' } });
      expect(r.headers.connection).toBe('close');
    } finally {
      await abuse.close();
    }
  });

  test('the abuse endpoint reads at most maxInFlight reports at once: one more is 503 busy with retry-after, and served once a place is free', async () => {
    const abuse = await startReportServer({
      directory: { lookup: () => Promise.reject(new Error('not reached')) },
      from: 'abuse@a.example',
      ownDomain: 'a.example',
      reportingMta: 'mx.a.example',
      host: '127.0.0.1',
      port: 0,
      maxBytes: 1000,
      maxInFlight: 1,
    });
    try {
      // the first report's body arrives slowly: it holds the one place meanwhile. Its 100 Continue comes once the
      // server has taken the request in (Node answers it just before the request's handler runs, in the same turn)
      const slow = request({
        host: '127.0.0.1',
        port: abuse.port,
        method: 'POST',
        path: '/v1/abuse/report',
        headers: { 'content-length': 10, expect: '100-continue' },
      });
      const first = new Promise<number>((resolve, reject) => {
        slow.on('response', (res) => (res.resume(), resolve(res.statusCode ?? 0)));
        slow.on('error', reject);
      });
      await new Promise<void>((resolve) => slow.once('continue', resolve));
      slow.write('not a');
      const busy = await post(abuse.port, Buffer.from('x'), {}, '/v1/abuse/report');
      expect(busy.status).toBe(503);
      expect(busy.json).toEqual({ error: { code: 'busy', message: 'Too many reports in flight; retry' } });
      expect(busy.headers['retry-after']).toBe('1');
      slow.end(' mail');
      expect(await first).toBe(422);
      // the place is free again: the next report is read (and refused for what it is, not for being busy)
      expect((await post(abuse.port, Buffer.from('x'), {}, '/v1/abuse/report')).status).not.toBe(503);
    } finally {
      await abuse.close();
    }
  });
});
