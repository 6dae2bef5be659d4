/**
 * The inspector's HTTP edge (issue 24), like keyd's: a client sending its
 * header block slowly is answered 408 and cut within headers_timeout_ms of
 * its ssmax-inspector.ini; header blocks over the limits are 431; requests
 * Node's parser refuses are JSON 400s; the answer arrives whole although the
 * client goes on sending. The server runs over real mutual TLS with the
 * certificates of a provisioned organisation, its limits read from a config
 * file by the inspector's own loader.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tcpConnect } from 'node:net';
import { connect } from 'node:tls';
import { groups } from '../../src/crypto/backend';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';
import { LocalInspector } from '../../src/inspect/engine';
import { GatewayError } from '../../src/mail/replies';
import { QuarantineStore } from '../../src/inspect/quarantine';
import { loadInspectorConfig } from '../../src/inspector/config';
import { InspectorServer } from '../../src/inspector/server';

jest.setTimeout(60_000);

let fx: OrgFixture;
let server: InspectorServer;
let port: number;
let headersTimeoutMs: number;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-iedge-'));
  fx = provisionOrg(join(dir, 'pki'), { domain: 'a.example' });
  // The shipped config with [limits] headers_timeout_ms lowered, read as the inspector daemon reads it.
  const shipped = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-inspector.ini'), 'utf8').replace(
    ';headers_timeout_ms=5000',
    'headers_timeout_ms=2000',
  );
  writeFileSync(join(dir, 'inspector.ini'), shipped);
  const { limits } = loadInspectorConfig(join(dir, 'inspector.ini'));
  headersTimeoutMs = limits.headersTimeoutMs;
  const crls = [readFileSync(join(fx.dir, 'org-ca.crl.pem'), 'utf8'), readFileSync(join(fx.dir, 'root.crl.pem'), 'utf8')];
  expect(headersTimeoutMs).toBe(2000);
  const stub = {
    messageKey: () => Promise.reject(new GatewayError('keydUnavailable', 'stub')),
    user: () => Promise.resolve(undefined),
    orgKeys: () => Promise.resolve({ current: 'a.example:v1', keys: [] }),
    certifiedKey: () => Promise.reject(new GatewayError('badCapsule', 'stub')),
  };
  const engine = new LocalInspector({
    config: { dlp: { rules: [] }, quarantineDir: join(dir, 'q') },
    quarantine: new QuarantineStore(join(dir, 'q')),
    keyd: stub,
    group: groups.libsecp256k1,
  });
  server = new InspectorServer(engine, {
    domain: 'a.example',
    host: '127.0.0.1',
    port: 0,
    cert: fx.clients.inspector.cert + fx.orgCa.certificate.pem,
    key: fx.clients.inspector.key,
    clientCas: fx.caPem,
    roots: [fx.root.certificate.pem],
    orgCas: [fx.orgCa.certificate.pem],
    crls: () => crls,
    clock: () => new Date(),
    ...limits,
  });
  port = await server.listen();
});
afterAll(async () => {
  await server?.close();
});

interface RawAnswer {
  readonly status: number;
  readonly headers: string;
  readonly body: string;
  readonly took: number;
}

/** Raw bytes over mutual TLS as the gateway; the first answer, once complete or once the server closes. */
function raw(send: (write: (data: string) => void, stopped: () => boolean) => void | Promise<void>): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername: 'inspect.a.example',
      cert: fx.clients.gateway.cert,
      key: fx.clients.gateway.key,
      ca: fx.caPem,
    });
    let data = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(data);
      resolve({ status: m ? Number(m[1]) : 0, headers: m?.[2] ?? '', body: m?.[3] ?? data, took: performance.now() - started });
    };
    socket.on('data', (c: Buffer) => {
      data += c.toString('utf8');
      const length = /content-length: (\d+)/i.exec(data);
      const head = data.indexOf('\r\n\r\n');
      if (length && head >= 0 && Buffer.byteLength(data.slice(head + 4)) >= Number(length[1])) finish();
    });
    socket.on('close', finish);
    socket.on('error', (err) => (data === '' && !done ? reject(err) : finish()));
    socket.once('secureConnect', () => {
      Promise.resolve(
        send(
          (d) => {
            if (!socket.destroyed) socket.write(d);
          },
          () => done,
        ),
      ).catch(reject);
    });
  });
}

