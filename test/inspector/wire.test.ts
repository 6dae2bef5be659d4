/**
 * The inspector's wire contract, both ends, on loopback with certificates of
 * a provisioned organisation: the server's limits and structured errors
 * (413, 400, 404, 422 for a message not encrypted to the organisation), and
 * the gateway's client failing closed — a slow, silent or confused inspector,
 * or a server that is not the inspector, is a 4xx; only a message over the
 * size limit (552) and a malformed one (the inline step's 5xx) are final.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { type Server, createServer, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { groups } from '../../src/crypto/backend';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';
import { type InspectRequest, LocalInspector } from '../../src/inspect/engine';
import { GatewayError } from '../../src/mail/replies';
import { QuarantineStore } from '../../src/inspect/quarantine';
import { RemoteInspector, envelopeBody } from '../../src/inspector/client';
import { InspectorServer, MAX_ENVELOPE_BYTES, readEnvelope, readLegacyEnvelope } from '../../src/inspector/server';
import { issueTlsCertificate } from '../../src/pki/issue';
import { privateKeyToPem } from '../../src/pki/keys';

let fx: OrgFixture;
let server: InspectorServer;
let port: number;
const keydCalls: string[] = [];
const stub = {
  messageKey: () => {
    keydCalls.push('decrypt');
    return Promise.reject(new GatewayError('keydUnavailable', 'stub'));
  },
  user: () => {
    keydCalls.push('user');
    return Promise.resolve(undefined);
  },
  orgKeys: () => {
    keydCalls.push('public');
    return Promise.resolve({ current: 'a.example:v1', keys: [] });
  },
  certifiedKey: () => {
    keydCalls.push('public');
    return Promise.reject(new GatewayError('badCapsule', 'stub'));
  },
};

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-wire-'));
  fx = provisionOrg(join(dir, 'pki'), { domain: 'a.example' });
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
    crls: () => [],
    clock: () => new Date(),
    maxBodyBytes: 4096,
    maxInFlight: 8,
    requestTimeoutMs: 5000,
  });
  port = await server.listen();
});
afterAll(async () => {
  await server?.close();
});

function call(
  path: string,
  body: Buffer | undefined,
  method = 'POST',
): Promise<{ status: number; json: { error?: { code: string; message: string; details?: Record<string, string> } } }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        servername: 'inspect.a.example',
        ca: fx.caPem,
        cert: fx.clients.gateway.cert,
        key: fx.clients.gateway.key,
        agent: false,
        headers: body ? { 'content-length': body.length } : {},
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(parts).toString()) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const message = Buffer.from('From: a@a.example\r\nTo: b@b.example\r\nSubject: x\r\n\r\nhello\r\n');
const envelope = { direction: 'outbound', from: 'a@a.example', rcpts: ['b@b.example'] } as const;
/** A request body: the envelope as one line of JSON (any object, to build malformed ones), then the message. */
const body = (env: unknown, m: Buffer = message) => Buffer.concat([Buffer.from(`${JSON.stringify(env)}\n`), m]);

describe('the inspector server', () => {
  test('CRLs are required: without them every client certificate is refused (401), even a good one', async () => {
    const r = await call('/v1/health', undefined, 'GET');
    expect(r).toMatchObject({ status: 401, json: { error: { code: 'unauthenticated' } } });
  });
});

