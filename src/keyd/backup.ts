/**
 * keyd's data directory, backed up while keyd runs and restored onto a fresh
 * host (docs/operations.md, "Backups"):
 *  - backup: LMDB's own consistent copy of the environment (a read
 *    transaction; keyd goes on serving), then a manifest (domain, time, audit
 *    length, SHA-256 of the copy), then the copy is checked as a restore would
 *    check it. The copy holds org keys and tracking keys only wrapped under
 *    the master key: it is useless without the master key (or K of its
 *    shares), which is backed up apart (`ssmax keyd backup-master`).
 *  - restore: into an empty (or absent) data_dir only, with keyd stopped;
 *    the copy must match its manifest, be for the master key of this config
 *    and its audit chain must verify, before anything is written.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog } from './audit';
import type { KeydConfig } from './config';
import { KeydError } from './errors';
import { SecretWrapper, loadMasterKey } from './master-key';
import { KeydStore } from './store';

export const BACKUP_FILE = 'data.mdb';
export const MANIFEST_FILE = 'ssmax-keyd-backup.json';

export interface BackupManifest {
  readonly format: 'ssmax-keyd-backup/1';
  readonly domain: string;
  readonly created: string;
  readonly auditRecords: number;
  readonly masterCheck: string;
  readonly sha256: string;
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function emptyOrAbsent(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

/** Opens a copied environment and checks it against the master key: the audit chain's length. */
async function check(dir: string, wrapper: SecretWrapper): Promise<number> {
  const store = KeydStore.open(dir);
  try {
    const stored = store.meta.get('master-check') as string | undefined;
    if (stored !== wrapper.checkValue) throw new KeydError('config', `The backup in "${dir}" was not made with this master key`);
    const v = new AuditLog(store, wrapper.auditKey).verify();
    if (!v.ok) throw new KeydError('audit-failed', `The backup's audit chain does not verify at record ${v.seq}: ${v.reason}`);
    return v.count;
  } finally {
    await store.close();
  }
}

/** Online backup of keyd's data directory into `outDir` (absent or empty). */
export async function backupKeyd(config: KeydConfig, outDir: string, clock: () => Date = () => new Date()): Promise<BackupManifest> {
  if (!existsSync(join(config.dataDir, BACKUP_FILE))) throw new KeydError('config', `No keyd store in "${config.dataDir}" (data_dir of "${config.file}")`);
  if (!emptyOrAbsent(outDir)) throw new KeydError('config', `Backup folder "${outDir}" is not empty; give a new one`);
  const wrapper = new SecretWrapper(loadMasterKey(config.masterKeyFile));
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const store = KeydStore.open(config.dataDir);
  try {
    await store.root.backup(outDir, false); // LMDB's copy: writes DIR/data.mdb
  } finally {
    await store.close();
  }
  // the copy, opened on its own, must be whole: master key and audit chain
  const scratch = join(outDir, '.check');
  mkdirSync(scratch, { mode: 0o700 });
  let auditRecords: number;
  try {
    copyFileSync(join(outDir, BACKUP_FILE), join(scratch, BACKUP_FILE));
    auditRecords = await check(scratch, wrapper);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const manifest: BackupManifest = { format: 'ssmax-keyd-backup/1', domain: config.domain, created: clock().toISOString(), auditRecords, masterCheck: wrapper.checkValue, sha256: sha256(join(outDir, BACKUP_FILE)) };
  writeFileSync(join(outDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  return manifest;
}

/** Restores a backup into the (absent or empty) data_dir of `config`; keyd must be stopped. */
export async function restoreKeyd(config: KeydConfig, fromDir: string): Promise<BackupManifest> {
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(readFileSync(join(fromDir, MANIFEST_FILE), 'utf8')) as BackupManifest;
  } catch (err) {
    throw new KeydError('config', `"${fromDir}" is not a keyd backup (no readable ${MANIFEST_FILE}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (manifest.format !== 'ssmax-keyd-backup/1') throw new KeydError('config', `Unknown backup format "${String(manifest.format)}"`);
  if (manifest.domain !== config.domain) throw new KeydError('config', `The backup is of "${manifest.domain}", this keyd is for "${config.domain}"`);
  const file = join(fromDir, BACKUP_FILE);
  if (sha256(file) !== manifest.sha256) throw new KeydError('config', `"${file}" does not match its manifest (damaged or altered)`);
  if (!emptyOrAbsent(config.dataDir)) throw new KeydError('config', `data_dir "${config.dataDir}" is not empty: stop keyd and restore into an empty folder`);
  const wrapper = new SecretWrapper(loadMasterKey(config.masterKeyFile));
  if (manifest.masterCheck !== wrapper.checkValue) throw new KeydError('config', `The backup was made with another master key than "${config.masterKeyFile}"`);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  copyFileSync(file, join(config.dataDir, BACKUP_FILE));
  const count = await check(config.dataDir, wrapper);
  if (count < manifest.auditRecords) throw new KeydError('audit-failed', `The restored audit chain has ${count} records, the manifest says ${manifest.auditRecords}`);
  return manifest;
}
