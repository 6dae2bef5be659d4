/**
 * Issuance of every certificate of the SSMAX hierarchy (docs/protocol.md "Roles";
 * profiles in docs/pki.md): SSMAX root CA → organisation CA → end entities.
 *
 * Guarantees: every certificate is X.509 v3, signed ECDSA P-256/SHA-256, has
 * subject and authority key identifiers, one single-valued RDN per attribute and
 * a random positive 127-bit serial. The profile functions refuse (throw) to
 * issue anything the validator would reject: names outside the issuer's name
 * constraints, validity outside the issuer's, a key of the wrong curve.
 * `buildCertificate` is the unchecked primitive (tests use it to forge bad
 * certificates; production code should call the profile functions).
 */
import { type KeyObject, createHash, randomBytes, sign } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import {
  type ConstraintName,
  type KeyUsageBit,
  KEY_USAGE_BITS,
  type ParsedCertificate,
  constrainedDomains,
  parseCertificate,
} from './certificate';
import { keyAlgorithmOfSpki, secp256k1SpkiFromPoint, spkiOf } from './keys';
import { firstNameOutside } from './name-constraints';
import { type NameAttribute, encodeName, pkijsName } from './name';
import { ATTR, EKU, EXT_KEY_VERSION, OID, POLICY_SSMAX_V1, ROLE_OIDS, type Role } from './oids';

/** A CA certificate with its private key: what signs certificates and CRLs. */
export interface SigningAuthority {
  readonly certificate: ParsedCertificate;
  readonly privateKey: KeyObject;
}

export interface CertificateSpec {
  readonly subject: readonly NameAttribute[];
  /** SubjectPublicKeyInfo DER of the subject's key. */
  readonly spki: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Serial number bytes (big-endian, positive); random when absent. */
  readonly serial?: Uint8Array;
  /** Present for a CA certificate. */
  readonly ca?: { readonly pathLen?: number };
  readonly keyUsage: readonly KeyUsageBit[];
  readonly extKeyUsage?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly emails?: readonly string[];
  readonly nameConstraints?: { readonly permitted: readonly ConstraintName[]; readonly excluded?: readonly ConstraintName[] };
  readonly keyVersion?: number;
  readonly policies?: readonly string[];
  /** Further extensions, DER values as given (tests forge certificates with these). */
  readonly extraExtensions?: readonly { readonly oid: string; readonly critical: boolean; readonly value: Uint8Array }[];
}

/** Who signs: an authority, or the subject's own key (a self-signed root). */
export type Signer = SigningAuthority | { readonly selfSigned: KeyObject };

/** Public key as the profiles accept it: a node key, SPKI DER, or a raw secp256k1 point (33 or 65 bytes). */
export type PublicKeyInput = KeyObject | Uint8Array;

export function spkiFromInput(key: PublicKeyInput): Uint8Array {
  if (key instanceof Uint8Array) return key.length === 33 || key.length === 65 ? secp256k1SpkiFromPoint(key) : key;
  return spkiOf(key);
}

/** X.509 times have second precision (RFC 5280 §4.1.2.5: UTCTime until 2049, then GeneralizedTime). */
export function toCertTime(d: Date): pkijs.Time {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new TypeError('Cannot encode time: not a valid Date');
  const value = new Date(Math.floor(d.getTime() / 1000) * 1000);
  return new pkijs.Time({ type: value.getUTCFullYear() >= 2050 ? 1 : 0, value });
}

export function randomSerial(): Uint8Array {
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x3f) | 0x40; // positive, minimal DER, always 16 bytes
  return new Uint8Array(b);
}

export function encodeKeyUsage(bits: readonly KeyUsageBit[]): Uint8Array {
  const idx = bits.map((b) => KEY_USAGE_BITS.indexOf(b));
  if (idx.length === 0 || idx.some((i) => i < 0)) throw new Error('Cannot encode key usage: empty or unknown bit');
  const highest = Math.max(...idx);
  const bytes = new Uint8Array((highest >> 3) + 1);
  for (const i of idx) bytes[i >> 3] = (bytes[i >> 3] ?? 0) | (0x80 >> (i & 7));
  return new Uint8Array(new asn1js.BitString({ valueHex: bytes, unusedBits: 7 - (highest & 7) }).toBER());
}

