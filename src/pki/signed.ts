/**
 * What every signed X.509 object (certificate, CRL) shows the same way: its
 * DER and PEM, its fingerprint, the signed part and the signature over it.
 * The parsers read each object's own fields; this is the part they share.
 */
import { createHash } from 'node:crypto';
import { toPem } from './pem';

export interface SignedObject {
  readonly der: Uint8Array;
  readonly pem: string;
  /** SHA-256 of the DER, hex: the identity used by caches and bundles. */
  readonly fingerprint: string;
  /** The signed part (tbsCertificate, tbsCertList), as encoded. */
  readonly tbs: Uint8Array;
  readonly signatureAlgorithm: string;
  /** DER-encoded ECDSA signature value. */
  readonly signature: Uint8Array;
}

/** The shared face of a parsed signed object; `pemLabel` is its PEM type (CERTIFICATE, X509 CRL). */
export function signedObject(
  der: Uint8Array,
  pemLabel: string,
  tbs: Uint8Array,
  signatureAlgorithm: string,
  signature: Uint8Array,
): SignedObject {
  return {
    der,
    pem: toPem(pemLabel, der),
    fingerprint: createHash('sha256').update(der).digest('hex'),
    tbs,
    signatureAlgorithm,
    signature,
  };
}
