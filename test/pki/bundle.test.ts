import { createPrivateKey } from 'node:crypto';
import {
  BUNDLE_LIMITS,
  type BundleInput,
  type BundleResult,
  bundleSigningBytes,
  canonicalJson,
  createBundle,
  verifyBundle,
} from '../../src/pki/bundle';
import {
  buildCertificate,
  createRootCa,
  issueBundleSignerCertificate,
  issueEncryptionKeyCertificate,
  issueSealingCertificate,
} from '../../src/pki/issue';
import { compressedPointFromSpki, generateP256KeyPair, generateSecp256k1KeyPair, spkiOf } from '../../src/pki/keys';
import { ATTR, EKU } from '../../src/pki/oids';
import { ValidationCache } from '../../src/pki/validate';
import { NOW, T0, T_LEAF_END, type World, crlFor, makeWorld, validity } from './fixtures';

let w: World;
beforeAll(() => {
  w = makeWorld();
});

const ISSUED = new Date('2026-05-01T00:00:00Z');
const EXPIRES = new Date('2026-08-01T00:00:00Z');
const policy = { encryption: 'required', seal: 'required', maxMessageBytes: 25_000_000 } as const;

function inputA(over: Partial<BundleInput> = {}): BundleInput {
  return {
    domain: 'a.example',
    serial: 7,
    id: 'b-2026-05-01-0001',
    issued: ISSUED,
    expires: EXPIRES,
    orgCaChain: [w.orgA.certificate],
    encryptionKeys: [{ state: 'current', certificate: w.encA }],
    sealingCertificates: [w.sealA],
    crls: [w.crlA, w.rootCrl],
    abuseContact: 'mailto:abuse@a.example',
    inboundPolicy: policy,
    ...over,
  };
}

const verifyA = (text: string, over: Partial<Parameters<typeof verifyBundle>[1]> = {}) =>
  verifyBundle(text, { domain: 'a.example', roots: [w.root.certificate], time: NOW, ...over });

