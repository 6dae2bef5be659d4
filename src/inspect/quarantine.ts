/**
 * The quarantine (SSMAX §3.2): messages a DLP or AV rule holds back, kept
 * ENCRYPTED (to the organisation's key: as received, or encrypted by the
 * gateway first for a plaintext submission) in LMDB beside the gateway. An
 * operator lists, releases or deletes them (`ssmax quarantine`). A release
 * re-injects the message into the gateway carrying
 *   SSMAX-Quarantine-Release: <id>
 * which the gateway honours once, and only for an entry this store has in
 * a release under way (the store is local: the header alone proves nothing).
 * Each state change is one LMDB write transaction that checks the state it
 * starts from: the store, shared by the gateway, the command line and the
 * console, decides, not a flag in one process.
 *
 * The marker names the release too (`<id> <token>`): the gateway lets the
 * message pass only while the entry is `releasing` with that token. A
 * release is a lease: one whose process died before the gateway took the
 * message (its `until` passed, the entry still `releasing`) may be taken
 * over by a new release, which replaces the token; the late one's message,
 * should it still arrive, then names a token the store no longer has and is
 * refused.
 *
 * The gateway's taking the mark (releasing → released) starts the lease
 * afresh: the releaser then removes the entry at the gateway's 250, or holds
 * it again at any other answer. An entry still `released` when that lease
 * ended was left by a releaser that died (or could not update the store)
 * after the gateway took the mark, whatever the gateway answered: it may be
 * released again, as a `releasing` one may. The gateway knows each release
 * of one entry as one message (src/gateway/delivery.ts, `attemptId`: the
 * token is not part of it), so a copy an earlier release handed over is not
 * handed over again, and a release the gateway never finished (a 4xx after
 * the mark, a crash) is not lost.
 */
import { emptyOrAbsent, lmdbBackup } from '../fs/lmdb-backup';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { secretsEqual } from '../crypto/compare';
import { type Database, type RootDatabase, open } from 'lmdb';
import { closeLmdb } from '../fs/lmdb-close';
import { GatewayError } from '../mail/replies';
import { DELIVERED_RECORD_SECONDS } from '../gateway/delivered-record';

export const RELEASE_HEADER = 'SSMAX-Quarantine-Release';
/** The release field of a post a moderator released (`ssmax list release`, src/lists/expand.ts): the same marker, in the moderation store. */
export const LIST_RELEASE_HEADER = 'SSMAX-List-Release';

/**
 * How long a release may keep its entry `releasing` before another release
 * may take it over, when the releaser does not say (src/mail/release.ts
 * derives its default, ten minutes, from its SMTP timeouts), and for an
 * entry written before releases carried their own end.
 */
export const DEFAULT_RELEASE_LEASE_MS = 600_000;

/** A release marker's value: the entry's id and the release's token. */
const MARKER = /^(q-[0-9a-z]+-[0-9a-f]{12}) ([0-9a-f]{24})$/;

/** The value of the release field for `entry`'s release (`<id> <token>`). */
export function releaseMarker(entry: QuarantineEntry): string {
  return `${entry.id} ${entry.release?.token ?? ''}`;
}

/** A release field's value as id and token; undefined when it is not one. */
export function parseReleaseMarker(value: string): { id: string; token: string } | undefined {
  const m = MARKER.exec(value.trim());
  return m ? { id: m[1]!, token: m[2]! } : undefined;
}

/** When `entry`'s release stops holding it (ms since the epoch); undefined when it is not in a release. */
export function leaseEnd(entry: Pick<QuarantineEntry, 'release'>): number | undefined {
  const r = entry.release;
  return r ? (r.until ?? r.since + DEFAULT_RELEASE_LEASE_MS) : undefined;
}

/**
 * How long after the gateway took a release an unfinished one may be released again: as long as the gateway keeps
 * its record of the copies it handed over (src/gateway/config.ts, DELIVERED_RECORD_SECONDS), which keeps a second
 * release of a message that names itself from handing them over twice.
 */
export const RELEASE_RECORD_MS = DELIVERED_RECORD_SECONDS * 1000;

/** When the gateway took `entry`'s release (its mark consumed), for a `released` entry. */
function takenAt(entry: Pick<QuarantineEntry, 'release'>): number {
  return entry.release?.taken ?? entry.release?.since ?? 0;
}

