/**
 * A CA folder's record of its own work, `ca.json` (docs/pki.md "CLI"): the
 * kind of CA, the certificates it issued and the serials it revoked. One
 * type, one reader and one writer for every command that keeps it (`ssmax ca`,
 * `ssmax user` issuing with an org CA, `ssmax registry revoke`, `ssmax setup`).
 * The file is replaced atomically (src/fs/atomic.ts): a crash leaves the old
 * record or the new, never a torn one.
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
import type { RevocationReason } from './crl';

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

/** Why a ca.json could not be used: missing, unreadable, not JSON, or not a CA record. */
export class CaStateError extends Error {
  constructor(
    readonly reason: 'missing' | 'unreadable' | 'not-json' | 'malformed',
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

/** Replaces the record of the CA in `dir` atomically; a legacy `crlNumber` is dropped (the CRL file holds the counter). */
export function writeCaState(dir: string, state: CaState): void {
  const { crlNumber: _legacy, ...rest } = state;
  writeFileAtomic(caStatePath(dir), `${JSON.stringify(rest, null, 2)}\n`, 0o644);
}
