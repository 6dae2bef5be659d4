/**
 * What the org CA has revoked, as keyd can know it now: the one reader of "the org CA's revocations", used by
 * keyd's certificate renewal (src/keyd/cert-renewal.ts: a revoked certificate is never certified again) and by the
 * re-revocation at restore and at every keyd start (src/keyd/rollback.ts: a user whose certificate the org CA
 * revoked is marked revoked again). It reads:
 *
 *  - every entry of every CRL in [pki] crls issued and signed by the org CA ([pki] org_ca), and of a renewal's
 *    staged successor of such a file while one waits;
 *  - the `revoked` list of the org CA's own record, `ca.json` of its `ssmax ca` folder, when keyd is told where it
 *    is ([pki] org_ca_state: that file or folder; `auto`, the default: the ca.json beside [pki] org_ca_cert when
 *    one is there; `none`: the CRLs only). `ssmax ca revoke` records a revocation there at once; it reaches a CRL
 *    only at the next `ssmax ca crl`.
 *
 * One failure rule, for both: when the revocations cannot all be known, the reader throws
 * (CaRevocationsError) and its caller acts on nothing it read — renewal renews nothing, the re-revocation
 * reports the error (restore exits 1, keyd's start logs a WARNING) — never "no revocations". It cannot know them
 * when a file of [pki] crls cannot be read or parsed, a CRL naming the org CA does not verify with its key, no
 * file of [pki] crls is a CRL of the org CA at all, the org CA's certificate cannot be read, or the ca.json keyd
 * reads (named by org_ca_state, or found beside org_ca_cert) cannot be read.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { errnoText } from '../errors/errno';
import { caStatePath, readCaState } from '../pki/ca-state';
import { type ParsedCertificate, parseCertificate } from '../pki/certificate';
import { type RevocationReason, crlIssuedBy, parseCrl } from '../pki/crl';
import { crlFromIssuer } from '../pki/validate';
import type { KeydConfig } from './config';
import { stagedFile } from './renewal';

/** One revocation of the org CA: when, why, and where it is listed (a file, with the reason: for messages). */
export interface CaRevocation {
  readonly at: Date;
  readonly reason: RevocationReason;
  readonly where: string;
}

/** serial (hex) → its revocation. */
export type CaRevocationList = ReadonlyMap<string, CaRevocation>;

/** Reads the org CA's revocations now; throws CaRevocationsError when they cannot all be known. */
export type CaRevocations = () => CaRevocationList;

/** The org CA's revocations cannot all be known now: the message says which file and why. */
export class CaRevocationsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CaRevocationsError';
  }
}

/** A hold (certificateHold) is temporary, and removeFromCRL lifts one: listed, but no revocation that is final. */
export function finalRevocation(r: CaRevocation): boolean {
  return r.reason !== 'certificateHold' && r.reason !== 'removeFromCRL';
}

/** Adds `serial`'s revocation, unless listed already (the first listing counts; a final one replaces a hold). */
function add(out: Map<string, CaRevocation>, serial: string, r: CaRevocation): void {
  const had = out.get(serial);
  if (had === undefined || (!finalRevocation(had) && finalRevocation(r))) out.set(serial, r);
}

/**
 * The org CA's revocations as `ca` (its certificate), the CRL files `crlFiles` and its ca.json `caState` (a file,
 * or undefined: none) list them now. Throws CaRevocationsError when they cannot all be known (above).
 */
