/**
 * The quarantine (SSMAX §3.2): messages a DLP or AV rule holds back, kept
 * ENCRYPTED (to the organisation's key: as received, or encrypted by the
 * gateway first for a plaintext submission) in LMDB beside the gateway. An
 * operator lists, releases or deletes them (`ssmax quarantine`). A release
 * re-injects the message into the gateway carrying
 *   SSMAX-Quarantine-Release: <id>
 * which the gateway honours once, and only for an entry this store marked
 * released (the store is local: the header alone proves nothing).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { type RootDatabase, open } from 'lmdb';

export const RELEASE_HEADER = 'SSMAX-Quarantine-Release';

export interface QuarantineEntry {
  readonly id: string;
  readonly time: number;
  readonly direction: 'outbound' | 'inbound';
  readonly from: string;
  readonly rcpts: readonly string[];
  readonly rule: string;
  readonly state: 'held' | 'released';
  /** The message, encrypted to the organisation's key. */
  readonly message: Uint8Array;
}

export class QuarantineStore {
  private readonly db: RootDatabase<QuarantineEntry, string>;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.db = open<QuarantineEntry, string>({ path: dir, compression: false });
  }

  async hold(entry: Omit<QuarantineEntry, 'id' | 'state' | 'time'>, now = Date.now()): Promise<string> {
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

  /** Marks an entry released and returns it for re-injection; undefined if unknown. */
  async release(id: string): Promise<QuarantineEntry | undefined> {
    const e = this.db.get(id);
    if (!e) return undefined;
    const released = { ...e, state: 'released' as const };
    await this.db.put(id, released);
    return released;
  }

  /**
   * Puts `entry` back as held: its re-injection failed, the gateway did not
   * take it (src/mail/release.ts). In one write transaction, so a release the
   * gateway consumed meanwhile is not lost: the message is held again.
   */
  async holdAgain(entry: QuarantineEntry): Promise<void> {
    await this.db.transaction(() => {
      const e = this.db.get(entry.id);
      if (!e || e.state === 'released') this.db.put(entry.id, { ...(e ?? entry), state: 'held' });
    });
  }

  /** True once for a released entry: the gateway lets it pass its inspection decision, then forgets it. */
  async consumeRelease(id: string): Promise<boolean> {
    const e = this.db.get(id);
    if (!e || e.state !== 'released') return false;
    return this.db
      .childTransaction(() => {
        this.db.remove(id);
      })
      .then(() => true);
  }

  async delete(id: string): Promise<boolean> {
    if (!this.db.get(id)) return false;
    await this.db.remove(id);
    return true;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
