/**
 * Interop: OpenSSL (`openssl verify -crl_check_all`, independent of pkijs and of
 * our code) must agree with validateCertificate on every certificate the PKI
 * tests issue — accepts and rejects alike — and `openssl x509 -text` must parse
 * each of them, the secp256k1 encryption-key certificates included.
 *
 * Our intended uses map onto OpenSSL purposes where one exists (tls-server →
 * sslserver, tls-client → sslclient, user-signing → smimesign). The SSMAX key
 * purposes (seal, org-encryption, …) have no OpenSSL purpose: for those the
 * chain verdict is compared (use "any"), and the usage check is ours alone.
 */
import type { ParsedCertificate } from '../../src/pki/certificate';
import type { ParsedCrl } from '../../src/pki/crl';
import { buildCertificate, createOrgCa, createRootCa, issueUserCertificate, type SigningAuthority } from '../../src/pki/issue';
import { compressedPointFromSpki, generateP256KeyPair, spkiOf } from '../../src/pki/keys';
import { ATTR, EKU } from '../../src/pki/oids';
import { type IntendedUse, type ValidationStatus, validateCertificate } from '../../src/pki/validate';
import {
  CRL_NEXT,
  NOW,
  T0,
  T_LEAF_END,
  type World,
  crlFor,
  makeWorld,
  opensslText,
  opensslVerify,
  permutations,
  requireOpenssl,
  validity,
} from './fixtures';

const PURPOSE: Partial<Record<IntendedUse, string>> = { 'tls-server': 'sslserver', 'tls-client': 'sslclient', 'user-signing': 'smimesign' };

interface Case {
  readonly name: string;
  readonly leaf: ParsedCertificate;
  readonly intermediates: readonly ParsedCertificate[];
  readonly roots: readonly ParsedCertificate[];
  readonly crls: readonly ParsedCrl[];
  readonly time: Date;
  readonly use: IntendedUse;
  readonly expected: ValidationStatus;
}

let w: World;
const cases: Case[] = [];
const issued: ParsedCertificate[] = [];

function forge(
  issuer: SigningAuthority,
  over: { cn?: string; dnsNames?: string[]; emails?: string[]; notAfter?: Date; critical?: boolean } = {},
): ParsedCertificate {
  return buildCertificate(
    {
      subject: [
        { type: ATTR.organization, value: 'A Corp' },
        { type: ATTR.commonName, value: over.cn ?? 'u-forged' },
      ],
      spki: spkiOf(generateP256KeyPair().publicKey),
      notBefore: T0,
      notAfter: over.notAfter ?? T_LEAF_END,
      keyUsage: ['digitalSignature', 'nonRepudiation'],
      extKeyUsage: [EKU.emailProtection, EKU.userSigning],
      dnsNames: over.dnsNames ?? [],
      emails: over.emails ?? ['u@a.example'],
      ...(over.critical ? { extraExtensions: [{ oid: '1.2.3.4.5', critical: true, value: new Uint8Array([0x05, 0x00]) }] } : {}),
    },
    issuer,
  );
}

