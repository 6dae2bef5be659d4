/**
 * List expansion at the list's organisation (docs/lists.md; the
 * encrypted-list patent): a post arrives encrypted to this organisation's
 * key, its chain already verified (once, by the caller: reception or
 * submission). keyd says who the members are at this moment (the gateway
 * never decides membership); for each member one copy is made, re-encrypted
 * through keyd to that member alone — a local member's user key, a remote
 * member's organisation key (that organisation re-encrypts to its user as for
 * any arrival) — carrying only that member's capsule and a seal that binds
 * only that member and says, with `ls=`, that this organisation
 * re-distributed the post for the list. Plain-client members get the copy
 * the way local plain clients always do (local-copies.ts, transparent mode).
 * The content ciphertext is never touched: only capsules change.
 *
 * Before any copy: loops (a post that already went through this list, too
 * many seals, a local list nested in itself) are refused with 5.4.6, and
 * automatic replies (RFC 3834 Auto-Submitted) are dropped; then the posting
 * policy: members only (the verified sender must be a member or moderator),
 * moderated (held encrypted until a moderator releases it), or open.
 */
import type { Capsule } from '../crypto';
import { collect, replaceCapsules } from '../envelope';
import type { Copy, ForLocal, GatewayDeps, HeldPost, ListPost, ListStep } from '../gateway/deps';
import type { EarlierAttempts, LocalDelivery, Refusal } from '../gateway/delivery';
import { peerBundle } from '../gateway/peer-bundle';
import type { PeerEntry } from '../directory/peer-entry';
import type { ListFacts, ReencryptTarget } from '../keyd/client-ops';
import { noteRetired } from '../gateway/key-exchange';
import { checkCopyBytes, localCopies, plaintextOnce } from '../gateway/local-copies';
import { GatewayError } from '../mail/replies';
import { addSeal } from '../gateway/sealing';
import { capsuleFor, domainOf } from '../mail/message-checks';
import { LIST_RELEASE_HEADER, type QuarantineStore, parseReleaseMarker } from '../inspect/quarantine';
import { firstValue, splitHeaderBlock } from '../mail/header-block';
import { listFields } from './chain';

/** Re-injection marker of a post a moderator released (`ssmax list release`); honoured once, only for an entry the moderation store marked released. */
export { LIST_RELEASE_HEADER } from '../inspect/quarantine';

/** How many member copies are made at once. */
export const LIST_CONCURRENCY = 16;

/** Runs `fn` over `items`, at most `n` at a time; the first failure fails the whole (the post is then answered as a whole). */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** A post that already carries this many seals is not re-distributed again (a loop through lists of several organisations ends here at the latest). */
export const LIST_MAX_SEALS = 8;

const LIST_FIELDS = /^(list-id|list-post|list-unsubscribe|list-help|list-subscribe|list-owner|list-archive|ssmax-list-release)[ \t]*:/i;

/** The root header block's fields, and the rest of the message from the empty line on (so that fields + rest rebuild it). */
function headerBlock(message: Buffer): { fields: string[]; body: Buffer } {
  const { fields, headEnd } = splitHeaderBlock(message);
  return { fields, body: message.subarray(headEnd) };
}

/** The value of the first field `name` of the root header block, unfolded, or undefined. */
export function fieldOf(message: Buffer, name: string): string | undefined {
  return firstValue(splitHeaderBlock(message).fields, name);
}

/** The message with any earlier list's fields (and a release marker) replaced by this list's. */
export function withListFields(message: Buffer, address: string): Buffer {
  const { fields, body } = headerBlock(message);
  const kept = fields.filter((f) => !LIST_FIELDS.test(f));
  return Buffer.concat([Buffer.from(listFields(address) + kept.map((f) => `${f}\r\n`).join(''), 'latin1'), body]);
}

/**
 * An automatic reply (RFC 3834 `Auto-Submitted: auto-replied`, RFC 5436 `auto-notified`): a vacation
 * notice or a filter's notification, answering some message, which a list never re-distributes. A message
 * an automatic process sent on its own (`auto-generated`: a monitoring alert, a cron report) is a post like
 * any other: dropping it would lose it behind a 250.
 */
