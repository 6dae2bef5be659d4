/**
 * Nothing expires unattended (docs/operations.md, "Renewals"): the CRLs keyd
 * can sign — those issued by the org CA whose key keyd holds ([pki]
 * org_ca_cert / org_ca_key) — are re-signed by keyd's schedule well before
 * their nextUpdate: same revocations, next CRL number, a fresh validity;
 * written atomically (the publisher and the gateways re-read the files); each
 * renewal is an audit record (`crl.renew`), committed before the staged file
 * is renamed into place and never with file I/O inside its transaction. A CRL keyd cannot sign (the
 * root's, or the org CA's when keyd does not hold its key) gets a warning
 * line on every schedule run once it is within its warning window, and the
 * metric `ssmax_keyd_renewal_warning` (src/ops/keyd-ops.ts).
 *
 * Revocation (`revoke`, POST /v1/registry/users/{address}/revoke,
 * docs/keyd-api.md) re-issues the org CA's CRL at once through the same
 * code: the new entries added, the next CRL number, the same lifetime, staged,
 * its audit record (`registry.revoke`, committed together with the user's
 * status) before the rename. Renewals and revocations run one at a time,
 * each under the CA lock `ssmax ca crl` and `ssmax registry revoke` take
 * (src/pki/ca-state.ts), reading the file again under it: a CRL one of them
 * signed meanwhile keeps its revocations and its number.
 *
 * Settings: [crl] of ssmax-keyd.ini (defaults in CRL_RENEWAL_DEFAULTS).
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CA_LOCK, CA_LOCK_WAIT_MS, CaStateError, withCaFolderLock } from '../pki/ca-state';
import { IniReader, type Schema, defineSettings, readIniFile } from '../config/ini';
import { readCertificateFile } from '../config/setting-files';
import { parseCertificate } from '../pki/certificate';
import { type ParsedCrl, type RevocationEntry, type RevocationReason, createCrl, crlIssuedBy, parseCrl } from '../pki/crl';
import type { SigningAuthority } from '../pki/issue';
import type { AuditInput, AuditLog } from './audit';
import type { KeydConfig } from './config';
import { KeydError } from './errors';
import { readOrgCaKey } from './org-ca-key';

const DAY = 86400000;

export const CRL_RENEWAL_DEFAULTS = { renew: true, renew_at_days_left: 3, lifetime_days: 7, warn_at_days_left: 3 } as const;

export interface CrlRenewalPolicy {
  readonly renew: boolean;
  readonly renewBeforeMs: number;
  readonly validityMs: number;
  readonly warnBeforeMs: number;
}

export interface CrlState {
  readonly file: string;
  readonly issuer: string;
  readonly nextUpdate?: Date;
  /** keyd signs this one. */
  readonly renewable: boolean;
  /** Within its warning window and not renewable here (or its renewal failed). */
  readonly warning: boolean;
  readonly error?: string;
}

/** The range of a renewal window setting in days ([crl] and [certificates] of keyd's config file). */
export const RENEW_DAYS = { type: 'num', min: 0.0001, max: 3650 } as const;

/**
 * A renewal window from its three settings in days, as [crl] and [certificates] both give them:
 * renew_at_days_left must be less than lifetime_days (else every run would renew again).
 */
export function renewalWindowOf(
  r: Pick<IniReader<Schema>, 'fail'>,
  section: string,
  days: { renewAtDaysLeft: number; lifetimeDays: number; warnAtDaysLeft: number },
): { renewBeforeMs: number; validityMs: number; warnBeforeMs: number } {
  const window = {
    renewBeforeMs: days.renewAtDaysLeft * DAY,
    validityMs: days.lifetimeDays * DAY,
    warnBeforeMs: days.warnAtDaysLeft * DAY,
  };
  if (window.renewBeforeMs >= window.validityMs) throw r.fail(section, 'renew_at_days_left', 'must be less than lifetime_days');
  return window;
}

/** The [crl] settings of keyd's config file. */
export const CRL_SETTINGS = defineSettings({
  'crl.renew': { type: 'bool', default: CRL_RENEWAL_DEFAULTS.renew },
  'crl.renew_at_days_left': { ...RENEW_DAYS, default: CRL_RENEWAL_DEFAULTS.renew_at_days_left },
  'crl.lifetime_days': { ...RENEW_DAYS, default: CRL_RENEWAL_DEFAULTS.lifetime_days },
  'crl.warn_at_days_left': { ...RENEW_DAYS, default: CRL_RENEWAL_DEFAULTS.warn_at_days_left },
});

