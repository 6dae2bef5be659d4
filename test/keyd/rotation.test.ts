/**
 * Versioned org keys under a simulated clock (real LMDB, real crypto): a
 * capsule under version N keeps working through the grace period after N+1
 * is active, then is refused as destroyed, naming the version to fetch.
 */
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
import { loadKeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, openKeyd } from '../../src/keyd/daemon';
import { KeydError } from '../../src/keyd/errors';
import type { Actor } from '../../src/keyd/service';
import { makeOrgFixture } from '../support/org-fixture';

const g = groups.libsecp256k1;
const DAY = 86400000;
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
const gateway: Actor = { role: 'gateway', name: 'test gateway' };
const inspector: Actor = { role: 'inspector', name: 'test inspector' };
const admin: Actor = { role: 'admin', name: 'test admin' };

async function refusal(p: Promise<unknown>): Promise<KeydError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KeydError);
    return err as KeydError;
  }
  throw new Error('expected a refusal');
}

describe('key rotation with a simulated clock', () => {
  const fx = makeOrgFixture({ keys: '[keys]\nvalidity_days=30\nrenew_before_days=5\ngrace_days=10\nschedule_seconds=60' });
  let now = new Date();
  const parts = openKeyd(loadKeydConfig(fx.configFile), () => now);
  const { service, keyring } = parts;
  const bob = generateEncryptionKeyPair(g, systemRng);
  afterAll(() => parts.store.close());

  const orgKey = (keyId: string) => {
    const r = keyring.byKeyId(keyId)!;
    return { keyId: r.keyId, publicKey: new Uint8Array(Buffer.from(r.publicKey, 'hex')) };
  };
  const reencryptToBob = async (capsule: ReturnType<typeof encapsulate>) => {
    const { request, blinding } = blindForReencryption(g, capsule, systemRng);
    const r = await service.reencrypt(gateway, {
      keyId: capsule.keyId,
      e: b64(request.e),
      f: b64(request.f),
      target: { kind: 'user', address: 'bob@a.example' },
    });
    return {
      r,
      capsule: unblindReencryption(g, blinding, { u: unb64(r.u as string), v: unb64(r.v as string) }, { keyId: r.targetKeyId as string }),
    };
  };
  const inspect = async (capsule: ReturnType<typeof encapsulate>, publicKey: Uint8Array) => {
    const { request, blinding } = blindForDecryption(g, capsule, systemRng);
    const r = await service.decrypt(inspector, { keyId: capsule.keyId, e: b64(request.e) });
    return {
      r,
      opened: completeBlindedDecryption(
        g,
        blinding,
        { z: unb64(r.z as string), proof: { c: unb64(r.c as string), s: unb64(r.s as string) } },
        publicKey,
      ),
    };
  };

  test('the first start creates version 1, certified, and a tracking key', async () => {
    await service.maintain(KEYD_ACTOR);
    await service.addUser(admin, {
      address: 'bob@a.example',
      code: 'U-1',
      identityRef: 'EMP-1',
      encryptionPublicKey: Buffer.from(bob.publicKey).toString('hex'),
    });
    expect(keyring.current(now)?.keyId).toBe('a.example:v1');
    expect(keyring.current(now)?.certificate).toMatch(/BEGIN CERTIFICATE/);
  });

  test('version 1 keeps working within the grace period after version 2 is active, with a refresh notice; then it is destroyed', async () => {
    const P = newMessageKey(g, systemRng);
    const v1 = orgKey('a.example:v1');
    const old = encapsulate(g, P, v1, systemRng);

    now = new Date(now.getTime() + 26 * DAY); // inside renew_before: the schedule makes v2
    const changes = await service.maintain(KEYD_ACTOR);
    expect(changes).toEqual([
      { keyId: 'a.example:v2', change: 'created' },
      { keyId: 'a.example:v1', change: 'retired' },
    ]);
    expect(keyring.current(now)?.keyId).toBe('a.example:v2');

    now = new Date(now.getTime() + 9 * DAY); // still inside the 10-day grace
    await service.maintain(KEYD_ACTOR);
    const moved = await reencryptToBob(old);
    expect(moved.r).toMatchObject({ notice: 'retired', current: 'a.example:v2' });
    expect(decapsulate(g, moved.capsule, bob.privateKey)).toEqual(P);
    const seen = await inspect(old, v1.publicKey);
    expect(seen.r).toMatchObject({ notice: 'retired', current: 'a.example:v2' });
    expect(seen.opened).toEqual({ ok: true, messageKey: P });

    // a retired version can be moved to the newest one (target "own-newer")
    const { request } = blindForReencryption(g, old, systemRng);
    const up = await service.reencrypt(gateway, { keyId: old.keyId, e: b64(request.e), f: b64(request.f), target: { kind: 'own-newer' } });
    expect(up.targetKeyId).toBe('a.example:v2');

    const cachedV1 = keyring.usable('a.example:v1', now).key.privateKey; // what this process holds in memory
    expect(cachedV1.some((b) => b !== 0)).toBe(true);
    now = new Date(now.getTime() + 2 * DAY); // past the grace
    expect(await service.maintain(KEYD_ACTOR)).toEqual([{ keyId: 'a.example:v1', change: 'destroyed' }]);
    expect(cachedV1.every((b) => b === 0)).toBe(true); // wiped, not merely dropped from the cache
    const err = await refusal(reencryptToBob(old));
    expect([err.code, err.status]).toEqual(['key-destroyed', 410]);
    expect(err.message).toMatch(/"a\.example:v1" was destroyed; fetch "a\.example:v2"/);
    expect((await refusal(inspect(old, v1.publicKey))).code).toBe('key-destroyed');
    expect(keyring.byKeyId('a.example:v1')?.wrapped).toBeUndefined(); // the wrapped private key is gone from the store
  });

  test('a forced rotation activates a new version at once and retires the previous one', async () => {
    const changes = await service.maintain({ ...KEYD_ACTOR, name: 'rotate' }, true);
    expect(changes).toEqual([
      { keyId: 'a.example:v3', change: 'created' },
      { keyId: 'a.example:v2', change: 'retired' },
    ]);
    const P = newMessageKey(g, systemRng);
    const moved = await reencryptToBob(encapsulate(g, P, orgKey('a.example:v2'), systemRng));
    expect(moved.r.notice).toBe('retired');
    expect(decapsulate(g, moved.capsule, bob.privateKey)).toEqual(P);
  });

  test('a mailing list resolved by keyd: a member gets a capsule, a non-member or a removed member does not', async () => {
    const carol = generateEncryptionKeyPair(g, systemRng);
    await service.addUser(admin, {
      address: 'carol@a.example',
      code: 'U-2',
      identityRef: 'EMP-2',
      encryptionPublicKey: Buffer.from(carol.publicKey).toString('hex'),
    });
    await service.setList(admin, { address: 'team@a.example', members: ['bob@a.example', 'carol@a.example'] });
    const P = newMessageKey(g, systemRng);
    const post = encapsulate(g, P, orgKey(keyring.current(now)!.keyId), systemRng);
    const toMember = async (member: string) => {
      const { request, blinding } = blindForReencryption(g, post, systemRng);
      const r = await service.reencrypt(gateway, {
        keyId: post.keyId,
        e: b64(request.e),
        f: b64(request.f),
        target: { kind: 'list', list: 'team@a.example', member },
      });
      return unblindReencryption(g, blinding, { u: unb64(r.u as string), v: unb64(r.v as string) }, { keyId: r.targetKeyId as string });
    };
    expect(decapsulate(g, await toMember('carol@a.example'), carol.privateKey)).toEqual(P);
    expect((await refusal(toMember('mallory@a.example'))).message).toMatch(/"mallory@a\.example" is not a member of "team@a\.example"/);
    await service.setList(admin, { address: 'team@a.example', members: ['bob@a.example'] }); // carol removed
    const err = await refusal(toMember('carol@a.example'));
    expect([err.code, err.message]).toEqual(['target-refused', expect.stringMatching(/not a member/)]);
  });

  test('tracking tokens expire per policy: a retired tracking key resolves within its retention, then not at all', async () => {
    const disclosure: Actor = { role: 'disclosure', name: 'test disclosure' };
    const token = (await service.mintToken(gateway, { sender: 'bob@a.example', messageId: '<t1@a.example>' })).token as string;
    expect((await service.resolveToken(admin, { token })).user).toMatchObject({ address: 'bob@a.example' });
    now = new Date(now.getTime() + 31 * DAY); // past the validity (30 days): the schedule rotates the tracking key
    await service.maintain(KEYD_ACTOR);
    const fresh = (await service.mintToken(gateway, { sender: 'bob@a.example', messageId: '<t2@a.example>' })).token as string;
    expect(Buffer.from(fresh, 'base64url').readUInt16BE(1)).toBeGreaterThan(Buffer.from(token, 'base64url').readUInt16BE(1));
    const version = Buffer.from(token, 'base64url').readUInt16BE(1);
    expect((await service.resolveToken(admin, { token })).keyVersion).toBe(version); // retired, within retention
    now = new Date(now.getTime() + 400 * DAY); // past the retention (365 days)
    await service.maintain(KEYD_ACTOR);
    expect((await refusal(service.resolveToken(admin, { token }))).message).toMatch(
      new RegExp(`not minted by a\\.example \\(unknown key version ${version}\\)`),
    );
    expect((await refusal(service.disclose(disclosure, { token, messageId: '<t1@a.example>' }))).code).toBe('bad-request');
    expect(parts.audit.tail(50).some((r) => r.op === 'tracking.destroy' && r.keyId === `tracking:${version}`)).toBe(true);
  });

  test('an unknown key id and a malformed request are refused precisely, and audited', async () => {
    expect((await refusal(service.decrypt(inspector, { keyId: 'a.example:v99', e: b64(g.encodeUncompressed(g.mulBase(3n))) }))).code).toBe(
      'unknown-key',
    );
    expect((await refusal(service.decrypt(inspector, { keyId: keyring.current(now)!.keyId, e: 'AAAA' }))).message).toMatch(/blinded point/);
    expect((await refusal(service.reencrypt(gateway, { keyId: keyring.current(now)!.keyId, e: 1, f: 2, target: {} }))).message).toMatch(
      /Field "e" must be a base64url point/,
    );
    expect(parts.audit.tail(3).every((r) => r.result === 'refused')).toBe(true);
    expect(parts.audit.verify().ok).toBe(true);
  });
});
