/**
 * keyd's state in LMDB on disk: org key versions (private keys wrapped),
 * tracking keys (wrapped), the user registry (identity references wrapped),
 * mailing lists, the audit log, and metadata. LMDB commits are atomic and
 * survive a killed process; every operation writes its audit record in the
 * same transaction as its state change.
 */
import { mkdirSync } from 'node:fs';
import { type Database, type RootDatabase, open } from 'lmdb';
import type { AuditEntry } from './audit';
import type { OrgKeyRecord } from './org-keys';
import type { ListRecord, UserRecord } from './registry';
import type { TrackingKeyRecord } from './tracking';

export class KeydStore {
  private constructor(
    readonly root: RootDatabase,
    readonly orgKeys: Database<OrgKeyRecord, number>,
    readonly trackingKeys: Database<TrackingKeyRecord, number>,
    readonly users: Database<UserRecord, string>,
    readonly lists: Database<ListRecord, string>,
    readonly audit: Database<AuditEntry, number>,
    readonly meta: Database<unknown, string>,
  ) {}

  static open(dir: string): KeydStore {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const root = open({ path: dir, compression: false, maxDbs: 12 });
    return new KeydStore(
      root,
      root.openDB<OrgKeyRecord, number>({ name: 'org-keys', keyEncoding: 'uint32' }),
      root.openDB<TrackingKeyRecord, number>({ name: 'tracking-keys', keyEncoding: 'uint32' }),
      root.openDB<UserRecord, string>({ name: 'users' }),
      root.openDB<ListRecord, string>({ name: 'lists' }),
      root.openDB<AuditEntry, number>({ name: 'audit', keyEncoding: 'uint32' }),
      root.openDB<unknown, string>({ name: 'meta' }),
    );
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}
