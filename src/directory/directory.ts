/**
 * The directory client (docs/protocol.md, "Key exchange between domains";
 * docs/directory.md): finds a peer's bundle (static map, else DNS TXT
 * `_ssmax.<domain>`), fetches it over HTTPS, verifies it up to the SSMAX roots
 * (`verifyBundle`, with the highest serial ever accepted for the domain as
 * `minSerial`, so an older bundle replayed is refused), and caches it until it
 * expires.
 *
 * Guarantees:
 * - `lookup` answers from the cache without waiting while an unexpired bundle
 *   is cached; when the refresh point (a fraction of the lifetime before
 *   expiry, minus a random jitter) has passed, it starts one background
 *   refresh. A failed refresh keeps the cached bundle in service until it
 *   expires; after that the domain is `unavailable` (SMTP 4xx) until a fetch
 *   succeeds again.
 * - A bundle is never used after its `expires`, nor before `issued`.
 * - Concurrent lookups of one domain share one fetch.
 * - Errors are `DirectoryError` with a closed set of codes the gateway maps
 *   to SMTP replies: `none` (definitely no SSMAX bundle: policy decides),
 *   `unavailable` (temporary), `invalid` (a bundle was refused, with the reason;
 *   never used; `final` when its organisation's CA is revoked or expired: a
 *   refusal for good, src/gateway/peer-bundle.ts).
 * - A TXT record whose `id` differs from the one seen at the last fetch starts
 *   a refresh (checked in the background every `dnsRecheckMs`).
 * - Clock, resolver, randomness and the cache folder are injected.
 */
import type { Resolver } from 'node:dns/promises';
import { rootCertificates } from 'node:tls';
import { type VerifiedBundle, verifyBundle } from '../pki/bundle';
import { canonicalDomain } from '../chain/alignment';
import { checkDomain } from '../pki/issue';
import { ValidationCache, finalRefusal, passingRefusal } from '../pki/validate';
import { type CachedPeer, LmdbPeerCache, MemoryPeerCache, type PeerCache } from './cache';
import { type BundleLocation, type DiscoveryResult, type TxtResolver, discover, txtName, urlProblem } from './discovery';
import { FetchError, type HostResolver, boundedResolver, fetchBundleText, hostResolverOf } from './fetch';
import { type PeerEntry, peerEntryOf } from './peer-entry';
import { type CrlSnapshot, KnownCrls } from '../pki/known-crls';

export type { PeerEntry, PeerKey, SealingCertificate } from './peer-entry';
export type { InboundPolicy } from '../pki/bundle';
export type { TxtResolver } from './discovery';

export type DirectoryErrorCode = 'none' | 'unavailable' | 'invalid';

/**
 * `message` says only which domain's bundle is missing or unavailable: it may reach an SMTP reply, a header or
 * anyone who asks. `detail` is the whole reason (the URL, the address, the TLS or HTTP error, the refusal):
 * for the directory's log, `status` and the operator's tools, never for a sender — a bundle URL is chosen
 * by whoever publishes the TXT record, and the reason would tell them what answered inside our network.
 */
export class DirectoryError extends Error {
  readonly detail: string;

  /**
   * `final`: for `invalid`, set when the refusal is one no retry changes — the bundle's organisation CA revoked
   * (not merely on hold) or expired (`finalRefusal`, src/pki/validate.ts) — in words a sender may be told
   * ("its organisation's CA is revoked (cACompromise, at …)"); a refusal the peer can mend (malformed, replayed,
   * a signer not certified, another domain's bundle) has none.
   */
  constructor(
    readonly code: DirectoryErrorCode,
    readonly domain: string,
    detail: string,
    readonly final?: string,
  ) {
    super(code === 'none' ? `No SSMAX bundle for "${domain}"` : `SSMAX bundle of "${domain}" unavailable`);
    this.name = 'DirectoryError';
    this.detail = detail;
  }
}

/** An error's text for the operator: a DirectoryError's reason too (its message alone is what a sender may be told). */
export function operatorErrorText(err: unknown): string {
  if (err instanceof DirectoryError) return err.detail ? `${err.message}: ${err.detail}` : err.message;
  return err instanceof Error ? err.message : String(err);
}

