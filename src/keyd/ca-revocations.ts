/**
 * What the org CA keyd holds has revoked, as keyd can know it now: every
 * entry of every CRL in [pki] crls signed by that CA (and of a renewal's
 * staged successor, while one waits), and the `revoked` list of the CA's own
 * record (`ca.json`) when one lies beside [pki] org_ca_cert (org_ca_cert
 * naming a CA folder's ca.cert.pem). keyd's certificate renewal asks it before
 * every renewal (src/keyd/cert-renewal.ts): a revoked certificate is never
 * certified again.
 *
 * Fail closed: a file of [pki] crls that cannot be read or parsed, a CRL
 * naming the org CA whose signature does not verify, no CRL of the org CA
 * at all, or a ca.json that is there but cannot be read — each throws, and
 * nothing is renewed while it does.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { errnoText } from '../errors/errno';
import { caStatePath, readCaState } from '../pki/ca-state';
import type { ParsedCertificate } from '../pki/certificate';
import { crlIssuedBy, parseCrl } from '../pki/crl';
import { crlFromIssuer } from '../pki/validate';
import type { KeydConfig } from './config';
import { stagedFile } from './renewal';

/** serial (hex) → where it is listed as revoked (a file, with the reason). */
export type CaRevocationList = ReadonlyMap<string, string>;

/** Reads the org CA's revocations now; throws when they cannot be known. */
export type CaRevocations = () => CaRevocationList;

export function caRevocationsOf(ca: ParsedCertificate, crlFiles: readonly string[], caJson?: string): CaRevocations {
  return () => {
    const out = new Map<string, string>();
    let found = 0;
    for (const file of crlFiles) {
      for (const f of existsSync(stagedFile(file)) ? [file, stagedFile(file)] : [file]) {
        let text: string;
        try {
          text = readFileSync(f, 'utf8');
        } catch (err) {
          throw new Error(`cannot read the CRL "${f}" ([pki] crls): ${errnoText(err)}`, { cause: err });
        }
        let crl: ReturnType<typeof parseCrl>;
        try {
          crl = parseCrl(text);
        } catch (err) {
          throw new Error(`cannot read the CRL "${f}" ([pki] crls): ${(err as Error).message}`, { cause: err });
        }
        if (!crlIssuedBy(crl, ca.subjectDer)) continue;
        if (!crlFromIssuer(crl, ca))
          throw new Error(`the CRL "${f}" names the org CA but its signature does not verify with the org CA's key`);
        found++;
        for (const e of crl.entries.values()) if (!out.has(e.serial)) out.set(e.serial, `the CRL "${f}" (${e.reason})`);
      }
    }
    if (found === 0) throw new Error(`no CRL of the org CA ("${ca.subject}") in [pki] crls, so keyd cannot tell what it revoked`);
    if (caJson !== undefined && existsSync(caJson)) {
      const state = readCaState(dirname(caJson)); // throws CaStateError, naming the file
      for (const r of state.revoked) if (!out.has(r.serial)) out.set(r.serial, `"${caJson}" (${r.reason})`);
    }
    return out;
  };
}

/** The org CA's revocations for keyd's config: [pki] crls, and the ca.json beside [pki] org_ca_cert if one is there. */
export function keydCaRevocations(config: KeydConfig, ca: ParsedCertificate): CaRevocations {
  const certFile = config.pki.orgCaCert;
  return caRevocationsOf(ca, config.pki.crls, certFile ? caStatePath(dirname(certFile)) : undefined);
}
