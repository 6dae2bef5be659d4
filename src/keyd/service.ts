/**
 * The key service's operations, independent of transport: the HTTPS server
 * (server.ts) authenticates the caller and hands over an `Actor`; everything
 * else — role checks, target authorisation, the crypto, state changes and
 * audit — happens here. Each operation writes its audit record, success or
 * refusal, before it answers; no answer leaves without its record. The
 * read-only lookups of gateways and inspectors are the exception: counted,
 * not audited one by one (lookups.ts), their refusals by role audited.
 *
 * keyd never sees message bodies (only blinded points) and never returns
 * private key material.
 */
import type { Group } from '../crypto';
import type { Rng } from '../crypto/random';
import { CryptoError } from '../crypto/errors';
import { REVOCATION_REASONS, type RevocationReason, isRevocationReason } from '../pki/crl';
import { compressedPointFromSpki } from '../pki/keys';
import type { Role } from '../pki/oids';
import { type ValidationCache, finalRefusal, validateCertificate } from '../pki/validate';
import type { AuditInput, AuditLog } from './audit';
import { ifUnchanged, read } from './as-read';
import { type KeydCrypto, inlineCrypto } from './crypto-threads';
import { KeydError, shownValue } from './errors';
import type { KeyChange, OrgKeyRecord, OrgKeyring } from './org-keys';
import { type NewUser, type PublicUser, Registry, checkAddress, directoryFactsOf } from './registry';
import type { KeydStore } from './store';
import type { Submitter, TrackingKeys } from './tracking';
import { ListService, listEntry } from './lists';
import { type LookupCounter, lookup } from './lookups';
import type { KnownCrls } from '../pki/known-crls';
import type { CrlRenewer } from './renewal';
import { messageIdHash } from './tracking';
import { secretsEqual } from '../crypto/compare';

export interface Actor {
  readonly role: Role | 'keyd';
  /** Certificate subject and serial, for the audit log. */
  readonly name: string;
  /** The console certificate an administrator acts through (on-behalf.ts); absent for a direct caller. */
  readonly via?: string;
}

export type Target =
  | {
      readonly kind: 'peer';
      readonly domain: string;
      readonly certificate: string;
      readonly chain?: readonly string[];
      readonly crls?: readonly string[];
    }
  | { readonly kind: 'user'; readonly address: string }
  | {
      readonly kind: 'list';
      readonly list: string;
      readonly member: string;
      readonly certificate?: string;
      readonly chain?: readonly string[];
      readonly crls?: readonly string[];
    }
  | { readonly kind: 'own-newer' };

export interface ServiceDeps {
  readonly store: KeydStore;
  readonly group: Group;
  readonly rng: Rng;
  readonly clock: () => Date;
  readonly keyring: OrgKeyring;
  readonly registry: Registry;
  readonly tracking: TrackingKeys;
  readonly audit: AuditLog;
  /** Trusted SSMAX roots (PEM), for peer targets. */
  readonly roots: readonly string[];
  /**
   * keyd's [pki] crls and the newest CRL seen per CA (src/pki/known-crls.ts), added to the CRLs a peer
   * target carries: the root's revocation of a peer's org CA counts whatever CRL the caller sends.
   */
  readonly revocation?: KnownCrls;
  readonly validationCache?: ValidationCache;
  /** Where the blinded operations are computed (crypto-threads.ts); inline when absent. */
  readonly crypto?: KeydCrypto;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

function point(value: unknown, field: string): Uint8Array {
  if (typeof value !== 'string' || !B64URL.test(value) || value.length > 100)
    throw new KeydError('bad-request', `Field "${field}" must be a base64url point`);
  return new Uint8Array(Buffer.from(value, 'base64url'));
}

function str(value: unknown, field: string, max = 256): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max || /[\r\n\0]/.test(value))
    throw new KeydError('bad-request', `Field "${field}" must be a string of 1-${max} characters without line breaks`);
  return value;
}

/** The longest submitter a tracking token carries (gateways send a digest of a longer one). */
export const SUBMITTER_MAX_BYTES = 128;

/** The optional submitter of a mint request: who authenticated the submission, and how. */
function submitterOf(body: Record<string, unknown>): Submitter | undefined {
  if (body.submitter === undefined) return undefined;
  const id = str(body.submitter, 'submitter', SUBMITTER_MAX_BYTES);
  // bytes, not characters: the token must stay within the seal's tt= limit (512 characters) and resolve's (400)
  if (Buffer.byteLength(id) > SUBMITTER_MAX_BYTES || [...id].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f))
    throw new KeydError(
      'bad-request',
      `Field "submitter" must be at most ${SUBMITTER_MAX_BYTES} bytes of UTF-8 without control characters`,
    );
  if (body.submittedVia !== 'smtp-auth' && body.submittedVia !== 'trusted-relay')
    throw new KeydError('bad-request', 'Field "submittedVia" must be "smtp-auth" or "trusted-relay"');
  return { id, via: body.submittedVia };
}

