/**
 * keyd as a real process over real mutual TLS, LMDB on disk: authentication
 * by client certificate and role, target authorisation with audit, both
 * blinded operations end to end, and crash safety under kill -9.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
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
import { KeydClientError } from '../../src/keyd/client';
import { issueEncryptionKeyCertificate } from '../../src/pki/issue';
import { loadKeydConfig } from '../../src/keyd/config';
import { openKeyd } from '../../src/keyd/daemon';
import { type OrgFixture, makeOrgFixture } from '../support/org-fixture';
import { type KeydProcess, clientFor, startKeydProcess } from '../support/keyd-process';

const g = groups.libsecp256k1;
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');

async function refusal(p: Promise<unknown>): Promise<KeydClientError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KeydClientError);
    return err as KeydClientError;
  }
  throw new Error('expected keyd to refuse');
}

describe('keyd over mutual TLS', () => {
  let fx: OrgFixture;
  let keyd: KeydProcess;
  const bob = generateEncryptionKeyPair(g, systemRng);
  let orgKey: { keyId: string; publicKey: Uint8Array };

  beforeAll(async () => {
    fx = makeOrgFixture();
    keyd = await startKeydProcess(fx.configFile);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    await admin.call('POST', '/v1/registry/users', {
      address: 'bob@a.example',
      code: 'U-1001',
      identityRef: 'EMP-4711',
      encryptionPublicKey: Buffer.from(bob.publicKey).toString('hex'),
      encryptionKeyId: 'bob-1',
    });
    const pub = await admin.call<{ current: string; keys: { keyId: string; publicKey: string; certificate?: string }[] }>(
      'GET',
      '/v1/public',
    );
    const cur = pub.keys.find((k) => k.keyId === pub.current)!;
    expect(cur.certificate).toMatch(/BEGIN CERTIFICATE/); // keyd certified its own version with the org CA
    orgKey = { keyId: cur.keyId, publicKey: new Uint8Array(Buffer.from(cur.publicKey, 'hex')) };
    admin.close();
  });
  afterAll(async () => {
    await keyd?.stop();
  });

  test('a gateway re-encrypts a capsule to a registered user, who recovers the message key', async () => {
    const gw = clientFor(fx, keyd.port, fx.clients.gateway);
    const P = newMessageKey(g, systemRng);
    const capsule = encapsulate(g, P, orgKey, systemRng);
    const { request, blinding } = blindForReencryption(g, capsule, systemRng);
    const r = await gw.call<{ u: string; v: string; targetKeyId: string }>('POST', '/v1/reencrypt', {
      keyId: capsule.keyId,
      e: b64(request.e),
      f: b64(request.f),
      target: { kind: 'user', address: 'bob@a.example' },
    });
    expect(r.targetKeyId).toBe('bob-1');
    const forBob = unblindReencryption(g, blinding, { u: unb64(r.u), v: unb64(r.v) }, { keyId: r.targetKeyId });
    expect(decapsulate(g, forBob, bob.privateKey)).toEqual(P);
    gw.close();
  });

  test('an inspector gets a blinded decryption whose DLEQ proof verifies against the org key', async () => {
    const ins = clientFor(fx, keyd.port, fx.clients.inspector);
    const P = newMessageKey(g, systemRng);
    const capsule = encapsulate(g, P, orgKey, systemRng);
    const { request, blinding } = blindForDecryption(g, capsule, systemRng);
    const r = await ins.call<{ z: string; c: string; s: string }>('POST', '/v1/decrypt', { keyId: capsule.keyId, e: b64(request.e) });
    expect(completeBlindedDecryption(g, blinding, { z: unb64(r.z), proof: { c: unb64(r.c), s: unb64(r.s) } }, orgKey.publicKey)).toEqual({
      ok: true,
      messageKey: P,
    });
    ins.close();
  });

  test('a client certificate from another CA is refused at the TLS handshake', async () => {
    const c = clientFor(fx, keyd.port, fx.clients.foreign);
    const err = await refusal(c.call('GET', '/v1/health'));
    expect(err.code).toBe('unreachable');
    c.close();
  });

  test('a gateway certificate of another organisation under the same SSMAX root is refused with 401', async () => {
    const peer = makeOrgFixture({ domain: 'b.example', root: fx.root });
    // With its org CA in the chain it presents, TLS accepts it (same root); keyd must not.
    const c = clientFor(fx, keyd.port, {
      cert: `${peer.clients.gateway.cert.trim()}\n${peer.orgCa.certificate.pem.trim()}\n`,
      key: peer.clients.gateway.key,
    });
    const err = await refusal(c.call('GET', '/v1/health'));
    expect([err.status, err.code]).toEqual([401, 'unauthenticated']);
    expect(err.message).toMatch(/^Client certificate refused: /);
    c.close();
  });

  test('an expired client certificate is refused at the TLS handshake', async () => {
    const c = clientFor(fx, keyd.port, fx.clients.expired);
    expect((await refusal(c.call('GET', '/v1/health'))).code).toBe('unreachable');
    c.close();
  });

  test('a revoked client certificate is refused with 401, naming the revocation', async () => {
    const c = clientFor(fx, keyd.port, fx.clients.revoked);
    const err = await refusal(c.call('GET', '/v1/health'));
    expect([err.status, err.code]).toEqual([401, 'unauthenticated']);
    expect(err.message).toMatch(/revoked/i);
    c.close();
  });

  test('a gateway certificate calling the inspector endpoint is refused with 403', async () => {
    const gw = clientFor(fx, keyd.port, fx.clients.gateway);
    const err = await refusal(gw.call('POST', '/v1/decrypt', { keyId: orgKey.keyId, e: b64(g.encodeUncompressed(g.mulBase(7n))) }));
    expect([err.status, err.code]).toEqual([403, 'forbidden']);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    expect((await refusal(admin.call('POST', '/v1/reencrypt', {}))).code).toBe('forbidden');
    gw.close();
    admin.close();
  });

  test('re-encryption to unauthorised targets is refused', async () => {
    const gw = clientFor(fx, keyd.port, fx.clients.gateway);
    const capsule = encapsulate(g, newMessageKey(g, systemRng), orgKey, systemRng);
    const { request } = blindForReencryption(g, capsule, systemRng);
    const base = { keyId: capsule.keyId, e: b64(request.e), f: b64(request.f) };
    const stranger = makeOrgFixture({ domain: 'evil.example' }); // another root: not trusted here
    const evilKey = generateEncryptionKeyPair(g, systemRng);
    const evilCert = issueEncryptionKeyCertificate(stranger.orgCa, {
      domain: 'evil.example',
      version: 1,
      publicKey: evilKey.publicKey,
      notBefore: new Date(Date.now() - 1000),
      notAfter: new Date(Date.now() + 86400000),
    });
    const cases: [string, unknown, RegExp][] = [
      ['an unregistered user', { kind: 'user', address: 'mallory@a.example' }, /not a registered user/],
      [
        'a peer certificate from an untrusted root',
        { kind: 'peer', domain: 'evil.example', certificate: evilCert.pem, chain: [stranger.orgCa.certificate.pem] },
        /Peer certificate for "evil.example" refused/,
      ],
      ['own domain as a peer', { kind: 'peer', domain: 'a.example', certificate: evilCert.pem }, /is this organisation/],
      ['a list that does not exist', { kind: 'list', list: 'all@a.example', member: 'bob@a.example' }, /No mailing list/],
      ['no newer own version', { kind: 'own-newer' }, /No version of a.example newer/],
    ];
    for (const [, target, msg] of cases) {
      const err = await refusal(gw.call('POST', '/v1/reencrypt', { ...base, target }));
      expect([err.status, err.code]).toEqual([403, 'target-refused']);
      expect(err.message).toMatch(msg);
    }
    gw.close();
  });

  test('every refusal above is in the audit log, and the chain verifies', async () => {
    await keyd.stop();
    const parts = openKeyd(loadKeydConfig(fx.configFile));
    try {
      const tail = parts.audit.tail(200);
      const refused = tail.filter((r) => r.result === 'refused' && r.op === 'reencrypt');
      expect(refused.map((r) => r.reason)).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/target-refused: Target "mallory@a.example" is not a registered user/),
          expect.stringMatching(/target-refused: Peer certificate for "evil.example" refused/),
        ]),
      );
      expect(tail.some((r) => r.op === 'decrypt' && r.result === 'refused' && /forbidden/.test(r.reason ?? ''))).toBe(true);
      expect(tail.some((r) => r.op === 'reencrypt' && r.result === 'ok' && r.target === 'user:bob@a.example')).toBe(true);
      expect(JSON.stringify(tail)).not.toMatch(/EMP-4711/); // the identity reference never reaches the log
      expect(parts.audit.verify()).toEqual({ ok: true, count: tail.length });
    } finally {
      await parts.store.close();
    }
    const out = execFileSync(process.execPath, [BIN, 'keyd', 'audit', 'verify', '--config', fx.configFile], { encoding: 'utf8' });
    expect(out).toMatch(/audit log intact: \d+ records/);
    keyd = await startKeydProcess(fx.configFile);
  });
});

describe('keyd survives kill -9 during a load of writes', () => {
  test('after restart the keys, registry and audit chain are intact', async () => {
    const fx = makeOrgFixture();
    let keyd = await startKeydProcess(fx.configFile);
    const admin = clientFor(fx, keyd.port, fx.clients.admin, 3000);
    const before = await admin.call<{ keys: unknown[] }>('GET', '/v1/public');
    const acknowledged: string[] = [];
    const load = Array.from({ length: 400 }, (_, i) =>
      admin.call('POST', '/v1/registry/users', { address: `u${i}@a.example`, code: `C${i}`, identityRef: `ID${i}` }).then(
        () => {
          acknowledged.push(`u${i}@a.example`);
        },
        () => undefined,
      ),
    );
    await new Promise((r) => setTimeout(r, 150));
    await keyd.stop('SIGKILL');
    await Promise.all(load);
    admin.close();
    expect(acknowledged.length).toBeLessThan(400); // killed mid-load

    const verify = execFileSync(process.execPath, [BIN, 'keyd', 'audit', 'verify', '--config', fx.configFile], { encoding: 'utf8' });
    expect(verify).toMatch(/audit log intact/);
    keyd = await startKeydProcess(fx.configFile);
    const again = clientFor(fx, keyd.port, fx.clients.admin);
    expect(await again.call('GET', '/v1/public')).toEqual(before);
    for (const address of acknowledged)
      expect((await again.call<{ address: string }>('GET', `/v1/registry/users/${address}`)).address).toBe(address);
    again.close();
    await keyd.stop();
  });
});
