/**
 * What verifyChain (every seal) and verifyNewestSeal (the recipient's check)
 * share, so that the two never diverge: reading the message and its seals
 * with the structural rules of docs/chain.md "Verifying" (the seals parse,
 * at most CHAIN_LIMITS.maxSeals, instances exactly 1…N, no duplicate
 * singleton, a From), the report of one seal, and the outcome of a chain
 * from its reports.
 */
import { type ReadMessage, type ReadOptions, readMessage } from './body-hash';
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
