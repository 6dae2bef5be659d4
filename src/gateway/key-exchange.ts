/**
 * Key versions on the wire (docs/key-exchange.md):
 *  - the receiving side advertises, in its EHLO answer, the current version
 *    of its organisation key and its sealing certificate's serial:
 *      X-SSMAX v=1 keys=b.example:v3 seal=<serial hex>
 *    (keys from keyd's GET /v1/public, cached for a few seconds, so an EHLO
 *    never waits on keyd once the gateway has answered one);
 *  - the sending side learns a peer's advertised versions from a small EHLO
 *    probe of the peer's next hop (at most once per `probeIntervalMs` per
 *    peer, bounded by `probeTimeoutMs`, failures only logged) and from the
 *    refresh hint in the peer's 250 replies; when it sees a version newer
 *    than its cached bundle's current key it refreshes the bundle (at most
 *    once per `refreshMinIntervalMs` per peer) before it encrypts. Nothing
 *    here can fail a message: a failed probe or refresh leaves the cached,
 *    still valid bundle in use (a retired version is accepted within grace).
 */
import { resolveMx } from 'node:dns/promises';
import { connect } from 'node:net';
import { DirectoryError } from '../directory/directory';
import type { PeerEntry } from '../directory/peer-entry';
import { boundedLookup } from '../directory/fetch';
import type { KeyNotice } from '../keyd/client-ops';

export const KEYWORD = 'X-SSMAX';

export interface Advertised {
  /** Key ids `<domain>:v<N>` the peer advertises as current. */
  readonly keys: readonly string[];
  readonly seal?: string;
}

/** The EHLO keyword line (without the 250 prefix). */
export function advertisement(keys: readonly string[], sealSerial: string): string {
  return `${KEYWORD} v=1${keys.length > 0 ? ` keys=${keys.join(',')}` : ''} seal=${sealSerial}`;
}

/** The X-SSMAX line among EHLO lines (with or without `250-`), or undefined. */
export function parseAdvertisement(lines: readonly string[]): Advertised | undefined {
  for (const raw of lines) {
    const line = raw.replace(/^250[ -]/, '').trim();
    const words = line.split(/\s+/);
    if (words[0]?.toUpperCase() !== KEYWORD) continue;
    const tags = new Map<string, string>();
    for (const w of words.slice(1)) {
      const eq = w.indexOf('=');
      if (eq > 0) tags.set(w.slice(0, eq).toLowerCase(), w.slice(eq + 1));
    }
    if (tags.get('v') !== '1') return undefined;
    const keys = (tags.get('keys') ?? '').split(',').filter((k) => /^[a-z0-9.-]+:v\d+$/i.test(k));
    const seal = tags.get('seal');
    return { keys, ...(seal && /^[0-9a-f]{1,64}$/i.test(seal) ? { seal } : {}) };
  }
  return undefined;
}

/**
 * A capsule accepted for a retired version of this organisation's key:
 * keyd did the work and named the current version; the reply tells the
 * sender to refresh (`refreshHint`).
 */
export interface RetiredUse {
  readonly keyId: string;
  readonly current: string;
}

/** Notes keyd's "retired, refresh" notice for a capsule of `keyId` (once per key and current version). */
export function noteRetired(notices: RetiredUse[] | undefined, keyId: string, n: KeyNotice): void {
  if (!notices || n.notice !== 'retired' || !n.current) return;
  if (!notices.some((x) => x.keyId === keyId && x.current === n.current)) notices.push({ keyId, current: n.current });
}

/** The refresh hint for an SMTP reply, e.g. ` (refresh: b.example current key b.example:v3)`; '' when none. */
export function refreshHint(domain: string, notices: readonly RetiredUse[]): string {
  const current = [...new Set(notices.map((n) => n.current))];
  return current.length > 0 ? ` (refresh: ${domain} current key ${current.join(',')})` : '';
}

/** The refresh hint of a 250 reply (`refreshHint`): domain and the key ids named. */
export function parseRefreshHint(reply: string): { domain: string; keys: string[] } | undefined {
  const m = /\(refresh: ([a-z0-9.-]+) current key ([a-z0-9.:,-]+)\)/i.exec(reply);
  if (!m) return undefined;
  return { domain: m[1]!.toLowerCase(), keys: m[2]!.split(',').filter(Boolean) };
}