export function autoSubmitted(message: Buffer): boolean {
  const v = fieldOf(message, 'auto-submitted');
  const keyword = v?.split(/[ \t;(]/)[0]!.toLowerCase();
  return keyword === 'auto-replied' || keyword === 'auto-notified';
}

export interface ListOutcome {
  readonly copies: Copy[];
  /** The post to hold for moderation, when the policy holds it: written by `writeHolds` once the message's answer is decided. */
  readonly hold?: HeldPost;
  /** Why nothing was made (an automatic reply), when dropped. */
  readonly dropped?: string;
}

/** The gateway's list step (one per gateway): the moderation store and a log line writer. */
export class Lists implements ListStep {
  constructor(
    readonly moderation: QuarantineStore,
    private readonly log: (line: string) => void,
  ) {}

  async close(): Promise<void> {
    await this.moderation.close();
  }

  /** Expands a post to `post.list`: copies for every member, or held, or dropped; throws the 5xx for loops and refused senders. */
  async post(
    deps: GatewayDeps,
    post: ListPost,
    visited: ReadonlySet<string> = new Set(),
    done: Set<string> = new Set(),
  ): Promise<ListOutcome> {
    const { arrival, list } = post;
    const address = list.address;
    if (visited.has(address)) throw new GatewayError('listLoop', `list ${address} contains itself through ${[...visited].join(' > ')}`);
    const through = arrival.origin.chain.instances.find((s) => s.listAddress === address);
    if (through)
      throw new GatewayError('listLoop', `the post went through ${address} already (seal i=${through.instance} by ${through.domain})`);
    if (arrival.origin.chain.instances.length >= LIST_MAX_SEALS)
      throw new GatewayError(
        'listLoop',
        `the post carries ${arrival.origin.chain.instances.length} seals; a list re-distributes posts with fewer than ${LIST_MAX_SEALS}`,
      );
    if (autoSubmitted(arrival.message)) {
      this.log(`ssmax lists: automatic message (Auto-Submitted) to ${address} dropped (RFC 3834)`);
      return { copies: [], dropped: 'auto-submitted' };
    }
    // the outer From: aligned with seal i=1; bound to it across an earlier list's hop only for unencrypted mail (docs/security.md, "Tampering by a later hop")
    const sender = (arrival.sender ?? '').toLowerCase();
    let message = arrival.message;
    if (visited.size === 0) {
      const released = await this.released(message);
      if (list.policy === 'members' && !list.members.includes(sender) && !list.moderators.includes(sender)) {
        throw new GatewayError('listNotMember', `${sender || 'the sender'} is not a member of ${address}`);
      }
      if (list.policy === 'moderated' && !list.moderators.includes(sender) && !released)
        return { copies: [], hold: await this.heldPost(deps, arrival, address) };
    }
    message = withListFields(message, address);
    const copies: Copy[] = [];
    const inner = new Set([...visited, address]);
    const local: { member: string; keyId: string | null }[] = [];
    const remote: string[] = [];
    const nested: ListFacts[] = [];
    const todo = list.members.filter((m) => !done.has(m)); // one copy per person, however many nested lists name them
    for (const m of todo) done.add(m);
    // a copy per member, each the whole post: within [main] max_copy_bytes together, those of nested lists counted each by its own
    checkCopyBytes(deps, todo.length, message.length, `the ${todo.length} members of ${address}`);
    // the local members' facts, asked now that the posting policy admitted the post (never for a refused or held one)
    await deps.keyd.primeUsers(todo.filter((m) => deps.config.localDomains.includes(domainOf(m))));
    await pool(todo, LIST_CONCURRENCY, async (member) => {
      if (!deps.config.localDomains.includes(domainOf(member))) return void remote.push(member);
      const user = await deps.keyd.user(member);
      if (user?.status === 'active') return void local.push({ member, keyId: user.encryptionKeyId });
      const sub = user ? undefined : await deps.keyd.list(member);
      if (sub) return void nested.push(sub);
      this.log(`ssmax lists: ${address}: member ${member} is no active local user or list; no copy`);
    });
    for (const sub of nested) {
      // a list of this organisation inside this one: its members get the post (its own policy is not asked: the post comes from the list)
      copies.push(...(await this.post(deps, { ...post, arrival: { ...arrival, message }, list: sub }, inner, done)).copies);
    }
    const peers = new Map<string, PeerEntry | 'none' | 'invalid'>();
    for (const domain of new Set(remote.map(domainOf))) peers.set(domain, await this.memberPeer(deps, address, domain));
    // every re-encryption of the post (local SSMAX members' user keys, remote members' organisation keys) sent at once through keyd's batches
    // (POST /v1/batch, in requests of up to 64 operations, src/keyd/client-batch.ts): one blinding for the post, each member authorised and audited by keyd on its own
    const jobs: { member: string; target: ReencryptTarget; keyId: string }[] = [];
    for (const { member, keyId } of local) if (keyId) jobs.push({ member, target: { kind: 'list', list: address, member }, keyId });
    for (const member of remote) {
      const peer = peers.get(domainOf(member))!;
      if (peer === 'invalid') continue; // logged by memberPeer: keyd would refuse this organisation's certificate as well
      if (peer === 'none') {
        // never in clear: a member whose domain has no SSMAX gets nothing (the list is encrypted)
        this.log(`ssmax lists: ${address}: member ${member} is in ${domainOf(member)}, which publishes no SSMAX bundle; no copy`);
        continue;
      }
      const key = peer.currentKey;
      jobs.push({
        member,
        target: { kind: 'list', list: address, member, certificate: key.certificate, chain: peer.orgCaChain, crls: peer.crls },
        keyId: key.keyId,
      });
    }
    const moved = new Map<string, Capsule>();
    if (jobs.length > 0) {
      const capsule = capsuleFor(deps.config.domain, post.capsules);
      const answers = await deps.keyd.reencryptMany(
        capsule,
        jobs.map((j) => j.target),
        jobs.map((j) => j.keyId),
      );
      answers.forEach((a, i) => {
        // keyd's final word on this member (removed a moment ago, suspended, its organisation's certificate refused): no copy for it, the others go on
        if ('refused' in a) return void this.log(`ssmax lists: ${address}: keyd refused member ${jobs[i]!.member}; no copy (${a.refused})`);
        moved.set(jobs[i]!.member, a.capsule);
        // a capsule for a retired version of this organisation's key: the sender is told to refresh, as for any recipient
        noteRetired(post.notices, capsule.keyId, a);
      });
    }
    await pool(
      remote.filter((m) => moved.has(m)),
      LIST_CONCURRENCY,
      async (member) => {
        const forMember = await collect(replaceCapsules(message, [moved.get(member)!]));
        const sealed = await addSeal(
          deps,
          forMember,
          arrival.origin,
          [...arrival.verdicts, { name: 'e2e', result: 'pass' }],
          [member],
          address,
        );
        copies.push({ rcpts: [member], message: sealed, local: false, list: address });
      },
    );
    // local members through the ordinary reception step (the capsule made above, or transparent delivery for plain clients), in parallel slices
    const locals = local.filter((l) => !l.keyId || moved.has(l.member)).map((l) => l.member);
    // plain-client members' copies: the post decrypted once, shared by the slices
    const plaintext = plaintextOnce(deps, message, capsuleFor(deps.config.domain, post.capsules), post.notices);
    const slices: string[][] = [];
    const size = Math.max(1, Math.ceil(locals.length / LIST_CONCURRENCY));
    for (let i = 0; i < locals.length; i += size) slices.push(locals.slice(i, i + size));
    await pool(slices, LIST_CONCURRENCY, async (rcpts) => {
      copies.push(
        ...(await localCopies(
          deps,
          { ...arrival, message, rcpts, list: address, listFields: listFields(address), moved, plaintext },
          post.capsules,
          post.notices,
        )),
      );
    });
    return { copies };
  }

  releaseCapsule(message: Buffer): string | undefined {
    const value = fieldOf(message, LIST_RELEASE_HEADER);
    const marker = value === undefined ? undefined : parseReleaseMarker(value);
    return marker === undefined ? undefined : this.moderation.releaseCapsule(marker.id, marker.token);
  }

  /**
   * Whether the post carries a release field: false without one; true when
   * this store honours it (the entry's current release, once); refused
   * otherwise (forged, or a release taken over after its lease: its late
   * copy must not be expanded as well).
   */
  private async released(message: Buffer): Promise<boolean> {
    const value = fieldOf(message, LIST_RELEASE_HEADER);
    if (value === undefined) return false;
    const marker = parseReleaseMarker(value);
    if (marker && (await this.moderation.consumeRelease(marker.id, marker.token))) return true;
    throw new GatewayError('releaseNotHonoured', marker ? `${marker.id} is not in that release` : undefined);
  }

  /**
   * The bundle of a remote member's organisation, for the list's copies, as
   * every path reads the directory's answer (src/gateway/peer-bundle.ts). The
   * encryption policy of submissions (`[policy]`) is not asked: it decides
   * whether a submission may go in clear, and a list's copy never does. No
   * bundle: `none` (no copy, a log line). A bundle that was fetched and is
   * refused — for good (its organisation's CA revoked by the root, or
   * expired) or not (it does not verify) — is a final word on that member,
   * as keyd's refusal of its organisation's certificate is: `invalid` (no
   * copy, logged); the other members go on, and a post is not deferred for
   * every member's sake. A bundle that cannot be had now (unreachable, a
   * fault) is for now: the post is answered 451 and the sender's retry makes
   * every copy. The reply names the list, never the member's domain (the
   * poster must not learn who the members are); the log names it.
   */
  private async memberPeer(deps: GatewayDeps, address: string, domain: string): Promise<PeerEntry | 'none' | 'invalid'> {
    const found = await peerBundle(deps, domain);
    if (found.status === 'found') return deps.keyWatch ? deps.keyWatch.fresh(domain, found.peer) : found.peer;
    if (found.status === 'none') return 'none';
    if (found.status === 'refused') {
      const why = found.final ? `refused for good: ${found.final}` : 'refused';
      this.log(
        `ssmax lists: ${address}: the SSMAX bundle of ${domain}, a member's domain, is ${why} (${found.detail}); no copy for its members`,
      );
      return 'invalid';
    }
    this.log(`ssmax lists: ${address}: the SSMAX bundle of ${domain}, a member's domain, is unavailable (${found.detail}); post deferred`);
    throw new GatewayError('bundleUnavailable', `an organisation of a member of ${address} (the gateway's log names it)`);
  }

  /**
   * The post to hold for moderation, encrypted as it is (never decrypted
   * here); nothing is written yet (`hold`, called by `writeHolds` once the
   * message's answer is decided). A post from another organisation is kept
   * as it arrived (its seals bind the list address); a local post is sealed
   * first (seal i=1 binding the list address), so that its release re-enters
   * like an arrival.
   */
  private async heldPost(deps: GatewayDeps, arrival: ForLocal, address: string): Promise<HeldPost> {
    let message = arrival.message;
    if (arrival.origin.from === 'own') message = await addSeal(deps, message, arrival.origin, arrival.verdicts, [address]);
    return { list: address, from: arrival.sender ?? '', message };
  }

  /** The final refusal (552 5.3.4) when `held` together can never be held (src/inspect/quarantine.ts checkFits); nothing written. */
  checkHolds(held: readonly HeldPost[]): void {
    this.moderation.checkFits(held.map((h) => entryOf(h)));
  }

  /** Writes a held post to the moderation store: its moderation id. Over a cap: the store's 4xx or 5xx (src/inspect/quarantine.ts). */
  async hold(held: HeldPost): Promise<string> {
    const id = await this.moderation.hold(entryOf(held));
    this.log(`ssmax lists: post to ${held.list} from ${held.from || '?'} held for moderation as ${id}`);
    return id;
  }
}

/** The moderation store's entry of a held post. */
function entryOf(held: HeldPost) {
  return {
    direction: 'inbound' as const,
    from: held.from,
    rcpts: [held.list],
    rule: `list-moderation:${held.list}`,
    message: held.message,
  };
}

/**
 * Writes the posts a message's list step held for moderation, at the point
 * where its copies are handed over (src/gateway/plugin.ts): only once every
 * other recipient of the message was worked out, so a message refused as a
 * whole (5xx) or deferred (4xx) leaves nothing held. Each is written once per
 * arrival and list, recorded like a copy handed over (delivery.ts `once`,
 * under the attempt's `id` — for a local sender the submission as it came,
 * taken before any sealing — with the list address as recipient): the
 * sender's retry after a later step failed finds it written and holds it
 * again neither in the store nor against its caps. A hold the store refuses
 * for now (451, a cap that frees again) is the message's answer: nothing is
 * recorded, the retry holds it. A hold the store refuses for good (552: over
 * a byte cap; the caller checked every post against the caps together first,
 * so only a cap lowered meanwhile) is the message's answer only while nothing
 * of it has gone: once a post of it is held (here, or by an earlier attempt)
 * or `gone` (another copy went), a held post is as good as a delivered copy,
 * and the refusal is returned (logged, the list as recipient) for the caller
 * to report, like a copy the mailbox store refuses — never a 5xx for the
 * whole message.
 */
export async function writeHolds(
  lists: ListStep | undefined,
  delivery: Pick<LocalDelivery, 'once'>,
  id: string,
  holds: readonly HeldPost[],
  signal?: AbortSignal,
  already?: EarlierAttempts,
  gone = false,
): Promise<Refusal[]> {
  const refused: Refusal[] = [];
  let held = gone;
  for (const post of holds) {
    if (!lists) throw new GatewayError('internal', `a post to ${post.list} to hold without the list step`);
    try {
      await delivery.once(
        id,
        [post.list],
        signal,
        async () => {
          await lists.hold(post);
          return { refused: [] };
        },
        (err) => (err instanceof GatewayError ? err : new GatewayError('internal', `cannot hold the post to ${post.list}: ${String(err)}`)),
        already,
      );
      held = true; // written now, or by an earlier attempt (once skipped it)
    } catch (err) {
      if (!(err instanceof GatewayError) || err.temporary || !(held || (already?.rcpts.length ?? 0) > 0)) throw err;
      refused.push({ rcpt: post.list, code: err.reply.code, reply: `${err.reply.code} ${err.reply.status} ${err.reply.text}` });
    }
  }
  return refused;
}
