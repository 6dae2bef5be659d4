/**
 * Certificates renewed before they lapse (docs/operations.md, "Renewals"):
 * the certificate files listed in `[certificates] renew` of ssmax-keyd.ini —
 * keyd's own TLS certificate, the gateways' sealing and client certificates,
 * the publisher's bundle-signer and TLS certificates, the inspector's — are
 * re-certified by keyd's schedule when fewer than `renew_at_days_left` days
 * are left, if the org CA keyd holds issued them.
 *
 * A renewal certifies the SAME public key again: the same subject, the same
 * extensions (names, role, key usage, …), a new serial and a fresh validity
 * (`lifetime_days`, never past the org CA's own notAfter). No private key is
 * read, generated or written. The first PEM block of the file is replaced;
 * the blocks after it (its chain) are kept; the file is written atomically
 * (staged as `<file>.renewed`, then renamed), so a process re-reading it sees
 * either the old or the new file. Each renewal is an audit record
 * (`cert.renew`) committed before the rename; no file is touched inside the
 * audit transaction.
 *
 * A revoked certificate is never renewed (recertify): before each renewal
 * keyd reads what the org CA revoked (src/keyd/ca-revocations.ts: the org
 * CA's CRLs in [pki] crls, its ca.json as [pki] org_ca_state says), and
 * refuses when the certificate's serial is listed, or any
 * serial under which keyd certified the same public key before (kept in
 * keyd's store with each renewal, in the audit record's transaction), or
 * when those revocations cannot be read. Such a certificate sets the warning
 * metric and logs an ERROR line naming the file and the serial on every
 * schedule run while it is due: a new key and certificate are needed.
 *
 * A certificate keyd cannot renew (issued by another CA, e.g. a Web PKI
 * certificate for the publisher, or an unreadable file) logs a WARNING line
 * on every schedule run once it is within `warn_at_days_left`, and sets
 * `ssmax_keyd_renewal_warning{item="cert:<file>"}` (src/ops/keyd-ops.ts).
 *
 * The processes using the files pick the renewed certificate up without a
 * restart (src/ops/reload.ts).
 */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as asn1js from 'asn1js';
import { IniReader, defineSettings, readIniFile } from '../config/ini';
import * as pkijs from 'pkijs';
import { createHash } from 'node:crypto';
import { bytesEqual, parseCertificate } from '../pki/certificate';
import { pemTexts } from '../pki/pem';
import { type SigningAuthority, randomSerial, signTbs, toCertTime } from '../pki/issue';
import type { AuditLog } from './audit';
import type { CaRevocationList, CaRevocations } from './ca-revocations';
import type { KeydConfig } from './config';
import { RENEW_DAYS, renewalWindowOf } from './renewal';

/** notBefore of a renewed certificate is this far in the past (clocks of peers slightly behind). */
const BACKDATE_MS = 3600000;

export const CERT_RENEWAL_DEFAULTS = { renew: '', renew_at_days_left: 30, lifetime_days: 90, warn_at_days_left: 14 } as const;

export interface CertRenewalPolicy {
  readonly files: readonly string[];
  readonly renewBeforeMs: number;
  readonly validityMs: number;
  readonly warnBeforeMs: number;
}

export interface CertState {
  readonly file: string;
  readonly subject: string;
  readonly notAfter?: Date;
  readonly renewable: boolean;
  readonly warning: boolean;
  readonly error?: string;
}

/** The [certificates] settings of keyd's config file. */
export const CERT_SETTINGS = defineSettings({
  'certificates.renew': { type: 'list', default: [] },
  'certificates.renew_at_days_left': { ...RENEW_DAYS, default: CERT_RENEWAL_DEFAULTS.renew_at_days_left },
  'certificates.lifetime_days': { ...RENEW_DAYS, default: CERT_RENEWAL_DEFAULTS.lifetime_days },
  'certificates.warn_at_days_left': { ...RENEW_DAYS, default: CERT_RENEWAL_DEFAULTS.warn_at_days_left },
});

/** [certificates] of keyd's config file; relative file names against the file's folder (as keyd's other paths). */
export function certPolicyOf(config: KeydConfig): CertRenewalPolicy {
  const r = new IniReader(CERT_SETTINGS, readIniFile(config.file, 'keyd config'), config.file);
  return {
    files: r.paths('certificates.renew'),
    ...renewalWindowOf(r, 'certificates', {
      renewAtDaysLeft: r.get('certificates.renew_at_days_left'),
      lifetimeDays: r.get('certificates.lifetime_days'),
      warnAtDaysLeft: r.get('certificates.warn_at_days_left'),
    }),
  };
}

/** Why a certificate may not be certified again: revoked, or its CA's revocations unknown (an administrator must act). */
export class RenewalRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RenewalRefused';
  }
}

