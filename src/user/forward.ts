/**
 * In-organisation forwarding (SSMAX §3.4; docs/lists.md, "Forwarding"): a
 * recipient passes an encrypted message (whole, profile "message", or its
 * encrypted attachments, profile "part") on to a new recipient without
 * decrypting the content. The client re-targets the capsule made for the
 * user's own key to the organisation's current key — it recovers the message
 * key point with the user's private key and encapsulates it again, in memory,
 * never touching the content ciphertext — writes a new outer header (From:
 * the forwarder, To: the new recipients, Subject: "Fwd: …"), signs it as the
 * user and hands it to the own gateway, which treats it like any submission
 * (re-encryption to a local user or to the peer organisation, seal i=1).
 *
 * The body — the content ciphertext and, for profile "part", every byte of
 * the plain parts around it — is copied unchanged; the new recipient opens it
 * with the same message key and reads the original message (its own From).
 */
import { randomBytes } from 'node:crypto';
import { defaultGroup } from '../crypto/backend';
import { decapsulate, encapsulate } from '../crypto/capsule';
import { CryptoError } from '../crypto/errors';
import { p256PublicKeyFrom } from '../crypto/ecdsa';
import { type Rng, systemRng } from '../crypto/random';
import { certificateRef } from '../chain/certificate-lookup';
import { signUser, verifyUser } from '../chain/user-signature';
import { CAPSULE_HEADER, formatCapsule, parseCapsule } from '../envelope/headers';
import { UserError } from './errors';
import type { UserProfile } from './profile';
import { ownOrgRecipient } from './sign-encrypt';
import { MAX_LINE, firstValue, foldedField, isField, splitHeaderBlock } from '../mail/header-block';

export interface ForwardOptions {
  readonly to: readonly string[];
  readonly now: Date;
  readonly rng?: Rng;
}

/** Outer fields a forwarded message keeps: what describes the (unchanged) body. */
const KEPT = /^(mime-version|ssmax-version|content-type|content-transfer-encoding)[ \t]*:/i;

function split(message: Buffer): { fields: string[]; body: Buffer } {
  const { fields, bodyStart, separated } = splitHeaderBlock(message);
  if (!separated) throw new UserError('message', 'Cannot forward: the message has no header/body separator (CRLF line ends expected)');
  return { fields, body: message.subarray(bodyStart) };
}

/** The body of a message (everything after its header block): the part a forward must not change. */
export function bodyOf(message: Uint8Array): Buffer {
  return split(Buffer.from(message)).body;
}

/** The message to submit: `received` (a copy for this user) re-targeted to the organisation's key, with a new header, signed by the user. */
export async function forwardMessage(profile: UserProfile, received: Uint8Array, options: ForwardOptions): Promise<Buffer> {
  if (options.to.length === 0) throw new UserError('message', 'Cannot forward: no recipient');
  const { fields, body } = split(Buffer.from(received));
  const capsules = fields.filter((f) => isField(f, CAPSULE_HEADER)).map((f) => parseCapsule(f.slice(f.indexOf(':') + 1)));
  const mine = capsules.find((c) => c.keyId === profile.encryption.keyId);
  if (!mine)
    throw new UserError(
      'decrypt',
      `Cannot forward: the message has no capsule for your key ${profile.encryption.keyId} (it carries ${capsules.map((c) => c.keyId).join(', ') || 'none'})`,
    );
  const org = ownOrgRecipient(profile, options.now);
  let capsule;
  let messageKey: Uint8Array | undefined;
  try {
    messageKey = decapsulate(defaultGroup, mine, profile.encryption.privateKey);
    capsule = encapsulate(defaultGroup, messageKey, org, options.rng ?? systemRng);
  } catch (err) {
    if (err instanceof CryptoError) throw new UserError('decrypt', `Cannot forward: ${err.message}`);
    throw err;
  } finally {
    messageKey?.fill(0); // the message key point is not kept
  }
  const subject = firstValue(fields, 'subject') ?? '';
  const domain = profile.address.slice(profile.address.lastIndexOf('@') + 1);
  // folded to lines of at most 998 characters (a longer line would be cut by the gateway, breaking the signature)
  const fold = (name: string, value: string): string => {
    const field = foldedField(name, value);
    if (field === undefined)
      throw new UserError('message', `Cannot forward: the ${name} has a run of more than ${MAX_LINE} characters without a space`);
    return field;
  };
  const head = [
    `From: ${profile.address}`,
    fold('To', options.to.join(', ')),
    fold('Subject', /^fwd:/i.test(subject) ? subject : `Fwd: ${subject}`),
    `Date: ${options.now.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <fwd-${randomBytes(12).toString('hex')}@${domain}>`,
    ...fields.filter((f) => KEPT.test(f)),
    `${CAPSULE_HEADER}: ${formatCapsule(capsule)}`,
  ];
  const unsigned = Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
  const now = () => options.now.getTime();
  const certRef = certificateRef(profile.signingCertificate.der);
  const { message } = await signUser(unsigned, { signer: profile.address, certRef, privateKey: profile.signingKey, now });
  const check = await verifyUser(message, {
    now,
    lookup: (req) =>
      req.certRef === certRef
        ? { publicKey: p256PublicKeyFrom(profile.signingCertificate.spki), addresses: profile.signingCertificate.emails }
        : undefined,
  });
  if (check.result !== 'pass' || !check.signerMatchesFrom)
    throw new UserError('message', `Cannot sign the forwarded message: ${check.summary}`);
  return Buffer.from(message);
}