/** PEM text: printable ASCII and line breaks, bounded. */
function pem(value: unknown, field: string, max: number): string {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > max ||
    !/^[\x20-\x7e\r\n]+$/.test(value) ||
    !value.includes('-----BEGIN ')
  ) {
    throw new KeydError('bad-request', `Field "${field}" must be PEM text of at most ${max} characters`);
  }
  return value;
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

/** Crypto errors on caller input are bad requests, not internal faults. */
/** What an operation's body gives `audited`: its answer, what to add to the audit record, and the state change to commit with it. */
interface Outcome<T> {
  result: T;
  audit?: Partial<AuditInput>;
  change?: () => void;
}

/** An operation run but not yet audited: its answer (and state change) or its refusal, with the audit record to write. */
export type Evaluated<T> =
  | { readonly ok: true; readonly result: T; readonly record: AuditInput; readonly change?: () => void }
  | { readonly ok: false; readonly error: unknown; readonly record: AuditInput };

function asKeydError(err: unknown): unknown {
  if (err instanceof CryptoError) return new KeydError('bad-request', err.message);
  return err;
}

/**
 * The most addresses one POST /v1/directory/users asks for. The body must also fit `[limits] max_body_bytes`,
 * which long addresses can pass before this count: such a request is refused with 413 (the gateway halves it).
 */
const DIRECTORY_BATCH = 1000;

/** How many decoded target keys to keep (users, peers, own versions). */
const TARGET_KEY_CACHE = 4096;

/** The tracking-token code of this organisation's mail system (its failure reports to senders at peers): never a user's code. */
const MAIL_SYSTEM_CODE = '#mail-system';

export class KeyService {
  /** Compressed public key (hex) → the checked, uncompressed point: saves a square root per re-encryption. */
  private readonly targetKeys = new Map<string, Uint8Array>();

  private readonly crypto: KeydCrypto;

  /** Mailing lists (src/keyd/lists.ts): membership, policy, audited changes. */
  readonly lists: ListService;

  /** The org CA's CRL writer (renewal.ts), set by the daemon: revocation signs with it. */
  crls?: CrlRenewer;

  /** Counts the read-only lookups, which are not audited one by one (lookups.ts); set by keyd's metrics (src/ops/keyd-ops.ts). */
  countLookup: LookupCounter = () => undefined;

  constructor(private readonly d: ServiceDeps) {
    this.crypto = d.crypto ?? inlineCrypto(d.group, d.rng);
    this.lists = new ListService({
      store: d.store,
      audit: d.audit,
      clock: d.clock,
      domain: () => this.domain,
      countLookup: (op, result) => this.countLookup(op, result),
    });
  }

  /** A read-only lookup (lookups.ts): counted, not audited; a role that may not ask is refused and audited. */
  private lookup<T>(actor: Actor, op: string, target: string, roles: readonly Actor['role'][], body: () => T): Promise<T> {
    const refuse = (err: KeydError): Promise<never> =>
      this.audited(actor, op, { target: target.slice(0, 254) }, () => {
        throw err;
      });
    return lookup(actor, op, roles, this.countLookup, refuse, body);
  }

  /** A target's public key, decoded and checked (on the curve, not the identity) once, then kept. */
  private targetKey(compressedHex: string, what: string): Uint8Array {
    let key = this.targetKeys.get(compressedHex);
    if (!key) {
      try {
        key = this.d.group.encodeUncompressed(this.d.group.decode(Buffer.from(compressedHex, 'hex'), what));
      } catch (err) {
        throw asKeydError(err);
      }
      if (this.targetKeys.size >= TARGET_KEY_CACHE) this.targetKeys.delete(this.targetKeys.keys().next().value!);
      this.targetKeys.set(compressedHex, key);
    }
    return key;
  }

  get domain(): string {
    return this.d.keyring.domain;
  }

  private require(actor: Actor, roles: readonly Actor['role'][], op: string): void {
    if (!roles.includes(actor.role)) throw new KeydError('forbidden', `Role "${actor.role}" may not call ${op}`);
  }

  /** Runs an operation: on success and on refusal alike, its audit record is committed first. */
  private async audited<T>(actor: Actor, op: string, base: Partial<AuditInput>, body: () => Outcome<T> | Promise<Outcome<T>>): Promise<T> {
    const now = this.d.clock();
    const done = await this.evaluate(actor, op, base, body);
    if (!done.ok) {
      await this.d.audit.append(done.record, now);
      throw done.error;
    }
    if (done.change) await this.d.audit.commit(done.record, now, done.change);
    else await this.d.audit.append(done.record, now);
    return done.result;
  }

