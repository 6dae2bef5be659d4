/**
 * A destroyed org key version leaves no private key in a running keyd
 * (issue 15, docs/security.md "Key material in memory"): its cached copy is
 * overwritten and every request under it is refused at once, whether this
 * keyd or another process on the same store (`ssmax keyd rotate`) destroyed
 * it — no restart needed.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { blindForDecryption, encapsulate, groups, newMessageKey, systemRng } from '../../src/crypto';
import { loadKeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, openKeyd } from '../../src/keyd/daemon';
import { KeydClientError } from '../../src/keyd/client';
import { KeydError } from '../../src/keyd/errors';
import { SecretWrapper, loadMasterKey } from '../../src/keyd/master-key';
import { OrgKeyring } from '../../src/keyd/org-keys';
import { TrackingKeys } from '../../src/keyd/tracking';
import { makeOrgFixture } from '../support/org-fixture';
import { clientFor, startKeydProcess } from '../support/keyd-process';

const g = groups.libsecp256k1;
const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');
const NO_GRACE = '[keys]\nvalidity_days=90\nrenew_before_days=14\ngrace_days=0\nschedule_seconds=3600';
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');
const isZero = (u: Uint8Array) => u.every((b) => b === 0);

function destroyedError(fn: () => unknown): KeydError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KeydError);
    return err as KeydError;
  }
  throw new Error('expected key-destroyed');
}

describe("the keyring cache (real LMDB, a clock under the test's control)", () => {
  const fx = makeOrgFixture({ keys: NO_GRACE });
  const config = loadKeydConfig(fx.configFile);
  let now = new Date();
  const parts = openKeyd(config, () => now);
  afterAll(() => parts.store.close());
  const tick = () => {
    now = new Date(now.getTime() + 1000);
  };

  test('destroyed by this keyd: the cached private key is overwritten and the version refused', async () => {
    await parts.service.maintain(KEYD_ACTOR);
    const { key } = parts.keyring.usable('a.example:v1', now);
    const held = key.privateKey; // the very buffer the cache holds
    expect(isZero(held)).toBe(false);
    tick();
    await parts.service.maintain(KEYD_ACTOR, true); // v2 active, v1 retired (grace 0)
    tick();
    expect(await parts.service.maintain(KEYD_ACTOR)).toContainEqual({ keyId: 'a.example:v1', change: 'destroyed' });
    expect(isZero(held)).toBe(true);
    const err = destroyedError(() => parts.keyring.usable('a.example:v1', now));
    expect(err.code).toBe('key-destroyed');
  });

  test('destroyed by another writer on the same store: the next use finds it destroyed and wipes the cached copy', async () => {
    const { key } = parts.keyring.usable('a.example:v2', now);
    const held = key.privateKey;
    expect(isZero(held)).toBe(false);
    // another process's keyring (its own cache) on the same store, as `ssmax keyd rotate` is
    const other = new OrgKeyring(parts.store, new SecretWrapper(loadMasterKey(config.masterKeyFile)), g, 'a.example', parts.keyring.policy);
    tick();
    const rotate = other.plan(now, systemRng, true);
    parts.store.root.transactionSync(() => other.apply(rotate));
    tick();
    const destroy = other.plan(now, systemRng);
    expect(destroy.changes).toContainEqual({ keyId: 'a.example:v2', change: 'destroyed' });
    parts.store.root.transactionSync(() => other.apply(destroy));
    expect(isZero(held)).toBe(false); // this keyring has not looked yet
    expect(destroyedError(() => parts.keyring.usable('a.example:v2', now)).code).toBe('key-destroyed');
    expect(isZero(held)).toBe(true);
  });

  test("a new version's private key is wiped once wrapped; an unwrapped one once the cache holds its copy", () => {
    const wrapper = new SecretWrapper(loadMasterKey(config.masterKeyFile));
    const secrets: Uint8Array[] = [];
    const unwrapped: Uint8Array[] = [];
    const wrap = wrapper.wrap.bind(wrapper);
    const unwrap = wrapper.unwrap.bind(wrapper);
    wrapper.wrap = (label, secret) => {
      secrets.push(secret);
      const out = wrap(label, secret);
      expect(isZero(secret)).toBe(false);
      return out;
    };
    wrapper.unwrap = (label, blob) => {
      const out = unwrap(label, blob);
      unwrapped.push(out);
      return out;
    };
    const ring = new OrgKeyring(parts.store, wrapper, g, 'a.example', parts.keyring.policy);
    tick();
    const plan = ring.plan(now, systemRng, true);
    expect(secrets).toHaveLength(1);
    expect(isZero(secrets[0]!)).toBe(true);
    parts.store.root.transactionSync(() => ring.apply(plan));
    const created = plan.changes.find((c) => c.change === 'created')!.keyId;
    const { key } = ring.usable(created, now);
    expect(unwrapped).toHaveLength(1);
    expect(isZero(unwrapped[0]!)).toBe(true);
    expect(isZero(key.privateKey)).toBe(false);
  });
});

test('tracking keys: a new one is wiped once wrapped; an unwrapped one once the cipher is set up; tokens still mint and resolve', () => {
  const fx = makeOrgFixture({ keys: NO_GRACE });
  const config = loadKeydConfig(fx.configFile);
  const parts = openKeyd(config);
  try {
    const wrapper = new SecretWrapper(loadMasterKey(config.masterKeyFile));
    const seen: Uint8Array[] = [];
    const wrap = wrapper.wrap.bind(wrapper);
    const unwrap = wrapper.unwrap.bind(wrapper);
    wrapper.wrap = (label, secret) => {
      seen.push(secret);
      return wrap(label, secret);
    };
    wrapper.unwrap = (label, blob) => {
      const out = unwrap(label, blob);
      seen.push(out);
      return out;
    };
    const tracking = new TrackingKeys(parts.store, wrapper, 'a.example', 86400000);
    const { next } = tracking.buildNext(new Date());
    parts.store.root.transactionSync(() => parts.store.trackingKeys.put(next.version, next));
    const token = tracking.mint('U-1', '<m1@a.example>', new Date());
    expect(tracking.resolve(token, new Date()).code).toBe('U-1');
    expect(seen).toHaveLength(3); // the new key (wrap), and its unwrapped copies for mint and resolve
    expect(seen.every(isZero)).toBe(true);
  } finally {
    void parts.store.close();
  }
});

describe('a running keyd process', () => {
  test('a version destroyed by `ssmax keyd rotate` (grace 0) is refused 410 by the running keyd without a restart; the current one still serves', async () => {
    const fx = makeOrgFixture({ keys: NO_GRACE });
    const keyd = await startKeydProcess(fx.configFile);
    const inspector = clientFor(fx, keyd.port, fx.clients.inspector, 20000);
    const admin = clientFor(fx, keyd.port, fx.clients.admin, 20000);
    try {
      type Public = { current: string; keys: { keyId: string; publicKey: string }[] };
      const decrypt = async (keyId: string) => {
        const pub = await admin.call<Public>('GET', '/v1/public');
        const k = pub.keys.find((x) => x.keyId === keyId) ?? pub.keys.find((x) => x.keyId === pub.current)!;
        const capsule = encapsulate(
          g,
          newMessageKey(g, systemRng),
          { keyId, publicKey: new Uint8Array(Buffer.from(k.publicKey, 'hex')) },
          systemRng,
        );
        const { request } = blindForDecryption(g, capsule, systemRng);
        return inspector.call<{ z: string }>('POST', '/v1/decrypt', { keyId, e: b64(request.e) });
      };
      const v1 = (await admin.call<Public>('GET', '/v1/public')).current;
      await expect(decrypt(v1)).resolves.toHaveProperty('z'); // v1 is now in the running keyd's cache
      const rotate = () => execFileSync(process.execPath, [BIN, 'keyd', 'rotate', '--config', fx.configFile], { encoding: 'utf8' });
      expect(rotate()).toMatch(new RegExp(`${v1} retired`));
      expect(rotate()).toMatch(new RegExp(`${v1} destroyed`));
      const err = await decrypt(v1).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KeydClientError);
      expect([(err as KeydClientError).status, (err as KeydClientError).code]).toEqual([410, 'key-destroyed']);
      const current = (await admin.call<Public>('GET', '/v1/public')).current;
      expect(current).not.toBe(v1);
      await expect(decrypt(current)).resolves.toHaveProperty('z');
    } finally {
      inspector.close();
      admin.close();
      await keyd.stop();
    }
  }, 60000);
});
