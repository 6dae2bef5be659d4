/**
 * keyd's POST /v1/batch: many blinded operations in one request, each
 * authorised and audited on its own, all records in one transaction; a
 * refused operation is refused in its slot only; the batch size is bounded.
 * In process (the handler over a real store) and as a real keyd process over
 * mutual TLS.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import {
  type Capsule,
  blindForDecryption,
  blindForReencryption,
  completeBlindedDecryption,
  decapsulate,
  encapsulate,
  generateEncryptionKeyPair,
  groups,
  newMessageKey,
  systemRng,
  unblindReencryption,
} from '../../src/crypto';
import { BatchHandler } from '../../src/keyd/batch';
import { KeydClientError } from '../../src/keyd/client';
import { loadKeydConfig } from '../../src/keyd/config';
import { type KeydParts, openKeyd } from '../../src/keyd/daemon';
import { KeydError } from '../../src/keyd/errors';
import type { Actor } from '../../src/keyd/service';
import { type OrgFixture, makeOrgFixture } from '../support/org-fixture';
import { type KeydProcess, clientFor, startKeydProcess } from '../support/keyd-process';

const g = groups.libsecp256k1;
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');
const unb64 = (s: unknown) => new Uint8Array(Buffer.from(String(s), 'base64url'));
const bob = generateEncryptionKeyPair(g, systemRng);
const GATEWAY: Actor = { role: 'gateway', name: 'CN=gw test' };
const ADMIN: Actor = { role: 'admin', name: 'CN=admin test' };

interface Slot {
  u?: string;
  v?: string;
  targetKeyId?: string;
  z?: string;
  c?: string;
  s?: string;
  error?: { code: string; status: number; message: string };
}

/** A capsule to the org key and the re-encryption op for `address`, with what it takes to check the answer. */
function reencryptOp(orgKey: { keyId: string; publicKey: Uint8Array }, address: string) {
  const P = newMessageKey(g, systemRng);
  const capsule: Capsule = encapsulate(g, P, orgKey, systemRng);
  const { request, blinding } = blindForReencryption(g, capsule, systemRng);
  return {
    P,
    blinding,
    op: { op: 'reencrypt', keyId: capsule.keyId, e: b64(request.e), f: b64(request.f), target: { kind: 'user', address } },
  };
}

function decryptOp(orgKey: { keyId: string; publicKey: Uint8Array }) {
  const P = newMessageKey(g, systemRng);
  const capsule = encapsulate(g, P, orgKey, systemRng);
  const { request, blinding } = blindForDecryption(g, capsule, systemRng);
  return { P, blinding, op: { op: 'decrypt', keyId: capsule.keyId, e: b64(request.e) } };
}

function opensForBob(slot: Slot, made: Pick<ReturnType<typeof reencryptOp>, 'P' | 'blinding'>): boolean {
  const forBob = unblindReencryption(g, made.blinding, { u: unb64(slot.u), v: unb64(slot.v) }, { keyId: String(slot.targetKeyId) });
  return Buffer.from(decapsulate(g, forBob, bob.privateKey)).equals(Buffer.from(made.P));
}