  /** Runs an operation's body and builds its audit record (not yet written): the answer or the refusal, each with its record. */
  private async evaluate<T>(
    actor: Actor,
    op: string,
    base: Partial<AuditInput>,
    body: () => Outcome<T> | Promise<Outcome<T>>,
  ): Promise<Evaluated<T>> {
    let outcome: Outcome<T>;
    try {
      outcome = await body();
    } catch (raw) {
      const err = asKeydError(raw);
      const refused = err instanceof KeydError;
      const reason = refused ? `${err.code}: ${err.message}` : 'internal error';
      return {
        ok: false,
        error: err,
        record: {
          actor: actor.name,
          role: actor.role,
          op,
          ...base,
          result: refused ? 'refused' : 'error',
          // what the operation's own record says of the request (e.g. a digest), then why it was refused
          reason: (base.reason ? `${base.reason}: ${reason}` : reason).slice(0, 300),
        } as AuditInput,
      };
    }
    return {
      ok: true,
      result: outcome.result,
      record: { actor: actor.name, role: actor.role, op, ...base, ...outcome.audit, result: 'ok' } as AuditInput,
      ...(outcome.change ? { change: outcome.change } : {}),
    };
  }

  /**
   * One blinded operation of a batch (batch.ts), computed but not yet audited:
   * its answer or refusal, with the audit record the batch writes together with
   * the others' in one transaction before any answer leaves.
   */
  blindedOperation(actor: Actor, op: 'reencrypt' | 'decrypt', body: Record<string, unknown>): Promise<Evaluated<Record<string, unknown>>> {
    const keyId = typeof body.keyId === 'string' ? body.keyId.slice(0, 80) : undefined;
    return this.evaluate(
      actor,
      op,
      keyId ? { keyId } : {},
      op === 'reencrypt' ? () => this.reencryptBody(actor, body) : () => this.decryptBody(actor, body),
    );
  }

  /** A peer organisation's encryption key, from its certificate validated now for `domain` (docs/protocol.md "Target authorisation"). */
  private peerTarget(
    domain: string,
    t: { readonly certificate?: unknown; readonly chain?: unknown; readonly crls?: unknown },
    now: Date,
  ): { keyId: string; publicKey: Uint8Array; label: string } {
    const carried = (Array.isArray(t.crls) ? t.crls : []).slice(0, 8).map((c, i) => pem(c, `target.crls[${i}]`, 1 << 20));
    // keyd's own CRLs beside the caller's; a local CRL that cannot be read is a 503 naming it (fileUnavailable)
    const known = this.d.revocation?.snapshot();
    const v = validateCertificate({
      leaf: pem(t.certificate, 'target.certificate', 16384),
      intermediates: (Array.isArray(t.chain) ? t.chain : []).slice(0, 8).map((c, i) => pem(c, `target.chain[${i}]`, 16384)),
      roots: this.d.roots,
      crls: known ? known.with(carried) : carried,
      use: 'org-encryption',
      time: now,
      ...(this.d.validationCache ? { cache: this.d.validationCache } : {}),
    });
    if (v.status !== 'valid') {
      // `final` (revoked, not on hold, or expired): a decision no retry changes, which the gateway may tell the sender (src/gateway/peer-bundle.ts)
      const final = finalRefusal(v);
      throw new KeydError('target-refused', `Peer certificate for "${domain}" refused: ${v.message}`, {
        domain,
        validation: v.status,
        ...(final ? { final } : {}),
      });
    }
    this.d.revocation?.learn(carried, v.path.slice(1));
    if (!v.leaf.dnsNames.map((n) => n.toLowerCase()).includes(domain))
      throw new KeydError('target-refused', `Peer certificate is not for "${domain}" (it names ${v.leaf.dnsNames.join(', ')})`, { domain });
    const version = v.leaf.keyVersion ?? 0;
    return {
      keyId: `${domain}:v${version}`,
      publicKey: this.targetKey(Buffer.from(compressedPointFromSpki(v.leaf.spki)).toString('hex'), 'peer public key'),
      label: `peer:${domain}:v${version}`,
    };
  }