/**
 * True for an entry whose release did not finish and may be released again: left `releasing` by a release whose
 * lease ended (its process died or never came back); left `released` the same way after the gateway took the mark
 * (the lease starts again then, and a live releaser removes or holds the entry at the gateway's answer), while the
 * gateway still keeps its record of what it handed over (RELEASE_RECORD_MS); or left `released` by a release of an
 * earlier version, which marked an entry so before sending it (that version's gateway removed the entries it let
 * pass: one still there was never sent; it has no `release` of its own, which every release since records).
 */
export function releaseInterrupted(entry: Pick<QuarantineEntry, 'state' | 'release'>, now = Date.now()): boolean {
  if (entry.state === 'released' && entry.release === undefined) return true;
  if ((leaseEnd(entry) ?? Infinity) > now) return false;
  return entry.state === 'releasing' || (entry.state === 'released' && now - takenAt(entry) < RELEASE_RECORD_MS);
}

/**
 * True for an entry the gateway took at its release (`released` by this version) that is not released again: its
 * releaser is finishing (removing the entry, or holding it again) while the lease runs; past RELEASE_RECORD_MS
 * (`releaseRecordGone`) nobody can tell any more which copies went, so it is not sent again either.
 */
export function releaseTaken(entry: Pick<QuarantineEntry, 'state' | 'release'>, now = Date.now()): boolean {
  return entry.state === 'released' && entry.release !== undefined && !releaseInterrupted(entry, now);
}

/** A `released` entry whose releaser never finished, taken by the gateway longer ago than its record of copies is kept. */
export function releaseRecordGone(entry: Pick<QuarantineEntry, 'state' | 'release'>, now = Date.now()): boolean {
  return releaseTaken(entry, now) && (leaseEnd(entry) ?? Infinity) <= now;
}

/** Equality of two release tokens, in constant time. */
function sameToken(a: string | undefined, b: string): boolean {
  return a !== undefined && secretsEqual(a, b);
}

/** The state to show: `held` for an interrupted release (it may be released again), else the stored one. */
export function shownState(entry: Pick<QuarantineEntry, 'state' | 'release'>, now = Date.now()): QuarantineState {
  return releaseInterrupted(entry, now) ? 'held' : entry.state;
}

/**
 * An entry's state. `held`: waiting for an operator. `releasing`: a release
 * (src/mail/release.ts) is submitting it to the gateway, which may let it
 * pass once. `released`: the gateway did let it pass during that release
 * (it consumed the mark); the releaser removes the entry once the gateway
 * answered 250, or puts it back as held when the gateway did not take it;
 * when neither happened within the lease, it may be released again.
 */
export type QuarantineState = 'held' | 'releasing' | 'released';

export interface QuarantineEntry {
  readonly id: string;
  readonly time: number;
  readonly direction: 'outbound' | 'inbound';
  readonly from: string;
  readonly rcpts: readonly string[];
  readonly rule: string;
  readonly state: QuarantineState;
  /** While releasing or released: which release (a random token), since when, until when it holds the entry (its lease), and when the gateway took it. */
  readonly release?: { readonly token: string; readonly since: number; readonly until?: number; readonly taken?: number };
  /** What an earlier release left (the recipients the gateway refused, and its answer). */
  readonly note?: string;
  /**
   * The version of the organisation's key the entry opens with, once the key migration looked at it
   * (src/inspect/held-keys.ts): the message's own capsule's, or `capsule`'s when set.
   */
  readonly keyId?: string;
  /**
   * The message's capsule for this organisation re-encrypted by keyd to the newer version `keyId` (its text, as an
   * SSMAX-Capsule field carries it), made when the version the message arrived under was retired: a release opens
   * the message with it (the message itself is kept as it arrived: its seals and signatures cover its capsules).
   */
  readonly capsule?: string;
  /**
   * The gateway encrypted the message to the organisation's key only to hold it (it was sent or arrived in
   * plaintext): a release opens it back to that plaintext (src/gateway/inspection.ts releasedPlainSubmission).
   */
  readonly wrapped?: true;
  /** The message, encrypted to the organisation's key. */
  readonly message: Uint8Array;
}

