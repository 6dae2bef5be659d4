/**
 * Parsing of X.509 certificates into a plain, read-only view that the validator,
 * the bundle code and the TLS services use. Parsing is strict: a certificate
 * that does not follow the structure we rely on throws `MalformedCertificateError`
 * (the validator turns it into the `malformed` result).
 */
import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { type KeyAlgorithm, keyAlgorithmOfSpki } from './keys';
import { type NameAttribute, formatName, nameAttributes } from './name';
import { EXT_KEY_VERSION, OID, ROLE_OIDS, type Role, normalizeOid } from './oids';
import { fromPem, toPem } from './pem';

export type KeyUsageBit =
  | 'digitalSignature' | 'nonRepudiation' | 'keyEncipherment' | 'dataEncipherment'
  | 'keyAgreement' | 'keyCertSign' | 'cRLSign' | 'encipherOnly' | 'decipherOnly';

/** RFC 5280 §4.2.1.3, bit order. */
export const KEY_USAGE_BITS: readonly KeyUsageBit[] = [
  'digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment',
  'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly',
];

/** A name of a name constraint or a subject alternative name we understand. */
export interface ConstraintName {
  readonly kind: 'dns' | 'email';
  readonly value: string;
}

export interface NameConstraintsView {
  readonly permitted: readonly ConstraintName[];
  readonly excluded: readonly ConstraintName[];
  /** True if a subtree uses a name form we do not evaluate (directoryName, IP, URI…). */
  readonly hasOtherForms: boolean;
}

export interface ParsedCertificate {
  readonly der: Uint8Array;
  readonly pem: string;
  /** SHA-256 of the DER, hex: the identity used by caches and bundles. */
  readonly fingerprint: string;
  readonly tbs: Uint8Array;
  readonly signatureAlgorithm: string;
  /** DER-encoded ECDSA signature value. */
  readonly signature: Uint8Array;
  /** Serial number, lower-case hex of the DER integer content. */
  readonly serial: string;
  readonly issuerDer: Uint8Array;
  readonly subjectDer: Uint8Array;
  readonly issuer: string;
  readonly subject: string;
  readonly subjectAttributes: readonly NameAttribute[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Uint8Array;
  readonly keyAlgorithm: KeyAlgorithm;
  readonly isCA: boolean;
  readonly pathLen: number | undefined;
  /** Undefined when the extension is absent (no restriction). */
  readonly keyUsage: ReadonlySet<KeyUsageBit> | undefined;
  /** Undefined when the extension is absent. */
  readonly extKeyUsage: readonly string[] | undefined;
  readonly policies: readonly string[];
  readonly dnsNames: readonly string[];
  readonly emails: readonly string[];
  readonly nameConstraints: NameConstraintsView | undefined;
  readonly subjectKeyId: string | undefined;
  readonly authorityKeyId: string | undefined;
  /** Version of an organisation encryption key (SSMAX extension). */
  readonly keyVersion: number | undefined;
  /** Critical extensions we do not process: such a certificate must not be accepted. */
  readonly unknownCriticalExtensions: readonly string[];
  readonly selfIssued: boolean;
}

export class MalformedCertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedCertificateError';
  }
}

export type CertificateInput = Uint8Array | string | ParsedCertificate;

