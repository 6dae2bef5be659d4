import * as asn1js from 'asn1js';
import { parseCertificate } from '../../src/pki/certificate';
import {
  createOrgCa,
  createRootCa,
  issueEncryptionKeyCertificate,
  issueSealingCertificate,
  issueTlsCertificate,
  issueUserCertificate,
} from '../../src/pki/issue';
import {
  compressedPointFromSpki,
  decompressSecp256k1,
  encryptionPointOf,
  generateP256KeyPair,
  generateSecp256k1KeyPair,
  privateKeyFromPem,
  privateKeyToPem,
  secp256k1SpkiFromPoint,
  spkiOf,
} from '../../src/pki/keys';
import { EKU, POLICY_SSMAX_V1 } from '../../src/pki/oids';
import { fromPem, fromPemAll, toPem } from '../../src/pki/pem';
import { validateCertificate } from '../../src/pki/validate';
import { NOW, T0, T_LEAF_END, T_ORG_END, type World, makeWorld, validity } from './fixtures';

let w: World;
beforeAll(() => {
  w = makeWorld();
});

const p256 = () => generateP256KeyPair().publicKey;
const k1 = () => compressedPointFromSpki(spkiOf(generateSecp256k1KeyPair().publicKey));
const user = { email: 'bob@a.example', pseudonym: 'u-b0b', code: 'E-2001', purpose: 'signing' as const, ...validity };

describe('profile refusals', () => {
  test('a mail address outside the name constraints, with the exact message', () => {
    expect(() => issueUserCertificate(w.orgA, { ...user, email: 'x@evil.example', publicKey: p256() })).toThrow(
      new Error('Cannot issue certificate for "x@evil.example": outside the name constraints of a.example'),
    );
  });
  test('a host outside the name constraints', () => {
    expect(() => issueTlsCertificate(w.orgA, { role: 'gateway', hosts: ['mx.b.example'], publicKey: p256(), ...validity })).toThrow(
      'Cannot issue certificate for "mx.b.example": outside the name constraints of a.example',
    );
    expect(() => issueEncryptionKeyCertificate(w.orgA, { domain: 'b.example', version: 1, publicKey: k1(), ...validity })).toThrow(
      /outside the name constraints/,
    );
    expect(() => issueSealingCertificate(w.orgA, { domain: 'a.example', host: 'mx.evil.example', publicKey: p256(), ...validity })).toThrow(
      /"mx.evil.example": outside/,
    );
  });
  test("validity outside the issuer's", () => {
    expect(() => issueUserCertificate(w.orgA, { ...user, publicKey: p256(), notAfter: new Date(T_ORG_END.getTime() + 1000) })).toThrow(
      /outside the issuer's/,
    );
    expect(() => issueUserCertificate(w.orgA, { ...user, publicKey: p256(), notBefore: new Date(T0.getTime() - 1000) })).toThrow(
      /outside the issuer's/,
    );
    expect(() => issueUserCertificate(w.orgA, { ...user, publicKey: p256(), notAfter: T0 })).toThrow(/notAfter is not after notBefore/);
  });
  test('a real-looking name or an identity number is refused', () => {
    expect(() => issueUserCertificate(w.orgA, { ...user, pseudonym: 'Alice Smith', publicKey: p256() })).toThrow(
      'Cannot use owner name "Alice Smith": a pseudonym is 3-64 letters, digits, ".", "_" or "-", without spaces',
    );
    expect(() => issueUserCertificate(w.orgA, { ...user, code: '850101123456', publicKey: p256() })).toThrow(
      /Cannot use user code "850101123456"/,
    );
  });
  test('keys of the wrong curve', () => {
    expect(() => issueUserCertificate(w.orgA, { ...user, publicKey: k1() })).toThrow(/the key must be EC P-256, got secp256k1/);
    expect(() => issueUserCertificate(w.orgA, { ...user, purpose: 'encryption', publicKey: p256() })).toThrow(
      /the key must be EC secp256k1, got p256/,
    );
    expect(() => issueEncryptionKeyCertificate(w.orgA, { domain: 'a.example', version: 1, publicKey: p256(), ...validity })).toThrow(
      /secp256k1/,
    );
  });
  test('an end entity cannot issue', () => {
    expect(() =>
      issueUserCertificate({ certificate: w.sealA, privateKey: generateP256KeyPair().privateKey }, { ...user, publicKey: p256() }),
    ).toThrow(/is not a CA/);
  });
  test('bad domains, versions and roles', () => {
    expect(() =>
      createOrgCa(w.root, { domains: ['not a domain'], organisation: 'X', privateKey: generateP256KeyPair().privateKey, ...validity }),
    ).toThrow('Cannot use domain "not a domain": not a valid domain name');
    expect(() =>
      createOrgCa(w.root, { domains: [], organisation: 'X', privateKey: generateP256KeyPair().privateKey, ...validity }),
    ).toThrow(/at least one domain/);
    expect(() => issueEncryptionKeyCertificate(w.orgA, { domain: 'a.example', version: 0, publicKey: k1(), ...validity })).toThrow(
      /version "0"/,
    );
    expect(() => issueTlsCertificate(w.orgA, { role: 'root' as never, hosts: ['x.a.example'], publicKey: p256(), ...validity })).toThrow(
      /unknown role "root"/,
    );
    expect(() => issueTlsCertificate(w.orgA, { role: 'keyd', publicKey: p256(), ...validity })).toThrow(/host name is required/);
  });
});

