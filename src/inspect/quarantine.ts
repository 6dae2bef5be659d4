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
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { secretsEqual } from '../crypto/compare';
import { type RootDatabase, open } from 'lmdb';

export const RELEASE_HEADER = 'SSMAX-Quarantine-Release';

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
 * True for an entry whose release did not finish and may be released again: left `releasing` by a release whose
 * lease ended (its process died, or never came back), or left `released` by a release of an earlier version, which
 * marked an entry so before sending it (that version's gateway removed the entries it let pass: one still there was
 * never sent; it has no `release` of its own, which every release since records).
 */
export function releaseInterrupted(entry: Pick<QuarantineEntry, 'state' | 'release'>, now = Date.now()): boolean {
  if (entry.state === 'released') return entry.release === undefined;
  return entry.state === 'releasing' && (leaseEnd(entry) ?? 0) <= now;
}

/** True for an entry the gateway let pass at its release (`released` by this version): never sent again. */
export function releasedForGood(entry: Pick<QuarantineEntry, 'state' | 'release'>): boolean {
  return entry.state === 'released' && entry.release !== undefined;
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
 * answered 250, or puts it back as held when the gateway did not take it.
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
  /** While releasing or released: which release (a random token), since when, and until when it holds the entry (its lease). */
  readonly release?: { readonly token: string; readonly since: number; readonly until?: number };
  /** What an earlier release left (the recipients the gateway refused, and its answer). */
  readonly note?: string;
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

export class QuarantineStore {
  private readonly db: RootDatabase<QuarantineEntry, string>;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.db = open<QuarantineEntry, string>({ path: dir, compression: false });
  }

  async hold(entry: Omit<QuarantineEntry, 'id' | 'state' | 'time' | 'release' | 'note'>, now = Date.now()): Promise<string> {
    const id = `q-${now.toString(36)}-${randomBytes(6).toString('hex')}`;
    await this.db.put(id, { ...entry, id, time: now, state: 'held' });
    return id;
  }

  list(): Omit<QuarantineEntry, 'message'>[] {
    return [...this.db.getRange({})].map(({ value }) => {
      const { message: _m, ...rest } = value;
      return rest;
    });
  }

  get(id: string): QuarantineEntry | undefined {
    return this.db.get(id);
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
    const r = await this.db.transaction((): QuarantineEntry | { refused: string } | undefined => {
      const e = this.db.get(id);
      if (!e) return undefined;
      const since = new Date(e.release?.since ?? e.time).toISOString();
      if (e.state === 'releasing' && !releaseInterrupted(e, now))
        return { refused: `a release of ${id} is under way (since ${since}, holding it until ${new Date(leaseEnd(e)!).toISOString()})` };
      if (releasedForGood(e))
        return {
          refused: `${id} was already released: the gateway took it at a release started ${since}, so it is not sent again; the message went on, delete the entry`,
        };
      const releasing: QuarantineEntry = { ...e, state: 'releasing', release: { token, since: now, until: now + leaseMs } };
      this.db.put(id, releasing);
      return releasing;
    });
    if (r && 'refused' in r) throw new ReleaseStateError(r.refused);
    return r;
  }

  /** The entry of `released`'s release as the store has it now: undefined when deleted, 'other' when no longer that release's. */
  private ofRelease(released: QuarantineEntry): QuarantineEntry | 'other' | undefined {
    const e = this.db.get(released.id);
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
    return this.db.transaction(() => {
      const e = this.ofRelease(released);
      if (e === undefined) return 'gone';
      if (e === 'other') return 'other';
      const { release: _r, ...rest } = e;
      this.db.put(e.id, { ...rest, state: 'held' });
      return 'held';
    });
  }

  /**
   * Ends a release the gateway answered 250: the entry is removed, or, when
   * the gateway refused some recipients, held again for those only, with
   * `note` saying what happened. In one write transaction.
   */
  async finishRelease(released: QuarantineEntry, refused: readonly string[], note: string): Promise<FinishResult> {
    return this.db.transaction(() => {
      const e = this.ofRelease(released);
      if (e === undefined) return 'gone';
      if (e === 'other') return 'other';
      if (refused.length === 0) this.db.remove(e.id);
      else {
        const { release: _r, ...rest } = e;
        this.db.put(e.id, { ...rest, state: 'held', rcpts: [...refused], note });
      }
      return 'done';
    });
  }

  /**
   * True once for an entry being released by the release `token` names
   * (releasing with that token → released): the gateway lets the message
   * pass its inspection decision. False for anything else: no such entry, not
   * releasing, or another release's token (a release taken over after its
   * lease ended: its late message must not pass as well).
   */
  async consumeRelease(id: string, token: string): Promise<boolean> {
    return this.db.transaction(() => {
      const e = this.db.get(id);
      if (!e || e.state !== 'releasing' || !sameToken(e.release?.token, token)) return false;
      this.db.put(id, { ...e, state: 'released' });
      return true;
    });
  }

  /**
   * Whether `id` is in the release `token` names (releasing, with that token), read only: the gateway's check
   * before it spends a key operation and a decryption on a released message (src/gateway/inspection.ts);
   * `consumeRelease` still decides, once.
   */
  releaseUnderWay(id: string, token: string): boolean {
    const e = this.db.get(id);
    return e !== undefined && e.state === 'releasing' && sameToken(e.release?.token, token);
  }

  async delete(id: string): Promise<boolean> {
    return this.db.transaction(() => {
      if (this.db.get(id) === undefined) return false;
      this.db.remove(id);
      return true;
    });
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