  /** docs/protocol.md "Target authorisation": resolves a target to a public key, or refuses. */
  private resolveTarget(target: unknown, sourceVersion: OrgKeyRecord, now: Date): { keyId: string; publicKey: Uint8Array; label: string } {
    if (!target || typeof target !== 'object') throw new KeydError('bad-request', 'Field "target" must be an object');
    const t = target as Target;
    switch (t.kind) {
      case 'peer': {
        const domain = str(t.domain, 'target.domain', 253).toLowerCase();
        if (domain === this.domain)
          throw new KeydError('target-refused', `Target "${domain}" is this organisation: use "own-newer" or a user target`);
        return this.peerTarget(domain, t, now);
      }
      case 'user': {
        const u = this.d.registry.get(checkAddress(t.address, 'target.address'));
        if (!u) throw new KeydError('target-refused', `Target "${t.address}" is not a registered user of ${this.domain}`);
        if (u.status !== 'active') throw new KeydError('target-refused', `Target "${u.address}" is ${u.status}`);
        if (!u.encryptionPublicKey) throw new KeydError('target-refused', `Target "${u.address}" has no encryption key`);
        return {
          keyId: u.encryptionKeyId!,
          publicKey: this.targetKey(u.encryptionPublicKey, 'user public key'),
          label: `user:${u.address}`,
        };
      }
      case 'list': {
        const known = this.lists.membership(checkAddress(t.list, 'target.list'));
        const member = checkAddress(t.member, 'target.member');
        if (!known) throw new KeydError('target-refused', `No mailing list "${t.list}" at ${this.domain}`);
        const list = known.entry;
        if (!known.members.has(member)) throw new KeydError('target-refused', `"${member}" is not a member of "${list.address}"`);
        const memberDomain = member.slice(member.lastIndexOf('@') + 1);
        if (memberDomain !== this.domain) {
          // a member in another organisation: that organisation's key, certified for the member's domain (it re-encrypts to the member)
          const peer = this.peerTarget(memberDomain, t, now);
          return { ...peer, label: `list:${list.address}:${member}:${peer.label}` };
        }
        const u = this.d.registry.get(member);
        if (!u || u.status !== 'active' || !u.encryptionPublicKey)
          throw new KeydError('target-refused', `List member "${member}" has no active encryption key`);
        return {
          keyId: u.encryptionKeyId!,
          publicKey: this.targetKey(u.encryptionPublicKey, 'user public key'),
          label: `list:${list.address}:${member}`,
        };
      }
      case 'own-newer': {
        const cur = this.d.keyring.current(now);
        if (!cur || cur.version <= sourceVersion.version)
          throw new KeydError('target-refused', `No version of ${this.domain} newer than v${sourceVersion.version}`);
        return { keyId: cur.keyId, publicKey: this.targetKey(cur.publicKey, 'org public key'), label: `own:${cur.keyId}` };
      }
      default:
        throw new KeydError('bad-request', `Unknown target kind "${shownValue((t as { kind?: unknown }).kind, 40)}"`);
    }
  }

  private notice(retired: boolean, now: Date): Record<string, string> {
    if (!retired) return {};
    const cur = this.d.keyring.current(now);
    return { notice: 'retired', ...(cur ? { current: cur.keyId } : {}) };
  }

  /** Blinded re-encryption, key-service half (gateway role; the inspector role for target own-newer only). */
  async reencrypt(actor: Actor, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.auditedKeyOp(actor, 'reencrypt', body, () => this.reencryptBody(actor, body));
  }

  /** A key operation (reencrypt, decrypt), audited under the key id the request names (cut to 80 characters: the record names what was asked, even when it is refused). */
  private auditedKeyOp(
    actor: Actor,
    op: 'reencrypt' | 'decrypt',
    body: Record<string, unknown>,
    run: () => Promise<Outcome<Record<string, unknown>>>,
  ): Promise<Record<string, unknown>> {
    const keyId = typeof body.keyId === 'string' ? body.keyId.slice(0, 80) : undefined;
    return this.audited(actor, op, keyId ? { keyId } : {}, run);
  }

  private async reencryptBody(actor: Actor, body: Record<string, unknown>): Promise<Outcome<Record<string, unknown>>> {
    // own-newer (this organisation's ciphertext to its own current version) for the inspector too: it moves the held
    // messages of its quarantine across key versions (src/inspect/held-keys.ts); any other target, the gateway only
    const t = body.target;
    const ownNewer = typeof t === 'object' && t !== null && (t as { kind?: unknown }).kind === 'own-newer';
    this.require(actor, ownNewer ? ['gateway', 'inspector'] : ['gateway'], 'reencrypt');
    const now = this.d.clock();
    const e = point(body.e, 'e');
    const f = point(body.f, 'f');
    const { key, retired } = this.d.keyring.usable(str(body.keyId, 'keyId', 80), now);
    const target = this.resolveTarget(body.target, key.record, now);
    const out = await this.crypto.reencrypt(key.privateKey, key.publicKeyUncompressed, { e, f }, target.publicKey);
    return {
      // the proof (c, s1, s2) lets the gateway check the answer against the key its bundle certifies, for the target it asked
      result: {
        u: b64(out.u),
        v: b64(out.v),
        c: b64(out.proof.c),
        s1: b64(out.proof.s1),
        s2: b64(out.proof.s2),
        targetKeyId: target.keyId,
        targetPublicKey: Buffer.from(target.publicKey).toString('hex'),
        ...this.notice(retired, now),
      },
      audit: { target: target.label, digest: this.d.audit.digest(e, f) },
    };
  }

  /** Blinded decryption with a DLEQ proof (inspector role). */
  async decrypt(actor: Actor, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.auditedKeyOp(actor, 'decrypt', body, () => this.decryptBody(actor, body));
  }

