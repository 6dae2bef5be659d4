/**
 * Verification of the organisation seals (SSMAX §2.1 Fig.1; docs/protocol.md
 * "Authentication chain"; docs/chain.md "Verifying").
 *
 * Every seal is checked in instance order: grammar, instances exactly 1…N,
 * tracking token only at i=1, `cv=` consistent with the position (and never
 * `fail`), time not in the future, the certificate from the injected lookup
 * and its domain, and the ECDSA signature over the earlier seals and the
 * seal's own tags. The newest seal's `hh=` and `bh=` must match the message as
 * it is now; an earlier seal's may not (a later hop legitimately replaced the
 * capsules it protected) and the report says whether they still do.
 *
 * Guarantees: never throws on malformed input; the outcome is a closed union,
 * with a report per instance and a one-line summary.
 */
import { type BodyReading, type ReadOptions, readMessage } from './body-hash';
import { type HeaderField, fieldValue, headerHash } from './canonicalize';
import { type CertificateLookup, type Clock, unixSeconds } from './certificate-lookup';
import { CHAIN_LIMITS } from './limits';
import { type AuthOutcome, ChainFormatError, fail, formatSummary } from './result';
import { SEAL_HEADER, type SealFields, type Verdict, parseSeal } from './tags';
import { checkSignature, errorText, structuralProblem } from './seal-checks';
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

export type ChainVerification = AuthOutcome & {
  /** `ssmax-chain=pass header.d=b.example header.i=2` */
  readonly summary: string;
  /** One report per seal, in instance order (empty when the seals could not be read). */
  readonly instances: readonly SealReport[];
  /** What reading the message gave, for `seal` to reuse over the same body (absent when it could not be read). */
  readonly reading?: BodyReading;
};

export interface VerifyChainOptions extends ReadOptions {
  readonly lookup: CertificateLookup;
  readonly now: Clock;
}

function chainResult(outcome: AuthOutcome, instances: readonly SealReport[], failedAt?: number, reading?: BodyReading): ChainVerification {
  const newest = instances[instances.length - 1];
  const summary = formatSummary('ssmax-chain', outcome, failedAt === undefined ? '' : `i=${failedAt} `, [
    ['header.d', newest?.domain ?? ''],
    ['header.i', newest ? String(newest.instance) : ''],
  ]);
  return { ...outcome, summary, instances, ...(reading ? { reading } : {}) };
}

async function verifyOne(seal: SealFields, earlier: readonly SealFields[], isNewest: boolean, current: { headers: readonly HeaderField[]; bodyHash: string }, options: VerifyChainOptions, nowSeconds: number): Promise<SealReport> {
  const matchesMessage = headerHash(current.headers, seal.signedHeaders) === seal.headerHash && current.bodyHash === seal.bodyHash;
  const report = (outcome: AuthOutcome): SealReport => ({
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
    matchesMessage,
    outcome,
  });
  const i = seal.instance;
  const structural = structuralProblem(seal, nowSeconds);
  if (structural) return report(structural);
  const signature = await checkSignature(seal, earlier, options.lookup);
  if (signature === 'unknown') return report(fail('unknown-certificate', `No certificate for c=${seal.certRef}`));
  if (signature.result !== 'pass') return report(signature);
  if (isNewest) {
    if (headerHash(current.headers, seal.signedHeaders) !== seal.headerHash) return report(fail('header-hash-mismatch', `The protected headers changed after seal ${i}`));
    if (current.bodyHash !== seal.bodyHash) return report(fail('body-hash-mismatch', `The body changed after seal ${i}`));
  }
  return report({ result: 'pass' });
}

/**
 * Verifies every SSMAX-Seal of a message. `none` without seals; `fail` with the
 * first failing instance's reason; `temperror` when no instance fails but a
 * certificate could not be looked up; `pass` otherwise.
 */
export async function verifyChain(message: Uint8Array, options: VerifyChainOptions): Promise<ChainVerification> {
  if (!(message instanceof Uint8Array)) throw new TypeError('Cannot verify: the message must be a Uint8Array');
  let read;
  try {
    read = await readMessage(message, options);
  } catch (err) {
    if (err instanceof ChainFormatError) return chainResult(fail(err.reason, err.message), []);
    return chainResult(fail('body-unparseable', `Cannot read message: ${errorText(err)}`), []);
  }
  const fields = read.headers.filter((f) => f.name === SEAL_HEADER.toLowerCase());
  if (fields.length === 0) return chainResult({ result: 'none' }, [], undefined, read.reading);
  if (fields.length > CHAIN_LIMITS.maxSeals) {
    return chainResult(fail('limit-exceeded', `The message has ${fields.length} seals, more than ${CHAIN_LIMITS.maxSeals}`), []);
  }
  const seals: SealFields[] = [];
  for (const field of fields) {
    try {
      seals.push(parseSeal(fieldValue(field)));
    } catch (err) {
      if (err instanceof ChainFormatError) return chainResult(fail(err.reason, err.message), []);
      throw err;
    }
  }
  seals.sort((a, b) => a.instance - b.instance);
  const instances = seals.map((s) => s.instance);
  if (instances.some((instance, index) => instance !== index + 1)) {
    return chainResult(fail('instance-order', `Seal instances are ${instances.join(', ')}, expected 1 to ${seals.length}, each once`), []);
  }
  const problem = messageProblem(read.headers);
  if (problem) return chainResult(fail(problem.reason, problem.detail), []);
  const nowSeconds = unixSeconds(options.now);
  const reports: SealReport[] = [];
  for (const [index, seal] of seals.entries()) {
    reports.push(await verifyOne(seal, seals.slice(0, index), index === seals.length - 1, read, options, nowSeconds));
  }
  const failed = reports.find((r) => r.outcome.result === 'fail');
  if (failed) return chainResult(failed.outcome, reports, failed.instance);
  const temp = reports.find((r) => r.outcome.result === 'temperror');
  if (temp) return chainResult(temp.outcome, reports, temp.instance);
  return chainResult({ result: 'pass' }, reports, undefined, read.reading);
}
