/**
 * Held messages across key versions (src/inspect/held-keys.ts), with keyd in-process on a simulated clock
 * (real LMDB, real crypto, keyd's default schedule: validity 90 days, renewal 14 days before, grace 30 days):
 * a message held under v1 is moved to v2 after v1 is retired, and still opens at its release after v1 was
 * destroyed; one never moved cannot be opened then (what every held message met before the job existed);
 * a run interrupted between keyd's answer and the store's write leaves the entry openable, and the next run
 * moves it; the list moderation queue is moved the same way; a forged release gets no kept capsule.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groups, systemRng } from '../../src/crypto';
import { collect, encryptMessage, listCapsules } from '../../src/envelope';
import type { GatewayDeps } from '../../src/gateway/deps';
import { heldCapsules, releasedCapsules } from '../../src/gateway/inspection';
import { LocalInspector, plaintextOf } from '../../src/inspect/engine';
import type { InspectionConfig } from '../../src/inspect/config';
import { moveHeldKeys, startHeldKeys } from '../../src/inspect/held-keys';
import { parseAnswer } from '../../src/inspector/client';
import { MODERATION_CAP_SETTINGS, QuarantineStore, RELEASE_HEADER, releaseMarker } from '../../src/inspect/quarantine';
import { KeydClient, KeydClientError } from '../../src/keyd/client';
import { KeydOps } from '../../src/keyd/client-ops';
import { loadKeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, openKeyd } from '../../src/keyd/daemon';
import { KeydError } from '../../src/keyd/errors';
import { LIST_RELEASE_HEADER, Lists } from '../../src/lists/expand';
import { capsuleFor } from '../../src/mail/message-checks';
import { GatewayError } from '../../src/mail/replies';
import { makeOrgFixture } from '../support/org-fixture';

const g = groups.libsecp256k1;
const DAY = 86400000;
const DOMAIN = 'a.example';

const fx = makeOrgFixture({ domain: DOMAIN });
let now = Date.now();
const parts = openKeyd(loadKeydConfig(fx.configFile), () => new Date(now));
const { service } = parts;
const audited: string[] = [];

/**
 * A KeydClient answered by the in-process service: the gateway's and the inspector's calls, keyd's refusals as over
 * HTTPS. `role`: the role of its re-encryptions (the gateway's; the inspector process's own client: 'inspector').
 */
function inProcess(role: 'gateway' | 'inspector' = 'gateway'): KeydClient {
  const client = Object.create(KeydClient.prototype) as KeydClient;
  client.call = (async (method: string, path: string, body?: Record<string, unknown>) => {
    try {
      if (method === 'GET' && path === '/v1/public') return service.publicMaterial();
      if (method === 'POST' && path === '/v1/reencrypt') {
        const r = await service.reencrypt({ role, name: `test ${role}` }, body!);
        audited.push(`${role === 'gateway' ? '' : `${role} `}reencrypt ${String(body!.keyId)} -> ${String(r.targetKeyId)}`);
        return r;
      }
      if (method === 'POST' && path === '/v1/decrypt') return await service.decrypt({ role: 'inspector', name: 'test inspector' }, body!);
    } catch (err) {
      if (err instanceof KeydError) throw new KeydClientError(err.code, err.message, err.status, err.details);
      throw err;
    }
    throw new Error(`unexpected ${method} ${path}`);
  }) as KeydClient['call'];
  return client;
}
const client = inProcess();
const keyd = new KeydOps(g, client, client, 5000, Date.now, { windowMs: 0, maxOps: 1, maxBytes: 60000 });

const dir = mkdtempSync(join(tmpdir(), 'ssmax-held-keys-'));
const quarantine = new QuarantineStore(join(dir, 'quarantine'));
const untouched = new QuarantineStore(join(dir, 'untouched'));
const moderation = new QuarantineStore(join(dir, 'moderation'), {}, MODERATION_CAP_SETTINGS);
const lists = new Lists(moderation, () => undefined);
const inspection = new LocalInspector({ config: {} as InspectionConfig, quarantine, keyd, group: g });
const deps = { config: { domain: DOMAIN }, inspection, lists } as unknown as GatewayDeps;
const logged: string[] = [];
const log = (l: string) => logged.push(l);

afterAll(async () => {
  await quarantine.close();
  await untouched.close();
  await moderation.close();
  await parts.store.close();
});

