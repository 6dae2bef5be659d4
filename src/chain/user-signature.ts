/**
 * Hop 0 of the authentication chain: the user signature (SSMAX §2.1 Fig.1;
 * docs/protocol.md "Authentication chain"; docs/chain.md "SSMAX-User-Signature").
 *
 * The sender signs the protected headers (through `hh=`), the structural body
 * hash `bh=` and the field's own tags. The sending gateway verifies it against
 * the user's certificate, checks that the certificate's address is the single
 * From, then removes the field (removeUserSignature) before sealing.
 *
 * Guarantees: `signUser` throws on misuse or on a message it cannot sign;
 * `verifyUser` never throws on malformed input: it returns a closed result.
 */
import type { KeyObject } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser';
import { signP256, verifyP256 } from '../crypto/ecdsa';
import { type ReadOptions, readMessage } from './body-hash';
import { type HeaderField, fieldValue, findDuplicateSingleton, headerHash } from './canonicalize';
import { type CertificateLookup, type Clock, unixSeconds } from './certificate-lookup';
import { CHAIN_LIMITS } from './limits';
import { prependField } from './message-fields';
import { PROTECTED_HEADERS } from './protected-headers';
import { type AuthOutcome, ChainFormatError, type FailReason, fail, formatSummary } from './result';
import { type Tag, USER_SIGNATURE_HEADER, decodeBase64url, encodeBase64url, parseUserSignature, renderField, signedForm } from './tags';

export interface SignUserOptions {
  /** The signer's address, as in the user's certificate (`u=`). */
  readonly signer: string;
  /** `c=`: base64url SHA-256 of the user certificate's DER (certificateRef). */
  readonly certRef: string;
  readonly privateKey: KeyObject;
  readonly now: Clock;
}

export interface SignedMessage {
  /** The new header field, folded with CRLF, no final line break. */
  readonly field: string;
  /** The message with the field prepended. */
  readonly message: Buffer;
}

export type UserVerification = AuthOutcome & {
  /** `ssmax-user=pass header.u=alice@a.example` */
  readonly summary: string;
  /** `u=` of a parsed signature. */
  readonly signer?: string;
  /** `c=` of a parsed signature. */
  readonly certRef?: string;
  /**
   * True only when the signature passes, the message has exactly one From with
   * exactly one mailbox, and that address is both `u=` and an address of the
   * signer's certificate (compared case-insensitively).
   */
  readonly signerMatchesFrom: boolean;
};

export interface VerifyUserOptions extends ReadOptions {
  readonly lookup: CertificateLookup;
  readonly now: Clock;
  /**
   * The oldest `t=` accepted, in seconds before now (the sending gateway: [chain]
   * max_seal_age_seconds, as for seals); without it, any past time. `t=` is the
   * signer's own claim: a verifier judges the certificate at its own clock, never at `t=`.
   */
  readonly maxAgeSeconds?: number;
}

/** The single mailbox address of the single From field, lowercased; undefined otherwise. */
export function singleFromAddress(headers: readonly HeaderField[]): string | undefined {
  const froms = headers.filter((f) => f.name === 'from');
  if (froms.length !== 1 || !froms[0]) return undefined;
  const value = Buffer.from(fieldValue(froms[0]), 'latin1').toString('utf-8');
  const mailboxes = addressparser(value, { flatten: true });
  if (mailboxes.length !== 1 || !mailboxes[0]?.address) return undefined;
  return mailboxes[0].address.toLowerCase();
}

/** Problems of the message itself that make any signature over it meaningless. */
export function messageProblem(headers: readonly HeaderField[]): { reason: FailReason; detail: string } | undefined {
  const duplicate = findDuplicateSingleton(headers);
  if (duplicate) return { reason: 'duplicate-header', detail: `The message has more than one "${duplicate}" field` };
  if (!headers.some((f) => f.name === 'from')) return { reason: 'missing-from', detail: 'The message has no From field' };
  return undefined;
}

/** Signs a message as its sender (hop 0) and returns it with the SSMAX-User-Signature field on top. */
export async function signUser(message: Uint8Array, options: SignUserOptions): Promise<SignedMessage> {
  const read = await readMessage(message);
  const problem = messageProblem(read.headers);
  if (problem)
    throw new ChainFormatError(problem.reason, `Cannot sign: ${problem.detail.charAt(0).toLowerCase()}${problem.detail.slice(1)}`);
  if (read.headers.some((f) => f.name === USER_SIGNATURE_HEADER.toLowerCase())) {
    throw new ChainFormatError('duplicate-header', `Cannot sign: the message already has an ${USER_SIGNATURE_HEADER} field`);
  }
  const tags: [string, string][] = [
    ['v', '1'],
    ['u', options.signer],
    ['c', options.certRef],
    ['t', String(unixSeconds(options.now))],
    ['h', PROTECTED_HEADERS.join(':')],
    ['hh', headerHash(read.headers, PROTECTED_HEADERS)],
    ['bh', read.bodyHash],
    ['b', ''],
  ];
  const signature = signP256(options.privateKey, Buffer.from(signedForm('user', tags, true), 'latin1'));
  tags[tags.length - 1] = ['b', encodeBase64url(signature)];
  const field = renderField('user', tags);
  // The field must parse under the grammar it claims: a bad signer or c= is the caller's error.
  parseUserSignature(field.slice(field.indexOf(':') + 1));
  return { field, message: prependField(message, field) };
}

