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
    await ops.primeUsers(['bob@a.example', ...members]); // 301 addresses, but a reuse period of 0: nothing to keep, so not asked
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

describe("the members' facts asked of a keyd with a small body limit", () => {
  test('long addresses over [limits] max_body_bytes: the request is halved until it fits, every member kept', async () => {
    const fx = makeOrgFixture();
    const cfg = loadKeydConfig(fx.configFile);
    const keyd = await startKeyd({ ...cfg, limits: { ...cfg.limits, maxBodyBytes: 1024 } });
    const registry = keydMetrics(keyd);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    const gateway = clientFor(fx, keyd.port, fx.clients.gateway);
    try {
      // 64-character local parts: 40 of them make a body of about 3 kB, three times keyd's limit
      const long = Array.from({ length: 40 }, (_, i) => `${'m'.repeat(60)}${String(i).padStart(4, '0')}@a.example`);
      for (const [i, address] of long.entries())
        await admin.call('POST', '/v1/registry/users', { address, code: `L-${i}`, identityRef: `E-${i}` });
      await expect(gateway.call('POST', '/v1/directory/users', { addresses: long })).rejects.toMatchObject({ status: 413 });
      const ops = new KeydOps(g, gateway, undefined, 60_000, Date.now, undefined, 0);
      await ops.primeUsers(long); // before: the 413 was thrown, and the post deferred with 451 every time
      expect(await lookups(registry, 'directory.users')).toBeGreaterThanOrEqual(4); // halved: 40 → 20 → 10 (each fits)
      for (const address of long) expect(await ops.user(address)).toMatchObject({ address, status: 'active' });
      expect(await lookups(registry, 'directory.user')).toBe(0); // every member was kept by primeUsers
    } finally {
      admin.close();
      gateway.close();
      await keyd.stop();
    }
  });

  test('a lasting refusal of the request only ends the saving: each member is then asked by user()', async () => {
    const fx = makeOrgFixture();
    const keyd = await startKeyd(loadKeydConfig(fx.configFile));
    const registry = keydMetrics(keyd);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    const gateway = clientFor(fx, keyd.port, fx.clients.gateway);
    try {
      await admin.call('POST', '/v1/registry/users', { address: 'bob@a.example', code: 'U-1', identityRef: 'EMP-1' });
      const ops = new KeydOps(g, gateway, undefined, 60_000, Date.now, undefined, 0);
      // an address keyd refuses as malformed makes the whole request a 400
      await ops.primeUsers(['bob@a.example', 'not an address']);
      expect(await ops.user('bob@a.example')).toMatchObject({ status: 'active' });
      expect(await lookups(registry, 'directory.user')).toBe(1);
    } finally {
      admin.close();
      gateway.close();
      await keyd.stop();
    }
  });
});

describe('the audit log after a failed write', () => {
  test('a later write that commits ends the failure: no restart needed', async () => {
    const store = KeydStore.open(mkdtempSync(join(tmpdir(), 'ssmax-audit-')), { create: true });
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
    const store = KeydStore.open(mkdtempSync(join(tmpdir(), 'ssmax-audit-')), { create: true });
    try {
      const log = new AuditLog(store, Buffer.alloc(32, 9));
      const now = new Date();
      const inputs = Array.from({ length: 500 }, () => ({ actor: 't', role: 'admin', op: 'test', result: 'ok' as const }));
      for (let i = 0; i < 10; i++) await log.appendMany(inputs, now);
      // the check's first pause between chunks is held until a record appended meanwhile has committed:
      // the event loop serves that append while the check waits, and the check must then include it
      const realSetImmediate = setImmediate;
      let appending: Promise<unknown> | undefined;
      const pause = jest.spyOn(global, 'setImmediate').mockImplementationOnce(((resume: () => void) => {
        appending = log.append({ actor: 't', role: 'admin', op: 'late', result: 'ok' }, now);
        void appending.then(() => realSetImmediate(resume));
        return undefined as unknown as NodeJS.Immediate;
      }) as unknown as typeof setImmediate);
      const reads = jest.spyOn(store.audit, 'getRange');
      const checking = log.verifyInTurns();
      pause.mockRestore();
      expect(appending).toBeDefined(); // it paused after its first chunk, not after the whole chain
      expect(log.verifyInTurns()).toBe(checking); // concurrent requests share one check
      const verdict = await checking;
      const chunks = reads.mock.calls.length;
      reads.mockRestore();
      expect(verdict).toEqual({ ok: true, count: 5001 }); // the record appended during the check included
      expect(chunks).toBe(21); // 20 chunks of 250, then the one record appended meanwhile
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
