/**
 * Provisions an organisation on disk, for the demo, the benchmarks and the
 * tests: SSMAX root (or a given one), an org CA constrained to the domain,
 * keyd's TLS server certificate, client certificates for each role (plus,
 * for tests, a revoked one, an expired one, and one from a foreign CA), the
 * CRLs, a master key, and a keyd config file pointing at them. Private keys
 * are written 0600.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { generateP256KeyPair } from '../crypto/ecdsa';
import { createCrl } from '../pki/crl';
import { type SigningAuthority, createOrgCa, createRootCa } from '../pki/issue';
import type { Role } from '../pki/oids';
import { issueTlsCredentials } from '../pki/tls-credentials';
import { MASTER_KEY_LENGTH, createMasterKeyFile } from '../keyd/master-key';
import { wrapOrgCaKey } from '../keyd/org-ca-key';

const DAY = 86400000;

export interface ClientCreds {
  readonly cert: string;
  readonly key: string;
}

export interface OrgFixture {
  readonly dir: string;
  readonly domain: string;
  readonly root: SigningAuthority;
  readonly orgCa: SigningAuthority;
  readonly configFile: string;
  readonly caPem: string[];
  readonly clients: Record<Role | 'revoked' | 'expired' | 'foreign', ClientCreds>;
  readonly port: number;
}

function creds(
  ca: SigningAuthority,
  role: Role,
  now: number,
  hosts: string[] | undefined,
  validity = { notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY) },
): ClientCreds & { serial: string } {
  return issueTlsCredentials(ca, role, validity, hosts);
}

/** `certDays`: validity of keyd's TLS certificate and the role client certificates (default 365). */
export function provisionOrg(
  dir: string,
  opts: {
    domain?: string;
    port?: number;
    keys?: string;
    root?: SigningAuthority;
    certDays?: number;
    /** More `[limits]` settings, e.g. `{ crypto_threads: '0' }` (keyd.ini). */
    limits?: Readonly<Record<string, string>>;
  } = {},
): OrgFixture {
  const domain = opts.domain ?? 'a.example';
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = Math.floor(Date.now() / 1000) * 1000; // certificate times have whole seconds
  const validity = { notBefore: new Date(now - 30 * DAY), notAfter: new Date(now + 3650 * DAY) };
  const caValidity = { notBefore: new Date(now - 29 * DAY), notAfter: new Date(now + 3649 * DAY) };
  const root = opts.root ?? createRootCa({ ...validity, privateKey: generateP256KeyPair().privateKey, commonName: 'SSMAX Test Root' });
  const orgCa = createOrgCa(root, {
    ...caValidity,
    domains: [domain],
    organisation: `Org ${domain}`,
    privateKey: generateP256KeyPair().privateKey,
  });
  const foreignRoot = createRootCa({ ...validity, privateKey: generateP256KeyPair().privateKey, commonName: 'Foreign Root' });
  const foreignCa = createOrgCa(foreignRoot, {
    ...caValidity,
    domains: [domain],
    organisation: 'Foreign',
    privateKey: generateP256KeyPair().privateKey,
  });

  const days = { notBefore: new Date(now - DAY), notAfter: new Date(now + (opts.certDays ?? 365) * DAY) };
  const server = creds(orgCa, 'keyd', now, [`keyd.${domain}`], days);
  const revoked = creds(orgCa, 'gateway', now, [`mx.${domain}`]);
  const clients = {
    gateway: creds(orgCa, 'gateway', now, [`mx.${domain}`], days),
    inspector: creds(orgCa, 'inspector', now, [`inspect.${domain}`], days),
    admin: creds(orgCa, 'admin', now, undefined, days),
    disclosure: creds(orgCa, 'disclosure', now, undefined),
    console: creds(orgCa, 'console', now, [`console.${domain}`], days),
    keyd: server,
    revoked,
    expired: creds(orgCa, 'gateway', now, [`mx.${domain}`], { notBefore: new Date(now - 10 * DAY), notAfter: new Date(now - DAY) }),
    foreign: creds(foreignCa, 'gateway', now, [`mx.${domain}`]),
  };
  const crl = createCrl(orgCa, {
    entries: [{ serial: revoked.serial, revokedAt: new Date(now - 1000), reason: 'keyCompromise' }],
    thisUpdate: new Date(now - 1000),
    nextUpdate: new Date(now + 7 * DAY),
    crlNumber: 1,
  });
  const rootCrl = createCrl(root, { entries: [], thisUpdate: new Date(now - 1000), nextUpdate: new Date(now + 7 * DAY), crlNumber: 1 });
  const w = (name: string, text: string) => writeFileSync(join(dir, name), text, { mode: 0o600 });
  w('root.pem', root.certificate.pem);
  w('org-ca.pem', orgCa.certificate.pem);
  const master = new Uint8Array(randomBytes(MASTER_KEY_LENGTH));
  createMasterKeyFile(join(dir, 'master.key'), master);
  // keyd's copy of the org CA key, encrypted under the master key as `ssmax setup` writes it (src/keyd/org-ca-key.ts)
  w('org-ca.key', wrapOrgCaKey(orgCa.privateKey, master));
  w('org-ca.crl.pem', crl.pem);
  w('root.crl.pem', rootCrl.pem);
  w('keyd.pem', `${server.cert}${orgCa.certificate.pem}`);
  w('keyd.key', server.key);
  const port = opts.port ?? 0;
  const configFile = join(dir, 'keyd.ini');
  w(
    'keyd.ini',
    [
      '[keyd]',
      `domain=${domain}`,
      `listen=127.0.0.1:${port}`,
      'data_dir=data',
      'master_key=master.key',
      '[tls]',
      'cert=keyd.pem',
      'key=keyd.key',
      'client_ca=org-ca.pem,root.pem',
      '[pki]',
      'roots=root.pem',
      'crls=org-ca.crl.pem,root.crl.pem',
      'org_ca=org-ca.pem',
      'org_ca_cert=org-ca.pem',
      'org_ca_key=org-ca.key',
      opts.keys ?? '[keys]\nvalidity_days=90\nrenew_before_days=14\ngrace_days=30\nschedule_seconds=60',
      '[limits]',
      'max_in_flight=256',
      'request_timeout_ms=5000',
      ...Object.entries(opts.limits ?? {}).map(([k, v]) => `${k}=${v}`),
      '',
    ].join('\n'),
  );
  return { dir, domain, root, orgCa, configFile, caPem: [orgCa.certificate.pem, root.certificate.pem], clients, port };
}
