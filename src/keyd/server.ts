/**
 * keyd's HTTPS front: mutual TLS, the caller's role read from its client
 * certificate (issued by the org CA, validated with CRLs through the one PKI
 * validation function), JSON in and out, bounded body size, bounded
 * concurrency, timeouts, structured errors, graceful shutdown.
 * Endpoints: docs/keyd-api.md.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { closeGracefully, listen } from '../net/https-json';
import { answerClientError } from '../net/client-error';
import type { TLSSocket } from 'node:tls';
import { ClientCertificateAuth, ClientCertificateError } from '../pki/client-auth';
import { ROLES } from '../pki/oids';
import type { ValidationCache } from '../pki/validate';
import { KeydError } from './errors';
import type { Actor, KeyService } from './service';
import type { AuditLog } from './audit';
import { BatchHandler } from './batch';
import { ON_BEHALF_HEADER, OnBehalf } from './on-behalf';

export interface ServerOptions {
  readonly host: string;
  readonly port: number;
  /** keyd's own TLS server certificate and key (PEM). */
  readonly cert: string;
  readonly key: string;
  /** CAs whose client certificates TLS accepts at the handshake (PEM); says nothing about who is a caller here. */
  readonly clientCas: readonly string[];
  /** The organisation anchor (PEM): every caller's certificate must be issued by this org CA, whatever `clientCas` holds. */
  readonly orgCa: string;
  /** Trust anchors for our own validation of client certificates. */
  readonly roots: readonly string[];
  /** Current CRLs (PEM) for client certificates; read on each new connection. */
  readonly crls: () => readonly string[];
  readonly clock: () => Date;
  readonly maxBodyBytes: number;
  readonly maxInFlight: number;
  readonly requestTimeoutMs: number;
  /** Time to receive a request's header block; a slower client is dropped (408). */
  readonly headersTimeoutMs: number;
  /** Largest request header block (bytes; over it: 431). */
  readonly maxHeaderBytes: number;
  /** Most header fields in one request (over it: 431). */
  readonly maxHeaders: number;
  readonly validationCache?: ValidationCache;
  /** Most operations in one POST /v1/batch (batch.ts; default 64). */
  readonly maxBatchOps?: number;
  /** Called once per request with a short line (no secrets). */
  readonly log?: (line: string) => void;
}

interface Route {
  readonly method: 'GET' | 'POST';
  readonly pattern: RegExp;
  readonly handle: (actor: Actor, body: Record<string, unknown>, params: string[]) => Promise<unknown> | unknown;
}

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' } as const;

