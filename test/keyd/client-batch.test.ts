/**
 * The gateway's keyd client coalescing blinded operations (src/keyd/client-batch.ts):
 * against a real keyd process over mutual TLS, N concurrent operations make
 * fewer requests and give the same results as one request each; a refused
 * operation fails only its own caller; a list's explicit fan-out
 * (`reencryptMany`) goes through the same /v1/batch requests, each member
 * refused or answered on its own, keyd's retired-key notice passed on. The
 * fallback to single requests (a keyd without /v1/batch), the halving of a
 * batch keyd finds too large and the fan-out's request sizes as a unit, with a
 * stand-in client.
 */
import { type Capsule, decapsulate, encapsulate, generateEncryptionKeyPair, groups, newMessageKey, systemRng } from '../../src/crypto';
import { BATCH_DEFAULTS, FANOUT_IN_FLIGHT, FANOUT_MAX_OPS, KeydBatcher } from '../../src/keyd/client-batch';
import { KeydOps } from '../../src/keyd/client-ops';
import { GatewayError } from '../../src/mail/replies';
import { KeydClient, KeydClientError } from '../../src/keyd/client';
import { type OrgFixture, makeOrgFixture } from '../support/org-fixture';
import { type KeydProcess, clientFor, startKeydProcess } from '../support/keyd-process';

const g = groups.libsecp256k1;
const N = 12;
const users = Array.from({ length: N }, (_, i) => ({ address: `u${i}@a.example`, pair: generateEncryptionKeyPair(g, systemRng) }));

