/**
 * The client half of the key service operations, for the gateway and the
 * inspector process: blind a capsule, have keyd re-encrypt it to an authorised
 * target, unblind; blinded decryption with a verified proof (transparent
 * delivery, inspection); tracking tokens; user facts. keyd's temporary
 * failures become 4xx, its final refusals 5xx (src/mail/replies.ts).
 */
import { createHash } from 'node:crypto';
import type { PeerEntry } from '../directory/peer-entry';
import {
  type Capsule,
  type Group,
  blindForDecryption,
  blindForReencryption,
  completeBlindedDecryption,
  systemRng,
  unblindReencryption,
  verifyReencryption,
} from '../crypto';
import { encryptionPointOf } from '../pki/keys';
import { type KeydClient, KeydClientError } from './client';
import { BATCH_DEFAULTS, type BatchSettings, KeydBatcher } from './client-batch';
import { GatewayError } from '../mail/replies';
import { isDirectoryAddress } from './registry';
import { shownValue } from './errors';

const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');
/** A value of keyd's answer in base64url; anything but a string is a refused answer (keyd's fault: 451 4.7.5). */
function unb64(s: unknown, what: string): Uint8Array {
  if (typeof s !== 'string') throw new GatewayError('keydUnavailable', `key service answer refused: ${what} is ${shownValue(s)}`);
  return new Uint8Array(Buffer.from(s, 'base64url'));
}

export type ReencryptTarget =
  | { kind: 'peer'; domain: string; certificate: string; chain: readonly string[]; crls: readonly string[] }
  | { kind: 'user'; address: string }
  /** A member of a list of this organisation (src/lists/): keyd checks membership; a member elsewhere names its organisation's certificate. */
  | { kind: 'list'; list: string; member: string; certificate?: string; chain?: readonly string[]; crls?: readonly string[] }
  /** This organisation's current key version, for a capsule under an older one (a held message kept past its version: src/inspect/held-keys.ts). */
  | { kind: 'own-newer' };

/** A list of this organisation as keyd resolves it for a post (src/keyd/lists.ts). */
export interface ListFacts {
  readonly address: string;
  readonly members: readonly string[];
  readonly policy: 'members' | 'moderated' | 'open';
  readonly moderators: readonly string[];
}

/** keyd's "retired, refresh" notice: `current` names the version new mail should use. */
export interface KeyNotice {
  readonly notice?: string;
  readonly current?: string;
}

function noticeOf(r: { notice?: unknown; current?: unknown }): KeyNotice {
  return {
    ...(typeof r.notice === 'string' ? { notice: r.notice } : {}),
    ...(typeof r.current === 'string' ? { current: r.current } : {}),
  };
}

/** keyd's answer to one reencrypt operation (alone, or one of a batch): the blinded result, its proof, whom it is for. */
interface ReencryptAnswer {
  u: string;
  v: string;
  c?: string;
  s1?: string;
  s2?: string;
  targetKeyId: string;
  targetPublicKey?: string;
  notice?: string;
  current?: string;
}

export interface UserFacts {
  readonly address: string;
  readonly status: 'active' | 'suspended';
  readonly kind: 'individual' | 'organisation';
  readonly inspectionConsent: boolean;
  readonly encryptionKeyId: string | null;
  readonly signingCertificate: string | null;
}

/**
 * The target key a re-encryption proof is checked against: from the certificate the gateway chose
 * (a peer, or a list member elsewhere); a local user's or list member's as keyd, the registry's authority, names it.
 * (`own-newer` is checked against the organisation's own certified key instead: `openReencryption`.)
 */
function targetKeyOf(target: Exclude<ReencryptTarget, { kind: 'own-newer' }>, answered: unknown): Uint8Array {
  if (target.kind === 'peer') return encryptionPointOf(target.certificate);
  if (target.kind === 'list' && target.certificate) return encryptionPointOf(target.certificate);
  if (typeof answered !== 'string')
    throw new GatewayError('keydUnavailable', `key service answer refused: the target's public key is ${shownValue(answered)}`);
  return new Uint8Array(Buffer.from(answered, 'hex'));
}

/** keyd's "no such user or list" (404 `not-found`); a missing endpoint (`no-such-endpoint`) is not one: a fault of ours. */
function isNotFound(err: unknown): boolean {
  return err instanceof KeydClientError && err.code === 'not-found';
}