beforeAll(() => {
  requireOpenssl();
  w = makeWorld();
  const base = { intermediates: [w.orgA.certificate], roots: [w.root.certificate], crls: [w.rootCrl, w.crlA], time: NOW };
  const add = (c: Partial<Case> & Pick<Case, 'name' | 'leaf' | 'expected'>) => cases.push({ ...base, use: 'any', ...c });

  // Every end entity of the world, valid for its own use and for the chain.
  const own: [string, ParsedCertificate, IntendedUse][] = [
    ['encA', w.encA, 'org-encryption'],
    ['sealA', w.sealA, 'seal'],
    ['signerA', w.signerA.certificate, 'bundle-signing'],
    ['userSignA', w.userSignA, 'user-signing'],
    ['userEncA', w.userEncA, 'user-encryption'],
    ['gatewayA/server', w.gatewayA, 'tls-server'],
    ['gatewayA/client', w.gatewayA, 'tls-client'],
    ['keydA', w.keydA, 'tls-server'],
    ['inspectorA', w.inspectorA, 'tls-client'],
    ['adminA', w.adminA, 'tls-client'],
    ['disclosureA', w.disclosureA, 'tls-client'],
  ];
  for (const [name, leaf, use] of own) {
    add({ name: `${name} for ${use}`, leaf, use, expected: 'valid' });
    add({ name: `${name} chain`, leaf, expected: 'valid' });
  }
  for (const [name, leaf] of [
    ['encB', w.encB],
    ['sealB', w.sealB],
    ['signerB', w.signerB.certificate],
  ] as const) {
    add({ name: `${name} chain`, leaf, intermediates: [w.orgB.certificate], crls: [w.rootCrl, w.crlB], expected: 'valid' });
  }
  add({ name: 'orgA itself', leaf: w.orgA.certificate, intermediates: [], expected: 'valid' });

  // Wrong usage where OpenSSL has a purpose to say so.
  add({ name: 'userSignA as TLS server', leaf: w.userSignA, use: 'tls-server', expected: 'wrong-usage' });
  add({ name: 'adminA as TLS server', leaf: w.adminA, use: 'tls-server', expected: 'wrong-usage' });
  add({ name: 'gatewayA as user signing', leaf: w.gatewayA, use: 'user-signing', expected: 'wrong-usage' });
  add({ name: 'sealA as TLS client', leaf: w.sealA, use: 'tls-client', expected: 'wrong-usage' });

  // Revoked leaf, the chain in every order.
  const crlRevoked = crlFor(w.orgA, [{ serial: w.userSignA.serial, revokedAt: T0, reason: 'keyCompromise' }], 2);
  for (const inter of permutations([w.orgA.certificate, w.orgB.certificate, w.root.certificate])) {
    add({
      name: `revoked leaf, intermediates ${inter.map((c) => c.subject).join(' | ')}`,
      leaf: w.userSignA,
      intermediates: inter,
      crls: [crlRevoked, w.rootCrl, w.crlB],
      use: 'user-signing',
      expected: 'revoked',
    });
  }
  // Revoked organisation CA.
  const rootCrlRevoked = crlFor(w.root, [{ serial: w.orgA.certificate.serial, revokedAt: T0, reason: 'cACompromise' }], 2);
  add({ name: 'revoked org CA', leaf: w.sealA, crls: [rootCrlRevoked, w.crlA], expected: 'revoked' });

  // Expired leaf, expired intermediate, not yet valid.
  const lateCrls = [crlFor(w.root, [], 3, T0, new Date('2030-06-01')), crlFor(w.orgA, [], 3, T0, new Date('2030-06-01'))];
  add({ name: 'expired leaf', leaf: w.sealA, crls: lateCrls, time: new Date('2029-01-01'), expected: 'expired' });
  const shortOrg = createOrgCa(w.root, {
    domains: ['a.example'],
    organisation: 'A Corp',
    privateKey: generateP256KeyPair().privateKey,
    notBefore: T0,
    notAfter: new Date('2026-03-01'),
  });
  const underShort = forge(shortOrg);
  add({
    name: 'expired intermediate',
    leaf: underShort,
    intermediates: [shortOrg.certificate],
    crls: [w.rootCrl, crlFor(shortOrg)],
    expected: 'expired',
  });
  add({
    name: 'not yet valid',
    leaf: w.sealA,
    time: new Date(T0.getTime() - 60_000),
    crls: [crlFor(w.root, [], 4, new Date('2025-12-01')), crlFor(w.orgA, [], 4, new Date('2025-12-01'))],
    expected: 'not-yet-valid',
  });

  // Outside the name constraints of the org CA.
  add({
    name: 'mail address of another domain',
    leaf: forge(w.orgA, { emails: ['x@evil.example'] }),
    expected: 'outside-name-constraints',
  });
  add({
    name: 'host of another domain',
    leaf: forge(w.orgA, { dnsNames: ['mx.b.example'], emails: [] }),
    expected: 'outside-name-constraints',
  });
  add({ name: 'suffix trick', leaf: forge(w.orgA, { dnsNames: ['xa.example'], emails: [] }), expected: 'outside-name-constraints' });
  add({
    name: 'host name in the common name',
    leaf: forge(w.orgA, { cn: 'www.evil.example', emails: [] }),
    expected: 'outside-name-constraints',
  });
  add({
    name: 'subdomain host and mailbox inside',
    leaf: forge(w.orgA, { dnsNames: ['mx.eu.a.example'], emails: ['c@lists.a.example'] }),
    expected: 'valid',
  });

  // Untrusted.
  const otherRoot = createRootCa({ privateKey: generateP256KeyPair().privateKey, notBefore: T0, notAfter: T_LEAF_END });
  add({ name: 'unknown root', leaf: w.sealA, roots: [otherRoot.certificate], expected: 'untrusted' });
  add({ name: 'missing intermediate', leaf: w.sealA, intermediates: [], expected: 'untrusted' });
  const impostorOrg = createOrgCa(otherRoot, {
    domains: ['a.example'],
    organisation: 'A Corp',
    privateKey: generateP256KeyPair().privateKey,
    notBefore: T0,
    notAfter: T_LEAF_END,
  });
  add({
    name: 'impostor org CA',
    leaf: issueUserCertificate(impostorOrg, {
      email: 'eve@a.example',
      pseudonym: 'u-eve',
      code: 'E-9',
      purpose: 'signing',
      publicKey: generateP256KeyPair().publicKey,
      ...validity,
    }),
    intermediates: [impostorOrg.certificate, w.orgA.certificate],
    expected: 'untrusted',
  });
  const eeIssuer = { certificate: w.sealA, privateKey: generateP256KeyPair().privateKey };
  add({ name: 'end entity as issuer', leaf: forge(eeIssuer), intermediates: [w.sealA, w.orgA.certificate], expected: 'untrusted' });
  const subKey = generateP256KeyPair().privateKey;
  const sub = {
    certificate: buildCertificate(
      {
        subject: [{ type: ATTR.commonName, value: 'sub CA' }],
        spki: spkiOf(subKey),
        ...validity,
        ca: {},
        keyUsage: ['keyCertSign', 'cRLSign'],
      },
      w.orgA,
    ),
    privateKey: subKey,
  };
  add({
    name: 'path length exceeded',
    leaf: forge(sub),
    intermediates: [sub.certificate, w.orgA.certificate],
    crls: [w.rootCrl, w.crlA, crlFor(sub)],
    expected: 'untrusted',
  });

  // Revocation unknown.
  add({ name: 'no org CRL', leaf: w.sealA, crls: [w.rootCrl], expected: 'revocation-unknown' });
  add({ name: 'no root CRL', leaf: w.sealA, crls: [w.crlA], expected: 'revocation-unknown' });
  add({ name: 'expired CRLs', leaf: w.sealA, time: new Date(CRL_NEXT.getTime() + 60_000), expected: 'revocation-unknown' });

  // Malformed (unsupported critical extension).
  add({ name: 'unknown critical extension', leaf: forge(w.orgA, { critical: true }), expected: 'malformed' });

  for (const c of cases) {
    for (const x of [c.leaf, ...c.intermediates, ...c.roots]) if (!issued.some((i) => i.fingerprint === x.fingerprint)) issued.push(x);
  }
});

