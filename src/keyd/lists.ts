/**
 * Mailing lists served by this organisation (docs/lists.md; the
 * encrypted-list patent): a list address of this domain, its members (local
 * users or addresses in other organisations), its posting policy and its
 * moderators. keyd holds the membership and resolves it; the gateway asks
 * for the members of a post at the moment it accepts the post and keyd
 * re-checks every member at each re-encryption (target `list`, alone or in a
 * batch), so a
 * gateway can never add a reader. Every change is an audited operation
 * (admin role), written in the same LMDB transaction as its audit record,
 * and only if the list is still as the change read it (as-read.ts; else 409
 * superseded).
 */
import { type Read, ifUnchanged, read } from './as-read';
import type { AuditInput, AuditLog } from './audit';
import type { Actor } from './service';
import { KeydError } from './errors';
import { type LookupCounter, lookup } from './lookups';
import { BOUNCE_SUFFIX } from '../lists/bounces';
import { type ListRecord, checkAddress } from './registry';
import type { KeydStore } from './store';

export type ListPolicy = 'members' | 'moderated' | 'open';
export const LIST_POLICIES: readonly ListPolicy[] = ['members', 'moderated', 'open'];

/** The most members one list may have (a post makes one copy per member). */
export const MAX_LIST_MEMBERS = 10000;

/** A list as keyd keeps it: the registry's record with its policy and moderators (records of earlier versions: policy "members", no moderators). */
export interface ListEntry {
  readonly address: string;
  readonly members: readonly string[];
  readonly policy: ListPolicy;
  readonly moderators: readonly string[];
  readonly created: number;
  readonly updated: number;
}

/** The longest local part of a mail address (RFC 5321 §4.5.3.1.1). */
const MAX_LOCAL_PART = 64;

export function listEntry(r: ListRecord & Partial<Pick<ListEntry, 'policy' | 'moderators' | 'created'>>): ListEntry {
  return {
    address: r.address,
    members: r.members,
    policy: r.policy ?? 'members',
    moderators: r.moderators ?? [],
    created: r.created ?? r.updated,
    updated: r.updated,
  };
}

function addresses(value: unknown, field: string, max = MAX_LIST_MEMBERS): string[] {
  if (!Array.isArray(value) || value.length > max)
    throw new KeydError('bad-request', `Field "${field}" must be an array of at most ${max} addresses`);
  return [...new Set(value.map((m) => checkAddress(m, field)))];
}

function policyOf(value: unknown): ListPolicy {
  if (!LIST_POLICIES.includes(value as ListPolicy))
    throw new KeydError('bad-request', `Field "policy" must be one of ${LIST_POLICIES.join(', ')}`);
  return value as ListPolicy;
}

export interface ListServiceDeps {
  readonly store: KeydStore;
  readonly audit: AuditLog;
  readonly clock: () => Date;
  readonly domain: () => string;
  /** Counts the read-only lookups (resolve), which are not audited one by one (lookups.ts). */
  readonly countLookup?: LookupCounter;
}

export class ListService {
  /** The lists `membership` read in this turn of the event loop, with their members as a set (cleared at the next turn). */
  private thisTurn: Map<string, { readonly entry: ListEntry; readonly members: ReadonlySet<string> } | undefined> | undefined;

  constructor(private readonly d: ListServiceDeps) {}

  get(address: string): ListEntry | undefined {
    const r = this.d.store.lists.get(address.toLowerCase());
    return r ? listEntry(r) : undefined;
  }

  /**
   * A list with its members as a set, read from the store once per turn of the event loop: the operations of a
   * batch to one list's members (a post's fan-out, up to [limits] max_batch_ops at once) are checked in one turn,
   * and each used to decode the whole record and scan its members (a 10,000-member list: about 0.4 ms an
   * operation, so a post's fan-out cost keyd time quadratic in the list's size). A change made meanwhile is seen
   * from the next turn on, as a change racing with the operation.
   */
  membership(address: string): { readonly entry: ListEntry; readonly members: ReadonlySet<string> } | undefined {
    const key = address.toLowerCase();
    if (!this.thisTurn) {
      this.thisTurn = new Map();
      setImmediate(() => (this.thisTurn = undefined)).unref();
    }
    if (this.thisTurn.has(key)) return this.thisTurn.get(key);
    const entry = this.get(key);
    const found = entry ? { entry, members: new Set(entry.members) } : undefined;
    this.thisTurn.set(key, found);
    return found;
  }

