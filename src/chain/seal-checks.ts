/**
 * The checks of one seal that do not depend on where it stands in the
 * message: its position rules (cv=, time) and its signature against the
 * certificate a lookup finds. Shared by verifyChain (every seal) and
 * verifyNewestSeal (the recipient's check), so the two never diverge.
 */
import { verifyP256 } from '../crypto/ecdsa';
import type { CertificateLookup } from './certificate-lookup';
import { CHAIN_LIMITS } from './limits';
import { type AuthOutcome, fail } from './result';
import { type SealFields, decodeBase64url, sealSigningInput } from './tags';

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Position rules that need no certificate: cv= and time. */
export function structuralProblem(seal: SealFields, nowSeconds: number): AuthOutcome | undefined {
  const i = seal.instance;
  if (seal.chainValidation === 'fail') return fail('sealed-over-failure', `Seal ${i} was added over a failed chain (cv=fail)`);
  const expected = i === 1 ? 'none' : 'pass';
  if (seal.chainValidation !== expected) return fail('cv-mismatch', `Seal ${i} has cv=${seal.chainValidation}, expected cv=${expected}`);
  if (seal.time > nowSeconds + CHAIN_LIMITS.maxClockSkewSeconds)
    return fail('time-in-future', `Seal ${i} time ${seal.time} is after ${nowSeconds}`);
  return undefined;
}

/** Looks up the certificate and checks the signature; undefined certificate → `unknown`. */
export async function checkSignature(
  seal: SealFields,
  earlier: readonly SealFields[],
  lookup: CertificateLookup,
): Promise<AuthOutcome | 'unknown'> {
  const i = seal.instance;
  let certificate;
  try {
    certificate = await lookup({ kind: 'seal', certRef: seal.certRef, time: seal.time, domain: seal.domain });
  } catch (err) {
    return { result: 'temperror', detail: `certificate lookup failed: ${errorText(err)}` };
  }
  if (!certificate) return 'unknown';
  if ((certificate.domain ?? '').toLowerCase() !== seal.domain) {
    return fail('certificate-domain-mismatch', `The certificate of seal ${i} is for "${certificate.domain ?? ''}", not "${seal.domain}"`);
  }
  let valid: boolean;
  try {
    valid = verifyP256(certificate.publicKey, sealSigningInput(earlier, seal.tags), decodeBase64url(seal.signature) ?? new Uint8Array());
  } catch (err) {
    return { result: 'temperror', detail: `certificate key unusable: ${errorText(err)}` };
  }
  return valid ? { result: 'pass' } : fail('signature-invalid', `Seal ${i} does not verify`);
}
