/**
 * The revocation knowledge every consumer of a peer's certificates shares
 * (the gateway's and the inspector's directory, keyd's re-encryption to a
 * peer): the local CRLs (`[pki] crls`, the root's among them, read through
 * a provider such as CrlFiles, so a replaced file counts from the next check
 * without a restart), and, per issuing CA, the CRL with the highest number
 * ever seen with a valid signature of a certificate that validated. A peer
 * keeps publishing the CRLs it has; one of them older than what was seen
 * (lower number) never replaces the knowledge of the newer: the newer is
 * handed to every validation beside it, and validation takes the highest
 * number (src/pki/validate.ts), so a serial revoked in a CRL seen here stays
 * revoked.
 *
 * Guarantees:
 * - `snapshot` throws when a local CRL cannot be read (the provider's error):
 *   nothing is validated against a set of CRLs missing one (fail closed);
 * - a CRL is remembered only once its signature verifies with the CA
 *   certificate it names, so a forged CRL with a high number displaces
 *   nothing;
 * - memory is bounded (`maxBytes` of DER): beyond it, the CRLs remembered
 *   longest ago are dropped first (never the local files);
 * - the local CRLs of the roots are remembered too (a file replaced by an
 *   older CRL forgets nothing);
 * - each validation gets the local CRLs, the remembered CRLs of the roots
 *   and of the CAs the carried CRLs name (not every CRL remembered), then
 *   the carried ones.
 */
import { bytesEqual, parseCertificate, type CertificateInput, type ParsedCertificate } from './certificate';
import { type CrlInput, type ParsedCrl, parseCrl } from './crl';
import { type ValidationCache, crlFromIssuer } from './validate';

/** The default bound on the remembered CRLs (DER bytes). */
const KNOWN_CRL_BYTES = 64 * 1024 * 1024;

export interface CrlSnapshot {
  /** Changes whenever the local CRLs change or a newer CRL of a root is remembered. */
  readonly anchorGeneration: number;
  /** Changes whenever anything changes (any newer CRL remembered too). */
  readonly generation: number;
  /** The local CRLs, the remembered ones of the roots and of the CAs `carried` names, then `carried`. */
  with(carried: readonly CrlInput[]): CrlInput[];
}

export interface KnownCrlsOptions {
  /** The local CRLs (PEM) as they are now; throws when one cannot be read. */
  readonly local?: () => readonly string[];
  /** The trusted roots: their CRLs are handed to every validation. */
  readonly roots: readonly CertificateInput[];
  readonly cache?: ValidationCache;
  readonly maxBytes?: number;
}

function issuerKey(issuerDer: Uint8Array, keyId: string | undefined): string {
  return `${Buffer.from(issuerDer).toString('hex')}:${keyId ?? ''}`;
}

export class KnownCrls {
  private readonly local: () => readonly string[];
  private readonly roots: readonly ParsedCertificate[];
  private readonly rootKeys: ReadonlySet<string>;
  private readonly cache: ValidationCache | undefined;
  private readonly maxBytes: number;
  /** issuer (name and key id) → the highest-numbered CRL seen, by insertion order (oldest first). */
  private readonly remembered = new Map<string, ParsedCrl>();
  private bytes = 0;
  private lastLocal: readonly string[] = [];
  private anchorGen = 0;
  private gen = 0;

  constructor(opts: KnownCrlsOptions) {
    const fixed: readonly string[] = [];
    this.local = opts.local ?? (() => fixed);
    this.roots = opts.roots.map((r) => parseCertificate(r));
    this.rootKeys = new Set(this.roots.map((r) => issuerKey(r.subjectDer, r.subjectKeyId)));
    this.cache = opts.cache;
    this.maxBytes = opts.maxBytes ?? KNOWN_CRL_BYTES;
  }

  /** How many CRLs are remembered now. */
  get size(): number {
    return this.remembered.size;
  }

  private parse(c: CrlInput): ParsedCrl {
    return this.cache ? this.cache.crl(c) : parseCrl(c);
  }

  /** The knowledge now; throws when a local CRL cannot be read. */
  snapshot(): CrlSnapshot {
    const local = [...this.local()];
    if (local.length !== this.lastLocal.length || local.some((t, i) => t !== this.lastLocal[i])) {
      this.lastLocal = local;
      this.anchorGen++;
      this.gen++;
      // remembered too: a local file replaced by an older CRL forgets nothing
      this.learn(local, []);
    }
    const forRoots = [...this.remembered.entries()].filter(([k]) => this.rootKeys.has(k)).map(([, c]) => c);
    return {
      anchorGeneration: this.anchorGen,
      generation: this.gen,
      with: (carried) => {
        const named: ParsedCrl[] = [];
        for (const c of carried) {
          let crl: ParsedCrl;
          try {
            crl = this.parse(c);
          } catch {
            continue; // the validation given it says it is malformed
          }
          const known = this.remembered.get(issuerKey(crl.issuerDer, crl.authorityKeyId));
          if (known && !forRoots.includes(known) && !named.includes(known)) named.push(known);
        }
        return [...local, ...forRoots, ...named, ...carried];
      },
    };
  }

  /**
   * Remembers each of `crls` signed by one of `issuers` (certificates that validated, or the roots)
   * whose number is higher than the one remembered for that CA. Never throws.
   */
  learn(crls: readonly CrlInput[], issuers: readonly ParsedCertificate[]): void {
    const cas = [...this.roots, ...issuers.filter((c) => c.isCA)];
    for (const c of crls) {
      let crl: ParsedCrl;
      try {
        crl = this.parse(c);
      } catch {
        continue;
      }
      if (crl.crlNumber === undefined || crl.unknownCriticalExtensions.length > 0) continue;
      const issuer = cas.find((ca) => bytesEqual(ca.subjectDer, crl.issuerDer) && crlFromIssuer(crl, ca, this.cache));
      if (!issuer) continue;
      const key = issuerKey(crl.issuerDer, crl.authorityKeyId);
      const known = this.remembered.get(key);
      if (known && (known.crlNumber ?? -1n) >= crl.crlNumber) continue;
      if (crl.der.length > this.maxBytes / 4) continue;
      if (known) {
        this.remembered.delete(key);
        this.bytes -= known.der.length;
      }
      this.remembered.set(key, crl);
      this.bytes += crl.der.length;
      while (this.bytes > this.maxBytes && this.remembered.size > 0) {
        const [oldest, dropped] = this.remembered.entries().next().value as [string, ParsedCrl];
        this.remembered.delete(oldest);
        this.bytes -= dropped.der.length;
      }
      this.gen++;
      if (this.rootKeys.has(key)) this.anchorGen++;
    }
  }
}
