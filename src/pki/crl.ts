/**
 * Certificate revocation lists (RFC 5280 §5): one CRL per CA, v2, with a CRL
 * number, the authority key identifier, thisUpdate/nextUpdate and a reason code
 * per entry. Signed ECDSA P-256/SHA-256 like everything else.
 */
import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { MalformedCertificateError, bytesEqual } from './certificate';
import { type SigningAuthority, signTbs, toCertTime } from './issue';
import { formatName, nameAttributes } from './name';
import { OID, normalizeOid } from './oids';
import { fromPem, toPem } from './pem';

/** RFC 5280 §5.3.1 CRLReason; value 7 is unused. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

export type RevocationReason = keyof typeof REVOCATION_REASONS;

export function isRevocationReason(s: string): s is RevocationReason {
  return Object.prototype.hasOwnProperty.call(REVOCATION_REASONS, s);
}

export interface RevocationEntry {
  /** Serial number as lower-case hex of the DER integer content (ParsedCertificate.serial). */
  readonly serial: string;
  readonly revokedAt: Date;
  readonly reason: RevocationReason;
}

export interface ParsedCrl {
  readonly der: Uint8Array;
  readonly pem: string;
  readonly fingerprint: string;
  readonly tbs: Uint8Array;
  readonly signatureAlgorithm: string;
  readonly signature: Uint8Array;
  readonly issuerDer: Uint8Array;
  readonly issuer: string;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  readonly crlNumber: bigint | undefined;
  readonly authorityKeyId: string | undefined;
  /** By serial (hex). */
  readonly entries: ReadonlyMap<string, RevocationEntry>;
  readonly unknownCriticalExtensions: readonly string[];
}

export type CrlInput = Uint8Array | string | ParsedCrl;

export interface CrlOptions {
  readonly entries: readonly RevocationEntry[];
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  /** Monotonically increasing per CA (RFC 5280 §5.2.3). */
  readonly crlNumber: number | bigint;
}

function integerFromHex(hexStr: string): asn1js.Integer {
  if (!/^([0-9a-f]{2})+$/.test(hexStr)) throw new Error(`Cannot encode serial "${hexStr}": not lower-case hex bytes`);
  return new asn1js.Integer({ valueHex: new Uint8Array(Buffer.from(hexStr, 'hex')).buffer });
}

function integerFromBigint(n: bigint): asn1js.Integer {
  let h = n.toString(16);
  if (h.length % 2) h = `0${h}`;
  if (parseInt(h.slice(0, 2), 16) & 0x80) h = `00${h}`;
  return new asn1js.Integer({ valueHex: new Uint8Array(Buffer.from(h, 'hex')).buffer });
}

/** Builds and signs the CRL of `ca`. */
export function createCrl(ca: SigningAuthority, opts: CrlOptions): ParsedCrl {
  if (opts.nextUpdate.getTime() <= opts.thisUpdate.getTime()) throw new Error('Cannot create CRL: nextUpdate is not after thisUpdate');
  const crlNumber = BigInt(opts.crlNumber);
  if (crlNumber < 0n) throw new Error(`Cannot create CRL: CRL number "${crlNumber}" is negative`);
  const crl = new pkijs.CertificateRevocationList();
  crl.version = 1; // v2
  crl.issuer = pkijs.RelativeDistinguishedNames.fromBER(new Uint8Array(ca.certificate.subjectDer));
  crl.thisUpdate = toCertTime(opts.thisUpdate);
  crl.nextUpdate = toCertTime(opts.nextUpdate);
  const seen = new Set<string>();
  if (opts.entries.length > 0) {
    crl.revokedCertificates = opts.entries.map((e) => {
      if (seen.has(e.serial)) throw new Error(`Cannot create CRL: serial "${e.serial}" is listed twice`);
      seen.add(e.serial);
      const code = REVOCATION_REASONS[e.reason];
      if (code === undefined) throw new Error(`Cannot create CRL: unknown revocation reason "${String(e.reason)}"`);
      return new pkijs.RevokedCertificate({
        userCertificate: integerFromHex(e.serial),
        revocationDate: toCertTime(e.revokedAt),
        // RFC 5280 §5.3.1: the reason code "unspecified" SHOULD be absent.
        ...(code === 0 ? {} : { crlEntryExtensions: new pkijs.Extensions({ extensions: [new pkijs.Extension({ extnID: OID.crlReason, critical: false, extnValue: new asn1js.Enumerated({ value: code }).toBER() })] }) }),
      });
    });
  }
  const akiValue = ca.certificate.subjectKeyId;
  const exts = [new pkijs.Extension({ extnID: OID.crlNumber, critical: false, extnValue: integerFromBigint(crlNumber).toBER() })];
  if (akiValue) {
    exts.push(new pkijs.Extension({ extnID: OID.authorityKeyIdentifier, critical: false, extnValue: new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: new Uint8Array(Buffer.from(akiValue, 'hex')).buffer }) }).toSchema().toBER() }));
  }
  crl.crlExtensions = new pkijs.Extensions({ extensions: exts });
  return parseCrl(signTbs(crl, ca.privateKey));
}

