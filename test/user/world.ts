/**
 * A two-organisation world for the user-side tests, built with the PKI
 * directly (no keyd process): an SSMAX root, per organisation an org CA, an
 * encryption key v1 (raw scalar kept in process, as keyd would hold it), a
 * sealing certificate, a bundle signer and a signed bundle; plus the two
 * gateway hops simulated with library calls (docs/protocol.md, "Blinded
 * re-encryption", "Authentication chain").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { groups } from '../../src/crypto/backend';
import { generateP256KeyPair, p256PublicKeyFrom } from '../../src/crypto/ecdsa';
import { generateEncryptionKeyPair } from '../../src/crypto/keys';
import { systemRng } from '../../src/crypto/random';
import { blindForReencryption, transformBlinded, unblindReencryption } from '../../src/crypto/reencrypt';
import { type CertificateLookup, certificateRef } from '../../src/chain/certificate-lookup';
import { prependField, removeUserSignature } from '../../src/chain/message-fields';
import { bindRecipients, removeRecipientFields } from '../../src/chain/recipients';
import { type SealedMessage, seal } from '../../src/chain/seal';
import { verifyUser } from '../../src/chain/user-signature';
import { type ChainVerification, verifyChain } from '../../src/chain/verify-chain';
import { listCapsules, replaceCapsules } from '../../src/envelope/capsules';
import { decryptMessage } from '../../src/envelope/decrypt';
import { collect } from '../../src/envelope/source';
import { createBundle } from '../../src/pki/bundle';
import type { ParsedCertificate } from '../../src/pki/certificate';
import { type ParsedCrl, createCrl } from '../../src/pki/crl';
import {
  type SigningAuthority,
  createOrgCa,
  createRootCa,
  issueBundleSignerCertificate,
  issueEncryptionKeyCertificate,
  issueSealingCertificate,
} from '../../src/pki/issue';
import { createUserProfile, loadUserProfile, type UserProfile, type UserRegistration } from '../../src/user/profile';

export const DAY = 86400_000;
/** A fixed clock for everything: certificates, bundles, seals, opening. */
export const NOW = new Date('2026-06-01T12:00:00Z');
export const clock = () => NOW.getTime();

export interface Org {
  readonly domain: string;
  readonly ca: SigningAuthority;
  readonly encryption: {
    readonly keyId: string;
    readonly privateKey: Uint8Array;
    readonly publicKey: Uint8Array;
    readonly certificate: ParsedCertificate;
  };
  readonly sealKey: KeyObject;
  readonly sealCert: ParsedCertificate;
  /** A sealing certificate the org CA issued but never published in the bundle. */
  readonly rogueSealKey: KeyObject;
  readonly rogueSealCert: ParsedCertificate;
  readonly crl: ParsedCrl;
  readonly bundle: string;
  /** The same content, published again with another serial. */
  republish(serial: number): string;
}

export interface World {
  readonly root: SigningAuthority;
  readonly rootCrl: ParsedCrl;
  readonly a: Org;
  readonly b: Org;
  readonly dir: string;
  cleanup(): void;
}

const validity = { notBefore: new Date(NOW.getTime() - 30 * DAY), notAfter: new Date(NOW.getTime() + 3650 * DAY) };
const leafValidity = { notBefore: new Date(NOW.getTime() - 10 * DAY), notAfter: new Date(NOW.getTime() + 365 * DAY) };

