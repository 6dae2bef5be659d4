/**
 * Verification of the newest seal only, as a recipient does it (docs/protocol.md,
 * "Authentication chain": "The recipient (or recipient's client) verifies the
 * newest seal against the receiving org's certificate; earlier seals remain
 * for audit").
 *
 * The recipient trusts its own organisation: it checks the newest seal's
 * certificate (through the injected `lookup`, which knows only its own
 * organisation's sealing certificates), its signature — which covers every
 * earlier seal as it stands, signatures included — and its `hh=`/`bh=`
 * against the message as it is now. An earlier seal is then vouched for by
 * the newest sealer (its `cv=pass` says it verified the chain before it);
 * when the caller also has a lookup for the earlier sealers (peer bundles),
 * their signatures are checked too.
 *
 * Structural rules are those of verifyChain (docs/chain.md "Verifying"): the
 * seals parse, instances are exactly 1…N, `cv=` fits each position, no time
 * lies in the future, the message has no duplicate singleton and a From.
 *
 * Guarantees: never throws on malformed input; the outcome is a closed union,
 * with a report per instance (saying how it was checked) and a one-line summary.
 */
import { readMessage } from './body-hash';
import { type HeaderField, fieldValue, headerHash } from './canonicalize';
import { type CertificateLookup, type Clock, unixSeconds } from './certificate-lookup';
import { CHAIN_LIMITS } from './limits';
import { type AuthOutcome, ChainFormatError, fail, formatSummary } from './result';
import { SEAL_HEADER, type SealFields, parseSeal } from './tags';
import { messageProblem } from './user-signature';
import type { SealReport } from './verify-chain';
import { checkSignature, errorText, structuralProblem } from './seal-checks';

/**
 * How a seal was checked: `signature` — its certificate was looked up and its
 * signature verified here; `newest-seal` — not checked here, but covered by the
 * newest seal's signature and vouched for by that sealer's `cv=pass`.
 */
export type SealCheck = 'signature' | 'newest-seal';

export interface NewestSealReport extends SealReport {
  readonly checked: SealCheck;
}

export type NewestSealVerification = AuthOutcome & {
  /** `ssmax-chain=pass header.d=b.example header.i=2` */
  readonly summary: string;
  /** One report per seal, in instance order (empty when the seals could not be read). */
  readonly instances: readonly NewestSealReport[];
};

export interface VerifyNewestSealOptions {
  /** Resolves the newest seal's certificate: the recipient's own organisation only. */
  readonly lookup: CertificateLookup;
  /**
   * Optional: earlier sealers the caller can check itself (e.g. from peer
   * bundles). An earlier seal whose `d=` is in `domains` must verify against
   * `lookup` (an unknown certificate fails); the others are reported as
   * checked by the newest seal.
   */
  readonly earlier?: { readonly domains: readonly string[]; readonly lookup: CertificateLookup };
  readonly now: Clock;
}


function result(outcome: AuthOutcome, instances: readonly NewestSealReport[], failedAt?: number): NewestSealVerification {
  const newest = instances[instances.length - 1];
  const summary = formatSummary('ssmax-chain', outcome, failedAt === undefined ? '' : `i=${failedAt} `, [
    ['header.d', newest?.domain ?? ''],
    ['header.i', newest ? String(newest.instance) : ''],
  ]);
  return { ...outcome, summary, instances };
}

interface Current {
  readonly headers: readonly HeaderField[];
  readonly bodyHash: string;
}

function report(seal: SealFields, current: Current, outcome: AuthOutcome, checked: SealCheck): NewestSealReport {
  return {
    instance: seal.instance,
    domain: seal.domain,
    certRef: seal.certRef,
    time: seal.time,
    chainValidation: seal.chainValidation,
    verdicts: seal.verdicts,
    ...(seal.trackingToken === undefined ? {} : { trackingToken: seal.trackingToken }),
    signature: seal.signature,
    matchesMessage: headerHash(current.headers, seal.signedHeaders) === seal.headerHash && current.bodyHash === seal.bodyHash,
    outcome,
    checked,
  };
}