describe('coalescing against a real keyd', () => {
  let fx: OrgFixture;
  let keyd: KeydProcess;
  let orgKey: { keyId: string; publicKey: Uint8Array };
  const open: KeydClient[] = [];
  const client = (role: 'gateway' | 'inspector' | 'admin') => {
    const c = clientFor(fx, keyd.port, fx.clients[role]);
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    fx = makeOrgFixture();
    keyd = await startKeydProcess(fx.configFile);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    for (const [i, u] of users.entries()) {
      await admin.call('POST', '/v1/registry/users', {
        address: u.address,
        code: `U-${i}`,
        identityRef: `EMP-${i}`,
        encryptionPublicKey: Buffer.from(u.pair.publicKey).toString('hex'),
        encryptionKeyId: `k-${i}`,
      });
    }
    const pub = await admin.call<{ current: string; keys: { keyId: string; publicKey: string }[] }>('GET', '/v1/public');
    orgKey = {
      keyId: pub.current,
      publicKey: new Uint8Array(Buffer.from(pub.keys.find((k) => k.keyId === pub.current)!.publicKey, 'hex')),
    };
    admin.close();
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await keyd?.stop();
  });

  /** Re-encrypts one capsule to every user at once; what each recovers, and how many requests it took. */
  async function fanOut(ops: KeydOps, capsule: Capsule): Promise<{ keys: string[]; keyIds: string[]; requests: number }> {
    const moved = await Promise.all(users.map((u, i) => ops.reencrypt(capsule, { kind: 'user', address: u.address }, `k-${i}`)));
    return {
      keys: moved.map((m, i) => Buffer.from(decapsulate(g, m.capsule, users[i]!.pair.privateKey)).toString('hex')),
      keyIds: moved.map((m) => m.capsule.keyId),
      requests: ops.gatewayOps.requests,
    };
  }

  test(`${N} concurrent re-encryptions: fewer requests than operations, the same results as one request each`, async () => {
    const P = newMessageKey(g, systemRng);
    const capsule = encapsulate(g, P, orgKey, systemRng);
    const batched = await fanOut(new KeydOps(g, client('gateway'), undefined, 5000, Date.now), capsule);
    const single = await fanOut(
      new KeydOps(g, client('gateway'), undefined, 5000, Date.now, { windowMs: 0, maxOps: 1, maxBytes: 60000 }),
      capsule,
    );
    expect(single.requests).toBe(N);
    expect(batched.requests).toBeLessThan(N);
    expect(batched.requests).toBe(Math.ceil(N / BATCH_DEFAULTS.maxOps)); // all issued in one turn of the event loop: full batches
    expect(batched.keys).toEqual(single.keys);
    expect(batched.keys).toEqual(users.map(() => Buffer.from(P).toString('hex')));
    expect(batched.keyIds).toEqual(single.keyIds);
  });

  test('a window and a size bound: operations issued over a few milliseconds share requests of at most batch_max_ops', async () => {
    const ops = new KeydOps(g, client('gateway'), undefined, 5000, Date.now, { windowMs: 30, maxOps: 5, maxBytes: 60000 });
    const capsule = encapsulate(g, newMessageKey(g, systemRng), orgKey, systemRng);
    const pending = [];
    for (const [i, u] of users.entries()) {
      pending.push(ops.reencrypt(capsule, { kind: 'user', address: u.address }, `k-${i}`));
      if (i % 4 === 3) await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.all(pending);
    expect(ops.gatewayOps.requests).toBe(Math.ceil(N / 5));
  });

  test('a refused operation in a batch fails only its caller', async () => {
    const ops = new KeydOps(g, client('gateway'), undefined, 5000, Date.now);
    const P = newMessageKey(g, systemRng);
    const capsule = encapsulate(g, P, orgKey, systemRng);
    const targets = users.slice(0, 4).map((u) => u.address);
    targets.splice(2, 0, 'nobody@a.example');
    const settled = await Promise.allSettled(targets.map((address) => ops.reencrypt(capsule, { kind: 'user', address })));
    expect(ops.gatewayOps.requests).toBe(1);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const err = (settled[2] as PromiseRejectedResult).reason as GatewayError;
    expect(err).toBeInstanceOf(GatewayError);
    expect(err.message).toMatch(/target-refused/);
    const ok = settled[3] as PromiseFulfilledResult<{ capsule: Capsule }>;
    expect(decapsulate(g, ok.value.capsule, users[2]!.pair.privateKey)).toEqual(P);
  });

  test('blinded decryptions of an inspector travel in one batch, each proof checked', async () => {
    const ops = new KeydOps(g, client('gateway'), client('inspector'), 5000, Date.now);
    const keys = Array.from({ length: 6 }, () => newMessageKey(g, systemRng));
    const got = await Promise.all(keys.map((P) => ops.messageKey(encapsulate(g, P, orgKey, systemRng), orgKey.publicKey)));
    expect(ops.inspectorOps!.requests).toBe(1);
    expect(got.map((r) => Buffer.from(r.messageKey).toString('hex'))).toEqual(keys.map((k) => Buffer.from(k).toString('hex')));
  });

  test('a fan-out (reencryptMany) travels in one /v1/batch request: a refused target is refused in its slot, the others open', async () => {
    const ops = new KeydOps(g, client('gateway'), undefined, 5000, Date.now);
    const P = newMessageKey(g, systemRng);
    const capsule = encapsulate(g, P, orgKey, systemRng);
    const targets = users.map((u) => ({ kind: 'user' as const, address: u.address }));
    const keyIds = users.map((_, i) => `k-${i}`);
    targets.splice(5, 0, { kind: 'user', address: 'nobody@a.example' });
    keyIds.splice(5, 0, 'k-none');
    const answers = await ops.reencryptMany(capsule, targets, keyIds);
    expect(ops.gatewayOps.requests).toBe(1);
    expect(answers).toHaveLength(N + 1);
    expect(answers[5]).toEqual({ refused: expect.stringMatching(/nobody@a\.example.*not a registered user/) });
    const opened = answers
      .filter((_, i) => i !== 5)
      .map((a, i) => {
        if (!('capsule' in a)) throw new Error(`member ${i} refused: ${a.refused}`);
        expect(a.capsule.keyId).toBe(`k-${i}`);
        expect(a).not.toHaveProperty('notice');
        return Buffer.from(decapsulate(g, a.capsule, users[i]!.pair.privateKey)).toString('hex');
      });
    expect(opened).toEqual(users.map(() => Buffer.from(P).toString('hex')));
  });

  test("a member's organisation certificate refused for now (revocation unknown, not yet valid) fails the fan-out as a whole (a retry, no member lost); refused for good, only that member's slot", async () => {
    const ops = new KeydOps(g, client('gateway'), undefined, 5000, Date.now);
    const capsule = encapsulate(g, newMessageKey(g, systemRng), orgKey, systemRng);
    const target = { kind: 'peer' as const, domain: 'c.example', certificate: '', chain: [], crls: [] };
    const answer = (details: Record<string, string>) => {
      ops.gatewayOps.many = (async () => [
        { status: 'rejected', reason: new KeydClientError('target-refused', 'Peer certificate for "c.example" refused', 422, details) },
      ]) as typeof ops.gatewayOps.many;
      return ops.reencryptMany(capsule, [target], ['c.example:v1']);
    };
    await expect(answer({ domain: 'c.example', validation: 'revocation-unknown' })).rejects.toThrow(/target-refused/);
    await expect(answer({ domain: 'c.example', validation: 'not-yet-valid' })).rejects.toThrow(/target-refused/);
    // a certificate that does not name the member's domain: a peer's (or our directory's) fault, not the member's
    await expect(answer({ domain: 'c.example' })).rejects.toThrow(/target-refused/);
    expect(await answer({ domain: 'c.example', validation: 'revoked', final: 'revoked (keyCompromise)' })).toEqual([
      { refused: expect.stringMatching(/refused/) },
    ]);
  });

  test('a fan-out fails as a whole for a fault of the capsule (unknown key), as a single re-encryption would', async () => {
    const ops = new KeydOps(g, client('gateway'), undefined, 5000, Date.now);
    const capsule = { ...encapsulate(g, newMessageKey(g, systemRng), orgKey, systemRng), keyId: 'a.example:v99' };
    await expect(
      ops.reencryptMany(
        capsule,
        users.slice(0, 3).map((u) => ({ kind: 'user' as const, address: u.address })),
        ['k-0', 'k-1', 'k-2'],
      ),
    ).rejects.toThrow(/unknown key id/);
  });

  // last: it rotates the organisation key of this keyd
  test("a fan-out of a capsule for a retired key version passes on keyd's notice in every answer, as reencrypt does", async () => {
    const admin = client('admin');
    await admin.call('POST', '/v1/keys/rotate', {});
    const { current } = await admin.call<{ current: string }>('GET', '/v1/public');
    expect(current).not.toBe(orgKey.keyId);
    const ops = new KeydOps(g, client('gateway'), undefined, 5000, Date.now);
    const capsule = encapsulate(g, newMessageKey(g, systemRng), orgKey, systemRng);
    const answers = await ops.reencryptMany(
      capsule,
      users.slice(0, 3).map((u) => ({ kind: 'user' as const, address: u.address })),
      ['k-0', 'k-1', 'k-2'],
    );
    expect(answers).toEqual(users.slice(0, 3).map(() => expect.objectContaining({ notice: 'retired', current })));
    const single = await ops.reencrypt(capsule, { kind: 'user', address: users[0]!.address }, 'k-0');
    expect(single).toMatchObject({ notice: 'retired', current });
  });
});

