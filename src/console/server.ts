/**
 * `ssmax console`: the organisation's web console (docs/console.md). An
 * HTTPS server that requires a client certificate: the administrator's own,
 * issued by the organisation's CA, validated with the one PKI validation
 * function (chain, validity, CRLs, usage), role admin or disclosure. Pages
 * are rendered on the server (html.ts: every value escaped), no script is
 * sent, every POST carries the session's CSRF token. The console holds no
 * key: it calls keyd on the administrator's behalf (keyd validates their
 * certificate again and audits them), reads the services' health and
 * metrics, and works on the gateway's quarantine store as `ssmax quarantine`.
 */
import { requestUrl } from '../net/request-target';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LISTENER_DEFAULTS, type ListenerLimits, capConnections, droppedConnectionsLog, listenerOptions } from '../net/listener-limits';
import { type Server, createServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { ClientCertificateAuth, ClientCertificateError, type ClientIdentity } from '../pki/client-auth';
import { CONSOLE_LOGIN_ROLES } from '../keyd/on-behalf';
import { CrlFiles } from '../pki/crl-files';
import { readSettingFile } from '../config/ini';
import { closeGracefully, listen } from '../net/https-json';
import { ConsoleKeyd } from './backends';
import type { ConsoleConfig } from './config';
import type { Html } from './html';
import { type Key, type Lang, pickLang, t } from './i18n';
import { type PageContext, type Page, PAGES, renderError, renderPage } from './pages';
import { LANG_COOKIE, SECURITY_HEADERS, SESSION_COOKIE, Sessions, cookie, csrfOk, parseCookies, parseForm } from './security';
import { STYLESHEET } from './style';
import { faultWhere, readBody, RequestRefused } from '../net/https-server';

/** The largest POST body (a pasted report); more is refused with 413. */
export const MAX_FORM_BYTES = 1 << 20;

export interface ConsoleOptions {
  readonly config: ConsoleConfig;
  readonly log?: (line: string) => void;
  readonly clock?: () => Date;
}

/** A refusal the console shows as a page (status and text), never a stack trace. */
export class ConsoleRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ConsoleRefusal';
  }
}

export class ConsoleServer {
  readonly server: Server;
  private readonly auth: ClientCertificateAuth;
  private readonly sessions: Sessions;
  readonly keyd: ConsoleKeyd;
  private inFlight = 0;

  constructor(private readonly opts: ConsoleOptions) {
    const c = opts.config;
    const clock = opts.clock ?? (() => new Date());
    const crls = new CrlFiles(c.pki.crlFiles, (f) => readSettingFile(c.file, 'pki.crls', f)); // read when they change
    this.auth = new ClientCertificateAuth({
      roots: c.pki.roots,
      crls: () => crls.current(),
      roles: CONSOLE_LOGIN_ROLES,
      clock,
      issuers: [c.pki.orgCa],
    });
    this.sessions = new Sessions(c.sessionMinutes * 60000);
    this.keyd = new ConsoleKeyd(c.keyd);
    // a release waits for the gateway's answer (its SMTP timeouts: up to 60 s of silence a step): ten minutes without traffic
    const limits: ListenerLimits = { ...LISTENER_DEFAULTS, idleTimeoutMs: 600000, ...c.listener };
    this.server = createServer(
      {
        cert: c.tls.cert,
        key: c.tls.key,
        ca: [...c.tls.clientCas],
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        ...listenerOptions(limits),
        maxHeaderSize: 16384,
      },
      (req, res) => {
        void this.handle(req, res);
      },
    );
    capConnections(
      this.server,
      limits,
      droppedConnectionsLog('console', limits.maxConnections, (l) => opts.log?.(l)),
    );
  }

  async listen(): Promise<number> {
    return listen(this.server, this.opts.config.host, this.opts.config.port);
  }

  async close(): Promise<void> {
    await closeGracefully(this.server, () => this.inFlight, 3000);
    this.keyd.close();
    await PAGES.quarantine.close?.();
  }

  private send(
    res: ServerResponse,
    status: number,
    type: string,
    body: string | Html,
    extra: Record<string, string | string[]> = {},
  ): void {
    if (res.headersSent) return;
    const data = Buffer.from(String(body), 'utf8');
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': data.length, ...extra });
    res.end(data);
  }