/** Parses a CRL from DER or PEM; throws MalformedCertificateError on bad input. */
export function parseCrl(input: CrlInput): ParsedCrl {
  if (typeof input === 'object' && input !== null && !(input instanceof Uint8Array) && 'entries' in input) return input;
  let der: Uint8Array;
  try {
    der = typeof input === 'string' ? fromPem(input, 'X509 CRL') : input;
    if (!(der instanceof Uint8Array)) throw new Error('expected DER bytes or a PEM string');
  } catch (err) {
    throw new MalformedCertificateError(`Cannot parse CRL: ${err instanceof Error ? err.message : String(err)}`);
  }
  let crl: pkijs.CertificateRevocationList;
  try {
    const asn1 = asn1js.fromBER(der);
    if (asn1.offset === -1 || asn1.offset !== der.length) throw new Error('bad DER');
    crl = new pkijs.CertificateRevocationList({ schema: asn1.result });
  } catch (err) {
    throw new MalformedCertificateError(`Cannot parse CRL: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (crl.signature.algorithmId !== crl.signatureAlgorithm.algorithmId) throw new MalformedCertificateError('Cannot parse CRL: the signature algorithm inside and outside the signed part differ');
  let crlNumber: bigint | undefined;
  let authorityKeyId: string | undefined;
  const unknownCritical: string[] = [];
  for (const e of crl.crlExtensions?.extensions ?? []) {
    const id = normalizeOid(e.extnID);
    const value = e.extnValue.valueBlock.valueHexView;
    if (id === OID.crlNumber) {
      const int = asn1js.fromBER(value).result;
      if (!(int instanceof asn1js.Integer)) throw new MalformedCertificateError('Cannot parse CRL number: not an INTEGER');
      crlNumber = BigInt(`0x${Buffer.from(int.valueBlock.valueHexView).toString('hex') || '0'}`);
    } else if (id === OID.authorityKeyIdentifier) {
      try {
        const aki = new pkijs.AuthorityKeyIdentifier({ schema: asn1js.fromBER(value).result });
        if (aki.keyIdentifier) authorityKeyId = Buffer.from(aki.keyIdentifier.valueBlock.valueHexView).toString('hex');
      } catch {
        throw new MalformedCertificateError('Cannot parse CRL authority key identifier: bad structure');
      }
    } else if (e.critical) {
      unknownCritical.push(id);
    }
  }
  const entries = new Map<string, RevocationEntry>();
  for (const rc of crl.revokedCertificates ?? []) {
    const serial = Buffer.from(rc.userCertificate.valueBlock.valueHexView).toString('hex');
    let reason: RevocationReason = 'unspecified';
    for (const e of rc.crlEntryExtensions?.extensions ?? []) {
      const id = normalizeOid(e.extnID);
      if (id === OID.crlReason) {
        const en = asn1js.fromBER(e.extnValue.valueBlock.valueHexView).result;
        if (!(en instanceof asn1js.Enumerated)) throw new MalformedCertificateError('Cannot parse CRL reason: not an ENUMERATED');
        const found = (Object.entries(REVOCATION_REASONS) as [RevocationReason, number][]).find(([, v]) => v === en.valueBlock.valueDec);
        if (!found) throw new MalformedCertificateError(`Cannot parse CRL reason "${en.valueBlock.valueDec}": unknown code`);
        reason = found[0];
      } else if (e.critical) {
        unknownCritical.push(id);
      }
    }
    entries.set(serial, { serial, revokedAt: rc.revocationDate.value, reason });
  }
  const issuerDer = new Uint8Array(crl.issuer.valueBeforeDecode);
  return Object.freeze({
    der,
    pem: toPem('X509 CRL', der),
    fingerprint: createHash('sha256').update(der).digest('hex'),
    tbs: new Uint8Array(crl.tbsView),
    signatureAlgorithm: crl.signatureAlgorithm.algorithmId,
    signature: new Uint8Array(crl.signatureValue.valueBlock.valueHexView),
    issuerDer,
    issuer: formatName(nameAttributes(crl.issuer)),
    thisUpdate: crl.thisUpdate.value,
    nextUpdate: crl.nextUpdate?.value,
    crlNumber,
    authorityKeyId,
    entries,
    unknownCriticalExtensions: unknownCritical,
  });
}

/** True if the CRL was issued by (names) this CA certificate's subject. */
export function crlIssuedBy(crl: ParsedCrl, subjectDer: Uint8Array): boolean {
  return bytesEqual(crl.issuerDer, subjectDer);
}