describe('fallback', () => {
  test('a keyd without /v1/batch (404) is asked one operation at a time, and each caller gets its own answer', async () => {
    const paths: string[] = [];
    const stub = Object.create(KeydClient.prototype) as KeydClient;
    stub.call = (async (_m: string, path: string, body?: { n?: number }) => {
      paths.push(path);
      if (path === '/v1/batch') throw new KeydClientError('not-found', 'No endpoint /v1/batch', 404);
      if (body?.n === 2) throw new KeydClientError('target-refused', 'no', 403);
      return { n: body?.n };
    }) as KeydClient['call'];
    const b = new KeydBatcher(stub);
    const settled = await Promise.allSettled([1, 2, 3].map((n) => b.call('reencrypt', { n })));
    expect(paths).toEqual(['/v1/batch', '/v1/reencrypt', '/v1/reencrypt', '/v1/reencrypt']);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as KeydClientError).code))).toEqual([
      { n: 1 },
      'target-refused',
      { n: 3 },
    ]);
  });

  test('a fan-out goes in batches of at most FANOUT_MAX_OPS, a few in flight, each operation answered in order', async () => {
    const sizes: number[] = [];
    let inFlight = 0;
    let most = 0;
    const stub = Object.create(KeydClient.prototype) as KeydClient;
    stub.call = (async (_m: string, path: string, body?: { ops?: { n: number }[]; n?: number }) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      if (path !== '/v1/batch') return { n: body?.n };
      sizes.push(body!.ops!.length);
      return {
        results: body!.ops!.map((o) => (o.n === 7 ? { error: { code: 'target-refused', message: 'no', status: 403 } } : { n: o.n })),
      };
    }) as KeydClient['call'];
    const b = new KeydBatcher(stub);
    const count = 5 * FANOUT_MAX_OPS + 3;
    const settled = await b.many(
      'reencrypt',
      Array.from({ length: count }, (_, n) => ({ n })),
    );
    expect(sizes).toEqual([...Array.from({ length: 5 }, () => FANOUT_MAX_OPS), 3]);
    expect(most).toBe(FANOUT_IN_FLIGHT);
    expect(settled.map((s) => (s.status === 'fulfilled' ? (s.value as { n: number }).n : (s.reason as KeydClientError).code))).toEqual(
      Array.from({ length: count }, (_, n) => (n === 7 ? 'target-refused' : n)),
    );
    // with batching off (batch_max_ops=1): one single request per operation
    const paths: string[] = [];
    const off = Object.create(KeydClient.prototype) as KeydClient;
    off.call = (async (_m: string, path: string, body?: { n?: number }) => {
      paths.push(path);
      return { n: body?.n };
    }) as KeydClient['call'];
    await new KeydBatcher(off, { ...BATCH_DEFAULTS, maxOps: 1 }).many('reencrypt', [{ n: 1 }, { n: 2 }]);
    expect(paths).toEqual(['/v1/reencrypt', '/v1/reencrypt']);
  });

  test('a batch keyd finds too large (413) is halved until it fits; every operation is answered once', async () => {
    const sizes: number[] = [];
    const stub = Object.create(KeydClient.prototype) as KeydClient;
    stub.call = (async (_m: string, path: string, body?: { ops?: { n: number }[]; n?: number }) => {
      if (path !== '/v1/batch') return { n: body?.n, single: true };
      sizes.push(body!.ops!.length);
      if (body!.ops!.length > 3) throw new KeydClientError('too-large', 'A batch holds at most 3 operations', 413);
      return { results: body!.ops!.map((o) => ({ n: o.n })) };
    }) as KeydClient['call'];
    const settled = await new KeydBatcher(stub).many(
      'reencrypt',
      Array.from({ length: 10 }, (_, n) => ({ n })),
    );
    expect([...sizes].sort((a, b) => b - a)).toEqual([10, 5, 5, 3, 3, 2, 2]);
    expect(settled.map((s) => s.status === 'fulfilled' && (s.value as { n: number }).n)).toEqual(Array.from({ length: 10 }, (_, n) => n));
  });

  test('a whole-request failure fails every operation in the batch with that error', async () => {
    const stub = Object.create(KeydClient.prototype) as KeydClient;
    stub.call = (async () => {
      throw new KeydClientError('busy', 'Too many requests', 503);
    }) as KeydClient['call'];
    const b = new KeydBatcher(stub);
    const settled = await Promise.allSettled([1, 2].map((n) => b.call('decrypt', { n })));
    expect(settled.map((s) => s.status === 'rejected' && (s.reason as KeydClientError).transient)).toEqual([true, true]);
  });
});