describe('profiles', () => {
  test('the root: CA, path length 1, keyCertSign+cRLSign, self-signed', () => {
    const c = w.root.certificate;
    expect([c.isCA, c.pathLen, c.selfIssued, [...(c.keyUsage ?? [])].sort()]).toEqual([true, 1, true, ['cRLSign', 'keyCertSign']]);
  });
  test('an org CA: path length 0, name constraints per domain (dNSName, rfc822Name host and subdomains)', () => {
    const org = createOrgCa(w.root, {
      domains: ['c.example', 'C-Mail.example'],
      organisation: 'C',
      privateKey: generateP256KeyPair().privateKey,
      ...validity,
    });
    expect(org.certificate.pathLen).toBe(0);
    expect(org.certificate.nameConstraints?.permitted).toEqual([
      { kind: 'dns', value: 'c.example' },
      { kind: 'email', value: 'c.example' },
      { kind: 'email', value: '.c.example' },
      { kind: 'dns', value: 'c-mail.example' },
      { kind: 'email', value: 'c-mail.example' },
      { kind: 'email', value: '.c-mail.example' },
    ]);
    expect(org.certificate.policies).toEqual([POLICY_SSMAX_V1]);
  });
  test('a user certificate: pseudonymous CN, serialNumber = code, rfc822Name, each attribute its own RDN', () => {
    const c = w.userSignA;
    expect(c.subject).toBe('O=A Corp, CN=u-7f3a, serialNumber=E-10442');
    expect(c.emails).toEqual(['alice@a.example']);
    expect(c.extKeyUsage).toEqual([EKU.emailProtection, EKU.userSigning]);
    const name = asn1js.fromBER(c.subjectDer).result as asn1js.Sequence;
    expect(name.valueBlock.value).toHaveLength(3);
    for (const rdn of name.valueBlock.value) expect((rdn as asn1js.Set).valueBlock.value).toHaveLength(1);
  });
  test('an encryption-key certificate from a raw compressed point, and the point back', () => {
    const point = k1();
    const c = issueEncryptionKeyCertificate(w.orgA, { domain: 'a.example', version: 9, publicKey: point, ...validity });
    expect(c.keyAlgorithm).toBe('secp256k1');
    expect(c.keyVersion).toBe(9);
    expect([...(c.keyUsage ?? [])]).toEqual(['keyAgreement']);
    expect(compressedPointFromSpki(c.spki)).toEqual(point);
    expect(encryptionPointOf(c.pem)).toEqual(point);
    expect(() => encryptionPointOf(w.sealA)).toThrow(/not on secp256k1/);
    // The same from the 65-byte form and from the SPKI.
    const c65 = issueEncryptionKeyCertificate(w.orgA, {
      domain: 'a.example',
      version: 9,
      publicKey: decompressSecp256k1(point),
      ...validity,
    });
    expect(c65.spki).toEqual(c.spki);
    expect(secp256k1SpkiFromPoint(point)).toEqual(c.spki);
  });
  test('a point not on the curve is refused', () => {
    const bad = new Uint8Array(33);
    bad[0] = 2;
    bad.fill(0xff, 1);
    expect(() => secp256k1SpkiFromPoint(bad)).toThrow(/not a point on the curve/);
    expect(() => compressedPointFromSpki(spkiOf(p256()))).toThrow(/not on secp256k1/);
  });
  test('serial numbers are positive, 16 bytes, distinct', () => {
    const serials = new Set([w.sealA, w.encA, w.userSignA, w.userEncA, w.gatewayA, w.keydA].map((c) => c.serial));
    expect(serials.size).toBe(6);
    for (const s of serials) {
      expect(s).toHaveLength(32);
      expect(parseInt(s.slice(0, 2), 16) & 0x80).toBe(0);
    }
  });
  test('times from 2050 are GeneralizedTime and read back exactly', () => {
    const key = generateP256KeyPair().privateKey;
    const far = new Date('2061-03-04T05:06:07Z');
    const root = createRootCa({ privateKey: key, notBefore: T0, notAfter: far });
    expect(root.certificate.notAfter).toEqual(far);
    expect(Buffer.from(root.certificate.der).includes(Buffer.from('20610304050607Z'))).toBe(true);
  });
  test('every profile validates for its own use straight after issuance', () => {
    const r = validateCertificate({
      leaf: w.encA,
      intermediates: [w.orgA.certificate],
      roots: [w.root.certificate],
      crls: [w.rootCrl, w.crlA],
      use: 'org-encryption',
      time: NOW,
    });
    expect(r.status).toBe('valid');
    expect(T_LEAF_END.getTime()).toBe(w.encA.notAfter.getTime());
  });
});