/**
 * Verifies the newest SSMAX-Seal of a message against `lookup` (the
 * recipient's own organisation), and the earlier ones structurally (and by
 * signature for the sealers named in `earlier`). `none` without
 * seals; `fail` with the first failing instance's reason (an unknown
 * certificate for the newest seal is `unknown-certificate`); `temperror` when a
 * lookup failed and nothing failed; `pass` otherwise.
 */
export async function verifyNewestSeal(message: Uint8Array, options: VerifyNewestSealOptions): Promise<NewestSealVerification> {
  if (!(message instanceof Uint8Array)) throw new TypeError('Cannot verify: the message must be a Uint8Array');
  let read;
  try {
    read = await readMessage(message);
  } catch (err) {
    if (err instanceof ChainFormatError) return result(fail(err.reason, err.message), []);
    return result(fail('body-unparseable', `Cannot read message: ${errorText(err)}`), []);
  }
  const fields = read.headers.filter((f) => f.name === SEAL_HEADER.toLowerCase());
  if (fields.length === 0) return result({ result: 'none' }, []);
  if (fields.length > CHAIN_LIMITS.maxSeals) {
    return result(fail('limit-exceeded', `The message has ${fields.length} seals, more than ${CHAIN_LIMITS.maxSeals}`), []);
  }
  const seals: SealFields[] = [];
  for (const field of fields) {
    try {
      seals.push(parseSeal(fieldValue(field)));
    } catch (err) {
      if (err instanceof ChainFormatError) return result(fail(err.reason, err.message), []);
      throw err;
    }
  }
  seals.sort((a, b) => a.instance - b.instance);
  const instances = seals.map((s) => s.instance);
  if (instances.some((instance, index) => instance !== index + 1)) {
    return result(fail('instance-order', `Seal instances are ${instances.join(', ')}, expected 1 to ${seals.length}, each once`), []);
  }
  const problem = messageProblem(read.headers);
  if (problem) return result(fail(problem.reason, problem.detail), []);
  const nowSeconds = unixSeconds(options.now);
  const reports: NewestSealReport[] = [];
  const newestIndex = seals.length - 1;
  for (const [index, seal] of seals.entries()) {
    const earlier = seals.slice(0, index);
    const structural = structuralProblem(seal, nowSeconds);
    if (index === newestIndex) {
      if (structural) { reports.push(report(seal, read, structural, 'signature')); continue; }
      const checked = await checkSignature(seal, earlier, options.lookup);
      let outcome: AuthOutcome = checked === 'unknown' ? fail('unknown-certificate', `No certificate for c=${seal.certRef} of seal ${seal.instance} (${seal.domain})`) : checked;
      if (outcome.result === 'pass') {
        if (headerHash(read.headers, seal.signedHeaders) !== seal.headerHash) outcome = fail('header-hash-mismatch', `The protected headers changed after seal ${seal.instance}`);
        else if (read.bodyHash !== seal.bodyHash) outcome = fail('body-hash-mismatch', `The body changed after seal ${seal.instance}`);
      }
      reports.push(report(seal, read, outcome, 'signature'));
      continue;
    }
    if (structural) { reports.push(report(seal, read, structural, 'newest-seal')); continue; }
    const own = options.earlier;
    if (!own || !own.domains.map((d) => d.toLowerCase()).includes(seal.domain)) { reports.push(report(seal, read, { result: 'pass' }, 'newest-seal')); continue; }
    const checked = await checkSignature(seal, earlier, own.lookup);
    reports.push(report(seal, read, checked === 'unknown' ? fail('unknown-certificate', `No certificate for c=${seal.certRef} of seal ${seal.instance} (${seal.domain})`) : checked, 'signature'));
  }
  const failed = reports.find((r) => r.outcome.result === 'fail');
  if (failed) return result(failed.outcome, reports, failed.instance);
  const temp = reports.find((r) => r.outcome.result === 'temperror');
  if (temp) return result(temp.outcome, reports, temp.instance);
  return result({ result: 'pass' }, reports);
}
