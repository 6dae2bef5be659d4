/**
 * The audit log: one record per operation (who, what, key version, target,
 * result), chained by a keyed MAC — mac_i = HMAC(auditKey, mac_{i-1} ||
 * canonical(record_i)) — so any change, insertion or deletion inside the log
 * is detectable, and only a holder of the master key could forge a chain.
 * Values derived from message content (capsule points, message ids) appear
 * only as a keyed MAC digest, never in clear.
 *
 * The head (the last sequence number and MAC) is sealed: seal =
 * HMAC(auditKey, "head" || seq || mac), written with every append. Deleting
 * the newest records and pointing the head at an earlier one needs a new
 * seal, so without the master key it is detected (`verify`), in the store
 * and in a backup (whose manifest carries the head too, under its own MAC:
 * backup.ts). What is not detected locally: a truncation by someone holding
 * the master key, or one that puts back a whole earlier head with its seal
 * (copied from an older state of the store), or one back past every record
 * this version wrote (below) — compare the head's sequence number, which keyd
 * exports (metric ssmax_keyd_audit_records), with an external record.
 *
 * Records this version writes are marked `form: 2` and their MAC is taken
 * over "form2" || mac_{i-1} || canonical(record_i), so the mark cannot be
 * removed. A head after such a record must be sealed; a head after a record
 * of an earlier version may be unsealed (a store not written since the
 * upgrade), and the next append seals it.
 *
 * Each append links to the head read inside its own LMDB write transaction,
 * together with the operation's state change, and an operation answers only
 * once that transaction committed: if a write fails (a full disk), the
 * operation is refused and nothing of it is kept, so no operation proceeds
 * without its record (fail closed). Each later operation tries its own write
 * again; the first that commits ends the failure (`failing`), so keyd serves
 * again as soon as the disk has room, without a restart.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { KeydError } from './errors';
import type { KeydStore } from './store';

export type AuditResult = 'ok' | 'refused' | 'error';

export interface AuditRecord {
  readonly seq: number;
  readonly time: string;
  /** Who: the client certificate's subject and serial, or "keyd" for its own schedule. */
  readonly actor: string;
  readonly role: string;
  readonly op: string;
  readonly keyId?: string;
  readonly target?: string;
  readonly result: AuditResult;
  readonly reason?: string;
  /** HMAC of content-derived values (hex), for correlation without disclosure. */
  readonly digest?: string;
}

export interface AuditEntry {
  readonly record: AuditRecord;
  readonly prev: string;
  readonly mac: string;
  /** 2: written by a version that seals the head (the MAC covers this: macOf). Absent: an earlier version's. */
  readonly form?: 2;
}

const GENESIS = '0'.repeat(64);
const LONE_SURROGATE = /\p{Cs}/u;
const HEAD_KEY = 'audit-head';

export type AuditInput = Omit<AuditRecord, 'seq' | 'time'>;

function canonical(record: AuditRecord): string {
  const keys = Object.keys(record).sort() as (keyof AuditRecord)[];
  return JSON.stringify(keys.filter((k) => record[k] !== undefined).map((k) => [k, record[k]]));
}

/** `unsealed`: set only for a head after a record of an earlier version, not written since (sealed at the next append). */
export type AuditVerdict = { ok: true; count: number; unsealed?: true } | { ok: false; seq: number; reason: string };

/** The head of the chain: the last sequence number, its MAC, and the seal over both (absent when written by an earlier version). */
export interface AuditHead {
  readonly seq: number;
  readonly mac: string;
  readonly seal?: string;
}

/** Records checked per turn of the event loop by `verifyInTurns`: a few ms of work (50,000 records took 1-1.5 s on the test machine, the longest pause between turns ~30 ms). */
const VERIFY_CHUNK = 250;

export class AuditLog {
  /** Why the last write failed, until a later one commits (keyd's /health/ready names it). */
  private broken: string | null = null;
  /** The chain check under way for keyd's API: concurrent requests share it. */
  private verifying: Promise<AuditVerdict> | undefined;

  /** Why the last audit write failed, while no later one has committed; undefined when writes succeed. */
  get failing(): string | undefined {
    return this.broken ?? undefined;
  }

  constructor(
    private readonly store: KeydStore,
    private readonly key: Buffer,
  ) {}

  /** HMAC digest of content-derived values (e.g. blinded points). */
  digest(...values: (Uint8Array | string)[]): string {
    const h = createHmac('sha256', this.key).update('digest');
    for (const v of values) h.update(typeof v === 'string' ? Buffer.from(v) : v).update('\0');
    return h.digest('hex').slice(0, 32);
  }

