/**
 * Mutual-TLS client authentication for SSMAX services (keyd, the inspector):
 * the client certificate TLS accepted is validated again with the one PKI
 * validation function — chain to a trusted SSMAX root, validity, CRLs (asked
 * for on each new connection; keyd, the console and the inspector give a CrlFiles, src/pki/crl-files.ts,
 * which reads a file again only when it changed), TLS-client usage, one of the allowed roles,
 * optionally a given issuing CA — and the verdict (either way) is cached on the connection for `cacheMs`.
 */
import type { TLSSocket } from 'node:tls';
import { parseCertificate } from './certificate';
import type { Role } from './oids';
import { type ValidationCache, validateCertificate } from './validate';

export interface ClientAuthOptions {
  /** Trust anchors (SSMAX roots, PEM). */
  readonly roots: readonly string[];
  /** Current CRLs (PEM); called once per new connection (or after `cacheMs`). */
  readonly crls: () => readonly string[];
  /** Roles a client may have here. */
  readonly roles: readonly Role[];
  /**
   * The CAs (PEM) one of which must have issued the client's certificate, e.g. only this
   * organisation's CA: another organisation's certificate under the same root is refused.
   * Absent: any CA under the roots.
   */
  readonly issuers?: readonly string[];
  readonly clock: () => Date;
  readonly cache?: ValidationCache;
  /** How long a connection's verdict is kept (default 60 s). */
  readonly cacheMs?: number;
}

/** Who is calling: the role and `subject #serial` (for audit and logs). */
export interface ClientIdentity {
  readonly role: Role;
  readonly name: string;
}

/** The client certificate was refused; `message` says why (never secret), `reason` the same without the lead-in. */
export class ClientCertificateError extends Error {
  constructor(
    message: string,
    readonly reason: string = message,
  ) {
    super(message);
    this.name = 'ClientCertificateError';
  }
}

type Verdict = { identity: ClientIdentity; until: number } | { error: ClientCertificateError; until: number };

export class ClientCertificateAuth {
  private readonly verdicts = new WeakMap<TLSSocket, Verdict>();
  private readonly issuers?: ReadonlySet<string>;

  constructor(private readonly opts: ClientAuthOptions) {
    if (opts.issuers) this.issuers = new Set(opts.issuers.map((pem) => parseCertificate(pem).fingerprint));
  }

  /** The caller on `socket`, or a ClientCertificateError. */
  identify(socket: TLSSocket): ClientIdentity {
    const now = this.opts.clock();
    const cached = this.verdicts.get(socket);
    if (cached && cached.until > now.getTime()) {
      if ('error' in cached) throw cached.error;
      return cached.identity;
    }
    const peer = socket.getPeerCertificate(true);
    if (!peer || !peer.raw) throw new ClientCertificateError('No client certificate');
    const chain: Buffer[] = [];
    for (
      let c = peer.issuerCertificate;
      c && c.raw && !chain.some((x) => x.equals(c!.raw)) && !c.raw.equals(peer.raw);
      c = c.issuerCertificate
    )
      chain.push(c.raw);
    const until = now.getTime() + (this.opts.cacheMs ?? 60000);
    try {
      const identity = this.identifyCertificate(peer.raw, chain, now);
      this.verdicts.set(socket, { identity, until });
      return identity;
    } catch (err) {
      if (err instanceof ClientCertificateError) this.verdicts.set(socket, { error: err, until });
      throw err;
    }
  }

  /**
   * The holder of the certificate `leaf` (DER; `intermediates`: DER or PEM
   * of the CAs it may chain through), validated as a TLS client of one of
   * the allowed roles, issued by one of `issuers` when given; or a
   * ClientCertificateError. No cache of the verdict: `identify` keeps one per
   * connection; keyd's on-behalf check (src/keyd/on-behalf.ts) calls this for
   * a certificate named in a header.
   */
  identifyCertificate(leaf: Uint8Array, intermediates: readonly (Uint8Array | string)[], now = this.opts.clock()): ClientIdentity {
    const v = validateCertificate({
      leaf: new Uint8Array(leaf),
      intermediates: intermediates.map((c) => (typeof c === 'string' ? c : new Uint8Array(c))),
      roots: this.opts.roots,
      crls: this.opts.crls(),
      use: 'tls-client',
      roles: this.opts.roles,
      time: now,
      ...(this.opts.cache ? { cache: this.opts.cache } : {}),
    });
    const refused =
      v.status !== 'valid'
        ? v.message
        : !v.role || !this.opts.roles.includes(v.role)
          ? 'no allowed role'
          : this.issuers && !this.issuers.has(v.path[1]?.fingerprint ?? '')
            ? "not issued by this organisation's CA"
            : undefined;
    if (v.status !== 'valid' || !v.role || refused) {
      const reason = refused ?? 'no role';
      throw new ClientCertificateError(`Client certificate refused: ${reason}`, reason);
    }
    return { role: v.role, name: `${v.leaf.subject} #${v.leaf.serial}` };
  }
}