export const DIRECTORY_DEFAULTS = {
  fetchTimeoutMs: 10000,
  refreshAhead: 0.25,
  refreshJitter: 0.1,
  retryMs: 60000,
  negativeTtlMs: 300000,
  dnsRecheckMs: 300000,
  withdrawalGraceMs: 86_400_000,
  maxPeersInMemory: 10000,
} as const;

export interface DirectoryOptions {
  /** Trusted SSMAX roots (PEM). */
  readonly roots: readonly string[];
  /**
   * CRLs obtained outside the bundles (e.g. the root's), PEM: fixed, or a provider asked at each verification
   * (the gateway's CrlFiles over [pki] crls, so a replaced file counts without a restart); a provider that
   * throws makes every lookup `unavailable` until it answers again (nothing is trusted without them).
   */
  readonly crls?: readonly string[] | (() => readonly string[]);
  /** domain → bundle URL; overrides DNS (tests, closed networks). */
  readonly staticPeers?: Readonly<Record<string, string>> | ReadonlyMap<string, string>;
  /** TXT resolver; default `node:dns/promises` resolveTxt (or the `dnsServers`); `null` turns DNS discovery off. */
  readonly resolver?: TxtResolver | null;
  /**
   * DNS servers (`IP` or `IP:port`) for everything the directory resolves: the TXT records (unless
   * `resolver` is given) and the publishers' host names (unless pinned in `hosts`). Default: the system's.
   */
  readonly dnsServers?: readonly string[];
  /** LMDB folder; memory only when absent. */
  readonly cacheDir?: string;
  /** The time: milliseconds since the epoch (as Date.now, the default) or a Date (as keyd's clock). */
  readonly clock?: () => number | Date;
  readonly fetchTimeoutMs?: number;
  /** Refresh when this fraction of a bundle's lifetime remains (0..1). */
  readonly refreshAhead?: number;
  /** Up to this further fraction of the lifetime earlier, at random, so peers do not refresh in step. */
  readonly refreshJitter?: number;
  /** After a failed fetch, no new attempt for this long (lookups meanwhile get the cached bundle or the last error). */
  readonly retryMs?: number;
  /** How long a `none` answer is remembered. */
  readonly negativeTtlMs?: number;
  /** How often the TXT record of a DNS-discovered peer is re-read to notice a new bundle id. */
  readonly dnsRecheckMs?: number;
  /**
   * How long after its bundle was last accepted a peer whose TXT record is gone is taken as unavailable for now
   * (a DNS fault, a record briefly withdrawn), not as a domain without SSMAX (plain mail to it, or a 5xx).
   */
  readonly withdrawalGraceMs?: number;
  /**
   * The most domains whose state is kept in memory (every domain looked up adds one, and any sender chooses
   * the domains a message makes the gateway ask about); beyond it the least recently used is dropped (its
   * bundle stays in the persistent cache and is read again when next asked for).
   */
  readonly maxPeersInMemory?: number;
  /** CAs (PEM) for the publishers' TLS certificates; default Node's root store plus `roots`. */
  readonly tlsCa?: readonly string[];
  /** Fixed addresses for publisher host names (like curl --resolve); always allowed, whatever the address. */
  readonly hosts?: Readonly<Record<string, string>> | ReadonlyMap<string, string>;
  /**
   * Fetch bundles from internal addresses (loopback, private, link-local, CGNAT, ULA, multicast, unspecified)
   * whatever named them; default false: only the URLs of `staticPeers` and the addresses pinned in `hosts` may be
   * internal, a URL found by DNS is fetched from public addresses only (labs on one machine set this).
   */
  readonly allowPrivateAddresses?: boolean;
  /** Uniform in [0, 1); default Math.random. */
  readonly random?: () => number;
  /** Refusals and failures, one line each. */
  readonly log?: (line: string) => void;
}

export type PeerState = 'valid' | 'refresh-due' | 'expired' | 'none';

