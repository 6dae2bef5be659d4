/**
 * Reception at the receiving organisation (docs/protocol.md, "Encryption
 * chain", inbound at org B): a message from another organisation. Its chain
 * must verify against the sealers' bundles (chain-check.ts) and prove who
 * sent it, to whom and when (binding.ts); it is inspected (inspection.ts),
 * then copied for each local recipient (local-copies.ts). Unsealed mail is
 * accepted only from domains without SSMAX (ordinary Internet mail), as it is:
 * never claiming this organisation's own domains, a domain that publishes a
 * bundle, or a subdomain of either (binding.ts claimedOrganisation).
 */
import { capsuleFor, capsulesOf, checkMessage, domainOf, senderOf, shownSenders } from '../mail/message-checks';
import { GatewayError } from '../mail/replies';
import { checkArrival, claimedOrganisation } from './binding';
import { verifySeals } from './chain-check';
import type { Copy, GatewayDeps, HeldPost, HopResult } from './deps';
import { listRecipients } from './submission';
import {
  heldCapsules,
  inspectArrival,
  releaseTime,
  releasedArrival,
  releasedCapsules,
  releasedKeyGone,
  withInspectionResults,
} from './inspection';
import type { RetiredUse } from './key-exchange';
import { checkCopyBytes, localCopies } from './local-copies';
import { addSeal } from './sealing';

/**
 * Receives `raw` for `rcpts` (local recipients): the copies to hand to the
 * mailbox store, or that inspection held it.
 */
export async function receive(deps: GatewayDeps, raw: Buffer, rcpts: readonly string[]): Promise<HopResult> {
  try {
    return await receiveOnce(deps, raw, rcpts);
  } catch (err) {
    throw releasedKeyGone(deps, raw, err); // a release whose key version is gone: said so, the entry kept held by its releaser
  }
}

async function receiveOnce(deps: GatewayDeps, raw: Buffer, rcpts: readonly string[]): Promise<HopResult> {
  const head = checkMessage(raw);
  // a released arrival is judged as when it was held, not now (an operator may release it after max_seal_age_seconds)
  const at = releaseTime(deps, raw);
  const chain = await verifySeals(deps, raw, at);
  // a released message whose held entry was moved to a newer key version opens with the entry's capsule (src/inspect/held-keys.ts)
  const capsules = heldCapsules(deps, raw, capsulesOf(head.headers));
  if (chain.result === 'none') {
    if (capsules.length > 0) {
      const released = await releasedArrival(deps, raw, capsuleFor(deps.config.domain, capsules));
      if (!released) throw new GatewayError('chainFailed', 'encrypted message without seals');
      return receive(deps, released, rcpts);
    }
    // a subdomain without a bundle of its own is its parent organisation's (as for alignment), and this organisation's
    // own domains are never ordinary mail: neither in the From nor in a Sender field (shown as "on behalf of")
    for (const [field, address] of shownSenders(head)) {
      const domain = domainOf(address);
      const claimed = await claimedOrganisation(deps, domain);
      if (claimed !== undefined)
        throw new GatewayError(
          'chainFailed',
          `unsealed message ${field === 'From' ? 'from' : 'with a Sender of'} SSMAX domain ${domain}${claimed === domain ? '' : ` (the organisation ${claimed})`}`,
        );
    }
    // ordinary Internet mail: scanned like any other arrival, then delivered as it is, with what was inspected
    await refuseLists(deps, rcpts);
    const plain = await inspectArrival(deps, raw, undefined, head.from, rcpts);
    if (plain.quarantined) return { copies: [], notices: [], quarantined: plain.quarantined };
    return {
      copies: [{ rcpts: [...rcpts], message: withInspectionResults(deps.config.domain, plain.message, plain.verdicts), local: true }],
      notices: [],
    };
  }
  await checkArrival(deps, raw, head.from, chain, rcpts, at, senderOf(head.headers));
  if (capsules.length === 0) {
    // sealed but not encrypted (the sender's policy allowed plaintext): scanned, each recipient's copy sealed with the verdict, delivered
    await refuseLists(deps, rcpts);
    // one sealed copy per recipient, each the whole message, all held until handed over: capped as the decrypted ones are
    checkCopyBytes(deps, rcpts.length, raw.length, 'its recipients');
    const clear = await inspectArrival(deps, raw, undefined, head.from, rcpts);
    if (clear.quarantined) return { copies: [], notices: [], quarantined: clear.quarantined };
    const copies: Copy[] = [];
    for (const rcpt of rcpts)
      copies.push({
        rcpts: [rcpt],
        message: await addSeal(deps, clear.message, { from: 'peer', chain }, [...clear.verdicts, { name: 'e2e', result: 'none' }], [rcpt]),
        local: true,
      });
    return { copies, notices: [] };
  }
  const inspected = await inspectArrival(deps, raw, capsuleFor(deps.config.domain, capsules), head.from, rcpts);
  if (inspected.quarantined) return { copies: [], notices: [], quarantined: inspected.quarantined };
  // a release through a remote inspector: its held entry's capsule, moved to a newer key version, comes with the answer
  const opened = releasedCapsules(deps, capsules, inspected.capsule);
  const notices: RetiredUse[] = [];
  const holds: HeldPost[] = [];
  const copies = await localCopies(
    deps,
    { message: inspected.message, rcpts, origin: { from: 'peer', chain }, verdicts: inspected.verdicts, sender: head.from },
    opened,
    notices,
    holds,
  );
  return { copies, notices, holds };
}

/**
 * An arrival not encrypted to this organisation (plain Internet mail, or sealed but not encrypted) with a list of
 * this organisation among its recipients: refused before anything is inspected or held, 550 naming the list (a
 * post is encrypted to this organisation and its sender verified by the chain, docs/lists.md), instead of the
 * list's address being handed to the mailbox store as if it were a mailbox. A retry after other copies went is
 * answered 250 with a report (plugin.ts `refusedAfterEarlier`).
 */
async function refuseLists(deps: GatewayDeps, rcpts: readonly string[]): Promise<void> {
  const lists = await listRecipients(deps, rcpts);
  if (lists.length > 0) throw new GatewayError('listNeedsSsmax', lists.join(', '));
}