/** Maps keyd's answers to gateway decisions. */
export function fromKeyd(err: unknown): unknown {
  if (!(err instanceof KeydClientError)) return err;
  // keyd's own file problem: the setting in words (its log and /health/ready name the file; a reply does not)
  if (err.code === 'file-unavailable')
    return Object.assign(
      new GatewayError('keydUnavailable', `keyd cannot use the file of its ${err.details?.setting ?? 'configuration'} (see its log)`),
      { cause: err },
    );
  // the reply names the code; the cause keeps keyd's own words for the readiness check (src/ops/server.ts unavailableText)
  if (err.transient) return Object.assign(new GatewayError('keydUnavailable', err.code), { cause: err });
  if (err.code === 'key-destroyed')
    return new GatewayError('keyDestroyed', err.details?.current ? `fetch "${err.details.current}"` : undefined);
  if (err.code === 'unknown-key') return new GatewayError('badCapsule', 'unknown key id');
  // a peer's certificate keyd refuses for good (revoked, not on hold, or expired: service.ts peerTarget): final
  if (err.code === 'target-refused' && err.details?.final && err.details.domain)
    return new GatewayError('peerRefused', `${err.details.domain}: the key service refuses its certificate, ${err.details.final}`);
  // any other target refused, forbidden, bad request: a configuration or peer problem: temporary,
  // so that nothing is lost while an administrator looks (the message names it).
  return new GatewayError('keydUnavailable', `${err.code}: ${err.message}`);
}

/**
 * How long an active user's facts are reused without asking keyd again (see `user`), for a caller
 * without a setting of its own (the inspector process); the gateway passes its [keyd] user_facts_ttl_ms.
 */
export const USER_FACTS_TTL_MS = 5000;

/**
 * How long "no such user or list" is reused without asking keyd again (see `kind`), for a caller without a
 * setting of its own; the gateway passes its [keyd] not_found_ttl_ms.
 */
export const NOT_FOUND_TTL_MS = 5000;

/** The most addresses whose "not found" is kept at once (a burst of distinct unknown recipients empties the map, never grows it). */
const NOT_FOUND_MAX = 10000;

/**
 * Addresses per POST /v1/directory/users (keyd takes up to 1,000). 500 short addresses make a body near 15 kB;
 * long ones can pass keyd's `[limits] max_body_bytes`, and a 413 halves the request (`primeUsers`).
 */
const PRIME_BATCH = 500;

/** What an address of this organisation is, as keyd answers the recipient check (GET /v1/directory/addresses). */
export type AddressKind =
  { readonly kind: 'user'; readonly status: UserFacts['status'] } | { readonly kind: 'list' } | { readonly kind: 'none' };

/** The public key (33 bytes) certified for `keyId` in the organisation's own verified bundle, or undefined if the bundle has none. */
export type CertifiedKeys = (keyId: string) => Promise<Uint8Array | undefined>;

/** A submitter as a token carries it: itself up to 128 bytes, else `sha256:` and its digest (still matches a candidate). */
export function fittedSubmitter(id: string): string {
  return Buffer.byteLength(id) <= 128 ? id : `sha256:${createHash('sha256').update(id).digest('hex')}`;
}

export class KeydOps {
  private readonly users = new Map<string, { facts: UserFacts; until: number }>();
  /** Addresses keyd said are neither a user nor a list, until when that answer is reused. */
  private readonly unknown = new Map<string, number>();
  private certified?: CertifiedKeys;

  /**
   * Anchors proof checks in the organisation's own verified bundle: `certifiedKey`
   * answers from it instead of from keyd's own report (GET /v1/public), so a key
   * service that answers with another key is caught (docs/security.md).
   */
  anchorProofs(certified: CertifiedKeys): void {
    this.certified = certified;
  }

  /**
   * Anchors proofs in `domain`'s bundle as `directory` verifies it (the gateway's and the inspector's
   * own organisation). A key version keyd has just made may not be in the cached bundle yet (rotation):
   * the bundle is fetched again once; a version keyd has but the bundle does not certify yet is a
   * temporary condition (4xx), one keyd does not know either is the capsule's fault (5xx).
   */
  anchorInBundle(directory: { lookup(d: string): Promise<PeerEntry>; refresh(d: string): Promise<PeerEntry> }, domain: string): void {
    const bundle = (fetch: (d: string) => Promise<PeerEntry>) =>
      fetch(domain).catch(() => {
        // the domain only: the reason is in the directory's log, and this reply goes to whoever sent the message
        throw new GatewayError('bundleUnavailable', `own bundle of ${domain}`);
      });
    this.anchorProofs(async (keyId) => {
      const cached = (await bundle((d) => directory.lookup(d))).keys.find((k) => k.keyId === keyId);
      if (cached) return cached.publicKey;
      const fresh = (await bundle((d) => directory.refresh(d))).keys.find((k) => k.keyId === keyId);
      if (fresh) return fresh.publicKey;
      if ((await this.orgKeys()).keys.some((k) => k.keyId === keyId))
        throw new GatewayError('bundleUnavailable', `own bundle of ${domain} does not certify key ${keyId} yet`);
      return undefined;
    });
  }