/** A release refused by the entry's state (a release under way, or done): nothing is sent. */
export class ReleaseStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReleaseStateError';
  }
}

/** What putting an entry back as held found: `held` (done), `gone` (deleted meanwhile: not recreated), `other` (no longer this release's). */
export type HoldAgainResult = 'held' | 'gone' | 'other';

/** What ending a release found: `done` (removed, or held again for the refused recipients), `gone` (deleted meanwhile), `other`. */
export type FinishResult = 'done' | 'gone' | 'other';

/** What a list of held messages shows of each: everything but the message, and the bytes it takes (`bytes`). */
export type QuarantineSummary = Omit<QuarantineEntry, 'message'> & { readonly bytes: number };

/** One page of held messages, newest first; `next`: the `before` of the next page (absent on the last). */
export interface QuarantinePage {
  readonly entries: readonly QuarantineSummary[];
  readonly next?: string;
}

/** The caps of a store (docs/inspection.md, "Quarantine"): bytes held in all, bytes held for one envelope sender, messages held. */
export interface QuarantineCaps {
  readonly maxBytes: number;
  readonly maxBytesPerSender: number;
  readonly maxEntries: number;
}

/**
 * 1 GiB in all, 128 MiB per sender, 100,000 messages: a flood of held mail from one sender (or many) fills neither the
 * disk nor the page; the count bounds a flood of tiny messages too, whose LMDB pages and keys no byte count sees.
 */
export const QUARANTINE_CAPS: QuarantineCaps = { maxBytes: 1024 ** 3, maxBytesPerSender: 128 * 1024 ** 2, maxEntries: 100_000 };

/** How a store's answers name its caps: the settings that give them (the quarantine's, or the moderation queue's). */
export interface CapSettings {
  readonly maxBytes: string;
  readonly maxBytesPerSender: string;
  readonly maxEntries: string;
}

/** The quarantine's caps, as ssmax-inspect.ini names them. */
export const QUARANTINE_CAP_SETTINGS: CapSettings = {
  maxBytes: '[quarantine] max_bytes',
  maxBytesPerSender: '[quarantine] max_bytes_per_sender',
  maxEntries: '[quarantine] max_entries',
};

/** The moderation queue's caps, as ssmax.ini names them (docs/lists.md). */
export const MODERATION_CAP_SETTINGS: CapSettings = {
  maxBytes: '[lists] moderation_max_bytes',
  maxBytesPerSender: '[lists] moderation_max_bytes_per_sender',
  maxEntries: '[lists] moderation_max_entries',
};

/** How many entries a list shows when it is not told (the console's page, `ssmax quarantine list`, `ssmax list held`). */
export const DEFAULT_PAGE_SIZE = 100;
/** The most entries one page may show. */
export const MAX_PAGE_SIZE = 1000;

/** A store key: an id as `hold` makes them (their time part sorts them: 8 base-36 digits until 2059). */
const ID = /^q-[0-9a-z]+-[0-9a-f]{12}$/;

type Meta = Omit<QuarantineEntry, 'message'> & { bytes: number };

/**
 * How long a hold is remembered by its arrival (`hold`'s `arrival`): a sender's retry of a message already held —
 * its first attempt answered 4xx after the hold committed (a hook's time limit), or the 250 lost on the way — is
 * answered with the entry it has, not held again (and then released, and delivered, twice). As long as the
 * gateway's delivery record remembers what it handed over (DELIVERED_RECORD_SECONDS: 7 days), which covers a
 * sending MTA's retries.
 */
export const HELD_ARRIVAL_MS = DELIVERED_RECORD_SECONDS * 1000;
/** Expired arrivals forgotten per hold, oldest first: bounded work per hold, all of them in time. */
const FORGET_PER_HOLD = 16;

const TOTAL = 'total';
/** The usage key of the number of entries (absent in a store written before it was counted: counted once at open). */
const ENTRIES = 'entries';
const senderKey = (from: string) => `from:${from.toLowerCase()}`;

/**
 * The store. One LMDB environment with three databases: `meta` (id → the
 * entry without its message, and its size), `body` (id → the encrypted
 * message, read only by `get`), `usage` (bytes held in all and per sender,
 * changed in the same transaction as the entries). A list reads `meta`
 * only, a page at a time. An entry the previous version wrote (the whole
 * entry, message included, under its id in the main database) is moved
 * into this layout when the store opens.
 */
