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
 *   POST /v1/inspect
 *        body: the envelope as one line of JSON, {direction, from, rcpts, release?},
 *        a line feed, then the message → {verdict?, decision, quarantined?, capsule?}
 *        (capsule: a release's entry moved to a newer key version, src/inspect/held-keys.ts)
 *
 * The envelope travels in the body, not the URL: an address the gateway took
 * (a quoted local part with a space, a long one) and a thousand recipients
 * fit there, where a query string would meet the header block limit (431) or
 * an address pattern (400) — a 4xx the sender would retry for days.
 *   POST /v1/inspect?direction=outbound|inbound&from=A&rcpt=R…[&release=ID]
 *        deprecated, the form of older gateways (body: the message only), still taken
 *        with its old checks so that gateways and inspector may be upgraded in any order
 *   POST /v1/inspect?wrapped=1&arrival=HEX
 *        wrapped: the same, for a plaintext the gateway encrypted only to send it here (a plain
 *        client's submission, a plaintext arrival): held, its entry is released as the plaintext it
 *        was; arrival: the message's key across the sender's retries (64 hex digits), a hold of
 *        a message held under it answers with that entry (both ignored by an earlier inspector)
 *   POST /v1/released-plaintext
 *        body: {"release": "<quarantine id> <token>"} → {message?} (base64): the plaintext of a held
 *        plain submission (a `wrapped` outbound entry) whose release is under way, opened from the
 *        entry as the store keeps it; {} for any other release. Read only: the release is honoured,
 *        once, by the POST /v1/inspect that follows
 *   GET  /v1/health → {ok, domain, role, dlp, av}
 */
import { requestUrl } from '../net/request-target';
import type { IncomingMessage } from 'node:http';
import type { Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { JsonHttpsServer, readBody, type RequestContext } from '../net/https-server';
import type { Capsule } from '../crypto';
import type { LocalInspector } from '../inspect/engine';
import { capsuleFor, capsulesOf, checkMessage } from '../mail/message-checks';
import { GatewayError, replyNameOf } from '../mail/replies';
import { MAX_RECIPIENTS } from '../chain/recipients';
import { ClientCertificateAuth, ClientCertificateError, type ClientIdentity } from '../pki/client-auth';
import type { ValidationCache } from '../pki/validate';
import { type InspectEnvelope as RequestEnvelope, RELEASED_PLAINTEXT_PATH } from './client';

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

/** Recipients of one request at most: the gateway's own limit per transaction (452 4.5.3 beyond it). */
const MAX_RCPTS = MAX_RECIPIENTS;
/**
 * The envelope line at most (bytes): a thousand recipients of an SMTP command line
 * each (Haraka's line_length) and a From of a header field's length, JSON-escaped,
 * fit with room. It comes on top of max_body_bytes, which bounds the message.
 */
export const MAX_ENVELOPE_BYTES = 2 * 1024 * 1024;
const RELEASE_ID = /^q-[0-9a-z]+-[0-9a-f]{12} [0-9a-f]{24}$/;
/** An envelope address of the deprecated query form: 1-254 printable characters, no spaces or angle brackets (as before). */
const LEGACY_ADDRESS = /^[!-;=?-~\u0080-\uffff]{1,254}$/;

/** A GatewayError of the engine, as this API's error: temporary ⇒ 503 unavailable (naming quarantineFull), final ⇒ 422 refused naming the reply. */
function fromEngine(err: unknown): unknown {
  if (!(err instanceof GatewayError)) return err;
  const reply = replyNameOf(err.reply);
  // a temporary decision of the inspector's own (its quarantine full) names its reply, for the gateway to give it as it is
  if (err.temporary) return new InspectorError('unavailable', err.message, reply === 'quarantineFull' ? { reply } : undefined);
  if (!reply) return new InspectorError('unavailable', err.message);
  return new InspectorError('refused', err.message, { reply });
}

/** A request's envelope and message, as the gateway sent them (src/inspector/client.ts envelopeBody). */
export type InspectEnvelope = RequestEnvelope & { readonly message: Buffer };

/**
 * The deprecated request form of gateways before the envelope moved into the body:
 * `POST /v1/inspect?direction=…&from=…&rcpt=…[&release=…]`, the whole body the message. Taken
 * with its old checks, so that an inspector upgraded first still serves the older gateways
 * (docs/operations.md, "Upgrading"); a request whose URL has `direction=` is read so.
 */
export function readLegacyEnvelope(q: URLSearchParams, body: Buffer): InspectEnvelope {
  const direction = q.get('direction');
  if (direction !== 'outbound' && direction !== 'inbound') throw new InspectorError('bad-request', 'direction must be outbound or inbound');
  const from = q.get('from') ?? '';
  if (!LEGACY_ADDRESS.test(from)) throw new InspectorError('bad-request', 'from must be an address');
  const rcpts = q.getAll('rcpt');
  if (rcpts.length === 0 || rcpts.length > MAX_RCPTS || !rcpts.every((r) => LEGACY_ADDRESS.test(r)))
    throw new InspectorError('bad-request', `rcpt must be 1 to ${MAX_RCPTS} addresses`);
  const release = q.get('release');
  if (release !== null && !RELEASE_ID.test(release))
    throw new InspectorError('bad-request', 'release must be a release field: a quarantine id and a token');
  if (body.length === 0) throw new InspectorError('bad-request', 'the message (request body) is empty');
  return { direction, from, rcpts, ...(release !== null ? { release } : {}), message: body };
}

/**
 * The body of POST /v1/inspect: one line of JSON (the envelope), a line feed,
 * the message. The addresses are taken as the gateway took them (any string
 * it accepted: a quoted local part with spaces too); only their number and
 * the envelope's size are bounded. A malformed envelope is 400 bad-request
 * naming the field: a fault of the gateway, never of the message.
 */
export function readEnvelope(body: Buffer): InspectEnvelope {
  const end = body.subarray(0, MAX_ENVELOPE_BYTES + 1).indexOf(0x0a);
  if (end < 0)
    throw new InspectorError(
      'bad-request',
      `the body must begin with the envelope (one line of JSON, at most ${MAX_ENVELOPE_BYTES} bytes)`,
    );
  let env: unknown;
  try {
    env = JSON.parse(body.subarray(0, end).toString('utf8'));
  } catch {
    throw new InspectorError('bad-request', 'the envelope line is not JSON');
  }
  if (!env || typeof env !== 'object' || Array.isArray(env)) throw new InspectorError('bad-request', 'the envelope must be a JSON object');
  const e = env as Record<string, unknown>;
  const known = new Set(['direction', 'from', 'rcpts', 'release']);
  const unknown = Object.keys(e).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new InspectorError('bad-request', `unknown envelope field ${JSON.stringify(unknown[0]!.slice(0, 40))}`);
  if (e.direction !== 'outbound' && e.direction !== 'inbound')
    throw new InspectorError('bad-request', 'direction must be outbound or inbound');
  if (typeof e.from !== 'string' || e.from === '') throw new InspectorError('bad-request', 'from must be an address (a non-empty string)');
  const rcpts = e.rcpts;
  if (
    !Array.isArray(rcpts) ||
    rcpts.length === 0 ||
    rcpts.length > MAX_RCPTS ||
    !rcpts.every((r): r is string => typeof r === 'string' && r !== '')
  )
    throw new InspectorError('bad-request', `rcpts must be 1 to ${MAX_RCPTS} addresses (non-empty strings)`);
  if (e.release !== undefined && (typeof e.release !== 'string' || !RELEASE_ID.test(e.release)))
    throw new InspectorError('bad-request', 'release must be a release field: a quarantine id and a token');
  return {
    direction: e.direction,
    from: e.from,
    rcpts,
    ...(e.release !== undefined ? { release: e.release } : {}),
    message: body.subarray(end + 1),
  };
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
    // the deprecated query form (an older gateway) when the URL names the direction, else the envelope in the body
    const legacy = url.searchParams.has('direction');
    const body = await readBody(req, this.opts.maxBodyBytes + (legacy ? 0 : MAX_ENVELOPE_BYTES));
    const { direction, from, rcpts, release, message } = legacy ? readLegacyEnvelope(url.searchParams, body) : readEnvelope(body);
    if (message.length > this.opts.maxBodyBytes) throw new InspectorError('too-large', `Message over ${this.opts.maxBodyBytes} bytes`);
    const arrival = legacy ? undefined : (url.searchParams.get('arrival') ?? undefined);
    if (arrival !== undefined && !/^[0-9a-f]{64}$/.test(arrival)) throw new InspectorError('bad-request', 'arrival must be 64 hex digits');
    try {
      const capsule = this.ownCapsule(message);
      return await this.engine.inspect({
        direction,
        message,
        capsule,
        from: from.toLowerCase(),
        rcpts: rcpts.map((r) => r.toLowerCase()),
        ...(release ? { releaseId: release } : {}),
        ...(!legacy && url.searchParams.get('wrapped') === '1' ? { wrapped: true as const } : {}),
        ...(arrival !== undefined ? { arrival } : {}),
      });
    } catch (err) {
      throw fromEngine(err);
    }
  }

  private async releasedPlaintext(req: IncomingMessage): Promise<unknown> {
    const body = await readBody(req, MAX_ENVELOPE_BYTES);
    let release: unknown;
    try {
      release = (JSON.parse(body.toString('utf8')) as { release?: unknown } | null)?.release;
    } catch {
      throw new InspectorError('bad-request', 'the body must be {"release": "<quarantine id> <token>"}');
    }
    if (typeof release !== 'string' || !RELEASE_ID.test(release))
      throw new InspectorError('bad-request', 'release must be a release field: a quarantine id and a token');
    try {
      const plaintext = await this.engine.releasedPlaintext(release);
      return plaintext ? { message: plaintext.toString('base64') } : {};
    } catch (err) {
      throw fromEngine(err);
    }
  }

  private async handle(req: IncomingMessage, ctx: RequestContext): Promise<unknown> {
    ctx.role = this.caller(req.socket as TLSSocket).role;
    this.http.checkHeaderCount(req);
    const url = requestUrl(req.url, 'https://inspector');
    if (!url) throw new InspectorError('bad-request', 'Bad request target');
    if (url.pathname === '/v1/inspect') {
      if (req.method !== 'POST') throw new InspectorError('bad-request', '/v1/inspect takes POST');
      return this.inspect(url, req);
    }
    if (url.pathname === RELEASED_PLAINTEXT_PATH) {
      if (req.method !== 'POST') throw new InspectorError('bad-request', `${RELEASED_PLAINTEXT_PATH} takes POST`);
      return this.releasedPlaintext(req);
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