  /**
   * The organisation key a blinded decryption's DLEQ proof is checked against:
   * from the own bundle when anchored (gateway); otherwise keyd's report
   * (the separate inspector process, which has no bundle: docs/security.md).
   */
  async certifiedKey(keyId: string): Promise<Uint8Array> {
    if (this.certified) {
      const key = await this.certified(keyId);
      if (!key) throw new GatewayError('badCapsule', `key id "${keyId}" is not certified in the organisation's bundle`);
      return key;
    }
    const pub = await this.orgKeys();
    const key = pub.keys.find((k) => k.keyId === keyId);
    if (!key) throw new GatewayError('badCapsule', `unknown key id "${keyId}"`);
    return new Uint8Array(Buffer.from(key.publicKey, 'hex'));
  }

  /**
   * `userFactsTtlMs`: how long the facts of an active user are reused (0: ask
   * keyd every time). keyd stays the authority: it refuses re-encryption to,
   * and tokens for, a user suspended meanwhile, whatever the gateway cached.
   */
  constructor(
    private readonly group: Group,
    private readonly gateway: KeydClient,
    private readonly inspector?: KeydClient,
    private readonly userFactsTtlMs = USER_FACTS_TTL_MS,
    private readonly now: () => number = Date.now,
    batching: BatchSettings = BATCH_DEFAULTS,
    /** How long "no such user or list" is reused (0: ask keyd every time). */
    private readonly notFoundTtlMs = NOT_FOUND_TTL_MS,
  ) {
    this.gatewayOps = new KeydBatcher(gateway, batching);
    this.inspectorOps = inspector ? new KeydBatcher(inspector, batching) : undefined;
  }

  /**
   * The blinded operations go through these: issued close together (the recipients of one message,
   * concurrent messages), they travel to keyd in one batch (client-batch.ts).
   */
  readonly gatewayOps: KeydBatcher;
  readonly inspectorOps: KeydBatcher | undefined;

  /**
   * Re-encrypts `capsule` to `target`. `notice` (with `current`, the version
   * new mail should use) is set when keyd says the capsule's version is
   * retired: the operation was done; the sender should refresh.
   */
  async reencrypt(capsule: Capsule, target: ReencryptTarget, expectKeyId?: string): Promise<{ capsule: Capsule } & KeyNotice> {
    const { request, blinding } = blindForReencryption(this.group, capsule, systemRng);
    try {
      const r = await this.gatewayOps.call<ReencryptAnswer>('reencrypt', {
        keyId: capsule.keyId,
        e: b64(request.e),
        f: b64(request.f),
        target,
      });
      return await this.openReencryption(r, target, expectKeyId, request, blinding, () => this.certifiedKey(capsule.keyId));
    } catch (err) {
      throw fromKeyd(err);
    }
  }