  private async decryptBody(actor: Actor, body: Record<string, unknown>): Promise<Outcome<Record<string, unknown>>> {
    this.require(actor, ['inspector'], 'decrypt');
    const now = this.d.clock();
    const e = point(body.e, 'e');
    const { key, retired } = this.d.keyring.usable(str(body.keyId, 'keyId', 80), now);
    const out = await this.crypto.decrypt(key.privateKey, key.publicKeyUncompressed, { e });
    return {
      result: { z: b64(out.z), c: b64(out.proof.c), s: b64(out.proof.s), ...this.notice(retired, now) },
      audit: { digest: this.d.audit.digest(e) },
    };
  }

  /** Public material: key versions with their certificates (any authenticated role). */
  publicMaterial(): Record<string, unknown> {
    const now = this.d.clock();
    return {
      domain: this.domain,
      current: this.d.keyring.current(now)?.keyId ?? null,
      keys: this.d.keyring.all().map((r) => ({
        keyId: r.keyId,
        version: r.version,
        state: r.state,
        notBefore: new Date(r.notBefore).toISOString(),
        notAfter: new Date(r.notAfter).toISOString(),
        publicKey: r.publicKey,
        ...(r.certificate ? { certificate: r.certificate } : {}),
      })),
    };
  }

  /**
   * What a gateway or inspector may know of a local user (no identity
   * reference): status, kind, consent, whether it has an encryption key
   * (SSMAX client) and its signing certificate, to verify user signatures at
   * submission. A read-only lookup: counted, not audited (lookups.ts).
   */
  async lookupUser(actor: Actor, address: string): Promise<Record<string, unknown>> {
    return this.lookup(actor, 'directory.user', address, ['gateway', 'inspector'], () => {
      const u = this.d.registry.get(checkAddress(address));
      if (!u) throw new KeydError('not-found', `No registered user "${address.slice(0, 254)}"`);
      return directoryFactsOf(u);
    });
  }

  /**
   * The directory facts (as `lookupUser`) of those of `body.addresses` (at most DIRECTORY_BATCH) that are
   * registered users, by address; the others are left out. The gateway asks it for a list post's local members
   * once the posting policy admitted the post (src/lists/expand.ts). Counted, not audited.
   */
  async lookupUsers(actor: Actor, body: Record<string, unknown>): Promise<{ users: Record<string, Record<string, unknown>> }> {
    const count = Array.isArray(body.addresses) ? body.addresses.length : 0;
    return this.lookup(actor, 'directory.users', `${count} addresses`, ['gateway', 'inspector'], () => {
      const list = body.addresses;
      if (!Array.isArray(list) || list.length > DIRECTORY_BATCH)
        throw new KeydError('bad-request', `Field "addresses" must be an array of at most ${DIRECTORY_BATCH} addresses`);
      const users: Record<string, Record<string, unknown>> = {};
      for (const a of list) {
        const u = this.d.registry.get(checkAddress(a));
        if (u) users[u.address] = directoryFactsOf(u);
      }
      return { users };
    });
  }

  /**
   * What kind of address of this organisation `address` is — a registered user (with its status), a list, or
   * neither (`none`, still 200: a 404 from this endpoint means only that keyd lacks it) — for the gateway's
   * recipient check at RCPT, which must cost keyd little whoever sends (docs/keyd-api.md). Counted, not audited.
   */
  async lookupAddress(actor: Actor, address: string): Promise<Record<string, unknown>> {
    return this.lookup(actor, 'directory.address', address, ['gateway', 'inspector'], () => {
      const a = checkAddress(address);
      const u = this.d.registry.get(a);
      if (u) return { address: a, kind: 'user', status: u.status };
      return { address: a, kind: this.lists.exists(a) ? 'list' : 'none' };
    });
  }

  async addUser(actor: Actor, body: Record<string, unknown>): Promise<PublicUser> {
    return this.audited(
      actor,
      'registry.add',
      { target: typeof body.address === 'string' ? body.address.slice(0, 254) : undefined },
      () => {
        this.require(actor, ['admin'], 'registry.add');
        const { record, reads } = this.d.registry.build(body as unknown as NewUser, this.d.clock());
        return { result: Registry.public(record), change: ifUnchanged(reads, () => this.d.registry.insert(record)) };
      },
    );
  }

  async getUser(actor: Actor, address: string): Promise<PublicUser> {
    return this.audited(actor, 'registry.get', { target: address.slice(0, 254) }, () => {
      this.require(actor, ['admin'], 'registry.get');
      return { result: Registry.public(this.d.registry.require(address)) };
    });
  }