describe('the inspector server (CRLs given)', () => {
  let good: InspectorServer;
  let goodPort: number;
  beforeAll(async () => {
    const crls = [readFileSync(join(fx.dir, 'org-ca.crl.pem'), 'utf8'), readFileSync(join(fx.dir, 'root.crl.pem'), 'utf8')];
    const dir = mkdtempSync(join(tmpdir(), 'ssmax-wire2-'));
    good = new InspectorServer(
      new LocalInspector({
        config: { dlp: { rules: [] }, quarantineDir: dir },
        quarantine: new QuarantineStore(dir),
        keyd: stub,
        group: groups.libsecp256k1,
      }),
      {
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
        maxBodyBytes: 4096,
        maxInFlight: 8,
        requestTimeoutMs: 5000,
      },
    );
    goodPort = await good.listen();
  });
  afterAll(async () => {
    await good?.close();
  });
  const at = (path: string, body: Buffer | undefined, method = 'POST') => {
    const saved = port;
    port = goodPort;
    const p = call(path, body, method);
    port = saved;
    return p;
  };

  test("health answers the caller's role and what is enabled", async () => {
    expect(await at('/v1/health', undefined, 'GET')).toEqual({
      status: 200,
      json: { ok: true, domain: 'a.example', role: 'gateway', dlp: true, av: false },
    });
  });

  test('a message over max_body_bytes is 413 too-large (the envelope line is not counted against it)', async () => {
    expect(await at('/v1/inspect', body(envelope, Buffer.alloc(5000, 0x61)))).toMatchObject({
      status: 413,
      json: { error: { code: 'too-large' } },
    });
    // a message of exactly max_body_bytes, after an envelope of 1000 recipients, is read and inspected (here: 422, not encrypted)
    const many = { ...envelope, rcpts: Array.from({ length: 1000 }, (_, i) => `"rcpt number ${i}"@b.example`) };
    const exact = Buffer.concat([message, Buffer.alloc(4096 - message.length, 0x61)]);
    expect(await at('/v1/inspect', body(many, exact))).toMatchObject({
      status: 422,
      json: { error: { details: { reply: 'badCapsule' } } },
    });
  });

  test('a message far over max_body_bytes sent to the real inspector is 552 5.3.4 every time, never 451', async () => {
    // the inspector answers 413 and closes the connection while the gateway is still sending 16 MB: the gateway must
    // still read the 413 (a broken upload taken for an unreachable inspector would be a 451 on every retry)
    const r = new RemoteInspector({
      log: () => undefined,
      url: `https://127.0.0.1:${goodPort}`,
      servername: 'inspect.a.example',
      ca: fx.caPem,
      cert: fx.clients.gateway.cert,
      key: fx.clients.gateway.key,
      timeoutMs: 20000,
      keyd: { orgKeys: () => Promise.reject(new Error('not used')) },
      group: groups.libsecp256k1,
    });
    try {
      for (let i = 0; i < 5; i++) {
        const err = await r
          .inspect({
            direction: 'outbound',
            message: Buffer.alloc(16 * 1024 * 1024, 0x61),
            capsule: { keyId: 'a.example:v1' } as never,
            from: 'a@a.example',
            rcpts: ['b@b.example'],
          })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(GatewayError);
        expect((err as GatewayError).reply).toMatchObject({ code: 552, status: '5.3.4' });
      }
    } finally {
      await r.close();
    }
  });

  test.each([
    ['no envelope line', message, /envelope/],
    ['an envelope that is not JSON', Buffer.concat([Buffer.from('direction=outbound\n'), message]), /not JSON/],
    ['an envelope that is a list', body([envelope]), /object/],
    ['an unknown field', body({ ...envelope, rcpt: 'x@b.example' }), /unknown envelope field "rcpt"/],
    ['no direction', body({ ...envelope, direction: 'sideways' }), /direction/],
    ['no from', body({ ...envelope, from: undefined }), /from/],
    ['an empty from', body({ ...envelope, from: '' }), /from/],
    ['no recipient', body({ ...envelope, rcpts: [] }), /rcpts/],
    ['a recipient that is not a string', body({ ...envelope, rcpts: [7] }), /rcpts/],
    ['1001 recipients', body({ ...envelope, rcpts: Array.from({ length: 1001 }, (_, i) => `r${i}@b.example`) }), /rcpts must be 1 to 1000/],
    ['a malformed release', body({ ...envelope, release: 'not-an-id' }), /release/],
  ])('a malformed request is 400 bad-request naming what: %s', async (_what, b, field) => {
    const r = await at('/v1/inspect', b);
    expect(r).toMatchObject({ status: 400, json: { error: { code: 'bad-request' } } });
    expect(r.json.error!.message).toMatch(field);
  });

  test('any address the gateway took is taken: spaces and angle brackets in a quoted local part, one over 254 characters, 1000 recipients', () => {
    const from = '"john doe <x>"@example.com';
    const long = `${'l'.repeat(300)}@b.example`;
    const rcpts = [long, ...Array.from({ length: 999 }, (_, i) => `"r ${i}"@b.example`)];
    const got = readEnvelope(envelopeBody({ direction: 'inbound', from, rcpts }, message));
    expect(got).toEqual({ direction: 'inbound', from, rcpts, message });
    expect(readEnvelope(envelopeBody({ ...envelope, release: `q-abc-${'0'.repeat(12)} ${'1'.repeat(24)}` }, message)).release).toBe(
      `q-abc-${'0'.repeat(12)} ${'1'.repeat(24)}`,
    );
  });

  test('an envelope line is looked for in its bound only (no line feed in the first MAX_ENVELOPE_BYTES + 1 bytes: 400)', () => {
    const t0 = process.hrtime.bigint();
    expect(() => readEnvelope(Buffer.concat([Buffer.alloc(MAX_ENVELOPE_BYTES + 1, 0x61), Buffer.from('\n{}')]))).toThrow(/envelope/);
    expect(Number(process.hrtime.bigint() - t0) / 1e6).toBeLessThan(1000);
  });

  test('an unknown path is 404; a wrong method 400', async () => {
    expect(await at('/v1/nope', undefined, 'GET')).toMatchObject({ status: 404, json: { error: { code: 'not-found' } } });
    expect(await at('/v1/inspect', undefined, 'GET')).toMatchObject({ status: 400, json: { error: { code: 'bad-request' } } });
  });

  test('a message not encrypted to the organisation is refused 422 with the reply the inline step gives (badCapsule), before any keyd call', async () => {
    const before = keydCalls.length;
    const r = await at('/v1/inspect', body(envelope));
    expect(r).toMatchObject({ status: 422, json: { error: { code: 'refused', details: { reply: 'badCapsule' } } } });
    expect(keydCalls.length).toBe(before);
  });

  test("an older gateway's request (the deprecated query form, the body the message only) is read as before: to the engine like the new form, its old checks kept", async () => {
    const q = '/v1/inspect?direction=outbound&from=a%40a.example&rcpt=b%40b.example&rcpt=c%40b.example';
    // the same answer as the new form for the same message: the envelope was taken, the message reached the engine
    expect(await at(q, message)).toMatchObject({ status: 422, json: { error: { code: 'refused', details: { reply: 'badCapsule' } } } });
    expect(readLegacyEnvelope(new URL(`https://i${q}&release=q-abc-${'0'.repeat(12)}%20${'1'.repeat(24)}`).searchParams, message)).toEqual({
      direction: 'outbound',
      from: 'a@a.example',
      rcpts: ['b@b.example', 'c@b.example'],
      release: `q-abc-${'0'.repeat(12)} ${'1'.repeat(24)}`,
      message,
    });
    // the whole body is the message: a first line that looks like an envelope is not read as one
    expect(readLegacyEnvelope(new URL(`https://i${q}`).searchParams, body(envelope)).message).toEqual(body(envelope));
    // the old checks: a direction, an address pattern, a non-empty message
    expect(await at('/v1/inspect?direction=sideways&from=a%40a.example&rcpt=b%40b.example', message)).toMatchObject({
      status: 400,
      json: { error: { message: expect.stringMatching(/direction must be outbound or inbound/) } },
    });
    expect(await at('/v1/inspect?direction=inbound&from=a%40a.example&rcpt=b%20c%40b.example', message)).toMatchObject({
      status: 400,
      json: { error: { message: expect.stringMatching(/rcpt must be 1 to 1000 addresses/) } },
    });
    expect(await at('/v1/inspect?direction=inbound&from=a%40a.example&rcpt=b%40b.example', Buffer.alloc(0))).toMatchObject({
      status: 400,
      json: { error: { message: expect.stringMatching(/request body\) is empty/) } },
    });
    // without direction= in the URL the body form is required (no silent mix)
    expect(await at('/v1/inspect?from=a%40a.example', message)).toMatchObject({ status: 400, json: { error: { code: 'bad-request' } } });
  });
});