export class QuarantineStore {
  private readonly root: RootDatabase<QuarantineEntry, string>;
  private readonly meta: Database<Meta, string>;
  private readonly body: Database<Uint8Array, string>;
  private readonly usage: Database<number, string>;
  /** The arrival key of each hold (`hold`'s `arrival`) → its entry id and when it was held; `at:<time>:<key>` orders them. */
  private readonly arrivals: Database<{ readonly id: string; readonly time: number } | string, string>;
  private readonly caps: QuarantineCaps;

  /** `settings`: how the answers at a cap name it (the quarantine's settings by default; the moderation queue passes its own). */
  constructor(
    dir: string,
    caps: Partial<QuarantineCaps> = {},
    private readonly settings: CapSettings = QUARANTINE_CAP_SETTINGS,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.caps = { ...QUARANTINE_CAPS, ...caps };
    this.root = open<QuarantineEntry, string>({ path: dir, compression: false });
    this.meta = this.root.openDB<Meta, string>({ name: 'meta', compression: false });
    this.body = this.root.openDB<Uint8Array, string>({ name: 'body', encoding: 'binary', compression: false });
    this.usage = this.root.openDB<number, string>({ name: 'usage', compression: false });
    this.arrivals = this.root.openDB({ name: 'arrivals', compression: false });
    // a store written before its entries were counted: counted once, before the move of an older layout counts its own
    if (this.usage.get(ENTRIES) === undefined)
      this.root.transactionSync(() => {
        if (this.usage.get(ENTRIES) === undefined) this.usage.put(ENTRIES, this.meta.getCount());
      });
    this.migrate();
  }

  /** Moves the entries of the previous layout (whole entries in the main database), one at a time, each in its own transaction. */
  private migrate(): void {
    const legacy = [...this.root.getKeys({ start: 'q-', end: 'q.' })].filter((k) => typeof k === 'string' && ID.test(k));
    for (const id of legacy)
      this.root.transactionSync(() => {
        const e = this.root.get(id);
        if (!e) return;
        const { message, ...rest } = e;
        this.root.remove(id);
        if (this.meta.get(id)) return;
        this.add({ ...rest, bytes: sizeOf(rest, message) }, message);
      });
  }

  /** Writes an entry and counts its bytes (inside a write transaction). */
  private add(meta: Meta, message: Uint8Array): void {
    this.meta.put(meta.id, meta);
    this.body.put(meta.id, message);
    this.count(meta, meta.bytes);
    this.usage.put(ENTRIES, this.entries() + 1);
  }

  /** Removes an entry and its bytes (inside a write transaction). */
  private drop(meta: Meta): void {
    this.meta.remove(meta.id);
    this.body.remove(meta.id);
    this.count(meta, -meta.bytes);
    this.usage.put(ENTRIES, Math.max(0, this.entries() - 1));
  }

  /** The entries counted (inside a transaction, or a read). */
  private entries(): number {
    return this.usage.get(ENTRIES) ?? 0;
  }

  private count(meta: Pick<Meta, 'from'>, delta: number): void {
    for (const key of [TOTAL, senderKey(meta.from)]) {
      const n = Math.max(0, (this.usage.get(key) ?? 0) + delta);
      if (n === 0) this.usage.remove(key);
      else this.usage.put(key, n);
    }
  }

  /** Bytes held: in all, and by one envelope sender. */
  heldBytes(from?: string): number {
    return this.usage.get(from === undefined ? TOTAL : senderKey(from)) ?? 0;
  }