function hex(bytes: Uint8Array | ArrayBuffer): string {
  return Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString('hex');
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

function decodeBer(bytes: Uint8Array, what: string): asn1js.AsnType {
  const asn1 = asn1js.fromBER(bytes);
  if (asn1.offset === -1 || asn1.offset !== bytes.length) throw new MalformedCertificateError(`Cannot parse ${what}: bad DER`);
  return asn1.result;
}

/** Decodes a KeyUsage BIT STRING into its named bits. */
export function decodeKeyUsage(bytes: Uint8Array): Set<KeyUsageBit> {
  const bits = decodeBer(bytes, 'key usage');
  if (!(bits instanceof asn1js.BitString)) throw new MalformedCertificateError('Cannot parse key usage: not a BIT STRING');
  const view = bits.valueBlock.valueHexView;
  const out = new Set<KeyUsageBit>();
  KEY_USAGE_BITS.forEach((name, i) => {
    const byte = view[i >> 3];
    if (byte !== undefined && (byte & (0x80 >> (i & 7))) !== 0) out.add(name);
  });
  return out;
}

function constraintName(gn: pkijs.GeneralName): ConstraintName | undefined {
  if (gn.type === 1 && typeof gn.value === 'string') return { kind: 'email', value: gn.value };
  if (gn.type === 2 && typeof gn.value === 'string') return { kind: 'dns', value: gn.value };
  return undefined;
}

function parsePkijs(der: Uint8Array): pkijs.Certificate {
  try {
    const asn1 = asn1js.fromBER(der);
    if (asn1.offset === -1 || asn1.offset !== der.length) throw new Error('bad DER');
    return new pkijs.Certificate({ schema: asn1.result });
  } catch (err) {
    throw new MalformedCertificateError(`Cannot parse certificate: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Parses a certificate from DER or PEM (an already parsed one is returned as is). */
export function parseCertificate(input: CertificateInput): ParsedCertificate {
  if (typeof input === 'object' && input !== null && !(input instanceof Uint8Array) && 'fingerprint' in input) return input;
  let der: Uint8Array;
  if (typeof input === 'string') {
    try {
      der = fromPem(input, 'CERTIFICATE');
    } catch (err) {
      throw new MalformedCertificateError(err instanceof Error ? err.message : String(err));
    }
  } else if (input instanceof Uint8Array) {
    der = input;
  } else {
    throw new MalformedCertificateError('Cannot parse certificate: expected DER bytes or a PEM string');
  }
  const cert = parsePkijs(der);
  if (cert.version !== 2) throw new MalformedCertificateError(`Cannot parse certificate: version ${cert.version + 1} is not X.509 v3`);
  const signatureAlgorithm = cert.signatureAlgorithm.algorithmId;
  if (cert.signature.algorithmId !== signatureAlgorithm) {
    throw new MalformedCertificateError('Cannot parse certificate: the signature algorithm inside and outside the signed part differ');
  }
  const issuerDer = new Uint8Array(cert.issuer.valueBeforeDecode);
  const subjectDer = new Uint8Array(cert.subject.valueBeforeDecode);
  const spki = new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER());

  let isCA = false;
  let pathLen: number | undefined;
  let keyUsage: Set<KeyUsageBit> | undefined;
  let extKeyUsage: string[] | undefined;
  let policies: string[] = [];
  const dnsNames: string[] = [];
  const emails: string[] = [];
  let nameConstraints: NameConstraintsView | undefined;
  let subjectKeyId: string | undefined;
  let authorityKeyId: string | undefined;
  let keyVersion: number | undefined;
  const unknownCritical: string[] = [];
  const seen = new Set<string>();

  for (const ext of cert.extensions ?? []) {
    const extnID = normalizeOid(ext.extnID);
    if (seen.has(extnID)) throw new MalformedCertificateError(`Cannot parse certificate: extension ${extnID} appears twice`);
    seen.add(extnID);
    const value = ext.extnValue.valueBlock.valueHexView;
    const structured = <T>(ctor: new (p: { schema: asn1js.AsnType }) => T, what: string): T => {
      try {
        return new ctor({ schema: decodeBer(value, what) });
      } catch (err) {
        if (err instanceof MalformedCertificateError) throw err;
        throw new MalformedCertificateError(`Cannot parse ${what}: bad structure`);
      }
    };
    switch (extnID) {
      case OID.basicConstraints: {
        const bc = structured(pkijs.BasicConstraints, 'basic constraints');
        isCA = bc.cA === true;
        if (bc.pathLenConstraint !== undefined) {
          if (typeof bc.pathLenConstraint !== 'number') throw new MalformedCertificateError('Cannot parse basic constraints: path length too large');
          pathLen = bc.pathLenConstraint;
        }
        break;
      }
      case OID.keyUsage:
        keyUsage = decodeKeyUsage(value);
        break;
      case OID.extKeyUsage:
        extKeyUsage = structured(pkijs.ExtKeyUsage, 'extended key usage').keyPurposes.map(normalizeOid);
        break;
      case OID.certificatePolicies:
        policies = structured(pkijs.CertificatePolicies, 'certificate policies').certificatePolicies.map((p) => normalizeOid(p.policyIdentifier));
        break;
      case OID.subjectAltName: {
        for (const gn of structured(pkijs.AltName, 'subject alternative name').altNames) {
          const n = constraintName(gn);
          if (n?.kind === 'dns') dnsNames.push(n.value);
          if (n?.kind === 'email') emails.push(n.value);
        }
        break;
      }
      case OID.nameConstraints: {
        const nc = structured(pkijs.NameConstraints, 'name constraints');
        let hasOtherForms = false;
        const collect = (subtrees: pkijs.GeneralSubtree[] | undefined): ConstraintName[] => {
          const out: ConstraintName[] = [];
          for (const st of subtrees ?? []) {
            const n = constraintName(st.base);
            if (n) out.push(n);
            else hasOtherForms = true;
          }
          return out;
        };
        nameConstraints = { permitted: collect(nc.permittedSubtrees), excluded: collect(nc.excludedSubtrees), hasOtherForms };
        break;
      }
      case OID.subjectKeyIdentifier: {
        const os = decodeBer(value, 'subject key identifier');
        if (!(os instanceof asn1js.OctetString)) throw new MalformedCertificateError('Cannot parse subject key identifier: not an OCTET STRING');
        subjectKeyId = hex(os.valueBlock.valueHexView);
        break;
      }
      case OID.authorityKeyIdentifier: {
        const aki = structured(pkijs.AuthorityKeyIdentifier, 'authority key identifier');
        if (aki.keyIdentifier) authorityKeyId = hex(aki.keyIdentifier.valueBlock.valueHexView);
        break;
      }
      case EXT_KEY_VERSION: {
        const int = decodeBer(value, 'key version');
        if (!(int instanceof asn1js.Integer)) throw new MalformedCertificateError('Cannot parse key version: not an INTEGER');
        const v = int.valueBlock.valueDec;
        if (!Number.isSafeInteger(v) || v < 1) throw new MalformedCertificateError(`Cannot parse key version "${v}": not a positive integer`);
        keyVersion = v;
        break;
      }
      default:
        if (ext.critical) unknownCritical.push(extnID);
    }
  }

  const subjectAttributes = nameAttributes(cert.subject);
  return Object.freeze({
    der,
    pem: toPem('CERTIFICATE', der),
    fingerprint: createHash('sha256').update(der).digest('hex'),
    tbs: new Uint8Array(cert.tbsView),
    signatureAlgorithm,
    signature: new Uint8Array(cert.signatureValue.valueBlock.valueHexView),
    serial: hex(cert.serialNumber.valueBlock.valueHexView),
    issuerDer,
    subjectDer,
    issuer: formatName(nameAttributes(cert.issuer)),
    subject: formatName(subjectAttributes),
    subjectAttributes,
    notBefore: cert.notBefore.value,
    notAfter: cert.notAfter.value,
    spki,
    keyAlgorithm: keyAlgorithmOfSpki(spki),
    isCA,
    pathLen,
    keyUsage,
    extKeyUsage,
    policies,
    dnsNames,
    emails,
    nameConstraints,
    subjectKeyId,
    authorityKeyId,
    keyVersion,
    unknownCriticalExtensions: unknownCritical,
    selfIssued: bytesEqual(issuerDer, subjectDer),
  });
}

/** The SSMAX role a TLS certificate carries, or undefined (not a role certificate, or several roles). */
export function roleOf(input: CertificateInput): Role | undefined {
  let cert: ParsedCertificate;
  try {
    cert = parseCertificate(input);
  } catch {
    return undefined;
  }
  const found = (Object.entries(ROLE_OIDS) as [Role, string][]).filter(([, oid]) => cert.extKeyUsage?.includes(oid));
  return found.length === 1 ? found[0]?.[0] : undefined;
}

/** The domain(s) an organisation CA is limited to (its permitted dNSName subtrees). */
export function constrainedDomains(cert: ParsedCertificate): string[] {
  return (cert.nameConstraints?.permitted ?? []).filter((n) => n.kind === 'dns').map((n) => n.value);
}