function expectStatus(r: BundleResult, status: BundleResult['status']): void {
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${r.message}`);
}

describe('a valid bundle', () => {
  test('verifies, with the current key as the crypto core needs it (33-byte point)', () => {
    const r = verifyA(createBundle(inputA(), w.signerA));
    expectStatus(r, 'valid');
    if (r.status !== 'valid') return;
    expect(r.bundle.id).toBe('b-2026-05-01-0001');
    expect(r.bundle.serial).toBe(7);
    expect(r.bundle.currentKey.version).toBe(1);
    expect(r.bundle.currentKey.publicKey).toEqual(w.encPoint);
    expect(r.bundle.sealingCertificates.map((c) => c.fingerprint)).toEqual([w.sealA.fingerprint]);
    expect(r.bundle.abuseContact).toBe('mailto:abuse@a.example');
    expect(r.bundle.inboundPolicy).toEqual(policy);
  });

  test('with several versions: the highest valid current key is chosen; retired and next keys are listed', () => {
    const k = () => compressedPointFromSpki(spkiOf(generateSecp256k1KeyPair().publicKey));
    const v2 = issueEncryptionKeyCertificate(w.orgA, { domain: 'a.example', version: 2, publicKey: k(), ...validity });
    const v3 = issueEncryptionKeyCertificate(w.orgA, {
      domain: 'a.example',
      version: 3,
      publicKey: k(),
      notBefore: new Date('2026-09-01'),
      notAfter: T_LEAF_END,
    });
    const r = verifyA(
      createBundle(
        inputA({
          encryptionKeys: [
            { state: 'retired', certificate: w.encA },
            { state: 'current', certificate: v2 },
            { state: 'next', certificate: v3 },
          ],
        }),
        w.signerA,
      ),
    );
    expectStatus(r, 'valid');
    if (r.status !== 'valid') return;
    expect(r.bundle.currentKey.version).toBe(2);
    expect(r.bundle.encryptionKeys.map((x) => [x.version, x.state, x.validation.status])).toEqual([
      [1, 'retired', 'valid'],
      [2, 'current', 'valid'],
      [3, 'next', 'not-yet-valid'],
    ]);
  });

  test('the root CRL may come from the caller instead of the bundle', () => {
    const text = createBundle(inputA({ crls: [w.crlA] }), w.signerA);
    expectStatus(verifyA(text), 'untrusted');
    expectStatus(verifyA(text, { crls: [w.rootCrl] }), 'valid');
  });

  test('the signature covers the canonical payload, not the wire spelling', () => {
    const text = createBundle(inputA(), w.signerA);
    const doc = JSON.parse(text) as { payload: Record<string, unknown>; signature: unknown };
    const reversed = Object.fromEntries(Object.entries(doc.payload).reverse());
    expectStatus(verifyA(JSON.stringify({ signature: doc.signature, payload: reversed })), 'valid');
    const bytes = Buffer.from(bundleSigningBytes(doc.payload as never));
    expect(bytes.subarray(0, 17).toString('latin1')).toBe('ssmax-bundle-v1\u0000{');
    expect(bytes.subarray(16).toString('utf8')).toBe(canonicalJson(doc.payload));
  });

  test('works with a validation cache', () => {
    const cache = new ValidationCache();
    const text = createBundle(inputA(), w.signerA);
    expectStatus(verifyA(text, { cache }), 'valid');
    expectStatus(verifyA(text, { cache }), 'valid');
    expect(cache.hits).toBeGreaterThan(0);
  });
});

describe('rejections, each with its reason', () => {
  test('a tampered bundle: bad-signature', () => {
    const text = createBundle(inputA(), w.signerA);
    expectStatus(verifyA(text.replace('mailto:abuse@a.example', 'mailto:abuse@evil.example')), 'bad-signature');
    expectStatus(verifyA(text.replace('"serial": 7', '"serial": 8')), 'bad-signature');
    expectStatus(verifyA(text.replace('"required"', '"opportunistic"')), 'bad-signature');
    const doc = JSON.parse(text) as { signature: { value: string } };
    const sig = Buffer.from(doc.signature.value, 'base64url');
    sig[5] = (sig[5] ?? 0) ^ 1;
    expectStatus(verifyA(text.replace(doc.signature.value, sig.toString('base64url'))), 'bad-signature');
  });

  test('a key swapped for another certified key of the same org: bad-signature', () => {
    const other = issueEncryptionKeyCertificate(w.orgA, {
      domain: 'a.example',
      version: 1,
      publicKey: compressedPointFromSpki(spkiOf(generateSecp256k1KeyPair().publicKey)),
      ...validity,
    });
    const text = createBundle(inputA(), w.signerA);
    const swapped = text.replace(JSON.stringify(w.encA.pem).slice(1, -1), JSON.stringify(other.pem).slice(1, -1));
    expect(swapped).not.toBe(text);
    expectStatus(verifyA(swapped), 'bad-signature');
  });

  test('signed by an uncertified key (self-signed signer certificate): signer-not-certified', () => {
    const key = generateP256KeyPair();
    const selfSigned = buildCertificate(
      {
        subject: [{ type: ATTR.commonName, value: 'a.example bundle signer' }],
        spki: spkiOf(key.publicKey),
        ...validity,
        keyUsage: ['digitalSignature'],
        extKeyUsage: [EKU.bundleSigning],
        dnsNames: ['a.example'],
      },
      { selfSigned: key.privateKey },
    );
    const r = verifyA(createBundle(inputA(), { certificate: selfSigned, privateKey: key.privateKey }));
    expectStatus(r, 'signer-not-certified');
  });

  test('signed by a key the org CA certifies, but not for bundle signing (the sealing key): signer-not-certified', () => {
    const key = generateP256KeyPair();
    const seal = issueSealingCertificate(w.orgA, { domain: 'a.example', publicKey: key.publicKey, ...validity });
    const r = verifyA(createBundle(inputA(), { certificate: seal, privateKey: key.privateKey }));
    expectStatus(r, 'signer-not-certified');
    if (r.status === 'signer-not-certified') expect(r.cause?.status).toBe('wrong-usage');
  });

  test("signed by another organisation's bundle signer: signer-not-certified", () => {
    expectStatus(verifyA(createBundle(inputA(), w.signerB)), 'signer-not-certified');
  });

  test('signed with a key that does not match the signer certificate: bad-signature', () => {
    const r = verifyA(createBundle(inputA(), { certificate: w.signerA.certificate, privateKey: generateP256KeyPair().privateKey }));
    expectStatus(r, 'bad-signature');
  });

  test('a valid bundle for another domain: wrong-domain', () => {
    const textB = createBundle(
      {
        ...inputA(),
        domain: 'b.example',
        orgCaChain: [w.orgB.certificate],
        encryptionKeys: [{ state: 'current', certificate: w.encB }],
        sealingCertificates: [w.sealB],
        crls: [w.crlB, w.rootCrl],
        abuseContact: 'mailto:abuse@b.example',
      },
      w.signerB,
    );
    expectStatus(verifyBundle(textB, { domain: 'b.example', roots: [w.root.certificate], time: NOW }), 'valid');
    const r = verifyA(textB);
    expectStatus(r, 'wrong-domain');
    if (r.status === 'wrong-domain') expect(r.domain).toBe('b.example');
  });

  test('an org CA under a root that is not trusted: untrusted', () => {
    const other = createRootCa({ privateKey: generateP256KeyPair().privateKey, notBefore: T0, notAfter: T_LEAF_END });
    expectStatus(verifyA(createBundle(inputA(), w.signerA), { roots: [other.certificate] }), 'untrusted');
  });

  test('a revoked signer: signer-not-certified (revoked)', () => {
    const crl = crlFor(w.orgA, [{ serial: w.signerA.certificate.serial, revokedAt: T0, reason: 'keyCompromise' }], 2);
    const r = verifyA(createBundle(inputA({ crls: [crl, w.rootCrl] }), w.signerA));
    expectStatus(r, 'signer-not-certified');
    if (r.status === 'signer-not-certified') expect(r.cause?.status).toBe('revoked');
  });

  test('expired, not yet valid, replayed', () => {
    const longCrls = [
      crlFor(w.orgA, [], 3, new Date('2026-04-01'), new Date('2026-12-01')),
      crlFor(w.root, [], 3, new Date('2026-04-01'), new Date('2026-12-01')),
    ];
    const text = createBundle(inputA({ crls: longCrls }), w.signerA);
    expectStatus(verifyA(text, { time: new Date(EXPIRES.getTime() + 1000) }), 'expired');
    expectStatus(verifyA(text, { time: new Date(ISSUED.getTime() - 1000) }), 'not-yet-valid');
    expectStatus(verifyA(text, { minSerial: 8 }), 'replayed');
    expectStatus(verifyA(text, { minSerial: 7 }), 'valid');
  });

  test('inconsistent content: invalid-content', () => {
    const sealB = issueSealingCertificate(w.orgB, { domain: 'b.example', publicKey: generateP256KeyPair().publicKey, ...validity });
    expectStatus(verifyA(createBundle(inputA({ sealingCertificates: [sealB] }), w.signerA)), 'invalid-content');
    expectStatus(
      verifyA(createBundle(inputA({ encryptionKeys: [{ state: 'retired', certificate: w.encA }] }), w.signerA)),
      'invalid-content',
    );
    expectStatus(
      verifyA(
        createBundle(
          inputA({
            encryptionKeys: [
              { state: 'current', certificate: w.encA },
              { state: 'retired', certificate: w.encA },
            ],
          }),
          w.signerA,
        ),
      ),
      'invalid-content',
    );
    // A key entry whose stated version differs from its certificate: re-sign a hand-edited payload.
    const doc = JSON.parse(createBundle(inputA(), w.signerA)) as { payload: { encryptionKeys: { version: number }[] } };
    (doc.payload.encryptionKeys[0] as { version: number }).version = 5;
    const { signP256 } = jest.requireActual<typeof import('../../src/crypto/ecdsa')>('../../src/crypto/ecdsa');
    const resigned = {
      payload: doc.payload,
      signature: {
        alg: 'ES256',
        value: Buffer.from(signP256(w.signerA.privateKey, bundleSigningBytes(doc.payload as never))).toString('base64url'),
      },
    };
    const r = verifyA(JSON.stringify(resigned));
    expectStatus(r, 'invalid-content');
    expect(r.message).toMatch(/version 5/);
  });

  test.each([
    ['not JSON', '{'],
    ['an array', '[]'],
    ['no signature', JSON.stringify({ payload: {} })],
    ['an empty payload', JSON.stringify({ payload: {}, signature: { alg: 'ES256', value: 'AA' } })],
    ['a huge document', 'x'.repeat(1024 * 1024 + 1)],
  ])('malformed: %s', (_n, text) => {
    expectStatus(verifyA(text), 'malformed');
  });

  test('malformed: an extra field, a fractional serial, a bad time, a damaged certificate', () => {
    const doc = JSON.parse(createBundle(inputA(), w.signerA)) as { payload: Record<string, unknown> };
    const mutate = (f: (p: Record<string, unknown>) => void) => {
      const d = structuredClone(doc);
      f(d.payload);
      return JSON.stringify(d);
    };
    expectStatus(
      verifyA(
        mutate((p) => {
          p.extra = 1;
        }),
      ),
      'malformed',
    );
    expectStatus(
      verifyA(
        mutate((p) => {
          p.serial = 7.5;
        }),
      ),
      'malformed',
    );
    expectStatus(
      verifyA(
        mutate((p) => {
          p.issued = '2026-05-01 00:00:00';
        }),
      ),
      'malformed',
    );
    expectStatus(
      verifyA(
        mutate((p) => {
          p.signer = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
        }),
      ),
      'malformed',
    );
  });

  test('malformed: more certificates or CRLs than BUNDLE_LIMITS allows, refused before any is parsed', () => {
    const doc = JSON.parse(createBundle(inputA(), w.signerA)) as { payload: Record<string, unknown[]> };
    for (const [list, max] of Object.entries(BUNDLE_LIMITS)) {
      const d = structuredClone(doc);
      // entries that would not even parse: the count is refused first, whatever they hold
      d.payload[list] = [...(d.payload[list] as unknown[]), ...Array.from({ length: max }, () => d.payload[list]?.[0])];
      const r = verifyA(JSON.stringify(d));
      expectStatus(r, 'malformed');
      expect(r.message).toContain(`${list} holds ${max + (doc.payload[list] as unknown[]).length} entries, more than ${max}`);
    }
    const many = Array.from({ length: BUNDLE_LIMITS.crls + 1 }, () => w.crlA);
    expect(() => createBundle(inputA({ crls: many }), w.signerA)).toThrow(`Cannot create bundle: 17 crls is more than 16`);
  });

  test('an untrusted org CA is refused before the rest is parsed: damaged CRLs beside it do not change the answer', () => {
    const rogueRoot = createRootCa({
      privateKey: generateP256KeyPair().privateKey,
      notBefore: T0,
      notAfter: T_LEAF_END,
      commonName: 'Rogue',
    });
    const doc = JSON.parse(createBundle(inputA({ orgCaChain: [rogueRoot.certificate] }), w.signerA)) as {
      payload: Record<string, unknown>;
    };
    doc.payload.crls = ['-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n'];
    const cache = new ValidationCache();
    const r = verifyA(JSON.stringify(doc), { cache });
    expectStatus(r, 'untrusted');
    expect(cache.size).toBe(0); // nothing of a bundle that does not chain to a root is kept
  });

  test('never throws on junk', () => {
    for (const junk of [null, undefined, 42, {}, new Uint8Array([0xff, 0xfe]), 'null']) {
      expect(verifyBundle(junk as never, { domain: 'a.example', roots: [w.root.certificate], time: NOW }).status).toBe('malformed');
    }
    expect(verifyBundle('{}', undefined as never).status).toBe('malformed');
  });
});

describe('createBundle refuses mistakes', () => {
  test('bad abuse contact, bad policy, expiry before issue', () => {
    expect(() => createBundle(inputA({ abuseContact: 'abuse@a.example' }), w.signerA)).toThrow(
      /Cannot create bundle: abuse contact "abuse@a.example" is not a mailto: address/,
    );
    expect(() => createBundle(inputA({ inboundPolicy: { ...policy, maxMessageBytes: 0 } }), w.signerA)).toThrow(/maxMessageBytes/);
    expect(() => createBundle(inputA({ expires: ISSUED }), w.signerA)).toThrow(/expires is not after issued/);
    expect(() => createBundle(inputA({ encryptionKeys: [{ state: 'current', certificate: w.sealA }] }), w.signerA)).toThrow(
      /no key version/,
    );
  });
});

describe('canonicalJson', () => {
  test('sorts keys at every depth and writes no whitespace', () => {
    expect(canonicalJson({ b: [{ d: 1, c: 'x' }], a: true, e: null })).toBe('{"a":true,"b":[{"c":"x","d":1}],"e":null}');
  });
  test('refuses non-integers and non-JSON values', () => {
    expect(() => canonicalJson({ a: 1.5 })).toThrow(/only safe integers/);
    expect(() => canonicalJson({ a: () => 1 })).toThrow();
    expect(() => canonicalJson(2 ** 60)).toThrow();
  });
  test('the signer key file round trip is not needed for signing (KeyObject in, signature out)', () => {
    const pem = w.signerA.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const text = createBundle(inputA(), { certificate: w.signerA.certificate.pem, privateKey: createPrivateKey(pem) });
    expectStatus(verifyA(text), 'valid');
  });
});

test('issueBundleSignerCertificate refuses another domain', () => {
  expect(() =>
    issueBundleSignerCertificate(w.orgA, { domain: 'b.example', publicKey: generateP256KeyPair().publicKey, ...validity }),
  ).toThrow('Cannot issue certificate for "b.example": outside the name constraints of a.example');
});
