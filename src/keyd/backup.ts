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
 *    and its audit chain must verify — checked in a staging folder beside
 *    data_dir (by a child process: a crafted store can crash LMDB), renamed
 *    into place only once all holds — so a damaged or altered backup leaves
 *    data_dir exactly as it was.
 */
import { emptyOrAbsent, lmdbBackup } from '../fs/lmdb-backup';
import { spawnSync } from 'node:child_process';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { AuditLog } from './audit';
import type { KeydConfig } from './config';
import { KeydError, type KeydErrorCode, shownValue } from './errors';
import { SecretWrapper, loadMasterKey } from './master-key';
import { ORG_KEYS_NEXT, RESTORE_VERSION_GAP, TRACKING_KEYS_NEXT, markCrlRevocations, versionFloor } from './rollback';
import { KeydStore, StoreMissingError } from './store';
import { StoreInUseError, storeHolder } from './store-lock';
import { errnoText } from '../errors/errno';

export const BACKUP_FILE = 'data.mdb';
export const MANIFEST_FILE = 'ssmax-keyd-backup.json';

export interface BackupManifest {
  readonly format: 'ssmax-keyd-backup/2';
  readonly domain: string;
  readonly created: string;
  readonly auditRecords: number;
  /** The audit chain's head in the copy: its sequence number and MAC (the seal is in the store). */
  readonly auditHead: { readonly seq: number; readonly mac: string };
  readonly masterCheck: string;
  readonly sha256: string;
  /** HMAC under the audit key over every other field (manifestMac): the manifest cannot be edited without the master key. */
  readonly mac: string;
}

/** The MAC of a manifest: HMAC(auditKey, "ssmax-keyd-backup" || canonical JSON of every field but `mac`). */
export function manifestMac(wrapper: SecretWrapper, m: Omit<BackupManifest, 'mac'>): string {
  const fields = [m.format, m.domain, m.created, m.auditRecords, m.auditHead.seq, m.auditHead.mac, m.masterCheck, m.sha256];
  return createHmac('sha256', wrapper.auditKey)
    .update(`ssmax-keyd-backup\0${JSON.stringify(fields)}`)
    .digest('hex');
}

/** A manifest of an earlier version (format 1): no audit head, no MAC. */
export type LegacyManifest = Omit<BackupManifest, 'format' | 'auditHead' | 'mac'> & { readonly format: 'ssmax-keyd-backup/1' };

