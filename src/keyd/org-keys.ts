/**
 * Versioned organisation encryption keys (docs/protocol.md, "Keys in time"; the
 * CMS paper's validity-based renewal; the group-key paper's versions):
 *
 *   active    the newest valid version: new mail is encrypted to it;
 *   retired   superseded by a newer active version: still decrypts and
 *             re-encrypts (answers carry a "retired, refresh" notice) for a
 *             grace period at least a peer's cache TTL plus queue lifetime;
 *   destroyed after the grace period: the wrapped private key is erased and
 *             requests under it are refused, naming the version to fetch.
 *
 * The next version is generated (and certified, when keyd can) `renewBefore`
 * ahead of the current one's expiry. All times come from the caller's clock.
 * Key ids are "<domain>:v<version>".
 */
import { type Group, generateEncryptionKeyPair } from '../crypto';
import type { Rng } from '../crypto/random';
import { KeydError } from './errors';
import type { SecretWrapper } from './master-key';
import { ORG_KEYS_NEXT, versionFloor } from './rollback';
import type { KeydStore } from './store';

export type KeyState = 'active' | 'retired' | 'destroyed';

export interface OrgKeyRecord {
  readonly version: number;
  readonly keyId: string;
  /** 33-byte compressed point, hex. */
  readonly publicKey: string;
  /** The private key wrapped under the master key; absent once destroyed. */
  readonly wrapped?: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly state: KeyState;
  readonly retiredAt?: number;
  readonly destroyedAt?: number;
  /** The encryption-key certificate (PEM), when keyd certified it. */
  readonly certificate?: string;
}

export interface KeyPolicy {
  /** Lifetime of a version (ms). */
  readonly validityMs: number;
  /** Generate the next version this long before the current one expires (ms). */
  readonly renewBeforeMs: number;
  /** Keep a retired version usable this long (ms). */
  readonly graceMs: number;
}

export type Certify = (publicKey: Uint8Array, version: number, notBefore: Date, notAfter: Date) => string;

/** Records to write, the changes they make, and the generation of the records they were planned from. */
export interface KeyPlan {
  readonly puts: readonly OrgKeyRecord[];
  readonly changes: readonly KeyChange[];
  readonly basis: number;
  /** The time it was planned for (ms). */
  readonly at: number;
}

function superseded(current: OrgKeyRecord | undefined): KeydError {
  return new KeydError(
    'superseded',
    `Another change to the org keys was committed first${current ? ` (${current.keyId} is current)` : ''}; nothing was changed`,
    current ? { current: current.keyId } : {},
  );
}

export interface KeyChange {
  readonly keyId: string;
  readonly change: 'created' | 'retired' | 'destroyed';
}

/** A usable version with its private key unwrapped (kept in memory only). */
export interface UsableKey {
  readonly record: OrgKeyRecord;
  readonly privateKey: Uint8Array;
  /** 65-byte uncompressed public key (saves a decompression per operation). */
  readonly publicKeyUncompressed: Uint8Array;
}

export function keyIdFor(domain: string, version: number): string {
  return `${domain}:v${version}`;
}

/**
 * Meta key counting changes to the org-key records. Every writer (keyd, or
 * `ssmax keyd rotate` on the same store) bumps it in the transaction that
 * changes them, so a reader can keep the records in memory and re-read them
 * only when the counter moved: one small LMDB read per operation instead of
 * decoding every version (with its certificate) each time.
 */
const GENERATION_KEY = 'org-keys-generation';

export class OrgKeyring {
  private readonly cache = new Map<string, UsableKey>();
  private records: { generation: number; all: readonly OrgKeyRecord[]; byVersion: ReadonlyMap<number, OrgKeyRecord> } | undefined;

  constructor(
    private readonly store: KeydStore,
    private readonly wrapper: SecretWrapper,
    private readonly group: Group,
    readonly domain: string,
    readonly policy: KeyPolicy,
    private readonly certify?: Certify,
  ) {}

  /** The stored records, re-read when the generation counter in the store moved. */
  private snapshot(): { generation: number; all: readonly OrgKeyRecord[]; byVersion: ReadonlyMap<number, OrgKeyRecord> } {
    const generation = (this.store.meta.get(GENERATION_KEY) as number | undefined) ?? 0;
    if (this.records?.generation !== generation) {
      const all = [...this.store.orgKeys.getRange({})].map((e) => e.value);
      this.records = { generation, all, byVersion: new Map(all.map((r) => [r.version, r])) };
    }
    return this.records;
  }

  all(): OrgKeyRecord[] {
    return [...this.snapshot().all];
  }

  byKeyId(keyId: string): OrgKeyRecord | undefined {
    const m = /^(.+):v([0-9]{1,9})$/.exec(keyId);
    if (!m || m[1] !== this.domain) return undefined;
    return this.snapshot().byVersion.get(Number(m[2]));
  }

  /** The version new mail uses: the newest active one valid at `now`. */
  current(now: Date): OrgKeyRecord | undefined {
    const t = now.getTime();
    const all = this.snapshot().all;
    for (let i = all.length - 1; i >= 0; i--) {
      const r = all[i]!;
      if (r.state === 'active' && r.notBefore <= t && t < r.notAfter) return r;
    }
    return undefined;
  }

