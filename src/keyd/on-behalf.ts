/**
 * Acting on behalf of an administrator (docs/console.md): the web console
 * (`ssmax console`) calls keyd with its own client certificate, role
 * `console`, which alone may do nothing, and names in the header
 * `SSMAX-On-Behalf-Of` the certificate (base64 DER) an administrator logged
 * in with over mutual TLS. keyd validates that certificate itself — chain to
 * the roots, validity, CRLs, TLS-client usage, role admin or disclosure,
 * issued by this organisation's CA — and the operation then runs, and is
 * audited, as that administrator, "via" the console. The header from any
 * other role is refused: a gateway cannot borrow an administrator.
 */
import { parseCertificate } from '../pki/certificate';
import type { Role } from '../pki/oids';
import { type ValidationCache, validateCertificate } from '../pki/validate';
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
  private readonly orgCaFingerprint: string;

  constructor(private readonly opts: OnBehalfOptions) {
    this.orgCaFingerprint = parseCertificate(opts.orgCa).fingerprint;
  }

  /** The actor a request runs as: `caller` itself without the header; the named administrator (via the console) with it. */
  actor(caller: Actor, header: string | string[] | undefined): Actor {
    if (header === undefined) return caller;
    if (caller.role !== 'console') throw new KeydError('forbidden', `Role "${caller.role}" may not act on behalf of another certificate`);
    if (Array.isArray(header) || header.length > MAX_HEADER_CHARS || !/^[A-Za-z0-9+/]+={0,2}$/.test(header))
      throw new KeydError('bad-request', `${ON_BEHALF_HEADER} must be one certificate, base64 DER`);
    const v = validateCertificate({
      leaf: new Uint8Array(Buffer.from(header, 'base64')),
      intermediates: [this.opts.orgCa],
      roots: this.opts.roots,
      crls: this.opts.crls(),
      use: 'tls-client',
      roles: CONSOLE_LOGIN_ROLES,
      time: this.opts.clock(),
      ...(this.opts.cache ? { cache: this.opts.cache } : {}),
    });
    if (v.status !== 'valid' || !v.role)
      throw new KeydError('unauthenticated', `The administrator's certificate is refused: ${v.status !== 'valid' ? v.message : 'no role'}`);
    if (v.path[1]?.fingerprint !== this.orgCaFingerprint)
      throw new KeydError('unauthenticated', "The administrator's certificate is not issued by this organisation's CA");
    return { role: v.role, name: `${v.leaf.subject} #${v.leaf.serial} via ${caller.name}`, via: caller.name };
  }
}
