/**
 * Two (or more) real organisations under one SSMAX root, each with what a
 * publisher needs (encryption-key certificate, sealing certificate, bundle
 * signer, a TLS server certificate for `ssmax.<domain>`), and a tiny HTTPS
 * server on loopback that serves whatever bundle text the test sets.
 */
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { type Server, createServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';
import { createBundle } from '../../src/pki/bundle';
import type { ParsedCertificate } from '../../src/pki/certificate';
import { createCrl } from '../../src/pki/crl';
import {
  type SigningAuthority,
  createOrgCa,
  createRootCa,
  issueBundleSignerCertificate,
  issueEncryptionKeyCertificate,
  issueSealingCertificate,
  issueTlsCertificate,
} from '../../src/pki/issue';
import { generateP256KeyPair, generateSecp256k1KeyPair, privateKeyToPem } from '../../src/pki/keys';
import type { KeyObject } from 'node:crypto';

export const DAY = 86400000;
export const HOUR = 3600000;

export interface Org {
  readonly fx: OrgFixture;
  readonly domain: string;
  readonly encV1: ParsedCertificate;
  readonly seal: ParsedCertificate;
  readonly sealKey: KeyObject;
  readonly signer: { certificate: ParsedCertificate; privateKey: KeyObject };
  readonly tls: { cert: string; key: string };
  readonly crls: string[];
}

export function wholeSecondNow(): number {
  return Math.floor(Date.now() / 1000) * 1000;
}

export function makeOrg(domain: string, root?: SigningAuthority): Org {
  const fx = provisionOrg(mkdtempSync(join(tmpdir(), 'ssmax-dir-')), { domain, ...(root ? { root } : {}) });
  const now = wholeSecondNow();
  const validity = { notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY) };
  const encV1 = issueEncryptionKeyCertificate(fx.orgCa, {
    ...validity,
    domain,
    version: 1,
    publicKey: generateSecp256k1KeyPair().publicKey,
  });
  const sealPair = generateP256KeyPair();
  const seal = issueSealingCertificate(fx.orgCa, { ...validity, domain, publicKey: sealPair.publicKey });
  const signerPair = generateP256KeyPair();
  const signer = {
    certificate: issueBundleSignerCertificate(fx.orgCa, { ...validity, domain, publicKey: signerPair.publicKey }),
    privateKey: signerPair.privateKey,
  };
  const tlsPair = generateP256KeyPair();
  const tlsCert = issueTlsCertificate(fx.orgCa, { ...validity, role: 'keyd', hosts: [`ssmax.${domain}`], publicKey: tlsPair.publicKey });
  const crl = createCrl(fx.orgCa, { entries: [], thisUpdate: new Date(now - 1000), nextUpdate: new Date(now + 30 * DAY), crlNumber: 2 });
  const rootCrl = createCrl(fx.root, { entries: [], thisUpdate: new Date(now - 1000), nextUpdate: new Date(now + 30 * DAY), crlNumber: 2 });
  return {
    fx,
    domain,
    encV1,
    seal,
    sealKey: sealPair.privateKey,
    signer,
    tls: { cert: `${tlsCert.pem}${fx.orgCa.certificate.pem}`, key: privateKeyToPem(tlsPair.privateKey) },
    crls: [crl.pem, rootCrl.pem],
  };
}

/** A bundle of `org` issued at `issuedMs`, valid for `lifetimeMs`. */
export function bundleOf(
  org: Org,
  serial: number,
  issuedMs: number,
  lifetimeMs = HOUR,
  over: { signer?: Org['signer']; id?: string; keys?: { state: 'current' | 'retired' | 'next'; certificate: ParsedCertificate }[] } = {},
): string {
  return createBundle(
    {
      domain: org.domain,
      serial,
      ...(over.id ? { id: over.id } : {}),
      issued: new Date(issuedMs),
      expires: new Date(issuedMs + lifetimeMs),
      orgCaChain: [org.fx.orgCa.certificate],
      encryptionKeys: over.keys ?? [{ state: 'current', certificate: org.encV1 }],
      sealingCertificates: [org.seal],
      crls: org.crls,
      abuseContact: `mailto:abuse@${org.domain}`,
      inboundPolicy: { encryption: 'required', seal: 'required', maxMessageBytes: 26214400 },
    },
    over.signer ?? org.signer,
  );
}

/** A signer certificate for `domain` from a CA that is not the org's (another root, same domain name). */
export function rogueSigner(domain: string): Org['signer'] {
  const now = wholeSecondNow();
  const rogueRoot = createRootCa({
    notBefore: new Date(now - 2 * DAY),
    notAfter: new Date(now + 400 * DAY),
    privateKey: generateP256KeyPair().privateKey,
    commonName: 'Rogue Root',
  });
  const rogueCa = createOrgCa(rogueRoot, {
    notBefore: new Date(now - 2 * DAY),
    notAfter: new Date(now + 399 * DAY),
    domains: [domain],
    organisation: 'Rogue',
    privateKey: generateP256KeyPair().privateKey,
  });
  const pair = generateP256KeyPair();
  return {
    certificate: issueBundleSignerCertificate(rogueCa, {
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 365 * DAY),
      domain,
      publicKey: pair.publicKey,
    }),
    privateKey: pair.privateKey,
  };
}

/** An HTTPS server serving `body` at the well-known path; can be stopped and started again on the same port. */
export class BundleServer {
  body = '';
  requests = 0;
  /** When set, answers wait for it (a fetch in flight across a re-publication). */
  hold: Promise<void> | undefined;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly tls: { cert: string; key: string }) {}

  async start(): Promise<this> {
    const server = createServer({ cert: this.tls.cert, key: this.tls.key }, (req, res) => {
      this.requests++;
      if (req.url !== '/.well-known/ssmax/bundle') {
        res.writeHead(404).end();
        return;
      }
      // the body as published when the request arrived, answered once `hold` (if set) resolves
      const body = this.body;
      void (this.hold ?? Promise.resolve()).then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  url(domain: string): string {
    return `https://ssmax.${domain}:${this.port}/.well-known/ssmax/bundle`;
  }
}