/** [crl] of keyd's config file. */
export function crlPolicyOf(config: KeydConfig): CrlRenewalPolicy {
  const r = new IniReader(CRL_SETTINGS, readIniFile(config.file, 'keyd config'), config.file);
  return {
    renew: r.get('crl.renew'),
    ...renewalWindowOf(r, 'crl', {
      renewAtDaysLeft: r.get('crl.renew_at_days_left'),
      lifetimeDays: r.get('crl.lifetime_days'),
      warnAtDaysLeft: r.get('crl.warn_at_days_left'),
    }),
  };
}

/** The org CA keyd holds, or undefined; `warn` is told when its key is stored unencrypted (src/keyd/org-ca-key.ts). */
export function orgCaOf(config: KeydConfig, warn?: (line: string) => void): SigningAuthority | undefined {
  const { orgCaCert, orgCaKey } = config.pki;
  if (!orgCaCert || !orgCaKey) return undefined;
  const pem = readCertificateFile(config.file, 'pki.org_ca_cert', orgCaCert);
  return { certificate: parseCertificate(pem), privateKey: readOrgCaKey(config, warn) };
}

/** Where a renewed CRL waits for its audit record before it replaces the file. */
export function stagedFile(file: string): string {
  return `${file}.renewed`;
}

/** The file, or its staged successor when one waits (same issuer either way). */
function stagedOrFile(file: string): string {
  return existsSync(file) ? file : stagedFile(file);
}

/** How long a revocation at keyd waits for the CA lock held by another command before it answers 503 busy: below the callers' timeouts (5 s by default). */
const REVOCATION_LOCK_WAIT_MS = 2_000;

/** The record ops whose committed record makes a staged CRL the real one (reconcile). */
const CRL_OPS = new Set(['crl.renew', 'registry.revoke']);

/** What the org CA's CRL became after a revocation. */
export interface CrlRevocation {
  readonly file: string;
  readonly crlNumber: bigint;
  /** Serials newly in the CRL (the others were already). */
  readonly added: readonly string[];
}

export class CrlRenewer {
  private states: CrlState[] = [];
  /**
   * Per file, the CRL this process last saw there or wrote (its number and entries). A file
   * replaced behind keyd by a CRL with a lower number, or without revocations keyd had (a
   * hand-signed CRL copied over it, signed before keyd's last revocation), is mended at the next
   * schedule run (or revocation, whichever comes first): those revocations kept, the number above
   * both; and it is logged. A newer CRL put there by hand that keeps them becomes what keyd knows.
   */
  private readonly known = new Map<string, { readonly number: bigint; readonly entries: ReadonlyMap<string, RevocationEntry> }>();
  /** Renewals and revocations, one at a time (each reads the file, signs the next number, replaces it). */
  private queue: Promise<unknown> = Promise.resolve();

  /** `lockDirOf`: the folder whose CA lock every writer of a CRL file takes (src/pki/ca-state.ts): the CA folder when keyd knows it, else the file's folder. */
  constructor(
    private readonly files: readonly string[],
    private readonly ca: SigningAuthority | undefined,
    private readonly policy: CrlRenewalPolicy,
    private readonly audit: AuditLog,
    private readonly log: (line: string) => void = () => undefined,
    private readonly lockDirOf: (file: string) => string = dirname,
  ) {}

