/**
 * What a store restored from an older backup cannot know, and keyd must not
 * roll back (docs/operations.md, "Backups and restore"):
 *
 *  - key versions made after the backup: they were published (the own bundle
 *    certifies them) and peers encrypted mail to them. Making the same key id
 *    again with another key would answer such mail with the wrong private key.
 *    So the store holds a floor for the next org key version and the next
 *    tracking key version (meta `org-keys-next`, `tracking-keys-next`), which
 *    `ssmax keyd restore` raises above anything the lost host can have made;
 *    a version below the floor is never created, and mail to a lost version is
 *    refused as an unknown key.
 *  - revocations made after the backup: the revoked mark lives in the store,
 *    but the CRL of the org CA keeps the serials. At restore and at every
 *    start, a registered user with a certificate in a CRL of [pki] crls that
 *    the org CA ([pki] org_ca) signed is marked revoked again (suspended, the
 *    CRL's revocation time), each such user audited (`registry.revoke`).
 */
import { readFileSync } from 'node:fs';
import { parseCertificate } from '../pki/certificate';
import { crlIssuedBy, parseCrl } from '../pki/crl';
import { crlFromIssuer } from '../pki/validate';
import type { AuditInput, AuditLog } from './audit';
import type { KeydConfig } from './config';
import { Registry, type UserRecord } from './registry';
import type { KeydStore } from './store';

/** Meta key: the lowest version the next org key may have (absent: one more than the newest stored). */
export const ORG_KEYS_NEXT = 'org-keys-next';
/** Meta key: the lowest version the next tracking key may have. */
export const TRACKING_KEYS_NEXT = 'tracking-keys-next';

/**
 * How far `ssmax keyd restore` moves both floors past the newest version in the backup when it is not told
 * the newest published one (--next-version): more rotations than this between a backup and the loss of the
 * host would have to happen for a key id to be made twice.
 */
export const RESTORE_VERSION_GAP = 100;

/** The floor stored under `key`, or 0. */
export function versionFloor(store: KeydStore, key: string): number {
  const v = store.meta.get(key);
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : 0;
}

/**
 * The revoked serials of the CRLs of [pki] crls issued and signed by the org CA ([pki] org_ca): serial → revocation time.
 * Entries on hold (certificateHold) or lifted (removeFromCRL) are left out: only a revocation makes a user's final.
 */
export function orgCaRevocations(config: KeydConfig): { revoked: Map<string, Date>; problems: string[] } {
  const revoked = new Map<string, Date>();
  const problems: string[] = [];
  let ca;
  try {
    ca = parseCertificate(readFileSync(config.pki.orgCa, 'utf8'));
  } catch (err) {
    return { revoked, problems: [`the org CA "${config.pki.orgCa}" cannot be read: ${(err as Error).message}`] };
  }
  for (const file of config.pki.crls) {
    try {
      const crl = parseCrl(readFileSync(file, 'utf8'));
      if (!crlIssuedBy(crl, ca.subjectDer)) continue; // another CA's (the root's): its serials are not this CA's
      if (!crlFromIssuer(crl, ca)) {
        problems.push(`"${file}" names the org CA as issuer but its signature does not verify; not used`);
        continue;
      }
      for (const [serial, entry] of crl.entries) {
        // a hold is temporary and removeFromCRL lifts one: neither is a revocation that makes the user's final
        if (entry.reason === 'certificateHold' || entry.reason === 'removeFromCRL') continue;
        if (!revoked.has(serial)) revoked.set(serial, entry.revokedAt);
      }
    } catch (err) {
      problems.push(`"${file}" cannot be read as a CRL: ${(err as Error).message}`);
    }
  }
  return { revoked, problems };
}

/**
 * Marks revoked every registered user not yet marked whose certificate is in the org CA's CRL
 * (orgCaRevocations): status suspended, `revoked` the CRL's time; one audit record per user
 * (`registry.revoke`, reason naming `when`), committed with the changes in one transaction. Returns the
 * addresses marked; nothing is written when there are none. Users are read one at a time (linear in the registry).
 */
export async function markCrlRevocations(
  store: KeydStore,
  audit: AuditLog,
  config: KeydConfig,
  now: Date,
  when: string,
): Promise<{ marked: string[]; problems: string[] }> {
  const { revoked, problems } = orgCaRevocations(config);
  if (revoked.size === 0) return { marked: [], problems };
  const due: { user: UserRecord; at: Date; serial: string }[] = [];
  for (const { value: user } of store.users.getRange({})) {
    if (user.revoked !== undefined) continue;
    let serials: string[];
    try {
      serials = Registry.certificateSerials(user);
    } catch {
      continue; // a certificate that does not parse: nothing to match
    }
    const serial = serials.find((s) => revoked.has(s));
    if (serial !== undefined) due.push({ user, at: revoked.get(serial)!, serial });
  }
  if (due.length === 0) return { marked: [], problems };
  const inputs: AuditInput[] = due.map(({ user, at, serial }) => ({
    actor: 'keyd',
    role: 'keyd',
    op: 'registry.revoke',
    target: user.address,
    result: 'ok',
    reason: `certificate ${serial} is in the org CA's CRL (revoked ${at.toISOString()}): marked revoked ${when}`.slice(0, 300),
  }));
  await audit.appendMany(inputs, now, () => {
    for (const { user, at } of due) {
      const current = store.users.get(user.address);
      if (!current || current.revoked !== undefined) continue;
      store.users.put(current.address, { ...current, status: 'suspended', revoked: at.getTime(), updated: now.getTime() });
    }
  });
  return { marked: due.map((d) => d.user.address), problems };
}