  /**
   * Whether `entries` (the holds of one message, e.g. its posts to several moderated lists) can ever all be
   * held: the final refusal (heldTooLarge, 552 5.3.4, naming the cap) when together they take more bytes than
   * the store may hold in all, or for one sender, whatever it holds now; nothing is written. Checked before the
   * first of them is written, so a message is not refused for good after one of its posts was held.
   */
  checkFits(entries: readonly Omit<QuarantineEntry, 'id' | 'state' | 'time' | 'release' | 'note'>[], now = Date.now()): void {
    const { caps, settings } = this;
    const bytes = new Map<string, number>();
    let total = 0;
    for (const { message, ...rest } of entries) {
      const n = sizeOf({ ...rest, id: entryId(now), time: now, state: 'held' }, message);
      total += n;
      bytes.set(rest.from.toLowerCase(), (bytes.get(rest.from.toLowerCase()) ?? 0) + n);
    }
    // in the words of `hold` for one entry
    const what = (n: number) =>
      entries.length === 1
        ? `the message takes ${n} bytes held (message and record)`
        : `its ${entries.length} entries take ${n} bytes held (messages and records)`;
    if (total > caps.maxBytes)
      throw new GatewayError('heldTooLarge', `${what(total)}, over ${settings.maxBytes}=${caps.maxBytes}, the most held in all`);
    const most = Math.max(0, ...bytes.values());
    if (most > caps.maxBytesPerSender)
      throw new GatewayError(
        'heldTooLarge',
        `${what(most)}, over ${settings.maxBytesPerSender}=${caps.maxBytesPerSender}, the most held for one sender`,
      );
  }

  /**
   * Holds a message. A message that alone takes more than the store may hold
   * in all, or for one sender, can never be held: a final GatewayError
   * (heldTooLarge, 552 5.3.4) naming the cap, so the sending server returns
   * it to its sender instead of retrying for ever. Over a cap that releases
   * and deletions free again (bytes in all, or by this envelope sender; the
   * number of messages) nothing is written and a temporary GatewayError
   * (quarantineFull, 451 4.3.1) naming the cap is thrown: the sending server
   * keeps the message and retries; it is neither lost nor delivered.
   */
  async hold(
    entry: Omit<QuarantineEntry, 'id' | 'state' | 'time' | 'release' | 'note'>,
    now = Date.now(),
    /**
     * The arrival's key across the sender's retries (the gateway's: its identity, direction and recipients hashed):
     * a hold of the same key within HELD_ARRIVAL_MS returns the id it was held under then, whatever became of that
     * entry (held, released, deleted), and writes nothing. In the transaction that writes the entry: two attempts
     * at once, in two processes, hold one.
     */
    arrival?: string,
  ): Promise<string> {
    const id = entryId(now);
    const { message, ...rest } = entry;
    const meta: Meta = { ...rest, id, time: now, state: 'held', bytes: 0 };
    meta.bytes = sizeOf(meta, message);
    const { caps, settings } = this;
    const alone = `the message takes ${meta.bytes} bytes held (message and record)`;
    if (meta.bytes > caps.maxBytes)
      throw new GatewayError('heldTooLarge', `${alone}, over ${settings.maxBytes}=${caps.maxBytes}, the most held in all`);
    if (meta.bytes > caps.maxBytesPerSender)
      throw new GatewayError(
        'heldTooLarge',
        `${alone}, over ${settings.maxBytesPerSender}=${caps.maxBytesPerSender}, the most held for one sender`,
      );
    let heldAs = id;
    const full = await this.root.transaction((): string | undefined => {
      if (arrival !== undefined) {
        this.forgetArrivals(now);
        const earlier = this.arrivals.get(`key:${arrival}`);
        if (typeof earlier === 'object' && now - earlier.time < HELD_ARRIVAL_MS) {
          heldAs = earlier.id;
          return undefined;
        }
      }
      const count = this.entries();
      if (count >= caps.maxEntries) return `the store holds ${count} messages, its cap (${settings.maxEntries}=${caps.maxEntries})`;
      const total = this.heldBytes() + meta.bytes;
      if (total > caps.maxBytes) return `the store would hold ${total} bytes, over its cap of ${caps.maxBytes} (${settings.maxBytes})`;
      const mine = this.heldBytes(meta.from) + meta.bytes;
      if (mine > caps.maxBytesPerSender)
        return `the sender's held messages would take ${mine} bytes, over the cap of ${caps.maxBytesPerSender} per sender (${settings.maxBytesPerSender})`;
      this.add(meta, message);
      if (arrival !== undefined) {
        this.arrivals.put(`key:${arrival}`, { id, time: now });
        this.arrivals.put(`at:${now.toString(36).padStart(9, '0')}:${arrival}`, arrival);
      }
      return undefined;
    });
    if (full !== undefined) throw new GatewayError('quarantineFull', full);
    return heldAs;
  }

