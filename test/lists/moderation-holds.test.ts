/**
 * A post held for a moderated list is written only once the message's answer
 * is decided, and once per arrival and list (src/lists/expand.ts writeHolds,
 * called where the copies are handed over: src/gateway/plugin.ts send). A
 * message refused as a whole (a members-only list beside the moderated one)
 * or deferred (keyd times out for another recipient) leaves nothing held; the
 * sender's retries after a step that fails later hold it once. The moderation
 * store and the delivery record are the real ones (LMDB in a temporary
 * folder); keyd is a stand-in (a unit test of the modules).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { defaultGroup as g } from '../../src/crypto/backend';
import type { Capsule } from '../../src/crypto';
import { generateEncryptionKeyPair } from '../../src/crypto/keys';
import { systemRng } from '../../src/crypto/random';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { collect, encryptMessage } from '../../src/envelope';
import { LocalDelivery, attemptId } from '../../src/gateway/delivery';
import type { GatewayDeps, HeldPost } from '../../src/gateway/deps';
import { localCopies } from '../../src/gateway/local-copies';
import { MODERATION_CAP_SETTINGS, QuarantineStore } from '../../src/inspect/quarantine';
import type { ListFacts } from '../../src/keyd/client-ops';
import { Lists, writeHolds } from '../../src/lists/expand';
import { capsulesOf, checkMessage } from '../../src/mail/message-checks';
import { GatewayError } from '../../src/mail/replies';

const DOMAIN = 'a.example';
const org = generateEncryptionKeyPair(g, systemRng);
/** A second moderated list, its address long enough that its held post is larger than mod@'s by some 100 bytes. */
const LONG = 'moderated-list-with-a-rather-long-name-for-its-size@a.example';
const FACTS: Record<string, ListFacts> = {
  'mod@a.example': { address: 'mod@a.example', members: ['bob@a.example'], policy: 'moderated', moderators: ['boss@a.example'] },
  'team@a.example': { address: 'team@a.example', members: ['bob@a.example'], policy: 'members', moderators: [] },
  [LONG]: { address: LONG, members: ['bob@a.example'], policy: 'moderated', moderators: ['boss@a.example'] },
};