function makeOrg(root: SigningAuthority, rootCrl: ParsedCrl, domain: string): Org {
  const ca = createOrgCa(root, {
    ...validity,
    notBefore: new Date(validity.notBefore.getTime() + 1000),
    domains: [domain],
    organisation: `Org ${domain}`,
    privateKey: generateP256KeyPair().privateKey,
  });
  const kp = generateEncryptionKeyPair(groups.libsecp256k1, systemRng);
  const encCert = issueEncryptionKeyCertificate(ca, { ...leafValidity, domain, version: 1, publicKey: kp.publicKey });
  const sealKp = generateP256KeyPair();
  const sealCert = issueSealingCertificate(ca, { ...leafValidity, domain, host: `mx.${domain}`, publicKey: sealKp.publicKey });
  const rogueKp = generateP256KeyPair();
  const rogueSealCert = issueSealingCertificate(ca, { ...leafValidity, domain, publicKey: rogueKp.publicKey });
  const signerKp = generateP256KeyPair();
  const signerCert = issueBundleSignerCertificate(ca, { ...leafValidity, domain, publicKey: signerKp.publicKey });
  const crl = createCrl(ca, {
    entries: [],
    thisUpdate: new Date(NOW.getTime() - DAY),
    nextUpdate: new Date(NOW.getTime() + 7 * DAY),
    crlNumber: 1,
  });
  const publish = (serial: number) =>
    createBundle(
      {
        domain,
        serial,
        issued: new Date(NOW.getTime() - DAY),
        expires: new Date(NOW.getTime() + 7 * DAY),
        orgCaChain: [ca.certificate],
        encryptionKeys: [{ state: 'current', certificate: encCert }],
        sealingCertificates: [sealCert],
        crls: [crl, rootCrl],
        abuseContact: `mailto:abuse@${domain}`,
        inboundPolicy: { encryption: 'required', seal: 'required', maxMessageBytes: 25 * 1024 * 1024 },
      },
      { certificate: signerCert, privateKey: signerKp.privateKey },
    );
  return {
    domain,
    ca,
    crl,
    bundle: publish(1),
    republish: publish,
    encryption: { keyId: `${domain}:v1`, privateKey: kp.privateKey, publicKey: kp.publicKey, certificate: encCert },
    sealKey: sealKp.privateKey,
    sealCert,
    rogueSealKey: rogueKp.privateKey,
    rogueSealCert,
  };
}