/** What `recertify` checks the old certificate against. */
export interface RevocationCheck {
  /** The org CA's revocations now (keydCaRevocations); throws when they cannot be read. */
  readonly revocations: CaRevocations;
  /** Other serials the same public key was certified under (keyd's earlier renewals of it). */
  readonly earlierSerials?: readonly string[];
}

/**
 * `old` certified again by `ca`: same subject, key and extensions; new serial
 * and validity. Throws when `ca` did not issue `old`; throws RenewalRefused
 * when `old`'s serial, or an earlier serial of the same key, is revoked, or
 * when the revocations cannot be read.
 */
export function recertify(
  ca: SigningAuthority,
  old: string | Uint8Array,
  notBefore: Date,
  notAfter: Date,
  check: RevocationCheck,
): ReturnType<typeof parseCertificate> {
  const parsed = parseCertificate(old);
  if (!bytesEqual(parsed.issuerDer, ca.certificate.subjectDer))
    throw new Error(`it is issued by "${parsed.issuer}", not by the org CA keyd holds`);
  if (
    parsed.authorityKeyId !== undefined &&
    ca.certificate.subjectKeyId !== undefined &&
    parsed.authorityKeyId !== ca.certificate.subjectKeyId
  ) {
    throw new Error('it is issued by another key of the org CA');
  }
  if (parsed.isCA) throw new Error('it is a CA certificate');
  let revoked: CaRevocationList;
  try {
    revoked = check.revocations();
  } catch (err) {
    throw new RenewalRefused(`keyd cannot tell whether serial ${parsed.serial} is revoked: ${(err as Error).message}`);
  }
  const listed = revoked.get(parsed.serial)?.where;
  if (listed !== undefined) throw new RenewalRefused(`serial ${parsed.serial} is revoked (in ${listed})`);
  for (const serial of check.earlierSerials ?? []) {
    const where = revoked.get(serial)?.where;
    if (where !== undefined)
      throw new RenewalRefused(`its public key was certified under serial ${serial}, which is revoked (in ${where})`);
  }
  const cert = pkijs.Certificate.fromBER(new Uint8Array(parsed.der));
  cert.serialNumber = new asn1js.Integer({ valueHex: randomSerial().slice().buffer });
  cert.notBefore = toCertTime(notBefore);
  cert.notAfter = toCertTime(notAfter > ca.certificate.notAfter ? ca.certificate.notAfter : notAfter);
  return parseCertificate(signTbs(cert, ca.privateKey));
}

/** The serials keyd certified each public key under (its renewals), kept in keyd's store. */
export interface KeySerials {
  /** The serials recorded for the key with this SubjectPublicKeyInfo. */
  get(spki: Uint8Array): readonly string[];
  /** Records `serials` for the key; called inside the renewal's audit transaction. */
  put(spki: Uint8Array, serials: readonly string[]): void;
}

/** The most serials kept per key (the newest). */
const MAX_KEY_SERIALS = 64;

/** KeySerials in the `meta` database of keyd's store. */
export function storeKeySerials(meta: { get(key: string): unknown; put(key: string, value: unknown): unknown }): KeySerials {
  const keyOf = (spki: Uint8Array) => `cert-serials:${createHash('sha256').update(spki).digest('base64url')}`;
  return {
    get: (spki) => {
      const v = meta.get(keyOf(spki));
      return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
    },
    put: (spki, serials) => void meta.put(keyOf(spki), serials.slice(-MAX_KEY_SERIALS)),
  };
}

export interface CertRenewerOptions {
  /** The org CA's revocations (keydCaRevocations); without them nothing is renewed. */
  readonly revocations?: CaRevocations;
  /** Earlier serials of each key; without it only the certificate's own serial is checked. */
  readonly keySerials?: KeySerials;
}

export class CertRenewer {
  private states: CertState[] = [];

  constructor(
    private readonly policy: CertRenewalPolicy,
    private readonly ca: SigningAuthority | undefined,
    private readonly audit: AuditLog,
    private readonly log: (line: string) => void = () => undefined,
    private readonly opts: CertRenewerOptions = {},
  ) {}

  status(): readonly CertState[] {
    return this.states;
  }

  /** One schedule run at `now`: renews what is due, warns about what cannot be renewed; the files renewed. Never throws. */
  async run(now: Date): Promise<string[]> {
    const out: CertState[] = [];
    const renewed: string[] = [];
    for (const file of this.policy.files) {
      try {
        const { state, changed } = await this.one(file, now);
        out.push(state);
        if (changed) renewed.push(file);
      } catch (err) {
        out.push({ file, subject: '?', renewable: false, warning: true, error: (err as Error).message });
        this.log(`keyd: WARNING cannot check or renew certificate "${file}": ${(err as Error).message}`);
      }
    }
    this.states = out;
    return renewed;
  }

