/**
 * User registration for sender tracking (SSMAX §2.2; docs/abuse.md
 * "Registration"): a user is registered at keyd with an org-assigned
 * pseudonymous code and an identity reference (employee or contract number,
 * stored wrapped by keyd, revealed only by audited disclosure). An SSMAX
 * client user also gets certificates from the org CA (signing and
 * encryption, through `createUserProfile`, which writes the profile folder).
 *
 * Suspension flips keyd's status: keyd then refuses the user as a sender and
 * as a re-encryption target, and tokens still resolve (the status shows).
 * Revocation suspends, and revokes the user's certificates in a new CRL of
 * the org CA, written over the CRL file the bundle publisher watches: the
 * publisher re-publishes the bundle when the file changes, so peers learn of
 * the revocation with their next bundle fetch.
 *
 * When keyd holds the org CA, revocation is one call to keyd (POST
 * /v1/registry/users/{address}/revoke): keyd suspends the user, signs the
 * next CRL and audits it in one record (the console does the same). Only a
 * keyd without the CA (answer `not-configured`) leaves the signing to this
 * host's CA, as before.
 *
 * keyd is reached with an admin (operator) client certificate; keyd audits
 * every call.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../fs/atomic';
import {
  type CaState,
  CaStateError,
  legacyCrlNumber,
  recordRevocations,
  recordedRevocations,
  updateCaState,
  withCaFolderLock,
} from '../pki/ca-state';
import { parseCertificate } from '../pki/certificate';
import { type ParsedCrl, createCrl, crlIssuedBy, crlSuccessor, parseCrl, type RevocationReason } from '../pki/crl';
import type { SigningAuthority } from '../pki/issue';
import { type KeydClient, KeydClientError } from '../keyd/client';
import { type SmtpSettings, createUserProfile } from '../user/profile';

export class RegistryError extends Error {
  constructor(
    readonly code: 'refused' | 'unavailable' | 'input' | 'ca' | 'busy',
    message: string,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

/** A registered user as keyd shows it to an admin (never the identity reference). */
export interface RegisteredUser {
  readonly address: string;
  readonly code: string;
  readonly status: 'active' | 'suspended';
  readonly kind?: string;
  readonly encryptionKeyId?: string;
  readonly encryptionCertificate?: string;
  readonly signingCertificate?: string;
  readonly certificateSerial?: string;
  readonly created?: number;
  readonly updated?: number;
}

async function keydCall<T>(keyd: KeydClient, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  try {
    return await keyd.call<T>(method, path, body);
  } catch (err) {
    if (err instanceof KeydClientError) throw new RegistryError(err.transient ? 'unavailable' : 'refused', err.message);
    throw err;
  }
}

export interface AddUserOptions {
  readonly keyd: KeydClient;
  readonly address: string;
  /** Pseudonymous code (1-64 of [A-Za-z0-9._-]); what a tracking token resolves to. */
  readonly code: string;
  /** Employee or contract number; keyd stores it wrapped and reveals it only by audited disclosure. */
  readonly identityRef: string;
  readonly kind?: 'individual' | 'organisation';
  readonly inspectionConsent?: boolean;
  /** For an SSMAX client user: issue certificates with this CA and write the profile folder. */
  readonly profile?: {
    readonly dir: string;
    readonly orgCa: SigningAuthority;
    readonly rootPem: string;
    /** The organisation's signed bundle (JSON text). */
    readonly orgBundle: string;
    /** Pseudonym in the certificates; default the code. */
    readonly pseudonym?: string;
    readonly smtp?: SmtpSettings;
    readonly validDays?: number;
    /** Encrypts the profile's private keys with this passphrase (createUserProfile); without it they are written plain. */
    readonly keyPassphrase?: string;
  };
  readonly now: Date;
}

