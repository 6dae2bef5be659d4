/**
 * Certificate revocation lists (RFC 5280 §5): one CRL per CA, v2, with a CRL
 * number, the authority key identifier, thisUpdate/nextUpdate and a reason code
 * per entry. Signed ECDSA P-256/SHA-256 like everything else.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { MalformedCertificateError, bytesEqual, readExtensions } from './certificate';
import {
  DerError,
  type Tlv,
  TAG,
  bigInteger,
  children,
  decodeBitString,
  decodeOid,
  decodeTime,
  expectTag,
  integerHex,
  parseDer,
  smallInteger,
} from './der';
import { type SigningAuthority, signTbs, toCertTime } from './issue';
import { formatName, parseName } from './name';
import { OID } from './oids';
import { fromPem } from './pem';
import { type SignedObject, signedObject } from './signed';

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

export interface ParsedCrl extends SignedObject {
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
        ...(code === 0
          ? {}
          : {
              crlEntryExtensions: new pkijs.Extensions({
                extensions: [
                  new pkijs.Extension({
                    extnID: OID.crlReason,
                    critical: false,
                    extnValue: new asn1js.Enumerated({ value: code }).toBER(),
                  }),
                ],
              }),
            }),
      });
    });
  }
  const akiValue = ca.certificate.subjectKeyId;
  const exts = [new pkijs.Extension({ extnID: OID.crlNumber, critical: false, extnValue: integerFromBigint(crlNumber).toBER() })];
  if (akiValue) {
    exts.push(
      new pkijs.Extension({
        extnID: OID.authorityKeyIdentifier,
        critical: false,
        extnValue: new pkijs.AuthorityKeyIdentifier({
          keyIdentifier: new asn1js.OctetString({ valueHex: new Uint8Array(Buffer.from(akiValue, 'hex')).buffer }),
        })
          .toSchema()
          .toBER(),
      }),
    );
  }
  crl.crlExtensions = new pkijs.Extensions({ extensions: exts });
  return parseCrl(signTbs(crl, ca.privateKey));
}

function parseDerCrl(der: Uint8Array): ParsedCrl {
  const [tbs, sigAlg, sigValue, extra] = children(parseDer(der, 'CRL', TAG.sequence), 'CRL');
  if (!tbs || !sigAlg || !sigValue || extra)
    throw new DerError('Cannot parse CRL: expected tbsCertList, signatureAlgorithm, signatureValue');
  const f = children(expectTag(tbs, TAG.sequence, 'tbsCertList'), 'tbsCertList');
  let i = 0;
  if (f[i]?.tag !== TAG.integer || smallInteger(f[i++] as Tlv, 'CRL version') !== 1) throw new DerError('Cannot parse CRL: not a v2 CRL');
  const innerAlg = f[i++];
  const issuerTlv = f[i++];
  const thisTlv = f[i++];
  if (!innerAlg || !issuerTlv || !thisTlv) throw new DerError('Cannot parse CRL: incomplete tbsCertList');
  if (Buffer.compare(Buffer.from(innerAlg.bytes), Buffer.from(sigAlg.bytes)) !== 0)
    throw new DerError('Cannot parse CRL: the signature algorithm inside and outside the signed part differ');
  const algParts = children(expectTag(sigAlg, TAG.sequence, 'signature algorithm'), 'signature algorithm');
  const signatureAlgorithm = decodeOid(algParts[0] ?? sigAlg, 'signature algorithm');
  let nextUpdate: Date | undefined;
  if (f[i]?.tag === TAG.utcTime || f[i]?.tag === TAG.generalizedTime) nextUpdate = decodeTime(f[i++] as Tlv, 'nextUpdate');
  const entries = new Map<string, RevocationEntry>();
  const unknownCritical: string[] = [];
  if (f[i]?.tag === TAG.sequence) {
    for (const rc of children(f[i++] as Tlv, 'revoked certificates')) {
      const [serialTlv, dateTlv, extsTlv, more] = children(expectTag(rc, TAG.sequence, 'revoked certificate'), 'revoked certificate');
      if (!serialTlv || !dateTlv || more) throw new DerError('Cannot parse CRL: bad revoked certificate entry');
      const serial = integerHex(serialTlv, 'revoked serial');
      let reason: RevocationReason = 'unspecified';
      if (extsTlv) {
        readExtensions(extsTlv, (id, critical, value) => {
          if (id === OID.crlReason) {
            const code = smallInteger(parseDer(value, 'CRL reason'), 'CRL reason', TAG.enumerated);
            const found = (Object.entries(REVOCATION_REASONS) as [RevocationReason, number][]).find(([, v]) => v === code);
            if (!found) throw new DerError(`Cannot parse CRL reason "${code}": unknown code`);
            reason = found[0];
          } else if (critical) {
            unknownCritical.push(id);
          }
        });
      }
      if (entries.has(serial)) throw new DerError(`Cannot parse CRL: serial "${serial}" is listed twice`);
      entries.set(serial, { serial, revokedAt: decodeTime(dateTlv, 'revocation date'), reason });
    }
  }
  let crlNumber: bigint | undefined;
  let authorityKeyId: string | undefined;
  if (f[i]?.tag === 0xa0) {
    const wrapped = children(f[i++] as Tlv, 'CRL extensions');
    if (wrapped.length !== 1) throw new DerError('Cannot parse CRL: bad extensions');
    readExtensions(wrapped[0] as Tlv, (id, critical, value) => {
      if (id === OID.crlNumber) crlNumber = bigInteger(parseDer(value, 'CRL number'), 'CRL number');
      else if (id === OID.authorityKeyIdentifier) {
        for (const part of children(parseDer(value, 'authority key identifier', TAG.sequence), 'authority key identifier')) {
          if (part.tag === 0x80) authorityKeyId = Buffer.from(part.value).toString('hex');
        }
      } else if (critical) unknownCritical.push(id);
    });
  }
  if (f[i]) throw new DerError('Cannot parse CRL: trailing fields in tbsCertList');
  const sig = decodeBitString(sigValue, 'CRL signature');
  if (sig.unusedBits !== 0) throw new DerError('Cannot parse CRL: signature BIT STRING has unused bits');
  const issuerDer = expectTag(issuerTlv, TAG.sequence, 'CRL issuer').bytes;
  return Object.freeze({
    ...signedObject(der, 'X509 CRL', tbs.bytes, signatureAlgorithm, sig.bytes),
    issuerDer,
    issuer: formatName(parseName(issuerTlv)),
    thisUpdate: decodeTime(thisTlv, 'thisUpdate'),
    nextUpdate,
    crlNumber,
    authorityKeyId,
    entries,
    unknownCriticalExtensions: unknownCritical,
  });
}

/** Parses a CRL from DER or PEM; throws MalformedCertificateError on bad input. */
export function parseCrl(input: CrlInput): ParsedCrl {
  if (typeof input === 'object' && input !== null && !(input instanceof Uint8Array) && 'entries' in input) return input;
  let der: Uint8Array;
  try {
    if (typeof input === 'string') der = fromPem(input, 'X509 CRL');
    else if (input instanceof Uint8Array) der = new Uint8Array(input);
    else throw new Error('expected DER bytes or a PEM string');
  } catch (err) {
    throw new MalformedCertificateError(`Cannot parse CRL: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return parseDerCrl(der);
  } catch (err) {
    if (err instanceof DerError) throw new MalformedCertificateError(err.message);
    throw err;
  }
}

/**
 * What the next CRL of one CA carries when it replaces `crls` (that CA's CRLs, read from its files) and the
 * CA's own record of what it revoked (`recorded`, numbered up to `recordedNumber`): every revocation once
 * (the recorded ones first, then each CRL's in order), and a number above all of them, so that it replaces
 * each of those CRLs wherever one is read (`ssmax ca crl`, `ssmax setup --force`).
 */
export function crlSuccessor(
  crls: readonly Pick<ParsedCrl, 'crlNumber' | 'entries'>[],
  recorded: readonly RevocationEntry[],
  recordedNumber: bigint,
): { readonly crlNumber: bigint; readonly entries: RevocationEntry[] } {
  const entries = new Map(recorded.map((e) => [e.serial, e]));
  for (const c of crls) for (const e of c.entries.values()) if (!entries.has(e.serial)) entries.set(e.serial, e);
  const highest = crls.reduce((n, c) => ((c.crlNumber ?? 0n) > n ? (c.crlNumber ?? 0n) : n), recordedNumber);
  return { crlNumber: highest + 1n, entries: [...entries.values()] };
}

/** True if the CRL was issued by (names) this CA certificate's subject. */
export function crlIssuedBy(crl: ParsedCrl, subjectDer: Uint8Array): boolean {
  return bytesEqual(crl.issuerDer, subjectDer);
}