let dir: string;
let store: QuarantineStore;
let delivery: LocalDelivery;
let logs: string[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-holds-'));
  store = new QuarantineStore(join(dir, 'list-moderation'), {}, MODERATION_CAP_SETTINGS);
  // the delivery record only: no copy is handed to a mailbox store here (nothing connects to this port)
  delivery = new LocalDelivery('127.0.0.1', 9, 1000, join(dir, 'delivered'));
  logs = [];
});
afterEach(async () => {
  await delivery.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The arrival as the sender sends it (each retry the same bytes) and its encrypted form as the list step sees it. */
async function arrival(rcpts: string): Promise<{ raw: Buffer; message: Buffer; capsules: Capsule[] }> {
  const raw = Buffer.from(
    `From: eve@a.example\r\nTo: ${rcpts}\r\nSubject: p\r\nMessage-ID: <p-${rcpts.length}@b.example>\r\nDate: Sun, 6 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n`,
  );
  const message = await collect(encryptMessage(raw, [{ keyId: `${DOMAIN}:v1`, publicKey: org.publicKey }], { group: g, rng: systemRng }));
  return { raw, message, capsules: capsulesOf(checkMessage(message).headers) };
}

/** Deps whose keyd answers re-encryptions for bob when `keyd.up`, else times out (451). */
function depsWith(keyd: { up: boolean }): GatewayDeps {
  const deps = {
    config: { domain: DOMAIN, localDomains: [DOMAIN], policy: { default: 'opportunistic', domains: {} } },
    keyd: {
      user: (a: string) =>
        Promise.resolve(FACTS[a] ? undefined : { address: a, status: 'active', encryptionKeyId: `u-${a.split('@')[0]!}` }),
      list: (a: string) => Promise.resolve(FACTS[a]),
      primeUsers: () => Promise.resolve(),
      reencrypt: (capsule: Capsule, _t: unknown, keyId: string) =>
        keyd.up
          ? Promise.resolve({ capsule: { ...capsule, keyId } })
          : Promise.reject(new GatewayError('keydUnavailable', 'timeout (test)')),
      reencryptMany: (capsule: Capsule, _t: unknown, keyIds: readonly string[]) =>
        Promise.resolve(keyIds.map((keyId) => ({ capsule: { ...capsule, keyId } }))),
    },
    group: g,
    seal: { privateKey: generateP256KeyPair().privateKey, certRef: randomBytes(32).toString('base64url') },
    clock: () => new Date(),
  } as unknown as GatewayDeps;
  return { ...deps, lists: new Lists(store, (l) => logs.push(l)) };
}

/** A local sender's submission: the held post is sealed (seal i=1) at each attempt, so only the arrival's identity taken before sealing finds it again. */
const origin = {
  from: 'own' as const,
  chain: { result: 'none' as const, summary: 'ssmax-chain=none', instances: [] },
  trackingToken: randomBytes(32),
};

/**
 * One attempt of the message as the gateway makes it: the copies and holds worked out (localCopies), then
 * the holds written where the copies are handed over (writeHolds); `handOver` stands for the rest of that step.
 */
async function attempt(deps: GatewayDeps, rcpts: string[], handOver: () => Promise<void> = () => Promise.resolve()): Promise<string> {
  const { raw, message, capsules } = await arrival(rcpts.join(', '));
  const holds: HeldPost[] = [];
  try {
    await localCopies(deps, { message, rcpts, origin, verdicts: [], sender: 'eve@a.example' }, capsules, [], holds);
    await writeHolds(deps.lists, delivery, attemptId(raw), holds);
    await handOver();
    return '250';
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return `${err.reply.code} ${err.reply.status}`;
  }
}

test('a post to a moderated and a members-only list from a non-member: 550 5.7.2, nothing held (no moderator can release it)', async () => {
  const deps = depsWith({ up: true });
  expect(await attempt(deps, ['mod@a.example', 'team@a.example'])).toBe('550 5.7.2');
  expect(store.heldCount()).toBe(0);
});

test('a post to a moderated list and a user keyd cannot serve now: 451 at each of three tries, nothing held; then held once', async () => {
  const keyd = { up: false };
  const deps = depsWith(keyd);
  for (let i = 0; i < 3; i++) expect(await attempt(deps, ['mod@a.example', 'bob@a.example'])).toBe('451 4.7.5');
  expect(store.heldCount()).toBe(0);
  keyd.up = true;
  expect(await attempt(deps, ['mod@a.example', 'bob@a.example'])).toBe('250');
  expect(store.heldCount()).toBe(1);
  expect(store.page().entries[0]).toMatchObject({ rcpts: ['mod@a.example'], from: 'eve@a.example', rule: 'list-moderation:mod@a.example' });
});

test('a step after the hold fails for now (the mailbox store) three times: the retries find the post held and hold it once', async () => {
  const deps = depsWith({ up: true });
  const storeDown = () => Promise.reject(new GatewayError('deliveryUnavailable', 'connection refused (test)'));
  for (let i = 0; i < 3; i++) expect(await attempt(deps, ['mod@a.example', 'bob@a.example'], storeDown)).toBe('451 4.4.1');
  expect(await attempt(deps, ['mod@a.example', 'bob@a.example'])).toBe('250');
  expect(store.heldCount()).toBe(1);
  expect(logs.filter((l) => /held for moderation as q-/.test(l))).toHaveLength(1);
});

test('a store over its cap refuses the hold for now: nothing recorded, so the retry holds it', async () => {
  await store.close();
  store = new QuarantineStore(join(dir, 'list-moderation'), { maxEntries: 0 }, MODERATION_CAP_SETTINGS);
  expect(await attempt(depsWith({ up: true }), ['mod@a.example'])).toBe('451 4.3.1');
  await store.close();
  store = new QuarantineStore(join(dir, 'list-moderation'), {}, MODERATION_CAP_SETTINGS);
  expect(await attempt(depsWith({ up: true }), ['mod@a.example'])).toBe('250');
  expect(store.heldCount()).toBe(1);
});

test('a moderated post alone is held once, sealed for the list, and can be released once', async () => {
  const deps = depsWith({ up: true });
  expect(await attempt(deps, ['mod@a.example'])).toBe('250');
  expect(await attempt(deps, ['mod@a.example'])).toBe('250'); // a retry after a lost 250
  expect(store.heldCount()).toBe(1);
  const entry = await store.release(store.page().entries[0]!.id);
  expect(
    Buffer.from(entry!.message)
      .toString('latin1')
      .match(/^SSMAX-Seal:/gim),
  ).toHaveLength(1);
  expect(await store.consumeRelease(entry!.id, entry!.release!.token)).toBe(true);
  expect(await store.consumeRelease(entry!.id, entry!.release!.token)).toBe(false);
});

test('a hold with nowhere to be kept is a fault of ours (4xx), never a post dropped', async () => {
  const { message, capsules } = await arrival('mod@a.example');
  await expect(
    localCopies(depsWith({ up: true }), { message, rcpts: ['mod@a.example'], origin, verdicts: [], sender: 'eve@a.example' }, capsules),
  ).rejects.toMatchObject({ reply: { code: 451 } });
  expect(store.heldCount()).toBe(0);
});

/** The bytes a held post takes in the moderation store (its message and its record), as src/inspect/quarantine.ts counts them. */
function heldBytes(h: HeldPost): number {
  const meta = {
    direction: 'inbound',
    from: h.from,
    rcpts: [h.list],
    rule: `list-moderation:${h.list}`,
    id: `q-${Date.now().toString(36)}-${'0'.repeat(12)}`,
    time: Date.now(),
    state: 'held',
    bytes: 0,
  };
  return h.message.length + Buffer.byteLength(JSON.stringify(meta));
}

/** The posts one message to both moderated lists holds (nothing written). */
async function holdsOf(deps: GatewayDeps): Promise<{ raw: Buffer; holds: HeldPost[] }> {
  const rcpts = ['mod@a.example', LONG];
  const { raw, message, capsules } = await arrival(rcpts.join(', '));
  const holds: HeldPost[] = [];
  await localCopies(deps, { message, rcpts, origin, verdicts: [], sender: 'eve@a.example' }, capsules, [], holds);
  return { raw, holds };
}

describe('a post to two moderated lists: a held post is as good as a delivered copy', () => {
  test("the second hold refused for good (552) after the first was written: returned for the report, not the whole message's 5xx", async () => {
    const { raw, holds } = await holdsOf(depsWith({ up: true }));
    const [small, large] = holds.map(heldBytes) as [number, number];
    expect(large - small).toBeGreaterThan(80);
    await store.close();
    // mod@'s post fits the per-sender cap alone, the long list's post alone does not (a cap lowered between the check and the writes)
    store = new QuarantineStore(
      join(dir, 'list-moderation'),
      { maxBytesPerSender: small + 40, maxBytes: 10 * large },
      MODERATION_CAP_SETTINGS,
    );
    const deps = depsWith({ up: true });
    const refused = await writeHolds(deps.lists, delivery, attemptId(raw), holds);
    expect(store.heldCount()).toBe(1);
    expect(refused).toEqual([
      {
        rcpt: LONG,
        code: 552,
        reply: expect.stringMatching(/^552 5\.3\.4 Message too large to be held: .*moderation_max_bytes_per_sender/) as unknown,
      },
    ]);
    // alone (nothing held before it), the same refusal is the message's answer
    await expect(writeHolds(deps.lists, delivery, `${attemptId(raw)}-other`, [holds[1]!])).rejects.toMatchObject({
      reply: { code: 552, status: '5.3.4' },
    });
    expect(store.heldCount()).toBe(1);
  });

  test('posts that each fit but together pass a byte cap: refused for good (552 5.3.4) by the check before any is written', async () => {
    const { holds } = await holdsOf(depsWith({ up: true }));
    const large = Math.max(...holds.map(heldBytes));
    await store.close();
    store = new QuarantineStore(
      join(dir, 'list-moderation'),
      { maxBytesPerSender: large + 40, maxBytes: 10 * large },
      MODERATION_CAP_SETTINGS,
    );
    const deps = depsWith({ up: true });
    let err: unknown;
    try {
      deps.lists!.checkHolds!(holds);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).reply).toMatchObject({ code: 552, status: '5.3.4' });
    expect((err as GatewayError).reply.text).toMatch(
      /its 2 entries take \d+ bytes held \(messages and records\), over \[lists\] moderation_max_bytes_per_sender/,
    );
    expect(() => deps.lists!.checkHolds!([holds[1]!])).not.toThrow();
    expect(store.heldCount()).toBe(0);
  });
});
