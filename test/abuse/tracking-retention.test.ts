/**
 * Token properties the abuse tools rely on, at the level of keyd's
 * TrackingKeys (src/keyd/tracking.ts): unlinkable, unforgeable, bound to the
 * organisation, and a retired tracking key resolving only within its
 * retention. (keyd itself creates the first tracking key and never rotates
 * it yet: see the issue 9 report.)
 */
import { randomBytes } from 'node:crypto';
import { SecretWrapper } from '../../src/keyd/master-key';
import type { KeydStore } from '../../src/keyd/store';
import { type TrackingKeyRecord, TrackingKeys, messageIdHash } from '../../src/keyd/tracking';

const DAY = 86400000;

/** The part of the LMDB store TrackingKeys uses, in memory. */
function memoryStore(): KeydStore {
  const m = new Map<number, TrackingKeyRecord>();
  const meta = new Map<string, unknown>();
  return {
    meta: { get: (k: string) => meta.get(k) }, // the version floor a restore sets (src/keyd/rollback.ts): none here
    trackingKeys: {
      get: (v: number) => m.get(v),
      put: (v: number, r: TrackingKeyRecord) => {
        m.set(v, r);
        return Promise.resolve(true);
      },
      getRange: (o: { reverse?: boolean; limit?: number }) => {
        const keys = [...m.keys()].sort((a, b) => (o.reverse ? b - a : a - b)).slice(0, o.limit ?? Infinity);
        return keys.map((k) => ({ key: k, value: m.get(k)! }));
      },
    },
  } as unknown as KeydStore;
}

function setup(domain = 'a.example', store = memoryStore(), wrapper = new SecretWrapper(randomBytes(32))) {
  const t = new TrackingKeys(store, wrapper, domain, 30 * DAY);
  const put = (r: TrackingKeyRecord) => (store.trackingKeys as unknown as { put(v: number, r: TrackingKeyRecord): void }).put(r.version, r);
  return { t, put, store, wrapper };
}

test('two tokens of one user for one message id share only the 3-byte header', () => {
  const { t, put } = setup();
  put(t.buildNext(new Date()).next);
  const now = new Date();
  const a = Buffer.from(t.mint('U-1', '<m@a.example>', now), 'base64url');
  const b = Buffer.from(t.mint('U-1', '<m@a.example>', now), 'base64url');
  expect(a.subarray(0, 3)).toEqual(b.subarray(0, 3));
  expect(a.subarray(3).equals(b.subarray(3))).toBe(false);
  expect(t.resolve(a.toString('base64url'), now)).toMatchObject({ code: 'U-1', messageIdHash: messageIdHash('<m@a.example>') });
});

test('another organisation (other key, other domain) cannot open a token', () => {
  const A = setup('a.example');
  A.put(A.t.buildNext(new Date()).next);
  const token = A.t.mint('U-1', '<m@a.example>', new Date());
  const B = setup('b.example');
  B.put(B.t.buildNext(new Date()).next);
  expect(() => B.t.resolve(token, new Date())).toThrow(/forged, damaged, or not minted by b\.example/);
  // Same keys, other domain (AAD): refused as well.
  const C = setup('c.example', A.store, A.wrapper);
  expect(() => C.t.resolve(token, new Date())).toThrow(/not minted by c\.example/);
});

test('a retired tracking key resolves within its retention, not after', () => {
  const { t, put } = setup();
  const t0 = new Date(Date.UTC(2026, 0, 1));
  put(t.buildNext(t0).next);
  const old = t.mint('U-1', '<m@a.example>', t0);
  const rotated = t.buildNext(new Date(t0.getTime() + DAY));
  put(rotated.next);
  put(rotated.retired!);
  const fresh = t.mint('U-1', '<n@a.example>', new Date(t0.getTime() + 2 * DAY));
  expect(Buffer.from(fresh, 'base64url').readUInt16BE(1)).toBe(2);
  expect(t.resolve(old, new Date(t0.getTime() + 30 * DAY)).keyVersion).toBe(1);
  expect(() => t.resolve(old, new Date(t0.getTime() + 31 * DAY))).toThrow(/key version 1 is past its retention/);
  expect(t.resolve(fresh, new Date(t0.getTime() + 400 * DAY)).code).toBe('U-1');
});
