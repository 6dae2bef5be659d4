/**
 * The inspector process's HTTPS front ([inspection] mode=remote at the
 * gateway; docs/inspection.md): mutual TLS — clients must present a
 * gateway-role certificate from the org CA, validated with CRLs by the
 * shared client-certificate check (src/pki/client-auth.ts, as keyd does) —
 * the message as the request body (ciphertext, encrypted to this
 * organisation; bounded size), the answer as JSON. Bounded concurrency,
 * timeouts, structured errors `{"error": {"code", "message", "details"?}}`,
 * graceful shutdown. The process log gets refusals and faults only (method,
 * path, status, time) — never a body, an address or a rule match.
 *
 *   POST /v1/inspect?direction=outbound|inbound&from=A&rcpt=R…[&release=ID]
 *        body: the message → {verdict?, decision, quarantined?}
 *   GET  /v1/health → {ok, domain, role, dlp, av}
 */
import type { IncomingMessage } from 'node:http';
import type { Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { JsonHttpsServer, readBody, type RequestContext } from '../net/https-server';
import type { Capsule } from '../crypto';
import type { Direction, LocalInspector } from '../inspect/engine';
import { capsuleFor, capsulesOf, checkMessage } from '../mail/message-checks';
import { GatewayError, replyNameOf } from '../mail/replies';
import { ClientCertificateAuth, ClientCertificateError, type ClientIdentity } from '../pki/client-auth';
import type { ValidationCache } from '../pki/validate';

export interface InspectorServerOptions {
  readonly domain: string;
  readonly host: string;
  readonly port: number;
  /** The inspector's TLS server certificate (with chain) and key (PEM). */
  readonly cert: string;
  readonly key: string;
  /** CAs whose client certificates TLS accepts (org CA and root, PEM). */
  readonly clientCas: readonly string[];
  /** Trust anchors and current CRLs for our own validation of client certificates. */
  readonly roots: readonly string[];
  /** The org CA(s): a client certificate must be issued by one of them (not another organisation's CA under the same root). */
  readonly orgCas: readonly string[];
  readonly crls: () => readonly string[];
  readonly clock: () => Date;
  readonly maxBodyBytes: number;
  readonly maxInFlight: number;
  readonly requestTimeoutMs: number;
  /** Time to receive a request's header block; a slower client is answered 408 and dropped (default 5000, at most requestTimeoutMs). */
  readonly headersTimeoutMs?: number;
  /** Largest request header block (bytes; over it: 431; default 16384). */
  readonly maxHeaderBytes?: number;
  /** Most header fields in one request (over it: 431; default 64). */
  readonly maxHeaders?: number;
  /** Open connections at most (a new one over it is closed at once; default 1000). */
  readonly maxConnections?: number;
  readonly validationCache?: ValidationCache;
  readonly log?: (line: string) => void;
}

type Code =
  'bad-request' | 'unauthenticated' | 'not-found' | 'too-large' | 'too-many-headers' | 'refused' | 'unavailable' | 'busy' | 'internal';
const STATUS: Record<Code, number> = {
  'bad-request': 400,
  unauthenticated: 401,
  'not-found': 404,
  'too-large': 413,
  'too-many-headers': 431,
  refused: 422,
  unavailable: 503,
  busy: 503,
  internal: 500,
};

export class InspectorError extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly details?: Record<string, string>,
  ) {
    super(message);
    this.name = 'InspectorError';
  }

  get status(): number {
    return STATUS[this.code];
  }
}

const MAX_RCPTS = 1000;
/** An envelope address: 1-254 printable characters, no spaces or angle brackets. */
const ADDRESS = /^[!-;=?-~\u0080-\uffff]{1,254}$/;
const RELEASE_ID = /^q-[0-9a-z]+-[0-9a-f]{12} [0-9a-f]{24}$/;

/** A GatewayError of the engine, as this API's error: temporary ⇒ 503 unavailable (naming quarantineFull), final ⇒ 422 refused naming the reply. */
function fromEngine(err: unknown): unknown {
  if (!(err instanceof GatewayError)) return err;
  const reply = replyNameOf(err.reply);
  // a temporary decision of the inspector's own (its quarantine full) names its reply, for the gateway to give it as it is
  if (err.temporary) return new InspectorError('unavailable', err.message, reply === 'quarantineFull' ? { reply } : undefined);
  if (!reply) return new InspectorError('unavailable', err.message);
  return new InspectorError('refused', err.message, { reply });
}