export function makeWorld(): World {
  const root = createRootCa({ ...validity, privateKey: generateP256KeyPair().privateKey, commonName: 'SSMAX Test Root' });
  const rootCrl = createCrl(root, {
    entries: [],
    thisUpdate: new Date(NOW.getTime() - DAY),
    nextUpdate: new Date(NOW.getTime() + 7 * DAY),
    crlNumber: 1,
  });
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-user-test-'));
  return {
    root,
    rootCrl,
    a: makeOrg(root, rootCrl, 'a.example'),
    b: makeOrg(root, rootCrl, 'b.example'),
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Person {
  readonly profile: UserProfile;
  readonly registration: UserRegistration;
}

export function makePerson(world: World, org: Org, local: string, extra: Partial<Parameters<typeof createUserProfile>[1]> = {}): Person {
  const dir = join(world.dir, `${local}-${org.domain}`);
  const registration = createUserProfile(dir, {
    address: `${local}@${org.domain}`,
    pseudonym: `u-${local}`,
    code: `E-${local.toUpperCase()}1`,
    orgCa: org.ca,
    rootPem: world.root.certificate.pem,
    orgBundle: org.bundle,
    now: NOW,
    ...extra,
  });
  return { profile: loadUserProfile(dir), registration };
}

/** Seal lookup over the published sealing certificates of the orgs (what a gateway derives from bundles); `withRogue` also knows the unpublished ones. */
export function sealLookup(...orgs: Org[]): CertificateLookup {
  return lookupOver(orgs, false);
}

export function lookupOver(orgs: readonly Org[], withRogue: boolean): CertificateLookup {
  return (req) => {
    for (const org of orgs) {
      for (const cert of withRogue ? [org.sealCert, org.rogueSealCert] : [org.sealCert]) {
        if (req.kind === 'seal' && certificateRef(cert.der) === req.certRef)
          return { publicKey: p256PublicKeyFrom(cert.spki), domain: org.domain };
      }
    }
    return undefined;
  };
}

/** Re-encrypts the single capsule of `message` from `from`'s key to `target`, blinded (gateway and key service halves in process). */
export async function reencrypt(message: Buffer, from: Org, target: { keyId: string; publicKey: Uint8Array }): Promise<Buffer> {
  const group = groups.libsecp256k1;
  const capsules = await listCapsules(message);
  const capsule = capsules.find((c) => c.keyId === from.encryption.keyId);
  if (!capsule) throw new Error(`no capsule for ${from.encryption.keyId}`);
  const { request, blinding } = blindForReencryption(group, capsule, systemRng);
  const answer = transformBlinded(group, from.encryption.privateKey, request, target.publicKey, systemRng);
  return collect(replaceCapsules(message, [unblindReencryption(group, blinding, answer, target)]));
}

/** Hop 1, the sending gateway: verify and remove the user signature, re-encrypt to the peer org, seal i=1. */
export async function sendingHop(
  message: Buffer,
  org: Org,
  sender: Pick<Person, 'profile'>,
  peer: Org,
  opts: {
    rogue?: boolean;
    sealAs?: Org;
    /** Seal over this message instead (a sending gateway that sealed over damaged bytes). */
    substitute?: (message: Buffer) => Buffer;
    /** The message is not encrypted (sealed-unencrypted mail): no capsule to re-encrypt. */
    plain?: boolean;
  } = {},
): Promise<SealedMessage> {
  const signingCert = sender.profile.signingCertificate;
  const user = await verifyUser(message, {
    now: clock,
    lookup: (req) =>
      req.kind === 'user' && req.certRef === certificateRef(signingCert.der)
        ? { publicKey: p256PublicKeyFrom(signingCert.spki), addresses: signingCert.emails }
        : undefined,
  });
  if (user.result !== 'pass' || !user.signerMatchesFrom) throw new Error(`hop 1: user signature ${user.summary}`);
  const unsigned = await removeUserSignature(message);
  let reencrypted = opts.plain
    ? unsigned
    : await reencrypt(unsigned, org, { keyId: peer.encryption.keyId, publicKey: peer.encryption.publicKey });
  if (opts.substitute) reencrypted = opts.substitute(reencrypted);
  const chain = await verifyChain(reencrypted, { lookup: sealLookup(), now: clock });
  const sealer = opts.sealAs ?? org; // sealAs: another organisation seals (impersonation tests)
  const cert = opts.rogue ? sealer.rogueSealCert : sealer.sealCert;
  const binding = bindRecipients([`bob@${peer.domain}`]);
  return seal(prependField(reencrypted, binding.field), {
    domain: sealer.domain,
    certRef: certificateRef(cert.der),
    privateKey: opts.rogue ? sealer.rogueSealKey : sealer.sealKey,
    now: clock,
    verdicts: [
      { name: 'dlp', result: 'pass' },
      { name: 'av', result: 'none' },
    ],
    trackingToken: randomBytes(32),
    chain,
    recipientCommitment: binding.commitment,
  });
}

export interface ReceivingOptions {
  /**
   * Re-encrypt to this key; `as-is`: seal the message as it came (sealed-unencrypted mail);
   * `decrypt-and-seal`: decrypt, then seal over the plaintext — a hop that changed the body under seal i=1,
   * which verification refuses (a real gateway's transparent copy is sealed over the encrypted form:
   * src/gateway/local-copies.ts).
   */
  readonly to: { keyId: string; publicKey: Uint8Array } | 'as-is' | 'decrypt-and-seal';
  /** Seal with the rogue (unpublished) certificate. */
  readonly rogue?: boolean;
  /** Seal over this message instead (tests: a hop that sealed over damaged bytes), with the chain of the real one. */
  readonly substitute?: (message: Buffer) => Buffer;
  /** The single recipient the seal binds (default bob@<org domain>), as a receiving gateway does for each local copy. */
  readonly recipient?: string;
}

/** Hop 2, the receiving gateway: verify the chain, re-encrypt to the recipient (or decrypt), seal i=2. */
export async function receivingHop(
  hop1: SealedMessage,
  org: Org,
  sender: Org,
  opts: ReceivingOptions,
  lookup: CertificateLookup = sealLookup(sender, org),
): Promise<Buffer> {
  const chain: ChainVerification = await verifyChain(hop1.message, { lookup, now: clock });
  if (chain.result !== 'pass') throw new Error(`hop 2: ${chain.summary}`);
  let next: Buffer;
  if (opts.to === 'as-is') {
    next = hop1.message;
  } else if (opts.to === 'decrypt-and-seal') {
    const plain = await collect(
      decryptMessage(hop1.message, { keyId: org.encryption.keyId, privateKey: org.encryption.privateKey }, { group: groups.libsecp256k1 }),
    );
    next = prependField(plain, hop1.field); // the seals stay on top, for audit
  } else {
    next = await reencrypt(hop1.message, org, opts.to);
  }
  if (opts.substitute) next = opts.substitute(next);
  const key = opts.rogue ? org.rogueSealKey : org.sealKey;
  const cert = opts.rogue ? org.rogueSealCert : org.sealCert;
  const binding = bindRecipients([opts.recipient ?? `bob@${org.domain}`]);
  next = prependField(removeRecipientFields(next), binding.field);
  const sealed = await seal(next, {
    domain: org.domain,
    certRef: certificateRef(cert.der),
    privateKey: key,
    now: clock,
    verdicts: [{ name: 'av', result: 'pass' }],
    chain,
    recipientCommitment: binding.commitment,
  });
  return sealed.message;
}