describe("the gateway's remote inspector fails closed", () => {
  let fake: Server;
  let fakePort: number;
  let answer: (res: import('node:http').ServerResponse) => void = () => undefined;
  let last: { url: string; body: Buffer } | undefined;
  const logged: string[] = [];
  const remote = (servername = 'inspect.a.example', timeoutMs = 2000) =>
    new RemoteInspector({
      log: (l) => logged.push(l),
      url: `https://127.0.0.1:${fakePort}`,
      servername,
      ca: fx.caPem,
      cert: fx.clients.gateway.cert,
      key: fx.clients.gateway.key,
      timeoutMs,
      keyd: { orgKeys: () => Promise.reject(new Error('not used')) },
      group: groups.libsecp256k1,
    });
  const req: InspectRequest = {
    direction: 'outbound',
    message,
    capsule: { keyId: 'a.example:v1' } as never,
    from: 'a@a.example',
    rcpts: ['b@b.example'],
  };
  const failure = async (r: RemoteInspector): Promise<GatewayError> => {
    try {
      await r.inspect(req);
    } catch (err) {
      return err as GatewayError;
    } finally {
      await r.close();
    }
    throw new Error('the inspection passed');
  };

  beforeAll(async () => {
    fake = createServer({ cert: fx.clients.inspector.cert + fx.orgCa.certificate.pem, key: fx.clients.inspector.key }, (rq, res) => {
      const parts: Buffer[] = [];
      rq.on('data', (c: Buffer) => parts.push(c));
      rq.on('end', () => {
        last = { url: rq.url ?? '', body: Buffer.concat(parts) };
        answer(res);
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    fakePort = (fake.address() as { port: number }).port;
  });
  afterAll(async () => {
    fake.closeAllConnections();
    await new Promise((r) => fake.close(r));
  });
  const json = (status: number, body: unknown) => (res: import('node:http').ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  test('a valid answer is taken as it is', async () => {
    answer = json(200, { verdict: { name: 'dlp', result: 'fail' }, decision: { action: 'reject', rule: 'payment-cards' } });
    const r = remote();
    expect(await r.inspect(req)).toEqual({
      verdict: { name: 'dlp', result: 'fail' },
      decision: { action: 'reject', rule: 'payment-cards' },
    });
    await r.close();
  });

  test('the request: POST /v1/inspect with no query; the envelope (one line of JSON) then the message, as the server reads it', async () => {
    answer = json(200, { decision: { action: 'pass' } });
    const r = remote();
    const rcpts = Array.from({ length: 600 }, (_, i) => `"rcpt ${i}"@b.example`);
    await r.inspect({ ...req, from: '"john doe"@a.example', rcpts, releaseId: `q-abc-${'0'.repeat(12)} ${'1'.repeat(24)}` });
    await r.close();
    expect(last!.url).toBe('/v1/inspect');
    expect(readEnvelope(last!.body)).toEqual({
      direction: 'outbound',
      from: '"john doe"@a.example',
      rcpts,
      release: `q-abc-${'0'.repeat(12)} ${'1'.repeat(24)}`,
      message,
    });
  });

  test.each([
    [400, 'bad-request', 'rcpts must be 1 to 1000 addresses'],
    [431, 'headers-too-large', 'Request header block over 16384 bytes'],
  ])('%d from the inspector (a request of ours it refuses) is 4xx, logged as our own fault', async (status, code, text) => {
    answer = json(status, { error: { code, message: text } });
    logged.length = 0;
    const e = await failure(remote());
    expect(e.reply).toMatchObject({ code: 451, status: '4.7.5' });
    expect(e.reply.text).toMatch(
      new RegExp(
        `refused this gateway's request \\(HTTP ${status} ${code}: ${text}\\): a fault of the gateway or the inspector, not of the message`,
      ),
    );
    expect(logged).toEqual([
      expect.stringMatching(new RegExp(`^ssmax inspection: ERROR: .*HTTP ${status} ${code}.*the sender was answered 4xx`)),
    ]);
  });

  test('an inspector that never answers: 4xx after the timeout', async () => {
    answer = () => undefined;
    const t0 = Date.now();
    const e = await failure(remote('inspect.a.example', 300));
    expect(e.reply).toMatchObject({ code: 451, status: '4.7.5' });
    expect(e.reply.text).toMatch(/Inspection unavailable: inspector: no answer within 300 ms/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  test.each([
    [
      'not JSON',
      (res: import('node:http').ServerResponse) => {
        res.writeHead(200);
        res.end('ok');
      },
      /not JSON/,
    ],
    ['an unknown action', json(200, { decision: { action: 'maybe' } }), /valid decision/],
    [
      "the other direction's verdict",
      json(200, { verdict: { name: 'av', result: 'pass' }, decision: { action: 'pass' } }),
      /invalid verdict/,
    ],
    ['a reject without a rule', json(200, { verdict: { name: 'dlp', result: 'fail' }, decision: { action: 'reject' } }), /valid rule/],
    [
      'a quarantine without an id',
      json(200, { verdict: { name: 'dlp', result: 'fail' }, decision: { action: 'quarantine', rule: 'x' } }),
      /quarantine id/,
    ],
    ['503 busy', json(503, { error: { code: 'busy', message: 'Too many requests' } }), /busy/],
    ['500', json(500, { error: { code: 'internal', message: 'Internal error' } }), /internal/],
    ['401 (our certificate refused)', json(401, { error: { code: 'unauthenticated', message: 'refused' } }), /unauthenticated/],
    [
      '422 naming a reply it may not give',
      json(422, { error: { code: 'refused', message: 'x', details: { reply: 'dlpRejected' } } }),
      /refused/,
    ],
  ])('%s: 4xx, never a pass', async (_name, handler, text) => {
    answer = handler;
    const e = await failure(remote());
    expect(e).toBeInstanceOf(GatewayError);
    expect(e.reply).toMatchObject({ code: 451, status: '4.7.5' });
    expect(e.reply.text).toMatch(text);
  });

  test("503 naming quarantineFull (the inspector's quarantine at its cap) is the inline step's temporary 4.3.1, its text kept", async () => {
    answer = json(503, {
      error: {
        code: 'unavailable',
        message: 'Storage for held messages is full, retry later: the store would hold 2000 bytes, over its cap of 100',
        details: { reply: 'quarantineFull' },
      },
    });
    const e = await failure(remote());
    expect(e.temporary).toBe(true);
    expect(e.reply).toEqual({
      code: 451,
      status: '4.3.1',
      text: 'Storage for held messages is full, retry later: the store would hold 2000 bytes, over its cap of 100',
    });
  });

  test("422 naming heldTooLarge (a message alone over a cap of the inspector's quarantine) is the inline step's final 552 5.3.4, its text kept", async () => {
    const text =
      'Message too large to be held: the message takes 2000 bytes held (message and record), over [quarantine] max_bytes=100, the most held in all';
    answer = json(422, { error: { code: 'refused', message: text, details: { reply: 'heldTooLarge' } } });
    const e = await failure(remote());
    expect(e.temporary).toBe(false);
    expect(e.reply).toEqual({ code: 552, status: '5.3.4', text });
  });

  test("422 naming tooLargeToScan (longer than the inspector's clamd scans) is the inline step's final 552 5.3.4, its text kept", async () => {
    const text =
      'Message too large for the antivirus scan: 3000000 bytes are more than clamd scans in one stream (StreamMaxLength 1048576 bytes)';
    answer = json(422, { error: { code: 'refused', message: text, details: { reply: 'tooLargeToScan' } } });
    const e = await failure(remote());
    expect(e.temporary).toBe(false);
    expect(e.reply).toEqual({ code: 552, status: '5.3.4', text });
  });

  test('413 from the inspector is final: 552 5.3.4', async () => {
    answer = json(413, { error: { code: 'too-large', message: 'Request body over 4096 bytes' } });
    expect((await failure(remote())).reply).toMatchObject({ code: 552, status: '5.3.4' });
  });

  test("422 badCapsule is the inline step's 550 5.7.5", async () => {
    answer = json(422, {
      error: { code: 'refused', message: 'Malformed or foreign SSMAX capsule: expected one capsule', details: { reply: 'badCapsule' } },
    });
    const e = await failure(remote());
    expect(e.reply).toMatchObject({ code: 550, status: '5.7.5', text: 'Malformed or foreign SSMAX capsule: expected one capsule' });
  });

  test('a server whose certificate has the right name but not the inspector role is refused: 4xx', async () => {
    const kp = generateP256KeyPair();
    const now = Date.now();
    const impostor = issueTlsCertificate(fx.orgCa, {
      role: 'gateway',
      hosts: ['inspect.a.example'],
      publicKey: kp.publicKey,
      notBefore: new Date(now - 86400000),
      notAfter: new Date(now + 86400000),
    });
    fake.setSecureContext({ cert: impostor.pem + fx.orgCa.certificate.pem, key: privateKeyToPem(kp.privateKey) });
    answer = json(200, { decision: { action: 'pass' } });
    try {
      const e = await failure(remote());
      expect(e.reply).toMatchObject({ code: 451, status: '4.7.5' });
      expect(e.reply.text).toMatch(/inspector role/);
    } finally {
      fake.setSecureContext({ cert: fx.clients.inspector.cert + fx.orgCa.certificate.pem, key: fx.clients.inspector.key });
    }
  });

  test("a server with another name (keyd's certificate) is refused: 4xx", async () => {
    answer = json(200, { decision: { action: 'pass' } });
    const e = await failure(remote('keyd.a.example'));
    expect(e.reply).toMatchObject({ code: 451, status: '4.7.5' });
  });
});