  /**
   * The private key for a key id, for an operation at `now`. Refuses unknown
   * and destroyed versions; reports whether the version is retired.
   */
  usable(keyId: string, now: Date): { key: UsableKey; retired: boolean } {
    const record = this.byKeyId(keyId);
    if (!record) throw new KeydError('unknown-key', `No key "${keyId}" at ${this.domain}`);
    const current = this.current(now);
    if (record.state === 'destroyed' || !record.wrapped) {
      this.forget(keyId); // destroyed by another process on this store: wipe what this one still holds
      throw new KeydError(
        'key-destroyed',
        `Key "${keyId}" was destroyed; fetch "${current?.keyId ?? 'the current bundle'}"`,
        current ? { current: current.keyId } : {},
      );
    }
    let key = this.cache.get(keyId);
    if (!key || key.record !== record) {
      this.forget(keyId);
      const unwrapped = this.wrapper.unwrap(`org-key:${record.keyId}`, record.wrapped);
      let privateKey: Uint8Array;
      try {
        privateKey = new Uint8Array(unwrapped); // the cache's own copy, wiped by forget()
      } finally {
        unwrapped.fill(0);
      }
      key = {
        record,
        privateKey,
        publicKeyUncompressed: this.group.encodeUncompressed(this.group.decode(Buffer.from(record.publicKey, 'hex'), 'org public key')),
      };
      this.cache.set(keyId, key);
    }
    return { key, retired: record.state === 'retired' };
  }

  /** Builds (without storing) a new version starting at `now`. */
  private build(now: Date, rng: Rng): OrgKeyRecord {
    const last = this.all().pop();
    // never below the floor a restore set (rollback.ts): versions the lost host made after the backup were published
    const version = Math.max((last?.version ?? 0) + 1, versionFloor(this.store, ORG_KEYS_NEXT));
    const kp = generateEncryptionKeyPair(this.group, rng);
    try {
      const keyId = keyIdFor(this.domain, version);
      const notBefore = now.getTime();
      const notAfter = notBefore + this.policy.validityMs;
      const certificate = this.certify?.(kp.publicKey, version, new Date(notBefore), new Date(notAfter));
      return {
        version,
        keyId,
        publicKey: Buffer.from(kp.publicKey).toString('hex'),
        wrapped: this.wrapper.wrap(`org-key:${keyId}`, kp.privateKey),
        notBefore,
        notAfter,
        state: 'active',
        ...(certificate ? { certificate } : {}),
      };
    } finally {
      kp.privateKey.fill(0); // only the wrapped copy is kept
    }
  }

  /**
   * The transitions due at `now`, as records to put: a new version when none
   * is current or the current one is within `renewBefore` of expiry (or when
   * `force`), retirement of superseded versions, destruction after grace.
   * The caller writes them in one transaction with the audit record.
   */
  plan(now: Date, rng: Rng, force = false): KeyPlan {
    const basis = this.snapshot().generation;
    const t = now.getTime();
    const puts: OrgKeyRecord[] = [];
    const changes: KeyChange[] = [];
    const current = this.current(now);
    let newest = current;
    if (force || !current || current.notAfter - t <= this.policy.renewBeforeMs) {
      newest = this.build(now, rng);
      puts.push(newest);
      changes.push({ keyId: newest.keyId, change: 'created' });
    }
    for (const r of this.all()) {
      if (r.state === 'active' && newest && r.version < newest.version && newest.notBefore <= t) {
        const retired: OrgKeyRecord = { ...r, state: 'retired', retiredAt: t };
        puts.push(retired);
        changes.push({ keyId: r.keyId, change: 'retired' });
      } else if (r.state === 'retired' && (r.retiredAt ?? t) + this.policy.graceMs <= t) {
        puts.push(this.destroyed(r, t));
        changes.push({ keyId: r.keyId, change: 'destroyed' });
      }
    }
    return { puts, changes, basis, at: t };
  }

  /** Drops a cached private key, overwriting its bytes first (a destroyed version must not linger in memory). */
  private forget(keyId: string): void {
    this.cache.get(keyId)?.privateKey.fill(0);
    this.cache.delete(keyId);
  }

  private destroyed(r: OrgKeyRecord, t: number): OrgKeyRecord {
    const { wrapped: _gone, ...rest } = r;
    return { ...rest, state: 'destroyed', destroyedAt: t };
  }

  /**
   * Applies a plan inside the caller's write transaction, bumps the generation
   * and drops cached keys. The plan was made from the records at generation
   * `basis`; if any writer (another request, the schedule, `ssmax keyd rotate`
   * in another process on the same store) changed them since, nothing is
   * written and KeydError `superseded` is thrown, so the version number and the
   * write happen as one transaction: two rotations at once make one new
   * version, never the same version twice. A published key is never
   * rewritten: a put whose version exists with another public key (or that
   * would give a destroyed key its private key back) is refused the same way.
   */
  apply(plan: KeyPlan): void {
    if (plan.puts.length === 0) return;
    const generation = (this.store.meta.get(GENERATION_KEY) as number | undefined) ?? 0;
    if (generation !== plan.basis) {
      this.records = undefined;
      throw superseded(this.current(new Date(plan.at)));
    }
    for (const r of plan.puts) {
      const existing = this.store.orgKeys.get(r.version);
      if (existing && (existing.publicKey !== r.publicKey || (existing.state === 'destroyed' && r.state !== 'destroyed')))
        throw superseded(undefined);
      if (!existing && r.state !== 'active') throw superseded(undefined);
    }
    for (const r of plan.puts) {
      this.store.orgKeys.put(r.version, r);
      this.forget(r.keyId);
    }
    this.store.meta.put(GENERATION_KEY, generation + 1);
    this.records = undefined;
  }
}
