/**
 * Verification of the organisation seals (SSMAX §2.1 Fig.1; docs/protocol.md
 * "Authentication chain"; docs/chain.md "Verifying").
 *
 * Every seal is checked (their certificates looked up together; reported in
 * instance order, the first failing instance deciding): grammar, instances exactly 1…N,
 * tracking token only at i=1, `cv=` consistent with the position (and never
 * `fail`), time not in the future, the certificate from the injected lookup
 * and its domain, and the ECDSA signature over the earlier seals and the
 * seal's own tags. The newest seal's `hh=` and `bh=` must match the message as
 * it is now. An earlier seal's `bh=` must be the newest seal's (no hop changes
 * the body); its `hh=` must match only when the body carries no encrypted
 * content (otherwise a later hop legitimately replaced the capsules it
 * protected): `earlierMatches`. The report says whether each seal's hashes
 * still match the message.
 *
 * Guarantees: never throws on malformed input; the outcome is a closed union,
 * with a report per instance and a one-line summary.
 */
import type { BodyReading, ReadOptions } from './body-hash';
import { type CertificateLookup, type Clock, unixSeconds } from './certificate-lookup';
import type { AuthOutcome } from './result';
import type { SealFields } from './tags';
import { checkSignature, structuralProblem } from './seal-checks';
import {
  type CurrentMessage,
  type SealReport,
  chainOutcome,
  chainSummary,
  earlierMatches,
  newestMatches,
  readSeals,
  sealReport,
} from './seal-reading';

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

async function verifyOne(
  seal: SealFields,
  earlier: readonly SealFields[],
  newest: SealFields,
  current: CurrentMessage,
  options: VerifyChainOptions,
  nowSeconds: number,
): Promise<SealReport> {
  const structural = structuralProblem(seal, nowSeconds);
  if (structural) return sealReport(seal, current, structural);
  const signature = await checkSignature(seal, earlier, options.lookup);
  if (signature === 'unknown')
    return sealReport(seal, current, { result: 'fail', reason: 'unknown-certificate', detail: `No certificate for c=${seal.certRef}` });
  if (signature.result !== 'pass') return sealReport(seal, current, signature);
  return sealReport(seal, current, seal === newest ? newestMatches(seal, current) : earlierMatches(seal, newest, current));
}

/**
 * Verifies every SSMAX-Seal of a message. `none` without seals; `fail` with the
 * first failing instance's reason; `temperror` when no instance fails but a
 * certificate could not be looked up; `pass` otherwise.
 */
export async function verifyChain(message: Uint8Array, options: VerifyChainOptions): Promise<ChainVerification> {
  const got = await readSeals(message, options);
  if ('failure' in got) return { ...got.failure, summary: chainSummary(got.failure, []), instances: [] };
  const { read, seals } = got;
  if (seals.length === 0) return { result: 'none', summary: chainSummary({ result: 'none' }, []), instances: [], reading: read.reading };
  const nowSeconds = unixSeconds(options.now);
  // the seals' certificates looked up together: a message with many seals by domains whose lookups stall costs one
  // lookup's time, not one per seal in turn (16 seals × a 5 s directory timeout used to be 80 s, most of it after
  // the gateway had answered)
  const reports: SealReport[] = await Promise.all(
    seals.map((seal, index) => verifyOne(seal, seals.slice(0, index), seals[seals.length - 1]!, read, options, nowSeconds)),
  );
  const { outcome, summary } = chainOutcome(reports);
  return { ...outcome, summary, instances: reports, ...(outcome.result === 'pass' ? { reading: read.reading } : {}) };
}

/**
 * The verification of a message that must carry no seals yet — one of the
 * sealer's own organisation (a user's submission, its own report), to be
 * sealed as i=1 — with no certificate to look up: `none` with the reading
 * `seal` reuses; `fail` as verifyChain when the message cannot be read within
 * the limits; `fail` (malformed) when it carries seals.
 */
export async function verifyUnsealed(message: Uint8Array, options: ReadOptions): Promise<ChainVerification> {
  const got = await readSeals(message, options);
  if ('failure' in got) return { ...got.failure, summary: chainSummary(got.failure, []), instances: [] };
  const outcome: AuthOutcome =
    got.seals.length === 0
      ? { result: 'none' }
      : { result: 'fail', reason: 'malformed', detail: `The message carries ${got.seals.length} seal(s) where none may be` };
  return {
    ...outcome,
    summary: chainSummary(outcome, []),
    instances: [],
    ...(outcome.result === 'none' ? { reading: got.read.reading } : {}),
  };
}