  async setUserStatus(actor: Actor, address: string, status: unknown): Promise<PublicUser> {
    return this.audited(actor, 'registry.status', { target: address.slice(0, 254) }, () => {
      this.require(actor, ['admin'], 'registry.status');
      if (status !== 'active' && status !== 'suspended')
        throw new KeydError('bad-request', 'Field "status" must be "active" or "suspended"');
      const seen = this.d.registry.readUser(address);
      const current = seen.value;
      if (status === 'active' && current.revoked !== undefined)
        throw new KeydError(
          'bad-request',
          `Cannot reinstate "${current.address}": it was revoked at ${new Date(current.revoked).toISOString()} (its certificates are in the CRL); revocation is final`,
        );
      const u = { ...current, status, updated: this.d.clock().getTime() } as const;
      // written only if the record is still the one decided on: a revocation committed meanwhile is never undone
      return {
        result: Registry.public(u),
        audit: { reason: `status=${status}` },
        change: ifUnchanged([seen], () => this.d.store.users.put(u.address, u)),
      };
    });
  }

  /**
   * Revokes a registered user (admin role): status suspended and marked
   * revoked, and the serials of its certificates added to the org CA's CRL,
   * re-issued now with the CA keyd holds (renewal.ts). One audit record,
   * `registry.revoke`, committed with the status before the CRL file is
   * replaced. Without the CA: refused (not-configured), naming the setting.
   */
  async revokeUser(actor: Actor, address: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const now = this.d.clock();
    const base = { actor: actor.name, role: actor.role, op: 'registry.revoke', target: address.slice(0, 254) };
    let plan: { crls: CrlRenewer; user: ReturnType<Registry['require']>; serials: string[]; reason: RevocationReason };
    try {
      this.require(actor, ['admin'], 'registry.revoke');
      const reason = body.reason === undefined ? 'unspecified' : body.reason;
      if (typeof reason !== 'string' || !isRevocationReason(reason) || reason === 'removeFromCRL')
        throw new KeydError(
          'bad-request',
          `Field "reason" must be one of ${Object.keys(REVOCATION_REASONS)
            .filter((r) => r !== 'removeFromCRL')
            .join(', ')}`,
        );
      if (!this.crls)
        throw new KeydError(
          'not-configured',
          'keyd does not hold the org CA ([pki] org_ca_cert and org_ca_key in ssmax-keyd.ini), so it cannot sign a CRL',
        );
      const user = this.d.registry.require(address);
      if (user.revoked !== undefined)
        throw new KeydError('bad-request', `"${user.address}" was already revoked at ${new Date(user.revoked).toISOString()}`);
      plan = { crls: this.crls, user, serials: Registry.certificateSerials(user), reason };
    } catch (raw) {
      const err = asKeydError(raw);
      await this.d.audit.append(
        {
          ...base,
          result: err instanceof KeydError ? 'refused' : 'error',
          reason: (err instanceof KeydError ? `${err.code}: ${err.message}` : 'internal error').slice(0, 300),
        },
        now,
      );
      throw err;
    }
    const revokedFrom = (user: ReturnType<Registry['require']>) =>
      ({ ...user, status: 'suspended', revoked: now.getTime(), updated: now.getTime() }) as const;
    let u = revokedFrom(plan.user);
    let done;
    try {
      done = await plan.crls.revoke(
        plan.serials,
        plan.reason,
        now,
        (summary) => ({ ...base, result: 'ok', reason: summary }),
        () => {
          // read again inside the transaction: revocations wait their turn, and the user may have changed (or been revoked) meanwhile
          const current = this.d.registry.require(address);
          if (current.revoked !== undefined)
            throw new KeydError('bad-request', `"${current.address}" was already revoked at ${new Date(current.revoked).toISOString()}`);
          u = revokedFrom(current);
          return this.d.store.users.put(u.address, u);
        },
      );
    } catch (raw) {
      // nothing was done (the CRL file unreadable, the audit not written); a record of the failure when the log still takes one
      if (!(raw instanceof KeydError && raw.code === 'audit-failed')) {
        await this.d.audit.append(
          {
            ...base,
            result: raw instanceof KeydError ? 'refused' : 'error',
            reason: (raw instanceof KeydError ? `${raw.code}: ${raw.message}` : `error: ${(raw as Error).message}`).slice(0, 300),
          },
          now,
        );
      }
      throw raw;
    }
    return { user: Registry.public(u), serials: plan.serials, added: done.added, crl: done.file, crlNumber: done.crlNumber.toString() };
  }

