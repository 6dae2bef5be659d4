/**
 * Parsing of X.509 certificates into a plain, read-only view that the validator,
 * the bundle code and the TLS services use. Parsing is strict: a certificate
 * that does not follow the structure we rely on throws `MalformedCertificateError`
 * (the validator turns it into the `malformed` result).
 */
import {
  DerError,
  type Tlv,
  TAG,
  children,
  decodeBitString,
  decodeBoolean,
  decodeOid,
  decodeString,
  decodeTime,
  expectTag,
  integerHex,
  parseDer,
  smallInteger,
} from './der';
import type { KeyAlgorithm } from './keys';
import { type NameAttribute, formatName, parseName } from './name';
import { EXT_KEY_VERSION, OID, ROLE_OIDS, type Role } from './oids';
import { fromPem } from './pem';
import { type SignedObject, signedObject } from './signed';

export type KeyUsageBit =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign'
  | 'encipherOnly'
  | 'decipherOnly';

/** RFC 5280 §4.2.1.3, bit order. */
export const KEY_USAGE_BITS: readonly KeyUsageBit[] = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
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

export interface ParsedCertificate extends SignedObject {
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

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Decodes a KeyUsage BIT STRING into its named bits. */
export function decodeKeyUsage(bytes: Uint8Array): Set<KeyUsageBit> {
  const view = decodeBitString(parseDer(bytes, 'key usage'), 'key usage').bytes;
  const out = new Set<KeyUsageBit>();
  KEY_USAGE_BITS.forEach((name, i) => {
    const byte = view[i >> 3];
    if (byte !== undefined && (byte & (0x80 >> (i & 7))) !== 0) out.add(name);
  });
  return out;
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}

/** A GeneralName (RFC 5280 §4.2.1.6) we evaluate: rfc822Name [1] or dNSName [2], IA5String contents. */
function generalName(tlv: Tlv, what: string): ConstraintName | undefined {
  if (tlv.tag !== 0x81 && tlv.tag !== 0x82) return undefined;
  const value = decodeString({ ...tlv, tag: TAG.ia5String }, what);
  return { kind: tlv.tag === 0x81 ? 'email' : 'dns', value };
}

const SIGNATURE_ALG_WHAT = 'signature algorithm';

function algorithmOid(tlv: Tlv, what: string): string {
  const parts = children(expectTag(tlv, TAG.sequence, what), what);
  return decodeOid(parts[0] ?? ({ tag: 0, bytes: new Uint8Array(0), value: new Uint8Array(0) } as Tlv), what);
}

/** Curve of a SubjectPublicKeyInfo from its algorithm identifier (id-ecPublicKey + named curve). */
function keyAlgorithmOf(spki: Tlv): KeyAlgorithm {
  const [alg, key] = children(expectTag(spki, TAG.sequence, 'public key'), 'public key');
  if (!alg || !key) throw new DerError('Cannot parse public key: incomplete');
  decodeBitString(key, 'public key');
  const [oid, params] = children(expectTag(alg, TAG.sequence, 'public key algorithm'), 'public key algorithm');
  if (!oid || decodeOid(oid, 'public key algorithm') !== OID.ecPublicKey || !params || params.tag !== TAG.oid) return 'other';
  const curve = decodeOid(params, 'named curve');
  return curve === OID.prime256v1 ? 'p256' : curve === OID.secp256k1 ? 'secp256k1' : 'other';
}

interface ExtensionsView {
  isCA: boolean;
  pathLen: number | undefined;
  keyUsage: Set<KeyUsageBit> | undefined;
  extKeyUsage: string[] | undefined;
  policies: string[];
  dnsNames: string[];
  emails: string[];
  nameConstraints: NameConstraintsView | undefined;
  subjectKeyId: string | undefined;
  authorityKeyId: string | undefined;
  keyVersion: number | undefined;
  unknownCritical: string[];
}

function parseExtension(out: ExtensionsView, extnID: string, critical: boolean, value: Uint8Array): void {
  switch (extnID) {
    case OID.basicConstraints: {
      const parts = children(parseDer(value, 'basic constraints', TAG.sequence), 'basic constraints');
      let i = 0;
      if (parts[i]?.tag === TAG.boolean) out.isCA = decodeBoolean(parts[i++] as Tlv, 'basic constraints');
      if (parts[i]) out.pathLen = smallInteger(parts[i++] as Tlv, 'path length');
      if (parts[i]) throw new DerError('Cannot parse basic constraints: extra fields');
      break;
    }
    case OID.keyUsage:
      out.keyUsage = decodeKeyUsage(value);
      break;
    case OID.extKeyUsage:
      out.extKeyUsage = children(parseDer(value, 'extended key usage', TAG.sequence), 'extended key usage').map((t) =>
        decodeOid(t, 'key purpose'),
      );
      break;
    case OID.certificatePolicies:
      out.policies = children(parseDer(value, 'certificate policies', TAG.sequence), 'certificate policies').map((pi) => {
        const first = children(expectTag(pi, TAG.sequence, 'policy information'), 'policy information')[0];
        if (!first) throw new DerError('Cannot parse policy information: empty');
        return decodeOid(first, 'policy identifier');
      });
      break;
    case OID.subjectAltName:
      for (const gn of children(parseDer(value, 'subject alternative name', TAG.sequence), 'subject alternative name')) {
        const n = generalName(gn, 'subject alternative name');
        if (n?.kind === 'dns') out.dnsNames.push(n.value);
        if (n?.kind === 'email') out.emails.push(n.value);
      }
      break;
    case OID.nameConstraints: {
      let hasOtherForms = false;
      const permitted: ConstraintName[] = [];
      const excluded: ConstraintName[] = [];
      for (const part of children(parseDer(value, 'name constraints', TAG.sequence), 'name constraints')) {
        if (part.tag !== 0xa0 && part.tag !== 0xa1) throw new DerError('Cannot parse name constraints: unexpected field');
        for (const subtree of children(part, 'name constraints')) {
          const base = children(expectTag(subtree, TAG.sequence, 'general subtree'), 'general subtree')[0];
          if (!base) throw new DerError('Cannot parse general subtree: empty');
          const n = generalName(base, 'name constraints');
          if (!n) hasOtherForms = true;
          else (part.tag === 0xa0 ? permitted : excluded).push(n);
        }
      }
      out.nameConstraints = { permitted, excluded, hasOtherForms };
      break;
    }
    case OID.subjectKeyIdentifier:
      out.subjectKeyId = hexOf(parseDer(value, 'subject key identifier', TAG.octetString).value);
      break;
    case OID.authorityKeyIdentifier:
      for (const part of children(parseDer(value, 'authority key identifier', TAG.sequence), 'authority key identifier')) {
        if (part.tag === 0x80) out.authorityKeyId = hexOf(part.value);
      }
      break;
    case EXT_KEY_VERSION: {
      const v = smallInteger(parseDer(value, 'key version'), 'key version');
      if (v < 1) throw new DerError(`Cannot parse key version "${v}": not a positive integer`);
      out.keyVersion = v;
      break;
    }
    default:
      if (critical) out.unknownCritical.push(extnID);
  }
}

/** Reads an Extensions SEQUENCE (certificates and CRLs). */
export function readExtensions(seq: Tlv, onExtension: (extnID: string, critical: boolean, value: Uint8Array) => void): void {
  const seen = new Set<string>();
  for (const ext of children(expectTag(seq, TAG.sequence, 'extensions'), 'extensions')) {
    const parts = children(expectTag(ext, TAG.sequence, 'extension'), 'extension');
    const extnID = decodeOid(parts[0] ?? ext, 'extension id');
    if (seen.has(extnID)) throw new DerError(`Cannot parse certificate: extension ${extnID} appears twice`);
    seen.add(extnID);
    let i = 1;
    let critical = false;
    if (parts[i]?.tag === TAG.boolean) critical = decodeBoolean(parts[i++] as Tlv, 'extension criticality');
    const value = parts[i++];
    if (!value || parts[i]) throw new DerError(`Cannot parse extension ${extnID}: bad structure`);
    onExtension(extnID, critical, expectTag(value, TAG.octetString, `extension ${extnID}`).value);
  }
}

function parseDerCertificate(der: Uint8Array): ParsedCertificate {
  const [tbs, sigAlg, sigValue, extra] = children(parseDer(der, 'certificate', TAG.sequence), 'certificate');
  if (!tbs || !sigAlg || !sigValue || extra)
    throw new DerError('Cannot parse certificate: expected tbsCertificate, signatureAlgorithm, signatureValue');
  const f = children(expectTag(tbs, TAG.sequence, 'tbsCertificate'), 'tbsCertificate');
  let i = 0;
  const versionTlv = f[i]?.tag === 0xa0 ? children(f[i++] as Tlv, 'version')[0] : undefined;
  if (!versionTlv || smallInteger(versionTlv, 'version') !== 2) throw new DerError('Cannot parse certificate: not X.509 v3');
  const [serialTlv, innerAlg, issuerTlv, validityTlv, subjectTlv, spkiTlv] = [f[i++], f[i++], f[i++], f[i++], f[i++], f[i++]];
  if (!serialTlv || !innerAlg || !issuerTlv || !validityTlv || !subjectTlv || !spkiTlv)
    throw new DerError('Cannot parse certificate: incomplete tbsCertificate');
  const serial = integerHex(serialTlv, 'serial number');
  const signatureAlgorithm = algorithmOid(sigAlg, SIGNATURE_ALG_WHAT);
  if (Buffer.compare(Buffer.from(innerAlg.bytes), Buffer.from(sigAlg.bytes)) !== 0) {
    throw new DerError('Cannot parse certificate: the signature algorithm inside and outside the signed part differ');
  }
  const [nb, na, more] = children(expectTag(validityTlv, TAG.sequence, 'validity'), 'validity');
  if (!nb || !na || more) throw new DerError('Cannot parse certificate: bad validity');
  const out: ExtensionsView = {
    isCA: false,
    pathLen: undefined,
    keyUsage: undefined,
    extKeyUsage: undefined,
    policies: [],
    dnsNames: [],
    emails: [],
    nameConstraints: undefined,
    subjectKeyId: undefined,
    authorityKeyId: undefined,
    keyVersion: undefined,
    unknownCritical: [],
  };
  while (f[i] && (f[i] as Tlv).tag !== 0xa3) {
    if ((f[i] as Tlv).tag !== 0x81 && (f[i] as Tlv).tag !== 0x82)
      throw new DerError('Cannot parse certificate: unexpected field in tbsCertificate');
    i++; // issuerUniqueID / subjectUniqueID: ignored
  }
  if (f[i]) {
    const wrapped = children(f[i++] as Tlv, 'extensions');
    if (wrapped.length !== 1) throw new DerError('Cannot parse certificate: bad extensions');
    readExtensions(wrapped[0] as Tlv, (id, critical, value) => parseExtension(out, id, critical, value));
  }
  if (f[i]) throw new DerError('Cannot parse certificate: trailing fields in tbsCertificate');
  const sig = decodeBitString(sigValue, 'signature');
  if (sig.unusedBits !== 0) throw new DerError('Cannot parse certificate: signature BIT STRING has unused bits');
  const issuerDer = expectTag(issuerTlv, TAG.sequence, 'issuer').bytes;
  const subjectDer = expectTag(subjectTlv, TAG.sequence, 'subject').bytes;
  const subjectAttributes = parseName(subjectTlv);
  return Object.freeze({
    ...signedObject(der, 'CERTIFICATE', tbs.bytes, signatureAlgorithm, sig.bytes),
    serial,
    issuerDer,
    subjectDer,
    issuer: formatName(parseName(issuerTlv)),
    subject: formatName(subjectAttributes),
    subjectAttributes,
    notBefore: decodeTime(nb, 'notBefore'),
    notAfter: decodeTime(na, 'notAfter'),
    spki: spkiTlv.bytes,
    keyAlgorithm: keyAlgorithmOf(spkiTlv),
    isCA: out.isCA,
    pathLen: out.pathLen,
    keyUsage: out.keyUsage,
    extKeyUsage: out.extKeyUsage,
    policies: out.policies,
    dnsNames: out.dnsNames,
    emails: out.emails,
    nameConstraints: out.nameConstraints,
    subjectKeyId: out.subjectKeyId,
    authorityKeyId: out.authorityKeyId,
    keyVersion: out.keyVersion,
    unknownCriticalExtensions: out.unknownCritical,
    selfIssued: bytesEqual(issuerDer, subjectDer),
  });
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
    der = new Uint8Array(input); // a private copy: callers may reuse their buffer
  } else {
    throw new MalformedCertificateError('Cannot parse certificate: expected DER bytes or a PEM string');
  }
  try {
    return parseDerCertificate(der);
  } catch (err) {
    if (err instanceof DerError || err instanceof TypeError) throw new MalformedCertificateError(err.message);
    throw err;
  }
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
