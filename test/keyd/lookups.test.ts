/**
 * The gateway's read-only lookups at a real keyd (in this process, over its
 * HTTPS API with mutual TLS): they write no audit record (a sender on the
 * Internet decides how often they are asked) and are counted instead; a
 * missing endpoint is answered `no-such-endpoint`, which a client treats as
 * its own temporary fault, never as "no such user or list"; an answer over
 * the client's byte limit is refused as a temporary fault; the audit log
 * serves again once a write succeeds after a failed one; and the chain check
 * of keyd's API leaves the event loop free between chunks.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry as PromRegistry } from 'prom-client';
import { groups } from '../../src/crypto';
import { AuditLog } from '../../src/keyd/audit';
import { KeydClient, KeydClientError } from '../../src/keyd/client';
import { KeydOps } from '../../src/keyd/client-ops';
import { loadKeydConfig } from '../../src/keyd/config';
import { type RunningKeyd, startKeyd } from '../../src/keyd/daemon';
import { KeydStore } from '../../src/keyd/store';
import { GatewayError } from '../../src/mail/replies';
import { keydMetrics } from '../../src/ops/keyd-ops';
import { type OrgFixture, makeOrgFixture } from '../support/org-fixture';
import { clientFor } from '../support/keyd-process';

const g = groups.libsecp256k1;

/** keyd's answer to the admin's chain check: the number of audit records. */
async function auditCount(admin: KeydClient): Promise<number> {
  const r = await admin.call<{ ok: boolean; count: number }>('GET', '/v1/audit/verify');
  expect(r.ok).toBe(true);
  return r.count;
}

/** The value of `ssmax_keyd_lookups_total{op, result}` (0 when never counted). */
async function lookups(registry: PromRegistry, op: string, result = 'ok'): Promise<number> {
  const m = (await registry.getSingleMetric('ssmax_keyd_lookups_total')?.get())?.values ?? [];
  return m.find((v) => v.labels.op === op && v.labels.result === result)?.value ?? 0;
}