function keyIdOf(spki: Uint8Array): Uint8Array {
  const info = pkijs.PublicKeyInfo.fromBER(new Uint8Array(spki));
  return new Uint8Array(createHash('sha1').update(info.subjectPublicKey.valueBlock.valueHexView).digest());
}

function ext(extnID: string, critical: boolean, value: asn1js.BaseBlock | Uint8Array): pkijs.Extension {
  const der = value instanceof Uint8Array ? value : new Uint8Array(value.toBER());
  return new pkijs.Extension({ extnID, critical, extnValue: der.slice().buffer });
}

function generalName(n: ConstraintName): pkijs.GeneralName {
  return new pkijs.GeneralName({ type: n.kind === 'email' ? 1 : 2, value: n.value });
}

/** Signs DER bytes with ECDSA P-256/SHA-256, DER signature (X.509 form). */
function signDer(privateKey: KeyObject, data: Uint8Array): Uint8Array {
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TypeError('Cannot sign certificate: the issuer key is not an EC P-256 private key');
  }
  return new Uint8Array(sign('sha256', data, { key: privateKey, dsaEncoding: 'der' }));
}

export function ecdsaSha256(): pkijs.AlgorithmIdentifier {
  return new pkijs.AlgorithmIdentifier({ algorithmId: OID.ecdsaWithSha256 });
}

/** Signs a pkijs structure's TBS part in place and returns the complete DER. */
export function signTbs(obj: pkijs.Certificate | pkijs.CertificateRevocationList, privateKey: KeyObject): Uint8Array {
  obj.signature = ecdsaSha256();
  obj.signatureAlgorithm = ecdsaSha256();
  const tbs = new Uint8Array((obj as unknown as { encodeTBS(): asn1js.Sequence }).encodeTBS().toBER());
  obj.tbsView = tbs;
  obj.signatureValue = new asn1js.BitString({ valueHex: signDer(privateKey, tbs) });
  // encoded again from the fields (the same bytes as `tbs`), not parsed back from `tbs`: asn1js cannot
  // parse back a TBS above 64 KB (a CRL of about 1,300 entries), and signing such a CRL failed
  return new Uint8Array(obj.toSchema(true).toBER());
}

/** The unchecked primitive: builds and signs a certificate exactly as specified. */
export function buildCertificate(spec: CertificateSpec, signer: Signer): ParsedCertificate {
  const selfSigned = 'selfSigned' in signer;
  const subjectDer = encodeName(spec.subject);
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: (spec.serial ?? randomSerial()).slice().buffer });
  cert.issuer = pkijsName(selfSigned ? subjectDer : signer.certificate.subjectDer);
  cert.subject = pkijsName(subjectDer);
  cert.notBefore = toCertTime(spec.notBefore);
  cert.notAfter = toCertTime(spec.notAfter);
  cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(new Uint8Array(spec.spki));

  const exts: pkijs.Extension[] = [];
  exts.push(
    ext(
      OID.basicConstraints,
      true,
      new pkijs.BasicConstraints(
        spec.ca ? { cA: true, ...(spec.ca.pathLen !== undefined ? { pathLenConstraint: spec.ca.pathLen } : {}) } : {},
      ).toSchema(),
    ),
  );
  exts.push(ext(OID.keyUsage, true, encodeKeyUsage(spec.keyUsage)));
  if (spec.extKeyUsage && spec.extKeyUsage.length > 0)
    exts.push(ext(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [...spec.extKeyUsage] }).toSchema()));
  const altNames = [
    ...(spec.dnsNames ?? []).map((value) => ({ kind: 'dns' as const, value })),
    ...(spec.emails ?? []).map((value) => ({ kind: 'email' as const, value })),
  ];
  // RFC 5280 §4.2.1.6: critical when the subject name is empty; ours never is.
  if (altNames.length > 0) exts.push(ext(OID.subjectAltName, false, new pkijs.AltName({ altNames: altNames.map(generalName) }).toSchema()));
  if (spec.nameConstraints) {
    const subtrees = (names: readonly ConstraintName[] | undefined) =>
      names && names.length > 0 ? names.map((n) => new pkijs.GeneralSubtree({ base: generalName(n) })) : undefined;
    const permittedSubtrees = subtrees(spec.nameConstraints.permitted);
    const excludedSubtrees = subtrees(spec.nameConstraints.excluded);
    // RFC 5280 §4.2.1.10: conforming CAs MUST mark this extension critical.
    exts.push(
      ext(
        OID.nameConstraints,
        true,
        new pkijs.NameConstraints({
          ...(permittedSubtrees ? { permittedSubtrees } : {}),
          ...(excludedSubtrees ? { excludedSubtrees } : {}),
        }).toSchema(),
      ),
    );
  }
  if (spec.policies && spec.policies.length > 0) {
    exts.push(
      ext(
        OID.certificatePolicies,
        false,
        new pkijs.CertificatePolicies({
          certificatePolicies: spec.policies.map((policyIdentifier) => new pkijs.PolicyInformation({ policyIdentifier })),
        }).toSchema(),
      ),
    );
  }
  if (spec.keyVersion !== undefined) exts.push(ext(EXT_KEY_VERSION, false, new asn1js.Integer({ value: spec.keyVersion })));
  exts.push(ext(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyIdOf(spec.spki).slice().buffer })));
  const issuerKeyId = selfSigned ? keyIdOf(spec.spki) : keyIdOf(signer.certificate.spki);
  exts.push(
    ext(
      OID.authorityKeyIdentifier,
      false,
      new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: issuerKeyId.slice().buffer }) }).toSchema(),
    ),
  );
  for (const e of spec.extraExtensions ?? []) exts.push(ext(e.oid, e.critical, e.value));
  cert.extensions = exts;

  const der = signTbs(cert, selfSigned ? signer.selfSigned : signer.privateKey);
  return parseCertificate(der);
}

