/**
 * Operations through real processes (docs/operations.md).
 * One structured log line per message per hop, read from
 * the output of real Haraka processes (two organisations, keyd over mutual
 * TLS, publishers, mailbox stores; loopback): a delivered, a refused and a
 * deferred message, each in the direction it happens; the fields are there,
 * and neither the message's text nor any private key is. Then the [ops]
 * listeners (plain HTTP, no client certificate) of the gateways, keyd, the
 * publisher and the inspector: liveness, readiness (503 while keyd is down),
 * and /metrics in the Prometheus text format agreeing with the log lines.
 */
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Network } from '../../src/demo/network';
import { KeydClient } from '../../src/keyd/client';
import type { MessageRecord } from '../../src/gateway/message-log';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { network, smtp, waitFor } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
beforeAll(async () => {
  net = await network([
    {
      domain: 'a.example',
      users: [
        { address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' },
        { address: 'dave@a.example', client: 'plain', password: 'pw-dave' },
      ],
    },
    {
      domain: 'b.example',
      users: [
        { address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' },
        { address: 'carol@b.example', client: 'plain', password: 'pw-carol' },
      ],
      inspector: {},
    },
  ]);
});
afterAll(async () => {
  await net?.stop();
});

const A = () => net.org('a.example');
const B = () => net.org('b.example');
const dave = { user: 'dave@a.example', pass: 'pw-dave' };
const BODY_MARKER = 'Body-marker Osprey-5531 confidential';
const SUBJECT_MARKER = 'Subject-marker Heron-8812';

/** GET on an ops listener (plain HTTP, loopback). */
function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: 10000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type'] ?? ''),
          body: Buffer.concat(parts).toString('utf8'),
        }),
      );
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** The value of one sample line of a Prometheus text exposition (undefined when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

let keydDownReady: { status: number; body: string } | undefined;

function records(org: ReturnType<typeof A>): MessageRecord[] {
  // whole lines only: the last one may still be arriving
  return [...org.haraka.logs().matchAll(/ssmax-message (\{.*\})[ \t\r]*\n/g)].map((m) => JSON.parse(m[1]!) as MessageRecord);
}
const lines = (org: ReturnType<typeof A>) =>
  org.haraka
    .logs()
    .split('\n')
    .filter((l) => l.includes('ssmax-message '));
const queueIdIn = (reply: string) => /\(([0-9A-F-]{36}(?:\.\d+)?)\)/i.exec(reply)?.[1];
const plain = (to: string, id: string, extra = '') =>
  `From: dave@a.example\r\nTo: ${to}\r\nSubject: ${SUBJECT_MARKER} ${id}\r\nMessage-ID: <${id}@a.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n${extra}\r\n${BODY_MARKER} ${id}\r\n`;

/** The base64 body of every private key these organisations hold (none may be logged). */
function privateKeys(): string[] {
  const out: string[] = [];
  for (const org of [A(), B()]) {
    for (const f of ['seal.key.pem', 'gateway.key', 'inspector.key', 'signer.key.pem', 'admin.key']) {
      const pem = readFileSync(join(org.fx.dir, f), 'utf8');
      for (const l of pem.split('\n').filter((x) => x !== '' && !x.startsWith('-----'))) out.push(l.trim());
    }
  }
  return out.filter((l) => l.length >= 16);
}

describe('one JSON line per message per hop', () => {
  let delivered: { out: MessageRecord; in: MessageRecord; reply: string };
  let refusedOut: MessageRecord;
  let refusedIn: MessageRecord;
  let deferred: MessageRecord;

  beforeAll(async () => {
    // delivered: alice (SSMAX client) to bob; a.example queues (outbound), b.example delivers (inbound)
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const original = Buffer.from(
      `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: ${SUBJECT_MARKER}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <log-1@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${BODY_MARKER}\r\n`,
    );
    const r = await submitMessage(alice, await signAndEncrypt(alice, original, { now: new Date() }), { to: ['bob@b.example'] });
    expect(r.response).toMatch(/^250 .*SSMAX client mode/);
    await waitFor(() => B().mailbox.for('bob@b.example').length >= 1 && records(B()).length >= 1);
    const qid = queueIdIn(r.response);
    const out = records(A()).find((x) => x.queueId === qid);
    expect(out).toBeDefined();
    delivered = { out: out!, in: records(B())[0]!, reply: r.response };

    // refused at submission: two From fields (550 5.6.7)
    const dup = await smtp(
      A().ports.smtp,
      'dave@a.example',
      ['carol@b.example'],
      plain('carol@b.example', 'log-dup', 'From: eve@a.example\r\n'),
      dave,
    );
    expect(dup).toMatch(/^550 5\.6\.7/);
    // the reply can reach the client before Haraka's log line reaches its stdout pipe
    await waitFor(() => records(A()).some((x) => x.reply.status === '5.6.7'));
    refusedOut = records(A()).find((x) => x.reply.status === '5.6.7')!;

    // refused at arrival: an unsealed message claiming a.example, handed straight to b.example (550 5.7.7)
    const before = records(B()).length;
    const unsealed = await smtp(B().ports.smtp, 'dave@a.example', ['carol@b.example'], plain('carol@b.example', 'log-unsealed'));
    expect(unsealed).toMatch(/^550 5\.7\.7/);
    await waitFor(() => records(B()).length > before);
    refusedIn = records(B())
      .slice(before)
      .find((x) => x.outcome === 'refused')!;

    // deferred: a.example's keyd is down while dave submits (451 4.7.5), then back
    await A().keyd.stop();
    try {
      const soft = await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], plain('carol@b.example', 'log-soft'), dave);
      expect(soft).toMatch(/^450 4\.7\.5/);
      keydDownReady = await get(A().ports.ops.gateway, '/health/ready');
    } finally {
      await A().restartKeyd();
    }
    await waitFor(() => records(A()).some((x) => x.outcome === 'deferred'));
    deferred = records(A()).find((x) => x.outcome === 'deferred')!;
    for (const org of [A(), B()]) for (const l of lines(org)) process.stdout.write(`${org.domain}: ${l}\n`);
  });

  test('delivered: the sending hop names the queue id, mode, peer, key versions, outcome and step times', () => {
    const o = delivered.out;
    expect(o).toMatchObject({
      event: 'ssmax-message',
      direction: 'outbound',
      mode: 'ssmax',
      submitter: 'smtp-auth',
      peers: ['b.example'],
      rcpts: 1,
      outcome: 'queued',
    });
    expect(o.reply).toMatchObject({ code: 250, status: '2.0.0' });
    expect(delivered.reply).toContain(o.queueId);
    // the user's capsule was for an a.example version; the copy went out to a b.example version
    expect(o.keyVersions.some((k) => /^a\.example:v\d+$/.test(k))).toBe(true);
    expect(o.keyVersions.some((k) => /^b\.example:v\d+$/.test(k))).toBe(true);
    expect(o.ms.keyd).toBeGreaterThan(0);
    expect(o.ms.total).toBeGreaterThanOrEqual(o.ms.keyd);
  });

  test('delivered: the receiving hop names the sealing peer, the chain verdict, its key version and the delivery time', () => {
    const i = delivered.in;
    expect(i).toMatchObject({
      direction: 'inbound',
      mode: 'ssmax',
      peers: ['a.example'],
      chain: { result: 'pass', seals: 1 },
      outcome: 'delivered',
      reply: { code: 250 },
    });
    expect(i.keyVersions.every((k) => k.startsWith('b.example:v'))).toBe(true);
    expect(i.keyVersions.length).toBeGreaterThan(0);
    expect(i.ms.delivery).toBeGreaterThan(0);
    expect(i.ms.chain).toBeGreaterThan(0);
    expect(i.queueId).toMatch(/^[0-9A-F-]{36}/i);
  });

  test('refused: the 5xx reply with its enhanced status code, in both directions', () => {
    expect(refusedOut).toMatchObject({
      direction: 'outbound',
      mode: 'transparent',
      outcome: 'refused',
      reply: { code: 550, status: '5.6.7' },
      peers: ['b.example'],
    });
    expect(refusedIn).toMatchObject({
      direction: 'inbound',
      mode: 'transparent',
      outcome: 'refused',
      chain: { result: 'none', seals: 0 },
      reply: { code: 550, status: '5.7.7' },
    });
  });

  test('deferred: 450 with 4.7.5 (Haraka answers DENYSOFT after DATA with 450)', () => {
    expect(deferred).toMatchObject({
      direction: 'outbound',
      mode: 'transparent',
      outcome: 'deferred',
      reply: { code: 450, status: '4.7.5' },
    });
    expect(deferred.reply.text).toMatch(/Key service unavailable/);
  });

  test('every line is one JSON object; none carries the message text, its subject or a private key', () => {
    const all = [...lines(A()), ...lines(B())];
    expect(all.length).toBeGreaterThanOrEqual(5);
    const keys = privateKeys();
    expect(keys.length).toBeGreaterThan(5);
    for (const l of all) {
      expect(l).not.toContain('Osprey');
      expect(l).not.toContain('Heron');
      expect(l).not.toMatch(/PRIVATE KEY/);
      for (const k of keys) expect(l).not.toContain(k);
    }
  });
});