let n = 0;
const plain = () =>
  Buffer.from(
    `From: alice@a.example\r\nTo: bob@a.example\r\nSubject: held ${++n}\r\nMessage-ID: <h-${n}@a.example>\r\n\r\nheld body ${n}\r\n`,
  );

/** `message` encrypted to the organisation's current version, as the gateway holds it. */
async function encrypted(message: Buffer): Promise<Buffer> {
  const pub = await keyd.orgKeys();
  const key = pub.keys.find((k) => k.keyId === pub.current)!;
  return collect(
    encryptMessage(message, [{ keyId: key.keyId, publicKey: new Uint8Array(Buffer.from(key.publicKey, 'hex')) }], {
      group: g,
      rng: systemRng,
    }),
  );
}

async function hold(store: QuarantineStore, message: Buffer): Promise<string> {
  return store.hold({ direction: 'inbound', from: 'alice@a.example', rcpts: ['bob@a.example'], rule: 'test', message });
}

/**
 * Releases `id` as the gateway meets it: the message with its release field on top, opened with the capsules
 * `heldCapsules` gives (the entry's kept capsule, or the message's own). Resolves with the plaintext.
 */
async function release(store: QuarantineStore, id: string, field: string): Promise<Buffer> {
  const entry = (await store.release(id, now))!;
  const message = Buffer.from(entry.message);
  const raw = Buffer.concat([Buffer.from(`${field}: ${releaseMarker(entry)}\r\n`, 'latin1'), message]);
  const capsules = heldCapsules(deps, raw, await listCapsules(message));
  try {
    return await plaintextOf(keyd, g, message, capsuleFor(DOMAIN, capsules), { purpose: 'at its release' });
  } finally {
    await store.holdAgain(entry);
  }
}

test('a message held under v1 is moved to v2 after v1 is retired and opens at its release after v1 was destroyed; a crash mid-run loses nothing', async () => {
  await service.maintain(KEYD_ACTOR);
  expect((await keyd.orgKeys()).current).toBe('a.example:v1');
  const texts = [plain(), plain(), plain(), plain()];
  const held = await hold(quarantine, await encrypted(texts[0]!));
  const interrupted = await hold(quarantine, await encrypted(texts[1]!));
  const never = await hold(untouched, await encrypted(texts[2]!));
  const post = await hold(moderation, await encrypted(texts[3]!));
  const stored = Buffer.from(quarantine.get(held)!.message);

  // before any rotation: nothing to move; the version is recorded, so the message is not read again
  expect(await moveHeldKeys(quarantine, keyd, DOMAIN, 'quarantine', log)).toEqual({ moved: 0, failed: 0, stopped: false });
  expect(quarantine.summary(held)).toMatchObject({ keyId: 'a.example:v1' });
  expect(quarantine.summary(held)!.capsule).toBeUndefined();

  // day 80: the scheduled renewal makes v2 and retires v1
  now += 80 * DAY;
  expect(await service.maintain(KEYD_ACTOR)).toEqual(
    expect.arrayContaining([
      { keyId: 'a.example:v2', change: 'created' },
      { keyId: 'a.example:v1', change: 'retired' },
    ]),
  );

  // a run stopped between keyd's answer and the store's write (a crash): the entry is as it was, and opens
  const setKey = quarantine.setKey.bind(quarantine);
  const crash = jest.spyOn(quarantine, 'setKey').mockImplementation(async (id, ...rest) => {
    if (id === interrupted) throw new Error('crashed before the write');
    return setKey(id, ...rest);
  });
  const first = await moveHeldKeys(quarantine, keyd, DOMAIN, 'quarantine', log);
  crash.mockRestore();
  expect(first).toEqual({ moved: 1, failed: 1, stopped: false });
  expect(quarantine.summary(interrupted)!.capsule).toBeUndefined();
  expect(await release(quarantine, interrupted, RELEASE_HEADER)).toEqual(texts[1]);

  // the moved entry: its message unchanged (its seals and signature cover its capsules), the capsule for v2 beside it
  expect(Buffer.from(quarantine.get(held)!.message)).toEqual(stored);
  expect(quarantine.summary(held)).toMatchObject({ keyId: 'a.example:v2' });
  expect(quarantine.summary(held)!.capsule).toMatch(/kid=a\.example:v2;/);
  expect(audited).toContain('reencrypt a.example:v1 -> a.example:v2'); // through keyd's own-newer target, audited there

  // the next run moves the interrupted entry; the moderation queue is moved the same way; a second run finds nothing
  expect(await moveHeldKeys(quarantine, keyd, DOMAIN, 'quarantine', log)).toEqual({ moved: 1, failed: 0, stopped: false });
  expect(await moveHeldKeys(moderation, keyd, DOMAIN, 'list moderation', log)).toEqual({ moved: 1, failed: 0, stopped: false });
  expect(await moveHeldKeys(quarantine, keyd, DOMAIN, 'quarantine', log)).toEqual({ moved: 0, failed: 0, stopped: false });

  // day 111: the schedule destroys v1
  now += 31 * DAY;
  expect(await service.maintain(KEYD_ACTOR)).toEqual(expect.arrayContaining([{ keyId: 'a.example:v1', change: 'destroyed' }]));

  // released now: each moved entry opens and is the message held
  expect(await release(quarantine, held, RELEASE_HEADER)).toEqual(texts[0]);
  expect(await release(quarantine, interrupted, RELEASE_HEADER)).toEqual(texts[1]);
  expect(await release(moderation, post, LIST_RELEASE_HEADER)).toEqual(texts[3]);

  // an entry never moved (what every held message met before): 550 5.7.5, the message lost for good
  const lost = await release(untouched, never, RELEASE_HEADER).catch((err: unknown) => err);
  expect(lost).toBeInstanceOf(GatewayError);
  expect((lost as GatewayError).reply).toMatchObject({ code: 550, status: '5.7.5' });
  expect((lost as GatewayError).message).toMatch(/destroyed/);
  // and a run finding it now says so, naming the entry
  expect(await moveHeldKeys(untouched, keyd, DOMAIN, 'quarantine', log)).toEqual({ moved: 0, failed: 1, stopped: false });
  expect(logged.join('\n')).toMatch(new RegExp(`${never}: its key version a\\.example:v1 was destroyed before it was moved`));
});

