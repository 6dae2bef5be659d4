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
import { GatewayError, chainFormatFault } from './replies';
import { noteChain, timed } from './message-log';

const CERTIFICATE_REASONS = new Set(['unknown-certificate', 'certificate-domain-mismatch']);

/**
 * Verifies the seals a message carries; throws the reply for anything but
 * pass/none. A seal by a certificate the cached bundle does not hold gets one
 * bounded refresh of that bundle (the sealer may have a new sealing
 * certificate: docs/key-exchange.md) and a second verification before a 5xx.
 */
export async function verifySeals(deps: GatewayDeps, message: Buffer): Promise<ChainVerification> {
  const missing = new Set<string>();
  const verify = () => verifyChain(message, {
    now: () => deps.clock().getTime(),
    cpuBudgetMs: deps.config.cpuBudgetMs,
    lookup: async (req) => {
      const entry = await deps.directory.lookup(req.domain ?? '');
      const cert = entry.sealingCertificate(req.certRef, new Date(req.time * 1000));
      if (!cert) missing.add(entry.domain);
      return cert ? { publicKey: cert.publicKey, domain: cert.domain } : undefined;
    },
  });
  let chain = await timed('chain', verify);
  if (chain.result === 'fail' && chain.reason === 'unknown-certificate' && deps.keyWatch && missing.size > 0) {
    let refreshed = false;
    for (const domain of missing) if (await deps.keyWatch.refreshForSeal(domain)) refreshed = true;
    if (refreshed) chain = await timed('chain', verify);
  }
  noteChain(chain); // the per-message log line
  if (chain.result === 'temperror') throw new GatewayError('chainTemperror', chain.detail);
  if (chain.result === 'fail') {
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