describe('batch handler over a real store', () => {
  let fx: OrgFixture;
  let parts: KeydParts;
  let orgKey: { keyId: string; publicKey: Uint8Array };

  beforeAll(async () => {
    fx = makeOrgFixture();
    parts = openKeyd(loadKeydConfig(fx.configFile));
    await parts.service.maintain({ role: 'keyd', name: 'keyd schedule' });
    await parts.service.addUser(ADMIN, {
      address: 'bob@a.example',
      code: 'U-1',
      identityRef: 'EMP-1',
      encryptionPublicKey: Buffer.from(bob.publicKey).toString('hex'),
      encryptionKeyId: 'bob-1',
    });
    const pub = parts.service.publicMaterial() as { current: string; keys: { keyId: string; publicKey: string }[] };
    orgKey = {
      keyId: pub.current,
      publicKey: new Uint8Array(Buffer.from(pub.keys.find((k) => k.keyId === pub.current)!.publicKey, 'hex')),
    };
  });
  afterAll(async () => {
    await parts?.store.close();
  });

  test('mixed allowed and refused operations: each answered in its slot, each audited, one chain that verifies', async () => {
    const handler = new BatchHandler(parts.service, parts.audit, () => new Date());
    const before = parts.audit.verify();
    expect(before.ok).toBe(true);
    const ok1 = reencryptOp(orgKey, 'bob@a.example');
    const stranger = reencryptOp(orgKey, 'nobody@a.example');
    const dec = decryptOp(orgKey);
    const ok2 = reencryptOp(orgKey, 'bob@a.example');
    const r = await handler.run(GATEWAY, { ops: [ok1.op, stranger.op, dec.op, 'junk', ok2.op] });
    const slots = r.results as Slot[];
    expect(slots).toHaveLength(5);
    expect(opensForBob(slots[0]!, ok1)).toBe(true);
    expect(slots[1]!.error).toMatchObject({ code: 'target-refused', status: 403 });
    expect(slots[2]!.error).toMatchObject({ code: 'forbidden', status: 403 }); // a gateway may not decrypt, batch or not
    expect(slots[3]!.error).toMatchObject({ code: 'bad-request', status: 400 });
    expect(opensForBob(slots[4]!, ok2)).toBe(true);
    const after = parts.audit.verify();
    expect(after).toEqual({ ok: true, count: (before as { count: number }).count + 5 });
    const tail = parts.audit.tail(5);
    expect(tail.map((t) => [t.op, t.result])).toEqual([
      ['reencrypt', 'ok'],
      ['reencrypt', 'refused'],
      ['decrypt', 'refused'],
      ['batch', 'refused'],
      ['reencrypt', 'ok'],
    ]);
    expect(tail[1]!.reason).toMatch(/target-refused/);
    expect(tail[0]!.target).toBe('user:bob@a.example');
  });

  test("a batch of a list's fan-out reads the list from the store once, not once per operation; a member removed is refused from the next batch on", async () => {
    const members = ['bob@a.example', ...Array.from({ length: 2000 }, (_, i) => `m${i}@a.example`)];
    await parts.service.lists.create(ADMIN, { address: 'fanout@a.example', members });
    const listOp = () => {
      const made = reencryptOp(orgKey, 'bob@a.example');
      return { ...made, op: { ...made.op, target: { kind: 'list', list: 'fanout@a.example', member: 'bob@a.example' } } };
    };
    const handler = new BatchHandler(parts.service, parts.audit, () => new Date(), 64);
    const get = jest.spyOn(parts.store.lists, 'get');
    try {
      const made = Array.from({ length: 64 }, listOp);
      const r = await handler.run(GATEWAY, { ops: made.map((m) => m.op) });
      const slots = r.results as Slot[];
      expect(slots.every((s, i) => opensForBob(s, made[i]!))).toBe(true);
      expect(get.mock.calls.filter(([key]) => key === 'fanout@a.example')).toHaveLength(1); // was 64: each decoded 2,001 members
      get.mockClear();
      await parts.service.lists.members(ADMIN, { address: 'fanout@a.example', remove: ['bob@a.example'] });
      const again = await handler.run(GATEWAY, { ops: [listOp().op, listOp().op] });
      expect((again.results as Slot[]).map((s) => s.error?.code)).toEqual(['target-refused', 'target-refused']);
    } finally {
      get.mockRestore();
    }
  });

  test('more operations than the limit: refused whole (413), nothing done, nothing audited', async () => {
    const handler = new BatchHandler(parts.service, parts.audit, () => new Date(), 3);
    const count = (parts.audit.verify() as { count: number }).count;
    const ops = Array.from({ length: 4 }, () => reencryptOp(orgKey, 'bob@a.example').op);
    await expect(handler.run(GATEWAY, { ops })).rejects.toMatchObject({ code: 'too-large', status: 413 });
    await expect(handler.run(GATEWAY, { ops: [] })).rejects.toBeInstanceOf(KeydError);
    await expect(handler.run(GATEWAY, { ops: 'x' })).rejects.toMatchObject({ code: 'bad-request' });
    expect(parts.audit.verify()).toEqual({ ok: true, count });
    const three = await handler.run(GATEWAY, { ops: ops.slice(0, 3) });
    expect(three.results.every((s) => !('error' in s))).toBe(true);
  });

  test('the records of a batch go to the audit log in one appendMany call: when it fails, the whole batch is refused and no answer leaves', async () => {
    const handler = new BatchHandler(parts.service, parts.audit, () => new Date());
    const audit = parts.audit as unknown as { appendMany: (...a: unknown[]) => Promise<unknown> };
    const real = audit.appendMany;
    let calls = 0;
    audit.appendMany = () => {
      calls++;
      return Promise.reject(new KeydError('audit-failed', 'disk full (test)'));
    };
    try {
      await expect(
        handler.run(GATEWAY, { ops: [reencryptOp(orgKey, 'bob@a.example').op, reencryptOp(orgKey, 'bob@a.example').op] }),
      ).rejects.toMatchObject({ code: 'audit-failed', status: 503 });
      expect(calls).toBe(1);
    } finally {
      audit.appendMany = real;
    }
  });
});