/** What a restore did beyond putting the store in place: what the backup cannot know, for the operator. */
export interface RestoreReport {
  readonly manifest: BackupManifest | LegacyManifest;
  /** Set for a format-1 backup: what could not be checked. */
  readonly unchecked?: string;
  /** The newest org key version in the backup (undefined: none). */
  readonly newestKeyId: string | undefined;
  /** The lowest version the next org key and tracking key will have. */
  readonly nextOrgVersion: number;
  readonly nextTrackingVersion: number;
  /** Users the org CA's CRL lists that the backup had not marked revoked: marked now. */
  readonly revoked: readonly string[];
  /** CRLs that could not be used for that. */
  readonly problems: readonly string[];
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Opens a copied environment and checks it against the master key: the audit chain's length and head. */
async function check(dir: string, wrapper: SecretWrapper): Promise<{ count: number; head: { seq: number; mac: string } }> {
  let store: KeydStore;
  try {
    store = KeydStore.open(dir, { create: false });
  } catch (err) {
    throw new KeydError('config', `The backup's store cannot be opened: ${(err as Error).message}`);
  }
  try {
    const stored = store.meta.get('master-check') as string | undefined;
    if (stored !== wrapper.checkValue) throw new KeydError('config', `The backup in "${dir}" was not made with this master key`);
    const v = new AuditLog(store, wrapper.auditKey).verify();
    if (!v.ok) throw new KeydError('audit-failed', `The backup's audit chain does not verify at record ${v.seq}: ${v.reason}`);
    const head = new AuditLog(store, wrapper.auditKey).head();
    return { count: v.count, head: { seq: head.seq, mac: head.mac } };
  } finally {
    await store.close();
  }
}

/**
 * `check` in a child process: LMDB maps the store and trusts its pages, so a
 * crafted or damaged store crashes the process that opens it (SIGSEGV); here
 * such a crash is a refusal like any other. The child reads the master key
 * from its file itself; nothing secret passes between the two.
 */
async function checkIsolated(dir: string, masterKeyFile: string): Promise<{ count: number; head: { seq: number; mac: string } }> {
  if (__filename.endsWith('.ts')) return check(dir, new SecretWrapper(loadMasterKey(masterKeyFile))); // the TypeScript sources (unit tests): no compiled module for a child
  const r = spawnSync(process.execPath, [__filename, CHECK_ARG, dir, masterKeyFile], { encoding: 'utf8', timeout: 300_000 });
  let answer: { count?: number; head?: { seq: number; mac: string }; code?: KeydErrorCode; error?: string } = {};
  try {
    answer = JSON.parse(r.stdout) as typeof answer;
  } catch {
    // no answer: crashed, killed or timed out
  }
  if (typeof answer.count === 'number' && answer.head && r.status === 0) return { count: answer.count, head: answer.head };
  if (answer.error) throw new KeydError(answer.code ?? 'config', answer.error);
  throw new KeydError(
    'config',
    `The backup's store cannot be opened: checking it ended with ${r.signal ?? `exit status ${String(r.status)}`}${r.error ? ` (${r.error.message})` : ''}`,
  );
}

const CHECK_ARG = '--ssmax-check-store';

if (require.main === module && process.argv[2] === CHECK_ARG) {
  check(process.argv[3]!, new SecretWrapper(loadMasterKey(process.argv[4]!))).then(
    (checked) => process.stdout.write(JSON.stringify(checked)),
    (err: unknown) => {
      process.stdout.write(JSON.stringify({ error: (err as Error).message, ...(err instanceof KeydError ? { code: err.code } : {}) }));
      process.exitCode = 1;
    },
  );
}

/** An output that exists: 73 from every command (src/cli/command.ts exitOf maps EEXIST). */
function outputExists(message: string): Error {
  return Object.assign(new Error(message), { code: 'EEXIST' });
}

/**
 * Online backup of keyd's data directory into `outDir` (absent or empty).
 * Every file it writes is mode 0600, in a folder of mode 0700: LMDB writes
 * its copy (0644) into a private folder inside `outDir`, where it is made
 * 0600 before it is moved into place.
 */
export async function backupKeyd(config: KeydConfig, outDir: string, clock: () => Date = () => new Date()): Promise<BackupManifest> {
  if (!existsSync(join(config.dataDir, BACKUP_FILE))) throw new StoreMissingError(config.dataDir); // exit 66, nothing written
  if (!emptyOrAbsent(outDir)) throw outputExists(`Backup folder "${outDir}" is not empty; give a new one`);
  const wrapper = new SecretWrapper(loadMasterKey(config.masterKeyFile));
  const store = KeydStore.open(config.dataDir, { create: false });
  try {
    await lmdbBackup(store.root, outDir);
  } finally {
    await store.close();
  }
  // the copy, opened on its own, must be whole: master key and audit chain
  const scratch = join(outDir, '.check');
  mkdirSync(scratch, { mode: 0o700 });
  let checked: Awaited<ReturnType<typeof check>>;
  try {
    copyFileSync(join(outDir, BACKUP_FILE), join(scratch, BACKUP_FILE));
    checked = await check(scratch, wrapper);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const fields: Omit<BackupManifest, 'mac'> = {
    format: 'ssmax-keyd-backup/2',
    domain: config.domain,
    created: clock().toISOString(),
    auditRecords: checked.count,
    auditHead: checked.head,
    masterCheck: wrapper.checkValue,
    sha256: sha256(join(outDir, BACKUP_FILE)),
  };
  const manifest: BackupManifest = { ...fields, mac: manifestMac(wrapper, fields) };
  writeFileSync(join(outDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  return manifest;
}

/** Reads and checks the manifest of a backup folder: every field present, of its type and form. */
function readManifest(fromDir: string): BackupManifest | LegacyManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(join(fromDir, MANIFEST_FILE), 'utf8'));
  } catch (err) {
    throw new KeydError('config', `"${fromDir}" is not a keyd backup (no readable ${MANIFEST_FILE}: ${errnoText(err)})`);
  }
  const m = parsed as Partial<Record<keyof BackupManifest, unknown>>;
  const bad = (what: string) => new KeydError('config', `"${join(fromDir, MANIFEST_FILE)}" is not a valid backup manifest: ${what}`);
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw bad('not a JSON object');
  if (m.format !== 'ssmax-keyd-backup/1' && m.format !== 'ssmax-keyd-backup/2')
    throw new KeydError('config', `Unknown backup format "${shownValue(m.format)}"`);
  if (typeof m.domain !== 'string' || m.domain === '') throw bad('no domain');
  if (typeof m.created !== 'string' || Number.isNaN(Date.parse(m.created))) throw bad('"created" is not a time');
  if (typeof m.auditRecords !== 'number' || !Number.isSafeInteger(m.auditRecords) || m.auditRecords < 0)
    throw bad('"auditRecords" is not a count');
  if (typeof m.masterCheck !== 'string' || m.masterCheck === '') throw bad('no "masterCheck"');
  if (typeof m.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.sha256)) throw bad('"sha256" is not a SHA-256 in hex');
  if (m.format === 'ssmax-keyd-backup/1') return m as LegacyManifest; // an earlier version's: no head, no MAC
  const head = m.auditHead as { seq?: unknown; mac?: unknown } | undefined;
  if (
    !head ||
    typeof head !== 'object' ||
    typeof head.seq !== 'number' ||
    head.seq !== m.auditRecords ||
    typeof head.mac !== 'string' ||
    !/^[0-9a-f]{64}$/.test(head.mac)
  )
    throw bad('"auditHead" is not the head of a chain of "auditRecords" records');
  if (typeof m.mac !== 'string' || !/^[0-9a-f]{64}$/.test(m.mac)) throw bad('"mac" is not a MAC in hex');
  return m as BackupManifest;
}

