/**
 * What the chain needs from a certificate, and how the caller supplies it.
 *
 * The chain library does not parse or validate X.509 (that is src/pki/): the
 * caller injects a lookup that resolves a certificate reference `c=` to a
 * validated certificate's public key and identities, or to nothing. A lookup
 * that throws or rejects (directory unreachable, …) makes the verification a
 * `temperror`, never a `fail`.
 */
import { createHash, type KeyObject } from 'node:crypto';

export interface CertificateRequest {
  /** `user` for an SSMAX-User-Signature, `seal` for an SSMAX-Seal. */
  readonly kind: 'user' | 'seal';
  /** Base64url SHA-256 of the certificate DER, from `c=`. */
  readonly certRef: string;
  /** Signing time `t=` (Unix seconds): the certificate must have been valid then. */
  readonly time: number;
  /** The seal's `d=` (seals only). */
  readonly domain?: string;
  /** The signer address `u=` (user signatures only). */
  readonly address?: string;
}

export interface SignerCertificate {
  /** The certified ECDSA P-256 public key. */
  readonly publicKey: KeyObject;
  /** Mail addresses the certificate names (user certificates). */
  readonly addresses?: readonly string[];
  /** The organisation domain the certificate is for (sealing certificates). */
  readonly domain?: string;
}

export type CertificateLookup = (request: CertificateRequest) => SignerCertificate | undefined | Promise<SignerCertificate | undefined>;

/** Milliseconds since the Unix epoch, as `Date.now()`; injected, never read from the system here. */
export type Clock = () => number;

/** `c=` for a certificate: base64url SHA-256 of its DER encoding. */
export function certificateRef(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

export function unixSeconds(now: Clock): number {
  const ms = now();
  if (!Number.isFinite(ms) || ms < 0) throw new TypeError(`Cannot read the clock: ${String(ms)} is not a time in milliseconds`);
  return Math.floor(ms / 1000);
}
