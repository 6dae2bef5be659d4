/**
 * keyd's request path after the performance work (issue 5): request targets
 * with queries and odd forms route as before, over-long bodies are answered
 * 413 and the connection keeps serving, concurrent re-encryptions are each
 * audited once in a chain that verifies (records of concurrent requests share
 * durable commits), and the in-memory caches (org-key records, decoded target
 * keys) follow changes made by another writer on the same store.
 */
import { request } from 'node:https';
import {
  blindForReencryption,
  decapsulate,
  encapsulate,
  generateEncryptionKeyPair,
  groups,
  newMessageKey,
  systemRng,
  unblindReencryption,
} from '../../src/crypto';
import { KeydClientError } from '../../src/keyd/client';
import { loadKeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, type RunningKeyd, openKeyd, startKeyd } from '../../src/keyd/daemon';
import type { KeydClient } from '../../src/keyd/client';
import { type OrgFixture, makeOrgFixture } from '../support/org-fixture';
import { clientFor } from '../support/keyd-process';

const g = groups.libsecp256k1;
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));

/** A raw HTTPS request with the admin's certificate: status and body text. */
function raw(fx: OrgFixture, port: number, method: string, path: string, body?: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        servername: `keyd.${fx.domain}`,
        cert: fx.clients.admin.cert,
        key: fx.clients.admin.key,
        ca: fx.caPem,
        headers: body ? { 'content-type': 'application/json', 'content-length': body.length } : {},
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('keyd request path', () => {
  let fx: OrgFixture;
  let keyd: RunningKeyd;
  let admin: KeydClient;
  const bob = generateEncryptionKeyPair(g, systemRng);

  beforeAll(async () => {
    fx = makeOrgFixture();
    keyd = await startKeyd(loadKeydConfig(fx.configFile));
    admin = clientFor(fx, keyd.port, fx.clients.admin);
    await admin.call('POST', '/v1/registry/users', {
      address: 'bob@a.example',
      code: 'U-1',
      identityRef: 'EMP-1',
      encryptionPublicKey: Buffer.from(bob.publicKey).toString('hex'),
    });
  });
  afterAll(async () => {
    admin?.close();
    await keyd?.stop();
  });

  test('query strings and dot segments route like the URL parser; unknown paths are 404', async () => {
    expect(await admin.call('GET', '/v1/health?probe=1')).toMatchObject({ ok: true, role: 'admin' });
    expect(await admin.call('GET', '/v1/x/../health')).toMatchObject({ ok: true });
    expect(await admin.call('GET', '/v1/registry/users/bob%40a.example')).toMatchObject({ address: 'bob@a.example' });
    await expect(admin.call('GET', '/v1/nothing')).rejects.toMatchObject({ code: 'no-such-endpoint', status: 404 }); // not "no such user": a fault of the caller's, temporary
    await expect(admin.call('GET', '//v1/health')).rejects.toMatchObject({ code: 'bad-request', status: 400 }); // an empty path segment (issue 24)
    await expect(admin.call('GET', '/v1/reencrypt')).rejects.toMatchObject({ code: 'bad-request', status: 400 });
  });

  test('a body over the limit is answered 413 too-large, and keyd keeps serving', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024 + 1, 0x20); // over the default 2 MiB (KEYD_DEFAULTS.max_body_bytes)
    const r = await raw(fx, keyd.port, 'POST', '/v1/registry/lists', big);
    expect(r.status).toBe(413);
    expect(JSON.parse(r.text)).toMatchObject({ error: { code: 'too-large' } });
    const bad = await raw(fx, keyd.port, 'POST', '/v1/registry/lists', Buffer.from('{not json'));
    expect(JSON.parse(bad.text)).toMatchObject({ error: { code: 'bad-request' } });
    expect(await admin.call('GET', '/v1/health')).toMatchObject({ ok: true });
  });

  test('64 concurrent re-encryptions: each correct, each audited once, the chain verifies', async () => {
    const pub = await admin.call<{ current: string; keys: { keyId: string; publicKey: string }[] }>('GET', '/v1/public');
    const orgKey = {
      keyId: pub.current,
      publicKey: new Uint8Array(Buffer.from(pub.keys.find((k) => k.keyId === pub.current)!.publicKey, 'hex')),
    };
    const gw = clientFor(fx, keyd.port, fx.clients.gateway);
    const before = keyd.audit.tail(1)[0]!.seq;
    try {
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          const P = newMessageKey(g, systemRng);
          const capsule = encapsulate(g, P, orgKey, systemRng);
          const { request: blinded, blinding } = blindForReencryption(g, capsule, systemRng);
          const r = await gw.call<{ u: string; v: string; targetKeyId: string }>('POST', '/v1/reencrypt', {
            keyId: capsule.keyId,
            e: b64(blinded.e),
            f: b64(blinded.f),
            target: { kind: 'user', address: 'bob@a.example' },
          });
          const forBob = unblindReencryption(g, blinding, { u: unb64(r.u), v: unb64(r.v) }, { keyId: r.targetKeyId });
          expect(Buffer.from(decapsulate(g, forBob, bob.privateKey))).toEqual(Buffer.from(P));
        }),
      );
    } finally {
      gw.close();
    }
    const records = keyd.audit.tail(200).filter((r) => r.seq > before && r.op === 'reencrypt');
    expect(records).toHaveLength(64);
    expect(records.every((r) => r.result === 'ok' && r.target === 'user:bob@a.example')).toBe(true);
    expect(new Set(records.map((r) => r.digest)).size).toBe(64);
    expect(keyd.audit.verify()).toMatchObject({ ok: true });
  });

  test('a rotation written by another writer on the same store is seen at once (cached key records follow the store)', async () => {
    const before = await admin.call<{ current: string }>('GET', '/v1/public');
    // another writer on the same store: what `ssmax keyd rotate` does
    const other = openKeyd(loadKeydConfig(fx.configFile));
    try {
      await other.service.maintain({ ...KEYD_ACTOR, name: 'test rotate' }, true);
    } finally {
      await other.store.close();
    }
    const after = await admin.call<{ current: string; keys: { keyId: string; state: string }[] }>('GET', '/v1/public');
    expect(after.current).not.toBe(before.current);
    expect(after.keys.find((k) => k.keyId === before.current)?.state).toBe('retired');
    // the running keyd answers under the retired version with the notice naming the new one
    const pubKey = keyd.keyring.byKeyId(before.current)!;
    const capsule = encapsulate(
      g,
      newMessageKey(g, systemRng),
      { keyId: pubKey.keyId, publicKey: new Uint8Array(Buffer.from(pubKey.publicKey, 'hex')) },
      systemRng,
    );
    const { request: blinded } = blindForReencryption(g, capsule, systemRng);
    const gw = clientFor(fx, keyd.port, fx.clients.gateway);
    try {
      const r = await gw.call<{ notice?: string; current?: string; targetKeyId: string }>('POST', '/v1/reencrypt', {
        keyId: capsule.keyId,
        e: b64(blinded.e),
        f: b64(blinded.f),
        target: { kind: 'own-newer' },
      });
      expect(r).toMatchObject({ notice: 'retired', current: after.current, targetKeyId: after.current });
      await expect(
        gw.call('POST', '/v1/reencrypt', { keyId: 'a.example:v99', e: b64(blinded.e), f: b64(blinded.f), target: { kind: 'own-newer' } }),
      ).rejects.toBeInstanceOf(KeydClientError);
    } finally {
      gw.close();
    }
    expect(keyd.audit.verify()).toMatchObject({ ok: true });
  });
});