  /**
   * Re-encrypts `capsule` to each of `targets` (a list's member copies, docs/lists.md): one
   * blinding, the operations sent at once through POST /v1/batch (`gatewayOps.many`), each
   * authorised and audited by keyd on its own. Per target: the new capsule with keyd's notice (as
   * `reencrypt`), or `refused` with keyd's reason when keyd refused that target (not a member any
   * more, suspended, its organisation's certificate refused for good). Any other failure — a
   * certificate refused for now, keyd unreachable
   * or busy, the capsule's key unknown or destroyed, an answer for another key than
   * `expectKeyIds[i]` — fails the whole (as `reencrypt` would), so the post is answered as a whole.
   */
  async reencryptMany(
    capsule: Capsule,
    targets: readonly ReencryptTarget[],
    expectKeyIds: readonly string[],
  ): Promise<(({ capsule: Capsule } & KeyNotice) | { refused: string })[]> {
    const { request, blinding } = blindForReencryption(this.group, capsule, systemRng);
    const blinded = { keyId: capsule.keyId, e: b64(request.e), f: b64(request.f) };
    const settled = await this.gatewayOps.many<ReencryptAnswer>(
      'reencrypt',
      targets.map((target) => ({ ...blinded, target })),
    );
    try {
      let orgKey: Uint8Array | undefined;
      const out: (({ capsule: Capsule } & KeyNotice) | { refused: string })[] = [];
      for (const [i, s] of settled.entries()) {
        if (s.status === 'rejected') {
          const err: unknown = s.reason;
          // keyd's word on the member itself (not a member any more, suspended) or a refusal of its organisation's
          // certificate for good: no copy for it. Any other refusal of the organisation's certificate (its
          // revocation state unknown, not yet valid, on hold, not for that domain: keyd names the domain) fails
          // the whole, as `reencrypt` would (fromKeyd): the post is retried, no member lost
          if (err instanceof KeydClientError && err.code === 'target-refused' && (err.details?.domain === undefined || err.details.final)) {
            out.push({ refused: err.message.slice(0, 200) });
            continue;
          }
          throw err;
        }
        // each answer checked as in `reencrypt` (an answer for another key than expectKeyIds[i] fails the whole), against the organisation key fetched once
        out.push(
          await this.openReencryption(
            s.value,
            targets[i]!,
            expectKeyIds[i] ?? '',
            request,
            blinding,
            async () => (orgKey ??= await this.certifiedKey(capsule.keyId)),
          ),
        );
      }
      return out;
    } catch (err) {
      throw fromKeyd(err);
    }
  }

  /**
   * keyd's answer `r` for `target`, checked and unblinded: it must be for the key asked (`expectKeyId`, when given: a capsule
   * named for another key would be undecryptable, or worse) and made with the organisation key the bundle certifies
   * (`orgKey`), to the target's key (docs/format.md, "The re-encryption proof"): a peer's key from the certificate the
   * gateway chose; a user's as keyd, the registry's authority, names it.
   */
  private async openReencryption(
    r: ReencryptAnswer,
    target: ReencryptTarget,
    expectKeyId: string | undefined,
    request: ReturnType<typeof blindForReencryption>['request'],
    blinding: ReturnType<typeof blindForReencryption>['blinding'],
    orgKey: () => Promise<Uint8Array>,
  ): Promise<{ capsule: Capsule } & KeyNotice> {
    if (expectKeyId !== undefined && r.targetKeyId !== expectKeyId)
      throw new GatewayError(
        'keydUnavailable',
        `key service answer refused: re-encrypted to ${typeof r.targetKeyId === 'string' ? `"${shownValue(r.targetKeyId)}"` : shownValue(r.targetKeyId)}, asked for "${expectKeyId}"`,
      );
    const answer = {
      u: unb64(r.u, '"u"'),
      v: unb64(r.v, '"v"'),
      proof: { c: unb64(r.c, '"c"'), s1: unb64(r.s1, '"s1"'), s2: unb64(r.s2, '"s2"') },
    };
    // a newer version of this organisation's key: the one the own bundle certifies for the key id keyd names, never keyd's own report
    if (target.kind === 'own-newer' && typeof r.targetKeyId !== 'string')
      throw new GatewayError('keydUnavailable', `key service answer refused: the key id re-encrypted to is ${shownValue(r.targetKeyId)}`);
    const targetKey =
      target.kind === 'own-newer' ? await this.certifiedKey(r.targetKeyId as string) : targetKeyOf(target, r.targetPublicKey);
    if (!verifyReencryption(this.group, await orgKey(), request, targetKey, answer)) {
      throw new GatewayError(
        'keydUnavailable',
        'key service answer refused: re-encryption proof does not verify: wrong key or wrong answer',
      );
    }
    return { capsule: unblindReencryption(this.group, blinding, answer, { keyId: r.targetKeyId }), ...noticeOf(r) };
  }

  /** The message key, by blinded decryption with a proof checked against `orgPublicKey` (with keyd's notice, as for reencrypt). */
  async messageKey(capsule: Capsule, orgPublicKey: Uint8Array): Promise<{ messageKey: Uint8Array } & KeyNotice> {
    if (!this.inspectorOps) throw new GatewayError('keydUnavailable', 'no inspector credentials configured for transparent delivery');
    const { request, blinding } = blindForDecryption(this.group, capsule, systemRng);
    let r: { z: string; c: string; s: string; notice?: string; current?: string };
    try {
      r = await this.inspectorOps.call('decrypt', { keyId: capsule.keyId, e: b64(request.e) });
    } catch (err) {
      throw fromKeyd(err);
    }
    const opened = completeBlindedDecryption(
      this.group,
      blinding,
      { z: unb64(r.z, '"z"'), proof: { c: unb64(r.c, '"c"'), s: unb64(r.s, '"s"') } },
      orgPublicKey,
    );
    if (!opened.ok) throw new GatewayError('keydUnavailable', `key service answer refused: ${opened.reason}`);
    return { messageKey: opened.messageKey, ...noticeOf(r) };
  }