describe('key files and PEM', () => {
  test('a passphrase-encrypted PKCS#8 key reads back; a wrong or missing passphrase is refused', () => {
    const key = generateP256KeyPair().privateKey;
    const pem = privateKeyToPem(key, 'correct horse');
    expect(pem).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/);
    expect(spkiOf(privateKeyFromPem(pem, 'correct horse'))).toEqual(spkiOf(key));
    expect(() => privateKeyFromPem(pem, 'wrong')).toThrow('Cannot read private key: wrong passphrase or damaged file');
    expect(() => privateKeyFromPem(pem)).toThrow(/encrypted and no passphrase/);
    expect(() => privateKeyToPem(key, '')).toThrow(/passphrase is empty/);
    expect(privateKeyToPem(key)).toMatch(/BEGIN PRIVATE KEY/);
  });
  test('PEM round trip, several blocks, damaged bodies', () => {
    const der = new Uint8Array([1, 2, 3, 250]);
    expect(fromPem(toPem('X', der), 'X')).toEqual(der);
    expect(fromPemAll(toPem('X', der) + toPem('X', der), 'X')).toHaveLength(2);
    expect(() => fromPem(toPem('X', der) + toPem('X', der), 'X')).toThrow(/expected one "X" block, found 2/);
    expect(() => fromPem('-----BEGIN X-----\n!!\n-----END X-----', 'X')).toThrow(/damaged/);
    expect(() => fromPem('nothing', 'X')).toThrow(/no "X" block/);
  });
  test('parseCertificate reads PEM and DER alike', () => {
    expect(parseCertificate(w.sealA.pem).fingerprint).toBe(parseCertificate(w.sealA.der).fingerprint);
  });
});