  /** Forgets up to FORGET_PER_HOLD arrivals held longer than HELD_ARRIVAL_MS ago, oldest first (inside a write transaction). */
  private forgetArrivals(now: number): void {
    const oldest = [...this.arrivals.getRange({ start: 'at:', end: 'at;', limit: FORGET_PER_HOLD })];
    for (const { key, value } of oldest) {
      const time = parseInt(key.split(':')[1]!, 36);
      if (!(now - time >= HELD_ARRIVAL_MS)) return;
      this.arrivals.remove(key);
      const current = this.arrivals.get(`key:${String(value)}`);
      if (typeof current === 'object' && current.time === time) this.arrivals.remove(`key:${String(value)}`);
    }
  }

  /**
   * One page of held messages, newest first, read from the metadata alone
   * (never a message): at most `limit` (default DEFAULT_PAGE_SIZE, at most
   * MAX_PAGE_SIZE) older than the entry `before` (the newest when absent).
   */
  page(opts: { readonly before?: string; readonly limit?: number } = {}): QuarantinePage {
    const limit = Math.max(1, Math.min(MAX_PAGE_SIZE, Math.floor(opts.limit ?? DEFAULT_PAGE_SIZE)));
    const entries: QuarantineSummary[] = [];
    let more = false;
    for (const { key, value } of this.meta.getRange({ reverse: true, ...(opts.before ? { start: opts.before } : {}) })) {
      if (key === opts.before) continue;
      if (entries.length === limit) {
        more = true;
        break;
      }
      entries.push(value);
    }
    return more ? { entries, next: entries[entries.length - 1]!.id } : { entries };
  }

  /** How many messages are held. */
  heldCount(): number {
    return this.meta.getCount();
  }

  /** The entry with its message (one body read). */
  get(id: string): QuarantineEntry | undefined {
    const m = this.meta.get(id);
    if (!m) return undefined;
    const message = this.body.get(id);
    if (!message) return undefined;
    const { bytes: _b, ...rest } = m;
    return { ...rest, message };
  }

  /** The entry without its message (no body read). */
  summary(id: string): QuarantineSummary | undefined {
    return this.meta.get(id);
  }

  /**
   * Starts a release: held → releasing, checked and written in one LMDB write
   * transaction (LMDB serialises those across processes, so of a CLI and the
   * console releasing at once exactly one wins). An entry still `releasing`
   * after its release's lease ended (that release died before the gateway
   * took the message) is taken as held: its token is replaced, so the dead
   * release's message, should it still arrive, is refused by the gateway.
   * The new release holds the entry until `now + leaseMs`. Resolves with the
   * entry (carrying its release token) for re-injection; undefined when there
   * is no such entry; rejects with a ReleaseStateError when it is not held:
   * a release under way, or `released` (the gateway took it: never sent
   * again).
   */
  async release(id: string, now = Date.now(), leaseMs = DEFAULT_RELEASE_LEASE_MS): Promise<QuarantineEntry | undefined> {
    const token = randomBytes(12).toString('hex');
    // nothing is thrown inside the transaction (lmdb-js commits what a throwing callback wrote): the refusal is returned, then thrown
    const r = await this.root.transaction((): Meta | { refused: string } | undefined => {
      const e = this.meta.get(id);
      if (!e) return undefined;
      const since = new Date(e.release?.since ?? e.time).toISOString();
      const until = new Date(leaseEnd(e) ?? now).toISOString();
      if (e.state === 'releasing' && !releaseInterrupted(e, now))
        return { refused: `a release of ${id} is under way (since ${since}, holding it until ${until})` };
      if (releaseRecordGone(e, now))
        return {
          refused: `${id} was already released: the gateway took it at a release started ${since}, whose releaser never finished, and that was longer ago than the gateway keeps its record of the copies it handed over, so it is not sent again (it may have gone: ask its recipients, then delete the entry)`,
        };
      if (releaseTaken(e, now))
        return {
          refused: `${id} was already released: the gateway took it at a release started ${since}, which holds it until ${until} to finish; if that release does not finish by then, ${id} can be released again (a copy the gateway already handed over is not handed over again)`,
        };
      const releasing: Meta = { ...e, state: 'releasing', release: { token, since: now, until: now + leaseMs } };
      this.meta.put(id, releasing);
      return releasing;
    });
    if (r && 'refused' in r) throw new ReleaseStateError(r.refused);
    if (!r) return undefined;
    const message = this.body.get(id);
    if (!message) return undefined; // deleted meanwhile
    const { bytes: _b, ...rest } = r;
    return { ...rest, message };
  }