  /** A posted form, at most MAX_FORM_BYTES (the shared bounded read: src/net/https-server.ts). */
  private async readForm(req: IncomingMessage): Promise<Map<string, string>> {
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      req.resume();
      throw new ConsoleRefusal(415, 'Forms only (application/x-www-form-urlencoded)');
    }
    let body: Buffer;
    try {
      body = await readBody(req, MAX_FORM_BYTES);
    } catch (err) {
      if (err instanceof RequestRefused)
        throw new ConsoleRefusal(err.status, err.code === 'too-large' ? `Form over ${MAX_FORM_BYTES} bytes` : err.message);
      throw err;
    }
    return parseForm(body.toString('utf8'));
  }

  private identify(socket: TLSSocket): { identity: ClientIdentity; der: Buffer } {
    const identity = this.auth.identify(socket);
    return { identity, der: socket.getPeerCertificate().raw };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.inFlight++;
    const started = performance.now();
    const cookies = parseCookies(req.headers.cookie);
    const lang: Lang = pickLang(cookies.get(LANG_COOKIE), req.headers['accept-language']);
    let url = new URL('https://console/');
    let status = 200;
    try {
      // only origin-form targets (/path?query); anything else (absolute, authority, malformed) is refused
      const parsed = requestUrl(req.url, 'https://console');
      if (!parsed) throw new ConsoleRefusal(400, 'Bad request target');
      url = parsed;
      if (url.pathname === '/static/console.css' && req.method === 'GET') {
        this.send(res, 200, 'text/css; charset=utf-8', STYLESHEET, { 'cache-control': 'max-age=3600' });
        return;
      }
      let who: { identity: ClientIdentity; der: Buffer };
      try {
        who = this.identify(req.socket as TLSSocket);
      } catch (err) {
        if (!(err instanceof ClientCertificateError)) throw err;
        status = 403;
        req.resume();
        this.send(
          res,
          403,
          'text/html; charset=utf-8',
          renderError(lang, 403, t(lang, 'forbiddenTitle'), t(lang, 'forbidden', { why: err.message })),
        );
        return;
      }
      const fingerprint = createHash('sha256').update(who.der).digest('hex');
      const { session, fresh } = this.sessions.get(cookies.get(SESSION_COOKIE), fingerprint);
      const setCookies = fresh ? [cookie(SESSION_COOKIE, session.id)] : [];
      if (url.pathname === '/lang' && req.method === 'GET') {
        const to = url.searchParams.get('to') === 'ja' ? 'ja' : 'en';
        const back = url.searchParams.get('back') ?? '/';
        // a path of this console only: never //host (another site) nor anything with a scheme
        const location = /^\/(?![/\\])[A-Za-z0-9/_-]*$/.test(back) ? back : '/';
        status = 303;
        this.send(res, 303, 'text/plain; charset=utf-8', '', {
          location,
          'set-cookie': [...setCookies, cookie(LANG_COOKIE, to, 365 * 86400)],
        });
        return;
      }
      const name = url.pathname === '/' ? 'overview' : url.pathname.slice(1).split('/')[0]!;
      const page: Page | undefined = Object.prototype.hasOwnProperty.call(PAGES, name) ? PAGES[name as keyof typeof PAGES] : undefined;
      if (!page || !/^\/[a-z]*(\/[a-z]+)?$/.test(url.pathname)) throw new ConsoleRefusal(404, t(lang, 'notFound'));
      if (!page.roles.includes(who.identity.role)) throw new ConsoleRefusal(403, t(lang, 'disclosureOnly'));
      const ctx: PageContext = {
        lang,
        identity: who.identity,
        csrf: session.csrf,
        config: this.opts.config,
        url,
        path: url.pathname,
        keyd: this.keyd.for(who.der),
        clock: this.opts.clock ?? (() => new Date()),
        t: (key: Key, vars?: Record<string, string | number>) => t(lang, key, vars),
        log: this.opts.log ?? (() => undefined),
      };
      let body: Html;
      if (req.method === 'POST') {
        const form = await this.readForm(req);
        if (
          !csrfOk(
            session,
            form.get('csrf'),
            { origin: req.headers.origin, 'sec-fetch-site': req.headers['sec-fetch-site'] as string | undefined },
            `https://${String(req.headers.host ?? '')}`,
          )
        ) {
          this.opts.log?.(
            `console: POST ${url.pathname} refused (CSRF): origin=${String(req.headers.origin ?? '-').slice(0, 100)} sec-fetch-site=${String(req.headers['sec-fetch-site'] ?? '-').slice(0, 20)} token=${form.has('csrf') ? 'wrong' : 'missing'} session=${fresh ? 'new' : 'known'}`,
          );
          throw new ConsoleRefusal(403, t(lang, 'badCsrf'));
        }
        const action = url.pathname.split('/')[2] ?? '';
        if (!page.post) throw new ConsoleRefusal(405, t(lang, 'notFound'));
        body = await page.post(ctx, action, form);
      } else if (req.method === 'GET' || req.method === 'HEAD') {
        req.resume();
        if (url.pathname.split('/').length > 2) throw new ConsoleRefusal(404, t(lang, 'notFound'));
        body = await page.get(ctx);
      } else {
        req.resume();
        throw new ConsoleRefusal(405, 'GET or POST');
      }
      this.send(
        res,
        200,
        'text/html; charset=utf-8',
        renderPage(ctx, name as keyof typeof PAGES, body),
        setCookies.length ? { 'set-cookie': setCookies } : {},
      );
    } catch (err) {
      const refusal = err instanceof ConsoleRefusal ? err : undefined;
      status = refusal?.status ?? 500;
      if (!refusal) this.opts.log?.(`console: internal error: ${faultWhere(err)}`);
      this.send(
        res,
        status,
        'text/html; charset=utf-8',
        renderError(lang, status, t(lang, 'error'), refusal?.message ?? t(lang, 'failed', { why: 'internal error (see the console log)' })),
      );
    } finally {
      this.inFlight--;
      this.opts.log?.(`${req.method} ${url.pathname} ${status} ${(performance.now() - started).toFixed(1)}ms`);
    }
  }
}
