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
 * against the message as it is now; every earlier seal's `bh=` (and `hh=`,
 * for a message that was never encrypted) as verifyChain checks them
 * (`earlierMatches`). An earlier seal is then vouched for by
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
import { unixSeconds, type CertificateLookup, type Clock } from './certificate-lookup';
import { type AuthOutcome, fail } from './result';
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

function report(seal: SealFields, current: CurrentMessage, outcome: AuthOutcome, checked: SealCheck): NewestSealReport {
  return { ...sealReport(seal, current, outcome), checked };
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
  const got = await readSeals(message, {});
  if ('failure' in got) return { ...got.failure, summary: chainSummary(got.failure, []), instances: [] };
  const { read, seals } = got;
  if (seals.length === 0) return { result: 'none', summary: chainSummary({ result: 'none' }, []), instances: [] };
  const nowSeconds = unixSeconds(options.now);
  const reports: NewestSealReport[] = [];
  const newestIndex = seals.length - 1;
  for (const [index, seal] of seals.entries()) {
    const earlier = seals.slice(0, index);
    const structural = structuralProblem(seal, nowSeconds);
    if (index === newestIndex) {
      if (structural) {
        reports.push(report(seal, read, structural, 'signature'));
        continue;
      }
      const checked = await checkSignature(seal, earlier, options.lookup);
      const outcome: AuthOutcome =
        checked === 'unknown'
          ? fail('unknown-certificate', `No certificate for c=${seal.certRef} of seal ${seal.instance} (${seal.domain})`)
          : checked;
      reports.push(report(seal, read, outcome.result === 'pass' ? newestMatches(seal, read) : outcome, 'signature'));
      continue;
    }
    if (structural) {
      reports.push(report(seal, read, structural, 'newest-seal'));
      continue;
    }
    // the newest seal signs this seal's bh= and hh= as they stand: they are checked whether or not its certificate is known here
    const matches = earlierMatches(seal, seals[newestIndex]!, read);
    const own = options.earlier;
    if (!own || !own.domains.map((d) => d.toLowerCase()).includes(seal.domain)) {
      reports.push(report(seal, read, matches, 'newest-seal'));
      continue;
    }
    const checked = await checkSignature(seal, earlier, own.lookup);
    reports.push(
      report(
        seal,
        read,
        checked === 'unknown'
          ? fail('unknown-certificate', `No certificate for c=${seal.certRef} of seal ${seal.instance} (${seal.domain})`)
          : checked.result === 'pass'
            ? matches
            : checked,
        'signature',
      ),
    );
  }
  const { outcome, summary } = chainOutcome(reports);
  return { ...outcome, summary, instances: reports };
}
