/**
 * The HTTPS server plumbing keyd and the inspector share: a mutual-TLS server
 * with bounded header block, header count, handshake, header and request
 * times; a bound on requests in flight (over it: 503 busy, retry); a request
 * body read whole up to a byte limit (over it: 413, the connection closed);
 * JSON answers `{"error": {"code", "message", "details"?}}` for every refusal
 * and fault; a log line for each refusal or fault (method, path, status,
 * caller's role, time; never a body); graceful closing. What each endpoint
 * does, and who may call it, stays with each service.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { answerClientError } from './client-error';
import { closeGracefully, listen } from './https-json';
import { Limit } from './limit';
import { LISTENER_DEFAULTS, type ListenerLimits, capConnections, droppedConnectionsLog, listenerOptions } from './listener-limits';

/** What a service answers for an error: HTTP status, a stable code, a message (no secrets), optional details. */
export interface Refusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly details?: Readonly<Record<string, string>>;
}

type PlumbingCode = 'bad-request' | 'too-large' | 'too-many-headers';
const PLUMBING_STATUS: Record<PlumbingCode, number> = { 'bad-request': 400, 'too-large': 413, 'too-many-headers': 431 };

/** A request refused by the shared plumbing (body too large or not received whole, too many header fields). */
export class RequestRefused extends Error implements Refusal {
  constructor(
    readonly code: PlumbingCode,
    message: string,
  ) {
    super(message);
    this.name = 'RequestRefused';
  }

  get status(): number {
    return PLUMBING_STATUS[this.code];
  }
}

/** The request limits a JSON HTTPS server takes (keyd's and the inspector's [limits]): its options' limits and the body limit its routes apply. */
export type RequestLimits = Pick<
  JsonHttpsServerOptions,
  'maxInFlight' | 'requestTimeoutMs' | 'headersTimeoutMs' | 'maxHeaderBytes' | 'maxHeaders' | 'maxConnections'
> & { readonly maxBodyBytes: number };

/** Just the request limits out of a config's [limits] (which may hold other settings), for a server's options. */
export function requestLimitsOf(limits: RequestLimits): RequestLimits {
  return {
    maxBodyBytes: limits.maxBodyBytes,
    maxInFlight: limits.maxInFlight,
    requestTimeoutMs: limits.requestTimeoutMs,
    headersTimeoutMs: limits.headersTimeoutMs,
    maxHeaderBytes: limits.maxHeaderBytes,
    maxHeaders: limits.maxHeaders,
    ...(limits.maxConnections !== undefined ? { maxConnections: limits.maxConnections } : {}),
  };
}

export interface JsonHttpsServerOptions {
  readonly host: string;
  readonly port: number;
  /** The server's TLS certificate (with chain) and key (PEM). */
  readonly cert: string;
  readonly key: string;
  /** CAs whose client certificates TLS accepts at the handshake (PEM). */
  readonly clientCas: readonly string[];
  readonly maxInFlight: number;
  readonly requestTimeoutMs: number;
  /** Time to receive a request's header block (and to finish the TLS handshake); a slower client is answered 408 and dropped. */
  readonly headersTimeoutMs: number;
  /** Largest request header block (bytes; over it: 431). */
  readonly maxHeaderBytes: number;
  /** Most header fields in one request (over it: 431). */
  readonly maxHeaders: number;
  /** Open connections at most (a new one over it is closed at once); default LISTENER_DEFAULTS.maxConnections. */
  readonly maxConnections?: number;
  /** The service's name in the log line of an internal fault. */
  readonly service: string;
  /** The service's own error class: its instances are answered as they say; anything else not a RequestRefused is a 500 internal. */
  readonly refusal: (err: unknown) => Refusal | undefined;
  readonly log?: (line: string) => void;
}

/** What a route handler learns and tells: the caller's role, for the log line. */
export interface RequestContext {
  role: string;
}

/** The name and the first frames of an error, never its message (a parser's message could quote content). */
export function faultWhere(err: unknown): string {
  const e = err as Error;
  return `${e?.name ?? 'error'} ${(e?.stack ?? '')
    .split('\n')
    .slice(1, 4)
    .map((l) => l.trim())
    .join(' | ')}`;
}

/** Writes a JSON answer unless one has begun already (a parser error mid-body is answered by clientError). */
export function sendJson(res: ServerResponse, status: number, body: unknown, extra: Readonly<Record<string, string>> = {}): void {
  if (res.headersSent || res.destroyed || !res.socket || res.socket.writableEnded) return;
  const data = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': data.length, ...extra });
  res.end(data);
}

