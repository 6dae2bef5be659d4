/**
 * The bundle publisher (docs/protocol.md, "Key exchange between domains";
 * docs/directory.md): builds the organisation's signed bundle from keyd's
 * key versions and the certificate and CRL files, and serves it over HTTPS at
 * `/.well-known/ssmax/bundle` (health at `/.well-known/ssmax/health`).
 *
 * Guarantees:
 * - Every publication has a fresh id and a serial above every earlier one,
 *   also across restarts (SerialState writes it before the bundle is served).
 * - A bundle is served only after it verified with `verifyBundle` against the
 *   configured roots, as a peer will check it; a bundle that would not verify
 *   (stale CRL, expired certificate) is not served, the previous one stays,
 *   and the reason is logged and shown by the health endpoint.
 * - It publishes again when keyd's material, a sealing certificate, a CRL or
 *   the CA chain changes (polled every `pollMs`), and when `republishAfter` of
 *   the lifetime has passed, so peers always find a bundle far from expiry.
 * - keyd unreachable: the last material fetched from keyd is used for the
 *   scheduled re-publication, so a keyd outage does not let the bundle expire.
 * - Answers carry `etag` = the bundle id and `cache-control: max-age` = the
 *   remaining lifetime in seconds.
 */
import { createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { type Server, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type BundleSigner, type InboundPolicy, createBundle, verifyBundle } from '../pki/bundle';
import { parseCertificate } from '../pki/certificate';
import { ValidationCache } from '../pki/validate';
import { type KeydPublic, type KeydPublicSource, type Material, type MaterialFiles, gatherMaterial } from './material';
import { SerialState } from './serial-state';
import { LISTENER_DEFAULTS, type ListenerLimits, capConnections, droppedConnectionsLog, listenerOptions } from '../net/listener-limits';

export const BUNDLE_PATH = '/.well-known/ssmax/bundle';
/** The publisher's listener: the shared defaults, a request within 10 s and 20 s without traffic (a GET of a small document). */
export const PUBLISHER_LISTENER: ListenerLimits = { ...LISTENER_DEFAULTS, requestTimeoutMs: 10000, idleTimeoutMs: 20000 };
const FIRST_PUBLICATION_ATTEMPTS = 40;
const FIRST_PUBLICATION_RETRY_MS = 250;
export const HEALTH_PATH = '/.well-known/ssmax/health';

export interface PublisherOptions {
  readonly domain: string;
  readonly signer: BundleSigner;
  readonly files: MaterialFiles;
  /** SSMAX roots (PEM): every bundle is verified against them before it is served. */
  readonly roots: readonly string[];
  readonly abuseContact: string;
  readonly inboundPolicy: InboundPolicy;
  readonly lifetimeMs: number;
  /** Publish again after this fraction of the lifetime even when nothing changed (0 < x < 1). */
  readonly republishAfter: number;
  readonly pollMs: number;
  readonly stateFile: string;
  readonly keyd: KeydPublicSource;
  readonly tls: { readonly cert: string; readonly key: string };
  readonly host: string;
  readonly port: number;
  /** The listener's limits (src/net/listener-limits.ts); each one not given: PUBLISHER_LISTENER. */
  readonly listener?: Partial<ListenerLimits>;
  readonly clock?: () => number;
  readonly log?: (line: string) => void;
}

export interface Publication {
  readonly text: string;
  readonly serial: number;
  readonly id: string;
  readonly issued: Date;
  readonly expires: Date;
  readonly fingerprint: string;
}

export class Publisher {
  private readonly state: SerialState;
  private readonly clock: () => number;
  private readonly log: (line: string) => void;
  private readonly validation = new ValidationCache();
  private current: Publication | undefined;
  private lastKeyd: KeydPublic | undefined;
  private lastError: string | undefined;
  private lastErrorAt: Date | undefined;
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private signer: BundleSigner;
  /** Sealing certificates served before (PEM → notAfter ms): a renewed one's predecessor stays in the bundle while it outlives it. */
  private readonly earlierSeals = new Map<string, number>();

  constructor(private readonly opts: PublisherOptions) {
    if (!(opts.republishAfter > 0 && opts.republishAfter < 1))
      throw new RangeError(`Cannot create publisher: republishAfter "${opts.republishAfter}" is not between 0 and 1`);
    if (!(opts.lifetimeMs >= 60000))
      throw new RangeError(`Cannot create publisher: lifetime "${opts.lifetimeMs}" ms is shorter than a minute`);
    this.state = new SerialState(opts.stateFile);
    this.clock = opts.clock ?? Date.now;
    this.log = opts.log ?? (() => undefined);
    this.signer = opts.signer;
  }

  /**
   * A renewed bundle-signer certificate for the same key (docs/operations.md,
   * "Renewals"): used from the next publication on, which happens at the next
   * poll (the material changed). Throws when it is not for the signer's key.
   */
  setSignerCertificate(pem: string): void {
    const spki = createPublicKey(pem).export({ type: 'spki', format: 'der' });
    if (!spki.equals(createPublicKey(this.signer.privateKey).export({ type: 'spki', format: 'der' })))
      throw new Error('the new bundle-signer certificate is not for the signer key');
    this.signer = { ...this.signer, certificate: pem };
    this.signerChanged = true;
  }

  private signerChanged = false;

  /** A renewed TLS certificate (and key): new connections get it. */
  setTls(cert: string, key: string): void {
    this.server?.setSecureContext({ cert, key });
  }

  /** The publication being served, if any. */
  get publication(): Publication | undefined {
    return this.current;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Publishes once (best effort: an error is logged and kept for health), listens, and starts polling. */
  async start(): Promise<void> {
    // Serve nothing before there is a bundle: retry the first publication for a
    // while (keyd may still be starting, or slow); after that, listen anyway and
    // answer 503 with the reason (health) until a publication succeeds.
    await this.tick();
    for (let i = 0; i < FIRST_PUBLICATION_ATTEMPTS && !this.current && !this.stopped; i++) {
      await new Promise((r) => setTimeout(r, FIRST_PUBLICATION_RETRY_MS));
      await this.tick();
    }
    // Internet-facing: the handshake, the request and the open connections bounded (a client that never finishes its
    // handshake is closed after handshakeTimeoutMs; one over the cap at once)
    const limits: ListenerLimits = { ...PUBLISHER_LISTENER, ...this.opts.listener };
    const server = createServer({ cert: this.opts.tls.cert, key: this.opts.tls.key, ...listenerOptions(limits) }, (req, res) =>
      this.handle(req, res),
    );
    capConnections(
      server,
      limits,
      droppedConnectionsLog('publisher', limits.maxConnections, (l) => this.log(l)),
    );
    server.listen(this.opts.port, this.opts.host);
    await once(server, 'listening');
    this.server = server;
    this.timer = setInterval(() => void this.tick(), this.opts.pollMs);
  }

  /** One poll: gather the material; publish when it changed or the schedule says so. Never throws. */
  tick(): Promise<void> {
    if (this.ticking) return this.ticking;
    this.ticking = this.tickOnce().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async tickOnce(): Promise<void> {
    if (this.stopped) return;
    try {
      let keyd = this.lastKeyd;
      try {
        keyd = await this.opts.keyd();
        this.lastKeyd = keyd;
      } catch (err) {
        if (!keyd) throw new Error(`Cannot fetch keys from keyd: ${(err as Error).message}`, { cause: err });
        this.log(`publisher: keyd unreachable, using its last known keys: ${(err as Error).message}`);
      }
      const now = this.now();
      const material = gatherMaterial(keyd, this.opts.files, this.opts.domain, now);
      const cur = this.current;
      const due =
        !cur ||
        material.fingerprint !== cur.fingerprint ||
        this.signerChanged ||
        now >= cur.issued.getTime() + this.opts.lifetimeMs * this.opts.republishAfter;
      if (due) this.publish(material, now);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.lastErrorAt = new Date(this.clock());
      this.log(`publisher: ${this.lastError}`);
      if (this.current && this.renewalLate())
        this.log(
          `publisher: WARNING the served bundle (serial ${this.current.serial}) expires at ${this.current.expires.toISOString()} and could not be renewed`,
        );
    }
  }

  /** What is served and the last failure, for the operations listener (src/ops/service-ops.ts). */
  status(): { serial?: number; issued?: Date; expires?: Date; lastError?: string; lastErrorAt?: Date; warning: boolean } {
    const c = this.current;
    return {
      warning: this.renewalLate(),
      ...(c ? { serial: c.serial, issued: c.issued, expires: c.expires } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(this.lastErrorAt ? { lastErrorAt: this.lastErrorAt } : {}),
    };
  }

  /**
   * The served bundle (or none) is inside its warning window: less than half
   * of the time between the scheduled re-publication and expiry is left, so
   * re-publication has been failing (or nothing was ever served).
   */
  renewalLate(): boolean {
    const c = this.current;
    if (!c) return true;
    return c.expires.getTime() - this.clock() < (this.opts.lifetimeMs * (1 - this.opts.republishAfter)) / 2;
  }

  /** Whole seconds: bundle and certificate times have no fractions. */
  private now(): number {
    return Math.floor(this.clock() / 1000) * 1000;
  }

  private publish(material: Material, now: number): void {
    for (const note of material.notes) this.log(`publisher: ${note}`);
    const serial = Math.max(this.state.serial + 1, 1);
    const issued = new Date(now);
    const expires = new Date(now + this.opts.lifetimeMs);
    // mail sealed with the previous sealing certificate may still be queued: keep it while it is valid for the whole bundle lifetime
    for (const pem of material.sealingCertificates)
      if (!this.earlierSeals.has(pem)) this.earlierSeals.set(pem, parseCertificate(pem).notAfter.getTime());
    const earlier = [...this.earlierSeals]
      .filter(([pem, notAfter]) => !material.sealingCertificates.includes(pem) && notAfter >= expires.getTime())
      .map(([pem]) => pem);
    for (const [pem, notAfter] of this.earlierSeals) if (notAfter < expires.getTime()) this.earlierSeals.delete(pem);
    const build = (seals: readonly string[]) => {
      const text = createBundle(
        {
          domain: this.opts.domain,
          serial,
          issued,
          expires,
          orgCaChain: material.orgCaChain,
          encryptionKeys: material.keys.map((k) => ({ state: k.state, certificate: k.certificate })),
          sealingCertificates: seals,
          crls: material.crls,
          abuseContact: this.opts.abuseContact,
          inboundPolicy: this.opts.inboundPolicy,
        },
        this.signer,
      );
      // Check it as a peer will, before anyone can fetch it.
      return {
        text,
        check: verifyBundle(text, { domain: this.opts.domain, roots: this.opts.roots, time: issued, cache: this.validation }),
      };
    };
    let { text, check } = build([...material.sealingCertificates, ...earlier]);
    if (check.status !== 'valid' && earlier.length > 0) {
      // an earlier sealing certificate no longer verifies (revoked): leave the earlier ones out
      this.earlierSeals.clear();
      ({ text, check } = build(material.sealingCertificates));
    }
    if (check.status !== 'valid')
      throw new Error(`Cannot publish serial ${serial}: the bundle does not verify (${check.status}): ${check.message}`);
    this.state.record({ serial, id: check.bundle.id, issued: check.bundle.payload.issued, expires: check.bundle.payload.expires });
    this.current = { text, serial, id: check.bundle.id, issued, expires, fingerprint: material.fingerprint };
    this.signerChanged = false;
    this.lastError = undefined;
    this.log(
      `publisher: published serial ${serial} id ${check.bundle.id}, current key ${this.opts.domain}:v${check.bundle.currentKey.version}, expires ${check.bundle.payload.expires}`,
    );
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const data = Buffer.from(`${JSON.stringify(body)}\n`);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(data.length), ...headers });
      res.end(req.method === 'HEAD' ? undefined : data);
    };
    if (path !== BUNDLE_PATH && path !== HEALTH_PATH)
      return json(404, { error: { code: 'not-found', message: `No resource at "${path}"` } });
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return json(405, { error: { code: 'method', message: `Method "${req.method}" is not allowed` } }, { allow: 'GET, HEAD' });
    const now = this.clock();
    const cur = this.current && now <= this.current.expires.getTime() ? this.current : undefined;
    if (path === HEALTH_PATH) {
      const info = cur ? { serial: cur.serial, id: cur.id, issued: cur.issued.toISOString(), expires: cur.expires.toISOString() } : {};
      return json(
        cur ? 200 : 503,
        { ok: cur !== undefined, domain: this.opts.domain, ...info, ...(this.lastError ? { lastError: this.lastError } : {}) },
        { 'cache-control': 'no-store' },
      );
    }
    if (!cur)
      return json(
        503,
        { error: { code: 'unavailable', message: 'No bundle is published yet' } },
        { 'retry-after': '60', 'cache-control': 'no-store' },
      );
    const etag = `"${cur.id}"`;
    const headers = {
      etag,
      'cache-control': `public, max-age=${Math.max(0, Math.floor((cur.expires.getTime() - now) / 1000))}`,
      'last-modified': cur.issued.toUTCString(),
    };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers).end();
      return;
    }
    const data = Buffer.from(cur.text, 'utf8');
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(data.length), ...headers });
    res.end(req.method === 'HEAD' ? undefined : data);
  }

  /** Stops polling, stops accepting, lets requests in flight finish (at most 5 s). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const force = setTimeout(() => server.closeAllConnections(), 5000);
    await closed;
    clearTimeout(force);
  }
}