/**
 * Restores a backup into the (absent or empty) data_dir of `config`; keyd
 * must be stopped. Nothing is written to data_dir until the backup has been
 * checked whole: the manifest (form, domain, master key), the copy against
 * its SHA-256, then the copy itself, opened in a staging folder beside
 * data_dir — the master key's check value in the store and the audit chain,
 * at least as long as at backup time. Only then is the staging folder renamed
 * onto data_dir, one atomic step (onto an empty folder too); on any failure
 * the staging folder is removed and data_dir is as it was.
 */
export async function restoreKeyd(
  config: KeydConfig,
  fromDir: string,
  opts: { readonly nextVersion?: number; readonly clock?: () => Date } = {},
): Promise<RestoreReport> {
  const clock = opts.clock ?? (() => new Date());
  if (opts.nextVersion !== undefined && (!Number.isSafeInteger(opts.nextVersion) || opts.nextVersion < 1 || opts.nextVersion > 999_999_999))
    throw new KeydError('config', `--next-version must be a key version number (1 to 999999999), not "${String(opts.nextVersion)}"`);
  const holder = await storeHolder(config.dataDir);
  if (holder !== undefined) throw new StoreInUseError(config.dataDir, holder > 0 ? holder : undefined);
  const manifest = readManifest(fromDir);
  if (manifest.domain !== config.domain)
    throw new KeydError('config', `The backup is of "${manifest.domain}", this keyd is for "${config.domain}"`);
  const file = join(fromDir, BACKUP_FILE);
  if (!existsSync(file)) throw new KeydError('config', `"${fromDir}" is not a keyd backup (no ${BACKUP_FILE})`);
  if (sha256(file) !== manifest.sha256) throw new KeydError('config', `"${file}" does not match its manifest (damaged or altered)`);
  if (!emptyOrAbsent(config.dataDir))
    throw new KeydError('config', `data_dir "${config.dataDir}" is not empty: stop keyd and restore into an empty folder`);
  const wrapper = new SecretWrapper(loadMasterKey(config.masterKeyFile));
  if (manifest.masterCheck !== wrapper.checkValue)
    throw new KeydError('config', `The backup was made with another master key than "${config.masterKeyFile}"`);
  if (manifest.format === 'ssmax-keyd-backup/2') {
    const { mac: claimed, ...fields } = manifest;
    if (!timingSafeEqual(Buffer.from(manifestMac(wrapper, fields), 'hex'), Buffer.from(claimed, 'hex')))
      throw new KeydError('audit-failed', `"${join(fromDir, MANIFEST_FILE)}" does not verify under the master key (altered)`);
  }
  const parent = dirname(resolve(config.dataDir));
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  // beside data_dir, so the rename stays on one file system; no dot in the name (LMDB would take the folder for a file)
  const staging = mkdtempSync(join(parent, 'ssmax-keyd-restore-'));
  let report: RestoreReport;
  try {
    chmodSync(staging, 0o700);
    const staged = join(staging, BACKUP_FILE);
    copyFileSync(file, staged);
    // the bytes checked are the bytes restored (the backup folder could change meanwhile)
    if (sha256(staged) !== manifest.sha256) throw new KeydError('config', `"${file}" changed while it was restored`);
    const checked = await checkIsolated(staging, config.masterKeyFile);
    // the copy is a snapshot: its chain ends exactly where the (authenticated) manifest says, no record fewer
    const legacy = manifest.format === 'ssmax-keyd-backup/1';
    if (
      legacy
        ? checked.count < manifest.auditRecords
        : checked.count !== manifest.auditRecords || checked.head.mac !== manifest.auditHead.mac
    )
      throw new KeydError(
        'audit-failed',
        `The backup's audit chain has ${checked.count} records, the manifest says ${manifest.auditRecords}${checked.count === manifest.auditRecords ? ' with another last record' : ''}`,
      );
    report = await reconcileRestored(config, staging, wrapper, manifest, opts.nextVersion, clock());
    if (legacy)
      report = {
        ...report,
        unchecked: `a backup of an earlier version (format 1): its manifest is not authenticated, so newest audit records deleted from the copy (before ${manifest.created}) could not be detected`,
      };
    // rename(2) puts a folder in place of an absent or empty one in one step, and refuses a non-empty one
    // (keyd started meanwhile): nothing of the old data_dir is ever overwritten.
    try {
      renameSync(staging, config.dataDir);
    } catch (err) {
      throw new KeydError('config', `Cannot put the restored store in place at "${config.dataDir}": ${errnoText(err)} (is keyd running?)`);
    }
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  return report;
}

/**
 * In the checked staging store, before it is put in place: what the backup cannot know (rollback.ts). The
 * floors of the next org key and tracking key versions are raised past anything the lost host can have made
 * (`nextVersion`, the newest published version + 1, when the operator gives it; else RESTORE_VERSION_GAP past
 * the backup's newest), recorded with an audit record `keyd.restore`; users the org CA's CRL lists are marked
 * revoked again.
 */
async function reconcileRestored(
  config: KeydConfig,
  dir: string,
  wrapper: SecretWrapper,
  manifest: BackupManifest | LegacyManifest,
  nextVersion: number | undefined,
  now: Date,
): Promise<RestoreReport> {
  const store = KeydStore.open(dir, { create: false });
  try {
    const audit = new AuditLog(store, wrapper.auditKey);
    const newestOrg = [...store.orgKeys.getRange({ reverse: true, limit: 1 })][0]?.value;
    const newestTracking = [...store.trackingKeys.getRange({ reverse: true, limit: 1 })][0]?.value.version ?? 0;
    const nextOrgVersion = Math.max(
      (newestOrg?.version ?? 0) + 1,
      nextVersion ?? (newestOrg?.version ?? 0) + RESTORE_VERSION_GAP,
      versionFloor(store, ORG_KEYS_NEXT),
    );
    const nextTrackingVersion = Math.max(newestTracking + RESTORE_VERSION_GAP, versionFloor(store, TRACKING_KEYS_NEXT));
    await audit.append(
      {
        actor: 'ssmax keyd restore',
        role: 'admin',
        op: 'keyd.restore',
        result: 'ok',
        reason: `backup of ${manifest.created} (${manifest.auditRecords} records); next org key version v${nextOrgVersion}${nextVersion === undefined ? '' : ' (--next-version)'}, next tracking key version ${nextTrackingVersion}`,
      },
      now,
      () => {
        store.meta.put(ORG_KEYS_NEXT, nextOrgVersion);
        store.meta.put(TRACKING_KEYS_NEXT, nextTrackingVersion);
      },
    );
    const { marked, problems } = await markCrlRevocations(store, audit, config, now, 'at restore');
    return { manifest, newestKeyId: newestOrg?.keyId, nextOrgVersion, nextTrackingVersion, revoked: marked, problems };
  } finally {
    await store.close();
  }
}