  /** The entry of `released`'s release as the store has it now: undefined when deleted, 'other' when no longer that release's. */
  private ofRelease(released: QuarantineEntry): Meta | 'other' | undefined {
    const e = this.meta.get(released.id);
    if (!e) return undefined;
    const mine = e.state !== 'held' && released.release !== undefined && sameToken(e.release?.token, released.release.token);
    return mine ? e : 'other';
  }

  /**
   * Puts an entry back as held: its re-injection failed, the gateway did not
   * take it (src/mail/release.ts). Only an entry that still exists and is
   * still in this release (releasing, or released when the gateway consumed
   * the mark and then did not take the message): one deleted meanwhile is
   * not recreated. In one write transaction.
   */
  async holdAgain(released: QuarantineEntry): Promise<HoldAgainResult> {
    return this.root.transaction(() => {
      const e = this.ofRelease(released);
      if (e === undefined) return 'gone';
      if (e === 'other') return 'other';
      const { release: _r, ...rest } = e;
      this.meta.put(e.id, { ...rest, state: 'held' });
      return 'held';
    });
  }

  /**
   * Ends a release the gateway answered 250: the entry is removed, or, when
   * the gateway refused some recipients, held again for those only, with
   * `note` saying what happened. In one write transaction.
   */
  async finishRelease(released: QuarantineEntry, refused: readonly string[], note: string): Promise<FinishResult> {
    return this.root.transaction(() => {
      const e = this.ofRelease(released);
      if (e === undefined) return 'gone';
      if (e === 'other') return 'other';
      if (refused.length === 0) this.drop(e);
      else {
        const { release: _r, ...rest } = e;
        this.meta.put(e.id, { ...rest, state: 'held', rcpts: [...refused], note });
      }
      return 'done';
    });
  }

  /**
   * True once for an entry being released by the release `token` names
   * (releasing with that token → released): the gateway lets the message
   * pass its inspection decision. False for anything else: no such entry, not
   * releasing, or another release's token (a release taken over after its
   * lease ended: its late message must not pass as well). The lease starts
   * again, as long as the release asked for: its releaser, alive, removes or
   * holds the entry at the gateway's answer; dead, the entry may be released
   * again once it ended (releaseInterrupted).
   */
  async consumeRelease(id: string, token: string, now = Date.now()): Promise<boolean> {
    return this.root.transaction(() => {
      const e = this.meta.get(id);
      if (!e || e.state !== 'releasing' || !e.release || !sameToken(e.release.token, token)) return false;
      const length = (leaseEnd(e) ?? now) - e.release.since;
      this.meta.put(id, { ...e, state: 'released', release: { ...e.release, until: now + Math.max(length, 0), taken: now } });
      return true;
    });
  }

  /**
   * Whether `id` is in the release `token` names (releasing, with that token), read only: the gateway's check
   * before it spends a key operation and a decryption on a released message (src/gateway/inspection.ts);
   * `consumeRelease` still decides, once.
   */
  releaseUnderWay(id: string, token: string): boolean {
    const e = this.meta.get(id);
    return e !== undefined && e.state === 'releasing' && sameToken(e.release?.token, token);
  }

  /**
   * When the entry of the release `token` names was held (ms since the epoch; its arrival), read only; undefined
   * when `id` is not in that release. The gateway judges a released arrival's seals at this time, not now
   * (src/gateway/inspection.ts releaseTime).
   */
  releaseHeldAt(id: string, token: string): number | undefined {
    return this.releaseUnderWay(id, token) ? this.meta.get(id)!.time : undefined;
  }

  /**
   * The capsule the release `token` names opens its message with, read only: the entry's re-encrypted capsule
   * (`capsule`, src/inspect/held-keys.ts), or undefined when `id` is not in that release or the message's own
   * capsule still serves. The gateway uses it instead of the message's own (src/gateway/inspection.ts heldCapsules).
   */
  releaseCapsule(id: string, token: string): string | undefined {
    return this.releaseUnderWay(id, token) ? this.meta.get(id)?.capsule : undefined;
  }