  /** The seal of a head: HMAC(auditKey, "head" || seq || mac). */
  sealOf(seq: number, mac: string): string {
    return createHmac('sha256', this.key).update(`head\0${seq}\0${mac}`).digest('hex');
  }

  /** Whether `head` carries a valid seal. */
  sealed(head: AuditHead): boolean {
    if (typeof head.seal !== 'string' || !/^[0-9a-f]{64}$/.test(head.seal)) return false;
    return timingSafeEqual(Buffer.from(this.sealOf(head.seq, head.mac), 'hex'), Buffer.from(head.seal, 'hex'));
  }

  /** The head as stored (sequence number 0 and the genesis MAC for an empty log). */
  head(): AuditHead {
    return (this.store.meta.get(HEAD_KEY) as AuditHead | undefined) ?? { seq: 0, mac: GENESIS };
  }

  private macOf(prev: string, record: AuditRecord, form: 2 | undefined): string {
    return createHmac('sha256', this.key)
      .update(form === 2 ? `form2\0${prev}` : prev)
      .update(Buffer.from(canonical(record), 'utf8'))
      .digest('hex');
  }

  /**
   * Appends a record and runs `change` (state changes) in the same LMDB
   * transaction; resolves once both are committed. The sequence number and
   * the link are read inside the transaction, so several writers (keyd and
   * a CLI on the same store) still build one chain. Throws `audit-failed` if
   * the log cannot be written (then `failing` says why), and tries again at
   * the next append: the first that commits ends the failure.
   */
  async append(input: AuditInput, now: Date, change?: () => void): Promise<AuditRecord> {
    return (await this.appendMany([input], now, change))[0]!;
  }

  /**
   * Commits an operation: its record with `change`, as `append`. When the
   * change itself refuses (a KeydError such as `superseded`, as-read.ts:
   * nothing was written), the operation's record is written again as that
   * refusal, and the refusal thrown: every answer has its record.
   */
  async commit(input: AuditInput, now: Date, change: () => void): Promise<AuditRecord> {
    try {
      return await this.append(input, now, change);
    } catch (err) {
      if (!(err instanceof KeydError) || err.code === 'audit-failed') throw err;
      await this.append({ ...input, result: 'refused', reason: `${err.code}: ${err.message}`.slice(0, 300) }, now);
      throw err;
    }
  }

  /**
   * Appends several records, in order, and runs `change` in one LMDB
   * transaction (one durable commit): a batch of operations (batch.ts) is
   * audited together, all records or none. Same guarantees as `append`.
   */
  async appendMany(inputs: readonly AuditInput[], now: Date, change?: () => void): Promise<AuditRecord[]> {
    // The MAC is over the UTF-8 of the record, which is what LMDB stores; a lone surrogate would be
    // stored as U+FFFD and break the chain for good. Refused before anything is written (400).
    for (const input of inputs) {
      for (const value of Object.values(input)) {
        if (typeof value === 'string' && LONE_SURROGATE.test(value))
          throw new KeydError('bad-request', 'Cannot audit a string that is not well-formed Unicode; nothing was done');
      }
    }
    let records: AuditRecord[] | undefined;
    let refused: KeydError | undefined;
    try {
      // A child transaction: batched with concurrent writes, yet aborted on its
      // own if anything in it throws (a plain batched transaction would commit
      // the puts made before the throw).
      await this.store.root.childTransaction(() => {
        const head = this.store.meta.get(HEAD_KEY) as AuditHead | undefined;
        // a head after a record of this version without its seal: the newest records were deleted (never extended)
        if (head !== undefined && !this.sealed(head) && this.store.audit.get(head.seq)?.form === 2)
          throw new Error(`the audit log's head (record ${head.seq}) is not sealed: records deleted or head altered`);
        let prev = head?.mac ?? GENESIS;
        let seq = head?.seq ?? 0;
        const written: AuditRecord[] = [];
        for (const input of inputs) {
          const r: AuditRecord = { ...input, seq: ++seq, time: now.toISOString() };
          const mac = this.macOf(prev, r, 2);
          this.store.audit.put(r.seq, { record: r, prev, mac, form: 2 });
          prev = mac;
          written.push(r);
        }
        this.store.meta.put(HEAD_KEY, { seq, mac: prev, seal: this.sealOf(seq, prev) } satisfies AuditHead);
        try {
          change?.();
        } catch (err) {
          // A refusal of the change itself (e.g. superseded): the transaction is aborted, the log stays usable.
          if (err instanceof KeydError) refused = err;
          throw err;
        }
        records = written;
      });
    } catch (err) {
      if (refused) throw refused;
      this.broken = (err as Error).message;
      throw new KeydError('audit-failed', `Cannot write the audit record: ${(err as Error).message}; refusing the operation`);
    }
    if (!records || records.length !== inputs.length)
      throw new KeydError('audit-failed', 'Cannot write the audit record: transaction not committed; refusing the operation');
    this.broken = null;
    return records;
  }

