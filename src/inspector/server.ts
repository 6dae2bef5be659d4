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
import type { IncomingMessage, ServerResponse } from 'node:http';
import { closeGracefully, listen } from '../net/https-json';
import { type Server, createServer } from 'node:https';
import { answerClientError } from '../net/client-error';
import type { TLSSocket } from 'node:tls';
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
  readonly validationCache?: ValidationCache;
  readonly log?: (line: string) => void;
}

type Code = 'bad-request' | 'unauthenticated' | 'not-found' | 'too-large' | 'too-many-headers' | 'refused' | 'unavailable' | 'busy' | 'internal';
const STATUS: Record<Code, number> = { 'bad-request': 400, unauthenticated: 401, 'not-found': 404, 'too-large': 413, 'too-many-headers': 431, refused: 422, unavailable: 503, busy: 503, internal: 500 };

export class InspectorError extends Error {
  constructor(readonly code: Code, message: string, readonly details?: Record<string, string>) {
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
const RELEASE_ID = /^q-[0-9a-z]+-[0-9a-f]{12}$/;

/** A GatewayError of the engine, as this API's error: temporary ⇒ 503 unavailable, final ⇒ 422 refused naming the reply. */
function fromEngine(err: unknown): unknown {
  if (!(err instanceof GatewayError)) return err;
  const reply = replyNameOf(err.reply);
  if (err.temporary || !reply) return new InspectorError('unavailable', err.message);
  return new InspectorError('refused', err.message, { reply });
}

export class InspectorServer {
  readonly server: Server;
  private inFlight = 0;
  private readonly auth: ClientCertificateAuth;

  private get headersTimeoutMs(): number {
    return this.opts.headersTimeoutMs ?? 5000;
  }

  private get maxHeaders(): number {
    return this.opts.maxHeaders ?? 64;
  }

  constructor(private readonly engine: LocalInspector, private readonly opts: InspectorServerOptions) {
    this.auth = new ClientCertificateAuth({ roots: opts.roots, crls: opts.crls, roles: ['gateway'], issuers: opts.orgCas, clock: opts.clock, ...(opts.validationCache ? { cache: opts.validationCache } : {}) });
    this.server = createServer({
      cert: opts.cert, key: opts.key, ca: [...opts.clientCas], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2',
      // The TLS handshake within the same time as the header block (Node's default: 120 s for a client that never finishes it).
      handshakeTimeout: this.headersTimeoutMs,
      requestTimeout: opts.requestTimeoutMs, headersTimeout: Math.min(this.headersTimeoutMs, opts.requestTimeoutMs), keepAliveTimeout: 30000,
      maxHeaderSize: opts.maxHeaderBytes ?? 16384,
      // How often Node checks the two timeouts (default 30 s: a slow client would keep its socket that long).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(this.headersTimeoutMs / 4))),
    }, (req, res) => { void this.handle(req, res); });
    // One more than the limit, so that a request with too many fields is seen and refused rather than silently cut.
    this.server.maxHeadersCount = this.maxHeaders + 1;
    // Requests Node's parser refuses (malformed, headers too large or too slow, a malformed chunked body) get a JSON answer too.
    this.server.on('clientError', (err: Error & { code?: string }, socket) => answerClientError(err, socket, opts.maxHeaderBytes ?? 16384));
    this.server.on('secureConnection', (s: TLSSocket) => s.setNoDelay(true));
  }

  private caller(socket: TLSSocket): ClientIdentity {
    try {
      return this.auth.identify(socket);
    } catch (err) {
      if (err instanceof ClientCertificateError) throw new InspectorError('unauthenticated', err.message);
      throw err;
    }
  }

  private send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed || !res.socket || res.socket.writableEnded) return; // already answered (a parser error mid-body is answered by clientError)
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extra });
    res.end(text);
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const limit = this.opts.maxBodyBytes;
    if (Number(req.headers['content-length'] ?? 0) > limit) throw new InspectorError('too-large', `Request body over ${limit} bytes`);
    const parts: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > limit) throw new InspectorError('too-large', `Request body over ${limit} bytes`);
        parts.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof InspectorError) throw err;
      throw new InspectorError('bad-request', 'Request body not received whole'); // the client's fault (a malformed chunked body, a closed connection)
    }
    return Buffer.concat(parts, size);
  }

  /** The capsule for this organisation's key: the message must be encrypted to it (exactly one). */
  private ownCapsule(message: Buffer): Capsule {
    return capsuleFor(this.opts.domain, capsulesOf(checkMessage(message).headers));
  }

  private async inspect(url: URL, req: IncomingMessage): Promise<unknown> {
    const q = url.searchParams;
    const direction = q.get('direction');
    if (direction !== 'outbound' && direction !== 'inbound') throw new InspectorError('bad-request', 'direction must be outbound or inbound');
    const from = q.get('from') ?? '';
    if (!ADDRESS.test(from)) throw new InspectorError('bad-request', 'from must be an address');
    const rcpts = q.getAll('rcpt');
    if (rcpts.length === 0 || rcpts.length > MAX_RCPTS || !rcpts.every((r) => ADDRESS.test(r))) throw new InspectorError('bad-request', `rcpt must be 1 to ${MAX_RCPTS} addresses`);
    const release = q.get('release');
    if (release !== null && !RELEASE_ID.test(release)) throw new InspectorError('bad-request', 'release must be a quarantine id');
    const message = await this.readBody(req);
    if (message.length === 0) throw new InspectorError('bad-request', 'the message (request body) is empty');
    try {
      const capsule = this.ownCapsule(message);
      return await this.engine.inspect({ direction: direction as Direction, message, capsule, from: from.toLowerCase(), rcpts: rcpts.map((r) => r.toLowerCase()), ...(release ? { releaseId: release } : {}) });
    } catch (err) {
      throw fromEngine(err);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    if (this.inFlight >= this.opts.maxInFlight) {
      this.send(res, 503, { error: { code: 'busy', message: 'Too many requests in flight; retry' } }, { 'retry-after': '1' });
      req.resume();
      return;
    }
    let status: number;
    let role = '-';
    this.inFlight++;
    try {
      role = this.caller(req.socket as TLSSocket).role;
      if (req.rawHeaders.length / 2 > this.maxHeaders) throw new InspectorError('too-many-headers', `Request has more than ${this.maxHeaders} header fields`);
      const url = new URL(req.url ?? '/', 'https://inspector');
      let result: unknown;
      if (url.pathname === '/v1/inspect') {
        if (req.method !== 'POST') throw new InspectorError('bad-request', '/v1/inspect takes POST');
        result = await this.inspect(url, req);
      } else if (url.pathname === '/v1/health') {
        if (req.method !== 'GET') throw new InspectorError('bad-request', '/v1/health takes GET');
        result = { ok: true, domain: this.opts.domain, role, dlp: Boolean(this.engine.config.dlp), av: Boolean(this.engine.config.av) };
      } else {
        throw new InspectorError('not-found', `No endpoint ${url.pathname}`);
      }
      status = 200;
      this.send(res, 200, result);
    } catch (err) {
      const e = err instanceof InspectorError ? err : new InspectorError('internal', 'Internal error');
      status = e.status;
      // the name and where, never the message: a parser's message could quote the content
      if (!(err instanceof InspectorError)) this.opts.log?.(`inspector: internal error: ${(err as Error).name ?? 'error'} ${((err as Error).stack ?? '').split('\n').slice(1, 4).map((l) => l.trim()).join(' | ')}`);
      if (e.code === 'too-large') res.setHeader('connection', 'close');
      this.send(res, e.status, { error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } });
      req.resume();
    } finally {
      this.inFlight--;
    }
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
