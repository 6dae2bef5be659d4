import fc from 'fast-check';
import { parseCertificate } from '../../src/pki/certificate';
import { parseCrl } from '../../src/pki/crl';
import { DerError, TAG, decodeOid, decodeTime, parseDer, readTlv } from '../../src/pki/der';
import { SSMAX_ARC } from '../../src/pki/oids';
import { validateCertificate } from '../../src/pki/validate';
import { NOW, type World, makeWorld } from './fixtures';

let w: World;
beforeAll(() => {
  w = makeWorld();
});

describe('strict DER', () => {
  test.each([
    ['indefinite length', [0x30, 0x80, 0x00, 0x00]],
    ['non-minimal long length', [0x04, 0x81, 0x01, 0xaa]],
    ['leading zero length byte', [0x04, 0x82, 0x00, 0x81, ...new Array(0x81).fill(0)]],
    ['truncated', [0x30, 0x05, 0x01]],
    ['trailing bytes', [0x05, 0x00, 0x00]],
    ['high tag number', [0x1f, 0x81, 0x00]],
  ])('%s is refused', (_n, bytes) => {
    expect(() => parseDer(new Uint8Array(bytes), 'x')).toThrow(DerError);
  });
  test('OIDs, including the 128-bit UUID arc, decode to dotted decimal', () => {
    const oid = (hex: string) => decodeOid(readTlv(new Uint8Array(Buffer.from(hex, 'hex')), 0, 'oid').tlv, 'oid');
    expect(oid('06082a8648ce3d030107')).toBe('1.2.840.10045.3.1.7');
    expect(oid('0603550403')).toBe('2.5.4.3');
    expect(w.gatewayA.extKeyUsage).toContain(`${SSMAX_ARC}.3.1`);
    expect(() => oid('0603808001')).toThrow(/minimally/);
    expect(() => oid('06028180')).toThrow(/bad OBJECT IDENTIFIER/);
  });
  test('an OID too long to be real is refused before its arithmetic (the cost of an arc grows with the square of its length)', () => {
    const der = (content: number[]) => {
      const n = content.length;
      const len = n < 128 ? [n] : n < 256 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
      return decodeOid(readTlv(new Uint8Array([0x06, ...len, ...content]), 0, 'oid').tlv, 'signature algorithm');
    };
    // 2.25.<2^128 - 1>: the longest arc in use (a UUID, 19 octets) still decodes
    const uuidArc = [...Array<number>(18).fill(0xff), 0x7f].map((b, i) => (i === 0 ? 0x83 : b));
    expect(der([0x69, ...uuidArc])).toBe(`2.25.${(2n ** 128n - 1n).toString()}`);
    expect(() => der([0x69, 0x81, 0x80, ...uuidArc])).toThrow(
      /Cannot parse signature algorithm: OBJECT IDENTIFIER with an arc over 20 octets/,
    );
    expect(() => der([0x69, ...Array<number>(60000).fill(0xff), 0x7f])).toThrow(/OBJECT IDENTIFIER of 60002 octets \(at most 128\)/);
    expect(() => der(Array<number>(129).fill(0x01))).toThrow(/of 129 octets/);
    expect(der(Array<number>(128).fill(0x01)).split('.')).toHaveLength(129);
  });
  test('times: UTCTime pivots at 50, GeneralizedTime, and impossible dates are refused', () => {
    const t = (tag: number, s: string) =>
      decodeTime({ tag, bytes: new Uint8Array(0), value: new Uint8Array(Buffer.from(s, 'latin1')) }, 't');
    expect(t(TAG.utcTime, '491231235959Z').toISOString()).toBe('2049-12-31T23:59:59.000Z');
    expect(t(TAG.utcTime, '500101000000Z').toISOString()).toBe('1950-01-01T00:00:00.000Z');
    expect(t(TAG.generalizedTime, '20610304050607Z').toISOString()).toBe('2061-03-04T05:06:07.000Z');
    expect(() => t(TAG.utcTime, '260230000000Z')).toThrow(/bad time/);
    expect(() => t(TAG.utcTime, '2602280000Z')).toThrow(/bad time/);
    expect(() => t(TAG.generalizedTime, '20260228000000.5Z')).toThrow(/bad time/);
  });
  test('a CRL round-trips through our reader', () => {
    const crl = parseCrl(w.crlA.pem);
    expect(crl.crlNumber).toBe(1n);
    expect(crl.issuer).toBe('O=A Corp, CN=a.example organisation CA');
    expect(crl.authorityKeyId).toBe(w.orgA.certificate.subjectKeyId);
  });
});

describe('mutation', () => {
  test('any single-byte change of a certificate is never valid and never throws', () => {
    const base = w.sealA.der;
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 }), (pos, xor) => {
        const der = new Uint8Array(base);
        der[pos] = (der[pos] as number) ^ xor;
        const r = validateCertificate({
          leaf: der,
          intermediates: [w.orgA.certificate],
          roots: [w.root.certificate],
          crls: [w.rootCrl, w.crlA],
          use: 'seal',
          time: NOW,
        });
        return r.status !== 'valid';
      }),
      { numRuns: 300 },
    );
  });
  test('any single-byte change of a CRL makes it unusable or unparsable, never silently different', () => {
    const base = w.crlA.der;
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 }), (pos, xor) => {
        const der = new Uint8Array(base);
        der[pos] = (der[pos] as number) ^ xor;
        const r = validateCertificate({
          leaf: w.sealA,
          intermediates: [w.orgA.certificate],
          roots: [w.root.certificate],
          crls: [w.rootCrl, der],
          use: 'seal',
          time: NOW,
        });
        return r.status === 'malformed' || r.status === 'revocation-unknown';
      }),
      { numRuns: 300 },
    );
  });
  test('parseCertificate on random bytes throws only MalformedCertificateError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          parseCertificate(bytes);
          return false;
        } catch (err) {
          return (err as Error).name === 'MalformedCertificateError';
        }
      }),
      { numRuns: 300 },
    );
  });
});
