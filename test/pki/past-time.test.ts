/**
 * Validation at a past time (RFC 5280 §3.3, §5.3.2): a certificate valid at
 * the time it was used, and not revoked before that time, validates with any
 * later CRL — so messages sealed before any number of CRL re-issues can still
 * be verified, reported and resolved (issue 16).
 */
import { validateCertificate } from '../../src/pki/validate';
import { T0, type World, crlFor, makeWorld } from './fixtures';

let w: World;
beforeAll(() => {
  w = makeWorld();
});

const day = (n: number) => new Date(T0.getTime() + n * 86400000);
const SEALED_AT = day(10);
/** Three CRL re-issues after the seal (days 20, 50, 80), each valid 30 days; only the newest is at hand. */
const later = (entries: Parameters<typeof crlFor>[1] = []) => [
  crlFor(w.root, [], 2, day(80), day(110)),
  crlFor(w.orgA, entries, 4, day(80), day(110)),
];

function at(time: Date, crls: ReturnType<typeof later>) {
  return validateCertificate({
    leaf: w.sealA.der,
    intermediates: [w.orgA.certificate.pem],
    roots: [w.root.certificate.der],
    crls: crls.map((c) => c.der),
    use: 'seal',
    time,
  });
}

test('a seal made three CRLs ago validates at its time with the newest CRL', () => {
  expect(at(SEALED_AT, later()).status).toBe('valid');
});

test('a later CRL that has itself expired is still evidence for the earlier time', () => {
  const stale = [crlFor(w.root, [], 2, day(20), day(50)), crlFor(w.orgA, [], 2, day(20), day(50))];
  expect(at(SEALED_AT, stale).status).toBe('valid');
});

test('revoked after the seal (superseded): valid at the seal time, revoked now', () => {
  const crls = later([{ serial: w.sealA.serial, revokedAt: day(40), reason: 'superseded' }]);
  expect(at(SEALED_AT, crls).status).toBe('valid');
  expect(at(day(85), crls).status).toBe('revoked');
});

test('revoked before the seal: revoked at the seal time', () => {
  const r = at(SEALED_AT, later([{ serial: w.sealA.serial, revokedAt: day(5), reason: 'cessationOfOperation' }]));
  expect(r.status).toBe('revoked');
});

test('revoked for key compromise: revoked whatever the date (a stolen key can backdate a seal)', () => {
  const r = at(SEALED_AT, later([{ serial: w.sealA.serial, revokedAt: day(40), reason: 'keyCompromise' }]));
  expect(r.status).toBe('revoked');
});

test('a CRL issued before the time must still be current at it', () => {
  const old = [crlFor(w.root, [], 1, T0, day(5)), crlFor(w.orgA, [], 1, T0, day(5))];
  expect(at(SEALED_AT, old).status).toBe('revocation-unknown');
});
