/**
 * Reception at the receiving organisation (docs/protocol.md, "Encryption chain", inbound at org
 * B"), also used for local recipients of the sending organisation: per local
 * recipient, one copy that carries only that recipient's capsule (Bcc stays
 * private):
 *  - an SSMAX user (has an encryption key): re-encrypted to the user's key by
 *    keyd; sealed with verdict e2e=pass;
 *  - a plain-client user (transparent mode, as the Crypt-Mail Secretary did):
 *    the seal (verdict e2e=none) is made over the encrypted form, then the
 *    message key is obtained by blinded decryption with a verified proof and
 *    the original message is delivered on the internal hop, carrying the
 *    seals and an Authentication-Results line.
 * Copies for local recipients go straight to the mailbox store (delivery.ts),
 * never to this gateway's spool.
 */
import type { Capsule } from '../crypto';
import type { ChainVerification } from '../chain/verify-chain';
import { collect, decryptMessage, replaceCapsules } from '../envelope';
import { DirectoryError } from '../directory/directory';
import type { Copy, GatewayDeps } from './deps';
import type { KeyNotice } from '../keyd/client-ops';
import { capsulesOf, checkMessage, domainOf } from '../mail/message-checks';
import { GatewayError, messageFault } from '../mail/replies';
import { inspectArrival, inspectedClauses, releasedArrival, withInspectionResults } from './inspection';
import { addSeal, verifySeals } from './sealing';
import { checkArrival } from './binding';
import { listFieldsOf } from '../lists/chain';
import type { Verdict } from '../chain/tags';

export interface Arrival {
  readonly message: Buffer;
  readonly rcpts: readonly string[];
  /**
   * The verification of the seals the message carries (result pass or none).
   * It holds for every copy: a copy differs only in its capsules, which the
   * earlier seals' signatures do not depend on.
   */
  readonly chain: ChainVerification;
  /** Verdicts of this hop's inspection, if any (issue 8). */
  readonly verdicts: readonly Verdict[];
  /** The tracking token, when this gateway is the first sealer (local mail at the sending org). */
  readonly trackingToken?: Uint8Array;
  /** The verified sender (the From the chain or the user signature vouches for): what a list's posting policy checks (src/lists/). */
  readonly sender?: string;
  /** Copies made for this list's members (src/lists/): re-encrypted with keyd's `list` target, sealed with `ls=`; `listFields` head a plain member's copy. */
  readonly list?: string;
  readonly listFields?: string;
  /** Capsules already re-encrypted for these recipients (a list's batch, src/lists/expand.ts): used instead of asking keyd again. */
  readonly moved?: ReadonlyMap<string, Capsule>;
}

/** The capsule made for this organisation's key; a missing or foreign one is refused. */
export function ownCapsule(deps: GatewayDeps, capsules: readonly Capsule[]): Capsule {
  const mine = capsules.filter((c) => c.keyId.startsWith(`${deps.config.domain}:v`));
  if (mine.length !== 1) throw new GatewayError('badCapsule', `expected one capsule for a ${deps.config.domain} key, found ${mine.length} (of ${capsules.length})`);
  return mine[0]!;
}

function sealHeaders(message: Buffer): string {
  const head = message.subarray(0, message.indexOf('\r\n\r\n') + 2).toString('latin1');
  const fields = head.split(/\r\n(?![ \t])/).filter((f) => /^ssmax-(seal|recipients):/i.test(f));
  return fields.map((f) => `${f}\r\n`).join('');
}

/**
 * A capsule accepted for a retired version of this organisation's key:
 * keyd did the work and named the current version; the reply tells the
 * sender to refresh (docs/key-exchange.md).
 */
export interface RetiredUse {
  readonly keyId: string;
  readonly current: string;
}

export function noteRetired(notices: RetiredUse[] | undefined, keyId: string, n: KeyNotice): void {
  if (!notices || n.notice !== 'retired' || !n.current) return;
  if (!notices.some((x) => x.keyId === keyId && x.current === n.current)) notices.push({ keyId, current: n.current });
}

/** The refresh hint for an SMTP reply, e.g. ` (refresh: b.example current key b.example:v3)`; '' when none. */
export function refreshHint(domain: string, notices: readonly RetiredUse[]): string {
  const current = [...new Set(notices.map((n) => n.current))];
  return current.length > 0 ? ` (refresh: ${domain} current key ${current.join(',')})` : '';
}