  async setList(actor: Actor, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.audited(
      actor,
      'registry.list',
      { target: typeof body.address === 'string' ? body.address.slice(0, 254) : undefined },
      () => {
        this.require(actor, ['admin'], 'registry.list');
        const address = checkAddress(body.address, 'address');
        if (!address.endsWith(`@${this.domain}`))
          throw new KeydError('bad-request', `List "${address}" is not an address of ${this.domain}`);
        if (!Array.isArray(body.members) || body.members.length > 10000)
          throw new KeydError('bad-request', 'Field "members" must be an array of at most 10000 addresses');
        const members = [...new Set(body.members.map((m) => checkAddress(m, 'member')))];
        // a list address is never a user's (checked again in the write transaction)
        const user = read(`address "${address}"`, () => this.d.store.users.get(address) !== undefined);
        if (user.value) throw new KeydError('bad-request', `"${address}" is a registered user, not available as a list address`);
        // the list as this decision sees it: its policy, moderators and creation time are kept, and a change to
        // it committed meanwhile (members, policy) makes this one 409 superseded rather than overwritten
        const list = read(`list "${address}"`, () => this.d.store.lists.get(address));
        const now = this.d.clock().getTime();
        const rec = list.value ? { ...listEntry(list.value), members, updated: now } : { address, members, updated: now };
        return {
          result: rec,
          audit: { reason: `${members.length} members` },
          change: ifUnchanged([user, list], () => {
            this.d.store.lists.put(address, rec);
            this.lists.forget();
          }),
        };
      },
    );
  }

  /** Mints a tracking token for a registered sender's message (gateway role). */
  async mintToken(actor: Actor, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.audited(actor, 'tracking.mint', {}, () => {
      this.require(actor, ['gateway'], 'tracking.mint');
      const messageId = str(body.messageId, 'messageId', 998);
      // the gateway's own failure reports to senders at peers (sealed like any mail of this organisation): no user
      // sent them. Asked for explicitly, never by naming an address: a user's submission From: MAILER-DAEMON@<domain>
      // stays an unregistered sender (refused below), so no user can send as the mail system.
      if (body.mailSystem === true) {
        if (body.sender !== undefined || body.submitter !== undefined)
          throw new KeydError('bad-request', 'A mail-system token names no sender and no submitter');
        return {
          result: { token: this.d.tracking.mint(MAIL_SYSTEM_CODE, messageId, this.d.clock()) },
          audit: { digest: this.d.audit.digest(messageId), reason: 'mail system' },
        };
      }
      if (body.mailSystem !== undefined) throw new KeydError('bad-request', 'Field "mailSystem" must be true when present');
      const sender = checkAddress(body.sender, 'sender');
      const submitter = submitterOf(body);
      const u = this.d.registry.get(sender);
      if (!u) throw new KeydError('target-refused', `Sender "${sender}" is not a registered user of ${this.domain}`);
      if (u.status !== 'active') throw new KeydError('target-refused', `Sender "${sender}" is ${u.status}`);
      return {
        result: { token: this.d.tracking.mint(u.code, messageId, this.d.clock(), submitter) },
        audit: { digest: this.d.audit.digest(messageId) },
      };
    });
  }

  /**
   * What a resolve or disclose record holds of the request, whatever its outcome: the token's digest in
   * `digest`, and in `reason` the Message-ID's digest (the digest the token's mint record holds) or "none".
   * Digests, never the values: the token and the Message-ID are content of someone's mail.
   */
  private trackingAudit(body: Record<string, unknown>): Partial<AuditInput> {
    const token = typeof body.token === 'string' ? this.d.audit.digest(body.token) : undefined;
    const messageId = typeof body.messageId === 'string' ? this.d.audit.digest(body.messageId) : 'none';
    return { ...(token ? { digest: token } : {}), reason: `message-id ${messageId}` };
  }

  /** The audit reason of an answered resolve or disclose: the Message-ID's digest and whether it matched. */
  private trackingReason(base: Partial<AuditInput>, r: Record<string, unknown>, extra?: string): string {
    const match = r.messageIdMatches === undefined ? 'not asked' : r.messageIdMatches === true ? 'matches' : 'does not match';
    return `${base.reason ?? ''}: ${match}${extra ? `; ${extra}` : ''}`;
  }

  /** Resolves a token to the registered user, without the identity (admin role). */
  async resolveToken(actor: Actor, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const base = this.trackingAudit(body);
    return this.audited(actor, 'tracking.resolve', base, () => {
      this.require(actor, ['admin', 'disclosure'], 'tracking.resolve');
      const r = this.resolved(body);
      return { result: r, audit: { reason: this.trackingReason(base, r) } };
    });
  }

  /**
   * Resolves a token and reveals the identity reference (disclosure role only), and only for the message the
   * token was minted for: the request must name its Message-ID, and it must be the one the token binds. A
   * genuine token copied onto another message (a report whose headers carry another Message-ID) discloses
   * nothing; the refusal is audited like any other, with both digests.
   */
  async disclose(actor: Actor, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const base = this.trackingAudit(body);
    return this.audited(actor, 'tracking.disclose', base, () => {
      this.require(actor, ['disclosure'], 'tracking.disclose');
      if (body.messageId === undefined)
        throw new KeydError(
          'bad-request',
          'Cannot disclose: the request names no Message-ID (field "messageId"); the identity is disclosed only for the message the token was minted for',
        );
      const r = this.resolved(body);
      if (r.mailSystem)
        throw new KeydError(
          'not-found',
          "The token names this organisation's mail system (a failure report), not a user: there is no identity to disclose",
        );
      if (r.messageIdMatches !== true)
        throw new KeydError(
          'target-refused',
          'Cannot disclose: the Message-ID given is not the one the token was minted for (the token was taken from another message)',
        );
      const u = this.d.registry.findByCode((r.user as PublicUser).code)!;
      return {
        result: { ...r, identityRef: this.d.registry.identityOf(u) },
        audit: { target: u.address, reason: this.trackingReason(base, r, 'identity disclosed') },
      };
    });
  }

