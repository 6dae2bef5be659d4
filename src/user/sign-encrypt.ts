/**
 * Sending side, hop 0 (docs/protocol.md "Encryption chain" and "Authentication
 * chain"; docs/user.md "sign-encrypt"): the user encrypts the message to the
 * own organisation's current encryption key, THEN signs the encrypted message
 * (SSMAX-User-Signature over the capsule headers and the ciphertext's body
 * hash). The sending gateway verifies and removes the signature, re-encrypts
 * and seals.
 *
 * Guarantees: the key comes from the own organisation's bundle, verified up to
 * the SSMAX root at the time of use (`currentKey`); its key id is
 * `<domain>:v<version>`, as keyd names it. The result is checked before it is
 * returned: the signature verifies against the profile's certificate and its
 * signer is the message's single From.
 */
import { defaultGroup } from '../crypto/backend';
import { p256PublicKeyFrom } from '../crypto/ecdsa';
import type { Recipient } from '../crypto/keys';
import { type Rng, systemRng } from '../crypto/random';
import { certificateRef } from '../chain/certificate-lookup';
import { signUser, verifyUser } from '../chain/user-signature';
import { encryptMessage, encryptParts, selectAttachments } from '../envelope/encrypt';
import { collect } from '../envelope/source';
import { UserError } from './errors';
import { type UserProfile, verifyOrgBundle } from './profile';
import { withoutField } from '../mail/header-block';

export interface SignEncryptOptions {
  readonly now: Date;
  /** Profile "part": encrypt only the attachments (docs/format.md); default profile "message". */
  readonly attachmentsOnly?: boolean;
  /** Randomness (tests pin it); the OS CSPRNG by default. */
  readonly rng?: Rng;
  readonly chunkSize?: number;
}

/** The own organisation's current encryption key, as a capsule recipient `<domain>:v<version>`. */
export function ownOrgRecipient(profile: UserProfile, now: Date): Recipient {
  const bundle = verifyOrgBundle(profile.orgBundle, profile.domain, profile.rootPem, now);
  return { keyId: `${bundle.domain}:v${bundle.currentKey.version}`, publicKey: bundle.currentKey.publicKey };
}

function messageError(err: unknown): UserError {
  const text = err instanceof Error ? err.message : String(err);
  return new UserError('message', text.startsWith('Cannot') ? text : `Cannot sign and encrypt the message: ${text}`);
}

/** Encrypts `message` to the own organisation's key, then signs it as the profile's user. Returns the message to submit. */
/**
 * The message without Bcc fields in its root header block (every other byte
 * kept): a Bcc list must never travel, not even inside the ciphertext, which
 * every recipient decrypts (RFC 5322 §3.6.3).
 */
export function withoutBcc(message: Uint8Array): Buffer {
  return withoutField(message, 'bcc');
}

export async function signAndEncrypt(profile: UserProfile, original: Uint8Array, options: SignEncryptOptions): Promise<Buffer> {
  if (!(original instanceof Uint8Array)) throw new TypeError('Cannot sign and encrypt: the message must be a Uint8Array');
  const message = withoutBcc(original);
  const recipient = ownOrgRecipient(profile, options.now);
  const encryptOptions = {
    group: defaultGroup,
    rng: options.rng ?? systemRng,
    ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
  };
  let encrypted: Buffer;
  try {
    encrypted = await collect(
      options.attachmentsOnly
        ? encryptParts(message, [recipient], { ...encryptOptions, select: selectAttachments })
        : encryptMessage(message, [recipient], encryptOptions),
    );
  } catch (err) {
    if (options.attachmentsOnly && err instanceof Error && /no part matched/.test(err.message)) {
      throw new UserError('message', 'Cannot encrypt the attachments: the message has no attachment (encrypt the whole message instead)');
    }
    throw messageError(err);
  }
  const now = () => options.now.getTime();
  const certRef = certificateRef(profile.signingCertificate.der);
  let signed: Buffer;
  try {
    ({ message: signed } = await signUser(encrypted, { signer: profile.address, certRef, privateKey: profile.signingKey, now }));
  } catch (err) {
    throw messageError(err);
  }
  // What the sending gateway will check (docs/chain.md "Verifying"): fail here, with a clear message, rather than there.
  const check = await verifyUser(signed, {
    now,
    lookup: (req) =>
      req.certRef === certRef
        ? { publicKey: p256PublicKeyFrom(profile.signingCertificate.spki), addresses: profile.signingCertificate.emails }
        : undefined,
  });
  if (check.result !== 'pass') throw new UserError('message', `Cannot sign the message: the signature does not verify (${check.summary})`);
  if (!check.signerMatchesFrom)
    throw new UserError('message', `Cannot sign the message: its From is not the single address "${profile.address}"`);
  return signed;
}