export class InspectorServer {
  private readonly http: JsonHttpsServer;
  private readonly auth: ClientCertificateAuth;

  constructor(
    private readonly engine: LocalInspector,
    private readonly opts: InspectorServerOptions,
  ) {
    this.auth = new ClientCertificateAuth({
      roots: opts.roots,
      crls: opts.crls,
      roles: ['gateway'],
      issuers: opts.orgCas,
      clock: opts.clock,
      ...(opts.validationCache ? { cache: opts.validationCache } : {}),
    });
    this.http = new JsonHttpsServer(
      {
        ...opts,
        service: 'inspector',
        headersTimeoutMs: opts.headersTimeoutMs ?? 5000,
        maxHeaderBytes: opts.maxHeaderBytes ?? 16384,
        maxHeaders: opts.maxHeaders ?? 64,
        // the name and where, never the message (the default): a parser's message could quote the content
        refusal: (err) => (err instanceof InspectorError ? err : undefined),
      },
      (req, ctx) => this.handle(req, ctx),
    );
  }

  private caller(socket: TLSSocket): ClientIdentity {
    try {
      return this.auth.identify(socket);
    } catch (err) {
      if (err instanceof ClientCertificateError) throw new InspectorError('unauthenticated', err.message);
      throw err;
    }
  }

  /** The node:https server (for tests and the daemon's shutdown). */
  get server(): Server {
    return this.http.server;
  }

  /** The capsule for this organisation's key: the message must be encrypted to it (exactly one). */
  private ownCapsule(message: Buffer): Capsule {
    return capsuleFor(this.opts.domain, capsulesOf(checkMessage(message).headers));
  }

  private async inspect(url: URL, req: IncomingMessage): Promise<unknown> {
    const q = url.searchParams;
    const direction = q.get('direction');
    if (direction !== 'outbound' && direction !== 'inbound')
      throw new InspectorError('bad-request', 'direction must be outbound or inbound');
    const from = q.get('from') ?? '';
    if (!ADDRESS.test(from)) throw new InspectorError('bad-request', 'from must be an address');
    const rcpts = q.getAll('rcpt');
    if (rcpts.length === 0 || rcpts.length > MAX_RCPTS || !rcpts.every((r) => ADDRESS.test(r)))
      throw new InspectorError('bad-request', `rcpt must be 1 to ${MAX_RCPTS} addresses`);
    const release = q.get('release');
    if (release !== null && !RELEASE_ID.test(release))
      throw new InspectorError('bad-request', 'release must be a release field: a quarantine id and a token');
    const message = await readBody(req, this.opts.maxBodyBytes);
    if (message.length === 0) throw new InspectorError('bad-request', 'the message (request body) is empty');
    try {
      const capsule = this.ownCapsule(message);
      return await this.engine.inspect({
        direction: direction as Direction,
        message,
        capsule,
        from: from.toLowerCase(),
        rcpts: rcpts.map((r) => r.toLowerCase()),
        ...(release ? { releaseId: release } : {}),
      });
    } catch (err) {
      throw fromEngine(err);
    }
  }

  private async handle(req: IncomingMessage, ctx: RequestContext): Promise<unknown> {
    ctx.role = this.caller(req.socket as TLSSocket).role;
    this.http.checkHeaderCount(req);
    const url = new URL(req.url ?? '/', 'https://inspector');
    if (url.pathname === '/v1/inspect') {
      if (req.method !== 'POST') throw new InspectorError('bad-request', '/v1/inspect takes POST');
      return this.inspect(url, req);
    }
    if (url.pathname === '/v1/health') {
      if (req.method !== 'GET') throw new InspectorError('bad-request', '/v1/health takes GET');
      return {
        ok: true,
        domain: this.opts.domain,
        role: ctx.role,
        dlp: Boolean(this.engine.config.dlp),
        av: Boolean(this.engine.config.av),
      };
    }
    throw new InspectorError('not-found', `No endpoint ${url.pathname}`);
  }

  listen(): Promise<number> {
    return this.http.listen();
  }

  /** Stops accepting, lets requests in flight finish (bounded), then resolves. */
  close(graceMs = 5000): Promise<void> {
    return this.http.close(graceMs);
  }
}