test('only a release under way with its token gets the kept capsule: a forged or stale field gets the message own capsules', async () => {
  const entry = (await quarantine.release((await quarantine.page()).entries[0]!.id, now))!;
  const message = Buffer.from(entry.message);
  const own = await listCapsules(message);
  const forged = Buffer.concat([Buffer.from(`${RELEASE_HEADER}: ${entry.id} ${'0'.repeat(24)}\r\n`, 'latin1'), message]);
  expect(heldCapsules(deps, forged, own)).toEqual(own);
  const genuine = Buffer.concat([Buffer.from(`${RELEASE_HEADER}: ${releaseMarker(entry)}\r\n`, 'latin1'), message]);
  expect(heldCapsules(deps, genuine, own).map((c) => c.keyId)).toEqual(['a.example:v2']);
  await quarantine.holdAgain(entry);
  expect(heldCapsules(deps, genuine, own)).toEqual(own); // held again: that release is over
});

test('keyd unreachable: the run stops at once, nothing is changed, and says it will try again', async () => {
  const down = Object.create(KeydClient.prototype) as KeydClient;
  down.call = (async () => {
    throw new KeydClientError('unreachable', 'connect ECONNREFUSED', 0);
  }) as KeydClient['call'];
  const off = new KeydOps(g, down, down, 5000, Date.now, { windowMs: 0, maxOps: 1, maxBytes: 60000 });
  const before = quarantine.page().entries;
  expect(await moveHeldKeys(quarantine, off, DOMAIN, 'quarantine', log)).toEqual({ moved: 0, failed: 0, stopped: true });
  expect(quarantine.page().entries).toEqual(before);
  expect(logged[logged.length - 1]).toMatch(/tried again later/);
});

test('a run asked to stop (the gateway closing) ends before the next entry, changing nothing', async () => {
  const fresh = await hold(quarantine, await encrypted(plain())); // under the current version: would be recorded
  expect(await moveHeldKeys(quarantine, keyd, DOMAIN, 'quarantine', log, () => true)).toEqual({ moved: 0, failed: 0, stopped: true });
  expect(quarantine.summary(fresh)!.keyId).toBeUndefined();
});

