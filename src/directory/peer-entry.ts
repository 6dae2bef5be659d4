/**
 * What the gateway gets for a peer domain: the verified contents of its
 * bundle in the forms the gateway's steps use (33-byte points for the crypto
 * core, PEM for keyd's peer target, a seal-certificate finder for the chain
 * verifier). Built only from a bundle `verifyBundle` called `valid`.
 */
import type { KeyObject } from 'node:crypto';
import { certificateRef } from '../chain/certificate-lookup';
import { p256PublicKeyFrom } from '../crypto/ecdsa';
import type { InboundPolicy, VerifiedBundle, VerifiedKey } from '../pki/bundle';
import type { KnownCrls } from '../pki/known-crls';
import type { ValidationCache } from '../pki/validate';
import { validateCertificate } from '../pki/validate';

export interface PeerKey {
  /** `${domain}:v${version}`, as keyd names org keys. */
  readonly keyId: string;
  readonly version: number;
  /** `current`, `next` or `retired`, as the bundle states it. */
  readonly state: string;
  /** 33-byte compressed secp256k1 point. */
  readonly publicKey: Uint8Array;
  /** PEM. */
  readonly certificate: string;
}

export interface SealingCertificate {
  readonly publicKey: KeyObject;
  /** PEM. */
  readonly certificate: string;
  readonly domain: string;
}

export interface PeerEntry {
  readonly domain: string;
  readonly serial: number;
  readonly id: string;
  readonly expires: Date;
  /** The highest-version current key valid when the bundle was verified: the one new mail uses. */
  readonly currentKey: PeerKey;
  readonly keys: readonly PeerKey[];
  /** PEM, organisation CA first (root not included). */
  readonly orgCaChain: readonly string[];
  /** PEM CRLs carried by the bundle. */
  readonly crls: readonly string[];
  /**
   * The sealing certificate whose `c=` reference (base64url SHA-256 of its DER)
   * is `certRef`, validated for use `seal` up to the roots with the bundle's
   * CRLs, the local ones and the newest seen of each CA (src/pki/known-crls.ts)
   * at `time`; undefined when the bundle holds no such certificate or it is
   * not valid then. Throws when a local CRL cannot be read.
   */
  sealingCertificate(certRef: string, time: Date): SealingCertificate | undefined;
  readonly abuseContact: string;
  readonly inboundPolicy: InboundPolicy;
  /** Added fields (beyond the gateway's first contract). */
  readonly issued: Date;
  /** Where the bundle came from. */
  readonly url: string;
}

function peerKey(domain: string, k: VerifiedKey): PeerKey {
  return { keyId: `${domain}:v${k.version}`, version: k.version, state: k.state, publicKey: k.publicKey, certificate: k.certificate.pem };
}

export interface PeerEntryContext {
  readonly roots: readonly string[];
  readonly revocation: KnownCrls;
  readonly cache: ValidationCache;
  readonly url: string;
}

export function peerEntryOf(b: VerifiedBundle, ctx: PeerEntryContext): PeerEntry {
  const seals = new Map(b.sealingCertificates.map((c) => [certificateRef(c.der), c]));
  const chain = b.payload.orgCaChain;
  const keys = new Map<string, KeyObject>(); // a KeyObject per sealing certificate, made once (not per message)
  // The last validation per sealing certificate, by the seal time it was asked for and the generation of
  // the CRLs: validation is a function of (certificate, chain, roots, CRLs, time), the first three fixed for
  // this entry, so a stream of seals made within the same second is validated once (seal times have whole
  // seconds) until a CRL changes.
  const lastValidation = new Map<string, { time: number; generation: number; ok: boolean }>();
  return {
    domain: b.domain,
    serial: b.serial,
    id: b.id,
    expires: b.expires,
    issued: b.issued,
    url: ctx.url,
    currentKey: peerKey(b.domain, b.currentKey),
    keys: b.encryptionKeys.map((k) => peerKey(b.domain, k)),
    orgCaChain: [...chain],
    crls: [...b.payload.crls],
    abuseContact: b.abuseContact,
    inboundPolicy: b.inboundPolicy,
    sealingCertificate(certRef: string, time: Date): SealingCertificate | undefined {
      const cert = seals.get(certRef);
      if (!cert) return undefined;
      const snap = ctx.revocation.snapshot(); // throws when a local CRL cannot be read
      let last = lastValidation.get(certRef);
      if (last?.time !== time.getTime() || last.generation !== snap.generation) {
        const crls = snap.with(b.payload.crls);
        const r = validateCertificate({ leaf: cert, intermediates: chain, roots: ctx.roots, crls, use: 'seal', time, cache: ctx.cache });
        // The seal must come from this bundle's own organisation CA, not merely some org under the root.
        last = {
          time: time.getTime(),
          generation: snap.generation,
          ok: r.status === 'valid' && r.path[1]?.fingerprint === b.orgCa.fingerprint,
        };
        lastValidation.set(certRef, last);
      }
      if (!last.ok) return undefined;
      let publicKey = keys.get(certRef);
      if (!publicKey) keys.set(certRef, (publicKey = p256PublicKeyFrom(cert.spki)));
      return { publicKey, certificate: cert.pem, domain: b.domain };
    },
  };
}
