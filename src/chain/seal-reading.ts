/**
 * What verifyChain (every seal) and verifyNewestSeal (the recipient's check)
 * share, so that the two never diverge: reading the message and its seals
 * with the structural rules of docs/chain.md "Verifying" (the seals parse,
 * at most CHAIN_LIMITS.maxSeals, instances exactly 1…N, no duplicate
 * singleton, a From), the report of one seal, what the newest and the earlier
 * seals' `hh=`/`bh=` must match, and the outcome of a chain from its reports.
 */
import { type BodyNode, type ReadMessage, type ReadOptions, readMessage } from './body-hash';
import { type HeaderField, fieldValue, headerHash } from './canonicalize';
import { CHAIN_LIMITS } from './limits';
import { type AuthOutcome, ChainFormatError, fail, formatSummary } from './result';
import { SEAL_HEADER, type SealFields, type Verdict, parseSeal } from './tags';
import { errorText } from './seal-checks';
import { messageProblem } from './user-signature';

export interface SealReport {
  readonly instance: number;
  readonly domain: string;
  readonly certRef: string;
  readonly time: number;
  readonly chainValidation: SealFields['chainValidation'];
  readonly verdicts: readonly Verdict[];
  readonly trackingToken?: string;
  /** `rc=`: the commitment to the envelope recipients of the copy the seal was made for. */
  readonly recipientCommitment?: string;
  /** `ls=`: the list this seal re-distributed the message for (docs/lists.md). */
  readonly listAddress?: string;
  /** `b=` of the seal: what a later seal by this gateway binds to. */
  readonly signature: string;
  /** Whether `hh=` and `bh=` still match the message (must, for the newest seal). */
  readonly matchesMessage: boolean;
  readonly outcome: AuthOutcome;
}

/** The message as it is now: what the newest seal's `hh=` and `bh=` must match. */
export interface CurrentMessage {
  readonly headers: readonly HeaderField[];
  readonly bodyHash: string;
  /** The tree `bodyHash` describes: whether the body carries encrypted content. */
  readonly structure: BodyNode;
}

/**
 * The message read and its seals parsed, in instance order (none: an empty
 * list), or the failure that stops verification before any signature is
 * checked. Never throws on malformed input.
 */
export async function readSeals(
  message: Uint8Array,
  options: ReadOptions,
): Promise<{ readonly failure: AuthOutcome } | { readonly read: ReadMessage; readonly seals: readonly SealFields[] }> {
  if (!(message instanceof Uint8Array)) throw new TypeError('Cannot verify: the message must be a Uint8Array');
  let read;
  try {
    read = await readMessage(message, options);
  } catch (err) {
    if (err instanceof ChainFormatError) return { failure: fail(err.reason, err.message) };
    return { failure: fail('body-unparseable', `Cannot read message: ${errorText(err)}`) };
  }
  const fields = read.headers.filter((f) => f.name === SEAL_HEADER.toLowerCase());
  if (fields.length === 0) return { read, seals: [] };
  if (fields.length > CHAIN_LIMITS.maxSeals) {
    return { failure: fail('limit-exceeded', `The message has ${fields.length} seals, more than ${CHAIN_LIMITS.maxSeals}`) };
  }
  const seals: SealFields[] = [];
  for (const field of fields) {
    try {
      seals.push(parseSeal(fieldValue(field)));
    } catch (err) {
      if (err instanceof ChainFormatError) return { failure: fail(err.reason, err.message) };
      throw err;
    }
  }
  seals.sort((a, b) => a.instance - b.instance);
  const instances = seals.map((s) => s.instance);
  if (instances.some((instance, index) => instance !== index + 1)) {
    return { failure: fail('instance-order', `Seal instances are ${instances.join(', ')}, expected 1 to ${seals.length}, each once`) };
  }
  const problem = messageProblem(read.headers);
  if (problem) return { failure: fail(problem.reason, problem.detail) };
  return { read, seals };
}

/** The report of one seal with its outcome. */
export function sealReport(seal: SealFields, current: CurrentMessage, outcome: AuthOutcome): SealReport {
  return {
    instance: seal.instance,
    domain: seal.domain,
    certRef: seal.certRef,
    time: seal.time,
    chainValidation: seal.chainValidation,
    verdicts: seal.verdicts,
    ...(seal.trackingToken === undefined ? {} : { trackingToken: seal.trackingToken }),
    ...(seal.recipientCommitment === undefined ? {} : { recipientCommitment: seal.recipientCommitment }),
    ...(seal.listAddress === undefined ? {} : { listAddress: seal.listAddress }),
    signature: seal.signature,
    matchesMessage: headerHash(current.headers, seal.signedHeaders) === seal.headerHash && current.bodyHash === seal.bodyHash,
    outcome,
  };
}