export interface PeerStatus {
  readonly domain: string;
  readonly state: PeerState;
  readonly source?: 'static' | 'dns';
  readonly url?: string;
  readonly serial?: number;
  readonly id?: string;
  readonly currentKeyId?: string;
  readonly expires?: Date;
  readonly lastFetch?: Date;
  readonly lastError?: string;
  readonly lastErrorAt?: Date;
}

interface Peer {
  record: CachedPeer;
  entry?: PeerEntry;
  /** When the next background refresh is due (ms). */
  refreshAt: number;
  /** No fetch before this (ms), after a failure. */
  retryAt: number;
  /** The error to repeat while `retryAt` or `noneUntil` holds and nothing valid is cached. */
  failure?: DirectoryError;
  noneUntil: number;
  dnsCheckAt: number;
  location?: BundleLocation;
  /** The TXT `id` seen when the cached bundle was fetched: a different one later invalidates the cache. */
  txtId?: string;
  /** The CRLs' anchorGeneration the entry was verified with: when the local or the roots' CRLs change, the bundle is verified again. */
  generation?: number;
}

function toMap(v: Readonly<Record<string, string>> | ReadonlyMap<string, string> | undefined, lowerValues = false): Map<string, string> {
  const entries: [string, string][] =
    v === undefined ? [] : v instanceof Map ? [...(v as ReadonlyMap<string, string>).entries()] : Object.entries(v);
  return new Map(entries.map(([k, x]) => [k.toLowerCase().replace(/\.$/, ''), lowerValues ? x.toLowerCase() : x]));
}

function fraction(v: number | undefined, dflt: number, name: string): number {
  const x = v ?? dflt;
  if (!Number.isFinite(x) || x < 0 || x > 1)
    throw new RangeError(`Cannot create directory: ${name} "${String(v)}" is not a fraction from 0 to 1`);
  return x;
}

function positive(v: number | undefined, dflt: number, name: string): number {
  const x = v ?? dflt;
  if (!Number.isFinite(x) || x < 0) throw new RangeError(`Cannot create directory: ${name} "${String(v)}" is not a non-negative number`);
  return x;
}

export class Directory {
  private readonly roots: readonly string[];
  /** The local CRLs and the newest CRL seen per CA (src/pki/known-crls.ts). */
  private readonly revocation: KnownCrls;
  private readonly staticPeers: Map<string, string>;
  private readonly resolver: TxtResolver | undefined;
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly log: (line: string) => void;
  private readonly store: PeerCache;
  private readonly validation = new ValidationCache();
  private readonly peers = new Map<string, Peer>();
  private readonly inflight = new Map<string, Promise<PeerEntry>>();
  /**
   * Bundle URLs named by DNS for a domain never accepted here whose bundle did not parse or did not chain to a root:
   * not fetched again, for any such domain, until `until` (at most maxPeersInMemory of them, the oldest dropped).
   */
  private readonly refusedUrls = new Map<string, { until: number; message: string; final?: string }>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly tlsCa: readonly string[];
  private readonly hosts: Map<string, string>;
  private readonly allowPrivate: boolean;
  private readonly resolveHost: HostResolver;
  private readonly dns: Resolver;
  private readonly cfg: {
    fetchTimeoutMs: number;
    refreshAhead: number;
    refreshJitter: number;
    retryMs: number;
    negativeTtlMs: number;
    dnsRecheckMs: number;
    withdrawalGraceMs: number;
    maxPeersInMemory: number;
  };
  private allLoaded = false;
  private closed = false;

