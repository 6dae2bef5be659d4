/**
 * The abuse-report HTTP endpoint of the receiving organisation, for a web
 * form or a mail-client button ("report as abuse"): the client posts the
 * received message as is; the server verifies its chain, identifies the
 * sending organisation and token, builds the ARF report and, when asked
 * (`?send=1`) and configured, submits it through the gateway.
 *
 * `POST /v1/abuse/report[?send=1][&comment=…][&rcpt=…]`, body: the message
 * (`message/rfc822`) → 200 `{sealingDomain, abuseContact, trackingToken,
 * messageId?, chain, report, sent, response?}`; errors `{error: {code,
 * message}}` with 400 (unreadable), 422 (chain does not verify, no seal),
 * 413 (too large), 503 (a bundle or the gateway unavailable).
 * `GET /v1/health` → `{ok: true}`.
 *
 * It is meant for the organisation's own users: bind it to an internal
 * address, and set `bearerToken` when the network is not trusted.
 */
import { requestUrl } from '../net/request-target';
import { secretsEqual } from '../crypto/compare';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { PeerEntry } from '../directory/directory';
import { faultWhere, readBody, RequestRefused, sendJson } from '../net/https-server';
import { Limit } from '../net/limit';
import { LISTENER_DEFAULTS, type ListenerLimits, capConnections, droppedConnectionsLog, listenerOptions } from '../net/listener-limits';
import { AbuseError } from './errors';
import { buildAbuseReport, identifyReportedMessage } from './report';
import { type SubmitSettings, submitReport } from './submit';

export interface ReportServerOptions {
  readonly directory: { lookup(domain: string): Promise<PeerEntry> };
  /** The reporting organisation's abuse desk (From: of the reports). */
  readonly from: string;
  readonly reportingMta: string;
  /**
   * This organisation's domain: only copies it received are reported (the newest seal its own, binding the
   * recipient); copies its gateway delivered in transparent mode (plain mail clients) included.
   */
  readonly ownDomain: string;
  readonly host: string;
  readonly port: number;
  /** Where `?send=1` submits; without it `send` is refused. */
  readonly submit?: SubmitSettings;
  /** Required as `authorization: Bearer …` when set. */
  readonly bearerToken?: string;
  readonly maxBytes?: number;
  /** Reports read and answered at once (default REPORT_SERVER_IN_FLIGHT); over it: 503 busy, retry. */
  readonly maxInFlight?: number;
  readonly now?: () => Date;
  readonly log?: (line: string) => void;
  /** The listener's limits; each one not given: REPORT_SERVER_LISTENER. */
  readonly listener?: Partial<ListenerLimits>;
}

export interface ReportServer {
  readonly port: number;
  close(): Promise<void>;
}

/** The abuse endpoint's listener: a message within a minute, 100 connections (an internal service for a few people). */
export const REPORT_SERVER_LISTENER: ListenerLimits = {
  ...LISTENER_DEFAULTS,
  requestTimeoutMs: 60000,
  idleTimeoutMs: 120000,
  maxConnections: 100,
};

/**
 * Reports in flight at once: each holds its message (up to maxBytes) in memory while it is read and
 * checked, so 100 connections posting 25 MB each would hold 2.5 GB; the ones over this are answered
 * 503 busy with retry-after, as the JSON services answer (src/net/https-server.ts).
 */
export const REPORT_SERVER_IN_FLIGHT = 4;

const STATUS: Record<string, number> = { format: 400, chain: 422, foreign: 422, refused: 422, directory: 503, unavailable: 503 };

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } });
}

/** The posted message, at most `max` bytes (the shared bounded read; a larger one is answered 413 and its connection closed). */
async function messageOf(req: IncomingMessage, res: ServerResponse, max: number): Promise<Buffer | undefined> {
  try {
    return await readBody(req, max);
  } catch (err) {
    if (!(err instanceof RequestRefused)) throw err;
    if (err.code === 'too-large') {
      res.setHeader('connection', 'close');
      fail(res, 413, 'too-large', `The message is larger than ${max} bytes`);
    } else {
      fail(res, 400, 'format', err.message);
    }
    return undefined;
  }
}

