/**
 * Object identifiers of the SSMAX certificate profile (docs/pki.md).
 *
 * The project arc is a UUID arc under 2.25 (ITU-T X.667): UUID
 * d30e3b3c-3230-449c-baa0-8bec79f4f24c, written as its 128-bit integer. Sub-arcs
 * are allocated here, once; never reuse a number for another meaning.
 */
export const SSMAX_ARC = '2.25.280541000698025706016387553774517154380';

/** Certificate policy asserted by every certificate of the hierarchy. */
export const POLICY_SSMAX_V1 = `${SSMAX_ARC}.1.1`;

/** Key purposes (extendedKeyUsage) of the project. */
export const EKU = {
  orgEncryption: `${SSMAX_ARC}.2.1`,
  seal: `${SSMAX_ARC}.2.2`,
  bundleSigning: `${SSMAX_ARC}.2.3`,
  userSigning: `${SSMAX_ARC}.2.4`,
  userEncryption: `${SSMAX_ARC}.2.5`,
  // RFC 5280 §4.2.1.12
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  emailProtection: '1.3.6.1.5.5.7.3.4',
} as const;

/** Roles of TLS certificates, carried as a key purpose so a TLS peer can read them (roleOf). */
export const ROLE_OIDS = {
  gateway: `${SSMAX_ARC}.3.1`,
  inspector: `${SSMAX_ARC}.3.2`,
  keyd: `${SSMAX_ARC}.3.3`,
  admin: `${SSMAX_ARC}.3.4`,
  disclosure: `${SSMAX_ARC}.3.5`,
  /** The web console (`ssmax console`): alone it may do nothing; keyd accepts from it an administrator's certificate to act on behalf of (docs/console.md). */
  console: `${SSMAX_ARC}.3.6`,
} as const;

export type Role = keyof typeof ROLE_OIDS;
export const ROLES = Object.keys(ROLE_OIDS) as Role[];

/** Non-critical extension: INTEGER, the version of an organisation encryption key. */
export const EXT_KEY_VERSION = `${SSMAX_ARC}.4.1`;

/** RFC 5280 extensions and algorithms we produce or read. */
export const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  crlNumber: '2.5.29.20',
  crlReason: '2.5.29.21',
  nameConstraints: '2.5.29.30',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  secp256k1: '1.3.132.0.10',
} as const;

/** Attribute types of distinguished names (RFC 4519). */
export const ATTR = {
  commonName: '2.5.4.3',
  serialNumber: '2.5.4.5',
  country: '2.5.4.6',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  pseudonym: '2.5.4.65',
  emailAddress: '1.2.840.113549.1.9.1',
} as const;
