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
 *    but the org CA's CRLs and its ca.json keep the serials. At restore and
 *    at every start, a registered user with a certificate the org CA revoked
 *    (src/keyd/ca-revocations.ts: a CRL of [pki] crls that the org CA
 *    ([pki] org_ca) signed, or its ca.json as [pki] org_ca_state says) is
 *    marked revoked again (suspended, the revocation's time), each such user
 *    audited (`registry.revoke`).
 */
import { type CaRevocationList, finalRevocation, keydCaRevocations } from './ca-revocations';
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
 * What the org CA revoked for good (src/keyd/ca-revocations.ts, the reader renewal uses too: [pki] crls and the
 * org CA's ca.json): serial → revocation time. Entries on hold (certificateHold) or lifted (removeFromCRL) are left
 * out: only a revocation makes a user's final. When the revocations cannot all be known, nothing is returned and
 * `problems` says why (the same failure rule as renewal's: never taken as "no revocations").
 */
export function orgCaRevocations(config: KeydConfig): { revoked: Map<string, Date>; problems: string[] } {
  const revoked = new Map<string, Date>();
  let all: CaRevocationList;
  try {
    all = keydCaRevocations(config)();
  } catch (err) {
    return { revoked, problems: [`the org CA's revocations cannot be read, so none were applied: ${(err as Error).message}`] };
  }
  for (const [serial, r] of all) if (finalRevocation(r)) revoked.set(serial, r.at);
  return { revoked, problems: [] };
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