describe('POST /v1/batch on a real keyd over mutual TLS', () => {
  let fx: OrgFixture;
  let keyd: KeydProcess;
  let orgKey: { keyId: string; publicKey: Uint8Array };

  beforeAll(async () => {
    fx = makeOrgFixture();
    // a small limit, written as an administrator would
    writeFileSync(fx.configFile, readFileSync(fx.configFile, 'utf8').replace('[limits]\n', '[limits]\nmax_batch_ops=4\n'));
    keyd = await startKeydProcess(fx.configFile);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    await admin.call('POST', '/v1/registry/users', {
      address: 'bob@a.example',
      code: 'U-1',
      identityRef: 'EMP-1',
      encryptionPublicKey: Buffer.from(bob.publicKey).toString('hex'),
      encryptionKeyId: 'bob-1',
    });
    const pub = await admin.call<{ current: string; keys: { keyId: string; publicKey: string }[] }>('GET', '/v1/public');
    orgKey = {
      keyId: pub.current,
      publicKey: new Uint8Array(Buffer.from(pub.keys.find((k) => k.keyId === pub.current)!.publicKey, 'hex')),
    };
    admin.close();
  });
  afterAll(async () => {
    await keyd?.stop();
  });

  test('a gateway batch with allowed and refused operations; an inspector batch of decryptions; the audit chain verifies', async () => {
    const gw = clientFor(fx, keyd.port, fx.clients.gateway);
    const ins = clientFor(fx, keyd.port, fx.clients.inspector);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    try {
      const before = await admin.call<{ ok: boolean; count: number }>('GET', '/v1/audit/verify');
      const a = reencryptOp(orgKey, 'bob@a.example');
      const refused = reencryptOp(orgKey, 'nobody@a.example');
      const b = reencryptOp(orgKey, 'bob@a.example');
      const r = await gw.call<{ results: Slot[] }>('POST', '/v1/batch', { ops: [a.op, refused.op, b.op] });
      expect(opensForBob(r.results[0]!, a)).toBe(true);
      expect(r.results[1]!.error).toMatchObject({ code: 'target-refused', status: 403 });
      expect(opensForBob(r.results[2]!, b)).toBe(true);

      const d1 = decryptOp(orgKey);
      const d2 = decryptOp(orgKey);
      const rd = await ins.call<{ results: Slot[] }>('POST', '/v1/batch', { ops: [d1.op, a.op, d2.op] });
      for (const [slot, made] of [
        [rd.results[0]!, d1],
        [rd.results[2]!, d2],
      ] as const) {
        expect(
          completeBlindedDecryption(
            g,
            made.blinding,
            { z: unb64(slot.z), proof: { c: unb64(slot.c), s: unb64(slot.s) } },
            orgKey.publicKey,
          ),
        ).toEqual({ ok: true, messageKey: made.P });
      }
      expect(rd.results[1]!.error).toMatchObject({ code: 'forbidden' }); // an inspector may not re-encrypt

      const after = await admin.call<{ ok: boolean; count: number }>('GET', '/v1/audit/verify');
      expect(after.ok).toBe(true);
      // six operation records, plus the admin's own verify call is not audited (it reads)
      expect(after.count - before.count).toBe(6);
    } finally {
      gw.close();
      ins.close();
      admin.close();
    }
  });

  test('a batch over [limits] max_batch_ops is refused with 413 and nothing is done', async () => {
    const gw = clientFor(fx, keyd.port, fx.clients.gateway);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    try {
      const before = await admin.call<{ count: number }>('GET', '/v1/audit/verify');
      const ops = Array.from({ length: 5 }, () => reencryptOp(orgKey, 'bob@a.example').op);
      const err = await gw.call('POST', '/v1/batch', { ops }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KeydClientError);
      expect((err as KeydClientError).status).toBe(413);
      expect((err as KeydClientError).code).toBe('too-large');
      expect((await admin.call<{ count: number }>('GET', '/v1/audit/verify')).count).toBe(before.count);
      const ok = await gw.call<{ results: Slot[] }>('POST', '/v1/batch', { ops: ops.slice(0, 4) });
      expect(ok.results.filter((s) => s.error)).toEqual([]);
    } finally {
      gw.close();
      admin.close();
    }
  });
});