describe('the [ops] listeners: health without client certificates, Prometheus metrics', () => {
  test('liveness and readiness of every process, plain HTTP, nothing secret', async () => {
    for (const org of [A(), B()]) {
      const ports = {
        gateway: org.ports.ops.gateway,
        keyd: org.ports.ops.keyd,
        publisher: org.ports.ops.publisher,
        ...(org.ports.ops.inspector ? { inspector: org.ports.ops.inspector } : {}),
      };
      for (const [service, port] of Object.entries(ports)) {
        const live = await get(port, '/health/live');
        expect(live.status).toBe(200);
        expect(JSON.parse(live.body)).toEqual({ service, status: 'live' });
        const ready = await get(port, '/health/ready');
        expect({ service, status: ready.status }).toEqual({ service, status: 200 });
        expect(JSON.parse(ready.body)).toMatchObject({ service, status: 'ready' });
        for (const k of privateKeys()) expect(ready.body).not.toContain(k);
      }
    }
    expect(Object.keys(JSON.parse((await get(B().ports.ops.inspector, '/health/ready')).body).checks)).toEqual(['keyd']);
    expect((await get(A().ports.ops.gateway, '/nothing')).status).toBe(404);
  });

  test('readiness said 503 with the failing check while keyd was down', () => {
    expect(keydDownReady?.status).toBe(503);
    expect(JSON.parse(keydDownReady!.body)).toMatchObject({
      service: 'gateway',
      status: 'not-ready',
      // the reason in words, never an error class's name
      checks: { keyd: expect.stringMatching(/^unavailable: keyd (unreachable|did not answer)/), crls: 'ok' },
    });
  });

  test('gateway /metrics counts what the log lines say, with reply codes and step latency', async () => {
    let a = '';
    for (const org of [A(), B()]) {
      const m = await get(org.ports.ops.gateway, '/metrics');
      if (org === A()) a = m.body; // the first scrape: every series filled at once
      expect(m.status).toBe(200);
      expect(m.type).toMatch(/^text\/plain; version=0\.0\.4/);
      const recs = records(org);
      const outcomes = new Map<string, number>();
      for (const r of recs) outcomes.set(`${r.direction}/${r.outcome}`, (outcomes.get(`${r.direction}/${r.outcome}`) ?? 0) + 1);
      expect(outcomes.size).toBeGreaterThan(0);
      for (const [key, n] of outcomes) {
        const [direction, outcome] = key.split('/') as [string, string];
        expect({ key, n: sample(m.body, 'ssmax_gateway_messages_total', { direction, outcome }) }).toEqual({ key, n });
      }
      for (const r of recs)
        expect(
          sample(m.body, 'ssmax_gateway_replies_total', { direction: r.direction, code: String(r.reply.code), status: r.reply.status }),
        ).toBeGreaterThanOrEqual(1);
      expect(sample(m.body, 'ssmax_gateway_step_seconds_count', { direction: recs[0]!.direction, step: 'total' })).toBeGreaterThanOrEqual(
        1,
      );
      expect(sample(m.body, 'ssmax_gateway_crl_next_update_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000);
      expect(m.body).not.toContain('Osprey');
      if (org === A())
        process.stdout.write(
          `a.example gateway /metrics (first lines):\n${m.body
            .split('\n')
            .filter(
              (l) =>
                l.startsWith('ssmax_gateway_messages') ||
                l.startsWith('# HELP ssmax_gateway_messages') ||
                l.startsWith('ssmax_gateway_replies') ||
                l.startsWith('ssmax_gateway_peer'),
            )
            .join('\n')}\n`,
        );
    }
    // the peer's bundle was fetched to send the copy: age and expiry per peer
    expect(sample(a, 'ssmax_gateway_peer_bundle_usable', { peer: 'b.example' })).toBe(1);
    expect(sample(a, 'ssmax_gateway_peer_bundle_expiry_timestamp_seconds', { peer: 'b.example' })).toBeGreaterThan(Date.now() / 1000);
    expect(sample(a, 'ssmax_gateway_peer_bundle_age_seconds', { peer: 'b.example' })).toBeGreaterThanOrEqual(0);
  });

  test('keyd /metrics: operations by kind and result, refusals by reason, audit chain length, key versions with state and expiry', async () => {
    const m = (await get(B().ports.ops.keyd, '/metrics')).body; // the first scrape
    expect(sample(m, 'ssmax_keyd_operations_total', { op: 'reencrypt', result: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(m, 'ssmax_keyd_audit_records')).toBeGreaterThanOrEqual(
      sample(m, 'ssmax_keyd_operations_total', { op: 'reencrypt', result: 'ok' })!,
    );
    expect(sample(m, 'ssmax_keyd_key_versions', { state: 'active' })).toBeGreaterThanOrEqual(1);
    expect(sample(m, 'ssmax_keyd_key_expiry_timestamp_seconds', { key_id: 'b.example:v1', state: 'active' })).toBeGreaterThan(
      Date.now() / 1000,
    );
    expect(sample(m, 'ssmax_keyd_current_key_expiry_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000);
    // a refusal: the inspector role may not re-encrypt
    const before = sample(m, 'ssmax_keyd_refusals_total', { op: 'reencrypt', reason: 'forbidden' }) ?? 0;
    const fx = B().fx;
    const client = new KeydClient({
      url: `https://127.0.0.1:${B().ports.keyd}`,
      servername: 'keyd.b.example',
      cert: fx.clients.inspector.cert,
      key: fx.clients.inspector.key,
      ca: fx.caPem,
    });
    await expect(
      client.call('POST', '/v1/reencrypt', { keyId: 'b.example:v1', capsule: 'AA', target: { kind: 'user', address: 'bob@b.example' } }),
    ).rejects.toThrow();
    client.close();
    const after = (await get(B().ports.ops.keyd, '/metrics')).body;
    const refusals = [...after.matchAll(/^ssmax_keyd_refusals_total\{([^}]*)\} (\d+)/gm)].map((x) => [x[1], Number(x[2])] as const);
    expect(refusals.reduce((s, [, n]) => s + n, 0)).toBeGreaterThan(before);
  });

  test("publisher /metrics: the served bundle's serial and expiry, CRL next-update; inspector /metrics answers", async () => {
    const m = (await get(A().ports.ops.publisher, '/metrics')).body;
    expect(sample(m, 'ssmax_publisher_bundle_serial')).toBeGreaterThanOrEqual(1);
    expect(sample(m, 'ssmax_publisher_bundle_expiry_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000);
    expect(sample(m, 'ssmax_publisher_last_error_timestamp_seconds')).toBe(0);
    expect(sample(m, 'ssmax_publisher_crl_next_update_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000);
    const i = await get(B().ports.ops.inspector, '/metrics');
    expect(i.status).toBe(200);
    expect(i.body).toMatch(/^# HELP ssmax_inspector_/m);
  });
});

test('every series the Grafana dashboard (docs/grafana/ssmax-dashboard.json) plots is exported by a process here', async () => {
  const dashboard = readFileSync(join(__dirname, '..', '..', 'docs', 'grafana', 'ssmax-dashboard.json'), 'utf8');
  const wanted = new Set([...dashboard.matchAll(/ssmax_[a-z_]+/g)].map((m) => m[0].replace(/_bucket$/, '')));
  const o = A().ports.ops;
  const exported = (await Promise.all([o.gateway, o.keyd, o.publisher, B().ports.ops.inspector].map((p) => get(p, '/metrics'))))
    .map((r) => r.body)
    .join('\n');
  const names = new Set([...exported.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
  // clamd availability is exported only where [av] is on (none here)
  const missing = [...wanted].filter((n) => !names.has(n) && !/clamd_up$/.test(n));
  expect(missing).toEqual([]);
  expect(wanted.size).toBeGreaterThan(10);
});