  /**
   * Runs `fn` under the CA lock of `file` (`ssmax ca crl` and `ssmax registry revoke` write it under the same lock,
   * so a CRL they sign meanwhile is not overwritten), waiting up to `waitMs` for it (then 503 busy). keyd never makes
   * the lock's secret (a file of the CA's owner: made by keyd's account, it could lock the CA's own commands out);
   * without one (no command has locked that folder) or without the right to read it, `fn` runs unlocked, the latter
   * said in the log: the file is read again just before it is replaced either way (reissue).
   */
  private async underCaLock<T>(file: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
    const dir = this.lockDirOf(file);
    if (!existsSync(join(dir, CA_LOCK.secretFile))) return fn();
    let ran = false;
    try {
      return await withCaFolderLock(
        dir,
        () => {
          ran = true;
          return fn();
        },
        waitMs,
      );
    } catch (err) {
      if (err instanceof CaStateError && err.reason === 'busy')
        throw new KeydError('busy', `CRL "${file}" is being written by another process: ${err.message}; try again`);
      const code = (err as NodeJS.ErrnoException).code;
      if (ran || (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS')) throw err;
      this.log(`keyd: WARNING cannot take the CA lock of "${dir}" (${code}) to re-sign CRL "${file}": re-signing without it`);
      return fn();
    }
  }

  /** The CRLs as the last run saw them. */
  status(): readonly CrlState[] {
    return this.states;
  }

  private serial<T>(job: () => Promise<T>): Promise<T> {
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** `crl`, read from `file`: the first one this process reads there is what it knows of the file until it writes one. */
  private seen(file: string, crl: ParsedCrl): ParsedCrl {
    if (!this.known.has(file)) this.known.set(file, { number: crl.crlNumber ?? 0n, entries: crl.entries });
    return crl;
  }

  /**
   * Whether `crl`, now in `file`, lost revocations keyd had there or has a lower number than keyd last saw
   * (a stale copy put over it): then the number keyd had and how many revocations are missing.
   */
  private replaced(file: string, crl: ParsedCrl): { number: bigint; lost: number } | undefined {
    const before = this.known.get(file);
    if (!before) return undefined;
    const lost = [...before.entries.keys()].filter((serial) => !crl.entries.has(serial)).length;
    return lost > 0 || (crl.crlNumber ?? 0n) < before.number ? { number: before.number, lost } : undefined;
  }

  /**
   * One schedule run at `now`: renews what is due, re-signs at once a CRL replaced by one without
   * revocations keyd had (or with a lower number), warns about what cannot be renewed. Never throws.
   */
  run(now: Date): Promise<CrlState[]> {
    return this.serial(() => this.runNow(now));
  }

  /**
   * The CRL file a revocation goes into: the first of [pki] crls issued by the
   * org CA keyd holds. Throws (409 not-configured, naming the setting) when
   * keyd holds no CA or lists no CRL of it.
   */
  revocationFile(): string {
    if (!this.ca)
      throw new KeydError(
        'not-configured',
        'keyd does not hold the org CA ([pki] org_ca_cert and org_ca_key in ssmax-keyd.ini), so it cannot sign a CRL: revoke with `ssmax registry revoke` where the CA key is',
      );
    for (const file of this.files) {
      try {
        if (crlIssuedBy(parseCrl(readFileSync(stagedOrFile(file), 'utf8')), this.ca.certificate.subjectDer)) return file;
      } catch {
        // unreadable: not this one (the schedule warns about it)
      }
    }
    throw new KeydError(
      'not-configured',
      `None of the CRLs in [pki] crls of ssmax-keyd.ini is issued by the org CA keyd holds ("${this.ca.certificate.subject}"): add its CRL file there`,
    );
  }

  /**
   * Adds `serials` to the org CA's CRL and re-issues it now (next number, a
   * fresh validity of [crl] lifetime_days), staged; the audit record
   * `record(summary)` commits with `change` (the user's status) in one
   * transaction; then the file is replaced. A failed audit leaves the file
   * as it was.
   */
  revoke(
    serials: readonly string[],
    reason: RevocationReason,
    now: Date,
    record: (summary: string) => AuditInput,
    change?: () => void,
  ): Promise<CrlRevocation> {
    return this.serial(async () => {
      const file = this.revocationFile();
      await this.reconcile(file, REVOCATION_LOCK_WAIT_MS); // a revocation answers a request: it waits as little for the lock
      const crl = this.seen(file, parseCrl(readFileSync(file, 'utf8')));
      const revokedAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
      const entries = new Map<string, RevocationEntry>(crl.entries);
      const added: string[] = [];
      for (const s of serials) {
        if (entries.has(s)) continue;
        entries.set(s, { serial: s, revokedAt, reason });
        added.push(s);
      }
      const { crlNumber } = await this.reissue(
        file,
        crl,
        [...entries.values()],
        now,
        (summary) => record(`${summary}; added ${added.join(',') || 'none'} (${reason})`),
        change,
        // a revocation answers a request (whose client gives up after a few seconds): it waits less than a schedule run
        REVOCATION_LOCK_WAIT_MS,
      );
      return { file, crlNumber, added };
    });
  }

  /**
   * Signs the next CRL of `current` with `entries`, stages it beside `file`,
   * commits its audit record (and `change`), renames it into place. No file
   * I/O inside the audit transaction: a failed audit removes the staged file
   * (nothing happened); a rename that fails, or a stop in between, leaves it
   * staged, and the next run completes it, because its record is in the log
   * (reconcile). The file and the audit log cannot disagree for longer than
   * one run.
   */
  private async reissue(
    file: string,
    current: ParsedCrl,
    entries: RevocationEntry[],
    now: Date,
    record: (summary: string) => AuditInput,
    change?: () => void,
    waitMs = CA_LOCK_WAIT_MS,
  ): Promise<{ crlNumber: bigint; nextUpdate: Date; summary: string }> {
    return this.underCaLock(file, waitMs, async () => {
      // the file as it is now, under the lock: a CRL of this CA written since `current` was read (ssmax ca crl, ssmax
      // registry revoke) keeps its revocations and its number
      const latest = parseCrl(readFileSync(file, 'utf8'));
      if (crlIssuedBy(latest, this.ca!.certificate.subjectDer)) {
        const have = new Set(entries.map((e) => e.serial));
        const since = [...latest.entries.values()].filter((e) => !have.has(e.serial));
        if (since.length > 0) {
          this.log(
            `keyd: CRL "${file}" was re-signed by another writer while keyd re-signed it (number ${String(latest.crlNumber ?? 0n)}): keeping its ${since.length} revocation(s) (${since.map((e) => e.serial).join(',')})`,
          );
          entries = [...entries, ...since];
        }
        if ((latest.crlNumber ?? 0n) > (current.crlNumber ?? 0n)) current = latest;
      }
      const before = this.known.get(file);
      const onDisk = current.crlNumber ?? 0n;
      let number = onDisk;
      if (before) {
        const have = new Set(entries.map((e) => e.serial));
        const lost = [...before.entries.values()].filter((e) => !have.has(e.serial));
        if (lost.length > 0 || onDisk < before.number) {
          this.log(
            `keyd: ERROR CRL "${file}" was replaced by number ${onDisk}${lost.length > 0 ? ` without ${lost.length} revocation(s) keyd had (${lost.map((e) => e.serial).join(',')})` : ''}, where keyd last had number ${before.number}: keeping every revocation, numbering above both (sign by hand with ssmax ca crl, which merges this file)`,
          );
          entries = [...entries, ...lost];
        }
        if (before.number > number) number = before.number;
      }
      const renewed = createCrl(this.ca!, {
        entries,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + this.policy.validityMs),
        crlNumber: number + 1n,
      });
      const summary = `${file}: number ${renewed.crlNumber} with ${renewed.entries.size} revocation(s), nextUpdate ${renewed.nextUpdate!.toISOString()}`;
      const input = record(summary);
      const staged = stagedFile(file);
      writeFileSync(staged, renewed.pem, { mode: 0o644 });
      try {
        await this.audit.append({ ...input, reason: (input.reason ?? summary).slice(0, 300) }, now, change);
      } catch (err) {
        rmSync(staged, { force: true });
        throw err;
      }
      renameSync(staged, file);
      this.known.set(file, { number: renewed.crlNumber!, entries: renewed.entries });
      return { crlNumber: renewed.crlNumber!, nextUpdate: renewed.nextUpdate!, summary };
    });
  }

  private async runNow(now: Date): Promise<CrlState[]> {
    const out: CrlState[] = [];
    for (const file of this.files) {
      let state: CrlState;
      try {
        state = await this.one(file, now);
      } catch (err) {
        state = { file, issuer: '?', renewable: false, warning: true, error: (err as Error).message };
        this.log(`keyd: WARNING cannot check or renew CRL "${file}": ${(err as Error).message}`);
      }
      out.push(state);
    }
    this.states = out;
    return out;
  }

  /**
   * A renewal a stopped keyd left half done (see `one`): a staged CRL whose
   * `crl.renew` record committed is put in place; one without its record is
   * removed (it never happened, as far as the audit log is concerned). Under
   * the CA lock, as every writer of the file: when the file moved on meanwhile
   * (another writer signed a number at least the staged one's while keyd was
   * stopped), the staged CRL must not replace it — that would undo the
   * revocations signed since and send the number backwards. It is removed,
   * and becomes what keyd knows of the file: revocations of it that the file
   * lacks are signed into it by the run that follows (`replaced`), numbered
   * above both.
   */
  private async reconcile(file: string, waitMs = CA_LOCK_WAIT_MS): Promise<void> {
    const staged = stagedFile(file);
    if (!existsSync(staged)) return;
    await this.underCaLock(file, waitMs, async () => {
      if (!existsSync(staged)) return;
      let crl: ParsedCrl | undefined;
      try {
        crl = parseCrl(readFileSync(staged, 'utf8'));
      } catch {
        // unreadable: not a renewal anyone audited
      }
      const number = crl?.crlNumber;
      const audited =
        number !== undefined &&
        this.audit
          .tail(1000)
          .some((r) => CRL_OPS.has(r.op) && r.result === 'ok' && (r.reason ?? '').startsWith(`${file}: number ${number} `));
      if (!crl || number === undefined || !audited) {
        rmSync(staged, { force: true });
        this.log(`keyd: removed a staged CRL for "${file}" that has no audit record`);
        return;
      }
      let onDisk: ParsedCrl | undefined;
      try {
        onDisk = parseCrl(readFileSync(file, 'utf8'));
      } catch {
        // no file, or none that reads: the staged one replaces it
      }
      if (!onDisk || (onDisk.crlNumber ?? 0n) < number) {
        renameSync(staged, file);
        this.log(`keyd: completed the audited renewal of CRL "${file}" (number ${String(number)}) left staged`);
        return;
      }
      rmSync(staged, { force: true });
      const before = this.known.get(file);
      if (!before || before.number < number) this.known.set(file, { number, entries: crl.entries });
      const missing = [...crl.entries.keys()].filter((serial) => !onDisk.entries.has(serial));
      this.log(
        `keyd: a staged CRL for "${file}" (number ${String(number)}, audited) was not put in place: the file was signed since (number ${String(onDisk.crlNumber ?? 0n)})${missing.length > 0 ? `, without ${missing.length} revocation(s) of it (${missing.join(',')}), which keyd signs into it` : ''}`,
      );
    });
  }

  private async one(file: string, now: Date): Promise<CrlState> {
    await this.reconcile(file);
    const crl = this.seen(file, parseCrl(readFileSync(file, 'utf8')));
    const renewable = this.policy.renew && this.ca !== undefined && crlIssuedBy(crl, this.ca.certificate.subjectDer);
    const next = crl.nextUpdate;
    const left = next ? next.getTime() - now.getTime() : Infinity;
    const replaced = this.replaced(file, crl);
    if (replaced && !renewable)
      this.log(
        `keyd: ERROR CRL "${file}" was replaced by number ${crl.crlNumber ?? 0n}${replaced.lost > 0 ? ` without ${replaced.lost} revocation(s) keyd had` : ''}, where keyd last had number ${replaced.number}, and keyd cannot re-sign it: sign it by hand with ssmax ca crl (which merges this file) and with the revocations keyd had`,
      );
    else if (!replaced) this.known.set(file, { number: crl.crlNumber ?? 0n, entries: crl.entries }); // a newer one signed by hand, say
    if (renewable && (replaced || left <= this.policy.renewBeforeMs)) {
      const renewed = await this.reissue(file, crl, [...crl.entries.values()], now, (summary) => ({
        actor: 'keyd schedule',
        role: 'keyd',
        op: 'crl.renew',
        result: 'ok',
        reason: summary,
      }));
      this.log(`keyd: renewed CRL ${renewed.summary}`);
      return { file, issuer: crl.issuer, nextUpdate: renewed.nextUpdate, renewable, warning: false };
    }
    const warning = !renewable && left <= this.policy.warnBeforeMs;
    if (warning) {
      const why = !this.policy.renew
        ? '[crl] renew=false'
        : this.ca
          ? 'it is not issued by the org CA keyd holds'
          : 'keyd does not hold the org CA key';
      this.log(
        `keyd: WARNING CRL "${file}" of "${crl.issuer}" ${left <= 0 ? 'expired' : 'expires'} at ${next!.toISOString()} and keyd cannot renew it (${why}); re-sign it (ssmax ca crl) and replace the file`,
      );
    }
    return { file, issuer: crl.issuer, ...(next ? { nextUpdate: next } : {}), renewable, warning };
  }
}