export function readCaRevocations(ca: ParsedCertificate, crlFiles: readonly string[], caState?: string): CaRevocationList {
  const out = new Map<string, CaRevocation>();
  let found = 0;
  for (const file of crlFiles) {
    for (const f of existsSync(stagedFile(file)) ? [file, stagedFile(file)] : [file]) {
      let text: string;
      try {
        text = readFileSync(f, 'utf8');
      } catch (err) {
        throw new CaRevocationsError(`cannot read the CRL "${f}" ([pki] crls): ${errnoText(err)}`, { cause: err });
      }
      let crl: ReturnType<typeof parseCrl>;
      try {
        crl = parseCrl(text);
      } catch (err) {
        throw new CaRevocationsError(`cannot read the CRL "${f}" ([pki] crls): ${(err as Error).message}`, { cause: err });
      }
      if (!crlIssuedBy(crl, ca.subjectDer)) continue; // another CA's (the root's): its serials are not this CA's
      if (!crlFromIssuer(crl, ca))
        throw new CaRevocationsError(`the CRL "${f}" names the org CA but its signature does not verify with the org CA's key`);
      found++;
      for (const e of crl.entries.values())
        add(out, e.serial, { at: e.revokedAt, reason: e.reason, where: `the CRL "${f}" (${e.reason})` });
    }
  }
  if (found === 0)
    throw new CaRevocationsError(`no CRL of the org CA ("${ca.subject}") in [pki] crls, so keyd cannot tell what it revoked`);
  if (caState !== undefined) {
    let state: ReturnType<typeof readCaState>;
    try {
      state = readCaState(dirname(caState)); // CaStateError, naming the file
    } catch (err) {
      throw new CaRevocationsError((err as Error).message, { cause: err });
    }
    for (const r of state.revoked) {
      const at = new Date(r.revokedAt);
      if (typeof r.serial !== 'string' || Number.isNaN(at.getTime()))
        throw new CaRevocationsError(`Cannot read CA state "${caState}": a revocation without a serial or a time`);
      add(out, r.serial, { at, reason: r.reason, where: `"${caState}" (${r.reason})` });
    }
  }
  return out;
}

/**
 * The org CA's ca.json keyd reads, from [pki] org_ca_state: `none` → undefined; `auto` (or unset) → the ca.json
 * beside [pki] org_ca_cert when one is there, else undefined; a path → that file (one named otherwise than ca.json
 * is taken as the CA folder, its ca.json), which must then be readable.
 */
export function caStateFileOf(config: Pick<KeydConfig, 'pki'>): string | undefined {
  const setting = config.pki.orgCaState ?? 'auto';
  if (setting === 'none') return undefined;
  if (setting === 'auto') {
    const cert = config.pki.orgCaCert;
    const beside = cert ? caStatePath(dirname(cert)) : undefined;
    return beside !== undefined && existsSync(beside) ? beside : undefined;
  }
  return basename(setting) === 'ca.json' ? setting : caStatePath(setting);
}

/**
 * A line for keyd's start when it reads no ca.json of the org CA although it holds the org CA (org_ca_state `auto`
 * found none): its revocations are then those of [pki] crls only. Undefined when there is nothing to say.
 */
export function caStateNote(config: Pick<KeydConfig, 'pki'>): string | undefined {
  if ((config.pki.orgCaState ?? 'auto') !== 'auto' || !config.pki.orgCaCert || caStateFileOf(config) !== undefined) return undefined;
  return `no ca.json beside [pki] org_ca_cert ("${config.pki.orgCaCert}"): keyd knows what the org CA revoked from [pki] crls only, so a revocation made with \`ssmax ca revoke\` counts here once \`ssmax ca crl\` has put it in one of them; set [pki] org_ca_state to the CA folder (or its ca.json) when this host has it, or org_ca_state=none to say it has not`;
}

/** Reads the org CA's certificate ([pki] org_ca); CaRevocationsError when it cannot be read. */
function orgCaOf(config: Pick<KeydConfig, 'pki'>): ParsedCertificate {
  try {
    return parseCertificate(readFileSync(config.pki.orgCa, 'utf8'));
  } catch (err) {
    throw new CaRevocationsError(`the org CA "${config.pki.orgCa}" ([pki] org_ca) cannot be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** The org CA's revocations for keyd's config: [pki] crls and its ca.json (caStateFileOf); `ca`: the org CA's certificate, else [pki] org_ca read. */
export function keydCaRevocations(config: Pick<KeydConfig, 'pki'>, ca?: ParsedCertificate): CaRevocations {
  return () => readCaRevocations(ca ?? orgCaOf(config), config.pki.crls, caStateFileOf(config));
}