  private async one(file: string, now: Date): Promise<{ state: CertState; changed: boolean }> {
    const text = readFileSync(file, 'utf8');
    const blocks = pemTexts(text); // linear; each block ends in a newline
    if (blocks.length === 0 || !blocks[0]!.startsWith('-----BEGIN CERTIFICATE-----'))
      throw new Error('no certificate (the first PEM block must be one)');
    const cert = parseCertificate(blocks[0]!);
    const left = cert.notAfter.getTime() - now.getTime();
    let why: string | undefined;
    let refused = false;
    if (!this.ca) why = 'keyd does not hold the org CA key ([pki] org_ca_cert, org_ca_key)';
    else if (cert.isCA) why = 'it is a CA certificate';
    else if (!bytesEqual(cert.issuerDer, this.ca.certificate.subjectDer))
      why = `it is issued by "${cert.issuer}", not by the org CA keyd holds`;
    if (this.ca && why === undefined && left <= this.policy.renewBeforeMs) {
      try {
        const earlierSerials = this.opts.keySerials?.get(cert.spki) ?? [];
        const revocations: CaRevocations =
          this.opts.revocations ??
          (() => {
            throw new Error('keyd was given no revocation state of the org CA');
          });
        const fresh = recertify(
          this.ca,
          cert.der,
          new Date(now.getTime() - BACKDATE_MS),
          new Date(now.getTime() + this.policy.validityMs),
          {
            revocations,
            earlierSerials,
          },
        );
        if (fresh.notAfter.getTime() <= cert.notAfter.getTime())
          throw new Error(`the org CA itself expires at ${this.ca.certificate.notAfter.toISOString()}`);
        const reason = `${file}: "${cert.subject}" serial ${fresh.serial} (was ${cert.serial}), notAfter ${fresh.notAfter.toISOString()}`;
        const mode = statSync(file).mode & 0o777;
        // No file I/O inside the audit transaction: the renewed file is staged,
        // the record commits, then the staged file is renamed into place. A
        // stop between the two leaves the old certificate (renewed again on the
        // next run) and a record of a serial never installed; a failed record
        // leaves nothing.
        const staged = `${file}.renewed`;
        writeFileSync(staged, [fresh.pem.endsWith('\n') ? fresh.pem : `${fresh.pem}\n`, ...blocks.slice(1)].join(''), { mode });
        try {
          // the key's serials, recorded with the renewal: a later revocation of any of them stops its renewals
          const keySerials = this.opts.keySerials;
          const serials = [...earlierSerials.filter((s) => s !== cert.serial && s !== fresh.serial), cert.serial, fresh.serial];
          await this.audit.append(
            { actor: 'keyd schedule', role: 'keyd', op: 'cert.renew', result: 'ok', reason: reason.slice(0, 300) },
            now,
            keySerials ? () => keySerials.put(cert.spki, serials) : undefined,
          );
        } catch (err) {
          rmSync(staged, { force: true });
          throw err;
        }
        // someone replaced the file while its record was written (`ssmax ca issue --force`, a new key): theirs
        // stands, never overwritten with a renewal of the old certificate; the next run checks the new one. (A
        // replacement landing between this comparison and the rename, microseconds, is still overwritten: keyd
        // takes no lock the CA commands take.)
        if (readFileSync(file, 'utf8') !== text) {
          rmSync(staged, { force: true });
          this.log(
            `keyd: certificate "${file}" changed while keyd renewed it; the new file is kept (the renewal, serial ${fresh.serial}, is not installed) and checked at the next run`,
          );
          return { state: { file, subject: cert.subject, notAfter: cert.notAfter, renewable: true, warning: false }, changed: false };
        }
        renameSync(staged, file);
        this.log(`keyd: renewed certificate ${reason}`);
        return { state: { file, subject: cert.subject, notAfter: fresh.notAfter, renewable: true, warning: false }, changed: true };
      } catch (err) {
        why = (err as Error).message;
        refused = err instanceof RenewalRefused;
      }
    }
    if (refused) {
      // whatever the warning window: a revoked certificate (or one keyd cannot check) is never renewed, and someone must act
      this.log(
        `keyd: ERROR certificate "${file}" ("${cert.subject}", serial ${cert.serial}) is not renewed: ${why}; it ${left <= 0 ? 'expired' : 'expires'} at ${cert.notAfter.toISOString()}: issue a new key and certificate (ssmax ca issue) and replace the file`,
      );
      return {
        state: { file, subject: cert.subject, notAfter: cert.notAfter, renewable: false, warning: true, error: why },
        changed: false,
      };
    }
    const warning = why !== undefined && left <= this.policy.warnBeforeMs;
    if (warning)
      this.log(
        `keyd: WARNING certificate "${file}" ("${cert.subject}") ${left <= 0 ? 'expired' : 'expires'} at ${cert.notAfter.toISOString()} and keyd cannot renew it (${why}); renew it (ssmax ca issue) and replace the file`,
      );
    return { state: { file, subject: cert.subject, notAfter: cert.notAfter, renewable: why === undefined, warning }, changed: false };
  }
}
