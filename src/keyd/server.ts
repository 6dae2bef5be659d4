/**
 * keyd's HTTPS front: mutual TLS, the caller's role read from its client
 * certificate (issued by the org CA, validated with CRLs through the one PKI
 * validation function), JSON in and out, bounded body size, bounded
 * concurrency, timeouts, structured errors, graceful shutdown.
 * Endpoints: docs/keyd-api.md.
 */
import type { Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { JsonHttpsServer, readBody, type RequestContext, type RequestLimits } from '../net/https-server';
import { ClientCertificateAuth, ClientCertificateError } from '../pki/client-auth';
import { ROLES } from '../pki/oids';
import type { ValidationCache } from '../pki/validate';
import { KeydError } from './errors';
import type { Actor, KeyService } from './service';
import type { AuditLog } from './audit';
import { BatchHandler } from './batch';
import { ON_BEHALF_HEADER, OnBehalf } from './on-behalf';

export interface ServerOptions extends RequestLimits {
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
  /** Current CRLs (PEM) for client certificates, asked on each new connection and each on-behalf request (the daemon's CrlFiles: read when changed). */
  readonly crls: () => readonly string[];
  readonly clock: () => Date;
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
    if (LONE_SURROGATE.test(value))
      throw new KeydError('bad-request', 'Request body holds a string that is not well-formed Unicode (a lone surrogate)');
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
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new KeydError('bad-request', 'Request body must be a JSON object');
  checkWellFormed(parsed);
  return parsed as Record<string, unknown>;
}

export class KeydServer {
  private readonly http: JsonHttpsServer;
  private readonly routes: Route[];
  /** Routes without parameters, by path (the hot ones: no regex per request). */
  private readonly exact = new Map<string, Route>();
  private readonly auth: ClientCertificateAuth;
  private readonly onBehalf: OnBehalf;

  constructor(
    private readonly service: KeyService,
    private readonly audit: AuditLog,
    private readonly opts: ServerOptions,
  ) {
    // Clients must hold a certificate from this organisation's CA, the explicit anchor ([pki] org_ca):
    // a gateway or inspector of another organisation under the same SSMAX root is not a caller here,
    // however client_ca is written.
    this.auth = new ClientCertificateAuth({
      roots: opts.roots,
      crls: opts.crls,
      roles: ROLES,
      clock: opts.clock,
      issuers: [opts.orgCa],
      ...(opts.validationCache ? { cache: opts.validationCache } : {}),
    });
    this.onBehalf = new OnBehalf({
      roots: opts.roots,
      crls: opts.crls,
      orgCa: opts.orgCa,
      clock: opts.clock,
      ...(opts.validationCache ? { cache: opts.validationCache } : {}),
    });
    const batch = new BatchHandler(service, audit, opts.clock, opts.maxBatchOps, opts.log);
    this.routes = [
      { method: 'POST', pattern: /^\/v1\/reencrypt$/, handle: (a, b) => service.reencrypt(a, b) },
      { method: 'POST', pattern: /^\/v1\/decrypt$/, handle: (a, b) => service.decrypt(a, b) },
      { method: 'POST', pattern: /^\/v1\/batch$/, handle: (a, b) => batch.run(a, b) },
      { method: 'GET', pattern: /^\/v1\/public$/, handle: () => service.publicMaterial() },
      { method: 'GET', pattern: /^\/v1\/health$/, handle: (a) => ({ ok: true, domain: service.domain, role: a.role }) },
      { method: 'GET', pattern: /^\/v1\/directory\/users\/([^/]+)$/, handle: (a, _b, p) => service.lookupUser(a, param(p[0])) },
      { method: 'POST', pattern: /^\/v1\/directory\/users$/, handle: (a, b) => service.lookupUsers(a, b) },
      { method: 'GET', pattern: /^\/v1\/directory\/addresses\/([^/]+)$/, handle: (a, _b, p) => service.lookupAddress(a, param(p[0])) },
      { method: 'POST', pattern: /^\/v1\/registry\/users$/, handle: (a, b) => service.addUser(a, b) },
      { method: 'GET', pattern: /^\/v1\/registry\/users\/([^/]+)$/, handle: (a, _b, p) => service.getUser(a, param(p[0])) },
      {
        method: 'POST',
        pattern: /^\/v1\/registry\/users\/([^/]+)\/status$/,
        handle: (a, b, p) => service.setUserStatus(a, param(p[0]), b.status),
      },
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
        method: 'GET',
        pattern: /^\/v1\/audit\/verify$/,
        handle: (a) => {
          if (a.role !== 'admin') throw new KeydError('forbidden', `Role "${a.role}" may not call audit.verify`);
          return this.audit.verifyInTurns();
        },
      },
      // the web console (docs/console.md): browse the chain; record a console action (quarantine, peers) in it before doing it
      {
        method: 'GET',
        pattern: /^\/v1\/audit\/records\/(\d{1,12})$/,
        handle: (a, _b, p) => {
          if (a.role !== 'admin') throw new KeydError('forbidden', `Role "${a.role}" may not call audit.records`);
          return { records: this.audit.page(Number(p[0]), 50) };
        },
      },
      {
        method: 'POST',
        pattern: /^\/v1\/audit\/console$/,
        handle: async (a, b) => {
          if (a.role !== 'admin' || !a.via)
            throw new KeydError('forbidden', `Role "${a.role}" may not call audit.console (an administrator through the console only)`);
          const op = typeof b.op === 'string' && /^console\.[a-z.-]{1,40}$/.test(b.op) ? b.op : undefined;
          if (!op || typeof b.target !== 'string' || b.target.length > 254)
            throw new KeydError('bad-request', 'Fields "op" (console.*) and "target" (at most 254 characters) are required');
          const r = await this.audit.append({ actor: a.name, role: a.role, op, target: b.target, result: 'ok' }, opts.clock());
          return { seq: r.seq };
        },
      },
    ];
    for (const r of this.routes) {
      const src = r.pattern.source; // e.g. ^\/v1\/reencrypt$
      if (/^\^[\\/a-z0-9-]+\$$/.test(src)) this.exact.set(src.slice(1, -1).replace(/\\\//g, '/'), r);
    }
    this.http = new JsonHttpsServer(
      {
        ...opts,
        service: 'keyd',
        refusal: (err) => (err instanceof KeydError ? err : undefined),
      },
      (req, ctx) => this.handle(req, ctx),
    );
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

  /** The node:https server (for tests and the daemon's shutdown). */
  get server(): Server {
    return this.http.server;
  }

  private async handle(req: IncomingMessage, ctx: RequestContext): Promise<unknown> {
    const actor = this.onBehalf.actor(this.actorOf(req.socket as TLSSocket), req.headers[ON_BEHALF_HEADER]);
    ctx.role = actor.role;
    this.http.checkHeaderCount(req);
    const pathname = pathOf(req.url);
    const route = this.exact.get(pathname) ?? this.routes.find((r) => r.pattern.test(pathname));
    if (!route) throw new KeydError('no-such-endpoint', `No endpoint ${pathname}`);
    if (route.method !== req.method) throw new KeydError('bad-request', `${pathname} takes ${route.method}`);
    const body = req.method === 'POST' ? parseRequestBody(await readBody(req, this.opts.maxBodyBytes)) : {};
    return route.handle(actor, body, route.pattern.exec(pathname)!.slice(1));
  }

  listen(): Promise<number> {
    return this.http.listen();
  }

  /** Stops accepting, lets requests in flight finish (bounded), then resolves. */
  close(graceMs = 5000): Promise<void> {
    return this.http.close(graceMs);
  }
}