/** Registers a user at keyd (after issuing its certificates, for an SSMAX client user). */
export async function addUser(opts: AddUserOptions): Promise<RegisteredUser> {
  const extra = {
    ...(opts.kind ? { kind: opts.kind } : {}),
    ...(opts.inspectionConsent !== undefined ? { inspectionConsent: opts.inspectionConsent } : {}),
  };
  if (!opts.profile) {
    return keydCall<RegisteredUser>(opts.keyd, 'POST', '/v1/registry/users', {
      address: opts.address,
      code: opts.code,
      identityRef: opts.identityRef,
      ...extra,
    });
  }
  const p = opts.profile;
  // Ask keyd first whether the address is free, so no certificate is issued for a registration keyd would refuse.
  const existing = await getUser(opts.keyd, opts.address).catch((err: unknown) => {
    if (err instanceof RegistryError && /No registered user/.test(err.message)) return undefined;
    throw err;
  });
  if (existing) throw new RegistryError('refused', `Cannot register "${opts.address}": already registered`);
  let reg;
  try {
    reg = createUserProfile(p.dir, {
      address: opts.address,
      code: opts.code,
      pseudonym: p.pseudonym ?? opts.code,
      orgCa: p.orgCa,
      rootPem: p.rootPem,
      orgBundle: p.orgBundle,
      now: opts.now,
      ...(p.smtp ? { smtp: p.smtp } : {}),
      ...(p.validDays ? { validDays: p.validDays } : {}),
      ...(p.keyPassphrase !== undefined ? { keyPassphrase: p.keyPassphrase } : {}),
    });
  } catch (err) {
    throw new RegistryError('input', (err as Error).message);
  }
  return keydCall<RegisteredUser>(opts.keyd, 'POST', '/v1/registry/users', { ...reg, identityRef: opts.identityRef, ...extra });
}

export function getUser(keyd: KeydClient, address: string): Promise<RegisteredUser> {
  return keydCall<RegisteredUser>(keyd, 'GET', `/v1/registry/users/${encodeURIComponent(address)}`);
}

export function setUserStatus(keyd: KeydClient, address: string, status: 'active' | 'suspended'): Promise<RegisteredUser> {
  return keydCall<RegisteredUser>(keyd, 'POST', `/v1/registry/users/${encodeURIComponent(address)}/status`, { status });
}

/** The serials (hex) of the certificates keyd holds for a user: signing and encryption. */
export function certificateSerials(user: RegisteredUser): string[] {
  const serials = new Set<string>();
  if (user.certificateSerial) serials.add(user.certificateSerial.toLowerCase());
  for (const pem of [user.signingCertificate, user.encryptionCertificate]) {
    if (pem) serials.add(parseCertificate(pem).serial);
  }
  return [...serials];
}

export interface CrlUpdate {
  /** The org CA that signs the CRL. */
  readonly ca: SigningAuthority;
  /** The CRL file the publisher (and keyd) read; replaced atomically. Its entries are kept. */
  readonly crlFile: string;
  /** Days until nextUpdate. */
  readonly days: number;
  readonly now: Date;
  /** An `ssmax ca` directory: its ca.json records the revocations too, so a later `ssmax ca crl` keeps them. */
  readonly caDir?: string;
}

/**
 * Adds revocations to the CA's CRL: reads the current file, signs the next CRL number, replaces the file.
 * All of it under one lock (src/pki/ca-state.ts): the CA folder's when there is one (its ca.json records the
 * revocations too), else the CRL file's folder; two revocations at once both reach the CRL, under two numbers.
 */
export async function revokeSerials(
  serials: readonly string[],
  reason: RevocationReason,
  u: CrlUpdate,
): Promise<{ crlNumber: bigint; added: string[] }> {
  try {
    if (u.caDir) return await updateCaState(u.caDir, (caJson) => revokeInCrl(serials, reason, u, caJson));
    return await withCaFolderLock(dirname(u.crlFile), () => revokeInCrl(serials, reason, u, undefined));
  } catch (err) {
    if (err instanceof CaStateError) throw new RegistryError(err.reason === 'busy' ? 'busy' : 'ca', err.message);
    throw err;
  }
}