// ---------------------------------------------------------------------------
// Profiles

const DOMAIN_RE = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const EMAIL_RE = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@([^@]+)$/;

export function checkDomain(domain: string): string {
  const d = typeof domain === 'string' ? domain.toLowerCase() : '';
  if (!DOMAIN_RE.test(d)) throw new Error(`Cannot use domain "${String(domain)}": not a valid domain name`);
  return d;
}

function checkValidity(issuer: SigningAuthority | undefined, what: string, notBefore: Date, notAfter: Date): void {
  if (
    !(notBefore instanceof Date) ||
    !(notAfter instanceof Date) ||
    Number.isNaN(notBefore.getTime()) ||
    Number.isNaN(notAfter.getTime())
  ) {
    throw new TypeError(`Cannot issue certificate for "${what}": notBefore and notAfter must be valid Dates`);
  }
  if (notAfter.getTime() <= notBefore.getTime()) throw new Error(`Cannot issue certificate for "${what}": notAfter is not after notBefore`);
  if (!issuer) return;
  const c = issuer.certificate;
  if (notBefore.getTime() < c.notBefore.getTime() || notAfter.getTime() > c.notAfter.getTime()) {
    throw new Error(
      `Cannot issue certificate for "${what}": validity ${notBefore.toISOString()}..${notAfter.toISOString()} is outside the issuer's ${c.notBefore.toISOString()}..${c.notAfter.toISOString()}`,
    );
  }
}

function checkIssuer(issuer: SigningAuthority, what: string): void {
  if (!issuer.certificate.isCA || !(issuer.certificate.keyUsage?.has('keyCertSign') ?? true)) {
    throw new Error(`Cannot issue certificate for "${what}": the issuer "${issuer.certificate.subject}" is not a CA`);
  }
}

/** Refuses names outside the issuer's name constraints (the validator would reject them). */
function checkNames(issuer: SigningAuthority, leaf: { dnsNames?: readonly string[]; emails?: readonly string[] }): void {
  const nc = issuer.certificate.nameConstraints;
  if (!nc) return;
  const probe = { dnsNames: leaf.dnsNames ?? [], emails: leaf.emails ?? [], subjectAttributes: [] } as unknown as ParsedCertificate;
  const bad = firstNameOutside(probe, nc);
  if (bad)
    throw new Error(
      `Cannot issue certificate for "${bad.value}": outside the name constraints of ${constrainedDomains(issuer.certificate).join(', ')}`,
    );
}