test("the inspector process's own keyd client (inspector role) moves its quarantine: own-newer only; its answer to a release hands the moved capsule to the gateway", async () => {
  const inspectorKeyd = new KeydOps(g, inProcess('inspector'), inProcess('inspector'), 5000, Date.now, {
    windowMs: 0,
    maxOps: 1,
    maxBytes: 60000,
  });
  const store = new QuarantineStore(join(dir, 'inspector-quarantine'));
  const remote = new LocalInspector({ config: {} as InspectionConfig, quarantine: store, keyd: inspectorKeyd, group: g });
  try {
    const text = plain();
    const id = await hold(store, await encrypted(text)); // under v2, the current version
    expect((await keyd.orgKeys()).current).toBe('a.example:v2');
    // a forced rotation: v3 current, v2 retired
    expect(await service.maintain(KEYD_ACTOR, true)).toEqual(expect.arrayContaining([{ keyId: 'a.example:v2', change: 'retired' }]));
    const capsule = capsuleFor(DOMAIN, await listCapsules(Buffer.from(store.get(id)!.message)));
    // the inspector role may re-encrypt to this organisation's own current version, and to nothing else
    const refused = await inspectorKeyd.reencrypt(capsule, { kind: 'user', address: 'bob@a.example' }).catch((err: unknown) => err);
    expect(String(refused)).toMatch(/Role "inspector" may not call reencrypt/);

    // the inspector's job (the gateway's, one implementation): not a runner (a cluster worker) does nothing
    const idle = startHeldKeys([{ store, name: 'quarantine' }], inspectorKeyd, DOMAIN, log, { runner: false });
    await idle.run();
    await idle.close();
    expect(store.summary(id)!.keyId).toBeUndefined();
    // a runner moves it at start; one run at a time
    const job = startHeldKeys([{ store, name: 'quarantine' }], inspectorKeyd, DOMAIN, log);
    const [a, b] = [job.run(), job.run()];
    expect(a).toBe(b);
    await a;
    await job.close();
    expect(store.summary(id)).toMatchObject({ keyId: 'a.example:v3' });
    expect(audited).toContain('inspector reencrypt a.example:v2 -> a.example:v3');
    expect(logged).toContain('ssmax held keys: quarantine: 1 held message(s) moved to a.example:v3');

    // day +31: v2 destroyed. The release through the (remote) inspector: its answer carries the moved capsule, the
    // gateway cannot read that store, and opens the message with it
    now += 31 * DAY;
    expect(await service.maintain(KEYD_ACTOR)).toEqual(expect.arrayContaining([{ keyId: 'a.example:v2', change: 'destroyed' }]));
    const entry = (await store.release(id, now))!;
    const message = Buffer.from(entry.message);
    const answer = await remote.inspect({
      direction: 'outbound',
      message,
      from: 'alice@a.example',
      rcpts: ['bob@a.example'],
      releaseId: releaseMarker(entry),
    });
    expect(answer).toMatchObject({ decision: { action: 'pass' }, capsule: expect.stringMatching(/kid=a\.example:v3;/) });
    const onWire = parseAnswer(JSON.parse(JSON.stringify(answer)), 'outbound', true);
    expect(onWire.capsule).toBe(answer.capsule);
    const gateway = { config: { domain: DOMAIN } } as unknown as GatewayDeps; // a gateway with a remote inspector: no store of its own
    const own = await listCapsules(message);
    const opened = await plaintextOf(keyd, g, message, capsuleFor(DOMAIN, releasedCapsules(gateway, own, onWire.capsule)));
    expect(opened).toEqual(text);
    // with the message's own capsule (what a gateway did before): v2 is gone
    const lost = await plaintextOf(keyd, g, message, capsuleFor(DOMAIN, own)).catch((err: unknown) => err);
    expect((lost as GatewayError).reply).toMatchObject({ code: 550, status: '5.7.5' });

    // a capsule in an answer to no release, or not a capsule, or another organisation's: a fault of the inspector (4xx)
    expect(() => parseAnswer({ decision: { action: 'pass' }, capsule: answer.capsule }, 'outbound', false)).toThrow(
      /capsule in an answer to no release/,
    );
    expect(() => parseAnswer({ decision: { action: 'pass' }, capsule: 'kid=x' }, 'outbound', true)).toThrow(/invalid capsule/);
    const foreign = answer.capsule!.replace('kid=a.example:v3;', 'kid=b.example:v3;');
    expect(() => releasedCapsules(gateway, own, foreign)).toThrow(/not for a\.example/);
  } finally {
    await store.close();
  }
});