/**
 * The whole request body, at most `max` bytes (a declared or received larger
 * one: RequestRefused too-large, the rest read and discarded); a body not
 * received whole (a malformed chunked body, a closed connection) is the
 * client's fault: RequestRefused bad-request. Events, not an async iterator:
 * one less allocation chain per request.
 */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > max)
    return Promise.reject(new RequestRefused('too-large', `Request body over ${max} bytes`));
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        cleanup();
        req.resume(); // drain: the answer goes out, the rest is discarded
        reject(new RequestRefused('too-large', `Request body over ${max} bytes`));
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
      reject(new RequestRefused('bad-request', `Request body not received whole: ${err.message}`));
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

/**
 * A mutual-TLS JSON service: `route` answers one request (its result is
 * sent as 200 JSON) or throws a Refusal; everything around it is here.
 */
export class JsonHttpsServer {
  readonly server: Server;
  readonly inFlight: Limit;

  constructor(
    private readonly opts: JsonHttpsServerOptions,
    private readonly route: (req: IncomingMessage, ctx: RequestContext) => Promise<unknown>,
  ) {
    this.inFlight = new Limit(opts.maxInFlight);
    // The TLS handshake within the same time as the header block (Node's default: 120 s for a client that never finishes it).
    const limits: ListenerLimits = {
      handshakeTimeoutMs: opts.headersTimeoutMs,
      headersTimeoutMs: opts.headersTimeoutMs,
      requestTimeoutMs: opts.requestTimeoutMs,
      keepAliveTimeoutMs: 30000,
      // a request is answered within its own time and the route's (the inspector's scans: their own timeouts)
      idleTimeoutMs: opts.requestTimeoutMs + LISTENER_DEFAULTS.idleTimeoutMs,
      maxConnections: opts.maxConnections ?? LISTENER_DEFAULTS.maxConnections,
    };
    this.server = createServer(
      {
        cert: opts.cert,
        key: opts.key,
        ca: [...opts.clientCas],
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        ...listenerOptions(limits),
        noDelay: true,
        maxHeaderSize: opts.maxHeaderBytes,
      },
      (req, res) => {
        this.handle(req, res).catch(() => res.destroy());
      },
    );
    capConnections(
      this.server,
      limits,
      droppedConnectionsLog(opts.service, limits.maxConnections, (l) => opts.log?.(l)),
    );
    // One more than the limit, so that a request with too many fields is seen and refused rather than silently cut.
    this.server.maxHeadersCount = opts.maxHeaders + 1;
    // Requests Node's parser refuses (malformed, headers too large or too slow, a malformed chunked body) get a JSON answer too.
    this.server.on('clientError', (err: Error & { code?: string }, socket) => answerClientError(err, socket, opts.maxHeaderBytes));
    this.server.on('secureConnection', (s: TLSSocket) => s.setNoDelay(true));
  }

  /** Refuses (431) a request with more header fields than the limit; a route calls it once the caller is known (401 comes first). */
  checkHeaderCount(req: IncomingMessage): void {
    if (req.rawHeaders.length / 2 > this.opts.maxHeaders)
      throw new RequestRefused('too-many-headers', `Request has more than ${this.opts.maxHeaders} header fields`);
  }

  private refusalOf(err: unknown): Refusal | undefined {
    if (err instanceof RequestRefused) return err;
    try {
      return this.opts.refusal(err);
    } catch {
      return undefined; // answered as an internal fault
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const release = this.inFlight.tryAcquire();
    if (!release) {
      sendJson(res, 503, { error: { code: 'busy', message: 'Too many requests in flight; retry' } }, { 'retry-after': '1' });
      req.resume();
      return;
    }
    let status: number;
    const ctx: RequestContext = { role: '-' };
    try {
      const result = await this.route(req, ctx);
      status = 200;
      sendJson(res, 200, result);
    } catch (err) {
      const refusal = this.refusalOf(err);
      const e: Refusal = refusal ?? { status: 500, code: 'internal', message: 'Internal error' };
      status = e.status;
      if (!refusal) this.opts.log?.(`${this.opts.service}: internal error: ${faultWhere(err)}`);
      if (e.code === 'too-large') res.setHeader('connection', 'close');
      sendJson(res, e.status, { error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } });
      req.resume();
    } finally {
      release();
    }
    // Successes are for the service's own records; the process log gets refusals and faults only.
    if (status !== 200)
      this.opts.log?.(
        `${req.method} ${(req.url ?? '').split('?')[0]} ${status} role=${ctx.role} ${(performance.now() - started).toFixed(1)}ms`,
      );
  }

  listen(): Promise<number> {
    return listen(this.server, this.opts.host, this.opts.port);
  }

  /** Stops accepting, lets requests in flight finish (bounded), then resolves. */
  close(graceMs = 5000): Promise<void> {
    return closeGracefully(this.server, () => this.inFlight.active, graceMs);
  }
}