function requireCurve(spki: Uint8Array, curve: 'p256' | 'secp256k1', what: string): void {
  const got = keyAlgorithmOfSpki(spki);
  if (got !== curve)
    throw new Error(
      `Cannot issue certificate for "${what}": the key must be ${curve === 'p256' ? 'EC P-256' : 'EC secp256k1'}, got ${got}`,
    );
}

function organisationOf(ca: ParsedCertificate): NameAttribute[] {
  return ca.subjectAttributes.filter((a) => a.type === ATTR.organization || a.type === ATTR.country);
}

export interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface RootCaOptions extends Validity {
  readonly commonName?: string;
  readonly organisation?: string;
  /** The root's own P-256 key; generated by the caller (generateP256KeyPair). */
  readonly privateKey: KeyObject;
}

/** The SSMAX root CA: self-signed, may certify organisation CAs (path length 1). */
export function createRootCa(opts: RootCaOptions): SigningAuthority {
  const cn = opts.commonName ?? 'SSMAX Root CA';
  checkValidity(undefined, cn, opts.notBefore, opts.notAfter);
  const spki = spkiOf(opts.privateKey);
  requireCurve(spki, 'p256', cn);
  const certificate = buildCertificate(
    {
      subject: [
        { type: ATTR.organization, value: opts.organisation ?? 'SSMAX' },
        { type: ATTR.commonName, value: cn },
      ],
      spki,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      ca: { pathLen: 1 },
      keyUsage: ['keyCertSign', 'cRLSign'],
    },
    { selfSigned: opts.privateKey },
  );
  return { certificate, privateKey: opts.privateKey };
}

export interface OrgCaOptions extends Validity {
  /** The organisation's mail domains; the CA is constrained to them. */
  readonly domains: readonly string[];
  readonly organisation: string;
  readonly privateKey: KeyObject;
}

/** An organisation CA: certified by the root, limited by name constraints to its own domains, issues end entities only. */
export function createOrgCa(root: SigningAuthority, opts: OrgCaOptions): SigningAuthority {
  if (opts.domains.length === 0) throw new Error('Cannot create organisation CA: at least one domain is required');
  const domains = opts.domains.map(checkDomain);
  const cn = `${domains[0]} organisation CA`;
  checkIssuer(root, cn);
  checkValidity(root, cn, opts.notBefore, opts.notAfter);
  const spki = spkiOf(opts.privateKey);
  requireCurve(spki, 'p256', cn);
  const certificate = buildCertificate(
    {
      subject: [
        { type: ATTR.organization, value: opts.organisation },
        { type: ATTR.commonName, value: cn },
      ],
      spki,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      ca: { pathLen: 0 },
      keyUsage: ['keyCertSign', 'cRLSign'],
      nameConstraints: {
        permitted: domains.flatMap((d) => [
          { kind: 'dns' as const, value: d },
          { kind: 'email' as const, value: d },
          { kind: 'email' as const, value: `.${d}` },
        ]),
      },
      policies: [POLICY_SSMAX_V1],
    },
    root,
  );
  return { certificate, privateKey: opts.privateKey };
}

/**
 * A certificate for one of the organisation's own keys (encryption key, gateway seal, bundle signer) under `domain`
 * (already checked): the key on its curve, issuer, validity and names checked against the org CA, then signed by it,
 * subject the organisation with `commonName`, SSMAX policy.
 */
function issueOrgKeyCertificate(
  ca: SigningAuthority,
  opts: Validity & { readonly publicKey: PublicKeyInput },
  domain: string,
  key: {
    readonly curve: 'p256' | 'secp256k1';
    readonly commonName: string;
    readonly keyUsage: readonly KeyUsageBit[];
    readonly extKeyUsage: readonly string[];
    readonly dnsNames: readonly string[];
    readonly keyVersion?: number;
  },
): ParsedCertificate {
  const spki = spkiFromInput(opts.publicKey);
  checkIssuer(ca, domain);
  requireCurve(spki, key.curve, domain);
  checkValidity(ca, domain, opts.notBefore, opts.notAfter);
  checkNames(ca, { dnsNames: key.dnsNames });
  return buildCertificate(
    {
      subject: [...organisationOf(ca.certificate), { type: ATTR.commonName, value: key.commonName }],
      spki,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      keyUsage: key.keyUsage,
      extKeyUsage: key.extKeyUsage,
      dnsNames: key.dnsNames,
      ...(key.keyVersion === undefined ? {} : { keyVersion: key.keyVersion }),
      policies: [POLICY_SSMAX_V1],
    },
    ca,
  );
}