  /** A list address of this domain, checked. */
  private ownAddress(value: unknown): string {
    const address = checkAddress(value, 'address');
    if (!address.endsWith(`@${this.d.domain()}`))
      throw new KeydError('bad-request', `List "${address}" is not an address of ${this.d.domain()}`);
    return address;
  }

  private require(address: string): ListEntry {
    return this.readList(address).entry;
  }

  /** A list as the read a change decides on (as-read.ts): written only if it is still so in the write transaction. */
  private readList(address: string): { entry: ListEntry; seen: Read<unknown> } {
    const key = address.toLowerCase();
    const seen = read(`list "${key}"`, () => this.d.store.lists.get(key));
    if (!seen.value) throw new KeydError('not-found', `No mailing list "${address}" at ${this.d.domain()}`);
    return { entry: listEntry(seen.value), seen };
  }

  /** Runs one list operation with its audit record (success or refusal), the change committed with the record. */
  private async audited<T>(
    actor: Actor,
    op: string,
    target: unknown,
    roles: readonly Actor['role'][],
    body: () => { result: T; reason?: string; change?: () => void },
  ): Promise<T> {
    const now = this.d.clock();
    const base: Partial<AuditInput> = {
      actor: actor.name,
      role: actor.role,
      op,
      ...(typeof target === 'string' ? { target: target.slice(0, 254) } : {}),
    };
    let out: ReturnType<typeof body>;
    try {
      if (!roles.includes(actor.role)) throw new KeydError('forbidden', `Role "${actor.role}" may not call ${op}`);
      out = body();
    } catch (err) {
      const refused = err instanceof KeydError;
      await this.d.audit.append(
        {
          ...base,
          result: refused ? 'refused' : 'error',
          reason: (refused ? `${err.code}: ${err.message}` : 'internal error').slice(0, 300),
        } as AuditInput,
        now,
      );
      throw err;
    }
    const record = { ...base, result: 'ok', ...(out.reason ? { reason: out.reason.slice(0, 300) } : {}) } as AuditInput;
    if (out.change) await this.d.audit.commit(record, now, out.change);
    else await this.d.audit.append(record, now);
    return out.result;
  }

  /** The change writing `entry`, if each of `reads` is still as the decision saw it (else 409 superseded). */
  private put(entry: ListEntry, reads: readonly Read<unknown>[]): () => void {
    return ifUnchanged(reads, () => {
      this.d.store.lists.put(entry.address, entry);
      this.forget();
    });
  }

  /** A list was written: `membership` reads the store again, also within this turn. */
  forget(): void {
    this.thisTurn = undefined;
  }

  /** Whether `address` is a list, without decoding its record (a RCPT to a list of 10,000 members asks this). */
  exists(address: string): boolean {
    return this.d.store.lists.doesExist(address.toLowerCase());
  }

  /** `ssmax list create`: a new list (no members yet unless given). */
  create(actor: Actor, body: Record<string, unknown>): Promise<ListEntry> {
    return this.audited(actor, 'list.create', body.address, ['admin'], () => {
      const address = this.ownAddress(body.address);
      // its bounce address (<local>-bounces@, the envelope sender of every copy: src/lists/bounces.ts) must be a
      // mail address too: a local part that leaves no room for the suffix could never send a copy to a peer
      const local = address.slice(0, address.lastIndexOf('@'));
      if (local.length + BOUNCE_SUFFIX.length > MAX_LOCAL_PART)
        throw new KeydError(
          'bad-request',
          `Cannot use "${address}" as a list address: its bounce address ${local}${BOUNCE_SUFFIX}@… would have a local part over ${MAX_LOCAL_PART} characters (at most ${MAX_LOCAL_PART - BOUNCE_SUFFIX.length} for a list)`,
        );
      // one namespace for lists and users, checked again in the transaction that inserts
      const taken = read(`address "${address}"`, () =>
        this.d.store.lists.get(address) ? 'list' : this.d.store.users.get(address) ? 'user' : undefined,
      );
      if (taken.value === 'list') throw new KeydError('bad-request', `List "${address}" exists already`);
      if (taken.value === 'user') throw new KeydError('bad-request', `"${address}" is a registered user, not available as a list address`);
      const members = body.members === undefined ? [] : addresses(body.members, 'members');
      if (members.includes(address)) throw new KeydError('bad-request', `List "${address}" cannot be a member of itself`);
      const t = this.d.clock().getTime();
      const entry: ListEntry = {
        address,
        members,
        policy: body.policy === undefined ? 'members' : policyOf(body.policy),
        moderators: body.moderators === undefined ? [] : addresses(body.moderators, 'moderators', 100),
        created: t,
        updated: t,
      };
      return { result: entry, reason: `policy ${entry.policy}, ${members.length} members`, change: this.put(entry, [taken]) };
    });
  }