/** A client standing in for a gateway of a newer version: it asks keyd paths keyd does not have (`/v1/...` → `/v1/newer/...`). */
class NewerGatewayClient extends KeydClient {
  override call<T>(method: 'GET' | 'POST', path: string, body?: unknown, headers?: Readonly<Record<string, string>>): Promise<T> {
    return super.call<T>(method, path.replace(/^\/v1\//, '/v1/newer/'), body, headers);
  }
}

describe('read-only lookups at keyd', () => {
  let fx: OrgFixture;
  let keyd: RunningKeyd;
  let admin: KeydClient;
  let gateway: KeydClient;
  let registry: PromRegistry;
  const members = Array.from({ length: 300 }, (_, i) => `member${String(i).padStart(4, '0')}@a.example`);

  beforeAll(async () => {
    fx = makeOrgFixture();
    keyd = await startKeyd(loadKeydConfig(fx.configFile));
    registry = keydMetrics(keyd);
    admin = clientFor(fx, keyd.port, fx.clients.admin);
    gateway = clientFor(fx, keyd.port, fx.clients.gateway);
    await admin.call('POST', '/v1/registry/users', { address: 'bob@a.example', code: 'U-1', identityRef: 'EMP-1' });
    await admin.call('POST', '/v1/lists', { address: 'staff@a.example', policy: 'open', members });
  });
  afterAll(async () => {
    admin?.close();
    gateway?.close();
    await keyd?.stop();
  });

  test('user facts, address kinds and list resolutions write no audit record and are counted', async () => {
    const before = await auditCount(admin);
    const ops = new KeydOps(g, gateway, undefined, 0, Date.now, undefined, 0);
    for (let i = 0; i < 50; i++) {
      expect(await ops.kind(`nobody${i}@a.example`)).toEqual({ kind: 'none' });
      expect(await ops.user(`nobody${i}@a.example`)).toBeUndefined();
    }
    expect(await ops.kind('bob@a.example')).toEqual({ kind: 'user', status: 'active' });
    expect(await ops.kind('STAFF@a.example')).toEqual({ kind: 'list' });
    const staff = await ops.list('staff@a.example');
    expect(staff?.members).toHaveLength(members.length);
    expect(staff).not.toHaveProperty('users'); // the members' facts are asked apart, once the posting policy admitted a post
    await ops.primeUsers(['bob@a.example', ...members]); // 301 addresses: one request
    expect(await lookups(registry, 'directory.users')).toBe(0); // a reuse period of 0: nothing to keep, nothing asked
    expect(await ops.list('nobody@a.example')).toBeUndefined();
    expect(await auditCount(admin)).toBe(before);
    expect(await lookups(registry, 'directory.address')).toBe(52);
    expect(await lookups(registry, 'directory.user', 'not-found')).toBe(50);
    expect(await lookups(registry, 'list.resolve')).toBe(1);
    expect(await lookups(registry, 'list.resolve', 'not-found')).toBe(1);
  });

  test('the facts of many addresses in one request: registered users only, at most 1,000, counted and not audited', async () => {
    const before = await auditCount(admin);
    const r = await gateway.call<{ users: Record<string, { status: string }> }>('POST', '/v1/directory/users', {
      addresses: ['BOB@a.example', 'nobody@a.example', ...members.slice(0, 10)],
    });
    expect(Object.keys(r.users)).toEqual(['bob@a.example']);
    expect(r.users['bob@a.example']).toMatchObject({ status: 'active' });
    await expect(
      gateway.call('POST', '/v1/directory/users', { addresses: Array.from({ length: 1001 }, (_, i) => `u${i}@a.example`) }),
    ).rejects.toMatchObject({ code: 'bad-request' });
    let now = 0;
    const ops = new KeydOps(g, gateway, undefined, 5000, () => now, undefined, 0);
    const asked = await lookups(registry, 'directory.users');
    await ops.primeUsers([...members, 'bob@a.example']); // 301: one request of 500
    expect(await lookups(registry, 'directory.users')).toBe(asked + 1);
    expect(await ops.user('bob@a.example')).toMatchObject({ status: 'active' }); // kept: not asked again
    expect(await lookups(registry, 'directory.user')).toBe(0); // answered from what primeUsers kept
    now = 5000;
    await ops.user('bob@a.example');
    expect(await lookups(registry, 'directory.user')).toBe(1);
    expect(await auditCount(admin)).toBe(before);
  });

  test('a role that may not look up is refused, and that refusal is audited', async () => {
    const before = await auditCount(admin);
    await expect(admin.call('GET', '/v1/directory/addresses/bob%40a.example')).rejects.toMatchObject({ code: 'forbidden' });
    await expect(admin.call('GET', '/v1/lists/staff%40a.example/resolve')).rejects.toMatchObject({ code: 'forbidden' });
    expect(await auditCount(admin)).toBe(before + 2);
    const page = await admin.call<{ records: { op: string; result: string }[] }>('GET', '/v1/audit/records/0');
    expect(page.records.slice(0, 2).map((r) => [r.op, r.result])).toEqual([
      ['list.resolve', 'refused'],
      ['directory.address', 'refused'],
    ]);
  });

  test('not found is reused for not_found_ttl_ms, then asked again', async () => {
    let now = 1000;
    const ops = new KeydOps(g, gateway, undefined, 5000, () => now, undefined, 5000);
    const asked = () => lookups(registry, 'directory.address');
    const start = await asked();
    for (let i = 0; i < 20; i++) expect(await ops.kind('ghost@a.example')).toEqual({ kind: 'none' });
    expect(await ops.user('ghost@a.example')).toBeUndefined();
    expect(await asked()).toBe(start + 1);
    now += 5000;
    await ops.kind('ghost@a.example');
    expect(await asked()).toBe(start + 2);
  });

  test('an endpoint keyd does not have is no-such-endpoint: a temporary fault, never "no such user or list"', async () => {
    const err = await gateway.call('GET', '/v1/directory/nothing/bob%40a.example').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeydClientError);
    expect(err).toMatchObject({ code: 'no-such-endpoint', status: 404, transient: true });
    const missing = await gateway.call('GET', '/v1/directory/users/ghost%40a.example').catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'not-found', status: 404, transient: false });

    const newer = new NewerGatewayClient({
      url: `https://127.0.0.1:${keyd.port}`,
      servername: `keyd.${fx.domain}`,
      cert: fx.clients.gateway.cert,
      key: fx.clients.gateway.key,
      ca: fx.caPem,
    });
    try {
      const ops = new KeydOps(g, newer, undefined, 0, Date.now, undefined, 0);
      for (const ask of [() => ops.user('bob@a.example'), () => ops.list('staff@a.example'), () => ops.kind('bob@a.example')]) {
        const e = await ask().then(
          (v) => v,
          (x: unknown) => x,
        );
        expect(e).toBeInstanceOf(GatewayError);
        expect((e as GatewayError).reply).toMatchObject({ code: 451, status: '4.7.5' });
      }
    } finally {
      newer.close();
    }
  });