function userResult(outcome: AuthOutcome, extra: { signer?: string; certRef?: string; signerMatchesFrom?: boolean }): UserVerification {
  const summary = formatSummary('ssmax-user', outcome, '', [['header.u', extra.signer ?? '']]);
  return { ...outcome, summary, ...extra, signerMatchesFrom: extra.signerMatchesFrom ?? false };
}

/**
 * Verifies the user signature: its grammar, the signer certificate from the
 * injected lookup, the ECDSA signature, then `hh=` and `bh=` against the
 * message. `none` when the message has no user signature.
 */
export async function verifyUser(message: Uint8Array, options: VerifyUserOptions): Promise<UserVerification> {
  if (!(message instanceof Uint8Array)) throw new TypeError('Cannot verify: the message must be a Uint8Array');
  let read;
  try {
    read = await readMessage(message, options);
  } catch (err) {
    if (err instanceof ChainFormatError) return userResult(fail(err.reason, err.message), {});
    return userResult(fail('body-unparseable', `Cannot read message: ${err instanceof Error ? err.message : String(err)}`), {});
  }
  const fields = read.headers.filter((f) => f.name === USER_SIGNATURE_HEADER.toLowerCase());
  if (fields.length === 0) return userResult({ result: 'none' }, {});
  if (fields.length > 1)
    return userResult(fail('duplicate-header', `The message has ${fields.length} ${USER_SIGNATURE_HEADER} fields`), {});
  let parsed;
  try {
    parsed = parseUserSignature(fieldValue(fields[0] as HeaderField));
  } catch (err) {
    if (err instanceof ChainFormatError) return userResult(fail(err.reason, err.message), {});
    throw err;
  }
  const extra = { signer: parsed.signer, certRef: parsed.certRef };
  const problem = messageProblem(read.headers);
  if (problem) return userResult(fail(problem.reason, problem.detail), extra);
  const nowSeconds = unixSeconds(options.now);
  if (parsed.time > nowSeconds + CHAIN_LIMITS.maxClockSkewSeconds) {
    return userResult(fail('time-in-future', `Signature time ${parsed.time} is after ${nowSeconds}`), extra);
  }
  if (options.maxAgeSeconds !== undefined && parsed.time < nowSeconds - options.maxAgeSeconds) {
    return userResult(
      fail(
        'time-too-old',
        `Signature time ${parsed.time} is ${nowSeconds - parsed.time} s before ${nowSeconds}, over ${options.maxAgeSeconds} s`,
      ),
      extra,
    );
  }
  let certificate;
  try {
    certificate = await options.lookup({ kind: 'user', certRef: parsed.certRef, time: parsed.time, address: parsed.signer });
  } catch (err) {
    return userResult(
      { result: 'temperror', detail: `certificate lookup failed: ${err instanceof Error ? err.message : String(err)}` },
      extra,
    );
  }
  if (!certificate) return userResult(fail('unknown-certificate', `No certificate for c=${parsed.certRef}`), extra);
  let valid: boolean;
  try {
    valid = verifyP256(
      certificate.publicKey,
      Buffer.from(signedForm('user', parsed.tags as Tag[], true), 'latin1'),
      decodeBase64url(parsed.signature) ?? new Uint8Array(),
    );
  } catch (err) {
    return userResult(
      { result: 'temperror', detail: `certificate key unusable: ${err instanceof Error ? err.message : String(err)}` },
      extra,
    );
  }
  if (!valid) return userResult(fail('signature-invalid', 'The user signature does not verify'), extra);
  if (headerHash(read.headers, parsed.signedHeaders) !== parsed.headerHash) {
    return userResult(fail('header-hash-mismatch', 'The protected headers changed after signing'), extra);
  }
  if (read.bodyHash !== parsed.bodyHash) return userResult(fail('body-hash-mismatch', 'The body changed after signing'), extra);
  const from = singleFromAddress(read.headers);
  const signer = parsed.signer.toLowerCase();
  const signerMatchesFrom = from === signer && (certificate.addresses ?? []).some((a) => a.toLowerCase() === signer);
  return userResult({ result: 'pass' }, { ...extra, signerMatchesFrom });
}
