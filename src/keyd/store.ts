/**
 * keyd's state in LMDB on disk: org key versions (private keys wrapped),
 * tracking keys (wrapped), the user registry (identity references wrapped)
 * with its index by code,
 * mailing lists, the audit log, and metadata. LMDB commits are atomic and
 * survive a killed process; every operation writes its audit record in the
 * same transaction as its state change.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, type RootDatabase, open } from 'lmdb';
import { closeLmdb } from '../fs/lmdb-close';
import type { AuditEntry } from './audit';
import type { OrgKeyRecord } from './org-keys';
import type { ListRecord, UserRecord } from './registry';
import type { TrackingKeyRecord } from './tracking';

/** LMDB's data file in a store folder. */
export const STORE_FILE = 'data.mdb';

/** No keyd store where one is required; `code` ENOENT, so every command exits 66 (EX_NOINPUT). */
export class StoreMissingError extends Error {
  readonly code = 'ENOENT';
  constructor(readonly dir: string) {
    super(
      `No keyd store in "${dir}" (no ${STORE_FILE}): check data_dir, or restore a backup (ssmax keyd restore); only \`ssmax keyd run\` creates a new store`,
    );
    this.name = 'StoreMissingError';
  }
}

/** Meta key set once the code index (user-codes) holds every user. */
const CODE_INDEX_KEY = 'user-codes-indexed';

export class KeydStore {
  private constructor(
    readonly root: RootDatabase,
    readonly orgKeys: Database<OrgKeyRecord, number>,
    readonly trackingKeys: Database<TrackingKeyRecord, number>,
    readonly users: Database<UserRecord, string>,
    readonly lists: Database<ListRecord, string>,
    /** Registered users by code (code → address): codes are unique, and a tracking token names the code alone. */
    readonly codes: Database<string, string>,
    readonly audit: Database<AuditEntry, number>,
    readonly meta: Database<unknown, string>,
  ) {}

  /**
   * Opens the store in `dir`. Only `create: true` (keyd itself, at its start) makes a new one; every other
   * caller (the offline tools: audit verify, rotate, backup) requires an existing store and is refused with
   * StoreMissingError (code ENOENT: exit 66) creating nothing, so a mistyped data_dir or a fresh host is not
   * taken for an empty store (a false all-clear, a fresh v1 key, a data_dir that then refuses the restore).
   */
  static open(dir: string, opts: { readonly create: boolean }): KeydStore {
    if (opts.create) mkdirSync(dir, { recursive: true, mode: 0o700 });
    else if (!existsSync(join(dir, STORE_FILE))) throw new StoreMissingError(dir);
    const root = open({ path: dir, compression: false, maxDbs: 12 });
    return new KeydStore(
      root,
      root.openDB<OrgKeyRecord, number>({ name: 'org-keys', keyEncoding: 'uint32' }),
      root.openDB<TrackingKeyRecord, number>({ name: 'tracking-keys', keyEncoding: 'uint32' }),
      root.openDB<UserRecord, string>({ name: 'users' }),
      root.openDB<ListRecord, string>({ name: 'lists' }),
      root.openDB<string, string>({ name: 'user-codes' }),
      root.openDB<AuditEntry, number>({ name: 'audit', keyEncoding: 'uint32' }),
      root.openDB<unknown, string>({ name: 'meta' }),
    );
  }

  /**
   * Builds the code index from the users once, for a store written before it
   * existed (call inside a write transaction). Of users sharing a code, which
   * only a store of that time can hold, the first by address keeps it.
   */
  indexUserCodes(): void {
    if (this.meta.get(CODE_INDEX_KEY) !== undefined) return;
    for (const { value } of this.users.getRange({}))
      if (this.codes.get(value.code) === undefined) this.codes.put(value.code, value.address);
    this.meta.put(CODE_INDEX_KEY, 1);
  }

  async close(): Promise<void> {
    await closeLmdb(this.root);
  }
}
