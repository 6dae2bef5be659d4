/**
 * Which validation failures of a peer's certificate are final (a 550 the sender is told, src/gateway/peer-bundle.ts)
 * and which may pass after a bundle refresh (451): only a CA of the path revoked (not on hold) or expired is final.
 */
import type { ParsedCertificate } from '../../src/pki/certificate';
import { type ValidationResult, finalRefusal } from '../../src/pki/validate';

const cert = (isCA: boolean) => ({ isCA, subject: isCA ? 'CN=Org CA' : 'CN=b.example encryption' }) as unknown as ParsedCertificate;
const at = new Date('2026-12-01T00:00:00Z');
const revoked = (isCA: boolean, reason: string) =>
  ({ status: 'revoked', certificate: cert(isCA), reason, revokedAt: at, message: 'revoked' }) as unknown as ValidationResult;
const expired = (isCA: boolean) =>
  ({ status: 'expired', certificate: cert(isCA), notAfter: at, message: 'expired' }) as unknown as ValidationResult;

test('a revoked or expired CA of the path is final, naming the reason and time', () => {
  expect(finalRefusal(revoked(true, 'cACompromise'))).toBe('revoked (cACompromise, at 2026-12-01T00:00:00.000Z)');
  expect(finalRefusal(expired(true))).toBe('expired (at 2026-12-01T00:00:00.000Z)');
});

test("a CA on hold is not final; nor is a peer's key certificate revoked or expired (a fresh bundle replaces it)", () => {
  expect(finalRefusal(revoked(true, 'certificateHold'))).toBeUndefined();
  expect(finalRefusal(revoked(true, 'removeFromCRL'))).toBeUndefined();
  expect(finalRefusal(revoked(false, 'superseded'))).toBeUndefined();
  expect(finalRefusal(revoked(false, 'keyCompromise'))).toBeUndefined();
  expect(finalRefusal(expired(false))).toBeUndefined();
});
