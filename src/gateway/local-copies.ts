/**
 * Copies for local recipients (docs/protocol.md, "Encryption chain",
 * inbound at org B), whichever way the message came: from a peer (reception.ts)
 * or from this organisation's own user (submission.ts). Per local recipient,
 * one copy that carries only that recipient's capsule (Bcc stays private):
 *  - an SSMAX user (has an encryption key): re-encrypted to the user's key by
 *    keyd; sealed with verdict e2e=pass;
 *  - a plain-client user (transparent mode, as the Crypt-Mail Secretary did):
 *    the seal (verdict e2e=none) is made over the encrypted form, then the
 *    message key is obtained by blinded decryption with a verified proof and
 *    the original message is delivered on the internal hop, carrying the
 *    seals and an Authentication-Results line, its display fields (From,
 *    To, Subject, ...) the sealed outer ones (src/mail/sealed-header.ts: the
 *    inner header is covered by no seal);
 *  - a list of this organisation: its members' copies (src/lists/expand.ts).
 * Copies for local recipients go straight to the mailbox store (delivery.ts),
 * never to this gateway's spool.
 */
import type { Capsule } from '../crypto';
import { collect, replaceCapsules } from '../envelope';
import { plaintextOf } from '../inspect/engine';
import type { KeyNotice } from '../keyd/client-ops';
import { listFields } from '../lists/chain';
import { capsuleFor } from '../mail/message-checks';
import { GatewayError } from '../mail/replies';
import type { Copy, ForLocal, GatewayDeps, HeldPost } from './deps';
import { inspectedClauses } from './inspection';
import { type RetiredUse, noteRetired } from './key-exchange';
import { addSeal } from './sealing';
import { isField, splitHeaderBlock } from '../mail/header-block';
import { underSealedHeader } from '../mail/sealed-header';

function sealHeaders(message: Buffer): string {
  const fields = splitHeaderBlock(message).fields.filter((f) => isField(f, 'ssmax-seal') || isField(f, 'ssmax-recipients'));
  return fields.map((f) => `${f}\r\n`).join('');
}

/**
 * The original message of `message`, decrypted at most once however many
 * plain-client recipients need it (the message key by blinded decryption with
 * a verified proof, wiped after use: src/inspect/engine.ts), under the sealed
 * display fields of `message`: what a plain client shows as From, To,
 * Subject, ... is what the seals covered, never the inner header no seal
 * covers (src/mail/sealed-header.ts). A failure is every caller's.
 */
export function plaintextOnce(
  deps: GatewayDeps,
  message: Buffer,
  capsule: Capsule,
  notices: RetiredUse[] | undefined,
): () => Promise<Buffer> {
  let original: Promise<Buffer> | undefined;
  return () =>
    (original ??= plaintextOf(deps.keyd, deps.group, message, capsule, {
      purpose: 'for transparent delivery',
      notice: (n) => noteRetired(notices, capsule.keyId, n),
    }).then((inner) => underSealedHeader(message, inner)));
}

/**
 * Refuses for good, before any copy is made, a message whose copies for one set of recipients (its local users, or one list's members) would take more than
 * `[main] max_copy_bytes`: every recipient's (or list member's) copy is the whole message, all of them held until
 * they are handed over, so one large message to many would otherwise grow the gateway's memory without bound.
 */
export function checkCopyBytes(deps: Pick<GatewayDeps, 'config'>, copies: number, size: number, what: string): void {
  const max = deps.config.maxCopyBytes;
  if (copies * size > max)
    throw new GatewayError(
      'tooManyCopies',
      `${copies} copies of ${size} bytes for ${what} would take ${copies * size} bytes, over [main] max_copy_bytes (${max}): send it to fewer recipients at once, or smaller`,
    );
}

/**
 * The copies of `input` for its local recipients (users and lists of this
 * organisation; any other recipient refuses the whole). `capsules`: those the
 * message carries; `notices` collects keyd's retired-key notices; `holds`
 * collects the posts a moderated list holds, written only when the copies are
 * handed over (src/lists/expand.ts writeHolds): a post that a later recipient
 * refuses or defers is never held. A hold without `holds` to collect it is a
 * fault of ours (4xx), never a post dropped.
 */
