/**
 * The gateway's seal step (docs/protocol.md, "Authentication chain"): this
 * hop's seal over a message whose chain was checked (chain-check.ts), binding
 * the envelope recipients of the copy. Sealing is the last change to a
 * message (completion.ts).
 */
import type { Verdict } from '../chain/tags';
import { prependField } from '../chain/message-fields';
import { bindRecipients, removeRecipientFields } from '../chain/recipients';
import { seal } from '../chain/seal';
import type { GatewayDeps, Origin } from './deps';

/**
 * Adds this gateway's seal over `message` (from `origin`), binding `rcpts` —
 * the envelope recipients of this copy (src/chain/recipients.ts): the
 * SSMAX-Recipients field of the hop before is replaced by this copy's.
 * `listAddress`: a list's re-distribution (src/lists/, docs/lists.md).
 */
export async function addSeal(
  deps: GatewayDeps,
  message: Buffer,
  origin: Origin,
  verdicts: readonly Verdict[],
  rcpts: readonly string[],
  listAddress?: string,
): Promise<Buffer> {
  const binding = bindRecipients(rcpts);
  const sealed = await seal(prependField(removeRecipientFields(message), binding.field), {
    domain: deps.config.domain,
    certRef: deps.seal.certRef,
    privateKey: deps.seal.privateKey,
    now: () => deps.clock().getTime(),
    verdicts,
    chain: origin.chain,
    ...(origin.from === 'own' ? { trackingToken: origin.trackingToken } : {}),
    recipientCommitment: binding.commitment,
    ...(listAddress ? { listAddress } : {}),
  });
  return Buffer.from(sealed.message);
}