  test('an answer over the client limit is refused as a temporary fault, the limit named', async () => {
    const small = new KeydClient({
      url: `https://127.0.0.1:${keyd.port}`,
      servername: `keyd.${fx.domain}`,
      cert: fx.clients.gateway.cert,
      key: fx.clients.gateway.key,
      ca: fx.caPem,
      maxAnswerBytes: 4096,
    });
    try {
      const err = await small.call('GET', '/v1/lists/staff%40a.example/resolve').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'answer-too-large', status: 0, transient: true });
      expect((err as Error).message).toMatch(/more than 4096 bytes.*\[keyd\] max_answer_bytes/);
      const e = await new KeydOps(g, small, undefined, 0).list('staff@a.example').catch((x: unknown) => x);
      expect((e as GatewayError).reply).toMatchObject({ code: 451, status: '4.7.5' });
      // small answers still pass on the same client
      expect(await small.call('GET', '/v1/directory/addresses/bob%40a.example')).toMatchObject({ kind: 'user' });
    } finally {
      small.close();
    }
  });
});

describe('the audit log after a failed write', () => {
  test('a later write that commits ends the failure: no restart needed', async () => {
    const store = KeydStore.open(mkdtempSync(join(tmpdir(), 'ssmax-audit-')));
    try {
      const log = new AuditLog(store, Buffer.alloc(32, 7));
      const now = new Date();
      await log.append({ actor: 't', role: 'admin', op: 'test', result: 'ok' }, now);
      const real = store.root.childTransaction.bind(store.root);
      const spy = jest.spyOn(store.root, 'childTransaction').mockImplementationOnce(() => {
        throw Object.assign(new Error('MDB_MAP_FULL: No space left on device'), { code: 'ENOSPC' });
      });
      await expect(log.append({ actor: 't', role: 'admin', op: 'test', result: 'ok' }, now)).rejects.toMatchObject({
        code: 'audit-failed',
      });
      expect(log.failing).toMatch(/No space left/);
      spy.mockImplementation(real);
      // space is back: the next operation's record commits, and the log serves again
      expect((await log.append({ actor: 't', role: 'admin', op: 'test', result: 'ok' }, now)).seq).toBe(2);
      expect(log.failing).toBeUndefined();
      expect(log.verify()).toEqual({ ok: true, count: 2 });
    } finally {
      await store.close();
    }
  });
});

describe('the chain check of keyd API', () => {
  test('a long chain is checked in chunks with the event loop free between them, records appended meanwhile included', async () => {
    const store = KeydStore.open(mkdtempSync(join(tmpdir(), 'ssmax-audit-')));
    try {
      const log = new AuditLog(store, Buffer.alloc(32, 9));
      const now = new Date();
      const inputs = Array.from({ length: 500 }, () => ({ actor: 't', role: 'admin', op: 'test', result: 'ok' as const }));
      for (let i = 0; i < 10; i++) await log.appendMany(inputs, now);
      let turns = 0;
      const ticker = setInterval(() => turns++, 0);
      const checking = log.verifyInTurns();
      expect(log.verifyInTurns()).toBe(checking); // concurrent requests share one check
      await log.append({ actor: 't', role: 'admin', op: 'late', result: 'ok' }, now); // committed while the check runs
      const verdict = await checking;
      clearInterval(ticker);
      expect(verdict.ok).toBe(true);
      expect((verdict as { count: number }).count).toBeGreaterThanOrEqual(5000);
      expect(turns).toBeGreaterThan(0);
      expect(log.verify()).toEqual({ ok: true, count: 5001 });
      // an altered record is still found
      const entry = store.audit.get(4321)!;
      await store.audit.put(4321, { ...entry, record: { ...entry.record, op: 'changed' } });
      expect(await log.verifyInTurns()).toEqual({ ok: false, seq: 4321, reason: 'record altered (MAC mismatch)' });
    } finally {
      await store.close();
    }
  });
});