  constructor(opts: DirectoryOptions) {
    if (!opts || !Array.isArray(opts.roots) || opts.roots.length === 0)
      throw new TypeError('Cannot create directory: at least one SSMAX root is required');
    this.roots = [...opts.roots];
    const crls = opts.crls;
    const fixedCrls = typeof crls === 'function' ? [] : [...(crls ?? [])];
    this.revocation = new KnownCrls({
      local: typeof crls === 'function' ? crls : () => fixedCrls,
      roots: this.roots,
      cache: this.validation,
    });
    this.staticPeers = toMap(opts.staticPeers);
    for (const [domain, url] of this.staticPeers) {
      const problem = urlProblem(url);
      if (problem) throw new TypeError(`Cannot create directory: static peer "${domain}": ${problem}`);
    }
    // One resolver for everything the directory resolves (the configured servers, else the system's): c-ares,
    // bounded in time, never getaddrinfo on libuv's shared threads (src/directory/fetch.ts).
    const dns = boundedResolver(opts.fetchTimeoutMs ?? DIRECTORY_DEFAULTS.fetchTimeoutMs);
    if (opts.dnsServers && opts.dnsServers.length > 0) {
      try {
        dns.setServers([...opts.dnsServers]);
      } catch (err) {
        throw new TypeError(`Cannot create directory: dnsServers ${JSON.stringify(opts.dnsServers)}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    this.resolver = opts.resolver === null ? undefined : (opts.resolver ?? ((name) => dns.resolveTxt(name)));
    this.resolveHost = hostResolverOf(dns);
    this.dns = dns;
    const clock = opts.clock;
    this.clock = clock
      ? () => {
          const t = clock();
          return t instanceof Date ? t.getTime() : t;
        }
      : Date.now;
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? (() => undefined);
    this.tlsCa = opts.tlsCa ? [...opts.tlsCa] : [...rootCertificates, ...opts.roots];
    this.hosts = toMap(opts.hosts, true);
    this.allowPrivate = opts.allowPrivateAddresses === true;
    this.cfg = {
      fetchTimeoutMs: positive(opts.fetchTimeoutMs, DIRECTORY_DEFAULTS.fetchTimeoutMs, 'fetchTimeoutMs'),
      refreshAhead: fraction(opts.refreshAhead, DIRECTORY_DEFAULTS.refreshAhead, 'refreshAhead'),
      refreshJitter: fraction(opts.refreshJitter, DIRECTORY_DEFAULTS.refreshJitter, 'refreshJitter'),
      retryMs: positive(opts.retryMs, DIRECTORY_DEFAULTS.retryMs, 'retryMs'),
      negativeTtlMs: positive(opts.negativeTtlMs, DIRECTORY_DEFAULTS.negativeTtlMs, 'negativeTtlMs'),
      dnsRecheckMs: positive(opts.dnsRecheckMs, DIRECTORY_DEFAULTS.dnsRecheckMs, 'dnsRecheckMs'),
      withdrawalGraceMs: positive(opts.withdrawalGraceMs, DIRECTORY_DEFAULTS.withdrawalGraceMs, 'withdrawalGraceMs'),
      maxPeersInMemory: Math.max(1, Math.floor(positive(opts.maxPeersInMemory, DIRECTORY_DEFAULTS.maxPeersInMemory, 'maxPeersInMemory'))),
    };
    this.store = opts.cacheDir ? LmdbPeerCache.open(opts.cacheDir) : new MemoryPeerCache();
  }

  /** The verified bundle of `domain`; throws DirectoryError. */
  async lookup(domain: string): Promise<PeerEntry> {
    if (this.closed) throw new DirectoryError('unavailable', String(domain), 'Cannot look up: the directory is closed');
    const d = this.normalise(domain);
    const peer = this.peer(d);
    const now = this.clock();
    if (peer.entry && this.usable(peer.entry, now)) {
      const snap = this.crlSnapshot(d);
      if (snap instanceof DirectoryError) throw snap;
      // the local or the roots' CRLs changed since the bundle was verified (a revoked org CA): verified again
      if (peer.generation !== snap.anchorGeneration && !this.stillValid(d, peer, snap)) return this.fetchShared(d);
    }
    if (peer.entry && this.usable(peer.entry, now)) {
      if (now >= peer.refreshAt && now >= peer.retryAt) this.inBackground(d, () => this.fetchShared(d));
      else if (peer.location?.source === 'dns' && now >= peer.dnsCheckAt) this.inBackground(d, () => this.recheckDns(d));
      return peer.entry;
    }
    if (now < peer.noneUntil && peer.failure?.code === 'none') throw peer.failure;
    if (now < peer.retryAt && peer.failure) throw peer.failure;
    return this.fetchShared(d);
  }

  /**
   * Fetches `domain`'s bundle now; throws DirectoryError. The answer is always
   * from a fetch started after this call: a fetch already under way (it may
   * have been answered before the publisher re-published) is waited for, then
   * a new one is made (shared by the callers that waited on the same one). A
   * caller that must see what is published now (a seal by an unknown
   * certificate, the gateway's check of its own bundle) relies on this.
   */
  async refresh(domain: string): Promise<PeerEntry> {
    const d = this.normalise(domain);
    const running = this.inflight.get(d);
    if (running) {
      await running.catch(() => undefined);
      // the first waiter starts the next fetch; the others join it (it started after all of them called)
      const next = this.inflight.get(d);
      if (next && next !== running) return next;
    }
    return this.fetchShared(d);
  }

  /** Resolves when every background refresh started so far has finished. */
  async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** One line per known peer (a bundle location was found: cached on disk or looked up by this process). */
  status(): PeerStatus[] {
    this.loadAll();
    const now = this.clock();
    const known = [...this.peers.entries()].filter(([, p]) => p.location !== undefined || p.record.url !== undefined).map(([d]) => d);
    return known.sort().map((domain) => {
      const peer = this.peers.get(domain) as Peer;
      const r = peer.record;
      const e = peer.entry;
      const state: PeerState = e && this.usable(e, now) ? (now >= peer.refreshAt ? 'refresh-due' : 'valid') : e ? 'expired' : 'none';
      return {
        domain,
        state,
        ...(r.source ? { source: r.source } : {}),
        ...(r.url ? { url: r.url } : {}),
        ...(e
          ? { serial: e.serial, id: e.id, currentKeyId: e.currentKey.keyId, expires: e.expires }
          : r.highestSerial >= 0
            ? { serial: r.highestSerial }
            : {}),
        ...(r.lastFetch !== undefined ? { lastFetch: new Date(r.lastFetch) } : {}),
        ...(r.lastError !== undefined ? { lastError: r.lastError } : {}),
        ...(r.lastErrorAt !== undefined ? { lastErrorAt: new Date(r.lastErrorAt) } : {}),
      };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.settled();
    await Promise.allSettled([...this.inflight.values()]);
    this.dns.cancel(); // queries a deadline gave up on
    await this.store.close();
  }

  // -------------------------------------------------------------------------

  private normalise(domain: string): string {
    try {
      // the one spelling of every comparison: an internationalised name in its ASCII form (canonicalDomain)
      return checkDomain(canonicalDomain(String(domain).trim().replace(/\.$/, '')));
    } catch {
      throw new DirectoryError('none', String(domain), `Cannot look up "${String(domain)}": not a domain name`);
    }
  }

  private usable(e: PeerEntry, now: number): boolean {
    return now >= e.issued.getTime() && now <= e.expires.getTime();
  }

  /** The in-memory state of a domain, loaded from the persistent cache the first time (the cached bundle is verified again). */
  private peer(domain: string): Peer {
    let peer = this.peers.get(domain);
    if (peer) {
      // most recently used last: the map's order is the eviction order
      this.peers.delete(domain);
      this.peers.set(domain, peer);
      return peer;
    }
    const record = this.store.get(domain) ?? { domain, highestSerial: -1 };
    peer = { record, refreshAt: 0, retryAt: 0, noneUntil: 0, dnsCheckAt: 0 };
    if (record.url && record.source) peer.location = { url: record.url, source: record.source };
    if (typeof record.txtId === 'string') peer.txtId = record.txtId;
    if (record.text !== undefined && record.url !== undefined) {
      // Verified again at load: a cached bundle is trusted no more than a fetched one.
      // Without the local CRLs nothing is loaded (the lookup says why).
      const snap = this.crlSnapshot();
      if (!(snap instanceof DirectoryError)) {
        const r = verifyBundle(record.text, {
          domain,
          roots: this.roots,
          crls: (carried) => snap.with(carried),
          time: new Date(this.clock()),
          cache: this.validation,
        });
        if (r.status === 'valid') this.accept(peer, r.bundle, record.url, false, snap);
      }
    }
    this.peers.set(domain, peer);
    this.evict();
    return peer;
  }

  /** Verifies the cached bundle again with `snap`; false (the entry dropped, the reason logged) when it no longer verifies. */
  private stillValid(domain: string, peer: Peer, snap: CrlSnapshot): boolean {
    const text = peer.record.text;
    const r =
      text === undefined
        ? undefined
        : verifyBundle(text, {
            domain,
            roots: this.roots,
            crls: (carried) => snap.with(carried),
            time: new Date(this.clock()),
            cache: this.validation,
          });
    if (r?.status === 'valid') {
      peer.generation = snap.anchorGeneration;
      return true;
    }
    this.log(`bundle for "${domain}" no longer trusted: ${r ? `${r.status}: ${r.message}` : 'not cached'}`);
    delete peer.entry;
    return false;
  }

  /** Drops the least recently used domains beyond maxPeersInMemory (not one being fetched now). */
  private evict(): void {
    if (this.peers.size <= this.cfg.maxPeersInMemory) return;
    for (const d of this.peers.keys()) {
      if (this.peers.size <= this.cfg.maxPeersInMemory) break;
      if (!this.inflight.has(d)) this.peers.delete(d);
    }
    // status() lists the persistent cache again when next asked (what was dropped is still there)
    this.allLoaded = false;
  }

  private loadAll(): void {
    if (this.allLoaded) return;
    this.allLoaded = true;
    for (const r of this.store.all()) this.peer(r.domain);
  }

  /** The CRLs now, or why they cannot be had (a local CRL unreadable): then no bundle is trusted. */
  private crlSnapshot(domain = ''): CrlSnapshot | DirectoryError {
    try {
      return this.revocation.snapshot();
    } catch (err) {
      return new DirectoryError('unavailable', domain, `Cannot check revocation: ${(err as Error).message}`);
    }
  }

  private accept(peer: Peer, b: VerifiedBundle, url: string, fresh: boolean, snap: CrlSnapshot): PeerEntry {
    // the CRLs this bundle carries, when newer than those seen, are remembered for every later verification
    this.revocation.learn(b.payload.crls, [b.orgCa]);
    const entry = peerEntryOf(b, { roots: this.roots, revocation: this.revocation, cache: this.validation, url });
    peer.generation = snap.anchorGeneration;
    const now = this.clock();
    const issued = b.issued.getTime();
    const expires = b.expires.getTime();
    const lifetime = expires - issued;
    const due = expires - lifetime * this.cfg.refreshAhead - lifetime * this.cfg.refreshJitter * this.random();
    // Never busy-loop on a bundle already inside its refresh window: wait at least retryMs (but not past expiry).
    peer.refreshAt = Math.max(due, Math.min(now + this.cfg.retryMs, expires));
    peer.entry = entry;
    peer.dnsCheckAt = now + this.cfg.dnsRecheckMs;
    if (fresh) {
      peer.retryAt = 0;
      peer.noneUntil = 0;
      delete peer.failure;
    }
    return entry;
  }

  private inBackground(domain: string, task: () => Promise<unknown>): void {
    if (this.inflight.has(domain) || this.closed) return;
    const p = task()
      .catch(() => undefined)
      .finally(() => this.background.delete(p));
    this.background.add(p);
  }

  private fetchShared(domain: string, location?: BundleLocation): Promise<PeerEntry> {
    const running = this.inflight.get(domain);
    if (running) return running;
    const p = this.fetchNow(domain, location).finally(() => this.inflight.delete(domain));
    this.inflight.set(domain, p);
    return p;
  }

  /**
   * Re-reads the TXT record; an id or URL different from those seen at the last successful fetch
   * means the organisation wants caches invalidated: fetch now. (The id is compared with the TXT id
   * seen before, not with the bundle's id, so a publisher that re-publishes on schedule does not
   * make every peer fetch at every recheck while the TXT record stays as it is.)
   */
  private async recheckDns(domain: string): Promise<void> {
    const peer = this.peer(domain);
    peer.dnsCheckAt = this.clock() + this.cfg.dnsRecheckMs;
    const found = await this.discoverWithin(domain, this.cfg.fetchTimeoutMs);
    if (found.status !== 'found') return; // keep serving the verified bundle; the next refresh reports the problem
    const { location } = found;
    if (location.id !== peer.txtId || location.url !== peer.entry?.url) {
      this.log(`directory: "${domain}" announces bundle ${location.id ?? '(no id)'} at ${location.url}; refreshing`);
      await this.fetchShared(domain, location);
    }
  }

  /** `discover`, answered `unavailable` when the resolver has not answered within `ms`. */
  private discoverWithin(domain: string, ms: number): Promise<DiscoveryResult> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<DiscoveryResult>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            status: 'unavailable',
            message: `Cannot resolve TXT "${txtName(domain)}": no answer within ${this.cfg.fetchTimeoutMs} ms`,
          }),
        Math.max(0, ms),
      );
    });
    return Promise.race([discover(domain, this.staticPeers, this.resolver), late]).finally(() => clearTimeout(timer));
  }

  private async fetchNow(domain: string, known?: BundleLocation): Promise<PeerEntry> {
    const peer = this.peer(domain);
    const fail = async (code: DirectoryErrorCode, message: string, final?: string): Promise<never> => {
      const now = this.clock();
      const err = new DirectoryError(code, domain, message, final);
      peer.failure = err;
      peer.retryAt = now + this.cfg.retryMs;
      if (code === 'none') peer.noneUntil = now + this.cfg.negativeTtlMs;
      // A refused bundle of a domain never accepted here is remembered as long as "no bundle": any sender can name such
      // domains, as many as it likes, and each must not cost a fetch and a verification per message.
      if (code === 'invalid' && peer.record.highestSerial < 0) peer.retryAt = now + Math.max(this.cfg.retryMs, this.cfg.negativeTtlMs);
      peer.record = {
        ...peer.record,
        ...(peer.location && peer.record.url === undefined ? { url: peer.location.url, source: peer.location.source } : {}),
        lastError: message,
        lastErrorAt: now,
      };
      this.log(`directory: ${message}`);
      // Only peers whose bundle was accepted once, or that the operator named ([peers]), are written: any Internet sender
      // can publish a TXT record for a domain of its own (as many as it likes) whose bundle fails, and that must not grow
      // the cache every process loads and the console lists whole (the failure stays known in this process's memory).
      if (peer.record.highestSerial >= 0 || peer.location?.source === 'static') await this.persist(peer);
      throw err;
    };
    // One deadline for the TXT lookup, the host name's resolution and the fetch together.
    const started = Date.now();
    const left = () => this.cfg.fetchTimeoutMs - (Date.now() - started);
    let location = known;
    if (!location) {
      const found = await this.discoverWithin(domain, left());
      // a peer whose bundle was accepted lately and whose TXT record is gone: a DNS fault or a record briefly
      // withdrawn, for now; not a domain without SSMAX (where policy may send mail in clear) before the grace ended
      // read from the cache every worker shares: one that never fetched this domain itself knows of it too
      const shared = found.status === 'none' ? this.store.get(domain) : undefined;
      const accepted = Math.max(shared?.lastFetch ?? 0, peer.record.lastFetch ?? 0);
      const acceptedBefore = Math.max(shared?.highestSerial ?? -1, peer.record.highestSerial) >= 0;
      if (found.status === 'none' && acceptedBefore && accepted > 0) {
        const until = accepted + this.cfg.withdrawalGraceMs;
        if (this.clock() < until)
          return fail(
            'unavailable',
            `${found.message}, though its bundle was accepted at ${new Date(accepted).toISOString()}: unavailable for now, taken as without SSMAX only from ${new Date(until).toISOString()} ([directory] withdrawal_grace_seconds)`,
          );
      }
      if (found.status !== 'found') return fail(found.status, found.message);
      location = found.location;
    }
    peer.location = location;
    const stranger = location.source === 'dns' && peer.record.highestSerial < 0;
    const refused = stranger ? this.refusedUrls.get(location.url) : undefined;
    if (refused && this.clock() < refused.until)
      return fail('invalid', `${refused.message} (remembered; not fetched again yet)`, refused.final);
    let text: string;
    if (left() <= 0) return fail('unavailable', `Cannot fetch "${location.url}": no answer within ${this.cfg.fetchTimeoutMs} ms`);
    try {
      text = await fetchBundleText(location.url, {
        timeoutMs: left(),
        ca: this.tlsCa,
        hosts: this.hosts,
        resolveHost: this.resolveHost,
        // the operator named a static peer's URL; one found by DNS was named by whoever publishes the record
        allowPrivate: this.allowPrivate || location.source === 'static',
      });
    } catch (err) {
      return fail('unavailable', err instanceof FetchError ? err.message : `Cannot fetch "${location.url}": ${String(err)}`);
    }
    // the highest serial any worker on this cache accepted (Haraka's cluster workers share it), not only this one's
    const floor = Math.max(peer.record.highestSerial, this.store.get(domain)?.highestSerial ?? -1);
    const minSerial = floor >= 0 ? floor : undefined;
    const snap = this.crlSnapshot(domain);
    if (snap instanceof DirectoryError) return fail('unavailable', snap.detail);
    const r = verifyBundle(text, {
      domain,
      roots: this.roots,
      crls: (carried) => snap.with(carried),
      time: new Date(this.clock()),
      cache: this.validation,
      ...(minSerial !== undefined ? { minSerial } : {}),
    });
    if (r.status !== 'valid') {
      const message = `Bundle for "${domain}" from "${location.url}" refused (${r.status}): ${r.message}`;
      // whatever domain names it, a bundle that does not parse or does not chain to a root is refused again
      // the organisation CA itself revoked (by the root) or expired: a refusal for good (DirectoryError `final`)
      const revoked = r.status === 'untrusted' && r.cause ? finalRefusal(r.cause) : undefined;
      const final = revoked && `its organisation's CA is ${revoked}`;
      // a peer accepted before (or named by the operator) whose bundle fails for a passing state — the revocation state
      // unknown (our CRL or its issuer's past nextUpdate), not valid yet, on hold — is unavailable for now: mail to it
      // waits (451), and a list's post is deferred rather than its members there dropped
      const cause = r.status === 'untrusted' || r.status === 'signer-not-certified' ? r.cause : undefined;
      const passing = (cause && passingRefusal(cause)) ?? (r.status === 'not-yet-valid' ? 'the bundle is not valid yet' : undefined);
      if (passing && !stranger) return fail('unavailable', `${message} (for now: ${passing})`);
      if (stranger && (r.status === 'untrusted' || r.status === 'malformed')) this.rememberRefusedUrl(location.url, message, final);
      return fail('invalid', message, final);
    }
    const entry = this.accept(peer, r.bundle, location.url, true, snap);
    if (location.id !== undefined) peer.txtId = location.id;
    else delete peer.txtId;
    const now = this.clock();
    const { txtId: _old, ...rest } = peer.record;
    void _old;
    peer.record = {
      ...rest,
      domain,
      text,
      url: location.url,
      source: location.source,
      ...(location.id !== undefined ? { txtId: location.id } : {}),
      highestSerial: Math.max(peer.record.highestSerial, r.bundle.serial),
      lastFetch: now,
    };
    await this.persist(peer);
    return entry;
  }

  private rememberRefusedUrl(url: string, message: string, final?: string): void {
    if (this.cfg.negativeTtlMs <= 0) return;
    this.refusedUrls.delete(url);
    this.refusedUrls.set(url, { until: this.clock() + this.cfg.negativeTtlMs, message, ...(final ? { final } : {}) });
    for (const u of this.refusedUrls.keys()) {
      if (this.refusedUrls.size <= this.cfg.maxPeersInMemory) break;
      this.refusedUrls.delete(u);
    }
  }

  private async persist(peer: Peer): Promise<void> {
    try {
      await this.store.put(peer.record);
    } catch (err) {
      // The memory copy stays authoritative for this process; a cache write failure must not stop mail.
      this.log(`directory: cannot write the cache for "${peer.record.domain}": ${(err as Error).message}`);
    }
  }
}
