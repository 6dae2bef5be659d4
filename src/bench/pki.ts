/**
 * PKI benchmark: certificate issuance, CRL creation, chain validation with CRLs
 * (cold: every call parses and verifies signatures; cached: a ValidationCache
 * shared across calls, as the key service uses for mTLS peers), and bundle
 * verification. Reference figures measured before the project: pkijs chain verify (3 certs + 2 CRLs)
 * ~275/s; node ECDSA P-256 verify ~16,000/s.
 */
import { createBundle, verifyBundle } from '../pki/bundle';
import { createCrl } from '../pki/crl';
import {
  createOrgCa,
  createRootCa,
  issueBundleSignerCertificate,
  issueEncryptionKeyCertificate,
  issueTlsCertificate,
  issueUserCertificate,
} from '../pki/issue';
import { compressedPointFromSpki, generateP256KeyPair, generateSecp256k1KeyPair, spkiOf } from '../pki/keys';
import { ValidationCache, validateCertificate } from '../pki/validate';
import { type BenchRow, measure } from './harness';

export async function run(): Promise<BenchRow[]> {
  const suite = 'pki';
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2030-01-01T00:00:00Z');
  const now = new Date('2026-06-01T00:00:00Z');
  const validity = { notBefore: t0, notAfter: t1 };
  const root = createRootCa({ privateKey: generateP256KeyPair().privateKey, ...validity });
  const org = createOrgCa(root, {
    domains: ['a.example'],
    organisation: 'A Corp',
    privateKey: generateP256KeyPair().privateKey,
    ...validity,
  });
  const userKey = generateP256KeyPair().publicKey;
  const point = compressedPointFromSpki(spkiOf(generateSecp256k1KeyPair().publicKey));
  const leaf = issueTlsCertificate(org, { role: 'gateway', hosts: ['mx.a.example'], publicKey: userKey, ...validity });
  const enc = issueEncryptionKeyCertificate(org, { domain: 'a.example', version: 1, publicKey: point, ...validity });
  const revoked = Array.from({ length: 100 }, (_, i) => ({
    serial: (0x4000 + i).toString(16).padStart(4, '0'),
    revokedAt: t0,
    reason: 'keyCompromise' as const,
  }));
  const rootCrl = createCrl(root, { entries: [], thisUpdate: t0, nextUpdate: t1, crlNumber: 1 });
  const orgCrl = createCrl(org, { entries: revoked, thisUpdate: t0, nextUpdate: t1, crlNumber: 1 });
  const signerKey = generateP256KeyPair();
  const signer = {
    certificate: issueBundleSignerCertificate(org, { domain: 'a.example', publicKey: signerKey.publicKey, ...validity }),
    privateKey: signerKey.privateKey,
  };
  const bundle = createBundle(
    {
      domain: 'a.example',
      serial: 1,
      issued: t0,
      expires: t1,
      orgCaChain: [org.certificate],
      encryptionKeys: [{ state: 'current', certificate: enc }],
      sealingCertificates: [],
      crls: [orgCrl, rootCrl],
      abuseContact: 'mailto:abuse@a.example',
      inboundPolicy: { encryption: 'required', seal: 'required', maxMessageBytes: 1_000_000 },
    },
    signer,
  );

  const rows: BenchRow[] = [];
  const add = async (name: string, fn: () => unknown, note?: string) => {
    rows.push({ suite, name, rate: await measure(fn), unit: 'ops/s', ...(note ? { note } : {}) });
  };

  await add(
    'issue user signing certificate',
    () =>
      issueUserCertificate(org, {
        email: 'alice@a.example',
        pseudonym: 'u-7f3a',
        code: 'E-10442',
        purpose: 'signing',
        publicKey: userKey,
        ...validity,
      }),
    'key given; includes re-parse',
  );
  await add('issue encryption-key certificate (33-byte point)', () =>
    issueEncryptionKeyCertificate(org, { domain: 'a.example', version: 2, publicKey: point, ...validity }),
  );
  await add('issue TLS certificate incl. P-256 key generation', () =>
    issueTlsCertificate(org, { role: 'keyd', hosts: ['keyd.a.example'], publicKey: generateP256KeyPair().publicKey, ...validity }),
  );
  await add('create CRL (100 entries)', () => createCrl(org, { entries: revoked, thisUpdate: t0, nextUpdate: t1, crlNumber: 2 }));

  // DER inputs, as a TLS server receives them: cold = parse + 2 cert + 2 CRL signatures per call.
  const input = {
    leaf: leaf.der,
    intermediates: [org.certificate.der],
    roots: [root.certificate.der],
    crls: [rootCrl.der, orgCrl.der],
    use: 'tls-client' as const,
    time: now,
  };
  const check = (r: { status: string }) => {
    if (r.status !== 'valid') throw new Error(`bench: validation ${r.status}`);
  };
  await add('validate chain (3 certs + 2 CRLs), cold', () => check(validateCertificate(input)), 'reference: pkijs ~275/s');
  const cache = new ValidationCache();
  await add(
    'validate chain (3 certs + 2 CRLs), cached',
    () => check(validateCertificate({ ...input, cache })),
    'parse + signatures memoised',
  );
  await add('verify organisation bundle, cold', () =>
    check(verifyBundle(bundle, { domain: 'a.example', roots: [root.certificate.der], time: now })),
  );
  const bundleCache = new ValidationCache();
  await add(
    'verify organisation bundle, cached',
    () => check(verifyBundle(bundle, { domain: 'a.example', roots: [root.certificate.der], time: now, cache: bundleCache })),
    'bundle signature still checked',
  );
  return rows;
}