/** The path of a request target (origin form), without query or fragment; what `new URL(...).pathname` gives, without building a URL. */
export function pathOf(target: string | undefined): string {
  if (!target) return '/';
  const cut = target.search(/[?#]/);
  const raw = cut < 0 ? target : target.slice(0, cut);
  if (raw.includes('//')) throw new KeydError('bad-request', 'The request path has an empty segment');
  if (raw.startsWith('/') && !/[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/.test(raw) && !/(^|\/)\.\.?(\/|$)|%2e/i.test(raw)) return raw;
  try {
    return new URL(target, 'https://keyd').pathname; // anything unusual: the URL parser's normalisation, as before
  } catch {
    throw new KeydError('bad-request', 'The request target is not a path');
  }
}

/** A %-encoded path parameter, decoded; malformed escapes and ill-formed Unicode are refused (400). */
export function param(encoded: string | undefined): string {
  try {
    return decodeURIComponent(encoded ?? '');
  } catch {
    throw new KeydError('bad-request', 'The request path has a malformed %-escape or ill-formed UTF-8');
  }
}

const LONE_SURROGATE = /\p{Cs}/u;

/** Refuses (400) a JSON value holding a string that is not well-formed Unicode (a lone surrogate from a \\uD800 escape), before anything is done or written. */
export function checkWellFormed(value: unknown, depth = 0): void {
  if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) throw new KeydError('bad-request', 'Request body holds a string that is not well-formed Unicode (a lone surrogate)');
  } else if (value && typeof value === 'object') {
    if (depth > 32) throw new KeydError('bad-request', 'Request body nests deeper than 32 levels');
    for (const [k, v] of Object.entries(value)) {
      checkWellFormed(k, depth + 1);
      checkWellFormed(v, depth + 1);
    }
  }
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** A request body: empty, or a JSON object in well-formed UTF-8 whose strings are well-formed Unicode; anything else is refused (400). */
export function parseRequestBody(raw: Buffer): Record<string, unknown> {
  if (raw.length === 0) return {};
  let text: string;
  try {
    text = utf8Fatal.decode(raw);
  } catch {
    throw new KeydError('bad-request', 'Request body is not well-formed UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeydError('bad-request', 'Request body is not JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new KeydError('bad-request', 'Request body must be a JSON object');
  checkWellFormed(parsed);
  return parsed as Record<string, unknown>;
}

export class KeydServer {
  readonly server: Server;
  private inFlight = 0;
  private readonly routes: Route[];
  /** Routes without parameters, by path (the hot ones: no regex per request). */
  private readonly exact = new Map<string, Route>();
  private readonly auth: ClientCertificateAuth;
  private readonly onBehalf: OnBehalf;

  constructor(private readonly service: KeyService, private readonly audit: AuditLog, private readonly opts: ServerOptions) {
    // Clients must hold a certificate from this organisation's CA, the explicit anchor ([pki] org_ca):
    // a gateway or inspector of another organisation under the same SSMAX root is not a caller here,
    // however client_ca is written.
    this.auth = new ClientCertificateAuth({
      roots: opts.roots, crls: opts.crls, roles: ROLES, clock: opts.clock, issuers: [opts.orgCa],
      ...(opts.validationCache ? { cache: opts.validationCache } : {}),
    });
    this.onBehalf = new OnBehalf({ roots: opts.roots, crls: opts.crls, orgCa: opts.orgCa, clock: opts.clock, ...(opts.validationCache ? { cache: opts.validationCache } : {}) });
    const batch = new BatchHandler(service, audit, opts.clock, opts.maxBatchOps, opts.log);
    this.routes = [
      { method: 'POST', pattern: /^\/v1\/reencrypt$/, handle: (a, b) => service.reencrypt(a, b) },
      { method: 'POST', pattern: /^\/v1\/decrypt$/, handle: (a, b) => service.decrypt(a, b) },
      { method: 'POST', pattern: /^\/v1\/batch$/, handle: (a, b) => batch.run(a, b) },
      { method: 'GET', pattern: /^\/v1\/public$/, handle: () => service.publicMaterial() },
      { method: 'GET', pattern: /^\/v1\/health$/, handle: (a) => ({ ok: true, domain: service.domain, role: a.role }) },
      { method: 'GET', pattern: /^\/v1\/directory\/users\/([^/]+)$/, handle: (a, _b, p) => service.lookupUser(a, param(p[0])) },
      { method: 'POST', pattern: /^\/v1\/registry\/users$/, handle: (a, b) => service.addUser(a, b) },
      { method: 'GET', pattern: /^\/v1\/registry\/users\/([^/]+)$/, handle: (a, _b, p) => service.getUser(a, param(p[0])) },
      { method: 'POST', pattern: /^\/v1\/registry\/users\/([^/]+)\/status$/, handle: (a, b, p) => service.setUserStatus(a, param(p[0]), b.status) },
      { method: 'POST', pattern: /^\/v1\/registry\/users\/([^/]+)\/revoke$/, handle: (a, b, p) => service.revokeUser(a, param(p[0]), b) },
      { method: 'POST', pattern: /^\/v1\/registry\/lists$/, handle: (a, b) => service.setList(a, b) },
      // mailing lists (src/keyd/lists.ts, docs/lists.md)
      { method: 'POST', pattern: /^\/v1\/lists$/, handle: (a, b) => service.lists.create(a, b) },
      { method: 'POST', pattern: /^\/v1\/lists\/members$/, handle: (a, b) => service.lists.members(a, b) },
      { method: 'POST', pattern: /^\/v1\/lists\/policy$/, handle: (a, b) => service.lists.policy(a, b) },
      { method: 'GET', pattern: /^\/v1\/lists\/([^/]+)$/, handle: (a, _b, p) => service.lists.show(a, param(p[0])) },
      { method: 'GET', pattern: /^\/v1\/lists\/([^/]+)\/resolve$/, handle: (a, _b, p) => service.lists.resolve(a, param(p[0])) },
      { method: 'POST', pattern: /^\/v1\/tracking\/mint$/, handle: (a, b) => service.mintToken(a, b) },
      { method: 'POST', pattern: /^\/v1\/tracking\/resolve$/, handle: (a, b) => service.resolveToken(a, b) },
      { method: 'POST', pattern: /^\/v1\/tracking\/disclose$/, handle: (a, b) => service.disclose(a, b) },
      { method: 'POST', pattern: /^\/v1\/keys\/rotate$/, handle: async (a) => ({ changes: await service.maintain(a, true) }) },
      {
        method: 'GET', pattern: /^\/v1\/audit\/verify$/, handle: (a) => {
          if (a.role !== 'admin') throw new KeydError('forbidden', `Role "${a.role}" may not call audit.verify`);
          return this.audit.verify();
        },
      },
      // the web console (docs/console.md): browse the chain; record a console action (quarantine, peers) in it before doing it
      {
        method: 'GET', pattern: /^\/v1\/audit\/records\/(\d{1,12})$/, handle: (a, _b, p) => {
          if (a.role !== 'admin') throw new KeydError('forbidden', `Role "${a.role}" may not call audit.records`);
          return { records: this.audit.page(Number(p[0]), 50) };
        },
      },
      {
        method: 'POST', pattern: /^\/v1\/audit\/console$/, handle: async (a, b) => {
          if (a.role !== 'admin' || !a.via) throw new KeydError('forbidden', `Role "${a.role}" may not call audit.console (an administrator through the console only)`);
          const op = typeof b.op === 'string' && /^console\.[a-z.-]{1,40}$/.test(b.op) ? b.op : undefined;
          if (!op || typeof b.target !== 'string' || b.target.length > 254) throw new KeydError('bad-request', 'Fields "op" (console.*) and "target" (at most 254 characters) are required');
          const r = await this.audit.append({ actor: a.name, role: a.role, op, target: b.target, result: 'ok' }, opts.clock());
          return { seq: r.seq };
        },
      },
    ];
    for (const r of this.routes) {
      const src = r.pattern.source; // e.g. ^\/v1\/reencrypt$
      if (/^\^[\\/a-z0-9-]+\$$/.test(src)) this.exact.set(src.slice(1, -1).replace(/\\\//g, '/'), r);
    }
    this.server = createServer({
      cert: opts.cert, key: opts.key, ca: [...opts.clientCas], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2',
      // The TLS handshake within the same time as the header block (Node's default: 120 s for a client that never finishes it).
      handshakeTimeout: opts.headersTimeoutMs,
      requestTimeout: opts.requestTimeoutMs, headersTimeout: Math.min(opts.headersTimeoutMs, opts.requestTimeoutMs), keepAliveTimeout: 30000, noDelay: true,
      maxHeaderSize: opts.maxHeaderBytes,
      // How often Node checks the two timeouts (default 30 s: a slow client would keep its socket that long).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(opts.headersTimeoutMs / 4))),
    }, (req, res) => { void this.handle(req, res); });
    // One more than the limit, so that a request with too many fields is seen and refused rather than silently cut.
    this.server.maxHeadersCount = opts.maxHeaders + 1;
    // Requests Node's parser refuses (malformed, headers too large, timed out, a malformed chunked body) get a JSON answer too.
    this.server.on('clientError', (err: Error & { code?: string }, socket) => answerClientError(err, socket, opts.maxHeaderBytes));
    this.server.on('secureConnection', (s: TLSSocket) => s.setNoDelay(true));
  }

  /** The caller, from its client certificate (src/pki/client-auth.ts: chain, validity, CRL, usage, role, issued by this organisation's CA; cached per connection for 60 s). */
  private actorOf(socket: TLSSocket): Actor {
    try {
      return this.auth.identify(socket);
    } catch (err) {
      if (err instanceof ClientCertificateError) throw new KeydError('unauthenticated', err.message);
      throw err;
    }
  }

  private send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed || !res.socket || res.socket.writableEnded) return; // already answered (a parser error mid-body is answered by clientError)
    const data = Buffer.from(JSON.stringify(body), 'utf8');
    res.writeHead(status, { ...JSON_HEADERS, 'content-length': data.length, ...extra });
    res.end(data);
  }

  /** The whole body, bounded by `maxBodyBytes` (events, not an async iterator: one less allocation chain per request). */
  private rawBody(req: IncomingMessage): Promise<Buffer> {
    const max = this.opts.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) return Promise.reject(new KeydError('too-large', `Request body over ${max} bytes`));
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) {
          cleanup();
          req.resume(); // drain: the answer goes out, the rest is discarded
          reject(new KeydError('too-large', `Request body over ${max} bytes`));
          return;
        }
        parts.push(chunk);
      };
      const onEnd = () => {
        cleanup();
        resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size));
      };
      const onError = (err: Error) => {
        cleanup();
        reject(new KeydError('bad-request', `Request body not received whole: ${err.message}`)); // the client's fault, not ours (a malformed chunked body, a closed connection)
      };
      const onClose = () => onError(new Error('Request closed before its body ended'));
      const cleanup = () => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('close', onClose);
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('close', onClose);
    });
  }

  private async readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    return parseRequestBody(await this.rawBody(req));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    if (this.inFlight >= this.opts.maxInFlight) {
      this.send(res, 503, { error: { code: 'busy', message: 'Too many requests in flight; retry' } }, { 'retry-after': '1' });
      return;
    }
    let status: number;
    let role = '-';
    this.inFlight++;
    try {
      const actor = this.onBehalf.actor(this.actorOf(req.socket as TLSSocket), req.headers[ON_BEHALF_HEADER]);
      role = actor.role;
      if (req.rawHeaders.length / 2 > this.opts.maxHeaders) throw new KeydError('too-many-headers', `Request has more than ${this.opts.maxHeaders} header fields`);
      const pathname = pathOf(req.url);
      const route = this.exact.get(pathname) ?? this.routes.find((r) => r.pattern.test(pathname));
      if (!route) throw new KeydError('not-found', `No endpoint ${pathname}`);
      if (route.method !== req.method) throw new KeydError('bad-request', `${pathname} takes ${route.method}`);
      const body = req.method === 'POST' ? await this.readBody(req) : {};
      const result = await route.handle(actor, body, route.pattern.exec(pathname)!.slice(1));
      status = 200;
      this.send(res, 200, result);
    } catch (err) {
      const e = err instanceof KeydError ? err : new KeydError('internal', 'Internal error');
      status = e.status;
      if (!(err instanceof KeydError)) this.opts.log?.(`keyd: internal error: ${(err as Error).stack ?? String(err)}`);
      this.send(res, e.status, { error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } });
    } finally {
      this.inFlight--;
    }
    // Successes are in the audit log; the process log gets refusals and faults only.
    if (status !== 200) this.opts.log?.(`${req.method} ${(req.url ?? '').split('?')[0]} ${status} role=${role} ${(performance.now() - started).toFixed(1)}ms`);
  }

  listen(): Promise<number> {
    return listen(this.server, this.opts.host, this.opts.port);
  }

  /** Stops accepting, lets requests in flight finish (bounded), then resolves. */
  close(graceMs = 5000): Promise<void> {
    return closeGracefully(this.server, () => this.inFlight, graceMs);
  }
}
