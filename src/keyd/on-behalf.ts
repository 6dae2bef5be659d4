/**
 * Acting on behalf of an administrator (docs/console.md): the web console
 * (`ssmax console`) calls keyd with its own client certificate, role
 * `console`, which alone may do nothing, and names in the header
 * `SSMAX-On-Behalf-Of` the certificate (base64 DER) an administrator logged
 * in with over mutual TLS. keyd validates that certificate itself — chain to
 * the roots, validity, CRLs, TLS-client usage, role admin or disclosure,
 * issued by this organisation's CA: the one check of src/pki/client-auth.ts,
 * with the CRLs keyd reads for its callers — and the operation then runs, and is
 * audited, as that administrator, "via" the console. The header from any
 * other role is refused: a gateway cannot borrow an administrator.
 */
import { ClientCertificateAuth, ClientCertificateError } from '../pki/client-auth';
import type { Role } from '../pki/oids';
import type { ValidationCache } from '../pki/validate';
import { KeydError } from './errors';
import type { Actor } from './service';

export const ON_BEHALF_HEADER = 'ssmax-on-behalf-of';

/** The roles an administrator may log in to the console with (disclosure stays its own role). */
export const CONSOLE_LOGIN_ROLES: readonly Role[] = ['admin', 'disclosure'];

/** A certificate in one header line: base64 DER, at most this long (a P-256 certificate is well under 2 KB). */
const MAX_HEADER_CHARS = 8192;

export interface OnBehalfOptions {
  readonly roots: readonly string[];
  readonly crls: () => readonly string[];
  readonly orgCa: string;
  readonly clock: () => Date;
  readonly cache?: ValidationCache;
}

export class OnBehalf {
  /** The one client-certificate check (src/pki/client-auth.ts), for the certificate named in the header. */
  private readonly auth: ClientCertificateAuth;

  constructor(private readonly opts: OnBehalfOptions) {
    this.auth = new ClientCertificateAuth({
      roots: opts.roots,
      crls: opts.crls,
      roles: CONSOLE_LOGIN_ROLES,
      issuers: [opts.orgCa],
      clock: opts.clock,
      ...(opts.cache ? { cache: opts.cache } : {}),
    });
  }

  /** The actor a request runs as: `caller` itself without the header; the named administrator (via the console) with it. */
  actor(caller: Actor, header: string | string[] | undefined): Actor {
    if (header === undefined) return caller;
    if (caller.role !== 'console') throw new KeydError('forbidden', `Role "${caller.role}" may not act on behalf of another certificate`);
    if (Array.isArray(header) || header.length > MAX_HEADER_CHARS || !/^[A-Za-z0-9+/]+={0,2}$/.test(header))
      throw new KeydError('bad-request', `${ON_BEHALF_HEADER} must be one certificate, base64 DER`);
    let who: { role: Role; name: string };
    try {
      who = this.auth.identifyCertificate(Buffer.from(header, 'base64'), [this.opts.orgCa]);
    } catch (err) {
      if (err instanceof ClientCertificateError)
        throw new KeydError('unauthenticated', `The administrator's certificate is refused: ${err.reason}`);
      throw err;
    }
    return { role: who.role, name: `${who.name} via ${caller.name}`, via: caller.name };
  }
}