const jsonError = (a: RawAnswer) => {
  expect(a.headers).toMatch(/content-type: application\/json/i);
  return (JSON.parse(a.body) as { error: { code: string; message: string } }).error;
};

test('a client sending its header block at one byte a second is answered 408 and cut within headers_timeout_ms', async () => {
  const answer = await raw(async (write, stopped) => {
    for (const ch of 'GET /v1/health HTTP/1.1\r\nHost: i\r\nX-Slow: abcdefghijklmnopqrstuvwxyz\r\n') {
      if (stopped()) return;
      write(ch);
      await new Promise((r) => setTimeout(r, 1000));
    }
  });
  expect(answer.status).toBe(408);
  expect(jsonError(answer).code).toBe('timeout');
  expect(answer.took).toBeGreaterThan(headersTimeoutMs * 0.9);
  expect(answer.took).toBeLessThan(headersTimeoutMs * 1.5 + 1000);
});

test('a client that connects and never finishes the TLS handshake is dropped within about twice headers_timeout_ms, not 120 s', async () => {
  const started = performance.now();
  const took = await new Promise<number>((resolve, reject) => {
    const socket = tcpConnect({ host: '127.0.0.1', port }, () => socket.write(Buffer.from([0x16, 0x03, 0x01]))); // the first bytes of a ClientHello, then silence
    socket.on('close', () => resolve(performance.now() - started));
    socket.on('error', () => undefined);
    setTimeout(() => {
      socket.destroy();
      reject(new Error('still connected after 20 s'));
    }, 20_000).unref();
  });
  console.log(`an unfinished TLS handshake was dropped after ${took.toFixed(0)} ms (headers_timeout_ms ${headersTimeoutMs})`);
  expect(took).toBeLessThan(headersTimeoutMs * 2 + 1000); // Node's default would have kept it 120 s
});

test.each([
  ['a request line Node cannot parse', 'GARBAGE\r\n\r\n', 400, 'bad-request'],
  ['a header line without a colon', 'GET /v1/health HTTP/1.1\r\nHost i\r\n\r\n', 400, 'bad-request'],
  [
    'a malformed chunked body',
    'POST /v1/inspect?direction=inbound&from=a@b.example&rcpt=c@a.example HTTP/1.1\r\nHost: i\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n',
    400,
    'bad-request',
  ],
  [
    'a header block over max_header_bytes',
    `GET /v1/health HTTP/1.1\r\nHost: i\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`,
    431,
    'headers-too-large',
  ],
  [
    'more header fields than max_headers',
    `GET /v1/health HTTP/1.1\r\nHost: i\r\n${Array.from({ length: 70 }, (_, i) => `X-H${i}: 1\r\n`).join('')}\r\n`,
    431,
    'too-many-headers',
  ],
  [
    '4 MB of header block in one go (the answer must not be cut by a reset)',
    `GET /v1/health HTTP/1.1\r\nHost: i\r\nX-Big: ${'a'.repeat(4 << 20)}\r\n\r\n`,
    431,
    'headers-too-large',
  ],
])('%s is answered with a JSON error', async (_what, request, status, code) => {
  const answer = await raw((write) => write(request));
  expect(answer.status).toBe(status);
  expect(jsonError(answer)).toMatchObject({ code });
});

test('an ordinary request is still answered after all that', async () => {
  const answer = await raw((write) => write('GET /v1/health HTTP/1.1\r\nHost: i\r\nConnection: close\r\n\r\n'));
  expect(answer.status).toBe(200);
  expect(JSON.parse(answer.body)).toMatchObject({ ok: true, role: 'gateway' });
});
