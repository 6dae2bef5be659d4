/**
 * The directory's persistent cache: per peer domain, the last bundle accepted
 * (its JSON text, re-verified when loaded), the highest serial ever accepted
 * (replay protection survives a restart), and the last fetch and error for
 * `ssmax directory status`. LMDB on disk when a folder is given, so every
 * gateway worker and the status command see the same cache; a Map otherwise.
 */
import { mkdirSync } from 'node:fs';
import { type Database, type RootDatabase, open } from 'lmdb';
import { closeLmdb } from '../fs/lmdb-close';

export interface CachedPeer {
  readonly domain: string;
  /** The accepted bundle, as fetched. */
  readonly text?: string;
  readonly url?: string;
  readonly source?: 'static' | 'dns';
  /** The TXT record's `id` when the bundle was fetched (DNS-discovered peers). */
  readonly txtId?: string;
  /** Highest serial accepted for this domain; -1 when none. */
  readonly highestSerial: number;
  /** Milliseconds since the epoch. */
  readonly lastFetch?: number;
  readonly lastError?: string;
  readonly lastErrorAt?: number;
}

export interface PeerCache {
  get(domain: string): CachedPeer | undefined;
  put(record: CachedPeer): Promise<void>;
  all(): CachedPeer[];
  close(): Promise<void>;
}

export class MemoryPeerCache implements PeerCache {
  private readonly map = new Map<string, CachedPeer>();

  get(domain: string): CachedPeer | undefined {
    return this.map.get(domain);
  }

  async put(record: CachedPeer): Promise<void> {
    this.map.set(record.domain, record);
  }

  all(): CachedPeer[] {
    return [...this.map.values()];
  }

  async close(): Promise<void> {
    this.map.clear();
  }
}

export class LmdbPeerCache implements PeerCache {
  private constructor(
    private readonly root: RootDatabase,
    private readonly peers: Database<CachedPeer, string>,
  ) {}

  static open(dir: string): LmdbPeerCache {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const root = open({ path: dir, compression: false, maxDbs: 4 });
    return new LmdbPeerCache(root, root.openDB<CachedPeer, string>({ name: 'peers' }));
  }

  get(domain: string): CachedPeer | undefined {
    return this.peers.get(domain);
  }

  async put(record: CachedPeer): Promise<void> {
    // Never lower the stored serial: another worker may have accepted a newer bundle meanwhile.
    await this.peers.transaction(() => {
      const old = this.peers.get(record.domain);
      const highestSerial = Math.max(old?.highestSerial ?? -1, record.highestSerial);
      const keepOldText = old?.text !== undefined && (old.highestSerial > record.highestSerial || record.text === undefined);
      // a worker whose record is older (it failed a fetch after another accepted a bundle) keeps the newer fetch's
      // facts: where that bundle came from goes with its text, and the time of the last accepted bundle never goes back
      const where = keepOldText
        ? {
            text: old.text,
            ...(old.url !== undefined ? { url: old.url } : {}),
            ...(old.source !== undefined ? { source: old.source } : {}),
            ...(old.txtId !== undefined ? { txtId: old.txtId } : {}),
          }
        : {};
      const lastFetch = Math.max(old?.lastFetch ?? 0, record.lastFetch ?? 0);
      void this.peers.put(record.domain, { ...record, highestSerial, ...where, ...(lastFetch > 0 ? { lastFetch } : {}) });
    });
  }

  all(): CachedPeer[] {
    return [...this.peers.getRange({})].map((e) => e.value);
  }

  async close(): Promise<void> {
    await closeLmdb(this.root);
  }
}