  /** A tracking token for the message of `sender` (the From), recording who authenticated the submission when known. */
  async mintToken(sender: string, messageId: string, submitter?: { id: string; via: string }): Promise<Uint8Array> {
    if (!isDirectoryAddress(sender)) throw new GatewayError('senderNotRegistered', sender);
    try {
      const r = await this.gateway.call<{ token: string }>('POST', '/v1/tracking/mint', {
        sender,
        messageId,
        ...(submitter ? { submitter: fittedSubmitter(submitter.id), submittedVia: submitter.via } : {}),
      });
      return unb64(r.token, 'the tracking token');
    } catch (err) {
      if (err instanceof KeydClientError && err.code === 'target-refused') throw new GatewayError('senderNotRegistered', sender);
      throw fromKeyd(err);
    }
  }

  /** A tracking token naming this organisation's mail system (its own failure reports to senders at peers), not a user. */
  async mintMailSystemToken(messageId: string): Promise<Uint8Array> {
    try {
      const r = await this.gateway.call<{ token: string }>('POST', '/v1/tracking/mint', { mailSystem: true, messageId });
      return unb64(r.token, 'the tracking token');
    } catch (err) {
      throw fromKeyd(err);
    }
  }

  /**
   * A local user's facts, or undefined if not registered. An active user's
   * facts are reused for a few seconds (the delivery after DATA, and the next
   * messages, ask once); `fresh` asks keyd now — for decisions a stale answer
   * would make final, such as checking a signature against the user's current
   * certificate. Suspended answers are never reused; "not registered" is
   * reused as `kind` reuses it, unless `fresh`.
   */
  async user(address: string, fresh = false): Promise<UserFacts | undefined> {
    if (!isDirectoryAddress(address)) return undefined; // keyd would answer 400: no such address can be registered
    const key = address.toLowerCase();
    const hit = this.users.get(key);
    if (!fresh && hit && hit.until > this.now()) return hit.facts;
    if (!fresh && this.knownUnknown(key)) return undefined;
    let facts: UserFacts | undefined;
    try {
      facts = await this.gateway.call<UserFacts>('GET', `/v1/directory/users/${encodeURIComponent(address)}`);
    } catch (err) {
      if (!isNotFound(err)) throw fromKeyd(err);
      facts = undefined;
    }
    if (facts?.status === 'active' && this.userFactsTtlMs > 0) this.remember(facts);
    else this.users.delete(key);
    return facts;
  }

  /**
   * What `address` is at this organisation — a user (and its status), a list, or neither — for the recipient
   * check at RCPT: one small question to keyd (GET /v1/directory/addresses), never a list's members. An active
   * user whose facts are kept answers without keyd; "neither" is reused for `notFoundTtlMs` (a bounded map), so
   * a sender repeating unknown recipients does not repeat the question. A keyd without the endpoint (older than
   * this gateway) is a temporary fault: keyd is upgraded before its gateways (docs/operations.md).
   */
  async kind(address: string): Promise<AddressKind> {
    if (!isDirectoryAddress(address)) return { kind: 'none' }; // keyd would answer 400 (a 451 for ever): no user, no list
    const key = address.toLowerCase();
    const hit = this.users.get(key);
    if (hit && hit.until > this.now()) return { kind: 'user', status: hit.facts.status };
    if (this.knownUnknown(key)) return { kind: 'none' };
    let r: { kind?: unknown; status?: unknown };
    try {
      r = await this.gateway.call<{ kind?: unknown; status?: unknown }>('GET', `/v1/directory/addresses/${encodeURIComponent(address)}`);
    } catch (err) {
      if (err instanceof KeydClientError && err.status === 404)
        // this endpoint answers 200 for every address: a 404 is a keyd without it (an older one answers `not-found`)
        throw Object.assign(new GatewayError('keydUnavailable', `no-such-endpoint: ${err.message} (upgrade keyd first)`), { cause: err });
      throw fromKeyd(err);
    }
    if (r.kind === 'user' && (r.status === 'active' || r.status === 'suspended')) return { kind: 'user', status: r.status };
    if (r.kind === 'list') return { kind: 'list' };
    if (r.kind === 'none') {
      this.rememberUnknown(key);
      return { kind: 'none' };
    }
    throw new GatewayError('keydUnavailable', 'key service answer refused: an address of no known kind');
  }