  /**
   * The held message of a submission the gateway encrypted only to hold it (`wrapped`, outbound), as the store keeps
   * it, with its re-encrypted capsule when the key migration made one; read only; undefined when `id` is not in the
   * release `token` names, or is no such entry. The gateway opens this, never the bytes a release sent: a marker of
   * one entry must not open another message encrypted to the organisation.
   */
  releaseWrapped(id: string, token: string): { readonly message: Uint8Array; readonly capsule?: string } | undefined {
    // the record first (an SSMAX client's release, the usual one, reads no body)
    const m = this.meta.get(id);
    if (!m || m.wrapped !== true || m.direction !== 'outbound' || !this.releaseUnderWay(id, token)) return undefined;
    const message = this.body.get(id);
    return message ? { message, ...(m.capsule !== undefined ? { capsule: m.capsule } : {}) } : undefined;
  }

  /** The ids of every entry, oldest first, read a page at a time (the key migration's walk: an entry written meanwhile may be met or not). */
  *ids(): Generator<string> {
    let start: string | undefined;
    for (;;) {
      const keys = [...this.meta.getKeys({ ...(start !== undefined ? { start } : {}), limit: MAX_PAGE_SIZE + 1 })];
      for (const k of keys) if (k !== start) yield k;
      if (keys.length <= MAX_PAGE_SIZE) return;
      start = keys[keys.length - 1];
    }
  }

  /**
   * Records which key version the entry opens with (`keyId`) and, when it is not the message's own capsule's, the
   * capsule re-encrypted to it, in one write transaction: only while the entry still opens as `was` says (its
   * `capsule` then; `null`: the message's own capsule), so a run that read it before another moved it does not
   * write an older capsule back. The entry keeps its state and release: a release under way reads either capsule,
   * and each opens the message. True when written; false when the entry is gone or was changed meanwhile.
   */
  async setKey(id: string, was: string | null, keyId: string, capsule?: string): Promise<boolean> {
    return this.root.transaction(() => {
      const e = this.meta.get(id);
      if (!e || (e.capsule ?? null) !== was) return false;
      const { capsule: _c, ...rest } = e;
      this.meta.put(id, { ...rest, keyId, ...(capsule !== undefined ? { capsule } : {}) });
      return true;
    });
  }

  /**
   * A consistent copy of the store into `outDir` (absent or empty) while the gateway, the inspector or the
   * console go on writing it: LMDB's own copy (a plain copy of data.mdb under writers can take pages of different
   * transactions, a store that does not open). `outDir/data.mdb`, mode 0600 in a folder of mode 0700 (the messages
   * stay encrypted to the organisation's key); the copy is then opened on its own and its entries counted.
   */
  async backup(outDir: string): Promise<{ readonly entries: number; readonly bytes: number }> {
    if (!emptyOrAbsent(outDir))
      throw Object.assign(new Error(`Backup folder "${outDir}" is not empty; give a new one`), { code: 'EEXIST' });
    await lmdbBackup(this.root, outDir);
    // the copy, opened on its own (in a scratch folder: opening makes a lock file), must read
    const scratch = mkdtempSync(join(outDir, 'check-'));
    try {
      copyFileSync(join(outDir, 'data.mdb'), join(scratch, 'data.mdb'));
      const copy = new QuarantineStore(scratch);
      try {
        return { entries: copy.heldCount(), bytes: copy.heldBytes() };
      } finally {
        await copy.close();
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  async delete(id: string): Promise<boolean> {
    return this.root.transaction(() => {
      const e = this.meta.get(id);
      if (e === undefined) return false;
      this.drop(e);
      return true;
    });
  }

  async close(): Promise<void> {
    await closeLmdb(this.root);
  }
}

/** A new entry's id: its time and 12 random hex digits (every id of one time is as long: `checkFits` counts on it). */
function entryId(now: number): string {
  return `q-${now.toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** The bytes an entry takes: its message and its record. */
function sizeOf(meta: Omit<Meta, 'bytes'> | Meta, message: Uint8Array): number {
  return message.length + Buffer.byteLength(JSON.stringify({ ...meta, bytes: 0 }));
}
