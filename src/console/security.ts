/**
 * The console's web security (docs/console.md): sessions bound to the
 * administrator's client certificate, a CSRF token per session checked on
 * every POST (with the Origin / Sec-Fetch-Site of the request), cookies
 * Secure, HttpOnly, SameSite=Strict, and the response headers every page
 * carries (a Content-Security-Policy allowing nothing but this origin's
 * stylesheet: no script at all, no frames, forms to this origin only).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { secretsEqual } from '../crypto/compare';

export const SESSION_COOKIE = 'ssmax_console';
export const LANG_COOKIE = 'ssmax_lang';

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on the console's own forms
  'referrer-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

/** A cookie as the console sets it: Secure, HttpOnly, SameSite=Strict, path /. */
export function cookie(name: string, value: string, maxAgeSeconds?: number): string {
  return `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=Strict${maxAgeSeconds !== undefined ? `; Max-Age=${maxAgeSeconds}` : ''}`;
}

/** The cookies of a request (the first of each name; at most 32 looked at). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').slice(0, 4096).split(';').slice(0, 32)) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

export interface Session {
  readonly id: string;
  /** SHA-256 of the client certificate the session belongs to. */
  readonly certificate: string;
  readonly csrf: string;
  expires: number;
}

/**
 * Sessions in memory (the console keeps no state on disk): one per client
 * certificate and cookie; a cookie presented with another certificate is
 * ignored and a new session made. Lifetime `ttlMs` from the last request.
 */
export class Sessions {
  private readonly sessions = new Map<string, Session>();
  private readonly key = randomBytes(32);

  constructor(
    private readonly ttlMs: number,
    private readonly max = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The session of `cookieValue` for this certificate, or a new one (`fresh`: set its cookie). */
  get(cookieValue: string | undefined, certificate: string): { session: Session; fresh: boolean } {
    const now = this.now();
    const s = cookieValue ? this.sessions.get(cookieValue) : undefined;
    if (s && s.certificate === certificate && s.expires > now) {
      s.expires = now + this.ttlMs;
      return { session: s, fresh: false };
    }
    if (this.sessions.size >= this.max) this.sweep(now);
    const id = randomBytes(24).toString('base64url');
    const session: Session = {
      id,
      certificate,
      csrf: createHmac('sha256', this.key).update(id).digest('base64url'),
      expires: now + this.ttlMs,
    };
    this.sessions.set(id, session);
    return { session, fresh: true };
  }

  private sweep(now: number): void {
    for (const [id, s] of this.sessions) if (s.expires <= now) this.sessions.delete(id);
    // still full: the oldest go (Map keeps insertion order)
    for (const id of this.sessions.keys()) {
      if (this.sessions.size < this.max) break;
      this.sessions.delete(id);
    }
  }
}

/** Whether a POST may proceed: the form's token equals the session's, and the browser does not say it came from elsewhere. */
export function csrfOk(
  session: Session,
  formToken: string | undefined,
  headers: { origin?: string | undefined; 'sec-fetch-site'?: string | undefined },
  ownOrigin: string,
): boolean {
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  if (headers.origin !== undefined && headers.origin !== ownOrigin) return false;
  if (typeof formToken !== 'string') return false;
  return secretsEqual(formToken, session.csrf);
}

/** An application/x-www-form-urlencoded body: the first value of each field (at most 64 fields). */
export function parseForm(body: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of body.split('&').slice(0, 64)) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const dec = (s: string) => {
      try {
        return decodeURIComponent(s.replace(/\+/g, ' '));
      } catch {
        return '';
      }
    };
    const name = dec(eq < 0 ? pair : pair.slice(0, eq));
    if (!out.has(name)) out.set(name, dec(eq < 0 ? '' : pair.slice(eq + 1)));
  }
  return out;
}
