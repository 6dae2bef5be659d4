/**
 * The gateway's seal step: verify the chain of earlier seals against the
 * sealing organisations' bundles (through the directory), map the outcome to
 * a decision, and add this hop's seal (docs/protocol.md, "Authentication chain").
 * A gateway never seals over a failed chain: it rejects.
 */
import type { Verdict } from '../chain/tags';
import { prependField } from '../chain/message-fields';
import { bindRecipients, removeRecipientFields } from '../chain/recipients';
import { seal } from '../chain/seal';
import { type ChainVerification, verifyChain } from '../chain/verify-chain';
import type { GatewayDeps } from './deps';
import type { SealRefresh } from './key-exchange';
import { GatewayError, chainFormatFault } from '../mail/replies';
import { noteChain, timed } from './message-log';

const CERTIFICATE_REASONS = new Set(['unknown-certificate', 'certificate-domain-mismatch']);

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
 * never bounces mail.
 */
export async function verifySeals(deps: GatewayDeps, message: Buffer): Promise<ChainVerification> {
  const missing = new Set<string>();
  const verify = () => {
    missing.clear();
    return verifyChain(message, {
      now: () => deps.clock().getTime(),
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
    const outcomes = new Map<string, SealRefresh>();
    for (const domain of missing) outcomes.set(domain, await deps.keyWatch.refreshForSeal(domain));
    if ([...outcomes.values()].includes('refreshed')) chain = await timed('chain', verify);
    if (chain.result === 'fail' && chain.reason === 'unknown-certificate') {
      for (const domain of missing) if (outcomes.get(domain) !== 'refreshed') unconfirmed.push(`${domain} ${outcomes.get(domain) ?? 'not refreshed'}`);
    }
  }
  noteChain(chain); // the per-message log line
  if (chain.result === 'temperror') throw new GatewayError('chainTemperror', chain.detail);
  if (chain.result === 'fail') {
    if (unconfirmed.length > 0) throw new GatewayError('sealCertificateUnconfirmed', `${chain.reason}: ${chain.detail}; bundle refresh ${unconfirmed.join(', ')}`);
    const fault = chainFormatFault(chain.reason, chain.detail);
    if (fault) throw fault;
    const name = CERTIFICATE_REASONS.has(chain.reason) ? 'sealCertificateRefused' : 'chainFailed';
    throw new GatewayError(name, `${chain.reason}: ${chain.detail}`);
  }
  return chain;
}

/**
 * Adds this gateway's seal over a message whose chain verified (`chain` is
 * that verification), binding `rcpts` — the envelope recipients of this copy
 * (src/chain/recipients.ts): the SSMAX-Recipients field of the hop before is
 * replaced by this copy's.
 */
export async function addSeal(deps: GatewayDeps, message: Buffer, chain: ChainVerification, verdicts: readonly Verdict[], trackingToken: Uint8Array | undefined, rcpts: readonly string[], listAddress?: string): Promise<Buffer> {
  const binding = bindRecipients(rcpts);
  const sealed = await seal(prependField(removeRecipientFields(message), binding.field), {
    domain: deps.config.domain, certRef: deps.seal.certRef, privateKey: deps.seal.privateKey, now: () => deps.clock().getTime(),
    verdicts, chain, ...(trackingToken ? { trackingToken } : {}), recipientCommitment: binding.commitment,
    ...(listAddress ? { listAddress } : {}), // a list's re-distribution (src/lists/, docs/lists.md)
  });
  return Buffer.from(sealed.message);
}
