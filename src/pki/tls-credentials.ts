/**
 * A fresh P-256 key and a TLS certificate for it, from one CA: what the
 * organisation setup and the demo network give each service and operator.
 */
import { generateP256KeyPair } from '../crypto/ecdsa';
import { type SigningAuthority, issueTlsCertificate } from './issue';
import { privateKeyToPem } from './keys';
import type { Role } from './oids';

/** A certificate (PEM), its unencrypted private key (PEM) and its serial. */
export interface TlsCredentials {
  readonly cert: string;
  readonly key: string;
  readonly serial: string;
}

/**
 * `hosts`: the DNS names of a service; absent, the certificate is a client
 * certificate named "<role>-operator".
 */
export function issueTlsCredentials(
  ca: SigningAuthority,
  role: Role,
  validity: { readonly notBefore: Date; readonly notAfter: Date },
  hosts?: string[],
): TlsCredentials {
  const kp = generateP256KeyPair();
  const cert = issueTlsCertificate(ca, {
    role,
    publicKey: kp.publicKey,
    ...validity,
    ...(hosts ? { hosts } : { commonName: `${role}-operator` }),
  });
  return { cert: cert.pem, key: privateKeyToPem(kp.privateKey), serial: cert.serial };
}