  /** `ssmax list add|remove`: membership changes take effect for every post accepted afterwards. */
  members(actor: Actor, body: Record<string, unknown>): Promise<ListEntry> {
    return this.audited(actor, 'list.members', body.address, ['admin'], () => {
      const { entry: l, seen } = this.readList(this.ownAddress(body.address));
      const add = body.add === undefined ? [] : addresses(body.add, 'add');
      const remove = new Set(body.remove === undefined ? [] : addresses(body.remove, 'remove'));
      if (add.includes(l.address)) throw new KeydError('bad-request', `List "${l.address}" cannot be a member of itself`);
      const members = [...new Set([...l.members.filter((m) => !remove.has(m)), ...add])];
      if (members.length > MAX_LIST_MEMBERS)
        throw new KeydError('bad-request', `List "${l.address}" would have more than ${MAX_LIST_MEMBERS} members`);
      const entry: ListEntry = { ...l, members, updated: this.d.clock().getTime() };
      // the audit names who changed, not the list's whole membership
      return {
        result: entry,
        reason: `added ${add.join(',').slice(0, 120) || 'none'}; removed ${[...remove].join(',').slice(0, 120) || 'none'}; ${members.length} members`,
        change: this.put(entry, [seen]),
      };
    });
  }

  /** `ssmax list policy`: posting policy and moderators. */
  policy(actor: Actor, body: Record<string, unknown>): Promise<ListEntry> {
    return this.audited(actor, 'list.policy', body.address, ['admin'], () => {
      const { entry: l, seen } = this.readList(this.ownAddress(body.address));
      const entry: ListEntry = {
        ...l,
        policy: body.policy === undefined ? l.policy : policyOf(body.policy),
        moderators: body.moderators === undefined ? l.moderators : addresses(body.moderators, 'moderators', 100),
        updated: this.d.clock().getTime(),
      };
      if (entry.policy === 'moderated' && entry.moderators.length === 0)
        throw new KeydError('bad-request', `A moderated list needs at least one moderator (--moderator)`);
      return { result: entry, reason: `policy ${entry.policy}, ${entry.moderators.length} moderators`, change: this.put(entry, [seen]) };
    });
  }

  /** `ssmax list show` (admin). */
  show(actor: Actor, address: string): Promise<ListEntry> {
    return this.audited(actor, 'list.show', address, ['admin'], () => ({ result: this.require(checkAddress(address, 'address')) }));
  }

  /**
   * The gateway's question for a post (gateway role): the members of the
   * list now, its policy and moderators; `not-found` when the address is no
   * list. A read-only lookup, asked once per post after DATA: counted, not
   * audited (lookups.ts); each member's re-encryption is audited on its own.
   * The members' facts are not in it: the gateway asks for them (POST
   * /v1/directory/users) only once the posting policy admitted the post.
   */
  resolve(actor: Actor, address: string): Promise<ListEntry> {
    const refuse = (err: KeydError): Promise<never> =>
      this.audited(actor, 'list.resolve', address, ['gateway'], () => {
        throw err;
      });
    return lookup(actor, 'list.resolve', ['gateway'], this.d.countLookup ?? (() => undefined), refuse, () =>
      this.require(checkAddress(address, 'address')),
    );
  }
}
