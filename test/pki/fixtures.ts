/**
 * A small SSMAX world for the PKI tests: a root, two organisation CAs (a.example,
 * b.example), CRLs and end entities, at fixed times (the clock is injected).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParsedCertificate } from '../../src/pki/certificate';
import { type ParsedCrl, type RevocationEntry, createCrl } from '../../src/pki/crl';
import {
  type SigningAuthority,
  createOrgCa,
  createRootCa,
  issueBundleSignerCertificate,
  issueEncryptionKeyCertificate,
  issueSealingCertificate,
  issueTlsCertificate,
  issueUserCertificate,
} from '../../src/pki/issue';
import { compressedPointFromSpki, generateP256KeyPair, generateSecp256k1KeyPair, spkiOf } from '../../src/pki/keys';

export const T0 = new Date('2026-01-01T00:00:00Z');
export const T_ROOT_END = new Date('2036-01-01T00:00:00Z');
export const T_ORG_END = new Date('2031-01-01T00:00:00Z');
export const T_LEAF_END = new Date('2028-01-01T00:00:00Z');
/** "Now" of most tests. */
export const NOW = new Date('2026-06-01T12:00:00Z');
export const CRL_NEXT = new Date('2026-07-01T00:00:00Z');

export const validity = { notBefore: T0, notAfter: T_LEAF_END };

export interface World {
  root: SigningAuthority;
  orgA: SigningAuthority;
  orgB: SigningAuthority;
  encPoint: Uint8Array;
  encA: ParsedCertificate;
  sealA: ParsedCertificate;
  signerA: { certificate: ParsedCertificate; privateKey: import('node:crypto').KeyObject };
  signerB: { certificate: ParsedCertificate; privateKey: import('node:crypto').KeyObject };
  encB: ParsedCertificate;
  sealB: ParsedCertificate;
  userSignA: ParsedCertificate;
  userEncA: ParsedCertificate;
  gatewayA: ParsedCertificate;
  keydA: ParsedCertificate;
  inspectorA: ParsedCertificate;
  adminA: ParsedCertificate;
  disclosureA: ParsedCertificate;
  rootCrl: ParsedCrl;
  crlA: ParsedCrl;
  crlB: ParsedCrl;
}

export function crlFor(
  ca: SigningAuthority,
  entries: RevocationEntry[] = [],
  crlNumber = 1,
  thisUpdate = T0,
  nextUpdate = CRL_NEXT,
): ParsedCrl {
  return createCrl(ca, { entries, thisUpdate, nextUpdate, crlNumber });
}

export function makeWorld(): World {
  const root = createRootCa({ privateKey: generateP256KeyPair().privateKey, notBefore: T0, notAfter: T_ROOT_END });
  const orgA = createOrgCa(root, {
    domains: ['a.example'],
    organisation: 'A Corp',
    privateKey: generateP256KeyPair().privateKey,
    notBefore: T0,
    notAfter: T_ORG_END,
  });
  const orgB = createOrgCa(root, {
    domains: ['b.example'],
    organisation: 'B Ltd',
    privateKey: generateP256KeyPair().privateKey,
    notBefore: T0,
    notAfter: T_ORG_END,
  });
  const encPoint = compressedPointFromSpki(spkiOf(generateSecp256k1KeyPair().publicKey));
  const p256 = () => generateP256KeyPair().publicKey;
  const k1 = () => compressedPointFromSpki(spkiOf(generateSecp256k1KeyPair().publicKey));
  const signerKeyA = generateP256KeyPair();
  const signerKeyB = generateP256KeyPair();
  return {
    root,
    orgA,
    orgB,
    encPoint,
    encA: issueEncryptionKeyCertificate(orgA, { domain: 'a.example', version: 1, publicKey: encPoint, ...validity }),
    sealA: issueSealingCertificate(orgA, { domain: 'a.example', host: 'mx.a.example', publicKey: p256(), ...validity }),
    signerA: {
      certificate: issueBundleSignerCertificate(orgA, { domain: 'a.example', publicKey: signerKeyA.publicKey, ...validity }),
      privateKey: signerKeyA.privateKey,
    },
    signerB: {
      certificate: issueBundleSignerCertificate(orgB, { domain: 'b.example', publicKey: signerKeyB.publicKey, ...validity }),
      privateKey: signerKeyB.privateKey,
    },
    encB: issueEncryptionKeyCertificate(orgB, { domain: 'b.example', version: 4, publicKey: k1(), ...validity }),
    sealB: issueSealingCertificate(orgB, { domain: 'b.example', publicKey: p256(), ...validity }),
    userSignA: issueUserCertificate(orgA, {
      email: 'alice@a.example',
      pseudonym: 'u-7f3a',
      code: 'E-10442',
      purpose: 'signing',
      publicKey: p256(),
      ...validity,
    }),
    userEncA: issueUserCertificate(orgA, {
      email: 'alice@a.example',
      pseudonym: 'u-7f3a',
      code: 'E-10442',
      purpose: 'encryption',
      publicKey: k1(),
      ...validity,
    }),
    gatewayA: issueTlsCertificate(orgA, { role: 'gateway', hosts: ['mx.a.example'], publicKey: p256(), ...validity }),
    keydA: issueTlsCertificate(orgA, { role: 'keyd', hosts: ['keyd.a.example'], publicKey: p256(), ...validity }),
    inspectorA: issueTlsCertificate(orgA, { role: 'inspector', hosts: ['dlp.a.example'], publicKey: p256(), ...validity }),
    adminA: issueTlsCertificate(orgA, { role: 'admin', commonName: 'op-12', publicKey: p256(), ...validity }),
    disclosureA: issueTlsCertificate(orgA, { role: 'disclosure', commonName: 'dpo-3', publicKey: p256(), ...validity }),
    rootCrl: crlFor(root),
    crlA: crlFor(orgA),
    crlB: crlFor(orgB),
  };
}