  private resolved(body: Record<string, unknown>): Record<string, unknown> {
    const contents = this.d.tracking.resolve(str(body.token, 'token', 400), this.d.clock());
    if (contents.code === MAIL_SYSTEM_CODE) {
      // no user: the organisation's mail system sent it (a failure report)
      const messageId = body.messageId === undefined ? undefined : str(body.messageId, 'messageId', 998);
      return {
        user: { address: `mailer-daemon@${this.domain}`, code: MAIL_SYSTEM_CODE, status: 'mail-system', kind: 'mail-system' },
        mailSystem: true,
        time: new Date(contents.time).toISOString(),
        keyVersion: contents.keyVersion,
        ...(messageId !== undefined ? { messageIdMatches: secretsEqual(messageIdHash(messageId), contents.messageIdHash) } : {}),
      };
    }
    const u = this.d.registry.findByCode(contents.code);
    if (!u) throw new KeydError('not-found', 'The token names a user no longer in the registry');
    const messageId = body.messageId === undefined ? undefined : str(body.messageId, 'messageId', 998);
    return {
      user: Registry.public(u),
      time: new Date(contents.time).toISOString(),
      keyVersion: contents.keyVersion,
      ...(contents.submitter ? { submitter: contents.submitter } : {}),
      ...(messageId !== undefined ? { messageIdMatches: secretsEqual(messageIdHash(messageId), contents.messageIdHash) } : {}),
    };
  }

  /** The key schedule at `now` (or a forced rotation): each change audited with its state change. */
  async maintain(actor: Actor, force = false): Promise<KeyChange[]> {
    if (force) this.require(actor, ['admin', 'keyd'], 'rotate');
    const now = this.d.clock();
    const plan = this.d.keyring.plan(now, this.d.rng, force);
    let changes = plan.changes;
    if (plan.puts.length > 0) {
      const op = force ? 'keys.rotate' : 'keys.schedule';
      const planned = changes.map((c) => `${c.keyId} ${c.change}`).join(', ');
      try {
        // The plan is checked against the stored records inside the write transaction (OrgKeyring.apply).
        await this.d.audit.append({ actor: actor.name, role: actor.role, op, result: 'ok', reason: planned }, now, () =>
          this.d.keyring.apply(plan),
        );
      } catch (err) {
        if (!(err instanceof KeydError && err.code === 'superseded')) throw err;
        await this.d.audit.append(
          { actor: actor.name, role: actor.role, op, result: 'refused', reason: `superseded, not written: ${planned}` },
          now,
        );
        if (force) throw err;
        changes = []; // the schedule: another writer made the change; the next run sees it
      }
    }
    // Tracking keys follow the org keys' validity: a new one each period; a
    // retired one keeps resolving for the retention period, then is erased
    // (tokens under it no longer resolve: SSMAX §2.2, tokens expire per policy).
    const tracking = read('tracking key', () => this.d.tracking.current());
    if (!tracking.value || now.getTime() - tracking.value.created >= this.d.keyring.policy.validityMs) {
      const { next, retired } = this.d.tracking.buildNext(now, tracking.value);
      try {
        await this.d.audit.commit(
          {
            actor: actor.name,
            role: actor.role,
            op: tracking.value ? 'tracking.rotate' : 'tracking.create',
            result: 'ok',
            keyId: `tracking:${next.version}`,
          },
          now,
          // a concurrent maintain (another request, another process) made the next version first: superseded
          ifUnchanged([tracking], () => {
            this.d.store.trackingKeys.put(next.version, next);
            if (retired) this.d.store.trackingKeys.put(retired.version, retired);
          }),
        );
      } catch (err) {
        if (!(err instanceof KeydError && err.code === 'superseded')) throw err;
      }
    }
    for (const expired of this.d.tracking.expired(now)) {
      const key = read(`tracking key ${expired}`, () => this.d.store.trackingKeys.get(expired));
      try {
        await this.d.audit.commit(
          { actor: actor.name, role: actor.role, op: 'tracking.destroy', result: 'ok', keyId: `tracking:${expired}` },
          now,
          ifUnchanged([key], () => this.d.store.trackingKeys.remove(expired)),
        );
      } catch (err) {
        if (!(err instanceof KeydError && err.code === 'superseded')) throw err; // destroyed by a concurrent run
      }
    }
    return [...changes];
  }
}