/** revokeSerials, under its lock; `caJson` (the CA folder's record) gets the new revocations too. */
function revokeInCrl(
  serials: readonly string[],
  reason: RevocationReason,
  u: CrlUpdate,
  caJson: CaState | undefined,
): { crlNumber: bigint; added: string[] } {
  const thisUpdate = new Date(Math.floor(u.now.getTime() / 1000) * 1000);
  let current: ParsedCrl | undefined;
  if (existsSync(u.crlFile)) {
    try {
      current = parseCrl(readFileSync(u.crlFile, 'utf8'));
    } catch (err) {
      throw new RegistryError('ca', `Cannot read CRL "${u.crlFile}": ${(err as Error).message}`);
    }
    if (!crlIssuedBy(current, u.ca.certificate.subjectDer)) {
      throw new RegistryError(
        'ca',
        `Cannot update CRL "${u.crlFile}": it is issued by "${current.issuer}", not by "${u.ca.certificate.subject}"`,
      );
    }
  }
  // what the file and ca.json hold, numbered above both (as ssmax ca crl does), and then the new revocations
  const next = crlSuccessor(current ? [current] : [], caJson ? recordedRevocations(caJson) : [], caJson ? legacyCrlNumber(caJson) : 0n);
  const entries = new Map(next.entries.map((e) => [e.serial, e]));
  const added: string[] = [];
  for (const s of serials) {
    if (entries.has(s)) continue;
    entries.set(s, { serial: s, revokedAt: thisUpdate, reason });
    added.push(s);
  }
  const crl = createCrl(u.ca, {
    entries: [...entries.values()],
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + u.days * 86400_000),
    crlNumber: next.crlNumber,
  });
  writeFileAtomic(u.crlFile, crl.pem, 0o644);
  if (caJson) addRevocations(caJson, added, thisUpdate, reason); // written by updateCaState once this returns
  return { crlNumber: next.crlNumber, added };
}

function addRevocations(caJson: CaState, serials: readonly string[], revokedAt: Date, reason: RevocationReason): void {
  recordRevocations(
    caJson,
    serials.map((serial) => ({ serial, revokedAt, reason })),
  );
}

/** Records revocations in an `ssmax ca` directory's ca.json (so a later `ssmax ca crl` keeps them), under its lock; drops its legacy counter. */
export async function recordInCaDir(caDir: string, serials: readonly string[], revokedAt: Date, reason: RevocationReason): Promise<void> {
  try {
    await updateCaState(caDir, (caJson) => addRevocations(caJson, serials, revokedAt, reason));
  } catch (err) {
    if (err instanceof CaStateError) throw new RegistryError(err.reason === 'busy' ? 'busy' : 'ca', err.message);
    throw err;
  }
}

export interface RevokeUserOptions {
  readonly keyd: KeydClient;
  readonly address: string;
  readonly reason?: RevocationReason;
  /** This host's CA, for a keyd that holds none (loaded only then). */
  readonly local: () => CrlUpdate;
  /** An `ssmax ca` directory on this host: its ca.json records what keyd revoked too, so a later `ssmax ca crl` keeps it. */
  readonly caDir?: string;
  readonly now: Date;
}

export interface RevokedUser {
  readonly user: RegisteredUser;
  /** Serials newly in the CRL. */
  readonly revoked: string[];
  readonly crlNumber: bigint;
  readonly crlFile: string;
  /** Who signed the CRL: keyd with the CA it holds, or this host's CA. */
  readonly signer: 'keyd' | 'local';
}

/** Revokes a user: through keyd when it holds the org CA, else suspended at keyd and the CRL signed here. */
export async function revokeUser(opts: RevokeUserOptions): Promise<RevokedUser> {
  const reason = opts.reason ?? 'unspecified';
  try {
    const r = await opts.keyd.call<{ user: RegisteredUser; added: string[]; crl: string; crlNumber: string }>(
      'POST',
      `/v1/registry/users/${encodeURIComponent(opts.address)}/revoke`,
      { reason },
    );
    if (opts.caDir && r.added.length > 0)
      await recordInCaDir(opts.caDir, r.added, new Date(Math.floor(opts.now.getTime() / 1000) * 1000), reason);
    return { user: r.user, revoked: r.added, crlNumber: BigInt(r.crlNumber), crlFile: r.crl, signer: 'keyd' };
  } catch (err) {
    if (!(err instanceof KeydClientError)) throw err;
    if (err.code !== 'not-configured') throw new RegistryError(err.transient ? 'unavailable' : 'refused', err.message);
  }
  const u = opts.local();
  const before = await getUser(opts.keyd, opts.address);
  const user = before.status === 'suspended' ? before : await setUserStatus(opts.keyd, opts.address, 'suspended');
  const serials = certificateSerials(before);
  const { crlNumber, added } = await revokeSerials(serials, reason, u);
  return { user, revoked: added, crlNumber, crlFile: u.crlFile, signer: 'local' };
}
