import { type ParsedCertificate, parseCertificate, roleOf } from '../../src/pki/certificate';
import { createCrl } from '../../src/pki/crl';
import { buildCertificate, createOrgCa, createRootCa, issueUserCertificate } from '../../src/pki/issue';
import { generateP256KeyPair, spkiOf } from '../../src/pki/keys';
import { ATTR, EKU } from '../../src/pki/oids';
import { type ValidationRequest, type ValidationResult, ValidationCache, validateCertificate } from '../../src/pki/validate';
import { CRL_NEXT, NOW, T0, T_LEAF_END, type World, crlFor, makeWorld, permutations, validity } from './fixtures';

let w: World;
beforeAll(() => {
  w = makeWorld();
});

function req(leaf: ParsedCertificate, over: Partial<ValidationRequest> = {}): ValidationRequest {
  return {
    leaf,
    intermediates: [w.orgA.certificate],
    roots: [w.root.certificate],
    crls: [w.rootCrl, w.crlA],
    use: 'any',
    time: NOW,
    ...over,
  };
}

function expectStatus(r: ValidationResult, status: ValidationResult['status']): void {
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${r.message}`);
}

describe('valid', () => {
  test('a user signing certificate validates for user-signing, with the path leaf → org CA → root', () => {
    const r = validateCertificate(req(w.userSignA, { use: 'user-signing' }));
    expectStatus(r, 'valid');
    if (r.status !== 'valid') return;
    expect(r.path.map((c) => c.fingerprint)).toEqual([
      w.userSignA.fingerprint,
      w.orgA.certificate.fingerprint,
      w.root.certificate.fingerprint,
    ]);
  });

  test.each([
    ['encA', 'org-encryption'],
    ['userEncA', 'user-encryption'],
    ['sealA', 'seal'],
    ['signerA', 'bundle-signing'],
    ['gatewayA', 'tls-server'],
    ['gatewayA', 'tls-client'],
    ['keydA', 'tls-server'],
    ['inspectorA', 'tls-client'],
    ['adminA', 'tls-client'],
    ['disclosureA', 'tls-client'],
  ] as const)('%s is valid for %s', (name, use) => {
    const leaf = name === 'signerA' ? w.signerA.certificate : w[name];
    expectStatus(validateCertificate(req(leaf, { use })), 'valid');
  });

  test('the chain may be passed in any order, with the root and unrelated certificates among the intermediates', () => {
    for (const inter of permutations([w.orgA.certificate, w.root.certificate, w.orgB.certificate, w.sealB])) {
      expectStatus(validateCertificate(req(w.sealA, { use: 'seal', intermediates: inter })), 'valid');
    }
  });

  test('inputs may be DER or PEM', () => {
    const r = validateCertificate({
      leaf: w.sealA.der,
      intermediates: [w.orgA.certificate.pem],
      roots: [w.root.certificate.der],
      crls: [w.rootCrl.pem, w.crlA.der],
      use: 'seal',
      time: NOW,
    });
    expectStatus(r, 'valid');
  });

  test('revocation "skip" validates without CRLs', () => {
    expectStatus(validateCertificate(req(w.sealA, { crls: [], revocation: 'skip' })), 'valid');
  });
});

describe('revoked', () => {
  test('a revoked leaf is revoked whatever the order of the chain (the pkijs last-entry pitfall)', () => {
    const crl = crlFor(w.orgA, [{ serial: w.userSignA.serial, revokedAt: new Date('2026-03-01T00:00:00Z'), reason: 'keyCompromise' }], 2);
    const orders = permutations([w.orgA.certificate, w.root.certificate, w.orgB.certificate]);
    expect(orders).toHaveLength(6);
    for (const inter of orders) {
      for (const crls of permutations([w.rootCrl, crl, w.crlB])) {
        const r = validateCertificate(req(w.userSignA, { use: 'user-signing', intermediates: inter, crls }));
        expectStatus(r, 'revoked');
        if (r.status === 'revoked') {
          expect(r.reason).toBe('keyCompromise');
          expect(r.certificate.fingerprint).toBe(w.userSignA.fingerprint);
        }
      }
    }
  });

  test('an organisation with 3,000 revocations (a CRL over 64 KB) still signs its CRL, and it revokes and clears as a small one', () => {
    // signing a TBS above 64 KB failed once (asn1js could not parse it back): about 1,300 entries
    const many = Array.from({ length: 3000 }, (_, i) => ({
      serial: (0x70000000 + i).toString(16),
      revokedAt: new Date('2026-03-01T00:00:00Z'),
      reason: 'superseded' as const,
    }));
    const crl = crlFor(
      w.orgA,
      [...many, { serial: w.userSignA.serial, revokedAt: new Date('2026-03-01T00:00:00Z'), reason: 'keyCompromise' }],
      7,
    );
    expect(crl.der.length).toBeGreaterThan(65536);
    expect(crl.entries.size).toBe(3001);
    const revoked = validateCertificate(req(w.userSignA, { use: 'user-signing', crls: [w.rootCrl, crl] }));
    expectStatus(revoked, 'revoked');
    expectStatus(validateCertificate(req(w.sealA, { crls: [w.rootCrl, crl] })), 'valid');
  });

  test('the leaf itself repeated among the intermediates does not hide its revocation', () => {
    const crl = crlFor(w.orgA, [{ serial: w.sealA.serial, revokedAt: T0, reason: 'superseded' }], 2);
    const r = validateCertificate(req(w.sealA, { intermediates: [w.sealA, w.orgA.certificate], crls: [w.rootCrl, crl] }));
    expectStatus(r, 'revoked');
  });

  test('a revoked organisation CA revokes everything below it', () => {
    const rootCrl = crlFor(w.root, [{ serial: w.orgA.certificate.serial, revokedAt: T0, reason: 'cACompromise' }], 2);
    const r = validateCertificate(req(w.encA, { use: 'org-encryption', crls: [rootCrl, w.crlA] }));
    expectStatus(r, 'revoked');
    if (r.status === 'revoked') {
      expect(r.certificate.fingerprint).toBe(w.orgA.certificate.fingerprint);
      expect(r.reason).toBe('cACompromise');
    }
  });

  test('the newest of several current CRLs decides (higher CRL number)', () => {
    const older = crlFor(w.orgA, [], 5);
    const newer = crlFor(w.orgA, [{ serial: w.sealA.serial, revokedAt: T0, reason: 'unspecified' }], 6);
    const r = validateCertificate(req(w.sealA, { crls: [w.rootCrl, newer, older] }));
    expectStatus(r, 'revoked');
    if (r.status === 'revoked') expect(r.reason).toBe('unspecified');
  });
});

describe('expired and not yet valid', () => {
  test('an expired leaf', () => {
    const r = validateCertificate(
      req(w.sealA, {
        time: new Date(T_LEAF_END.getTime() + 1000),
        crls: [crlFor(w.root, [], 3, T0, new Date('2030-01-01')), crlFor(w.orgA, [], 3, T0, new Date('2030-01-01'))],
      }),
    );
    expectStatus(r, 'expired');
    if (r.status === 'expired') expect(r.certificate.fingerprint).toBe(w.sealA.fingerprint);
  });

  test('an expired intermediate: the leaf is inside its own validity, the org CA is not', () => {
    const orgKey = generateP256KeyPair().privateKey;
    const shortOrg = createOrgCa(w.root, {
      domains: ['a.example'],
      organisation: 'A Corp',
      privateKey: orgKey,
      notBefore: T0,
      notAfter: new Date('2026-03-01T00:00:00Z'),
    });
    // The profile functions refuse a leaf outliving its issuer; forge one with the primitive.
    const leaf = buildCertificate(
      {
        subject: [{ type: ATTR.commonName, value: 'a.example gateway seal' }],
        spki: spkiOf(generateP256KeyPair().publicKey),
        notBefore: T0,
        notAfter: T_LEAF_END,
        keyUsage: ['digitalSignature'],
        extKeyUsage: [EKU.seal],
        dnsNames: ['a.example'],
      },
      shortOrg,
    );
    const r = validateCertificate(req(leaf, { use: 'seal', intermediates: [shortOrg.certificate], crls: [w.rootCrl, crlFor(shortOrg)] }));
    expectStatus(r, 'expired');
    if (r.status === 'expired') expect(r.certificate.fingerprint).toBe(shortOrg.certificate.fingerprint);
  });

  test('not yet valid', () => {
    const r = validateCertificate(req(w.sealA, { time: new Date(T0.getTime() - 1000) }));
    expectStatus(r, 'not-yet-valid');
  });
});

describe('wrong usage', () => {
  test('a user certificate presented as a sealing certificate', () => {
    const r = validateCertificate(req(w.userSignA, { use: 'seal' }));
    expectStatus(r, 'wrong-usage');
    expect(r.message).toMatch(/cannot be used for seal/);
  });
  test.each([
    ['sealA', 'user-signing'],
    ['userSignA', 'tls-server'],
    ['userEncA', 'org-encryption'],
    ['encA', 'user-encryption'],
    ['encA', 'seal'],
    ['adminA', 'tls-server'],
    ['gatewayA', 'bundle-signing'],
    ['sealA', 'tls-client'],
  ] as const)('%s is wrong for %s', (name, use) => {
    expectStatus(validateCertificate(req(w[name], { use })), 'wrong-usage');
  });
  test('a CA certificate is never an end entity', () => {
    expectStatus(validateCertificate(req(w.orgA.certificate, { use: 'seal', intermediates: [] })), 'wrong-usage');
  });
  test('a TLS peer outside the allowed roles', () => {
    expectStatus(validateCertificate(req(w.gatewayA, { use: 'tls-client', roles: ['inspector', 'admin'] })), 'wrong-usage');
    expectStatus(validateCertificate(req(w.inspectorA, { use: 'tls-client', roles: ['inspector', 'admin'] })), 'valid');
  });
});

describe('outside name constraints', () => {
  function forged(names: { dnsNames?: string[]; emails?: string[]; cn?: string }) {
    return buildCertificate(
      {
        subject: [{ type: ATTR.commonName, value: names.cn ?? 'u-evil' }],
        spki: spkiOf(generateP256KeyPair().publicKey),
        ...validity,
        keyUsage: ['digitalSignature'],
        extKeyUsage: [EKU.emailProtection, EKU.userSigning],
        dnsNames: names.dnsNames ?? [],
        emails: names.emails ?? [],
      },
      w.orgA,
    );
  }
  test('an org CA that issues for a mail address of another domain fails', () => {
    const r = validateCertificate(req(forged({ emails: ['x@evil.example'] }), { use: 'user-signing' }));
    expectStatus(r, 'outside-name-constraints');
    if (r.status === 'outside-name-constraints') {
      expect(r.name).toBe('x@evil.example');
      expect(r.constrainedBy.fingerprint).toBe(w.orgA.certificate.fingerprint);
    }
  });
  test.each([
    [{ dnsNames: ['mx.b.example'] }, 'mx.b.example'],
    [{ dnsNames: ['a.example.evil'] }, 'a.example.evil'],
    [{ dnsNames: ['xa.example'] }, 'xa.example'],
    [{ emails: ['x@sub.evil.example'] }, 'x@sub.evil.example'],
    [{ cn: 'www.evil.example' }, 'www.evil.example'],
  ])('%j is outside a.example', (names, bad) => {
    const r = validateCertificate(req(forged(names)));
    expectStatus(r, 'outside-name-constraints');
    if (r.status === 'outside-name-constraints') expect(r.name).toBe(bad);
  });
  test('subdomains and sub-domain mailboxes are inside', () => {
    expectStatus(
      validateCertificate(req(forged({ dnsNames: ['mx.eu.a.example'], emails: ['bob@a.example', 'c@lists.a.example'] }))),
      'valid',
    );
  });
});

describe('untrusted', () => {
  test('a chain to a root that is not trusted', () => {
    const other = createRootCa({
      privateKey: generateP256KeyPair().privateKey,
      notBefore: T0,
      notAfter: T_LEAF_END,
      commonName: 'SSMAX Root CA',
    });
    expectStatus(validateCertificate(req(w.sealA, { roots: [other.certificate] })), 'untrusted');
  });
  test('a missing intermediate', () => {
    expectStatus(validateCertificate(req(w.sealA, { intermediates: [] })), 'untrusted');
  });
  test('no roots at all', () => {
    expectStatus(validateCertificate(req(w.sealA, { roots: [] })), 'untrusted');
  });
  test('a leaf of an impostor CA that has the same name as the org CA', () => {
    const impostor = createOrgCa(createRootCa({ privateKey: generateP256KeyPair().privateKey, notBefore: T0, notAfter: T_LEAF_END }), {
      domains: ['a.example'],
      organisation: 'A Corp',
      privateKey: generateP256KeyPair().privateKey,
      notBefore: T0,
      notAfter: T_LEAF_END,
    });
    const leaf = issueUserCertificate(impostor, {
      email: 'eve@a.example',
      pseudonym: 'u-eve',
      code: 'E-1',
      purpose: 'signing',
      publicKey: generateP256KeyPair().publicKey,
      ...validity,
    });
    const r = validateCertificate(req(leaf, { use: 'user-signing' }));
    expectStatus(r, 'untrusted');
  });
  test('a tampered certificate (one byte of the signed part changed)', () => {
    const der = new Uint8Array(w.sealA.der);
    const idx = Buffer.from(der).indexOf(Buffer.from('gateway seal'));
    der[idx] = 'G'.charCodeAt(0);
    const r = validateCertificate(req(parseCertificate(der), { use: 'seal' }));
    expectStatus(r, 'untrusted');
    expect(r.message).toMatch(/signature/);
  });
  test('an end-entity certificate used as an issuer', () => {
    const fake = { certificate: w.sealA, privateKey: generateP256KeyPair().privateKey };
    const leaf = buildCertificate(
      {
        subject: [{ type: ATTR.commonName, value: 'u-x' }],
        spki: spkiOf(generateP256KeyPair().publicKey),
        ...validity,
        keyUsage: ['digitalSignature'],
      },
      fake,
    );
    expectStatus(validateCertificate(req(leaf, { intermediates: [w.sealA, w.orgA.certificate] })), 'untrusted');
  });
  test('an org CA (path length 0) issuing a sub-CA: the sub-CA cannot issue', () => {
    const subKey = generateP256KeyPair().privateKey;
    const sub = {
      certificate: buildCertificate(
        {
          subject: [{ type: ATTR.commonName, value: 'sub CA' }],
          spki: spkiOf(subKey),
          ...validity,
          ca: {},
          keyUsage: ['keyCertSign', 'cRLSign'],
          dnsNames: [],
        },
        w.orgA,
      ),
      privateKey: subKey,
    };
    const leaf = buildCertificate(
      {
        subject: [{ type: ATTR.commonName, value: 'u-y' }],
        spki: spkiOf(generateP256KeyPair().publicKey),
        ...validity,
        keyUsage: ['digitalSignature'],
      },
      sub,
    );
    const r = validateCertificate(
      req(leaf, { intermediates: [sub.certificate, w.orgA.certificate], crls: [w.rootCrl, w.crlA, crlFor(sub)] }),
    );
    expectStatus(r, 'untrusted');
    expect(r.message).toMatch(/intermediate/);
  });
});

describe('revocation unknown', () => {
  test('no CRL of the issuing org CA', () => {
    expectStatus(validateCertificate(req(w.sealA, { crls: [w.rootCrl] })), 'revocation-unknown');
  });
  test('an expired CRL', () => {
    const r = validateCertificate(req(w.sealA, { time: new Date(CRL_NEXT.getTime() + 1000) }));
    expectStatus(r, 'revocation-unknown');
    expect(r.message).toMatch(/expired/);
  });
  test('a CRL signed by another key under the same name', () => {
    const fakeCa = { certificate: w.orgA.certificate, privateKey: generateP256KeyPair().privateKey };
    const forgedCrl = createCrl(fakeCa, { entries: [], thisUpdate: T0, nextUpdate: CRL_NEXT, crlNumber: 9 });
    const r = validateCertificate(req(w.sealA, { crls: [w.rootCrl, forgedCrl] }));
    expectStatus(r, 'revocation-unknown');
    expect(r.message).toMatch(/bad signature/);
  });
});

describe('malformed', () => {
  test.each([
    ['garbage bytes', { leaf: new Uint8Array([0x30, 0x03, 1, 2, 3]) }],
    ['a damaged PEM', { leaf: '-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n' }],
    ['a string without PEM', { leaf: 'hello' }],
    ['a garbage CRL', { crls: [new Uint8Array([1, 2, 3])] }],
    ['a garbage intermediate', { intermediates: [new Uint8Array(10)] }],
    ['an invalid time', { time: new Date(Number.NaN) }],
    ['an unknown use', { use: 'everything' as never }],
    ['a number as leaf', { leaf: 42 as never }],
  ])('%s', (_name, over) => {
    const r = validateCertificate(req(w.sealA, over as Partial<ValidationRequest>));
    expectStatus(r, 'malformed');
  });
  test('a certificate with an unknown critical extension', () => {
    const leaf = buildCertificate(
      {
        subject: [{ type: ATTR.commonName, value: 'u-z' }],
        spki: spkiOf(generateP256KeyPair().publicKey),
        ...validity,
        keyUsage: ['digitalSignature'],
        extraExtensions: [{ oid: '1.2.3.4.5', critical: true, value: new Uint8Array([0x05, 0x00]) }],
      },
      w.orgA,
    );
    const r = validateCertificate(req(leaf));
    expectStatus(r, 'malformed');
    expect(r.message).toMatch(/critical extension 1\.2\.3\.4\.5/);
  });
  test('a leaf whose P-256 point is not on the curve', () => {
    const spki = new Uint8Array(
      Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), Buffer.from([4]), Buffer.alloc(64, 1)]),
    );
    const leaf = buildCertificate(
      {
        subject: [{ type: ATTR.commonName, value: 'a.example gateway seal' }],
        spki,
        ...validity,
        keyUsage: ['digitalSignature'],
        extKeyUsage: [EKU.seal],
        dnsNames: ['a.example'],
      },
      w.orgA,
    );
    const r = validateCertificate(req(leaf, { use: 'seal' }));
    expectStatus(r, 'malformed');
    expect(r.message).toMatch(/not a valid p256 point/);
  });
  test('too many intermediates (a hostile TLS peer) is refused before any signature check', () => {
    const many = Array.from({ length: 33 }, () => w.orgB.certificate);
    expectStatus(validateCertificate(req(w.sealA, { intermediates: many })), 'malformed');
    expectStatus(validateCertificate(req(w.sealA, { intermediates: [...many.slice(0, 31), w.orgA.certificate] })), 'valid');
  });
  test('the validator never throws on arbitrary input', () => {
    for (const junk of [null, undefined, {}, [], 'x', new Uint8Array(0)]) {
      expect(() => validateCertificate(junk as never)).not.toThrow();
      expect(validateCertificate({ ...req(w.sealA), leaf: junk as never }).status).toBe('malformed');
    }
  });
});

describe('cache', () => {
  test('gives the same answers and reuses parsing and signature checks', () => {
    const cache = new ValidationCache();
    const crl = crlFor(w.orgA, [{ serial: w.userSignA.serial, revokedAt: T0, reason: 'keyCompromise' }], 2);
    const ask = (leaf: ParsedCertificate, use: ValidationRequest['use']) =>
      validateCertificate({
        leaf: leaf.der,
        intermediates: [w.orgA.certificate.der],
        roots: [w.root.certificate.der],
        crls: [w.rootCrl.der, crl.der],
        use,
        time: NOW,
        cache,
      }).status;
    expect(ask(w.sealA, 'seal')).toBe('valid');
    expect(ask(w.userSignA, 'user-signing')).toBe('revoked');
    const hitsBefore = cache.hits;
    expect(ask(w.sealA, 'seal')).toBe('valid');
    expect(ask(w.userSignA, 'user-signing')).toBe('revoked');
    expect(ask(w.userSignA, 'seal')).toBe('revoked');
    expect(cache.hits).toBeGreaterThan(hitsBefore);
  });
  test('time is never cached: the same request later is expired', () => {
    const cache = new ValidationCache();
    const late = [crlFor(w.root, [], 3, T0, new Date('2030-01-01')), crlFor(w.orgA, [], 3, T0, new Date('2030-01-01'))];
    expect(validateCertificate(req(w.sealA, { cache, crls: late })).status).toBe('valid');
    expect(validateCertificate(req(w.sealA, { cache, crls: late, time: new Date('2029-01-01') })).status).toBe('expired');
  });
  test('is bounded', () => {
    const cache = new ValidationCache(2);
    for (const c of [w.sealA, w.encA, w.userSignA, w.gatewayA]) cache.certificate(c.der);
    const misses = cache.misses;
    cache.certificate(w.sealA.der);
    expect(cache.misses).toBe(misses + 1);
  });
});

describe('roleOf', () => {
  test.each([
    ['gatewayA', 'gateway'],
    ['keydA', 'keyd'],
    ['inspectorA', 'inspector'],
    ['adminA', 'admin'],
    ['disclosureA', 'disclosure'],
  ] as const)('%s → %s', (name, role) => {
    expect(roleOf(w[name])).toBe(role);
    expect(roleOf(w[name].pem)).toBe(role);
  });
  test('no role for non-TLS certificates and garbage', () => {
    expect(roleOf(w.userSignA)).toBeUndefined();
    expect(roleOf(w.sealA)).toBeUndefined();
    expect(roleOf(new Uint8Array([1, 2]))).toBeUndefined();
  });
});