describe('openssl verify agrees with validateCertificate', () => {
  test('on every case (accepts and rejects)', () => {
    expect(cases.length).toBeGreaterThan(40);
    const statuses = new Set(cases.map((c) => c.expected));
    expect([...statuses].sort()).toEqual([
      'expired',
      'malformed',
      'not-yet-valid',
      'outside-name-constraints',
      'revocation-unknown',
      'revoked',
      'untrusted',
      'valid',
      'wrong-usage',
    ]);
    const disagreements: string[] = [];
    for (const c of cases) {
      const ours = validateCertificate({
        leaf: c.leaf,
        intermediates: c.intermediates,
        roots: c.roots,
        crls: c.crls,
        use: c.use,
        time: c.time,
      });
      const purpose = PURPOSE[c.use];
      const openssl = opensslVerify({
        leaf: c.leaf,
        intermediates: c.intermediates,
        roots: c.roots,
        crls: c.crls,
        time: c.time,
        ...(purpose ? { purpose } : {}),
      });
      if (ours.status !== c.expected) disagreements.push(`${c.name}: expected ${c.expected}, ours ${ours.status} (${ours.message})`);
      if (process.env.SHOW_OPENSSL)
        process.stderr.write(`${c.name} | ${ours.status} | ${openssl.output.trim().split('\n').slice(-2).join(' / ')}\n`);
      if (openssl.ok !== (ours.status === 'valid'))
        disagreements.push(`${c.name}: ours ${ours.status}, openssl ${openssl.ok ? 'OK' : 'rejects'}: ${openssl.output.trim()}`);
    }
    expect(disagreements).toEqual([]);
  });

  test('openssl x509 -text parses every certificate issued here; the encryption keys show secp256k1', () => {
    expect(issued.length).toBeGreaterThan(25);
    for (const c of issued) {
      const text = opensslText(c.pem);
      expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    }
    for (const enc of [w.encA, w.encB, w.userEncA]) {
      const text = opensslText(enc.pem);
      expect(text).toMatch(/ASN1 OID: secp256k1/);
      expect(text).toMatch(/Key Agreement/);
    }
    expect(opensslText(w.orgA.certificate.pem)).toMatch(/Name Constraints: critical[\s\S]*DNS:a\.example[\s\S]*email:\.a\.example/);
    expect(opensslText(w.userSignA.pem)).toMatch(/Subject: O = A Corp, CN = u-7f3a, serialNumber = E-10442/);
    expect(compressedPointFromSpki(w.encA.spki)).toEqual(w.encPoint);
  });

  test('openssl crl -text parses the CRLs with their reasons', () => {
    const crl = crlFor(
      w.orgA,
      [
        { serial: w.sealA.serial, revokedAt: T0, reason: 'keyCompromise' },
        { serial: w.gatewayA.serial, revokedAt: T0, reason: 'superseded' },
      ],
      7,
    );
    const text = opensslText(crl.pem, 'crl');
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*7/);
    expect(text).toMatch(/Key Compromise/);
    expect(text).toMatch(/Superseded/);
    expect(text).toMatch(/Next Update: Jul {2}1 00:00:00 2026 GMT/);
  });

  test('plain -crl_check (leaf only) also agrees on a revoked leaf in every order', () => {
    const crl = crlFor(w.orgA, [{ serial: w.sealA.serial, revokedAt: T0, reason: 'keyCompromise' }], 2);
    for (const inter of permutations([w.orgA.certificate, w.root.certificate])) {
      const r = opensslVerify({
        leaf: w.sealA,
        intermediates: inter,
        roots: [w.root.certificate],
        crls: [crl, w.rootCrl],
        time: NOW,
        crlCheck: 'leaf',
      });
      expect(r.ok).toBe(false);
      expect(r.output).toMatch(/revoked/);
    }
  });
});