// ---------------------------------------------------------------------------
// OpenSSL, the independent check

let opensslChecked: boolean | undefined;
export function haveOpenssl(): boolean {
  opensslChecked ??= spawnSync('openssl', ['version']).status === 0;
  return opensslChecked;
}

export function requireOpenssl(): void {
  if (!haveOpenssl()) throw new Error('openssl is not installed: run scripts/ensure-openssl.sh');
}

const dir = (() => {
  let d: string | undefined;
  return () => (d ??= mkdtempSync(join(tmpdir(), 'ssmax-pki-openssl-')));
})();
let fileNo = 0;
function tmpFile(text: string): string {
  const f = join(dir(), `f${fileNo++}.pem`);
  writeFileSync(f, text);
  return f;
}

export interface OpensslVerify {
  readonly ok: boolean;
  readonly output: string;
}

/**
 * `openssl verify -x509_strict -crl_check_all` (every certificate of the chain, not only the
 * leaf, as our validator does; `crlCheck: 'leaf'` for plain `-crl_check`) at
 * `time`, optionally with a purpose.
 */
export function opensslVerify(opts: {
  leaf: ParsedCertificate;
  intermediates: readonly ParsedCertificate[];
  roots: readonly ParsedCertificate[];
  crls: readonly ParsedCrl[];
  time: Date;
  purpose?: string;
  crlCheck?: 'all' | 'leaf';
}): OpensslVerify {
  requireOpenssl();
  const args = [
    'verify',
    '-x509_strict',
    '-attime',
    String(Math.floor(opts.time.getTime() / 1000)),
    '-CAfile',
    tmpFile(opts.roots.map((r) => r.pem).join('')),
  ];
  if (opts.intermediates.length > 0) args.push('-untrusted', tmpFile(opts.intermediates.map((c) => c.pem).join('')));
  {
    args.push(opts.crlCheck === 'leaf' ? '-crl_check' : '-crl_check_all');
    for (const crl of opts.crls) args.push('-CRLfile', tmpFile(crl.pem));
  }
  if (opts.purpose) args.push('-purpose', opts.purpose);
  args.push(tmpFile(opts.leaf.pem));
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  const output = `${r.stdout}${r.stderr}`;
  return { ok: r.status === 0 && /: OK\s*$/.test(r.stdout), output };
}

export function opensslText(pem: string, kind: 'x509' | 'crl' = 'x509'): string {
  requireOpenssl();
  return execFileSync('openssl', [kind, '-text', '-noout', '-in', tmpFile(pem)], { encoding: 'utf8' });
}

/** Every permutation of a small array. */
export function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [xs.slice()];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}