export async function startReportServer(opts: ReportServerOptions): Promise<ReportServer> {
  const max = opts.maxBytes ?? 25 * 1024 * 1024;
  const now = opts.now ?? (() => new Date());
  const log = opts.log ?? (() => undefined);
  const inFlight = new Limit(opts.maxInFlight ?? REPORT_SERVER_IN_FLIGHT);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = requestUrl(req.url, 'http://localhost');
    if (!url) return fail(res, 400, 'format', 'Bad request target');
    if (opts.bearerToken !== undefined) {
      const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      if (!secretsEqual(given, opts.bearerToken)) return fail(res, 401, 'unauthenticated', 'A valid bearer token is required');
    }
    if (url.pathname === '/v1/health')
      return req.method === 'GET' ? sendJson(res, 200, { ok: true }) : fail(res, 405, 'method', `Method "${req.method}" not allowed`);
    if (url.pathname !== '/v1/abuse/report') return fail(res, 404, 'not-found', `No endpoint "${url.pathname}"`);
    if (req.method !== 'POST') return fail(res, 405, 'method', `Method "${req.method}" not allowed`);
    const release = inFlight.tryAcquire();
    if (!release) {
      res.setHeader('retry-after', '1');
      res.setHeader('connection', 'close'); // its body is not read
      return fail(res, 503, 'busy', 'Too many reports in flight; retry');
    }
    try {
      return await report(req, res, url);
    } finally {
      release();
    }
  };
  const report = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const body = await messageOf(req, res, max);
    if (!body) return undefined;
    if (body.length === 0) return fail(res, 400, 'format', 'Post the reported message as the request body');
    const send = url.searchParams.get('send') === '1';
    if (send && !opts.submit) return fail(res, 400, 'format', 'Cannot send: this endpoint has no gateway to submit through');
    try {
      const rcpt = url.searchParams.get('rcpt') ?? undefined;
      const reported = await identifyReportedMessage(body, {
        lookup: (d) => opts.directory.lookup(d),
        ownDomain: opts.ownDomain,
        ...(rcpt ? { recipient: rcpt } : {}),
      });
      const comment = url.searchParams.get('comment') ?? undefined;
      const report = await buildAbuseReport({
        reported,
        from: opts.from,
        reportingMta: opts.reportingMta,
        now: now(),
        ...(rcpt ? { originalRcptTo: rcpt } : {}),
        ...(comment ? { comment: comment.slice(0, 2000) } : {}),
      });
      const sent =
        send && opts.submit ? await submitReport(report, { from: opts.from, to: reported.abuseContact }, opts.submit) : undefined;
      log(`abuse report for ${reported.sealingDomain}${sent ? ` sent to ${reported.abuseContact}` : ''}`);
      sendJson(res, 200, {
        sealingDomain: reported.sealingDomain,
        abuseContact: reported.abuseContact,
        trackingToken: reported.trackingToken,
        ...(reported.messageId ? { messageId: reported.messageId } : {}),
        chain: reported.chainSummary,
        report: report.toString('utf8'),
        sent: sent !== undefined,
        ...(sent ? { response: sent.response } : {}),
      });
    } catch (err) {
      if (err instanceof AbuseError) return fail(res, STATUS[err.code] ?? 422, err.code, err.message);
      throw err;
    }
  };
  // the shared listener limits (src/net/listener-limits.ts): a message of up to maxBytes within a minute
  const limits: ListenerLimits = { ...REPORT_SERVER_LISTENER, ...opts.listener };
  const server: Server = createServer(listenerOptions(limits), (req, res) => {
    handle(req, res).catch((err: unknown) => {
      // the name and frames only: a parser's message could quote the reported mail (as elsewhere: faultWhere)
      log(`abuse endpoint fault: ${faultWhere(err)}`);
      if (!res.headersSent) fail(res, 500, 'internal', 'Internal error');
      else res.destroy();
    });
  });
  capConnections(server, limits, droppedConnectionsLog('abuse endpoint', limits.maxConnections, log));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