export interface EncryptionKeyCertOptions extends Validity {
  readonly domain: string;
  readonly version: number;
  /** The org encryption public key: 33-byte compressed secp256k1 point (as the crypto core holds it), 65-byte point, SPKI DER or KeyObject. */
  readonly publicKey: PublicKeyInput;
}

/** An organisation encryption-key certificate: secp256k1, versioned, key agreement only. */
export function issueEncryptionKeyCertificate(ca: SigningAuthority, opts: EncryptionKeyCertOptions): ParsedCertificate {
  const domain = checkDomain(opts.domain);
  if (!Number.isSafeInteger(opts.version) || opts.version < 1)
    throw new Error(`Cannot issue encryption key certificate for "${domain}": version "${opts.version}" is not a positive integer`);
  return issueOrgKeyCertificate(ca, opts, domain, {
    curve: 'secp256k1',
    commonName: `${domain} encryption key v${opts.version}`,
    keyUsage: ['keyAgreement'],
    extKeyUsage: [EKU.orgEncryption],
    dnsNames: [domain],
    keyVersion: opts.version,
  });
}

export interface SealingCertOptions extends Validity {
  readonly domain: string;
  /** Host name of the gateway (optional, must be inside the domain). */
  readonly host?: string;
  readonly publicKey: PublicKeyInput;
}

/** A gateway sealing certificate: the org-hop seals of the authentication chain are verified against it. */
export function issueSealingCertificate(ca: SigningAuthority, opts: SealingCertOptions): ParsedCertificate {
  const domain = checkDomain(opts.domain);
  const dnsNames = opts.host ? [domain, checkDomain(opts.host)] : [domain];
  return issueOrgKeyCertificate(ca, opts, domain, {
    curve: 'p256',
    commonName: `${domain} gateway seal`,
    keyUsage: ['digitalSignature'],
    extKeyUsage: [EKU.seal],
    dnsNames,
  });
}

export interface BundleSignerCertOptions extends Validity {
  readonly domain: string;
  readonly publicKey: PublicKeyInput;
}

/** The certificate of the key that signs the organisation bundle. */
export function issueBundleSignerCertificate(ca: SigningAuthority, opts: BundleSignerCertOptions): ParsedCertificate {
  const domain = checkDomain(opts.domain);
  return issueOrgKeyCertificate(ca, opts, domain, {
    curve: 'p256',
    commonName: `${domain} bundle signer`,
    keyUsage: ['digitalSignature'],
    extKeyUsage: [EKU.bundleSigning],
    dnsNames: [domain],
  });
}

export interface TlsCertOptions extends Validity {
  readonly role: Role;
  /** Host names (services) — at least one for gateway, keyd and inspector. */
  readonly hosts?: readonly string[];
  /** Common name for people's certificates (admin, disclosure): a pseudonymous operator name. */
  readonly commonName?: string;
  readonly publicKey: PublicKeyInput;
}

const SERVICE_ROLES: readonly Role[] = ['gateway', 'keyd', 'inspector', 'console'];

/**
 * A TLS certificate for the key service's mutual TLS, carrying its role as a key
 * purpose (roleOf). Services (gateway, keyd, inspector) get serverAuth and
 * clientAuth (the console too: it serves administrators and calls keyd); operators (admin, disclosure) get clientAuth only.
 */
