/**
 * The gateway's seal step: verify the chain of earlier seals against the
 * sealing organisations' bundles (through the directory), map the outcome to
 * a decision, and add this hop's seal (PROTOCOL.md, "Authentication chain").
 * A gateway never seals over a failed chain: it rejects.
 */
import type { Verdict } from '../chain/tags';
import { seal } from '../chain/seal';
import { type ChainVerification, verifyChain } from '../chain/verify-chain';
import type { GatewayDeps } from './deps';
import { GatewayError } from './replies';

const CERTIFICATE_REASONS = new Set(['unknown-certificate', 'certificate-domain-mismatch']);

/** Verifies the seals a message carries; throws the reply for anything but pass/none. */
export async function verifySeals(deps: GatewayDeps, message: Buffer): Promise<ChainVerification> {
  const chain = await verifyChain(message, {
    now: () => deps.clock().getTime(),
    lookup: async (req) => {
      const entry = await deps.directory.lookup(req.domain ?? '');
      const cert = entry.sealingCertificate(req.certRef, new Date(req.time * 1000));
      return cert ? { publicKey: cert.publicKey, domain: cert.domain } : undefined;
    },
  });
  if (chain.result === 'temperror') throw new GatewayError('chainTemperror', chain.detail);
  if (chain.result === 'fail') {
    const name = CERTIFICATE_REASONS.has(chain.reason) ? 'sealCertificateRefused' : 'chainFailed';
    throw new GatewayError(name, `${chain.reason}: ${chain.detail}`);
  }
  return chain;
}

/** Adds this gateway's seal over a message whose chain verified (`chain` is that verification). */
export async function addSeal(deps: GatewayDeps, message: Buffer, chain: ChainVerification, verdicts: readonly Verdict[], trackingToken?: Uint8Array): Promise<Buffer> {
  const sealed = await seal(message, {
    domain: deps.config.domain, certRef: deps.seal.certRef, privateKey: deps.seal.privateKey, now: () => deps.clock().getTime(),
    verdicts, chain, ...(trackingToken ? { trackingToken } : {}),
  });
  return Buffer.from(sealed.message);
}
