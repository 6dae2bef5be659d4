/**
 * An organisation hop of the authentication chain: the seal (SSMAX §2.1 Fig.1;
 * docs/protocol.md "Authentication chain"; docs/chain.md "SSMAX-Seal").
 *
 * Seal i signs, with the gateway's sealing key: every earlier seal (1…i-1, as
 * they stand, signatures included) and its own tags, which carry the hash of
 * the protected headers `hh=`, the structural body hash `bh=`, the inspection
 * verdicts of this hop `vd=`, the result of verifying the chain before it
 * `cv=`, and at i = 1 the tracking token `tt=`.
 *
 * Guarantees: a gateway never seals over a failed chain: `seal` takes the
 * verifyChain result for this message and throws SealRefusedError unless it
 * is `pass` (or `none` for the first seal) and names exactly the seals the
 * message carries. It never emits a length limit.
 */
import type { KeyObject } from 'node:crypto';
import { signP256 } from '../crypto/ecdsa';
import { readMessageAgain } from './body-hash';
import { fieldValue, headerHash } from './canonicalize';
import { type Clock, unixSeconds } from './certificate-lookup';
import { CHAIN_LIMITS } from './limits';
import { prependField } from './message-fields';
import { PROTECTED_HEADERS } from './protected-headers';
import { ChainFormatError } from './result';
import { SEAL_HEADER, USER_SIGNATURE_HEADER, type Verdict, encodeBase64url, parseSeal, renderField, sealSigningInput } from './tags';
import type { SignedMessage } from './user-signature';
import { messageProblem } from './user-signature';
import type { ChainVerification } from './verify-chain';

/** Thrown when policy forbids sealing this message (the chain before failed, …). */
export class SealRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealRefusedError';
  }
}

export interface SealOptions {
  /** The sealing organisation's domain (`d=`), lowercase. */
  readonly domain: string;
  /** `c=`: base64url SHA-256 of the sealing certificate's DER (certificateRef). */
  readonly certRef: string;
  readonly privateKey: KeyObject;
  readonly now: Clock;
  /** Inspection verdicts of this hop, e.g. `[{ name: 'dlp', result: 'pass' }]`; may be empty. */
  readonly verdicts: readonly Verdict[];
  /** The tracking token (sealed AEAD blob from the key service): required at i = 1, refused after. */
  readonly trackingToken?: Uint8Array;
  /** `rc=`: the commitment to the envelope recipients of this copy (src/chain/recipients.ts); absent: not bound. */
  readonly recipientCommitment?: string;
  /** `ls=`: the list address this seal re-distributes the message for (docs/lists.md); absent: no list. */
  readonly listAddress?: string;
  /** verifyChain's result for this very message, before sealing. */
  readonly chain: ChainVerification;
}

export interface SealedMessage extends SignedMessage {
  readonly instance: number;
}

/** Adds seal i = N + 1 on top of a message that carries seals 1…N whose chain verified. */
export async function seal(message: Uint8Array, options: SealOptions): Promise<SealedMessage> {
  const { chain } = options;
  if (!chain || typeof chain !== 'object' || !Array.isArray(chain.instances))
    throw new TypeError('Cannot seal: options.chain must be the result of verifyChain');
  if (chain.result === 'fail') throw new SealRefusedError(`Cannot seal over a failed chain: ${chain.summary}`);
  if (chain.result === 'temperror') throw new SealRefusedError(`Cannot seal while the chain is unverified: ${chain.summary}`);
  // The body hash of the verification is reused when only the root header block changed since.
  const read = await readMessageAgain(message, chain.reading);
  const problem = messageProblem(read.headers);
  if (problem)
    throw new ChainFormatError(problem.reason, `Cannot seal: ${problem.detail.charAt(0).toLowerCase()}${problem.detail.slice(1)}`);
  if (read.headers.some((f) => f.name === USER_SIGNATURE_HEADER.toLowerCase())) {
    throw new SealRefusedError(`Cannot seal: the message still has an ${USER_SIGNATURE_HEADER} field (remove it first, SSMAX §2.2)`);
  }
  const earlier = read.headers.filter((f) => f.name === SEAL_HEADER.toLowerCase()).map((f) => parseSeal(fieldValue(f)));
  earlier.sort((a, b) => a.instance - b.instance);
  // Bind the verification to this message: the same seals, by their signatures.
  const verified = chain.instances.map((r) => r.signature);
  if (earlier.length !== verified.length || earlier.some((s, index) => s.signature !== verified[index])) {
    throw new SealRefusedError(
      `Cannot seal: the chain result given (${verified.length} seals) is not the verification of this message (${earlier.length} seals)`,
    );
  }
  if (chain.result === 'none' && earlier.length > 0)
    throw new SealRefusedError('Cannot seal: the chain result is none but the message has seals');
  const instance = earlier.length + 1;
  if (instance > CHAIN_LIMITS.maxSeals)
    throw new ChainFormatError('limit-exceeded', `Cannot seal: the message already has ${earlier.length} seals, the limit`);
  if (instance === 1 && !(options.trackingToken instanceof Uint8Array))
    throw new TypeError('Cannot seal instance 1: a tracking token is required');
  if (instance > 1 && options.trackingToken !== undefined)
    throw new TypeError(`Cannot seal instance ${instance}: a tracking token is only carried at instance 1`);
  const tags: [string, string][] = [
    ['v', '1'],
    ['i', String(instance)],
    ['d', options.domain],
    ['c', options.certRef],
    ['t', String(unixSeconds(options.now))],
    ['cv', instance === 1 ? 'none' : 'pass'],
    ['vd', options.verdicts.map((v) => `${v.name}:${v.result}`).join(',')],
    ...(instance === 1 && options.trackingToken ? [['tt', encodeBase64url(options.trackingToken)] as [string, string]] : []),
    ...(options.recipientCommitment === undefined ? [] : [['rc', options.recipientCommitment] as [string, string]]),
    ...(options.listAddress === undefined ? [] : [['ls', options.listAddress] as [string, string]]),
    ['h', PROTECTED_HEADERS.join(':')],
    ['hh', headerHash(read.headers, PROTECTED_HEADERS)],
    ['bh', read.bodyHash],
    ['b', ''],
  ];
  const signature = signP256(options.privateKey, sealSigningInput(earlier, tags));
  tags[tags.length - 1] = ['b', encodeBase64url(signature)];
  const field = renderField('seal', tags);
  // The field must parse under the grammar it claims: a bad domain, c= or verdict is the caller's error.
  parseSeal(field.slice(field.indexOf(':') + 1));
  return { field, message: prependField(message, field), instance };
}