export function issueTlsCertificate(ca: SigningAuthority, opts: TlsCertOptions): ParsedCertificate {
  if (!(opts.role in ROLE_OIDS)) throw new Error(`Cannot issue TLS certificate: unknown role "${String(opts.role)}"`);
  const service = SERVICE_ROLES.includes(opts.role);
  const hosts = (opts.hosts ?? []).map(checkDomain);
  if (service && hosts.length === 0) throw new Error(`Cannot issue TLS certificate for role "${opts.role}": a host name is required`);
  const cn = opts.commonName ?? hosts[0];
  if (!cn) throw new Error(`Cannot issue TLS certificate for role "${opts.role}": a common name is required`);
  checkPseudonym(cn, service);
  const spki = spkiFromInput(opts.publicKey);
  checkIssuer(ca, cn);
  requireCurve(spki, 'p256', cn);
  checkValidity(ca, cn, opts.notBefore, opts.notAfter);
  checkNames(ca, { dnsNames: hosts });
  return buildCertificate(
    {
      subject: [
        ...organisationOf(ca.certificate),
        { type: ATTR.organizationalUnit, value: opts.role },
        { type: ATTR.commonName, value: cn },
      ],
      spki,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      keyUsage: ['digitalSignature'],
      extKeyUsage: service ? [EKU.serverAuth, EKU.clientAuth, ROLE_OIDS[opts.role]] : [EKU.clientAuth, ROLE_OIDS[opts.role]],
      dnsNames: hosts,
      policies: [POLICY_SSMAX_V1],
    },
    ca,
  );
}

const PSEUDONYM_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$/;
const CODE_RE = /^[A-Za-z0-9][A-Za-z0-9-]{2,31}$/;

function checkPseudonym(name: string, allowHost: boolean): void {
  if (allowHost && DOMAIN_RE.test(name)) return;
  // No spaces: a "First Last" real name cannot slip in by mistake (SSMAX §2.2 pseudonymity).
  if (!PSEUDONYM_RE.test(name))
    throw new Error(`Cannot use owner name "${name}": a pseudonym is 3-64 letters, digits, ".", "_" or "-", without spaces`);
}

export interface UserCertOptions extends Validity {
  readonly email: string;
  /** Pseudonymous owner name (never a real name). */
  readonly pseudonym: string;
  /** Organisation-assigned code for the subject serialNumber (never an identity number). */
  readonly code: string;
  readonly purpose: 'signing' | 'encryption';
  /** P-256 for signing; secp256k1 (point, SPKI or KeyObject) for encryption. */
  readonly publicKey: PublicKeyInput;
}

/**
 * A user mail-address certificate (docs/protocol.md "Roles"): rfc822Name alternative
 * name, pseudonymous common name, subject serialNumber = org-assigned code;
 * separate certificates for signing (P-256) and encryption (secp256k1).
 */
export function issueUserCertificate(ca: SigningAuthority, opts: UserCertOptions): ParsedCertificate {
  const m = EMAIL_RE.exec(opts.email ?? '');
  if (!m || !DOMAIN_RE.test((m[1] ?? '').toLowerCase()))
    throw new Error(`Cannot issue certificate for "${String(opts.email)}": not a mail address`);
  checkPseudonym(opts.pseudonym, false);
  // An org-assigned code contains a letter; a bare number could be an identity number.
  if (!CODE_RE.test(opts.code) || !/[A-Za-z]/.test(opts.code)) {
    throw new Error(`Cannot use user code "${opts.code}": an org-assigned code is 3-32 letters, digits or "-", with at least one letter`);
  }
  if (opts.purpose !== 'signing' && opts.purpose !== 'encryption')
    throw new Error(`Cannot issue user certificate: unknown purpose "${String(opts.purpose)}"`);
  const spki = spkiFromInput(opts.publicKey);
  checkIssuer(ca, opts.email);
  requireCurve(spki, opts.purpose === 'signing' ? 'p256' : 'secp256k1', opts.email);
  checkValidity(ca, opts.email, opts.notBefore, opts.notAfter);
  checkNames(ca, { emails: [opts.email] });
  const signing = opts.purpose === 'signing';
  return buildCertificate(
    {
      subject: [
        ...organisationOf(ca.certificate),
        { type: ATTR.commonName, value: opts.pseudonym },
        { type: ATTR.serialNumber, value: opts.code },
      ],
      spki,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      keyUsage: signing ? ['digitalSignature', 'nonRepudiation'] : ['keyAgreement'],
      extKeyUsage: signing ? [EKU.emailProtection, EKU.userSigning] : [EKU.emailProtection, EKU.userEncryption],
      emails: [opts.email],
      policies: [POLICY_SSMAX_V1],
    },
    ca,
  );
}
