/**
 * A CA folder's record of its own work, `ca.json` (docs/pki.md "CLI"): the
 * kind of CA, the certificates it issued and the serials it revoked. One
 * type, one reader and one writer for every command that keeps it (`ssmax ca`,
 * `ssmax user` issuing with an org CA, `ssmax registry revoke`, `ssmax setup`).
 * The file is replaced atomically (src/fs/atomic.ts): a crash leaves the old
 * record or the new, never a torn one.
 *
 * Every change is a read, a change and a write under the CA folder's lock
 * (src/fs/folder-lock.ts; its secret `ca-lock.secret` in the folder): two
 * commands at once (two `ssmax ca revoke`, a revoke and an `ssmax user init`)
 * each see the other's change, so none is lost. A command that also reads or
 * writes the CA's CRL files does so inside the same lock, so two such commands
 * never give two CRLs one number (keyd renews and revokes into its own copy of
 * the CRL without this lock: docs/pki.md). There is no writer of ca.json
 * outside updateCaState and createCaState.
 *
 * The CRL number is not kept here: the one counter is the CRL number of the
 * CA's CRL file, which keyd's renewals and `ssmax registry revoke` advance too
 * (docs/operations.md, "Renewals"). A `crlNumber` in an older ca.json is read
 * as a floor and dropped on the next write.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, errnoText } from '../errors/errno';
import { writeFileAtomic } from '../fs/atomic';
import { type FolderLockKind, FolderBusyError, withFolderLock } from '../fs/folder-lock';
import type { RevocationEntry, RevocationReason } from './crl';

export interface CaRevocation {
  serial: string;
  revokedAt: string;
  reason: RevocationReason;
}

export interface CaIssued {
  serial: string;
  subject: string;
  notAfter: string;
  domains?: string[];
}

export interface CaState {
  kind: 'root' | 'org';
  /** Legacy floor only (see above): read, never written. */
  crlNumber?: number;
  revoked: CaRevocation[];
  issued: CaIssued[];
  /**
   * Other files holding this CA's CRL (absolute paths): `ssmax setup` records
   * the pki/org-ca.crl.pem it writes, which keyd renews and revokes users into.
   * `ssmax ca crl` merges their revocations and numbers, so a hand-signed CRL
   * copied over one of them drops nothing and never goes down.
   */
  crlCopies?: string[];
}

/** The legacy CRL number floor of an older ca.json (0 when absent or not a whole number). */
export function legacyCrlNumber(state: CaState): bigint {
  const n = state.crlNumber;
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? BigInt(n) : 0n;
}

/** What the CA recorded as revoked, as CRL entries. */
export function recordedRevocations(state: CaState): RevocationEntry[] {
  return state.revoked.map((r) => ({ serial: r.serial, revokedAt: new Date(r.revokedAt), reason: r.reason }));
}

/** Records in `state` each revocation it does not hold yet (by serial), in order. */
export function recordRevocations(state: CaState, entries: readonly RevocationEntry[]): void {
  const known = new Set(state.revoked.map((r) => r.serial));
  for (const e of entries) {
    if (known.has(e.serial)) continue;
    known.add(e.serial);
    state.revoked.push({ serial: e.serial, revokedAt: e.revokedAt.toISOString(), reason: e.reason });
  }
}

/** Why a ca.json could not be used: missing, unreadable, not JSON, or not a CA record. */
export class CaStateError extends Error {
  constructor(
    readonly reason: 'missing' | 'unreadable' | 'not-json' | 'malformed' | 'busy',
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'CaStateError';
  }
}

export function caStatePath(dir: string): string {
  return join(dir, 'ca.json');
}

/** The record of the CA in `dir` (lists absent in an older file read as empty; other fields kept as they are). */
export function readCaState(dir: string): CaState {
  const path = caStatePath(dir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const missing = errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR';
    throw new CaStateError(
      missing ? 'missing' : 'unreadable',
      path,
      `Cannot read CA state "${path}": ${missing ? 'no such file' : errnoText(err)}`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new CaStateError('not-json', path, `Cannot read CA state "${path}": not JSON`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new CaStateError('malformed', path, `Cannot read CA state "${path}": not a JSON object`);
  const state = doc as Partial<CaState> & Record<string, unknown>;
  if (state.kind !== 'root' && state.kind !== 'org')
    throw new CaStateError('malformed', path, `Cannot read CA state "${path}": kind is "${String(state.kind)}", not root or org`);
  if (state.crlCopies !== undefined && !(Array.isArray(state.crlCopies) && state.crlCopies.every((f) => typeof f === 'string')))
    throw new CaStateError('malformed', path, `Cannot read CA state "${path}": crlCopies is not a list of file names`);
  for (const list of ['revoked', 'issued'] as const) {
    if (state[list] === undefined) state[list] = [];
    else if (!Array.isArray(state[list]))
      throw new CaStateError('malformed', path, `Cannot read CA state "${path}": ${list} is not a list`);
  }
  return state as CaState;
}

/** Replaces the record of the CA in `dir` atomically; a legacy `crlNumber` is dropped (the CRL file holds the counter). Only under the lock. */
function writeCaState(dir: string, state: CaState): void {
  const { crlNumber: _legacy, ...rest } = state;
  writeFileAtomic(caStatePath(dir), `${JSON.stringify(rest, null, 2)}\n`, 0o644);
}

/** The CA folder's lock (src/fs/folder-lock.ts); its secret is written into the folder by the first command that locks it. */
export const CA_LOCK: FolderLockKind = { secretFile: 'ca-lock.secret', prefix: 'ssmax-ca-folder-' };

/** How long a command waits for another holding the CA folder (the changes take milliseconds; signing a large CRL a few seconds). */
export const CA_LOCK_WAIT_MS = 30_000;

/**
 * Runs `fn` holding the lock of the CA folder `dir` (for a CRL file kept in a
 * folder without ca.json, the lock of that folder); CaStateError 'busy' when
 * another command holds it for longer than `waitMs` (CA_LOCK_WAIT_MS by default).
 */
export async function withCaFolderLock<T>(dir: string, fn: () => T | Promise<T>, waitMs = CA_LOCK_WAIT_MS): Promise<T> {
  try {
    return await withFolderLock(dir, CA_LOCK, waitMs, fn);
  } catch (err) {
    if (err instanceof FolderBusyError)
      throw new CaStateError('busy', caStatePath(dir), `Cannot change CA state "${caStatePath(dir)}": ${err.message}`);
    throw err;
  }
}

/**
 * Changes the record of the CA in `dir`: under the folder's lock, reads it,
 * runs `change` on it (which may read and write the CA's CRL files too), and
 * writes it back before the lock is released. When `change` throws, nothing is
 * written. Returns what `change` returns.
 */
export function updateCaState<T>(dir: string, change: (state: CaState) => T | Promise<T>): Promise<T> {
  return withCaFolderLock(dir, async () => {
    const state = readCaState(dir);
    const result = await change(state);
    writeCaState(dir, state);
    return result;
  });
}

/** Writes the first record of a new CA in `dir` (or replaces one: init with --force), under the folder's lock. */
export function createCaState(dir: string, state: CaState): Promise<void> {
  return withCaFolderLock(dir, () => writeCaState(dir, state));
}