export async function localCopies(
  deps: GatewayDeps,
  input: ForLocal,
  capsules: readonly Capsule[],
  notices?: RetiredUse[],
  holds?: HeldPost[],
): Promise<Copy[]> {
  const capsule = capsuleFor(deps.config.domain, capsules);
  const plaintext = input.plaintext ?? plaintextOnce(deps, input.message, capsule, notices);
  const copies: Copy[] = [];
  const found = await Promise.all(input.rcpts.map((rcpt) => deps.keyd.user(rcpt)));
  // a list of this organisation among the recipients (src/lists/expand.ts); any other unknown recipient refuses the whole
  const lists = await Promise.all(input.rcpts.map((rcpt, i) => (!found[i] && deps.lists ? deps.keyd.list(rcpt) : undefined)));
  input.rcpts.forEach((rcpt, i) => {
    const user = found[i];
    if (!lists[i] && (!user || user.status !== 'active')) throw new GatewayError('noLocalRecipient', rcpt);
  });
  // one copy per user (a list counts its members when it expands, src/lists/expand.ts)
  checkCopyBytes(deps, lists.filter((l) => !l).length, input.message.length, 'its recipients');
  for (const [i, rcpt] of input.rcpts.entries()) {
    const list = lists[i];
    if (!list || !deps.lists) continue;
    const outcome = await deps.lists.post(deps, { arrival: { ...input, rcpts: [rcpt] }, capsules, list, ...(notices ? { notices } : {}) });
    copies.push(...outcome.copies);
    if (outcome.hold) {
      if (!holds) throw new GatewayError('internal', `the post to ${rcpt} is to be held, and this step keeps no held posts`);
      holds.push(outcome.hold);
    }
  }
  const rcpts = input.rcpts.filter((_, i) => !lists[i]);
  const users = found.filter((_, i) => !lists[i]);
  // All recipients' re-encryptions issued together: they travel to keyd in one batch (src/keyd/client-batch.ts).
  // A list's member copies: keyd's `list` target, or the capsule the list's own batch already made (src/lists/expand.ts).
  const moves = await Promise.all(
    rcpts.map((rcpt, i) => {
      const keyId = users[i]!.encryptionKeyId;
      if (!keyId) return undefined;
      const done = input.moved?.get(rcpt);
      if (done) return { capsule: done } as { capsule: Capsule } & KeyNotice;
      return deps.keyd.reencrypt(
        capsule,
        input.list ? { kind: 'list', list: input.list, member: rcpt } : { kind: 'user', address: rcpt },
        keyId,
      );
    }),
  );
  for (const [i, rcpt] of rcpts.entries()) {
    const moved = moves[i];
    if (moved) {
      noteRetired(notices, capsule.keyId, moved);
      const forUser = await collect(replaceCapsules(input.message, [moved.capsule]));
      const sealed = await addSeal(deps, forUser, input.origin, [...input.verdicts, { name: 'e2e', result: 'pass' }], [rcpt], input.list);
      copies.push({ rcpts: [rcpt], message: sealed, local: true, ...listOf(input) });
      continue;
    }
    // Transparent delivery on the internal hop.
    const sealed = await addSeal(
      deps,
      input.message,
      input.origin,
      [...input.verdicts, { name: 'e2e', result: 'none' }],
      [rcpt],
      input.list,
    );
    // decrypted once for the message, not once per recipient (a list's slices share it too: input.plaintext)
    const original = await plaintext();
    const results = `Authentication-Results: ${deps.config.domain}; ssmax-chain=pass (${input.origin.chain.instances.length} seal(s) verified); ssmax-mode=transparent${inspectedClauses(input.verdicts)}\r\n`;
    copies.push({
      rcpts: [rcpt],
      message: Buffer.concat([
        Buffer.from(results + (input.listFields ?? sealedListFields(input)) + sealHeaders(sealed), 'latin1'),
        original,
      ]),
      local: true,
      ...listOf(input),
    });
  }
  return copies;
}

/**
 * The list fields (List-Id, List-Post, List-Unsubscribe) of a plain member's copy of another organisation's list:
 * made from the list address its newest seal carries (ls=, verified), as every SSMAX list writes them, never
 * copied from the arriving header, which no seal covers (a hop could point "reply to list" or "unsubscribe"
 * anywhere). None for mail whose newest seal is no list seal.
 */
function sealedListFields(input: ForLocal): string {
  const list = input.origin.chain.instances.at(-1)?.listAddress;
  return list ? listFields(list) : '';
}

function listOf(input: ForLocal): { list?: string } {
  return input.list ? { list: input.list } : {};
}