/** The newest seal's `hh=` and `bh=` against the message as it is now (a pass otherwise stays a pass). */
export function newestMatches(seal: SealFields, current: CurrentMessage): AuthOutcome {
  if (headerHash(current.headers, seal.signedHeaders) !== seal.headerHash)
    return fail('header-hash-mismatch', `The protected headers changed after seal ${seal.instance}`);
  if (current.bodyHash !== seal.bodyHash) return fail('body-hash-mismatch', `The body changed after seal ${seal.instance}`);
  return { result: 'pass' };
}

/** The media type of SSMAX content ciphertext (docs/format.md), as the body hash records it. */
const ENCRYPTED_TYPE = 'application/ssmax-encrypted';

/**
 * Whether the body carries SSMAX content ciphertext: an encrypted entity at the
 * root (profile "message") or among the parts (profile "part"), not inside an
 * embedded message (an attached message is someone else's). Every message
 * with a capsule has one (encryption refuses to choose no part), so a body
 * without one was never encrypted: no hop replaced a capsule of it.
 */
export function carriesCiphertext(node: BodyNode): boolean {
  if (node.kind === 'message') return false;
  if (node.contentType === ENCRYPTED_TYPE) return true;
  return node.kind === 'multipart' && node.children.some(carriesCiphertext);
}

/**
 * An earlier seal's `bh=` and `hh=` (docs/chain.md "Verifying"). No hop
 * changes the body after seal i=1 — re-encryption, a list's copies and
 * forwarding replace capsules in the header only — so every earlier seal's
 * `bh=` must be the newest seal's (which the newest must match with the
 * message; comparing with the newest rather than the message keeps a
 * transparent copy's earlier seals passing, docs/abuse.md). A later hop
 * legitimately replaces capsules, which `hh=` covers, so an earlier `hh=`
 * binds only a message that never carried content ciphertext: then no capsule
 * was ever replaced, and every earlier `hh=` must match the message as the
 * newest seal does. Checked only while the newest seal's `bh=` is the
 * message's (otherwise the newest seal fails, and the structure read is not
 * the one the seals signed).
 */
export function earlierMatches(seal: SealFields, newest: SealFields, current: CurrentMessage): AuthOutcome {
  const who = `seal ${seal.instance} (${seal.domain})`;
  if (seal.bodyHash !== newest.bodyHash)
    return fail(
      'earlier-body-hash-mismatch',
      `The body is not the one ${who} signed: seal ${newest.instance} (${newest.domain}) signed another, and no hop may change the body`,
    );
  if (
    current.bodyHash === newest.bodyHash &&
    !carriesCiphertext(current.structure) &&
    headerHash(current.headers, seal.signedHeaders) !== seal.headerHash
  )
    return fail(
      'earlier-header-hash-mismatch',
      `The protected headers are not those ${who} signed, and the message is not encrypted (no capsule was replaced): a later hop changed them`,
    );
  return { result: 'pass' };
}

/** A chain's outcome from its reports: the first failing instance, else the first temperror, else pass; with its one-line summary. */
export function chainOutcome(reports: readonly SealReport[]): { readonly outcome: AuthOutcome; readonly summary: string } {
  const stop = reports.find((r) => r.outcome.result === 'fail') ?? reports.find((r) => r.outcome.result === 'temperror');
  return stop
    ? { outcome: stop.outcome, summary: chainSummary(stop.outcome, reports, stop.instance) }
    : { outcome: { result: 'pass' }, summary: chainSummary({ result: 'pass' }, reports) };
}

/** `ssmax-chain=pass header.d=b.example header.i=2` (the failing instance, if any, in the reason). */
export function chainSummary(outcome: AuthOutcome, instances: readonly SealReport[], failedAt?: number): string {
  const newest = instances[instances.length - 1];
  return formatSummary('ssmax-chain', outcome, failedAt === undefined ? '' : `i=${failedAt} `, [
    ['header.d', newest?.domain ?? ''],
    ['header.i', newest ? String(newest.instance) : ''],
  ]);
}
