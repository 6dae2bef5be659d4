/**
 * keyd under hostile input and concurrency (issue 24), as a real process over
 * real mutual TLS with LMDB on disk: every error at the HTTP edge is a JSON
 * 4xx (also those Node's own parser produces), a slow client is dropped within
 * the configured time, ill-formed Unicode is refused before anything is
 * written so the audit chain verifies whatever is sent, and concurrent
 * rotations (API and `ssmax keyd rotate`) never make one version twice.
 */
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { connect as tcpConnect } from 'node:net';
import { connect } from 'node:tls';
import { KeydClientError } from '../../src/keyd/client';
import { loadKeydConfig } from '../../src/keyd/config';
import { type OrgFixture, makeOrgFixture } from '../support/org-fixture';
import { type KeydProcess, clientFor, startKeydProcess } from '../support/keyd-process';

const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');

interface RawAnswer {
  readonly status: number;
  readonly headers: string;
  readonly body: string;
  /** Milliseconds until the server closed the connection (or the answer came). */
  readonly took: number;
}

describe('keyd under hostile input', () => {
  let fx: OrgFixture;
  let keyd: KeydProcess;

  beforeAll(async () => {
    fx = makeOrgFixture();
    keyd = await startKeydProcess(fx.configFile);
  });
  afterAll(async () => {
    await keyd?.stop();
  });

  /** Sends raw bytes over mutual TLS as the given client; resolves with the first answer once the server closes or answers in full. */
  function raw(
    send: (write: (data: string | Buffer) => void) => void | Promise<void>,
    who: 'admin' | 'gateway' = 'admin',
  ): Promise<RawAnswer> {
    const creds = fx.clients[who];
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const socket = connect({
        host: '127.0.0.1',
        port: keyd.port,
        servername: `keyd.${fx.domain}`,
        cert: creds.cert,
        key: creds.key,
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
        Promise.resolve(send((d) => socket.write(d))).catch(reject);
      });
    });
  }

  const jsonError = (a: RawAnswer) => {
    expect(a.headers).toMatch(/content-type: application\/json/i);
    return (JSON.parse(a.body) as { error: { code: string; message: string } }).error;
  };

  it.each([
    ['a malformed %-escape in a path parameter', 'GET /v1/directory/users/% HTTP/1.1\r\nHost: k\r\n\r\n', 400, 'bad-request'],
    [
      'a %-escape of ill-formed UTF-8 (a lone surrogate)',
      'GET /v1/registry/users/%ED%A0%80 HTTP/1.1\r\nHost: k\r\n\r\n',
      400,
      'bad-request',
    ],
    ['the path //', 'GET // HTTP/1.1\r\nHost: k\r\n\r\n', 400, 'bad-request'],
    ['an empty path segment', 'GET /v1//health HTTP/1.1\r\nHost: k\r\n\r\n', 400, 'bad-request'],
    ['a request line Node cannot parse', 'GARBAGE\r\n\r\n', 400, 'bad-request'],
    ['an unknown HTTP version', 'GET /v1/health HTTP/7.1\r\nHost: k\r\n\r\n', 400, 'bad-request'],
    ['a header line without a colon', 'GET /v1/health HTTP/1.1\r\nHost k\r\n\r\n', 400, 'bad-request'],
    ['a control character in a header value', 'GET /v1/health HTTP/1.1\r\nHost: k\r\nX-A: a\x01b\r\n\r\n', 400, 'bad-request'],
    [
      'both Content-Length and Transfer-Encoding',
      'POST /v1/tracking/resolve HTTP/1.1\r\nHost: k\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
      400,
      'bad-request',
    ],
    [
      'a chunked body with a malformed chunk size (the request already handed to keyd)',
      'POST /v1/tracking/resolve HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
      400,
      'bad-request',
    ],
    [
      'a header block over max_header_bytes',
      `GET /v1/health HTTP/1.1\r\nHost: k\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`,
      431,
      'headers-too-large',
    ],
    [
      'more header fields than max_headers',
      `GET /v1/health HTTP/1.1\r\nHost: k\r\n${Array.from({ length: 70 }, (_, i) => `X-H${i}: 1\r\n`).join('')}\r\n`,
      431,
      'too-many-headers',
    ],
  ])('%s is answered with a JSON error', async (_what, request, status, code) => {
    const answer = await raw((write) => write(request));
    expect(answer.status).toBe(status);
    expect(jsonError(answer)).toMatchObject({ code });
    expect(jsonError(answer).message).not.toBe('');
  });

  it('the answer to a refused request arrives whole although the client goes on sending (no reset cuts it)', async () => {
    // 4 MB of header block in one go: keyd refuses after 16 KB with unread bytes still arriving; closing
    // the socket at once would make TCP reset the connection and the client lose the 431.
    for (let round = 0; round < 5; round++) {
      const answer = await raw((write) => write(`GET /v1/health HTTP/1.1\r\nHost: k\r\nX-Big: ${'a'.repeat(4 << 20)}\r\n\r\n`));
      expect(answer.status).toBe(431);
      expect(jsonError(answer).code).toBe('headers-too-large');
    }
  });

  it('a client sending its headers at one byte a second is answered 408 and dropped within headers_timeout_ms', async () => {
    const { headersTimeoutMs } = loadKeydConfig(fx.configFile).limits;
    let stop = false;
    const answer = await raw(async (write) => {
      for (const ch of 'GET /v1/health HTTP/1.1\r\nHost: k\r\nX-Slow: abcdefghijklmnopqrstuvwxyz\r\n') {
        if (stop) return;
        write(ch);
        await new Promise((r) => setTimeout(r, 1000));
      }
    });
    stop = true;
    expect(answer.took).toBeLessThan(headersTimeoutMs * 1.5 + 1000);
    expect(answer.took).toBeGreaterThan(headersTimeoutMs * 0.9);
    expect(answer.status).toBe(408);
    expect(jsonError(answer).code).toBe('timeout');
  }, 30_000);

  it('a client that connects and never finishes the TLS handshake is dropped within about twice headers_timeout_ms, not 120 s', async () => {
    const { headersTimeoutMs } = loadKeydConfig(fx.configFile).limits;
    const started = performance.now();
    const took = await new Promise<number>((resolve, reject) => {
      const socket = tcpConnect({ host: '127.0.0.1', port: keyd.port }, () => socket.write(Buffer.from([0x16, 0x03, 0x01]))); // the first bytes of a ClientHello, then silence
      socket.on('close', () => resolve(performance.now() - started));
      socket.on('error', () => undefined);
      setTimeout(() => {
        socket.destroy();
        reject(new Error('still connected after 30 s'));
      }, 30_000).unref();
    });
    expect(took).toBeLessThan(headersTimeoutMs * 2 + 1500);
  }, 40_000);

  it('ill-formed Unicode in a JSON body or invalid UTF-8 is refused with 400 before anything is written; odd but well-formed strings are answered; the audit chain verifies after', async () => {
    const before = execFileSync(process.execPath, [BIN, 'keyd', 'audit', 'verify', '--config', fx.configFile], { encoding: 'utf8' });
    const count = (text: string) => Number(/(\d+) record/.exec(text)?.[1] ?? NaN);
    const post = (path: string, body: string | Buffer, who: 'admin' | 'gateway') =>
      raw(
        (write) =>
          write(
            Buffer.concat([
              Buffer.from(
                `POST ${path} HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
              ),
              Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'),
            ]),
          ),
        who,
      );
    // Ill-formed: lone surrogates as JSON escapes (high, low, reversed pair), in values and in keys; bytes that are not UTF-8.
    const illFormed: [string, string | Buffer][] = [
      ['/v1/reencrypt', '{"keyId":"\\ud800","e":"AA","f":"AA","target":{"kind":"user","address":"a@a.example"}}'],
      ['/v1/reencrypt', '{"keyId":"a.example:v1","e":"AA","f":"AA","target":{"kind":"user","address":"\\udc00@a.example"}}'],
      ['/v1/reencrypt', '{"keyId":"\\udc00\\ud800"}'],
      ['/v1/tracking/mint', '{"\\ud83d":"x"}'],
      ['/v1/reencrypt', Buffer.from([0x7b, 0x22, 0x6b, 0x65, 0x79, 0x49, 0x64, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d])], // overlong "/"
      ['/v1/reencrypt', Buffer.from('{"keyId":"\xed\xa0\x80"}', 'latin1')], // CESU-8 surrogate
      ['/v1/reencrypt', Buffer.from('{"keyId":"\xff\xfe"}', 'latin1')],
    ];
    for (const [path, body] of illFormed) {
      const answer = await post(path, body, 'gateway');
      expect({ body: String(body), status: answer.status }).toEqual({ body: String(body), status: 400 });
      expect(jsonError(answer).code).toBe('bad-request');
    }
    const afterRefusals = execFileSync(process.execPath, [BIN, 'keyd', 'audit', 'verify', '--config', fx.configFile], { encoding: 'utf8' });
    expect(count(afterRefusals)).toBe(count(before)); // nothing written for them
    // Odd but well-formed strings reach the service, get their answer, and are audited.
    const odd = [
      '\u0000',
      '\ufffe',
      '\uffff',
      '\ufeffx',
      '\u202eevil',
      '😀',
      'e\u0301',
      '\u00e9',
      '\r\n',
      '\\',
      '"',
      '\u2028',
      'x'.repeat(200),
      '\udbff\udfff',
    ];
    for (const s of odd) {
      const answer = await post(
        '/v1/reencrypt',
        JSON.stringify({ keyId: s, e: 'AA', f: 'AA', target: { kind: 'user', address: `${s}@a.example` } }),
        'gateway',
      );
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.status).toBeLessThan(500);
      const answer2 = await raw(
        (write) => write(`GET /v1/directory/users/${encodeURIComponent(s)} HTTP/1.1\r\nHost: k\r\n\r\n`),
        'gateway',
      );
      expect(answer2.status).toBeLessThan(500);
    }
    const verify = execFileSync(process.execPath, [BIN, 'keyd', 'audit', 'verify', '--config', fx.configFile], { encoding: 'utf8' });
    expect(verify).toMatch(/audit log intact/);
    expect(count(verify)).toBeGreaterThan(count(before));
  }, 120_000);

  it('an address or a target kind that is an object whose toString is not a function is refused 400 naming the field, never a 500', async () => {
    const gateway = clientFor(fx, keyd.port, fx.clients.gateway);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    const hostile = { toString: 1 };
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => 'answered',
        (err: unknown) => (err instanceof KeydClientError ? `${err.status} ${err.code}: ${err.message}` : String(err)),
      );
    try {
      const cases: [string, Promise<unknown>][] = [
        [
          'reencrypt target address',
          gateway.call('POST', '/v1/reencrypt', {
            keyId: 'a.example:v1',
            e: 'AAAA',
            f: 'AAAA',
            target: { kind: 'user', address: hostile },
          }),
        ],
        [
          'reencrypt target kind',
          gateway.call('POST', '/v1/reencrypt', { keyId: 'a.example:v1', e: 'AAAA', f: 'AAAA', target: { kind: hostile } }),
        ],
        ['directory addresses', gateway.call('POST', '/v1/directory/users', { addresses: [hostile] })],
        ['registry user', admin.call('POST', '/v1/registry/users', { address: hostile, code: 'U-9', identityRef: 'X' })],
      ];
      for (const [what, p] of cases) expect([what, await refusal(p)]).toEqual([what, expect.stringMatching(/^400 bad-request: /)]);
    } finally {
      gateway.close();
      admin.close();
    }
  });

  it('concurrent rotations through the API and `ssmax keyd rotate` make each version once; the other answers superseded; published keys never change', async () => {
    const admin = clientFor(fx, keyd.port, fx.clients.admin, 20000);
    type Public = { current: string; keys: { keyId: string; publicKey: string }[] };
    const published = new Map<string, string>();
    const record = (pub: Public) => {
      for (const k of pub.keys) {
        if (published.has(k.keyId))
          expect({ keyId: k.keyId, publicKey: k.publicKey }).toEqual({ keyId: k.keyId, publicKey: published.get(k.keyId) });
        published.set(k.keyId, k.publicKey);
      }
    };
    record(await admin.call<Public>('GET', '/v1/public'));
    const startVersions = published.size;
    const created: string[] = [];
    let superseded = 0;
    const viaApi = async () => {
      try {
        const r = await admin.call<{ changes: { keyId: string; change: string }[] }>('POST', '/v1/keys/rotate', {});
        created.push(...r.changes.filter((c) => c.change === 'created').map((c) => c.keyId));
      } catch (err) {
        expect(err).toBeInstanceOf(KeydClientError);
        expect([(err as KeydClientError).status, (err as KeydClientError).code]).toEqual([409, 'superseded']);
        superseded++;
      }
    };
    const viaCli = () =>
      new Promise<void>((resolve) => {
        execFile(process.execPath, [BIN, 'keyd', 'rotate', '--config', fx.configFile], { encoding: 'utf8' }, (err, stdout, stderr) => {
          if (err) {
            expect(stderr).toMatch(/^superseded: /);
            superseded++;
          } else {
            created.push(
              ...stdout
                .split('\n')
                .filter((l) => l.endsWith(' created'))
                .map((l) => l.split(' ')[0]!),
            );
          }
          resolve();
        });
      });
    for (let round = 0; round < 6; round++) {
      const cli = viaCli();
      await Promise.all([viaApi(), viaApi(), viaApi()]);
      await new Promise((r) => setTimeout(r, round * 60)); // the CLI starts slower: meet it at different moments
      await Promise.all([viaApi(), viaApi(), cli]);
      record(await admin.call<Public>('GET', '/v1/public'));
    }
    admin.close();
    expect(new Set(created).size).toBe(created.length); // no version reported twice
    expect(superseded).toBeGreaterThan(0); // the API pairs did race
    expect(created.length + superseded).toBe(6 * 6);
    expect(published.size).toBe(startVersions + created.length); // every reported version exists, no other
    expect(execFileSync(process.execPath, [BIN, 'keyd', 'audit', 'verify', '--config', fx.configFile], { encoding: 'utf8' })).toMatch(
      /audit log intact/,
    );
  }, 180_000);
});