  /** Checks the whole chain at once (the CLI, a backup: a process of their own); `ok` with the count and the head, or the first bad sequence number and why. */
  verify(): AuditVerdict {
    const walk = this.walk();
    for (let step = walk.next(); ; step = walk.next()) if (step.done) return step.value;
  }

  /**
   * The same check for keyd's API (the console's "Verify the chain"): VERIFY_CHUNK records per turn of the
   * event loop, so a long log never stops keyd from answering meanwhile; records appended during the check are
   * checked too. Concurrent calls share one check.
   */
  verifyInTurns(): Promise<AuditVerdict> {
    if (!this.verifying) {
      const checking = this.walkInTurns();
      this.verifying = checking;
      const done = (): void => {
        if (this.verifying === checking) this.verifying = undefined;
      };
      checking.then(done, done);
    }
    return this.verifying;
  }

  private async walkInTurns(): Promise<AuditVerdict> {
    const walk = this.walk();
    for (;;) {
      const step = walk.next();
      if (step.done) return step.value;
      await new Promise((r) => setImmediate(r));
    }
  }

  /** The chain check, yielding after every VERIFY_CHUNK records; each chunk is its own read, the head read when no record follows. */
  private *walk(): Generator<void, AuditVerdict> {
    let prev = GENESIS;
    let seq = 0;
    let lastForm: 2 | undefined;
    for (;;) {
      let n = 0;
      for (const { key, value } of this.store.audit.getRange({ start: seq + 1, limit: VERIFY_CHUNK })) {
        n++;
        seq++;
        if (key !== seq) return { ok: false, seq, reason: `record ${seq} is missing (found ${key} next)` };
        if (value.record.seq !== seq) return { ok: false, seq, reason: 'sequence number inside the record differs from its position' };
        if (value.prev !== prev) return { ok: false, seq, reason: 'link to the previous record broken' };
        if (value.form !== undefined && value.form !== 2) return { ok: false, seq, reason: 'unknown record form' };
        const mac = this.macOf(prev, value.record, value.form);
        if (!timingSafeEqual(Buffer.from(mac, 'hex'), Buffer.from(value.mac.padEnd(64, '0').slice(0, 64), 'hex')))
          return { ok: false, seq, reason: 'record altered (MAC mismatch)' };
        prev = value.mac;
        lastForm = value.form;
      }
      if (n === VERIFY_CHUNK) {
        yield;
        continue;
      }
      // no record after `seq` in this read: the head must end the chain here (a later one means records were appended meanwhile)
      const head = this.store.meta.get(HEAD_KEY) as AuditHead | undefined;
      if ((head?.seq ?? 0) > seq && this.store.audit.get(seq + 1) !== undefined) continue;
      if ((head?.seq ?? 0) !== seq || (head?.mac ?? GENESIS) !== prev)
        return {
          ok: false,
          seq: seq + 1,
          reason: `the log ends at ${seq} but its head says ${head?.seq ?? 0}: records deleted or head altered`,
        };
      const sealed = head === undefined || this.sealed(head);
      if (!sealed && (head.seal !== undefined || lastForm === 2))
        return {
          ok: false,
          seq: seq + 1,
          reason: `the head's seal ${head.seal === undefined ? 'is missing' : 'does not verify'}: records deleted after ${seq} or head altered`,
        };
      return sealed ? { ok: true, count: seq } : { ok: true, count: seq, unsealed: true };
    }
  }

  /** Up to `n` records ending with sequence number `last` (0: the newest), newest first (the console's audit page). */
  page(last: number, n: number): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (const { value } of this.store.audit.getRange({ reverse: true, limit: n, ...(last > 0 ? { start: last } : {}) }))
      out.push(value.record);
    return out;
  }

  /** The last `n` records, newest last. */
  tail(n: number): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (const { value } of this.store.audit.getRange({ reverse: true, limit: n })) out.unshift(value.record);
    return out;
  }
}
