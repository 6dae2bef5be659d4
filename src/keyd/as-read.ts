/**
 * How keyd changes its state when a decision was taken on what it read. An
 * operation's body reads the store and decides (refuses, or builds the new
 * record); its write is committed later, in the audit's LMDB write
 * transaction (audit.ts), and another change can commit in between. So every
 * read a decision rests on is a `Read`: the write runs through `ifUnchanged`,
 * which makes each of those reads again inside the write transaction and
 * writes only when each gives what the decision saw. Otherwise it throws
 * KeydError `superseded` (409): another change committed first, nothing is
 * written, the refusal is audited (AuditLog.commit), and a retry decides
 * again on the state as it now is. A read that found nothing (an address or a
 * code not yet taken) is checked the same way, so uniqueness is decided in the
 * transaction that inserts.
 */
import { isDeepStrictEqual } from 'node:util';
import { KeydError } from './errors';

/** What a decision read: its value, and how to read it again. */
export interface Read<T> {
  readonly value: T;
  /** Names the state in the 409 answer (e.g. `user "alice@a.example"`). */
  readonly what: string;
  readonly again: () => T;
}

/** Reads `get` now, for a decision; `again` reads the same inside the write transaction. */
export function read<T>(what: string, get: () => T): Read<T> {
  return { value: get(), what, again: get };
}

/** Throws `superseded` when `r` reads differently now (call inside the write transaction). */
export function checkUnchanged(r: Read<unknown>): void {
  if (!isDeepStrictEqual(r.again(), r.value))
    throw new KeydError(
      'superseded',
      `The ${r.what} changed while this request was being decided (another change committed first); nothing was done: read it again and retry`,
    );
}

/** The state change to commit with the audit record: `write`, only when every read in `reads` is as the decision saw it. */
export function ifUnchanged(reads: readonly Read<unknown>[], write: () => void): () => void {
  return () => {
    for (const r of reads) checkUnchanged(r);
    write();
  };
}