/** The version of `<domain>:v<N>` when it is a key of `domain`. */
export function versionOf(domain: string, keyId: string): number | undefined {
  const m = /^(.+):v(\d+)$/.exec(keyId);
  return m && m[1]!.toLowerCase() === domain.toLowerCase() ? Number(m[2]) : undefined;
}

/** The receiving side: the advertisement line, from keyd's public keys cached for `ttlMs`. */
export class Advertiser {
  private line?: string;
  private at = -Infinity;
  private running?: Promise<string>;

  constructor(
    private readonly fetchKeys: () => Promise<{ current: string | null }>,
    private sealSerial: string,
    private readonly ttlMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  /** A renewed sealing certificate (docs/operations.md, "Renewals"): advertised from the next EHLO on. */
  setSealSerial(serial: string): void {
    this.sealSerial = serial;
    this.at = -Infinity;
  }

  /** The line to push into the EHLO capabilities; never throws (without keyd: the seal serial only). */
  async current(): Promise<string> {
    const fresh = this.now() - this.at < this.ttlMs;
    if (this.line !== undefined && fresh) return this.line;
    const update = this.update();
    return this.line ?? update;
  }

  private update(): Promise<string> {
    this.running ??= this.fetchKeys()
      .then((pub) => {
        this.line = advertisement(pub.current ? [pub.current] : [], this.sealSerial);
        this.at = this.now();
        return this.line;
      })
      // keyd unreachable, or an answer without the keys (the line above threw): keep the last line (or the seal
      // serial alone) for ttlMs, so EHLOs do not wait on keyd each time; `current` may leave this promise unawaited,
      // so it never rejects
      .catch(() => {
        this.line ??= advertisement([], this.sealSerial);
        this.at = this.now();
        return this.line;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }
}

export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
}

/** The most a peer's greeting and EHLO answer may hold (a real one is a few hundred bytes). */
export const EHLO_PROBE_MAX_BYTES = 65536;

/** One EHLO dialogue: the EHLO answer lines, or a rejection; closed within `timeoutMs` and EHLO_PROBE_MAX_BYTES. */
export function ehloProbe(target: ProbeTarget, helo: string, timeoutMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    // the peer's MX name through c-ares, bounded: getaddrinfo would hold one of libuv's four shared threads for as
    // long as the peer's name servers stay silent, and every file and zlib operation of the gateway waits behind them
    const sock = connect({ port: target.port, host: target.host, lookup: boundedLookup(timeoutMs) });
    let buf = '';
    let stage: 'greeting' | 'ehlo' | 'done' = 'greeting';
    const lines: string[] = [];
    const timer = setTimeout(
      () => finish(new Error(`EHLO probe of ${target.host}:${target.port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const finish = (err?: Error) => {
      if (stage === 'done' && !err) return;
      clearTimeout(timer);
      const was = stage;
      stage = 'done';
      if (!sock.destroyed) {
        if (!err) sock.end('QUIT\r\n');
        else sock.destroy();
      }
      if (err) reject(err);
      else if (was !== 'done') resolve(lines);
    };
    sock.setNoDelay(true);
    let received = 0;
    sock.on('data', (c: Buffer) => {
      // the whole dialogue, not only the line being read: a peer answering "250-" line after line until the
      // timeout would otherwise grow `lines` without bound
      received += c.length;
      if (received > EHLO_PROBE_MAX_BYTES) return finish(new Error(`EHLO probe: answer over ${EHLO_PROBE_MAX_BYTES} bytes`));
      buf += c.toString('latin1');
      for (;;) {
        const i = buf.indexOf('\r\n');
        if (i < 0) break;
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const m = /^(\d{3})([ -])/.exec(line);
        if (!m) return finish(new Error(`EHLO probe: unexpected line "${line.slice(0, 80)}"`));
        if (stage === 'greeting') {
          if (m[2] === ' ') {
            if (m[1] !== '220') return finish(new Error(`EHLO probe: greeting ${m[1]}`));
            stage = 'ehlo';
            sock.write(`EHLO ${helo}\r\n`);
          }
        } else if (stage === 'ehlo') {
          if (m[1] !== '250') return finish(new Error(`EHLO probe: EHLO answered ${m[1]}`));
          lines.push(line);
          if (m[2] === ' ') return finish();
        }
      }
    });
    sock.on('error', (err) => finish(err));
    sock.on('close', () => finish(new Error('EHLO probe: connection closed')));
  });
}

export interface KeyWatchOptions {
  readonly probe: boolean;
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly refreshMinIntervalMs: number;
  /** Our name in the probe's EHLO. */
  readonly helo: string;
  /** Next hop of a peer domain (routes, else MX). */
  readonly nextHop: (domain: string) => Promise<ProbeTarget | undefined>;
  readonly refresh: (domain: string) => Promise<PeerEntry>;
  readonly log: (line: string) => void;
  readonly now?: () => number;
  /** Peers watched at most (default MAX_WATCHED_PEERS; tests set fewer). */
  readonly maxPeers?: number;
  /** Replaces the TCP probe (tests). */
  readonly prober?: (target: ProbeTarget, helo: string, timeoutMs: number) => Promise<string[]>;
}

interface PeerWatch {
  /** Highest advertised version of the peer's org key, and where it came from. */
  advertised: number;
  source?: string;
  probedAt: number;
  probing?: Promise<void>;
  refreshedAt: number;
  /** Last refresh for a seal by an unknown certificate (refreshForSeal). */
  sealRefreshedAt: number;
}

/**
 * Peers watched at most (least recently used dropped first): the map is keyed by domains that
 * mail goes to or comes from, so it is bounded whatever arrives. A peer dropped is watched
 * afresh (a probe, its rate limits from zero) when mail goes there again.
 */
export const MAX_WATCHED_PEERS = 10_000;

/** What refreshForSeal did. */
export type SealRefresh = 'refreshed' | 'skipped' | 'failed';

/** The sending side: what peers advertise, and refresh-before-send. */
export class KeyWatch {
  private readonly peers = new Map<string, PeerWatch>();
  private readonly now: () => number;
  /** Counters for tests and the logs. */
  readonly stats = { probes: 0, probeFailures: 0, refreshes: 0, refreshFailures: 0, hints: 0, foreignHints: 0 };

  constructor(private readonly opts: KeyWatchOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The watch of `domain`, made the most recently used (a Map keeps insertion order); the least recently used dropped over the cap. */
  private watch(domain: string): PeerWatch {
    let w = this.peers.get(domain);
    if (w) this.peers.delete(domain);
    else w = { advertised: 0, probedAt: -Infinity, refreshedAt: -Infinity, sealRefreshedAt: -Infinity };
    this.peers.set(domain, w);
    const max = this.opts.maxPeers ?? MAX_WATCHED_PEERS;
    for (const oldest of this.peers.keys()) {
      if (this.peers.size <= max) break;
      this.peers.delete(oldest);
    }
    return w;
  }

  /** How many peers are watched (tests). */
  get watched(): number {
    return this.peers.size;
  }

  /** Records advertised key ids of `domain` (from an EHLO or a refresh hint). */
  note(domain: string, keys: readonly string[], source: string): void {
    const d = domain.toLowerCase();
    const w = this.watch(d);
    for (const k of keys) {
      const v = versionOf(d, k);
      if (v !== undefined && v > w.advertised) {
        w.advertised = v;
        w.source = source;
      }
    }
  }

  /** The highest version `domain` was seen advertising (0: none). */
  advertised(domain: string): number {
    return this.peers.get(domain.toLowerCase())?.advertised ?? 0;
  }

  /**
   * A 250 reply of the next hop for `deliveredTo` (the domain the copy went to): picks up its
   * refresh hint when the hint names that domain. A hint naming any other domain is ignored (a
   * peer speaks for its own keys only; counted in `stats.foreignHints`). Returns whether a hint
   * was taken.
   */
  noteReply(reply: string, deliveredTo: string | undefined): boolean {
    const hint = parseRefreshHint(reply);
    if (!hint) return false;
    if (!deliveredTo || hint.domain !== deliveredTo.toLowerCase()) {
      this.stats.foreignHints++;
      return false;
    }
    this.stats.hints++;
    this.note(hint.domain, hint.keys, 'refresh hint');
    return true;
  }

  private probe(domain: string): Promise<void> {
    const w = this.watch(domain);
    if (!this.opts.probe) return Promise.resolve();
    if (w.probing) return w.probing;
    if (this.now() - w.probedAt < this.opts.probeIntervalMs) return Promise.resolve();
    w.probedAt = this.now();
    const run = async () => {
      this.stats.probes++;
      try {
        const target = await this.opts.nextHop(domain);
        if (!target) return;
        const lines = await (this.opts.prober ?? ehloProbe)(target, this.opts.helo, this.opts.probeTimeoutMs);
        const ad = parseAdvertisement(lines);
        if (ad) this.note(domain, ad.keys, `EHLO of ${target.host}:${target.port}`);
      } catch (err) {
        this.stats.probeFailures++;
        this.opts.log(`ssmax: EHLO probe of ${domain} failed (the cached bundle stays in use): ${(err as Error).message}`);
      }
    };
    w.probing = withTimeout(run(), this.opts.probeTimeoutMs + 500)
      .catch((err: unknown) => {
        this.stats.probeFailures++;
        this.opts.log(`ssmax: EHLO probe of ${domain}: ${(err as Error).message}`);
      })
      .finally(() => {
        w.probing = undefined;
      });
    return w.probing;
  }

  /**
   * A seal by a certificate the cached bundle of `domain` does not hold (the
   * peer may have renewed its sealing certificate since): one bounded refresh,
   * so that the chain can be verified again before any 5xx. Never throws.
   * 'refreshed': a fetch started after this call succeeded (Directory.refresh),
   * so the answer reflects what the peer publishes now; 'skipped': a refresh
   * for a seal of this peer ran less than `refreshMinIntervalMs` ago (its own
   * timer: a refresh before sending does not use it up); 'failed': the fetch
   * failed or timed out. Only after 'refreshed' is an unknown certificate
   * permanent (src/gateway/chain-check.ts).
   */
  async refreshForSeal(domain: string): Promise<SealRefresh> {
    const d = domain.toLowerCase();
    const w = this.watch(d);
    if (this.now() - w.sealRefreshedAt < this.opts.refreshMinIntervalMs) return 'skipped';
    w.sealRefreshedAt = this.now();
    this.stats.refreshes++;
    try {
      const got = await withTimeout(this.opts.refresh(d), this.opts.probeTimeoutMs + 3000);
      this.opts.log(`ssmax: seal by a certificate not in the cached bundle of ${d}: bundle refreshed (serial ${got.serial})`);
      return 'refreshed';
    } catch (err) {
      this.stats.refreshFailures++;
      this.opts.log(`ssmax: seal by a certificate not in the cached bundle of ${d}: refresh failed: ${reasonOf(err)}`);
      return 'failed';
    }
  }

  /**
   * The entry to encrypt to: `peer`, or a refreshed bundle when the peer
   * advertises a newer key version than `peer`'s current key. Never throws.
   */
  async fresh(domain: string, peer: PeerEntry): Promise<PeerEntry> {
    const d = domain.toLowerCase();
    await this.probe(d);
    const w = this.watch(d);
    if (w.advertised <= peer.currentKey.version) return peer;
    if (this.now() - w.refreshedAt < this.opts.refreshMinIntervalMs) return peer;
    w.refreshedAt = this.now();
    this.stats.refreshes++;
    try {
      const got = await withTimeout(this.opts.refresh(d), this.opts.probeTimeoutMs + 3000);
      this.opts.log(
        `ssmax: ${d} advertises ${d}:v${w.advertised} (${w.source ?? '?'}); bundle refreshed before sending: serial ${got.serial}, current key ${got.currentKey.keyId}`,
      );
      return got.currentKey.version >= peer.currentKey.version ? got : peer;
    } catch (err) {
      this.stats.refreshFailures++;
      this.opts.log(
        `ssmax: ${d} advertises ${d}:v${w.advertised}; bundle refresh failed (the cached bundle, current key ${peer.currentKey.keyId}, stays in use): ${reasonOf(err)}`,
      );
      return peer;
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Next hop from [routes], else the lowest-preference MX (port 25), else the domain itself. */
export function nextHopResolver(
  routes: Readonly<Record<string, { host: string; port: number }>>,
  mx: typeof resolveMx = resolveMx,
): (domain: string) => Promise<ProbeTarget | undefined> {
  return async (domain) => {
    const route = routes[domain];
    if (route) return route;
    try {
      const records = await mx(domain);
      const best = records.sort((a, b) => a.priority - b.priority)[0];
      return best ? { host: best.exchange, port: 25 } : { host: domain, port: 25 };
    } catch {
      return { host: domain, port: 25 };
    }
  };
}

/** For the log: the directory's whole reason (its message names the domain only), else the error's message. */
function reasonOf(err: unknown): string {
  return err instanceof DirectoryError ? err.detail : err instanceof Error ? err.message : String(err);
}