export async function receive(deps: GatewayDeps, arrival: Arrival, capsules: readonly Capsule[], notices?: RetiredUse[]): Promise<Copy[]> {
  const capsule = ownCapsule(deps, capsules);
  const copies: Copy[] = [];
  let orgPublicKey: Uint8Array | undefined;
  const found = await Promise.all(arrival.rcpts.map((rcpt) => deps.keyd.user(rcpt)));
  // a list of this organisation among the recipients (src/lists/expand.ts); any other unknown recipient refuses the whole
  const lists = await Promise.all(arrival.rcpts.map((rcpt, i) => (!found[i] && deps.lists ? deps.keyd.list(rcpt) : undefined)));
  arrival.rcpts.forEach((rcpt, i) => {
    const user = found[i];
    if (!lists[i] && (!user || user.status !== 'active')) throw new GatewayError('noLocalRecipient', rcpt);
  });
  for (const [i, rcpt] of arrival.rcpts.entries()) {
    const list = lists[i];
    if (list && deps.lists) copies.push(...(await deps.lists.post(deps, { arrival: { ...arrival, rcpts: [rcpt] }, capsules, list, ...(notices ? { notices } : {}) })).copies);
  }
  const rcpts = arrival.rcpts.filter((_, i) => !lists[i]);
  const users = found.filter((_, i) => !lists[i]);
  // All recipients' re-encryptions issued together: they travel to keyd in one batch (src/keyd/client-batch.ts).
  // A list's member copies: keyd's `list` target, or the capsule the list's own batch already made (src/lists/expand.ts).
  const moves = await Promise.all(rcpts.map((rcpt, i) => {
    const keyId = users[i]!.encryptionKeyId;
    if (!keyId) return undefined;
    const done = arrival.moved?.get(rcpt);
    if (done) return { capsule: done } as { capsule: Capsule } & KeyNotice;
    return deps.keyd.reencrypt(capsule, arrival.list ? { kind: 'list', list: arrival.list, member: rcpt } : { kind: 'user', address: rcpt }, keyId);
  }));
  for (const [i, rcpt] of rcpts.entries()) {
    const moved = moves[i];
    if (moved) {
      noteRetired(notices, capsule.keyId, moved);
      const forUser = await collect(replaceCapsules(arrival.message, [moved.capsule]));
      const sealed = await addSeal(deps, forUser, arrival.chain, [...arrival.verdicts, { name: 'e2e', result: 'pass' }], arrival.trackingToken, [rcpt], arrival.list);
      copies.push({ rcpts: [rcpt], message: sealed, local: true });
      continue;
    }
    // Transparent delivery on the internal hop.
    const sealed = await addSeal(deps, arrival.message, arrival.chain, [...arrival.verdicts, { name: 'e2e', result: 'none' }], arrival.trackingToken, [rcpt], arrival.list);
    orgPublicKey ??= await deps.keyd.certifiedKey(capsule.keyId);
    const { messageKey, ...notice } = await deps.keyd.messageKey(capsule, orgPublicKey);
    noteRetired(notices, capsule.keyId, notice);
    let original: Buffer;
    try {
      original = await collect(decryptMessage(arrival.message, { messageKey }, { group: deps.group }));
    } catch (err) {
      // the message key came with a verified proof: what fails now is the message (a limit of it, or its form)
      throw new GatewayError(messageFault(err)?.name ?? 'badFormat', `cannot decrypt: ${(err as Error).message}`);
    } finally {
      messageKey.fill(0); // the message key is not kept in memory after use
    }
    const results = `Authentication-Results: ${deps.config.domain}; ssmax-chain=pass (${arrival.chain.instances.length} seal(s) verified); ssmax-mode=transparent${inspectedClauses(arrival.verdicts)}\r\n`;
    copies.push({ rcpts: [rcpt], message: Buffer.concat([Buffer.from(results + (arrival.listFields ?? listFieldsOf(arrival.message)) + sealHeaders(sealed), 'latin1'), original]), local: true });
  }
  return copies;
}

/**
 * A message arriving from another organisation: its chain must verify
 * against the sealers' bundles; unsealed mail is accepted only from domains
 * without SSMAX (ordinary Internet mail), as it is.
 */
export async function arrive(deps: GatewayDeps, raw: Buffer, rcpts: readonly string[], notices?: RetiredUse[], held: { quarantined?: string } = {}): Promise<Copy[]> {
  const head = checkMessage(raw);
  const chain = await verifySeals(deps, raw);
  const capsules = capsulesOf(head.headers);
  if (chain.result === 'none') {
    if (capsules.length > 0) {
      const released = await releasedArrival(deps, raw, ownCapsule(deps, capsules));
      if (!released) throw new GatewayError('chainFailed', 'encrypted message without seals');
      return arrive(deps, released, rcpts, notices, held);
    }
    const sender = domainOf(head.from);
    try {
      await deps.directory.lookup(sender);
    } catch (err) {
      if (!(err instanceof DirectoryError && err.code === 'none')) throw new GatewayError('bundleUnavailable', `${sender}: ${err instanceof Error ? err.message : String(err)}`);
      // ordinary Internet mail: scanned like any other arrival, then delivered as it is, with what was inspected
      const plain = await inspectArrival(deps, raw, undefined, head.from, rcpts);
      if (plain.quarantined) {
        held.quarantined = plain.quarantined;
        return [];
      }
      return [{ rcpts: [...rcpts], message: withInspectionResults(deps.config.domain, plain.message, plain.verdicts), local: true }];
    }
    throw new GatewayError('chainFailed', `unsealed message from SSMAX domain ${sender}`);
  }
  await checkArrival(deps, raw, head.from, chain, rcpts);
  if (capsules.length === 0) {
    // sealed but not encrypted (the sender's policy allowed plaintext): scanned, each recipient's copy sealed with the verdict, delivered
    const clear = await inspectArrival(deps, raw, undefined, head.from, rcpts);
    if (clear.quarantined) {
      held.quarantined = clear.quarantined;
      return [];
    }
    const copies: Copy[] = [];
    for (const rcpt of rcpts) copies.push({ rcpts: [rcpt], message: await addSeal(deps, clear.message, chain, [...clear.verdicts, { name: 'e2e', result: 'none' }], undefined, [rcpt]), local: true });
    return copies;
  }
  const inspected = await inspectArrival(deps, raw, ownCapsule(deps, capsules), head.from, rcpts);
  if (inspected.quarantined) {
    held.quarantined = inspected.quarantined;
    return [];
  }
  return receive(deps, { message: inspected.message, rcpts, chain, verdicts: inspected.verdicts, sender: head.from }, capsules, notices);
}