  /** Whether keyd said, within `notFoundTtlMs`, that `key` is neither a user nor a list. */
  private knownUnknown(key: string): boolean {
    const until = this.unknown.get(key);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.unknown.delete(key);
    return false;
  }

  private rememberUnknown(key: string): void {
    if (this.notFoundTtlMs <= 0) return;
    if (this.unknown.size >= NOT_FOUND_MAX) this.unknown.clear();
    this.unknown.set(key, this.now() + this.notFoundTtlMs);
  }

  /** Keeps an active user's facts for the TTL (bounded: a burst of distinct recipients cannot grow the map without limit). */
  private remember(facts: UserFacts): void {
    if (facts.status !== 'active') return;
    if (this.users.size >= 10000) this.users.clear();
    this.users.set(facts.address.toLowerCase(), { facts, until: this.now() + this.userFactsTtlMs });
  }

  /**
   * The list `address` with its members now, or undefined when it is no list (docs/lists.md: asked once per post,
   * after DATA, never cached; the recipient check at RCPT asks `kind` instead). The members' facts are asked
   * apart (`primeUsers`), once the posting policy admitted the post.
   */
  async list(address: string): Promise<ListFacts | undefined> {
    if (!isDirectoryAddress(address)) return undefined;
    try {
      const list = await this.gateway.call<ListFacts & { users?: Record<string, UserFacts> }>(
        'GET',
        `/v1/lists/${encodeURIComponent(address)}/resolve`,
      );
      // an older keyd sends the local members' facts with the list: kept like any user's facts (keyd re-checks at each re-encryption)
      if (this.userFactsTtlMs > 0) for (const facts of Object.values(list.users ?? {})) this.remember(facts);
      return list;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw fromKeyd(err);
    }
  }

  /**
   * Asks keyd for the facts of `addresses` (a list post's local members) in requests of PRIME_BATCH
   * (POST /v1/directory/users) and keeps those of active users for `userFactsTtlMs`, so that the post's
   * `user` calls are answered without one request per member. Only a saving: an address it leaves out is
   * asked by `user` as always. A request too large for keyd's `[limits] max_body_bytes` (413, long
   * addresses) is halved until it fits; a keyd without the endpoint (older), or one refusing the request
   * for any other lasting reason, is not asked again here. Only a transient failure (keyd unreachable, 5xx)
   * is thrown: `user` would meet it too.
   */
  async primeUsers(addresses: readonly string[]): Promise<void> {
    if (this.userFactsTtlMs <= 0) return;
    const todo = [...new Set(addresses.map((a) => a.toLowerCase()))].filter((a) => (this.users.get(a)?.until ?? 0) <= this.now());
    for (let i = 0; i < todo.length; i += PRIME_BATCH) {
      if (!(await this.primeBatch(todo.slice(i, i + PRIME_BATCH)))) return;
    }
  }

  /** One POST /v1/directory/users for `batch` (halved on 413): false when priming should stop. */
  private async primeBatch(batch: readonly string[]): Promise<boolean> {
    let r: { users?: Record<string, UserFacts> };
    try {
      r = await this.gateway.call<{ users?: Record<string, UserFacts> }>('POST', '/v1/directory/users', { addresses: batch });
    } catch (err) {
      if (!(err instanceof KeydClientError)) throw fromKeyd(err);
      if (err.status === 413 && batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        return (await this.primeBatch(batch.slice(0, half))) && this.primeBatch(batch.slice(half));
      }
      // an older keyd (404), one address too long for keyd's limit, any other lasting refusal: `user` asks each member
      if (err.status === 404 || !err.transient) return false;
      throw fromKeyd(err);
    }
    for (const facts of Object.values(r.users ?? {})) this.remember(facts);
    return true;
  }

  /** The org's current key: key id and compressed public key. */
  async orgKeys(): Promise<{ current: string; keys: { keyId: string; publicKey: string; state: string }[] }> {
    try {
      return await this.gateway.call('GET', '/v1/public');
    } catch (err) {
      throw fromKeyd(err);
    }
  }
}
