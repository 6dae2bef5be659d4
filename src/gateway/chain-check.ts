/**
 * The gateway's chain check, before it seals (docs/protocol.md,
 * "Authentication chain"): an arriving message's seals verified against the
 * sealing organisations' bundles (through the directory), the outcome mapped
 * to a decision (`verifySeals`); a message of this organisation's own — a
 * user's submission, the gateway's own report — checked to carry no seals yet
 * (`checkUnsealed`). A gateway never seals over a failed chain: it rejects.
 */
import { type ChainVerification, verifyChain, verifyUnsealed } from '../chain/verify-chain';
import { GatewayError, type ReplyName, chainFormatFault } from '../mail/replies';
import type { GatewayDeps } from './deps';
import type { SealRefresh } from './key-exchange';
import { noteChain, timed } from './message-log';

const CERTIFICATE_REASONS = new Set(['unknown-certificate', 'certificate-domain-mismatch']);
/** A later hop changed what an earlier seal signed (src/chain/seal-reading.ts earlierMatches). */
const LATER_HOP_REASONS = new Map<string, ReplyName>([
  ['earlier-body-hash-mismatch', 'earlierSealBodyChanged'],
  ['earlier-header-hash-mismatch', 'earlierSealHeadersChanged'],
]);

/**
 * Verifies the seals a message carries; throws the reply for anything but
 * pass/none. A seal by a certificate the cached bundle does not hold gets one
 * bounded refresh of that bundle (the sealer may have a new sealing
 * certificate: docs/key-exchange.md) and a second verification. The certificate
 * still unknown is permanent (5xx) only when every sealer whose certificate was
 * missing had its bundle fetched afresh just now (KeyWatch.refreshForSeal
 * 'refreshed'); when a refresh was skipped (rate limit) or failed, the answer
 * is temporary (4xx): the sending gateway retries, and a renewal race (the
 * sealer switched to a certificate our copy of its bundle does not show yet)
 * never bounces mail. `at`: the time to judge at instead of now (a released
 * arrival: when it was held; inspection.ts releaseTime).
 */
export async function verifySeals(deps: GatewayDeps, message: Buffer, at?: Date): Promise<ChainVerification> {
  const missing = new Set<string>();
  const verify = () => {
    missing.clear();
    return verifyChain(message, {
      now: () => (at ?? deps.clock()).getTime(),
      cpuBudgetMs: deps.config.cpuBudgetMs,
      lookup: async (req) => {
        const entry = await deps.directory.lookup(req.domain ?? '');
        const cert = entry.sealingCertificate(req.certRef, new Date(req.time * 1000));
        if (!cert) missing.add(entry.domain);
        return cert ? { publicKey: cert.publicKey, domain: cert.domain } : undefined;
      },
    });
  };
  let chain = await timed('chain', verify);
  const unconfirmed: string[] = []; // sealers whose bundle could not be fetched afresh
  if (chain.result === 'fail' && chain.reason === 'unknown-certificate' && deps.keyWatch && missing.size > 0) {
    const watch = deps.keyWatch;
    // the sealers' bundles refreshed together (each bounded by the directory's timeout), not one after another
    const outcomes = new Map<string, SealRefresh>(
      await Promise.all([...missing].map(async (domain): Promise<[string, SealRefresh]> => [domain, await watch.refreshForSeal(domain)])),
    );
    if ([...outcomes.values()].includes('refreshed')) chain = await timed('chain', verify);
    if (chain.result === 'fail' && chain.reason === 'unknown-certificate') {
      for (const domain of missing)
        if (outcomes.get(domain) !== 'refreshed') unconfirmed.push(`${domain} ${outcomes.get(domain) ?? 'not refreshed'}`);
    }
  }
  noteChain(chain); // the per-message log line
  if (chain.result === 'temperror') throw new GatewayError('chainTemperror', chain.detail);
  if (chain.result === 'fail') {
    if (unconfirmed.length > 0)
      throw new GatewayError('sealCertificateUnconfirmed', `${chain.reason}: ${chain.detail}; bundle refresh ${unconfirmed.join(', ')}`);
    const fault = chainFormatFault(chain.reason, chain.detail);
    if (fault) throw fault;
    const name = CERTIFICATE_REASONS.has(chain.reason) ? 'sealCertificateRefused' : (LATER_HOP_REASONS.get(chain.reason) ?? 'chainFailed');
    throw new GatewayError(name, `${chain.reason}: ${chain.detail}`);
  }
  return chain;
}

/**
 * A message of this organisation's own (`what`: "a submission", "a report"),
 * to be sealed as i=1: it must carry no seals. Read once here, as the chain
 * reads every message: one over the format limits is refused naming the
 * limit (before inspection's own parser meets it). The result (none) is what
 * the seal is made over (`Origin` in deps.ts).
 */
export async function checkUnsealed(deps: GatewayDeps, message: Buffer, what: string): Promise<ChainVerification> {
  const chain = await verifyUnsealed(message, { cpuBudgetMs: deps.config.cpuBudgetMs });
  if (chain.result === 'fail')
    throw chainFormatFault(chain.reason, chain.detail) ?? new GatewayError('chainFailed', `${what} must not carry seals`);
  return chain;
}
